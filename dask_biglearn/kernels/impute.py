"""Imputing a block's missing values (NaN) under a fitted mixture: conditional means or draws.

A row with missing coordinates ``M`` and observed ones ``O`` is completed under the mixture
through its observed values only. Each component ``k`` gives the row's conditional Gaussian on
``M`` (:func:`dask_biglearn.kernels.missing._conditionals`: mean ``xhat_kM = c_M -
L_MM^-1 w``, covariance ``L_MM^-1``, with ``L`` the component's precision), and the row's
responsibilities ``r_k(x_O)`` come from the log-densities of its observed values (what
``predict_proba`` gives). Then

.. math::

    E[x_M \\mid x_O] = \\sum_k r_k(x_O) \\, \\hat x_{kM},

the conditional mean (:func:`impute_block`), or a draw from the conditional distribution: a
component ``k ~ r(x_O)``, then ``x_M ~ N(xhat_kM, L_MM^-1)`` (multiple imputation). A row
with nothing observed gets the mixture's mean (or a draw from the mixture); observed values
are returned unchanged, in the block's dtype.

A block is worked through in the scoring kernels' sub-blocks of rows
(:mod:`dask_biglearn.kernels.scoring`), and within a sub-block only its incomplete rows are
scored, one group of rows that miss the same coordinates at a time: a task holds its chunk,
its output and a sub-block's temporaries. A draw depends on the row's global index and a
seed only (:func:`row_uniforms`, hashed as :mod:`~dask_biglearn.kernels.sampling` hashes row
keys), never on the chunking or on which worker computes it.
"""

from __future__ import annotations

import numpy as np

from .features import row_blocks
from .missing import _conditionals, _patterns, filled
from .sampling import _GOLDEN, _splitmix64, row_keys
from .scoring import (
    Workspace,
    _gaussians,
    checked_block,
    component_terms,
    sub_block_log_prob,
    sub_block_rows,
)

__all__ = ["impute_block", "impute_chunk", "row_uniforms", "uniforms_to_normals"]

#: Bytes at most of a group's ``n_components x rows x n_features`` temporaries (the centred
#: rows per component, the completions): a group of rows that miss the same coordinates is
#: completed in pieces of at most this size, whatever the number of components.
GROUP_BYTES = 8 * 2**20


def row_uniforms(index: np.ndarray, seed: int, n_uniforms: int) -> np.ndarray:
    """Uniform numbers in ``(0, 1)`` of rows, by their global index and a seed.

    Row ``i`` gets the stream ``splitmix64(key_i + t * golden)``, ``t = 1 .. n_uniforms``, of
    its key ``key_i = hash(seed, i)`` (:func:`~dask_biglearn.kernels.sampling.row_keys`): the
    same numbers whatever block the row is in.

    Parameters
    ----------
    index : ndarray of int of shape (n_rows,)
        Global row indices (non-negative).
    seed : int
        Seed of the draws, in ``[0, 2**64)``.
    n_uniforms : int
        Numbers per row.

    Returns
    -------
    uniforms : ndarray of shape (n_rows, n_uniforms)
        float64, each of the form ``(j + 1/2) / 2**53``: never 0 nor 1.
    """
    index = np.asarray(index, dtype=np.int64)
    if len(index) == 0:
        return np.empty((0, n_uniforms))
    first = int(index.min())
    keys = row_keys(first, int(index.max()) + 1, seed)[index - first]
    with np.errstate(over="ignore"):
        steps = np.arange(1, n_uniforms + 1, dtype=np.uint64) * _GOLDEN
        bits = _splitmix64(keys[:, None] + steps[None, :])
    return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


def uniforms_to_normals(uniforms: np.ndarray) -> np.ndarray:
    """Standard normal numbers from pairs of uniform ones (Box-Muller).

    Parameters
    ----------
    uniforms : ndarray of shape (n_rows, 2 * n_normals)
        Uniform in ``(0, 1)``: column ``2 j`` and ``2 j + 1`` make normal ``j``.

    Returns
    -------
    normals : ndarray of shape (n_rows, n_normals)
        ``sqrt(-2 log u) cos(2 pi v)`` of each pair ``(u, v)``.
    """
    u, v = uniforms[:, 0::2], uniforms[:, 1::2]
    return np.sqrt(-2.0 * np.log(u)) * np.cos(2.0 * np.pi * v)


def _responsibilities(log_prob: np.ndarray) -> np.ndarray:
    """Rows of ``log_prob`` (``(r, K)``) normalised to probabilities, in place."""
    log_prob -= log_prob.max(axis=1, keepdims=True)
    with np.errstate(under="ignore"):
        np.exp(log_prob, out=log_prob)
    log_prob /= log_prob.sum(axis=1, keepdims=True)
    return log_prob


