"""Scoring a fitted model, one block at a time (``score_samples``, ``predict_proba``,
``predict``): the kernels that ``map_blocks`` runs on Dask input."""

from __future__ import annotations

import numpy as np

LOG_2PI = np.log(2.0 * np.pi)


def weighted_log_prob(X, weights, means, precisions_cholesky,
                      covariance_type: str = "full") -> np.ndarray:
    """``log pi_k + log N(x_n | mu_k, Sigma_k)`` for every row of a block and component.

    Uses the Cholesky factors of the precisions, in scikit-learn's shape for the covariance
    type; never forms an ``N x K x D`` array. ``"full"``: one matrix product per component
    of the centred rows; ``"tied"``: the rows whitened once, then per component; ``"diag"``
    and ``"spherical"``: ``O(N K D)``, two matrix products about the means' centre.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The block (converted to float64).
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
    log_prob : ndarray of shape (n_samples, n_components)
        Weighted log-densities.
    """
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    k = means.shape[0]
    out = np.empty((n, k))
    with np.errstate(divide="ignore"):
        log_weights = np.log(weights)
    if covariance_type in ("diag", "spherical"):
        prec = np.broadcast_to(np.reshape(precisions_cholesky, (k, -1)), (k, d)) ** 2
        log_det = 0.5 * np.log(prec).sum(axis=1)
        centre = means.mean(axis=0)  # about the means' centre: no cancellation far from 0
        Xc, mc = X - centre, means - centre
        out[...] = (Xc * Xc) @ prec.T
        out -= 2.0 * Xc @ (mc * prec).T
        out += np.einsum("kd,kd->k", mc * mc, prec)
    else:
        if covariance_type == "tied":
            U = precisions_cholesky
            log_det = np.full(k, np.log(np.diagonal(U)).sum())
            centre = means.mean(axis=0)
            Y, means_y = (X - centre) @ U, (means - centre) @ U
            for j in range(k):
                z = Y - means_y[j]
                out[:, j] = np.einsum("ij,ij->i", z, z)
        else:
            log_det = np.log(np.diagonal(precisions_cholesky, axis1=1, axis2=2)).sum(axis=1)
            for j in range(k):
                z = (X - means[j]) @ precisions_cholesky[j]  # centred first: exact far from 0
                out[:, j] = np.einsum("ij,ij->i", z, z)
    out *= -0.5
    out += log_weights + log_det - 0.5 * d * LOG_2PI
    return out


def log_sum_exp_rows(a: np.ndarray) -> np.ndarray:
    """Row-wise ``log sum exp``, stabilised by each row's maximum.

    Parameters
    ----------
    a : ndarray of shape (n_rows, n_columns)
        Values to reduce.

    Returns
    -------
    out : ndarray of shape (n_rows,)
        ``log sum_j exp(a[i, j])`` of each row.
    """
    row_max = a.max(axis=1, keepdims=True)
    with np.errstate(under="ignore"):
        return (np.log(np.exp(a - row_max).sum(axis=1, keepdims=True)) + row_max)[:, 0]


def score_block(X, weights, means, precisions_cholesky, covariance_type="full") -> np.ndarray:
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

    Returns
    -------
    log_density : ndarray of shape (n_samples,)
        ``log p(x_n)`` of each row.
    """
    return log_sum_exp_rows(weighted_log_prob(X, weights, means, precisions_cholesky,
                                              covariance_type))


def proba_block(X, weights, means, precisions_cholesky, covariance_type="full") -> np.ndarray:
    """Responsibilities of each row of a block (``predict_proba``).

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

    Returns
    -------
    resp : ndarray of shape (n_samples, n_components)
        Posterior probability of each component for each row.
    """
    wlp = weighted_log_prob(X, weights, means, precisions_cholesky, covariance_type)
    with np.errstate(under="ignore"):
        return np.exp(wlp - log_sum_exp_rows(wlp)[:, None])


def predict_block(X, weights, means, precisions_cholesky, covariance_type="full") -> np.ndarray:
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

    Returns
    -------
    labels : ndarray of shape (n_samples,)
        Index of the most probable component of each row.
    """
    return weighted_log_prob(X, weights, means, precisions_cholesky,
                             covariance_type).argmax(axis=1)


def checked_block(X, block_fn, *args):
    """Run ``block_fn`` on a block after checking it for NaN and infinity.

    Dask input is checked chunk by chunk, as it is scored.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        The block.
    block_fn : callable
        A block kernel, called as ``block_fn(X, *args)`` (e.g. :func:`score_block`).
    *args
        Further arguments of ``block_fn`` (the model's parameters).

    Returns
    -------
    object
        What ``block_fn`` returns.

    Raises
    ------
    ValueError
        If ``X`` contains NaN or infinity.
    """
    if not np.all(np.isfinite(X)):
        raise ValueError("Input X contains NaN or infinity (found while scoring a chunk).")
    return block_fn(X, *args)
