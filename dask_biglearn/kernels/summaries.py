"""The data summaries of a summary pass: count, finiteness, mean, variance, min and max.

A block's summary is taken in sub-blocks (bounded temporaries) with two-pass moments, and
summaries combine pairwise with the update of Chan, Golub and LeVeque (1979), so the result
is accurate whatever the number of rows and the offset of the data.

Weighted data (``sample_weight``) travels as one more column, the last, of every block: its
summary is of the weighted rows (weighted mean and variance, min and max over the rows of
positive weight) and records the weights' sum, smallest and largest value and how many rows
have positive weight, so that the summary pass also checks the weights.

NaN in a feature marks a missing value: each feature's mean, variance, min and max are those
of its observed values (with the weights of the rows that observe it, whose total the summary
keeps per feature), and the summary counts the missing values, the incomplete rows (at least
one NaN) and the empty rows (every value NaN) among the rows of positive weight. Infinity
stays an error (``finite``), and so does a weight that is NaN or infinite
(``weights_finite``): the weights are never missing. A block with no NaN takes the same
arithmetic as before missing values were allowed, so complete data's summary is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .features import row_blocks

#: Rows per sub-block of the summary kernel: bounds its float64 temporaries.
SUMMARY_BLOCK_ROWS = 65536


@dataclass(frozen=True)
class BlockSummary:
    """Summary of some rows of the data.

    When ``finite`` or ``weights_finite`` is False the other fields are meaningless.

    Parameters
    ----------
    n_rows : int
        How many rows are summarised.
    finite : bool
        False when any value of the features is infinite (NaN is a missing value).
    mean : ndarray of shape (n_features,)
        Per-feature mean of the observed values, float64 (0 for a feature with none).
    m2 : ndarray of shape (n_features,)
        Per-feature sum of squared deviations of the observed values from ``mean``, float64.
    min : ndarray of shape (n_features,)
        Per-feature minimum of the observed values, float64 (``inf`` with none).
    max : ndarray of shape (n_features,)
        Per-feature maximum of the observed values, float64 (``-inf`` with none).
    weight : float
        The rows' total weight (``n_rows`` without weights), rows with missing values
        included.
    min_weight : float
        The smallest weight (``inf`` with no rows; 1 without weights).
    weighted : bool
        Whether the rows carried weights (a last column).
    max_weight : float, default=1.0
        The largest weight (``-inf`` with no rows; 1 without weights).
    n_positive : int or None, default=None
        How many rows have a positive weight (None: ``n_rows``, as without weights), empty
        rows included.
    weights_finite : bool, default=True
        False when a weight is NaN or infinite.
    feature_weight : ndarray of shape (n_features,) or None, default=None
        Per feature, the total weight of the rows that observe it: ``mean`` and ``m2`` are
        weighted by those rows' weights. None: ``weight`` for every feature (no value is
        missing).
    n_missing : int, default=0
        Missing values (NaN) in the rows of positive weight.
    n_incomplete : int, default=0
        Rows of positive weight with at least one missing value.
    n_empty : int, default=0
        Rows of positive weight with no observed value (every value NaN).
    n_nan : int, default=0
        Missing values in all the rows, those of zero weight included (whether a pass meets
        NaN at all).
    """

    n_rows: int
    finite: bool
    mean: np.ndarray
    m2: np.ndarray
    min: np.ndarray
    max: np.ndarray
    weight: float
    min_weight: float
    weighted: bool
    max_weight: float = 1.0
    n_positive: int | None = None
    weights_finite: bool = True
    feature_weight: np.ndarray | None = None
    n_missing: int = 0
    n_incomplete: int = 0
    n_empty: int = 0
    n_nan: int = 0

    @property
    def n_positive_rows(self) -> int:
        """How many rows have a positive weight (every row without weights)."""
        return self.n_rows if self.n_positive is None else self.n_positive

    @property
    def feature_weights(self) -> np.ndarray:
        """Per feature, the total weight of the rows that observe it, float64."""
        if self.feature_weight is None:
            return np.full(len(self.mean), float(self.weight))
        return self.feature_weight


def _empty(n_features: int, weighted: bool) -> BlockSummary:
    zeros = np.zeros(n_features)
    return BlockSummary(0, True, zeros, zeros, np.full(n_features, np.inf),
                        np.full(n_features, -np.inf), 0.0, np.inf, weighted, -np.inf, 0)


def _combine_two(a: BlockSummary, b: BlockSummary) -> BlockSummary:
    n_rows = a.n_rows + b.n_rows
    finite, weighted = a.finite and b.finite, a.weighted or b.weighted
    low, high = np.minimum(a.min, b.min), np.maximum(a.max, b.max)
    weights = {"min_weight": min(a.min_weight, b.min_weight),
               "weighted": weighted, "max_weight": max(a.max_weight, b.max_weight),
               "n_positive": a.n_positive_rows + b.n_positive_rows,
               "weights_finite": a.weights_finite and b.weights_finite,
               "n_missing": a.n_missing + b.n_missing,
               "n_incomplete": a.n_incomplete + b.n_incomplete,
               "n_empty": a.n_empty + b.n_empty, "n_nan": a.n_nan + b.n_nan}
    if a.feature_weight is not None or b.feature_weight is not None:
        return _combine_by_feature(a, b, n_rows, finite, low, high, weights)
    if a.weight == 0 or b.weight == 0:
        nonempty = a if b.weight == 0 else b
        return BlockSummary(n_rows, finite, nonempty.mean, nonempty.m2, low, high,
                            weight=a.weight + b.weight, **weights)
    n = a.weight + b.weight
    delta = b.mean - a.mean
    with np.errstate(over="ignore", invalid="ignore"):
        mean = a.mean + delta * (b.weight / n)
        # a.weight * (b.weight / n), not (a.weight * b.weight) / n: huge weights would
        # overflow the product although the share is at most a.weight.
        m2 = a.m2 + b.m2 + delta**2 * (a.weight * (b.weight / n))
    return BlockSummary(n_rows, finite, mean, m2, low, high, weight=n, **weights)


def _combine_by_feature(a, b, n_rows, finite, low, high, weights) -> BlockSummary:
    """The combination of Chan et al. feature by feature, each with the weights of its own
    observed rows (some rows miss some values)."""
    wa, wb = a.feature_weights, b.feature_weights
    n = wa + wb
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        share = np.where(n > 0, wb / np.where(n > 0, n, 1.0), 0.0)
        delta = b.mean - a.mean
        mean = a.mean + delta * share
        m2 = a.m2 + b.m2 + delta**2 * (wa * share)
    # A side that observes nothing of a feature leaves the other's exactly.
    mean = np.where(wb == 0, a.mean, np.where(wa == 0, b.mean, mean))
    m2 = np.where(wb == 0, a.m2, np.where(wa == 0, b.m2, m2))
    return BlockSummary(n_rows, finite, mean, m2, low, high, weight=a.weight + b.weight,
                        feature_weight=n, **weights)


def combine_summaries(parts) -> BlockSummary:
    """Combine summaries of disjoint sets of rows (associative, so any tree will do).

    Parameters
    ----------
    parts : BlockSummary or iterable of BlockSummary
        Summaries of disjoint sets of rows; a single summary is returned as is.

    Returns
    -------
    BlockSummary
        The summary of the union of the rows.
    """
    if isinstance(parts, BlockSummary):
        return parts
    parts = list(parts)
    total = parts[0]
    for part in parts[1:]:
        total = _combine_two(total, part)
    return total


def summarize_blocks(blocks, block_rows: int = SUMMARY_BLOCK_ROWS,
                     weighted: bool = False) -> BlockSummary:
    """The summary of the rows of ``blocks``.

    Each block is summarised in sub-blocks of ``block_rows`` rows (two-pass moments, bounded
    temporaries), and the sub-block summaries are combined.

    Parameters
    ----------
    blocks : list of ndarray of shape (n_rows_i, n_features)
        Chunks of the data, any real dtype (NaN marks a missing value).
    block_rows : int, default=SUMMARY_BLOCK_ROWS
        Rows per sub-block.
    weighted : bool, default=False
        The last column of every block is the rows' weights (not a feature).

    Returns
    -------
    BlockSummary
        The summary of all rows (of the features only, weighted, when ``weighted``).
    """
    parts = []
    for X in blocks:
        for start, stop in row_blocks(X.shape[0], block_rows):
            parts.append(_summary(np.asarray(X[start:stop], dtype=np.float64), weighted))
    if not parts:
        n_columns = blocks[0].shape[1] if blocks else int(weighted)
        return _empty(n_columns - int(weighted), weighted)
    return combine_summaries(parts)


def _summary(sub: np.ndarray, weighted: bool) -> BlockSummary:
    """The summary of one sub-block (float64)."""
    finite = bool(np.isfinite(sub).all())
    if not finite:  # missing values, or an error (infinity, a weight that is not finite)
        return _summary_with_holes(sub, weighted)
    if not weighted:
        with np.errstate(over="ignore", invalid="ignore"):
            mean = sub.mean(axis=0)
            m2 = ((sub - mean) ** 2).sum(axis=0)
        return BlockSummary(len(sub), finite, mean, m2, sub.min(axis=0), sub.max(axis=0),
                            float(len(sub)), 1.0, False)
    X, w = sub[:, :-1], sub[:, -1]
    with np.errstate(over="ignore", invalid="ignore"):
        total = float(w.sum())
    kept = X[w > 0]
    weights = {"min_weight": float(w.min()), "weighted": True, "max_weight": float(w.max()),
               "n_positive": len(kept)}
    if not total > 0 or len(kept) == 0:
        empty = _empty(X.shape[1], True)
        return BlockSummary(len(sub), finite, empty.mean, empty.m2, empty.min, empty.max,
                            weight=max(total, 0.0), **weights)
    with np.errstate(over="ignore", invalid="ignore"):
        mean = (w @ X) / total
        m2 = w @ (X - mean) ** 2
    return BlockSummary(len(sub), finite, mean, m2, kept.min(axis=0), kept.max(axis=0),
                        weight=total, **weights)


def _summary_with_holes(sub: np.ndarray, weighted: bool) -> BlockSummary:
    """The summary of one sub-block that holds a value that is not finite: NaN in the
    features are missing values (each feature summarised over its observed rows); infinity,
    or a weight that is NaN or infinite, marks the summary as unusable."""
    X = sub[:, :-1] if weighted else sub
    w = sub[:, -1] if weighted else np.ones(len(sub))
    nan = np.isnan(X)
    finite = bool((nan | np.isfinite(X)).all())
    weights_finite = bool(np.isfinite(w).all())
    positive = w > 0
    weights = {"min_weight": float(w.min()) if weighted else 1.0, "weighted": weighted,
               "max_weight": float(w.max()) if weighted else 1.0,
               "n_positive": int(positive.sum()), "weights_finite": weights_finite}
    if not (finite and weights_finite):
        empty = _empty(X.shape[1], weighted)
        return BlockSummary(len(sub), finite, empty.mean, empty.m2, empty.min, empty.max,
                            weight=0.0, **weights)
    observed = ~nan
    counted = nan[positive]
    per_row = counted.sum(axis=1)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        total = float(w.sum())
        feature_weight = w @ observed
        values = np.where(observed, X, 0.0)
        mean = np.where(feature_weight > 0, (w @ values) / np.where(feature_weight > 0,
                                                                   feature_weight, 1.0), 0.0)
        m2 = w @ np.where(observed, X - mean, 0.0) ** 2
    seen = observed & positive[:, None]
    return BlockSummary(len(sub), finite, mean, m2, np.where(seen, X, np.inf).min(axis=0),
                        np.where(seen, X, -np.inf).max(axis=0), weight=max(total, 0.0),
                        feature_weight=np.where(feature_weight > 0, feature_weight, 0.0),
                        n_missing=int(per_row.sum()), n_incomplete=int((per_row > 0).sum()),
                        n_empty=int((per_row == X.shape[1]).sum()), n_nan=int(nan.sum()),
                        **weights)


def unobserved_message(columns, weighted: bool = False) -> str:
    """The one line that refuses columns with no observed value, naming them.

    Parameters
    ----------
    columns : sequence of int
        The columns of ``X`` whose every value is NaN (at least one).
    weighted : bool, default=False
        Whether the rows carry weights: the columns have no observed value in the rows of
        positive weight.

    Returns
    -------
    message : str
    """
    columns = [int(c) for c in columns]
    where = " in the rows of positive sample_weight" if weighted else ""
    every = f"every value{' there' if weighted else ''} is NaN"
    if len(columns) == 1:
        return f"column {columns[0]} of X has no observed value{where} ({every}): drop it."
    named = ", ".join(str(c) for c in columns[:10])
    more = f" and {len(columns) - 10} more" if len(columns) > 10 else ""
    return f"columns {named}{more} of X have no observed value{where} ({every}): drop them."
