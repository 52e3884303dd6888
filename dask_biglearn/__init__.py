"""Gaussian mixtures fitted with BigLearn-EM (and plain EM) on NumPy and Dask arrays.

The names below are imported on first use (PEP 562): a worker that unpickles a kernel of
:mod:`dask_biglearn.kernels` imports this package first, and must not pay for the estimators
(scikit-learn and what it pulls in) to run a kernel that needs only NumPy.
"""

from __future__ import annotations

import importlib

from ._version import __version__ as __version__

#: Public name -> (module, attribute).
_EXPORTS = {
    "PAPER_SETTINGS": (".estimator", "PAPER_SETTINGS"),
    "BigLearnGaussianMixture": (".estimator", "BigLearnGaussianMixture"),
    "GaussianMixture": (".estimator", "GaussianMixture"),
    "GaussianMixtureSelection": (".selection", "GaussianMixtureSelection"),
    "GaussianMixtureImputer": (".impute", "GaussianMixtureImputer"),
    "load": (".estimator", "load_model"),
    "ModelFileError": (".io.files", "ModelFileError"),
    "FitState": (".model", "FitState"),
    "MixtureParams": (".model", "MixtureParams"),
    "MatchingSchedule": (".projection", "MatchingSchedule"),
    "Projection": (".projection", "Projection"),
}

__all__ = [
    "PAPER_SETTINGS",
    "BigLearnGaussianMixture",
    "FitState",
    "GaussianMixture",
    "GaussianMixtureImputer",
    "GaussianMixtureSelection",
    "MatchingSchedule",
    "MixtureParams",
    "ModelFileError",
    "Projection",
    "__version__",
    "load",
]


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(module, __name__), attribute)
    globals()[name] = value  # once imported, an ordinary attribute
    return value


def __dir__():
    return sorted({*globals(), *_EXPORTS})
