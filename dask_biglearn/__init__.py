"""Gaussian mixtures fitted with BigLearn-EM (and plain EM) on NumPy and Dask arrays."""

from .estimator import BigLearnGaussianMixture, GaussianMixture
from .projection import MatchingSchedule, Projection

__version__ = "0.1.0"

__all__ = [
    "BigLearnGaussianMixture",
    "GaussianMixture",
    "MatchingSchedule",
    "Projection",
    "__version__",
]
