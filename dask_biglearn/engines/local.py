"""Passes over an in-memory NumPy array in a plain loop, with no scheduler round trip."""

from __future__ import annotations

import contextlib

import numpy as np

from ..kernels.features import FeatureCache
from ..kernels.missing import filled
from ..kernels.passes import pass_stats_batch
from ..kernels.sampling import in_index_order, sample_blocks
from ..kernels.stats import SuffStats
from ..kernels.summaries import summarize_blocks
from .base import Engine, data_summaries

#: The in-process engine caches the quadratic features of the data when they fit in this many
#: bytes (the data's own and those of the last projection: see
#: :class:`~dask_biglearn.kernels.features.FeatureCache`).
FEATURE_CACHE_BYTES = 512 * 2**20


class InProcessEngine(Engine):
    """An :class:`~dask_biglearn.engines.base.Engine` over an in-memory NumPy array: passes
    in this process, with no scheduler round trip.

    Small fits make tens of thousands of passes: within ``feature_cache_bytes`` the
    quadratic features of the data (and of the current projection) are kept between passes
    (:meth:`close` drops them). A sample engine is an engine of this class over the sample.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Validated data (float32 or float64).
    block_rows : int, optional
        Rows per sub-block of the kernel.
    compiled : bool, optional
        Run the compiled kernels (default: :func:`dask_biglearn.config.compiled_kernels`).
    feature_cache_bytes : int, default=FEATURE_CACHE_BYTES
        Keep the quadratic features between passes while they take at most this many bytes.
    weighted : bool, default=False
        The last column of ``X`` is the rows' weights (``sample_weight``), not a feature:
        the summaries and every pass are weighted, and rows (samples included) keep their
        weight in that column.
    parent : DataSummaries, optional
        The summaries of the data ``X`` is a row sample of (a sample engine's): a feature
        with no observed value in the sample takes them (:func:`~dask_biglearn.engines.base.
        data_summaries`).
    """

    def __init__(self, X: np.ndarray, *, block_rows: int | None = None,
                 compiled: bool | None = None, feature_cache_bytes: int = FEATURE_CACHE_BYTES,
                 weighted: bool = False, parent=None):
        super().__init__(X, weighted=weighted, compiled=compiled, block_rows=block_rows)
        self.X = X
        self.summaries = data_summaries(summarize_blocks([X], weighted=self.weighted), parent)
        self.n_data_passes = 1  # the summary pass
        values = X[:, :-1] if self.weighted else X
        if self.missing:  # the passes read incomplete rows filled (kernels/missing.py)
            values = filled(values, np.isnan(values), self.summaries.shift)
        self._cache = FeatureCache(values, self.summaries.shift, self.block_rows,
                                   feature_cache_bytes, compiled=self.compiled,
                                   dtype=np.float32 if self.float32_products else np.float64)

    @property
    def features_cached(self) -> bool:
        """Whether the data's own quadratic features are kept between passes."""
        return self._cache.features_of(self.summaries.shift, None) is not None

    def run_passes(self, specs) -> list[SuffStats]:
        self.n_data_passes += 1
        return pass_stats_batch([self.X], specs, self.block_rows, cache=self._cache)

    def run_passes_on_rows(self, specs, ranges) -> list[SuffStats]:
        """The passes over some row ranges only (a mini-batch).

        Parameters
        ----------
        specs : list of PassSpec
        ranges : list of (int, int)
            Row ranges ``[start, stop)`` of the global row index.

        Returns
        -------
        stats : list of SuffStats
            One per spec, over the rows of the ranges.
        """
        blocks = [self.X[start:stop] for start, stop in ranges]
        self.rows_read += sum(len(b) for b in blocks)
        return pass_stats_batch(blocks, specs, self.block_rows)

    def take_rows(self, indices) -> np.ndarray:
        return np.asarray(self.X[np.asarray(indices)])

    def take_sample(self, size: int, seed: int) -> np.ndarray:
        self.n_data_passes += 1
        if size >= self.n_samples:
            return np.asarray(self.X, dtype=np.float64)
        # One block: its ``size`` smallest keys, the same rows as the Dask engine's pass.
        return in_index_order(sample_blocks([self.X], [0], int(seed), int(size)))

    @contextlib.contextmanager
    def sample_engine(self, n_rows: int, seed: int):
        with InProcessEngine(self.take_sample(n_rows, seed), compiled=self.compiled,
                             weighted=self.weighted, parent=self.summaries) as engine:
            yield engine

    def close(self) -> None:
        self._cache.clear()
