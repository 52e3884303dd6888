"""The engine contract (:class:`Engine`), stated once, and the data summaries an engine
computes in its summary pass.

An engine owns where the rows live and runs passes over them; the fit program
(:mod:`dask_biglearn.fit`) only ever sees the data through it. :class:`Engine` states what
every engine provides (its attributes, its abstract methods and their docstrings, which the
engines' own methods inherit): the summaries, passes batched on one read of the data, rows by
index or by sample, an engine over a row sample, and the release of what it holds. The
in-process engine (:mod:`~dask_biglearn.engines.local`) and the Dask engine
(:mod:`~dask_biglearn.engines.dask`) implement it; both also run passes over some row ranges
only (``run_passes_on_rows``, for the mini-batches of :mod:`dask_biglearn.fit.stochastic`),
a capability outside the contract.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

from ..config import compiled_kernels, float32_products
from ..kernels.features import default_block_rows
from ..kernels.passes import PassSpec
from ..kernels.stats import SuffStats
from ..kernels.summaries import BlockSummary, unobserved_message

__all__ = ["DataSummaries", "Engine", "PassSpec", "data_summaries"]

_TINY = np.finfo(np.float64).tiny


@dataclass(frozen=True)
class DataSummaries:
    """Per-feature summaries of the data, float64 arrays of shape ``(n_features,)``.

    ``shift`` is the mean and ``var`` the variance, both rounded onto a grid far below their
    accuracy (:func:`order_free`), so that they do not depend on the chunking. With missing
    values (NaN), each feature's summaries are those of its observed values.

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
        How many rows have a positive weight and at least one observed value (None:
        ``n_samples``, as without weights and missing values): the rows a fit learns from.
    n_missing : int, default=0
        Missing values (NaN) in the rows of positive weight.
    n_incomplete : int, default=0
        Rows of positive weight with at least one missing value (empty rows included).
    n_empty : int, default=0
        Rows of positive weight with no observed value: every fit ignores them.
    n_nan : int, default=0
        Missing values in all the rows, those of zero weight included: a pass that meets
        one must take the path of incomplete rows, whatever the row's weight.
    """

    n_samples: int
    shift: np.ndarray
    var: np.ndarray
    min: np.ndarray
    max: np.ndarray
    n_positive: int | None = None
    n_missing: int = 0
    n_incomplete: int = 0
    n_empty: int = 0
    n_nan: int = 0

    @property
    def n_positive_rows(self) -> int:
        """How many rows a fit learns from: rows of positive weight (every row without
        weights) with at least one observed value."""
        return self.n_samples if self.n_positive is None else self.n_positive

    @property
    def n_counted_rows(self) -> int:
        """The rows the counts of missing values cover: those of positive weight, empty
        rows included (every row without weights)."""
        return self.n_positive_rows + self.n_empty

    @property
    def missing(self) -> bool:
        """Whether any value is missing (NaN), in any row (of zero weight too): whether the
        passes must take the path of incomplete rows."""
        return self.n_missing > 0 or self.n_nan > 0

    @property
    def missing_fraction(self) -> float:
        """The fraction of the values of the rows of positive weight that are missing."""
        n_values = self.n_counted_rows * len(self.shift)
        return float(self.n_missing / n_values) if n_values else 0.0

    def rows_holding(self, n_rows: int) -> int:
        """How many rows a row sample needs to hold about ``n_rows`` rows of positive weight.

        A sample's rows are chosen by their global index and a seed, whatever their weight:
        with sparse weights (zero for most rows, as for held-out rows) a sample of ``n_rows``
        rows would hold few rows that count. Scaled by the share of rows of positive weight
        (and with an observed value: empty rows count for nothing either), it holds
        ``n_rows`` of them on average (all rows, when there are fewer).

        Parameters
        ----------
        n_rows : int
            The rows of positive weight the sample should hold.

        Returns
        -------
        int
            Rows of the sample, at most all of them (``n_rows`` itself without weights and
            empty rows).
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


