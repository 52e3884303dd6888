"""What every engine provides, and the data summaries it computes in its summary pass.

An engine owns where the rows live. It offers

* ``n_samples``, ``n_features`` and ``summaries`` (:class:`DataSummaries`, from one summary
  pass when the engine is built; ``summaries.shift`` is the centre of every pass's moments);
* ``compiled``: whether passes run the compiled kernels (read once from
  :func:`dask_biglearn.config.compiled_kernels`, and sent to the workers in every spec);
* ``run_passes(specs) -> [SuffStats]``: several passes (each a
  :class:`~dask_biglearn.kernels.passes.PassSpec`) from one read of the data, for restarts
  that advance together; ``run_pass(spec)``, a batch of one;
* ``take_rows(sorted_indices) -> ndarray``;
* ``take_sample(size, seed) -> ndarray``: ``size`` rows chosen by their global index and the
  seed (:mod:`~dask_biglearn.kernels.sampling`), the same whatever the chunking;
* ``n_data_passes``: how many times it has read the whole data so far;
* ``close()``, and use as a context manager, releasing what it holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..kernels.passes import PassSpec
from ..kernels.stats import SuffStats
from ..kernels.summaries import BlockSummary

__all__ = ["DataSummaries", "Engine", "EngineBase", "PassSpec", "data_summaries"]

_TINY = np.finfo(np.float64).tiny


@dataclass(frozen=True)
class DataSummaries:
    """Per-feature summaries of the data, float64 arrays of shape ``(n_features,)``.

    ``shift`` is the mean and ``var`` the variance, both rounded onto a grid far below their
    accuracy (:func:`order_free`), so that they do not depend on the chunking.
    """

    n_samples: int
    shift: np.ndarray
    var: np.ndarray
    min: np.ndarray
    max: np.ndarray


def order_free(mean, var):
    """Round the data's mean and variance onto a grid far below their accuracy.

    They are computed in a summation order that depends on the chunking, and serve only as
    the centre of the moments and the scale of the initialisation. Rounding them to about
    ``1e-9`` of each feature's scale (a power of two) makes fits independent of the chunking,
    up to a rounding boundary hit with probability ~1e-7, at no cost in accuracy.
    """
    mean = np.asarray(mean, dtype=np.float64)
    var = np.asarray(var, dtype=np.float64)
    scale = np.sqrt(var) + np.abs(mean)
    grid = np.exp2(np.floor(np.log2(1e-9 * scale + _TINY)))
    var_grid = np.exp2(np.floor(np.log2(1e-9 * var + _TINY)))
    return np.round(mean / grid) * grid, np.round(var / var_grid) * var_grid


def data_summaries(summary: BlockSummary) -> DataSummaries:
    """The driver's view of a combined summary, with clear errors for unusable data."""
    if not summary.finite:
        raise ValueError("Input X contains NaN or infinity (checked before fitting).")
    with np.errstate(over="ignore", invalid="ignore"):
        var = summary.m2 / summary.n_rows
    if not (np.all(np.isfinite(summary.mean)) and np.all(np.isfinite(var))):
        raise FloatingPointError(
            "The data's variance overflows float64 (values beyond ~1e150). Scale the data "
            "(e.g. standardise it) before fitting."
        )
    shift, var = order_free(summary.mean, var)
    return DataSummaries(int(summary.n_rows), shift, var,
                         np.asarray(summary.min, np.float64), np.asarray(summary.max, np.float64))


class Engine(Protocol):
    """The engine protocol (see the module docstring)."""

    n_samples: int
    n_features: int
    summaries: DataSummaries
    compiled: bool
    n_data_passes: int

    def run_passes(self, specs) -> list[SuffStats]: ...

    def run_pass(self, spec: PassSpec) -> SuffStats: ...

    def take_rows(self, indices: np.ndarray) -> np.ndarray: ...

    def take_sample(self, size: int, seed: int) -> np.ndarray: ...

    def close(self) -> None: ...


class EngineBase:
    """What the engines share: ``run_pass`` as a batch of one, and the context manager
    (``with Engine(...) as engine:`` closes it)."""

    def run_passes(self, specs) -> list[SuffStats]:  # pragma: no cover - overridden
        raise NotImplementedError

    def run_pass(self, spec: PassSpec) -> SuffStats:
        return self.run_passes([spec])[0]

    def close(self) -> None:  # pragma: no cover - every engine overrides it
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False
