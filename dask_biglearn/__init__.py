"""Gaussian mixtures fitted with BigLearn-EM (and plain EM) on NumPy and Dask arrays."""

from .estimator import PAPER_SETTINGS, BigLearnGaussianMixture, GaussianMixture
from .io import ModelFileError
from .io import load_model as load
from .model import FitState, MixtureParams
from .projection import MatchingSchedule, Projection

__version__ = "0.1.0"

__all__ = [
    "PAPER_SETTINGS",
    "BigLearnGaussianMixture",
    "FitState",
    "GaussianMixture",
    "MatchingSchedule",
    "MixtureParams",
    "ModelFileError",
    "Projection",
    "__version__",
    "load",
]
