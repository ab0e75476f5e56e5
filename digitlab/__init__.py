"""digitlab: train, compare and probe handwritten-digit classifiers on MNIST.

Importing digitlab never imports streamlit: only digitlab.dashboard.ui does, for the dashboard.
"""

__version__ = "0.1.0"

# The ResNet's module registers it with digitlab.models (which cannot import it back without a cycle), before the
# presets that name it are built. Every import of a digitlab module runs this file first.
from digitlab import resnet as _resnet  # noqa: F401
from digitlab.config import TrainConfig, list_presets, preset
from digitlab.engine import train
from digitlab.models import create_model, list_models
from digitlab.predict import predict
from digitlab.preprocess import preprocess_canvas
from digitlab.store import list_runs, load_run

__all__ = [
    "TrainConfig",
    "create_model",
    "list_models",
    "list_presets",
    "list_runs",
    "load_run",
    "predict",
    "preprocess_canvas",
    "preset",
    "train",
]
