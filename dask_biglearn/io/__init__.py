"""Files and stores: model files (JSON + ``.npz`` in one ZIP, never pickled) and Zarr."""

from .files import FORMAT_VERSION, ModelFileError
from .models import load_model, save_model

__all__ = ["FORMAT_VERSION", "ModelFileError", "load_model", "save_model"]
