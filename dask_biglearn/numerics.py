"""Pure NumPy numerics of projected EM for full-covariance Gaussian mixtures.

Everything here is a small function from arrays to arrays: no Dask, no randomness, no state.

Every matching (joint, marginal, rotated marginal) is EM on ``y = P x`` for a projection ``P``
with orthonormal rows (the identity for the joint one). The per-chunk kernel works on
*quadratic features* of the projected, centred data,
``F(y) = [1, y', y'_i y'_j (i <= j)]`` with ``y' = P (x - shift)`` and ``shift`` a fixed
centre of the data (its mean). The Gaussian log-density ``log N(y | mu~, S~)`` is linear in
``F(y)``, so

* the E-step is one matrix product ``theta.T @ F.T`` (``F`` is stored transposed), with
  ``theta`` of shape ``(n_quadratic_features(m), n_components)`` built on the driver
  (:func:`estep_coefficients`),
* all sufficient statistics of a pass are one matrix product ``resp.T @ F``: the counts, the
  weighted sums and the upper triangle of the weighted second moments of ``y'``, accumulated
  in float64 whatever the input dtype.

A marginal pass on ``m < D`` dimensions therefore costs ``(m^2 + 3m + 2) / (D^2 + 3D + 2)`` of
a joint pass in its matrix products, and only the ``m``-dimensional statistics leave a chunk.

Numerical stability: the moments are *shifted* moments (centred on the data mean rather than
on zero), so cancellation is governed by ``|mu_k - shift|^2 / lambda_min(Sigma_k)`` rather than
by ``|mu_k|^2 / lambda_min``. Data far from the origin with a small spread is exactly as
accurate as centred data.  The M-step (:func:`projected_m_step`) centres the scatter on the
new mean in closed form.  Covariances are floored in their eigenvalues and kept symmetric;
log-densities come from Cholesky factors.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from ._compiled import (
    compiled_enabled,
    estep_coefficients_into,
    quadratic_features_into,
    softmax_columns,
)

LOG_2PI = np.log(2.0 * np.pi)

#: Log-responsibilities below this (relative to the row maximum) are clipped before ``exp``:
#: ``exp(-100) ~ 4e-44`` is negligible and NumPy's ``exp`` is slow on underflowing arguments.
LOG_RESP_CLIP = -100.0

#: Rows per sub-block inside a chunk (at least, unless the features are very wide): the
#: features of one sub-block should stay in cache between the E-step product and the
#: statistics product (1024 rows x 153 features run both products ~15 % faster than 4096).
DEFAULT_BLOCK_ROWS = 1024

#: Narrow features (low D) get more rows per sub-block, up to this many bytes of features
#: and :data:`MAX_BLOCK_ROWS` rows, so that small problems make few kernel calls.
BLOCK_CACHE_BYTES = 2**20
MAX_BLOCK_ROWS = 16384

#: Bytes of quadratic features per sub-block (at most): high-D data uses fewer rows.
BLOCK_FEATURE_BYTES = 32 * 2**20

TINY = np.finfo(np.float64).tiny

#: The divisor ``N_k`` of the M-step is floored at this fraction of N (reference behaviour).
NK_FLOOR_FRACTION = 1e-5


class SuffStats(NamedTuple):
    """Sufficient statistics of one projected EM pass (or of part of one).

    All arrays are float64. Moments are shifted: they are moments of ``y - shift_y``.

    resp_sum : ndarray of shape (n_components,)
        ``sum_n r_nk``.
    first_moment : ndarray of shape (n_components, n_dims)
        ``sum_n r_nk (y_n - shift_y)``.
    second_moment : ndarray of shape (n_components, n_dims, n_dims)
        ``sum_n r_nk (y_n - shift_y)(y_n - shift_y)^T``.
    log_lik_sum : float
        ``sum_n log sum_k pi_k N(y_n | mu~_k, S~_k)``.
    """

    resp_sum: np.ndarray
    first_moment: np.ndarray
    second_moment: np.ndarray
    log_lik_sum: float


def combine_stats(parts) -> SuffStats:
    """Sum a list of :class:`SuffStats` (or return a single one unchanged).

    Addition is associative and commutative, which is all a tree reduction needs.
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
    )


