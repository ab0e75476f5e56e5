"""My drawings: labelled canvas drawings kept as a personal test set, and every model's accuracy on them.

- ``files``: one drawing as one PNG file (its label, time and stroke width in a text chunk), and the errors;
- ``store``: the drawings folder (save, list, relabel, delete, export, import);
- ``archive``: drawings in a zip with labels.csv, and the checks an archive to import passes;
- ``scores``: each model's answers on the drawings.
"""

from digitlab.drawings.archive import LABELS_FILE, MAX_ARCHIVE_BYTES, MAX_MEMBERS
from digitlab.drawings.files import (DIGITS, DRAWINGS_ENV, MAX_SIDE, ArchiveRefusedError, Drawing, DrawingListing,
                                     DrawingsError, DrawingsFolderError, ImportReport, InvalidDrawingError,
                                     UnknownDrawingError, check_label, drawings_root, read_drawing)
from digitlab.drawings.scores import DrawingScore, score
from digitlab.drawings.store import DrawingStore

__all__ = ["DIGITS", "DRAWINGS_ENV", "LABELS_FILE", "MAX_ARCHIVE_BYTES", "MAX_MEMBERS", "MAX_SIDE",
           "ArchiveRefusedError", "Drawing", "DrawingListing", "DrawingScore", "DrawingStore", "DrawingsError",
           "DrawingsFolderError", "ImportReport", "InvalidDrawingError", "UnknownDrawingError", "check_label",
           "drawings_root", "read_drawing", "score"]
