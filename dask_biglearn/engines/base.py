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
* ``sample_engine(n_rows, seed)``: a context manager giving an engine over such a sample;
  the engine decides where the sample lives (this process or the workers) and releases it
  when the context ends;
* ``run_passes_on_rows(specs, ranges)``: passes over some row ranges only (mini-batches);
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

    Parameters
    ----------
    n_samples : int
        How many rows the data holds.
    shift : ndarray of shape (n_features,)
        Per-feature mean, rounded by :func:`order_free`: the centre of every pass's moments.
    var : ndarray of shape (n_features,)
        Per-feature variance, rounded by :func:`order_free`: the scale of the initialisation.
    min : ndarray of shape (n_features,)
        Per-feature minimum.
    max : ndarray of shape (n_features,)
        Per-feature maximum.
    n_positive : int or None, default=None
        How many rows have a positive weight (None: ``n_samples``, as without weights): the
        rows a fit learns from.
    """

    n_samples: int
    shift: np.ndarray
    var: np.ndarray
    min: np.ndarray
    max: np.ndarray
    n_positive: int | None = None

    @property
    def n_positive_rows(self) -> int:
        """How many rows have a positive weight (every row without weights)."""
        return self.n_samples if self.n_positive is None else self.n_positive

    def rows_holding(self, n_rows: int) -> int:
        """How many rows a row sample needs to hold about ``n_rows`` rows of positive weight.

        A sample's rows are chosen by their global index and a seed, whatever their weight:
        with sparse weights (zero for most rows, as for held-out rows) a sample of ``n_rows``
        rows would hold few rows that count. Scaled by the share of rows of positive weight,
        it holds ``n_rows`` of them on average (all rows, when there are fewer).

        Parameters
        ----------
        n_rows : int
            The rows of positive weight the sample should hold.

        Returns
        -------
        int
            Rows of the sample, at most all of them (``n_rows`` itself without weights).
        """
        n, positive = int(self.n_samples), int(self.n_positive_rows)
        if positive >= n:
            return int(n_rows)
        return int(min(n, -(-int(n_rows) * n // max(positive, 1))))


def order_free(mean, var):
    """Round the data's mean and variance onto a grid far below their accuracy.

    They are computed in a summation order that depends on the chunking, and serve only as
    the centre of the moments and the scale of the initialisation. Rounding them to about
    ``1e-9`` of each feature's scale (a power of two) makes fits independent of the chunking,
    up to a rounding boundary hit with probability ~1e-7, at no cost in accuracy.

    Parameters
    ----------
    mean : array-like of shape (n_features,)
        The data's per-feature mean.
    var : array-like of shape (n_features,)
        The data's per-feature variance.

    Returns
    -------
    mean : ndarray of shape (n_features,)
        ``mean`` rounded to a power-of-two grid about ``1e-9`` of each feature's scale
        (``sqrt(var) + |mean|``), float64.
    var : ndarray of shape (n_features,)
        ``var`` rounded to a power-of-two grid about ``1e-9`` of itself, float64.
    """
    mean = np.asarray(mean, dtype=np.float64)
    var = np.asarray(var, dtype=np.float64)
    scale = np.sqrt(var) + np.abs(mean)
    grid = np.exp2(np.floor(np.log2(1e-9 * scale + _TINY)))
    var_grid = np.exp2(np.floor(np.log2(1e-9 * var + _TINY)))
    return np.round(mean / grid) * grid, np.round(var / var_grid) * var_grid


def data_summaries(summary: BlockSummary) -> DataSummaries:
    """The driver's view of a combined summary, with clear errors for unusable data.

    Parameters
    ----------
    summary : BlockSummary
        The summary of all the data's rows (the summary pass, combined over its blocks).

    Returns
    -------
    summaries : DataSummaries
        The data's row count, its mean and variance made independent of the chunking
        (:func:`order_free`), and its per-feature minimum and maximum.

    Raises
    ------
    ValueError
        If the data (or its weights) contains NaN or infinity, or weights are negative or
        all zero.
    FloatingPointError
        If the data's mean or variance overflows float64.
    """
    if not summary.finite:
        raise ValueError(("Input X or sample_weight" if summary.weighted else "Input X")
                         + " contains NaN or infinity (checked before fitting).")
    if summary.weighted and summary.min_weight < 0:
        raise ValueError(f"sample_weight has negative values (the smallest is "
                         f"{summary.min_weight:.6g}): weights must be >= 0.")
    if summary.weighted and not summary.weight > 0:
        raise ValueError("sample_weight is zero for every row: nothing to fit.")
    if summary.weighted and summary.max_weight < _TINY:
        raise ValueError(f"sample_weight is at most {summary.max_weight:.3g}, below float64's "
                         f"normal range: its products with the responsibilities underflow. "
                         f"Scale the weights up (only their ratios matter).")
    with np.errstate(over="ignore", invalid="ignore"):
        var = summary.m2 / summary.weight
    if not (np.isfinite(summary.weight) and np.all(np.isfinite(summary.mean))
            and np.all(np.isfinite(var))):
        if summary.weighted and summary.max_weight > 1.0:
            raise FloatingPointError(
                f"The weighted sums of the data overflow float64 (sample_weight reaches "
                f"{summary.max_weight:.3g}). Scale the weights down (only their ratios "
                f"matter), or scale the data.")
        raise FloatingPointError(
            "The data's variance overflows float64 (values beyond ~1e150). Scale the data "
            "(e.g. standardise it) before fitting."
        )
    shift, var = order_free(summary.mean, var)
    return DataSummaries(int(summary.n_rows), shift, var,
                         np.asarray(summary.min, np.float64), np.asarray(summary.max, np.float64),
                         int(summary.n_positive_rows))


# A protocol is never instantiated: its constructor is typing.Protocol's placeholder
# ``(*args, **kwargs)``, with no parameters to document (its attributes are documented).
class Engine(Protocol):  # numpydoc ignore=PR01
    """The engine protocol: what the fit loop needs from where the rows live.

    An engine owns the data's rows and runs passes over them; the fit functions
    (:mod:`dask_biglearn.fit`) only ever see the data through it. See the module docstring
    for an overview.

    Attributes
    ----------
    n_samples : int
        How many rows the data holds.
    n_features : int
        How many features each row has.
    weighted : bool
        Whether each row carries its weight (``sample_weight``) as one more, last, column:
        every pass is weighted and the rows :meth:`take_rows` and :meth:`take_sample` return
        keep it.
    summaries : DataSummaries
        From one summary pass when the engine is built; ``summaries.shift`` is the centre of
        every pass's moments.
    compiled : bool
        Whether passes run the compiled kernels (read once from
        :func:`dask_biglearn.config.compiled_kernels`, and sent to the workers in every
        spec).
    float32_products : bool
        Whether passes run their products in float32 (float32 data, see
        :func:`dask_biglearn.config.float32_products`; sent to the workers in every spec).
    n_data_passes : int
        How many times the engine has read the whole data so far.
    """

    n_samples: int
    n_features: int
    weighted: bool
    summaries: DataSummaries
    compiled: bool
    float32_products: bool
    n_data_passes: int

    def run_passes(self, specs) -> list[SuffStats]:
        """Run several passes from one read of the data.

        The restarts of a fit advance together: each of their passes is computed from the
        same read of the rows. An engine must count the read in ``n_data_passes``.

        Parameters
        ----------
        specs : list of PassSpec
            The passes to run (:class:`~dask_biglearn.kernels.passes.PassSpec`).

        Returns
        -------
        stats : list of SuffStats
            One per spec, in order, over all the data's rows.
        """
        ...

    def run_pass(self, spec: PassSpec) -> SuffStats:
        """Run one pass over the data: :meth:`run_passes` of a batch of one.

        Parameters
        ----------
        spec : PassSpec
            The pass to run.

        Returns
        -------
        stats : SuffStats
            The pass's statistics over all the data's rows.
        """
        ...

    def take_rows(self, indices: np.ndarray) -> np.ndarray:
        """Return rows by their global index.

        Parameters
        ----------
        indices : ndarray of int
            Sorted global row indices.

        Returns
        -------
        rows : ndarray of shape (len(indices), n_features)
            The rows, in the order of ``indices``.
        """
        ...

    def take_sample(self, size: int, seed: int) -> np.ndarray:
        """Return a row sample chosen by the rows' global index and ``seed``.

        The rows are chosen as :mod:`~dask_biglearn.kernels.sampling` does: the same whatever
        the chunking.

        Parameters
        ----------
        size : int
            Rows to take (all, if there are fewer).
        seed : int
            Chooses the rows, by their global index.

        Returns
        -------
        rows : ndarray of shape (min(size, n_samples), n_features)
            The sampled rows, in index order.
        """
        ...

    def sample_engine(self, n_rows: int, seed: int):
        """Return a context manager giving an engine over a row sample.

        The sample is the one :meth:`take_sample` draws. The engine decides where the sample
        lives (this process or the workers) and must release it when the context ends.

        Parameters
        ----------
        n_rows : int
            Rows of the sample.
        seed : int
            Chooses the rows, by their global index.

        Returns
        -------
        context : context manager of Engine
            Entering it gives an engine over the sample; leaving it releases the sample.
        """
        ...

    def run_passes_on_rows(self, specs, ranges) -> list[SuffStats]:
        """Run several passes over some row ranges only (a mini-batch).

        Parameters
        ----------
        specs : list of PassSpec
            The passes to run.
        ranges : list of (int, int)
            Row ranges ``[start, stop)`` of the global row index.

        Returns
        -------
        stats : list of SuffStats
            One per spec, in order, over the rows of the ranges.
        """
        ...

    def close(self) -> None:
        """Release what the engine holds (cached features, persisted data, workers' state).

        An engine is also a context manager: leaving ``with engine:`` closes it.
        """
        ...


class EngineBase:
    """What the engines share: ``run_pass`` as a batch of one, and the context manager.

    ``with Engine(...) as engine:`` closes the engine when the block ends. Subclasses
    implement :meth:`run_passes` and :meth:`close` (and the rest of :class:`Engine`).
    """

    def run_passes(self, specs) -> list[SuffStats]:  # pragma: no cover - overridden
        """Run several passes from one read of the data (every engine overrides it).

        Parameters
        ----------
        specs : list of PassSpec
            The passes to run.

        Returns
        -------
        stats : list of SuffStats
            One per spec, in order.
        """
        raise NotImplementedError

    def run_pass(self, spec: PassSpec) -> SuffStats:
        """Run one pass over the data: :meth:`run_passes` of a batch of one.

        Parameters
        ----------
        spec : PassSpec
            The pass to run.

        Returns
        -------
        stats : SuffStats
            The pass's statistics over all the data's rows.
        """
        return self.run_passes([spec])[0]

    def close(self) -> None:  # pragma: no cover - every engine overrides it
        """Release what the engine holds (every engine overrides it)."""
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False
