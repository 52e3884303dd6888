"""Driver math of projected EM for full-covariance Gaussian mixtures.

Everything here is a small function from arrays to arrays, of size ``K x D x D`` at most:
the E-step coefficients a pass is sent, the closed-form M-step from its statistics, the
eigenvalue floor, the map back from a projected space and the weight smoothing. No Dask, no
randomness, no state.

Numerical stability: the moments are *shifted* moments (centred on the data mean rather than
on zero), so cancellation is governed by ``|mu_k - shift|^2 / lambda_min(Sigma_k)`` rather than
by ``|mu_k|^2 / lambda_min``. Data far from the origin with a small spread is exactly as
accurate as centred data. The M-step (:func:`projected_m_step`) centres the scatter on the
new mean in closed form. Covariances are floored in their eigenvalues and kept symmetric;
log-densities come from Cholesky factors.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .kernels._compiled import estep_coefficients_into
from .kernels.features import n_quadratic_features, triu_indices
from .kernels.scoring import LOG_2PI
from .kernels.stats import SuffStats

TINY = np.finfo(np.float64).tiny

#: The divisor ``N_k`` of the M-step is floored at this fraction of N (reference behaviour).
NK_FLOOR_FRACTION = 1e-5

#: The compiled E-step coefficients (unblocked loops) beat LAPACK's batched calls up to about
#: this many projected dimensions; above it the NumPy code runs.
COMPILED_ESTEP_MAX_DIMS = 48


# ---- Covariance repair and factors ----------------------------------------------------------


def symmetrize(A: np.ndarray) -> np.ndarray:
    """Symmetric part ``(A + A^T) / 2`` over the last two axes.

    Parameters
    ----------
    A : ndarray of shape (..., n, n)
        A stack of square matrices.

    Returns
    -------
    ndarray of shape (..., n, n)
        Their symmetric parts.
    """
    return 0.5 * (A + np.swapaxes(A, -1, -2))


def floor_eigenvalues(covariances: np.ndarray, floor: float) -> np.ndarray:
    """Raise eigenvalues below ``floor`` to ``floor``: ``V diag(max(L, floor)) V^T``, symmetric.

    Works on a stack ``(..., D, D)``. Matrices already above the floor are returned unchanged
    (up to symmetrisation). The common case where none is below costs one batched Cholesky
    factorisation of ``Sigma - floor I`` (a fraction of an eigendecomposition); otherwise the
    stack is decomposed once and only the matrices below the floor are rebuilt.

    Parameters
    ----------
    covariances : ndarray of shape (..., n_features, n_features)
        A stack of (nearly) symmetric matrices.
    floor : float
        Smallest eigenvalue allowed.

    Returns
    -------
    ndarray of shape (..., n_features, n_features)
        Symmetric matrices whose eigenvalues are all at least ``floor``.
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
    """Batched lower Cholesky factors, with an error that says what to do on failure.

    Parameters
    ----------
    covariances : ndarray of shape (..., n_features, n_features)
        Symmetric positive definite matrices.

    Returns
    -------
    ndarray of shape (..., n_features, n_features)
        Lower-triangular ``L`` with ``L L^T = Sigma``.

    Raises
    ------
    CholeskyError
        If a matrix is not numerically positive definite.
    """
    try:
        return np.linalg.cholesky(covariances)
    except np.linalg.LinAlgError as exc:
        raise CholeskyError(_NOT_POSITIVE_DEFINITE) from exc


def precision_cholesky(covariances: np.ndarray) -> np.ndarray:
    """Upper-triangular ``U_k`` with ``U_k U_k^T = Sigma_k^{-1}`` (scikit-learn's convention).

    Parameters
    ----------
    covariances : ndarray of shape (n_components, n_features, n_features)
        Symmetric positive definite covariances (floored, so well conditioned).

    Returns
    -------
    ndarray of shape (n_components, n_features, n_features)
        The Cholesky factors of the precisions, ``inv(L_k)^T``.

    Raises
    ------
    CholeskyError
        If a covariance is not numerically positive definite.
    """
    # inv(L)^T; L is triangular and well conditioned after the eigenvalue floor.
    return np.swapaxes(np.linalg.inv(cholesky(covariances)), -1, -2)


# ---- E-step coefficients --------------------------------------------------------------------


@lru_cache(maxsize=64)
def _triu_signs(n_features: int) -> np.ndarray:
    """Coefficient of ``Q_ij`` in ``-x^T Q x / 2`` for the packed upper triangle."""
    iu, ju = triu_indices(n_features)
    return np.where(iu == ju, -0.5, -1.0)


def estep_coefficients(weights, means, covariances, shift, *,
                       compiled: bool = False) -> np.ndarray:
    """Coefficients ``theta`` so that ``F(y) @ theta`` is ``log pi_k + log N(y | mu_k, S_k)``.

    ``F`` are the quadratic features of ``y - shift``
    (:func:`~dask_biglearn.kernels.features.quadratic_features`); for a projected pass, pass
    the projected parameters and centre (``P mu_k``, ``P Sigma_k P^T``, ``P shift``).

    Parameters
    ----------
    weights : ndarray of shape (n_components,)
        Mixture weights (floored at the smallest positive float, so a dead component gets a
        very low but finite log-weight).
    means : ndarray of shape (n_components, n_dims)
        Component means (projected, for a projected pass).
    covariances : ndarray of shape (n_components, n_dims, n_dims)
        Component covariances (projected, for a projected pass).
    shift : ndarray of shape (n_dims,)
        Centre of the features (projected, for a projected pass).
    compiled : bool, default=False
        Use the numba twin (when ``n_dims`` is at most :data:`COMPILED_ESTEP_MAX_DIMS`,
        where it is faster); ``False`` runs this NumPy code, the reference.

    Returns
    -------
    theta : ndarray of shape (n_quadratic_features(n_dims), n_components)
        Row 0 the constants, rows ``1..n_dims`` the linear terms, then the packed quadratic
        terms, in the order of the quadratic features.

    Raises
    ------
    CholeskyError
        If a (finite) covariance is not numerically positive definite.
    """
    k, m = means.shape
    if compiled and m <= COMPILED_ESTEP_MAX_DIMS:
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
    iu, ju = triu_indices(m)
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