def data_summaries(summary: BlockSummary, parent: DataSummaries | None = None) -> DataSummaries:
    """The driver's view of a combined summary, with clear errors for unusable data.

    NaN marks a missing value: each feature is summarised over its observed values. A feature
    with none is refused (one line naming its column), unless ``parent`` gives it summaries.

    Parameters
    ----------
    summary : BlockSummary
        The summary of all the data's rows (the summary pass, combined over its blocks).
    parent : DataSummaries or None, default=None
        The summaries of the data these rows are taken from (a sample engine's, or held-out
        rows'): a feature with no observed value among them takes its summaries from them,
        and rows with none usable get a message that says to take more.

    Returns
    -------
    summaries : DataSummaries
        The data's row count, its mean and variance made independent of the chunking
        (:func:`order_free`), its per-feature minimum and maximum, and its counts of missing
        values, incomplete rows and empty rows.

    Raises
    ------
    ValueError
        If the data contains infinity, its weights contain NaN or infinity or are negative
        or all zero, a column has no observed value, or no row of positive weight has one.
    FloatingPointError
        If the data's mean or variance overflows float64.
    """
    if not summary.finite:
        raise ValueError("Input X contains infinity (checked before fitting; NaN marks a "
                         "missing value, infinity is not one).")
    if summary.weighted and not summary.weights_finite:
        raise ValueError("sample_weight contains NaN or infinity (checked before fitting; "
                         "weights are never missing).")
    if summary.weighted and summary.min_weight < 0:
        raise ValueError(f"sample_weight has negative values (the smallest is "
                         f"{summary.min_weight:.6g}): weights must be >= 0.")
    if summary.weighted and not summary.weight > 0:
        raise ValueError("sample_weight is zero for every row: nothing to fit.")
    if summary.weighted and summary.max_weight < _TINY:
        raise ValueError(f"sample_weight is at most {summary.max_weight:.3g}, below float64's "
                         f"normal range: its products with the responsibilities underflow. "
                         f"Scale the weights up (only their ratios matter).")
    n_usable = int(summary.n_positive_rows) - int(summary.n_empty)
    if n_usable <= 0:
        raise ValueError(_no_usable_row(summary, parent))
    observed = summary.feature_weights > 0
    if not observed.all() and parent is None:
        raise ValueError(unobserved_message(np.flatnonzero(~observed), summary.weighted))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if summary.feature_weight is None:
            var = summary.m2 / summary.weight
        else:
            var = np.where(observed, summary.m2 / np.where(observed, summary.feature_weights,
                                                           1.0), 0.0)
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
    low = np.asarray(summary.min, np.float64)
    high = np.asarray(summary.max, np.float64)
    if not observed.all():  # a sample's: the data's own summaries of those features
        shift, var, low, high = (np.where(observed, mine, theirs) for mine, theirs in (
            (shift, parent.shift), (var, parent.var), (low, parent.min), (high, parent.max)))
    return DataSummaries(int(summary.n_rows), shift, var, low, high, n_usable,
                         int(summary.n_missing), int(summary.n_incomplete),
                         int(summary.n_empty), int(summary.n_nan))


def _no_usable_row(summary: BlockSummary, parent) -> str:
    """Why no row can be learnt from: every row (of positive weight) is empty."""
    if parent is not None:
        return (f"None of the {summary.n_positive_rows} rows sampled (or held out) from the "
                f"data has an observed value (every value is NaN): sample (or hold out) more "
                f"rows.")
    if summary.weighted:
        return ("Every row of positive sample_weight has no observed value (every value is "
                "NaN): nothing to fit.")
    return "Every row of X has no observed value (every value is NaN): nothing to fit."


