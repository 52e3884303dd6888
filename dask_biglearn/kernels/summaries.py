"""The data summaries of a summary pass: count, finiteness, mean, variance, min and max.

A block's summary is taken in sub-blocks (bounded temporaries) with two-pass moments, and
summaries combine pairwise with the update of Chan, Golub and LeVeque (1979), so the result
is accurate whatever the number of rows and the offset of the data.
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
    """

    n_rows: int
    finite: bool
    mean: np.ndarray
    m2: np.ndarray
    min: np.ndarray
    max: np.ndarray


def _empty(n_features: int) -> BlockSummary:
    zeros = np.zeros(n_features)
    return BlockSummary(0, True, zeros, zeros, np.full(n_features, np.inf),
                        np.full(n_features, -np.inf))


def _combine_two(a: BlockSummary, b: BlockSummary) -> BlockSummary:
    if a.n_rows == 0 or b.n_rows == 0:
        nonempty = a if b.n_rows == 0 else b
        return BlockSummary(nonempty.n_rows, a.finite and b.finite, nonempty.mean,
                            nonempty.m2, np.minimum(a.min, b.min), np.maximum(a.max, b.max))
    n = a.n_rows + b.n_rows
    delta = b.mean - a.mean
    with np.errstate(over="ignore", invalid="ignore"):
        mean = a.mean + delta * (b.n_rows / n)
        m2 = a.m2 + b.m2 + delta**2 * (a.n_rows * b.n_rows / n)
    return BlockSummary(n, a.finite and b.finite, mean, m2, np.minimum(a.min, b.min),
                        np.maximum(a.max, b.max))


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


def summarize_blocks(blocks, block_rows: int = SUMMARY_BLOCK_ROWS) -> BlockSummary:
    """The summary of the rows of ``blocks``.

    Each block is summarised in sub-blocks of ``block_rows`` rows (two-pass moments, bounded
    temporaries), and the sub-block summaries are combined.

    Parameters
    ----------
    blocks : list of ndarray of shape (n_rows_i, n_features)
        Chunks of the data, any real dtype.
    block_rows : int, default=SUMMARY_BLOCK_ROWS
        Rows per sub-block.

    Returns
    -------
    BlockSummary
        The summary of all rows.
    """
    parts = []
    for X in blocks:
        for start, stop in row_blocks(X.shape[0], block_rows):
            sub = np.asarray(X[start:stop], dtype=np.float64)
            finite = bool(np.isfinite(sub).all())
            with np.errstate(over="ignore", invalid="ignore"):
                mean = sub.mean(axis=0)
                m2 = ((sub - mean) ** 2).sum(axis=0)
            parts.append(BlockSummary(stop - start, finite, mean, m2, sub.min(axis=0),
                                      sub.max(axis=0)))
    if not parts:
        return _empty(blocks[0].shape[1] if blocks else 0)
    return combine_summaries(parts)
