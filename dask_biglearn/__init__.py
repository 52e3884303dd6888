"""Gaussian mixtures fitted with BigLearn-EM (and plain EM) on NumPy and Dask arrays."""

from ._version import __version__
from .estimator import PAPER_SETTINGS, BigLearnGaussianMixture, GaussianMixture
from .estimator import load_model as load
from .io import ModelFileError
from .model import FitState, MixtureParams
from .projection import MatchingSchedule, Projection

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
