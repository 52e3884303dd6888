"""Passes over an in-memory NumPy array in a plain loop, with no scheduler round trip."""

from __future__ import annotations

import contextlib

import numpy as np

from ..config import compiled_kernels, float32_products
from ..kernels.features import FeatureCache, default_block_rows
from ..kernels.passes import pass_stats_batch
from ..kernels.sampling import in_index_order, sample_blocks
from ..kernels.stats import SuffStats
from ..kernels.summaries import summarize_blocks
from .base import EngineBase, data_summaries

#: The in-process engine caches the quadratic features of the data when they fit in this many
#: bytes (the data's own and those of the last projection: see
#: :class:`~dask_biglearn.kernels.features.FeatureCache`).
FEATURE_CACHE_BYTES = 512 * 2**20


class InProcessEngine(EngineBase):
    """Passes over an in-memory NumPy array, in this process.

    Small fits make tens of thousands of passes: within ``feature_cache_bytes`` the
    quadratic features of the data (and of the current projection) are kept between passes.

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
    """

    def __init__(self, X: np.ndarray, *, block_rows: int | None = None,
                 compiled: bool | None = None, feature_cache_bytes: int = FEATURE_CACHE_BYTES,
                 weighted: bool = False):
        self.X = X
        self.weighted = bool(weighted)
        self.n_samples = int(X.shape[0])
        self.n_features = int(X.shape[1]) - self.weighted
        self.compiled = compiled_kernels() if compiled is None else bool(compiled)
        self.float32_products = float32_products(X.dtype)
        self.block_rows = block_rows or default_block_rows(self.n_features)
        self.summaries = data_summaries(summarize_blocks([X], weighted=self.weighted))
        self.n_data_passes = 1  # the summary pass
        self.rows_read = 0  # by mini-batches, beyond the full passes
        self._cache = FeatureCache(X[:, :-1] if self.weighted else X, self.summaries.shift,
                                   self.block_rows,
                                   feature_cache_bytes, compiled=self.compiled,
                                   dtype=np.float32 if self.float32_products else np.float64)

    @property
    def features_cached(self) -> bool:
        """Whether the data's own quadratic features are kept between passes."""
        return self._cache.features_of(self.summaries.shift, None) is not None

    def run_passes(self, specs) -> list[SuffStats]:
        """Several passes from one read of the data.

        Parameters
        ----------
        specs : list of PassSpec

        Returns
        -------
        stats : list of SuffStats
            One per spec.
        """
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
        """Rows by global index.

        Parameters
        ----------
        indices : array-like of int
            Sorted global row indices.

        Returns
        -------
        rows : ndarray of shape (len(indices), n_features)
        """
        return np.asarray(self.X[np.asarray(indices)])

    def take_sample(self, size: int, seed: int) -> np.ndarray:
        """Rows chosen by their global index and ``seed``: the Dask engine's rows.

        Parameters
        ----------
        size : int
            Rows to take (all, if there are fewer).
        seed : int

        Returns
        -------
        rows : ndarray of shape (min(size, n_samples), n_features)
            In index order, float64.
        """
        self.n_data_passes += 1
        if size >= self.n_samples:
            return np.asarray(self.X, dtype=np.float64)
        # One block: its ``size`` smallest keys, the same rows as the Dask engine's pass.
        return in_index_order(sample_blocks([self.X], [0], int(seed), int(size)))

    @contextlib.contextmanager
    def sample_engine(self, n_rows: int, seed: int):
        """An in-process engine over a row sample (:meth:`take_sample`).

        Parameters
        ----------
        n_rows : int
            Rows of the sample.
        seed : int
            Chooses the rows, by their global index.

        Yields
        ------
        engine : InProcessEngine
        """
        with InProcessEngine(self.take_sample(n_rows, seed), compiled=self.compiled,
                             weighted=self.weighted) as engine:
            yield engine

    def close(self) -> None:
        """Drop the cached features."""
        self._cache.clear()
