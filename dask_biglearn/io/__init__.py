"""Files and stores, below the estimators: model files and checkpoints (JSON + ``.npz`` in one
ZIP, never pickled) and Zarr. Nothing here imports the estimators, the fit program or the
engines."""

from .files import FORMAT_VERSION, ModelFileError
from .models import ModelDocument, read_model, write_model

__all__ = ["FORMAT_VERSION", "ModelDocument", "ModelFileError", "read_model", "write_model"]
