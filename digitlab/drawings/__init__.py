"""My drawings: labelled canvas drawings kept as a personal test set, and every model's accuracy on them.

- ``files``: one drawing as one PNG file (its label, time and stroke width in a text chunk), and the errors;
- ``store``: the drawings folder (save, list, relabel, delete, export, import);
- ``archive``: drawings in a zip with labels.csv, and the checks an archive to import passes;
- ``scores``: each model's answers on the drawings;
- ``class_collection``: a class adding drawings to one collection at once, each addition bounded.
"""

from digitlab.drawings.archive import LABELS_FILE, MAX_ARCHIVE_BYTES, MAX_MEMBERS
from digitlab.drawings.files import (DIGITS, DRAWINGS_ENV, MAX_SIDE, ArchiveRefusedError, Drawing, DrawingListing,
                                     DrawingsError, DrawingsFolderError, ImportReport, InvalidDrawingError,
                                     UnknownDrawingError, check_label, drawings_root, read_drawing)
from digitlab.drawings.class_collection import ClassCollection, ClassLimitError, class_mode
from digitlab.drawings.scores import Answers, DrawingScore, score
from digitlab.drawings.store import DrawingStore

__all__ = ["DIGITS", "DRAWINGS_ENV", "LABELS_FILE", "MAX_ARCHIVE_BYTES", "MAX_MEMBERS", "MAX_SIDE", "Answers",
           "ArchiveRefusedError", "check_label", "class_mode", "ClassCollection", "ClassLimitError", "Drawing",
           "DrawingListing", "drawings_root", "DrawingScore", "DrawingsError", "DrawingsFolderError", "DrawingStore",
           "ImportReport", "InvalidDrawingError", "read_drawing", "score", "UnknownDrawingError"]