def _draw(resp, completed, conditional, uniforms):
    """A draw of the missing values of each row: a component from its responsibilities
    (``resp``, ``(r, K)``), then its conditional Gaussian (``completed``, ``(K, r, q)``, and
    ``conditional``, ``(K, q, q)``); ``uniforms`` ``(r, 1 + 2 q)`` drive it."""
    cumulative = np.cumsum(resp, axis=1)
    cumulative /= cumulative[:, -1:]
    k, n = resp.shape[1], resp.shape[0]
    chosen = np.minimum((uniforms[:, :1] > cumulative).sum(axis=1), k - 1)
    normals = uniforms_to_normals(uniforms[:, 1:])
    values = np.empty(completed.shape[1:])
    rows = np.arange(n)
    for j in np.unique(chosen):
        mine = rows[chosen == j]
        # The conditional covariance L_MM^-1 is positive definite up to rounding:
        # symmetrised first, its Cholesky factor turns the normals into the draw.
        factor = np.linalg.cholesky(0.5 * (conditional[j] + conditional[j].T))
        values[mine] = completed[j, mine] + normals[mine] @ factor.T
    return values


def impute_block(X, weights, means, precisions_cholesky, covariance_type="full", seed=None,
                 offset=0, *, block_rows: int | None = None) -> np.ndarray:
    """The rows of a block with each missing value (NaN) imputed under the mixture.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The block, any float dtype; NaN marks a missing value.
    weights : ndarray of shape (n_components,)
        Mixture weights.
    means : ndarray of shape (n_components, n_features)
        Component means.
    precisions_cholesky : ndarray
        Upper-triangular Cholesky factors of the precisions, in scikit-learn's shape for
        ``covariance_type``.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
    seed : int, optional
        None: each missing value gets its conditional mean ``E[x_M | x_O]``. An int: a draw
        from the conditional distribution instead (a component from the row's
        responsibilities, then its conditional Gaussian), driven by :func:`row_uniforms` of
        the rows' global indices and this seed.
    offset : int, default=0
        Global index of the block's first row (the draws of a row depend on it).
    block_rows : int, optional
        Rows per sub-block (default:
        :func:`~dask_biglearn.kernels.scoring.sub_block_rows`).

    Returns
    -------
    X_imputed : ndarray of shape (n_samples, n_features)
        A new array of ``X``'s dtype: its observed values unchanged, its missing ones
        imputed (computed in float64).
    """
    X = np.asarray(X)
    out = np.array(X, copy=True)
    params = (weights, means, precisions_cholesky, covariance_type)
    rows = sub_block_rows(X.shape[1], block_rows)
    terms = model = fill = work = None
    for start, stop in row_blocks(X.shape[0], rows):
        nan = np.isnan(X[start:stop])
        incomplete = np.flatnonzero(nan.any(axis=1))
        if not len(incomplete):
            continue
        if terms is None:
            terms = component_terms(*params)
            model, fill = _gaussians(*params)
            work = Workspace(min(rows, X.shape[0]))
        holes = nan[incomplete]
        sub = filled(X[start:stop][incomplete], holes, fill)
        k = len(terms.offset)
        log_prob = sub_block_log_prob(sub, terms, work.get("log_prob", len(incomplete), k),
                                      work)
        Y = sub - fill
        for group, M, _ in _patterns(holes):
            targets = start + incomplete[group]
            piece = max(1, GROUP_BYTES // (8 * k * X.shape[1]))
            for first in range(0, len(group), piece):
                mine = group[first:first + piece]
                out[targets[first:first + piece, None], M] = _complete(
                    Y[mine], M, model, log_prob[mine], fill,
                    None if seed is None else (seed, offset + targets[first:first + piece]))
    return out


def _complete(Y, M, model, log_prob, fill, draw):
    """The imputed values on ``M`` of rows ``Y`` (filled, centred) that miss ``M``: their
    conditional means, or (``draw = (seed, global indices)``) a draw."""
    corrections, completed, conditional = _conditionals(Y, M, model)
    resp = _responsibilities(log_prob + corrections.T)
    if draw is None:
        values = np.einsum("rk,krq->rq", resp, completed)
    else:
        seed, index = draw
        values = _draw(resp, completed, conditional, row_uniforms(index, seed, 1 + 2 * len(M)))
    return values + fill[M]


def impute_chunk(X, weights, means, precisions_cholesky, covariance_type="full", seed=None,
                 *, block_rows: int | None = None, block_info=None) -> np.ndarray:
    """:func:`impute_block` of one chunk of a Dask array (what ``map_blocks`` runs), after
    checking it for infinity.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        The chunk.
    weights, means, precisions_cholesky, covariance_type, seed
        As :func:`impute_block` takes them.
    block_rows : int, optional
        Rows per sub-block.
    block_info : dict, optional
        Dask's description of the chunk: the global index of its first row (0 without it).

    Returns
    -------
    X_imputed : ndarray of shape (n_samples, n_features)

    Raises
    ------
    ValueError
        If the chunk contains infinity.
    """
    offset = 0 if block_info is None else int(block_info[0]["array-location"][0][0])
    return checked_block(X, impute_block, weights, means, precisions_cholesky,
                         covariance_type, seed, offset, block_rows=block_rows)
