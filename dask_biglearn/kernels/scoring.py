"""Scoring a fitted model, one block at a time (``score_samples``, ``predict_proba``,
``predict``, the sum behind ``score``): the kernels that ``map_blocks`` runs on Dask input.

A block is scored in sub-blocks of rows, as the passes read it: each sub-block is converted
to float64 and its ``n_rows x n_components`` log-densities formed and reduced while they are
in cache, so a task holds its chunk, its output and a few sub-blocks' temporaries, never a
float64 copy of the chunk or an ``n_rows x n_components`` array it does not return. The
temporaries live in buffers allocated once per block (:class:`Workspace`): allocated afresh
for every sub-block, each would be an ``mmap`` and its page faults on a ``distributed`` worker,
whose nanny sets ``MALLOC_TRIM_THRESHOLD_`` (and so a fixed ``mmap`` threshold). The
driver chooses the sub-block size (the passes' own,
:func:`~dask_biglearn.kernels.features.default_block_rows`) and passes it in. Scoring is
NumPy only: a worker that only scores never loads the compiled kernels (numba).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .features import default_block_rows, row_blocks
from .missing import Gaussians, filled, log_prob_corrections, pass_holes

LOG_2PI = np.log(2.0 * np.pi)


class ComponentTerms(NamedTuple):
    """What the log-densities of every sub-block share, computed once per block.

    Parameters
    ----------
    covariance_type : {"full", "tied", "diag", "spherical"}
        Which of the fields below are set.
    offset : ndarray of shape (n_components,)
        ``log pi_k + log det U_k - D log(2 pi) / 2``, added to ``-|z|^2 / 2``.
    centre : ndarray of shape (n_features,) or None
        The means' centre, subtracted from the rows first (all types but ``"full"``): no
        cancellation for data far from 0.
    means : ndarray of shape (n_components, n_features)
        ``"full"``: the means; ``"tied"``: the whitened centred means ``(mu_k - c) U``;
        ``"diag"`` and ``"spherical"``: ``(mu_k - c) * prec_k``.
    factors : ndarray
        ``"full"``: the ``(K, D, D)`` factors ``U_k``; ``"tied"``: the ``(D, D)`` factor ``U``;
        ``"diag"`` and ``"spherical"``: the ``(K, D)`` precisions ``prec_k = U_k^2``.
    means_norms : ndarray of shape (n_components,) or None
        ``"diag"`` and ``"spherical"``: ``sum_d prec_kd (mu_kd - c_d)^2``.
    """

    covariance_type: str
    offset: np.ndarray
    centre: np.ndarray | None
    means: np.ndarray
    factors: np.ndarray
    means_norms: np.ndarray | None


def component_terms(weights, means, precisions_cholesky,
                    covariance_type: str = "full") -> ComponentTerms:
    """The per-component constants of the weighted log-densities (see :class:`ComponentTerms`).

    Parameters
    ----------
    weights : ndarray of shape (n_components,)
        Mixture weights ``pi_k`` (a zero weight gives ``-inf``).
    means : ndarray of shape (n_components, n_features)
        Component means.
    precisions_cholesky : ndarray
        Upper-triangular ``U_k`` with ``U_k U_k^T = Sigma_k^{-1}`` (scikit-learn's
        convention and shapes): ``(K, D, D)`` full, ``(D, D)`` tied, ``(K, D)`` diag,
        ``(K,)`` spherical.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"

    Returns
    -------
    terms : ComponentTerms
    """
    means = np.asarray(means, dtype=np.float64)
    k, d = means.shape
    with np.errstate(divide="ignore"):
        log_weights = np.log(weights)
    centre = means_norms = None
    if covariance_type in ("diag", "spherical"):
        prec = np.broadcast_to(np.reshape(precisions_cholesky, (k, -1)), (k, d)) ** 2
        log_det = 0.5 * np.log(prec).sum(axis=1)
        centre = means.mean(axis=0)
        mc = means - centre
        factors, means, means_norms = prec, mc * prec, np.einsum("kd,kd->k", mc * mc, prec)
    elif covariance_type == "tied":
        factors = precisions_cholesky
        log_det = np.full(k, np.log(np.diagonal(factors)).sum())
        centre = means.mean(axis=0)
        means = (means - centre) @ factors
    else:
        factors = precisions_cholesky
        log_det = np.log(np.diagonal(factors, axis1=1, axis2=2)).sum(axis=1)
    offset = log_weights + log_det - 0.5 * d * LOG_2PI
    return ComponentTerms(covariance_type, offset, centre, means, factors, means_norms)


class Workspace:
    """Float64 buffers for the sub-blocks of one block, each allocated on first use.

    Parameters
    ----------
    block_rows : int
        Rows of the largest sub-block.
    """

    def __init__(self, block_rows: int):
        self.block_rows = int(block_rows)
        self._buffers = {}

    def get(self, name: str, n_rows: int, n_columns: int) -> np.ndarray:
        """The buffer ``name`` as an uninitialised ``(n_rows, n_columns)`` float64 array.

        Parameters
        ----------
        name : str
            Which buffer; each name has its own, of ``block_rows x n_columns``.
        n_rows : int
            Rows of this sub-block (at most ``block_rows``).
        n_columns : int

        Returns
        -------
        buffer : ndarray of shape (n_rows, n_columns)
            A view, valid until the next call with the same name.
        """
        buffer = self._buffers.get(name)
        if buffer is None or buffer.shape[1] != n_columns:
            buffer = self._buffers[name] = np.empty((self.block_rows, n_columns))
        return buffer[:n_rows]


def sub_block_log_prob(X, terms: ComponentTerms, out: np.ndarray,
                       work: Workspace | None = None) -> np.ndarray:
    """Weighted log-densities of the rows of one sub-block, written into ``out``.

    ``"full"``: one matrix product per component of the centred rows (centred first: exact
    far from 0); ``"tied"``: the rows whitened once, then per component; ``"diag"`` and
    ``"spherical"``: ``O(N K D)``, two matrix products about the means' centre.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
        The sub-block, any real dtype (converted to float64 here, a sub-block at a time).
    terms : ComponentTerms
        The model's constants (:func:`component_terms`).
    out : ndarray of shape (n_rows, n_components)
        float64, written in full.
    work : Workspace, optional
        Buffers for the temporaries (default: new ones).

    Returns
    -------
    out : ndarray of shape (n_rows, n_components)
    """
    n, d = X.shape
    work = Workspace(n) if work is None else work
    if terms.covariance_type in ("diag", "spherical"):
        Xc = np.subtract(X, terms.centre, out=work.get("centred", n, d))
        scaled = np.multiply(Xc, Xc, out=work.get("scaled", n, d))
        np.matmul(scaled, terms.factors.T, out=out)
        np.multiply(Xc, 2.0, out=scaled)
        out -= np.matmul(scaled, terms.means.T, out=work.get("cross", n, out.shape[1]))
        out += terms.means_norms
    elif terms.covariance_type == "tied":
        Xc = np.subtract(X, terms.centre, out=work.get("centred", n, d))
        Y = np.matmul(Xc, terms.factors, out=work.get("whitened", n, d))
        z = work.get("z", n, d)
        for j in range(out.shape[1]):
            np.subtract(Y, terms.means[j], out=z)
            out[:, j] = np.einsum("ij,ij->i", z, z)
    else:
        Xc, z = work.get("centred", n, d), work.get("z", n, d)
        for j in range(out.shape[1]):
            np.subtract(X, terms.means[j], out=Xc)  # in float64, centred first
            np.matmul(Xc, terms.factors[j], out=z)
            out[:, j] = np.einsum("ij,ij->i", z, z)
    out *= -0.5
    out += terms.offset
    return out


def sub_block_rows(n_features: int, block_rows: int | None = None) -> int:
    """Rows per sub-block: ``block_rows``, or the passes' choice for data of ``n_features``.

    Parameters
    ----------
    n_features : int
        Columns of the data.
    block_rows : int, optional
        The caller's choice. Without it,
        :func:`~dask_biglearn.kernels.features.default_block_rows` (the estimators choose on
        the driver and pass the number to the workers).

    Returns
    -------
    block_rows : int
    """
    return int(block_rows) if block_rows is not None else default_block_rows(n_features)


def weighted_log_prob(X, weights, means, precisions_cholesky,
                      covariance_type: str = "full", *, block_rows: int | None = None,
                      out: np.ndarray | None = None) -> np.ndarray:
    """``log pi_k + log N(x_n | mu_k, Sigma_k)`` for every row of a block and component.

    Uses the Cholesky factors of the precisions, in scikit-learn's shape for the covariance
    type; never forms an ``N x K x D`` array, and works through the block in sub-blocks of
    ``block_rows`` rows (see :func:`sub_block_log_prob`), so that besides the output it holds
    only a sub-block's float64 rows and products.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The block (converted to float64 a sub-block at a time).
    weights : ndarray of shape (n_components,)
        Mixture weights ``pi_k`` (a zero weight gives ``-inf``).
    means : ndarray of shape (n_components, n_features)
        Component means.
    precisions_cholesky : ndarray
        Upper-triangular ``U_k`` with ``U_k U_k^T = Sigma_k^{-1}`` (scikit-learn's
        convention and shapes): ``(K, D, D)`` full, ``(D, D)`` tied, ``(K, D)`` diag,
        ``(K,)`` spherical.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
    block_rows : int, optional
        Rows per sub-block (default: :func:`sub_block_rows`).
    out : ndarray of shape (n_samples, n_components), optional
        float64 array to write into.

    Returns
    -------
    log_prob : ndarray of shape (n_samples, n_components)
        Weighted log-densities (``out`` when given).
    """
    X = np.asarray(X)
    if out is None:
        out = np.empty((X.shape[0], np.shape(means)[0]))
    for _ in _log_prob_by_sub_block(X, (weights, means, precisions_cholesky, covariance_type),
                                    block_rows, out):
        pass
    return out


def log_sum_exp_rows(a: np.ndarray, work: Workspace | None = None) -> np.ndarray:
    """Row-wise ``log sum exp``, stabilised by each row's maximum.

    Parameters
    ----------
    a : ndarray of shape (n_rows, n_columns)
        Values to reduce.
    work : Workspace, optional
        Buffers for the ``n_rows x n_columns`` temporary (default: a new array).

    Returns
    -------
    out : ndarray of shape (n_rows,)
        ``log sum_j exp(a[i, j])`` of each row.
    """
    row_max = a.max(axis=1, keepdims=True)
    shifted = np.subtract(a, row_max, out=None if work is None else work.get("shifted", *a.shape))
    with np.errstate(under="ignore"):
        np.exp(shifted, out=shifted)
        total = np.log(shifted.sum(axis=1, keepdims=True))
    total += row_max
    return total[:, 0]


def _log_prob_by_sub_block(X, params, block_rows, out=None):
    """Yield ``(start, stop, log_prob, work)`` for each sub-block of ``X``: its weighted
    log-densities, written into ``out[start:stop]`` when given, else into a buffer of
    ``work`` (valid until the next sub-block), and the block's :class:`Workspace`.

    A row with missing values (NaN) gets the log-densities of its observed coordinates: the
    sub-block is scored filled (each missing value replaced by the means' centre), then its
    incomplete rows corrected (:mod:`dask_biglearn.kernels.missing`); a row with no observed
    value gets the log-weights (the density of nothing is 1)."""
    terms = component_terms(*params)
    rows = sub_block_rows(X.shape[1], block_rows)
    work = Workspace(min(rows, X.shape[0]))
    k = len(terms.offset)
    model = fill = None
    for start, stop in row_blocks(X.shape[0], rows):
        target = work.get("log_prob", stop - start, k) if out is None else out[start:stop]
        sub = X[start:stop]
        nan = np.isnan(sub)
        if not nan.any():
            yield start, stop, sub_block_log_prob(sub, terms, target, work), work
            continue
        if model is None:
            model, fill = _gaussians(*params)
        sub = filled(sub, nan, fill)
        log_prob = sub_block_log_prob(sub, terms, target, work)
        holes = pass_holes(nan, None, keep_empty=True)
        log_prob[holes.rows] += log_prob_corrections(sub - fill, holes, model).T
        yield start, stop, log_prob, work


def _gaussians(weights, means, precisions_cholesky, covariance_type):
    """The model as the missing-value corrections read it, about the means' centre (the fill
    value of missing coordinates): ``(Gaussians, centre)``."""
    means = np.asarray(means, dtype=np.float64)
    k, d = means.shape
    centre = means.mean(axis=0)
    if covariance_type in ("diag", "spherical"):
        prec = np.broadcast_to(np.reshape(precisions_cholesky, (k, -1)), (k, d)) ** 2
        return Gaussians(np.ascontiguousarray(prec), means - centre, True), centre
    factors = np.asarray(precisions_cholesky, dtype=np.float64)
    precisions = factors @ np.swapaxes(factors, -1, -2)
    precisions = np.broadcast_to(precisions, (k, d, d))  # tied: one for all
    return Gaussians(np.ascontiguousarray(precisions), means - centre, False), centre


def score_block(X, weights, means, precisions_cholesky, covariance_type="full", *,
                block_rows: int | None = None) -> np.ndarray:
    """Log-density of each row of a block under the mixture (``score_samples``).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The block.
    weights : ndarray of shape (n_components,)
        Mixture weights.
    means : ndarray of shape (n_components, n_features)
        Component means.
    precisions_cholesky : ndarray
        Upper-triangular Cholesky factors of the precisions, in scikit-learn's shape for
        ``covariance_type``.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
    block_rows : int, optional
        Rows per sub-block (default: :func:`sub_block_rows`).

    Returns
    -------
    log_density : ndarray of shape (n_samples,)
        ``log p(x_n)`` of each row.
    """
    X = np.asarray(X)
    out = np.empty(X.shape[0])
    for start, stop, log_prob, work in _log_prob_by_sub_block(
            X, (weights, means, precisions_cholesky, covariance_type), block_rows):
        out[start:stop] = log_sum_exp_rows(log_prob, work)
    return out


def score_sum_block(X, weights, means, precisions_cholesky, covariance_type="full", *,
                    block_rows: int | None = None) -> np.ndarray:
    """Sum of the log-densities of the rows of a block: ``score``'s share of one chunk.

    A mean is a reduction: on Dask input ``score`` adds these per-chunk sums and divides by
    the number of rows, and no chunk's per-row scores outlive their sub-block.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The block.
    weights : ndarray of shape (n_components,)
        Mixture weights.
    means : ndarray of shape (n_components, n_features)
        Component means.
    precisions_cholesky : ndarray
        Upper-triangular Cholesky factors of the precisions, in scikit-learn's shape for
        ``covariance_type``.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
    block_rows : int, optional
        Rows per sub-block (default: :func:`sub_block_rows`).

    Returns
    -------
    total : ndarray of shape (1,)
        ``sum_n log p(x_n)`` over the block's rows (0 for an empty block).
    """
    sums = [log_sum_exp_rows(log_prob, work).sum() for _, _, log_prob, work
            in _log_prob_by_sub_block(np.asarray(X), (weights, means, precisions_cholesky,
                                                      covariance_type), block_rows)]
    return np.array([np.sum(sums)], dtype=np.float64)


def proba_block(X, weights, means, precisions_cholesky, covariance_type="full", *,
                block_rows: int | None = None) -> np.ndarray:
    """Responsibilities of each row of a block (``predict_proba``).

    Each sub-block's log-densities are written into the output and normalised there.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The block.
    weights : ndarray of shape (n_components,)
        Mixture weights.
    means : ndarray of shape (n_components, n_features)
        Component means.
    precisions_cholesky : ndarray
        Upper-triangular Cholesky factors of the precisions, in scikit-learn's shape for
        ``covariance_type``.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
    block_rows : int, optional
        Rows per sub-block (default: :func:`sub_block_rows`).

    Returns
    -------
    resp : ndarray of shape (n_samples, n_components)
        Posterior probability of each component for each row.
    """
    X = np.asarray(X)
    resp = np.empty((X.shape[0], np.shape(means)[0]))
    for _, _, log_prob, work in _log_prob_by_sub_block(
            X, (weights, means, precisions_cholesky, covariance_type), block_rows, resp):
        log_prob -= log_sum_exp_rows(log_prob, work)[:, None]
        with np.errstate(under="ignore"):
            np.exp(log_prob, out=log_prob)
    return resp


def predict_block(X, weights, means, precisions_cholesky, covariance_type="full", *,
                  block_rows: int | None = None) -> np.ndarray:
    """The most probable component of each row of a block (``predict``).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The block.
    weights : ndarray of shape (n_components,)
        Mixture weights.
    means : ndarray of shape (n_components, n_features)
        Component means.
    precisions_cholesky : ndarray
        Upper-triangular Cholesky factors of the precisions, in scikit-learn's shape for
        ``covariance_type``.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
    block_rows : int, optional
        Rows per sub-block (default: :func:`sub_block_rows`).

    Returns
    -------
    labels : ndarray of shape (n_samples,)
        Index of the most probable component of each row.
    """
    X = np.asarray(X)
    labels = np.empty(X.shape[0], dtype=np.intp)
    for start, stop, log_prob, _ in _log_prob_by_sub_block(
            X, (weights, means, precisions_cholesky, covariance_type), block_rows):
        np.argmax(log_prob, axis=1, out=labels[start:stop])
    return labels


def checked_block(X, block_fn, *args, block_rows: int | None = None):
    """Run ``block_fn`` on a block after checking it for infinity.

    Dask input is checked chunk by chunk, as it is scored, and each chunk sub-block by
    sub-block (no mask of the whole chunk).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        The block.
    block_fn : callable
        A block kernel, called as ``block_fn(X, *args, block_rows=block_rows)`` (e.g.
        :func:`score_block`).
    *args
        Further arguments of ``block_fn`` (the model's parameters).
    block_rows : int, optional
        Rows per sub-block, of the check and of ``block_fn`` (default:
        :func:`sub_block_rows`).

    Returns
    -------
    object
        What ``block_fn`` returns.

    Raises
    ------
    ValueError
        If ``X`` contains infinity (NaN is a missing value).
    """
    X = np.asarray(X)
    rows = sub_block_rows(X.shape[1], block_rows)
    for start, stop in row_blocks(X.shape[0], rows):
        if np.isinf(X[start:stop]).any():
            raise ValueError("Input X contains infinity (found while scoring a chunk; NaN "
                             "marks a missing value).")
    return block_fn(X, *args, block_rows=rows)
