"""The package's version: the one place it is written (the face, model files, checkpoints and
the build read it here)."""

__version__ = "0.1.0"