# ---- M-step, map back, weights ----------------------------------------------------------------


def projected_m_step(stats: SuffStats, shift_y, covariance_floor: float,
                     reg_covar: float = 0.0):
    """Closed-form M-step in the projected space from shifted sufficient statistics.

    With ``N = stats.n_rows`` and ``f_k = max(1e-5, N_k / N)`` (the divisor floor of the
    reference): ``mu~_k = s_k / (N f_k)`` and
    ``S~_k = sum_n r_nk (y_n - mu~_k)(y_n - mu~_k)^T / (N f_k)``, obtained from the shifted
    moments by an exact rank-one correction; then ``reg_covar`` is added to the diagonal
    (scikit-learn's regularisation) and the eigenvalue floor applied.

    Parameters
    ----------
    stats : SuffStats
        Sufficient statistics of a pass, shifted by ``shift_y``.
    shift_y : ndarray of shape (n_dims,)
        Centre the moments were taken about, in the projected space.
    covariance_floor : float
        Smallest eigenvalue allowed in the new covariances.
    reg_covar : float, default=0.0
        Added to the diagonal of the new covariances before the floor.

    Returns
    -------
    means : ndarray of shape (n_components, n_dims)
        New means in the projected space.
    covariances : ndarray of shape (n_components, n_dims, n_dims)
        New covariances in the projected space, floored.
    """
    nk = stats.resp_sum
    divisor = np.maximum(nk, NK_FLOOR_FRACTION * stats.n_rows)  # N f_k
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
    covariances = scatter / divisor[:, None, None]
    if reg_covar:
        covariances += reg_covar * np.eye(covariances.shape[-1])
    covariances = floor_eigenvalues(covariances, covariance_floor)
    return mean_shifted + shift_y, covariances


def smoothed_weights(resp_sum: np.ndarray, n_rows: int, concentration: float) -> np.ndarray:
    """Smoothed mixture weights ``pi_k = (N_k / N + alpha) / sum_j (N_j / N + alpha)``.

    ``alpha = 0`` is the plain EM update.

    Parameters
    ----------
    resp_sum : ndarray of shape (n_components,)
        ``N_k``, the summed responsibilities.
    n_rows : int
        ``N``, the number of rows.
    concentration : float
        ``alpha``, added to every fraction ``N_k / N``.

    Returns
    -------
    ndarray of shape (n_components,)
        The new weights, summing to 1.
    """
    w = resp_sum / n_rows + concentration
    return w / w.sum()


def map_back(means, covariances, new_means_y, new_covs_y, projection, covariance_floor):
    """Write a projected update back into the full space.

    ``mu <- mu + P^T (mu~ - P mu)`` and
    ``Sigma <- floor(Sigma + P^T (S~ - P Sigma P^T) P)``: the block of the (rotated)
    parameters seen through ``P`` is replaced, the rest is kept. ``projection=None`` is the
    joint update, where the new parameters simply replace the old.

    Parameters
    ----------
    means : ndarray of shape (n_components, n_features)
        Current full-space means ``mu``.
    covariances : ndarray of shape (n_components, n_features, n_features)
        Current full-space covariances ``Sigma``.
    new_means_y : ndarray of shape (n_components, n_dims)
        Updated means ``mu~`` in the projected space.
    new_covs_y : ndarray of shape (n_components, n_dims, n_dims)
        Updated covariances ``S~`` in the projected space.
    projection : ndarray of shape (n_dims, n_features) or None
        ``P``, orthonormal rows; None is the identity.
    covariance_floor : float
        Smallest eigenvalue allowed in the new covariances.

    Returns
    -------
    means : ndarray of shape (n_components, n_features)
        New full-space means.
    covariances : ndarray of shape (n_components, n_features, n_features)
        New full-space covariances.
    """
    if projection is None:
        return new_means_y, new_covs_y
    P = projection
    means = means + (new_means_y - means @ P.T) @ P
    delta = new_covs_y - P @ covariances @ P.T
    covariances = floor_eigenvalues(covariances + P.T @ delta @ P, covariance_floor)
    return means, covariances


def project_params(means, covariances, projection):
    """Parameters seen through a projection: ``(P mu_k, P Sigma_k P^T)``.

    Parameters
    ----------
    means : ndarray of shape (n_components, n_features)
        Full-space means.
    covariances : ndarray of shape (n_components, n_features, n_features)
        Full-space covariances.
    projection : ndarray of shape (n_dims, n_features) or None
        ``P``; None is the identity (the parameters are returned as they are).

    Returns
    -------
    means : ndarray of shape (n_components, n_dims)
        Projected means.
    covariances : ndarray of shape (n_components, n_dims, n_dims)
        Projected covariances.
    """
    if projection is None:
        return means, covariances
    return means @ projection.T, projection @ covariances @ projection.T
