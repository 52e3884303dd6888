"""The data summaries of a summary pass: count, finiteness, mean, variance, min and max.

A block's summary is taken in sub-blocks (bounded temporaries) with two-pass moments, and
summaries combine pairwise with the update of Chan, Golub and LeVeque (1979), so the result
is accurate whatever the number of rows and the offset of the data.

Weighted data (``sample_weight``) travels as one more column, the last, of every block: its
summary is of the weighted rows (weighted mean and variance, min and max over the rows of
positive weight) and records the weights' sum, smallest and largest value and how many rows
have positive weight, so that the summary pass also checks the weights.
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

    When ``finite`` is False the other fields are meaningless.

    Parameters
    ----------
    n_rows : int
        How many rows are summarised.
    finite : bool
        False when any value is NaN or infinite.
    mean : ndarray of shape (n_features,)
        Per-feature mean, float64.
    m2 : ndarray of shape (n_features,)
        Per-feature sum of squared deviations from ``mean``, float64.
    min : ndarray of shape (n_features,)
        Per-feature minimum, float64 (``inf`` with no rows).
    max : ndarray of shape (n_features,)
        Per-feature maximum, float64 (``-inf`` with no rows).
    weight : float
        The rows' total weight (``n_rows`` without weights): ``mean`` and ``m2`` are
        weighted by the rows' weights.
    min_weight : float
        The smallest weight (``inf`` with no rows; 1 without weights).
    weighted : bool
        Whether the rows carried weights (a last column).
    max_weight : float, default=1.0
        The largest weight (``-inf`` with no rows; 1 without weights).
    n_positive : int or None, default=None
        How many rows have a positive weight (None: ``n_rows``, as without weights).
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

    @property
    def n_positive_rows(self) -> int:
        """How many rows have a positive weight (every row without weights)."""
        return self.n_rows if self.n_positive is None else self.n_positive


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
               "n_positive": a.n_positive_rows + b.n_positive_rows}
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
        Chunks of the data, any real dtype.
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
    if not finite or not total > 0 or len(kept) == 0:
        empty = _empty(X.shape[1], True)
        return BlockSummary(len(sub), finite, empty.mean, empty.m2, empty.min, empty.max,
                            weight=max(total, 0.0) if finite else 0.0, **weights)
    with np.errstate(over="ignore", invalid="ignore"):
        mean = (w @ X) / total
        m2 = w @ (X - mean) ** 2
    return BlockSummary(len(sub), finite, mean, m2, kept.min(axis=0), kept.max(axis=0),
                        weight=total, **weights)
