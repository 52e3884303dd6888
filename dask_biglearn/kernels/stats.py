"""The sufficient statistics of a projected EM pass, and how parts of a pass add up."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SuffStats:
    """Sufficient statistics of one projected EM pass (or of part of one).

    All arrays are float64. Moments are shifted: they are moments of ``y - shift_y``. A
    log-likelihood-only pass leaves the moments empty (``n_dims = 0``).

    Parameters
    ----------
    resp_sum : ndarray of shape (n_components,)
        ``sum_n r_nk``.
    first_moment : ndarray of shape (n_components, n_dims)
        ``sum_n r_nk (y_n - shift_y)``.
    second_moment : ndarray of shape (n_components, n_dims, n_dims) or (n_components, n_dims)
        ``sum_n r_nk (y_n - shift_y)(y_n - shift_y)^T``; only its diagonal for a diagonal
        pass (:class:`~dask_biglearn.kernels.passes.PassSpec` ``diagonal``).
    log_lik_sum : float
        ``sum_n log sum_k pi_k N(y_n | mu~_k, S~_k)``.
    n_rows : int or float
        How many rows the statistics cover (their total weight, for weighted rows): the
        M-step divides by it.
    """

    resp_sum: np.ndarray
    first_moment: np.ndarray
    second_moment: np.ndarray
    log_lik_sum: float
    n_rows: int


def combine_stats(parts) -> SuffStats:
    """Sum a list of :class:`SuffStats` (or return a single one unchanged).

    Addition is associative and commutative, which is all a tree reduction needs.

    Parameters
    ----------
    parts : SuffStats or iterable of SuffStats
        Statistics of disjoint sets of rows, for the same pass.

    Returns
    -------
    SuffStats
        Their sum.
    """
    if isinstance(parts, SuffStats):
        return parts
    parts = list(parts)
    if len(parts) == 1:
        return parts[0]
    return SuffStats(
        np.sum([p.resp_sum for p in parts], axis=0),
        np.sum([p.first_moment for p in parts], axis=0),
        np.sum([p.second_moment for p in parts], axis=0),
        float(sum(p.log_lik_sum for p in parts)),
        sum(p.n_rows for p in parts),
    )


def combine_stat_lists(parts) -> list[SuffStats]:
    """Sum lists of statistics element by element (the partial results of batched passes).

    Parameters
    ----------
    parts : iterable of list of SuffStats
        For each set of rows, one statistics per pass; all lists have the same length.

    Returns
    -------
    list of SuffStats
        For each pass, the sum over the sets of rows.
    """
    parts = list(parts)
    return [combine_stats(column) for column in zip(*parts, strict=True)]
