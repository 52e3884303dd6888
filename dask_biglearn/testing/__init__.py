"""Test support: the dense NumPy/SciPy reference of BigLearn-EM (the oracle the engines are
held to) and, in :mod:`dask_biglearn.testing.strategies`, hypothesis strategies."""

from .reference import (
    reference_biglearn_em,
    reference_em_update,
    reference_floor,
    reference_log_likelihood,
)

__all__ = [
    "reference_biglearn_em",
    "reference_em_update",
    "reference_floor",
    "reference_log_likelihood",
]
