"""Scoring a fitted model, one block at a time (``score_samples``, ``predict_proba``,
``predict``): the kernels that ``map_blocks`` runs on Dask input."""

from __future__ import annotations

import numpy as np

LOG_2PI = np.log(2.0 * np.pi)


def weighted_log_prob(X, weights, means, precisions_cholesky) -> np.ndarray:
    """``log pi_k + log N(x_n | mu_k, Sigma_k)`` for a block, shape ``(n_samples, n_components)``.

    Uses the Cholesky factors of the precisions and one matrix product per component;
    never forms an ``N x K x D`` array.
    """
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    k = means.shape[0]
    out = np.empty((n, k))
    log_det = np.log(np.diagonal(precisions_cholesky, axis1=1, axis2=2)).sum(axis=1)
    with np.errstate(divide="ignore"):
        log_weights = np.log(weights)
    for j in range(k):
        z = (X - means[j]) @ precisions_cholesky[j]  # centred first: exact far from 0
        out[:, j] = np.einsum("ij,ij->i", z, z)
    out *= -0.5
    out += log_weights + log_det - 0.5 * d * LOG_2PI
    return out


def log_sum_exp_rows(a: np.ndarray) -> np.ndarray:
    """Row-wise ``log sum exp``."""
    row_max = a.max(axis=1, keepdims=True)
    with np.errstate(under="ignore"):
        return (np.log(np.exp(a - row_max).sum(axis=1, keepdims=True)) + row_max)[:, 0]


def score_block(X, weights, means, precisions_cholesky) -> np.ndarray:
    """Log-density of each row, shape ``(n_samples,)``."""
    return log_sum_exp_rows(weighted_log_prob(X, weights, means, precisions_cholesky))


def proba_block(X, weights, means, precisions_cholesky) -> np.ndarray:
    """Responsibilities of each row, shape ``(n_samples, n_components)``."""
    wlp = weighted_log_prob(X, weights, means, precisions_cholesky)
    with np.errstate(under="ignore"):
        return np.exp(wlp - log_sum_exp_rows(wlp)[:, None])


def predict_block(X, weights, means, precisions_cholesky) -> np.ndarray:
    """The most probable component of each row, shape ``(n_samples,)``."""
    return weighted_log_prob(X, weights, means, precisions_cholesky).argmax(axis=1)


def checked_block(X, block_fn, *args):
    """Run ``block_fn`` on a block after checking it for NaN and infinity (Dask input is
    checked chunk by chunk, as it is scored)."""
    if not np.all(np.isfinite(X)):
        raise ValueError("Input X contains NaN or infinity (found while scoring a chunk).")
    return block_fn(X, *args)