# ---------------------------------------------------------------------------------------------
# Quadratic features and the per-chunk kernel
# ---------------------------------------------------------------------------------------------


def n_quadratic_features(n_features: int) -> int:
    """Width of ``F(x) = [1, x, x_i x_j (i <= j)]``."""
    return 1 + n_features + n_features * (n_features + 1) // 2


def default_block_rows(n_features: int) -> int:
    """Rows per sub-block: :data:`DEFAULT_BLOCK_ROWS`, more when the features are narrow
    (up to :data:`BLOCK_CACHE_BYTES`), fewer when they are very wide."""
    row_bytes = 8 * n_quadratic_features(n_features)
    rows = min(MAX_BLOCK_ROWS, max(DEFAULT_BLOCK_ROWS, BLOCK_CACHE_BYTES // row_bytes))
    return int(max(64, min(rows, BLOCK_FEATURE_BYTES // row_bytes)))


@lru_cache(maxsize=64)
def _triu_indices(n_features: int) -> tuple[np.ndarray, np.ndarray]:
    iu = np.triu_indices(n_features)
    return iu[0].copy(), iu[1].copy()


@lru_cache(maxsize=64)
def _triu_signs(n_features: int) -> np.ndarray:
    """Coefficient of ``Q_ij`` in ``-x^T Q x / 2`` for the packed upper triangle."""
    iu, ju = _triu_indices(n_features)
    return np.where(iu == ju, -0.5, -1.0)


def quadratic_features(X, shift, out=None, compiled: bool | None = None) -> np.ndarray:
    """Quadratic features of ``x' = x - shift``, one *column* per row of ``X``, in float64.

    Row ``0`` is ones, rows ``1..D`` are ``x'``, the remaining rows are ``x'_i x'_j`` for
    ``i <= j`` (row-major upper triangle). The transposed layout makes every product a
    contiguous row operation and feeds both matrix products of a pass without copies.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    shift : ndarray of shape (n_features,)
    out : ndarray of shape (n_quadratic_features(n_features), n_samples), optional
        Scratch buffer to write into (float64, C-contiguous).
    compiled : bool, optional
        Use the numba kernel of :mod:`dask_biglearn._compiled` (default: when available and
        not disabled with ``DASK_BIGLEARN_NUMBA=0``); ``False`` runs this NumPy code, the
        reference.

    Returns
    -------
    F_t : ndarray of shape (n_quadratic_features(n_features), n_samples)
    """
    n, d = X.shape
    width = n_quadratic_features(d)
    F_t = np.empty((width, n)) if out is None else out
    if compiled is None:
        compiled = compiled_enabled()
    if compiled:
        return quadratic_features_into(X, np.asarray(shift, dtype=np.float64), F_t)
    F_t[0] = 1.0
    Xc = F_t[1 : 1 + d]
    np.subtract(X.T, shift[:, None], out=Xc, dtype=np.float64)  # float32 is promoted first
    start = 1 + d
    # Rows x_i * x_j for j >= i: D broadcast products of contiguous rows.
    for i in range(d):
        stop = start + d - i
        np.multiply(Xc[i], Xc[i:], out=F_t[start:stop])
        start = stop
    return F_t


def unpack_second_moments(upper: np.ndarray, n_features: int) -> np.ndarray:
    """Rebuild symmetric ``(K, D, D)`` matrices from their packed upper triangles ``(K, D(D+1)/2)``."""
    iu, ju = _triu_indices(n_features)
    full = np.zeros((upper.shape[0], n_features, n_features))
    full[:, iu, ju] = upper
    full[:, ju, iu] = upper
    return full


def responsibilities_from_log_prob(log_prob_t: np.ndarray,
                                   compiled: bool | None = None) -> tuple[np.ndarray, float]:
    """Normalise weighted log-densities, laid out ``(n_components, n_rows)``, in place.

    The component axis comes first so that the reductions over components are elementwise
    operations on contiguous rows (NumPy reduces a short last axis slowly).
    Returns ``(resp_t, log_lik_sum)``; ``resp_t`` is ``log_prob_t``'s buffer, overwritten.

    ``compiled`` selects the numba kernel of :mod:`dask_biglearn._compiled` (default: when
    available and not disabled with ``DASK_BIGLEARN_NUMBA=0``); ``False`` runs this NumPy
    code, the reference.
    """
    if compiled is None:
        compiled = compiled_enabled()
    if compiled:
        n = log_prob_t.shape[1]
        return log_prob_t, softmax_columns(log_prob_t, scratch_buffer("softmax", 3 * n))
    row_max = log_prob_t.max(axis=0)
    log_prob_t -= row_max
    np.maximum(log_prob_t, LOG_RESP_CLIP, out=log_prob_t)
    np.exp(log_prob_t, out=log_prob_t)
    row_sum = log_prob_t.sum(axis=0)
    log_prob_t *= 1.0 / row_sum
    log_lik_sum = float(np.log(row_sum).sum() + row_max.sum())
    return log_prob_t, log_lik_sum


_scratch = threading.local()


def scratch_buffer(name: str, size: int) -> np.ndarray:
    """A float64 buffer of at least ``size`` elements, reused across calls in this thread.

    Passes reuse their temporaries instead of allocating them every time: large fresh
    allocations cost page faults, all the more under distributed's nanny, which sets
    ``MALLOC_TRIM_THRESHOLD_`` low for its workers.
    """
    buffers = getattr(_scratch, "buffers", None)
    if buffers is None:
        buffers = _scratch.buffers = {}
    buf = buffers.get(name)
    if buf is None or buf.size < size:
        buf = buffers[name] = np.empty(size)
    return buf[:size]


def feature_pass(F_t: np.ndarray, theta_t: np.ndarray, need_stats: bool = True):
    """E-step and statistics for rows whose quadratic features are the columns of ``F_t``.

    ``theta_t`` is ``theta.T``, shape ``(n_components, n_quadratic_features)``.
    Returns ``(G, log_lik_sum)`` with ``G = resp.T @ F`` of shape
    ``(n_components, n_quadratic_features)`` (``None`` when ``need_stats`` is false).
    """
    k, n = theta_t.shape[0], F_t.shape[1]
    log_prob_t = scratch_buffer("log_prob_t", k * n).reshape(k, n)
    np.matmul(theta_t, F_t, out=log_prob_t)
    resp_t, log_lik_sum = responsibilities_from_log_prob(log_prob_t)
    G = resp_t @ F_t.T if need_stats else None
    return G, log_lik_sum


def projected_features(X, shift, projection, out=None) -> np.ndarray:
    """Quadratic features of ``y' = P (x - shift)``, or of ``x - shift`` when ``projection``
    is None; one column per row of ``X``, float64 (see :func:`quadratic_features`)."""
    if projection is None:
        return quadratic_features(X, shift, out=out)
    Y = np.subtract(X, shift, dtype=np.float64) @ projection.T
    return quadratic_features(Y, np.zeros(projection.shape[0]), out=out)


def row_blocks(n_rows: int, block_rows: int):
    """``(start, stop)`` of consecutive sub-blocks of at most ``block_rows`` rows."""
    for start in range(0, n_rows, block_rows):
        yield start, min(start + block_rows, n_rows)


def block_parts(X, theta, shift, projection, need_stats=True, block_rows=None):
    """Yield :func:`feature_pass` results ``(G, log_lik_sum)`` for ``X`` in sub-blocks.

    Each sub-block has at most ``block_rows`` rows; its temporaries are reused buffers.
    """
    width = theta.shape[0]
    theta_t = np.ascontiguousarray(theta.T)
    for start, stop in row_blocks(X.shape[0], block_rows or default_block_rows(X.shape[1])):
        buf = scratch_buffer("features", (stop - start) * width).reshape(width, stop - start)
        features = projected_features(X[start:stop], shift, projection, out=buf)
        yield feature_pass(features, theta_t, need_stats)


def unpack_stats(G: np.ndarray, log_lik_sum: float) -> SuffStats:
    """Turn packed statistics ``G = resp.T @ F`` (K, n_quadratic_features(m)) into
    :class:`SuffStats`."""
    m = round(float(np.sqrt(8 * G.shape[1] + 1) - 3) / 2)  # width = 1 + m + m(m+1)/2
    return SuffStats(G[:, 0].copy(), np.ascontiguousarray(G[:, 1 : 1 + m]),
                     unpack_second_moments(G[:, 1 + m :], m), log_lik_sum)


def sum_stats(parts, n_components, need_stats=True) -> SuffStats:
    """Sum the ``(G, log_lik_sum)`` pairs of several blocks and unpack them once."""
    G_total, ll_total = None, 0.0
    for G, ll in parts:
        ll_total += ll
        if need_stats:
            G_total = G if G_total is None else G_total + G
    if not need_stats:
        k = n_components
        return SuffStats(np.zeros(k), np.zeros((k, 0)), np.zeros((k, 0, 0)), ll_total)
    return unpack_stats(G_total, ll_total)


def chunk_stats(X, theta, shift, projection, need_stats=True, block_rows=None):
    """Sufficient statistics of one chunk for a projected EM pass (the distributed kernel).

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
        One chunk of the data, any real dtype (converted to float64 in sub-blocks).
    theta : ndarray of shape (n_quadratic_features(n_dims), n_components)
        E-step coefficients of the projected parameters, from :func:`estep_coefficients`
        with the projected centre ``P @ shift``.
    shift : ndarray of shape (n_features,)
        Centre the moments are taken about.
    projection : ndarray of shape (n_dims, n_features) or None
        Rows of ``P``; ``None`` means the identity.
    need_stats : bool
        If false only the log-likelihood is computed (an evaluation pass).

    Returns
    -------
    SuffStats
        Of ``y = P x``, shifted by ``P @ shift``; ``K (1 + m + m^2) + 1`` numbers whatever the
        number of rows.
    """
    return group_stats([X], theta, shift, projection, need_stats, block_rows)


def group_stats(blocks, theta, shift, projection, need_stats=True, block_rows=None):
    """Statistics of several chunks in one task, summed before they are unpacked."""
    parts = (part for X in blocks
             for part in block_parts(X, theta, shift, projection, need_stats, block_rows))
    return sum_stats(parts, theta.shape[1], need_stats)


# ---------------------------------------------------------------------------------------------
# Driver-side linear algebra
# ---------------------------------------------------------------------------------------------


def symmetrize(A: np.ndarray) -> np.ndarray:
    """``(A + A^T) / 2`` over the last two axes."""
    return 0.5 * (A + np.swapaxes(A, -1, -2))


def floor_eigenvalues(covariances: np.ndarray, floor: float) -> np.ndarray:
    """Raise eigenvalues below ``floor`` to ``floor``: ``V diag(max(L, floor)) V^T``, symmetric.

    Works on a stack ``(..., D, D)``. Matrices already above the floor are returned unchanged
    (up to symmetrisation). The common case where none is below costs one batched Cholesky
    factorisation of ``Sigma - floor I`` (a fraction of an eigendecomposition); otherwise the
    stack is decomposed once and only the matrices below the floor are rebuilt.
    """
    covariances = symmetrize(covariances)
    try:
        np.linalg.cholesky(covariances - floor * np.eye(covariances.shape[-1]))
        return covariances
    except np.linalg.LinAlgError:
        pass
    eigvals, V = np.linalg.eigh(covariances)
    low = eigvals[..., 0] < floor
    L = np.maximum(eigvals[low], floor)
    V = V[low]
    out = covariances.copy()
    out[low] = symmetrize((V * L[..., None, :]) @ np.swapaxes(V, -1, -2))
    return out


class CholeskyError(np.linalg.LinAlgError):
    """A covariance matrix is not numerically positive definite."""


_NOT_POSITIVE_DEFINITE = (
    "A covariance matrix is not positive definite (a component collapsed onto too few "
    "points). Increase covariance_floor, decrease n_components, or scale the data."
)


def cholesky(covariances: np.ndarray) -> np.ndarray:
    """Batched lower Cholesky factors, with an error that says what to do on failure."""
    try:
        return np.linalg.cholesky(covariances)
    except np.linalg.LinAlgError as exc:
        raise CholeskyError(_NOT_POSITIVE_DEFINITE) from exc


def precision_cholesky(covariances: np.ndarray) -> np.ndarray:
    """Upper-triangular ``U_k`` with ``U_k U_k^T = Sigma_k^{-1}`` (scikit-learn's convention)."""
    # inv(L)^T; L is triangular and well conditioned after the eigenvalue floor.
    return np.swapaxes(np.linalg.inv(cholesky(covariances)), -1, -2)


#: The compiled E-step coefficients (unblocked loops) beat LAPACK's batched calls up to about
#: this many projected dimensions; above it the NumPy code runs.
COMPILED_ESTEP_MAX_DIMS = 48


def estep_coefficients(weights, means, covariances, shift,
                       compiled: bool | None = None) -> np.ndarray:
    """Coefficients ``theta`` so that ``F(y) @ theta`` is ``log pi_k + log N(y | mu_k, S_k)``.

    ``F`` are the quadratic features of ``y - shift`` (:func:`quadratic_features`); for a
    projected pass, pass the projected parameters and centre (``P mu_k``, ``P Sigma_k P^T``,
    ``P shift``).

    Parameters
    ----------
    weights : ndarray of shape (n_components,)
    means : ndarray of shape (n_components, n_dims)
    covariances : ndarray of shape (n_components, n_dims, n_dims)
    shift : ndarray of shape (n_dims,)
    compiled : bool, optional
        Use the numba kernel of :mod:`dask_biglearn._compiled` (default: when available, not
        disabled with ``DASK_BIGLEARN_NUMBA=0``, and ``n_dims`` is at most
        :data:`COMPILED_ESTEP_MAX_DIMS`); ``False`` runs this NumPy code, the reference.

    Returns
    -------
    theta : ndarray of shape (n_quadratic_features(n_dims), n_components)
    """
    k, m = means.shape
    if compiled is None:
        compiled = compiled_enabled() and m <= COMPILED_ESTEP_MAX_DIMS
    if compiled:
        theta = np.empty((n_quadratic_features(m), k))
        log_weights = np.log(np.maximum(weights, TINY))
        failed = estep_coefficients_into(
            log_weights, np.ascontiguousarray(means, dtype=np.float64),
            np.ascontiguousarray(covariances, dtype=np.float64),
            np.ascontiguousarray(shift, dtype=np.float64), theta)
        if failed >= 0:
            if not np.all(np.isfinite(covariances)):
                # As the NumPy path: non-finite coefficients, which the driver's finiteness
                # check reports (data that overflows), not a Cholesky error.
                theta.fill(np.nan)
                return theta
            raise CholeskyError(f"Component {failed}: {_NOT_POSITIVE_DEFINITE}")
        return theta
    prec_chol = precision_cholesky(covariances)  # (K, m, m), Lambda = U U^T
    nu = means - shift  # means relative to the shifted origin, (K, m)
    # Lambda nu and nu^T Lambda nu through the factor: w = U^T nu.
    w = np.einsum("kij,ki->kj", prec_chol, nu)
    lam_nu = np.einsum("kij,kj->ki", prec_chol, w)  # (K, m)
    Q = prec_chol @ np.swapaxes(prec_chol, -1, -2)  # (K, m, m) = Lambda
    iu, ju = _triu_indices(m)
    # Off-diagonal terms appear twice in y^T Q y, diagonal ones once.
    quad = Q[:, iu, ju] * _triu_signs(m)
    log_det_prec = np.log(np.diagonal(prec_chol, axis1=1, axis2=2)).sum(axis=1)
    log_weights = np.log(np.maximum(weights, TINY))  # a dead component gets ~ -708, not -inf
    const = log_weights - 0.5 * m * LOG_2PI + log_det_prec - 0.5 * np.einsum("ki,ki->k", w, w)
    theta = np.empty((n_quadratic_features(m), k))
    theta[0] = const
    theta[1 : 1 + m] = lam_nu.T
    theta[1 + m :] = quad.T
    return theta


def projected_m_step(stats: SuffStats, n_samples: int, shift_y, covariance_floor: float):
    """Closed-form M-step in the projected space from shifted sufficient statistics.

    With ``f_k = max(1e-5, N_k / N)`` (the divisor floor of the reference):
    ``mu~_k = s_k / (N f_k)`` and
    ``S~_k = sum_n r_nk (y_n - mu~_k)(y_n - mu~_k)^T / (N f_k)``, obtained from the shifted
    moments by an exact rank-one correction; then the eigenvalue floor.

    Returns ``(means, covariances)`` in the projected space.
    """
    nk = stats.resp_sum
    divisor = np.maximum(nk, NK_FLOOR_FRACTION * n_samples)  # N f_k
    # Raw sum of y' = y - shift_y is first_moment; mean of y' with the floored divisor.
    mean_shifted = stats.first_moment / divisor[:, None]
    # sum r (y' - a)(y' - a)^T = M - a s^T - s a^T + N_k a a^T, with a = mean_shifted.
    outer_as = mean_shifted[:, :, None] * stats.first_moment[:, None, :]
    scatter = (
        stats.second_moment
        - outer_as
        - np.swapaxes(outer_as, 1, 2)
        + nk[:, None, None] * mean_shifted[:, :, None] * mean_shifted[:, None, :]
    )
    covariances = floor_eigenvalues(scatter / divisor[:, None, None], covariance_floor)
    return mean_shifted + shift_y, covariances


def smoothed_weights(resp_sum: np.ndarray, n_samples: int, concentration: float) -> np.ndarray:
    """``pi_k = (N_k / N + alpha) / sum_j (N_j / N + alpha)``; ``alpha = 0`` is plain EM."""
    w = resp_sum / n_samples + concentration
    return w / w.sum()


def map_back(means, covariances, new_means_y, new_covs_y, projection, covariance_floor):
    """Write a projected update back into the full space.

    ``mu <- mu + P^T (mu~ - P mu)`` and
    ``Sigma <- floor(Sigma + P^T (S~ - P Sigma P^T) P)``: the block of the (rotated)
    parameters seen through ``P`` is replaced, the rest is kept. ``projection=None`` is the
    joint update, where the new parameters simply replace the old.
    """
    if projection is None:
        return new_means_y, new_covs_y
    P = projection
    means = means + (new_means_y - means @ P.T) @ P
    delta = new_covs_y - P @ covariances @ P.T
    covariances = floor_eigenvalues(covariances + P.T @ delta @ P, covariance_floor)
    return means, covariances


def project_params(means, covariances, projection):
    """``(P mu_k, P Sigma_k P^T)``; identity when ``projection`` is None."""
    if projection is None:
        return means, covariances
    return means @ projection.T, projection @ covariances @ projection.T


# ---------------------------------------------------------------------------------------------
# Scoring a fitted model (predict, score_samples)
# ---------------------------------------------------------------------------------------------


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
