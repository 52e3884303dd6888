"""Test support: the dense NumPy/SciPy reference of BigLearn-EM (the oracle the engines are
held to), the seeded data several test modules share (:mod:`~dask_biglearn.testing.data`),
and, in :mod:`dask_biglearn.testing.strategies` and :mod:`dask_biglearn.testing.markers`,
hypothesis strategies and pytest markers (which import those libraries). The reference
takes missing values (NaN) as exact EM on incomplete data does; :func:`reference_conditional`
completes one row under one Gaussian."""

from .data import make_blobs, make_projection, paper_biglearn, random_params
from .reference import (
    reference_biglearn_em,
    reference_conditional,
    reference_em_update,
    reference_floor,
    reference_log_likelihood,
)

__all__ = [
    "make_blobs",
    "make_projection",
    "paper_biglearn",
    "random_params",
    "reference_biglearn_em",
    "reference_conditional",
    "reference_em_update",
    "reference_floor",
    "reference_log_likelihood",
]