class Engine(abc.ABC):
    """The engine contract: what the fit program needs from where the rows live.

    An engine is built over validated data, runs its summary pass at once (``summaries``),
    and is used as a context manager: leaving ``with engine:`` releases what it holds
    (:meth:`close`). Every random choice of rows is made by global row index and a seed
    (:mod:`~dask_biglearn.kernels.sampling`), so an engine's rows never depend on the chunking.

    Parameters
    ----------
    X : array of shape (n_samples, n_features) or (n_samples, n_features + 1)
        The data (with the rows' weights as a last column when ``weighted``).
    weighted : bool, default=False
        Whether each row carries its weight (``sample_weight``) as one more, last, column:
        every pass is weighted and the rows :meth:`take_rows` and :meth:`take_sample` return
        keep it.
    compiled : bool or None, default=None
        Run the compiled kernels (None: :func:`dask_biglearn.config.compiled_kernels`, read
        once here and sent to the workers in every spec).
    block_rows : int or None, default=None
        Rows per sub-block of the kernels (None:
        :func:`~dask_biglearn.kernels.features.default_block_rows`).

    Attributes
    ----------
    n_samples : int
        How many rows the data holds.
    n_features : int
        How many features each row has.
    weighted : bool
    compiled : bool
    float32_products : bool
        Whether passes run their products in float32 (float32 data, see
        :func:`dask_biglearn.config.float32_products`; sent to the workers in every spec).
    block_rows : int
    summaries : DataSummaries
        From the summary pass; ``summaries.shift`` is the centre of every pass's moments.
    n_data_passes : int
        How many times the engine has read the whole data so far (the summary pass, row
        samples, and every batch of passes).
    missing : bool
        Whether the data has missing values (NaN): ``summaries.missing``, what every pass's
        spec says, so that the kernels take the path of incomplete rows only then.
    """

    def __init_subclass__(cls, **kwargs):
        # An engine's methods of the contract borrow its docstrings (as dask's derived_from
        # borrows NumPy's): the contract is written here only.
        super().__init_subclass__(**kwargs)
        for name in ("run_passes", "run_pass", "take_rows", "take_sample", "sample_engine",
                     "close"):
            own = cls.__dict__.get(name)
            if own is not None and not getattr(own, "__doc__", None):
                own.__doc__ = getattr(Engine, name).__doc__

    def __init__(self, X, *, weighted: bool = False, compiled: bool | None = None,
                 block_rows: int | None = None):
        self.weighted = bool(weighted)
        self.n_samples = int(X.shape[0])
        self.n_features = int(X.shape[1]) - self.weighted
        self.compiled = compiled_kernels() if compiled is None else bool(compiled)
        self.float32_products = float32_products(X.dtype)
        self.block_rows = block_rows or default_block_rows(self.n_features)
        self.n_data_passes = 0
        self.rows_read = 0  # by mini-batches, beyond the full passes

    @property
    def missing(self) -> bool:
        """Whether the data has missing values (NaN): from the summary pass."""
        return bool(self.summaries.missing)

    @abc.abstractmethod
    def run_passes(self, specs) -> list[SuffStats]:
        """Run several passes from one read of the data.

        The fits that advance together (restarts, candidates of a sweep) each get their
        statistics from the same read of the rows; it counts once in ``n_data_passes``.

        Parameters
        ----------
        specs : list of PassSpec
            The passes to run (:class:`~dask_biglearn.kernels.passes.PassSpec`).

        Returns
        -------
        stats : list of SuffStats
            One per spec, in order, over all the data's rows.
        """

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

    @abc.abstractmethod
    def take_rows(self, indices) -> np.ndarray:
        """Return rows by their global index.

        Parameters
        ----------
        indices : array-like of int
            Sorted global row indices.

        Returns
        -------
        rows : ndarray of shape (len(indices), n_columns)
            The rows, in the order of ``indices`` (with their weight, last, when
            ``weighted``).
        """

    @abc.abstractmethod
    def take_sample(self, size: int, seed: int) -> np.ndarray:
        """Return a row sample chosen by the rows' global index and ``seed``, into this
        process: one read of the data.

        The ``size`` rows of smallest sampling key (:mod:`~dask_biglearn.kernels.sampling`):
        the same whatever the chunking.

        Parameters
        ----------
        size : int
            Rows to take (all, if there are fewer).
        seed : int
            Chooses the rows, by their global index.

        Returns
        -------
        rows : ndarray of shape (min(size, n_samples), n_columns)
            The sampled rows, in index order, float64 (with their weight, last, when
            ``weighted``).
        """

    @abc.abstractmethod
    def sample_engine(self, n_rows: int, seed: int):
        """A context manager giving an engine over a row sample.

        The sample holds the rows :meth:`take_sample` draws. The engine decides where the
        sample lives (this process, or the workers of a cluster) and releases it when the
        context ends.

        Parameters
        ----------
        n_rows : int
            Rows of the sample.
        seed : int
            Chooses the rows, by their global index.

        Yields
        ------
        engine : Engine
            An engine over the sample (the method is a context manager: leaving its
            ``with`` block releases the sample).
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release what the engine holds (cached features, persisted data, actors, copies).

        Leaving ``with engine:`` calls it.
        """

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False
