"""Driver math of projected EM for Gaussian mixtures of every covariance type.

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

Covariance types (scikit-learn's): ``"full"``, ``"tied"`` (one covariance shared by all
components), ``"diag"`` and ``"spherical"`` (``sigma_k^2 I``). What depends on the type is
asked of the type table (:mod:`dask_biglearn.covariances`); the functions of scikit-learn's
shapes here (:func:`typed_covariances`, ...) are its entries by name. The driver keeps every
type as a stack of ``K`` full ``D x D`` matrices that satisfy the type's constraint; the
passes and the M-step use the type's structure:

* **diag, spherical**: a pass through the identity or a coordinate subset sees diagonal
  projected covariances, so it runs on the diagonal features (``O(N K m)``,
  :func:`diagonal_estep_coefficients`) and returns only the diagonals of the second moments;
  the M-step is then per coordinate (:func:`projected_m_step`).
* **tied**: the projected M-step pools the components' scatter (``sum_k scatter_k / N``),
  so the update stays shared through any projection.
* **every type, every matching**: the projected update is mapped back
  (``Sigma + P^T (S~ - P Sigma P^T) P``) and then projected onto the type's constraint
  (:func:`constrain_covariances`, the nearest matrix of the type in the Frobenius norm, for
  ``tied`` the weighted mean). For the identity and for coordinate subsets this changes
  nothing but the spherical average: a marginal update of a diagonal (or tied) model is
  exact. A rotated-marginal update of a diagonal model keeps the new diagonal of the
  mapped-back full matrix (``diag(Sigma + P^T (S~ - P Sigma P^T) P)``), of a spherical one
  its mean eigenvalue (``trace / D``); it is the exact projected M-step followed by that
  projection, which need not raise the projected likelihood as far as an unconstrained
  update would.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .covariances import (
    COVARIANCE_TYPES,  # noqa: F401 (re-exported: the estimators', the CLI's)
    NOT_POSITIVE_DEFINITE,
    CholeskyError,
    diagonal_matrices,
    floor_eigenvalues,
    precision_cholesky,
    symmetrize,
    type_entry,
)
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


def is_diagonal_type(covariance_type: str) -> bool:
    """Whether the type's covariances are diagonal.

    Parameters
    ----------
    covariance_type : {"full", "tied", "diag", "spherical"}

    Returns
    -------
    bool
        True for ``"diag"`` and ``"spherical"`` (the table's ``diagonal``).
    """
    return type_entry(covariance_type).diagonal


def selects_coordinates(projection) -> bool:
    """Whether a projection keeps a diagonal covariance diagonal.

    Parameters
    ----------
    projection : ndarray of shape (n_dims, n_features) or None
        ``P``; None is the identity.

    Returns
    -------
    bool
        True for the identity and for rows of it (a coordinate subset).
    """
    if projection is None:
        return True
    P = np.asarray(projection)
    return bool(np.count_nonzero(P) == P.shape[0] and np.all(P.max(axis=1) == 1.0))


def selected_coordinates(projection) -> np.ndarray:
    """The coordinates a coordinate-subset projection keeps.

    Parameters
    ----------
    projection : ndarray of shape (n_dims, n_features)
        Rows of the identity (:func:`selects_coordinates`).

    Returns
    -------
    ndarray of shape (n_dims,)
        The index of each row's one, in the rows' order.
    """
    return np.argmax(projection, axis=1)


# ---- Covariance types -----------------------------------------------------------------------


def constrain_covariances(covariances: np.ndarray, covariance_type: str, floor: float,
                          weights=None) -> np.ndarray:
    """Project full covariances onto a type's constraint, floored.

    The type table's ``project``. ``"full"``: the eigenvalue floor only. ``"diag"``: the
    diagonals (off-diagonal entries dropped), each at least ``floor``. ``"spherical"``:
    ``trace / D`` times the identity, at least ``floor``. ``"tied"``: the
    ``weights``-weighted mean of the matrices (the first matrix unchanged when they are all
    equal), floored in its eigenvalues, for every component. Each is the nearest matrix of
    its type in the Frobenius norm (``tied``: the weighted one).

    Parameters
    ----------
    covariances : ndarray of shape (n_components, n_features, n_features)
        Symmetric matrices.
    covariance_type : {"full", "tied", "diag", "spherical"}
    floor : float
        Smallest eigenvalue allowed.
    weights : ndarray of shape (n_components,), optional
        Component weights of the ``tied`` mean (equal when None).

    Returns
    -------
    ndarray of shape (n_components, n_features, n_features)
        Covariances of the type, symmetric, eigenvalues at least ``floor``.
    """
    return type_entry(covariance_type).project(covariances, floor, weights)


def constrain_params(params, covariance_type: str, floor: float):
    """Mixture parameters with covariances of a type.

    Parameters
    ----------
    params : MixtureParams
        Weights, means and full covariances (a start, or a move's candidate).
    covariance_type : {"full", "tied", "diag", "spherical"}
    floor : float
        Smallest eigenvalue allowed.

    Returns
    -------
    MixtureParams
        ``params`` itself for a type that constrains nothing (``"full"``), else with
        :func:`constrain_covariances` of its covariances (``"tied"``: their mean weighted by
        the mixture's weights).
    """
    if not type_entry(covariance_type).constrains:
        return params
    return type(params)(params.weights, params.means,
                        constrain_covariances(params.covariances, covariance_type, floor,
                                              params.weights))


# ---- scikit-learn's shapes per covariance type ----------------------------------------------


def typed_shape(covariance_type: str, n_components: int, n_features: int) -> tuple:
    """scikit-learn's shape of the covariances (and precisions) of a type.

    Parameters
    ----------
    covariance_type : {"full", "tied", "diag", "spherical"}
    n_components, n_features : int

    Returns
    -------
    tuple of int
        ``(K, D, D)`` full, ``(D, D)`` tied, ``(K, D)`` diag, ``(K,)`` spherical.
    """
    return type_entry(covariance_type).shape(n_components, n_features)


def typed_covariances(covariances: np.ndarray, covariance_type: str) -> np.ndarray:
    """The driver's ``K`` full matrices in scikit-learn's shape for the type.

    Parameters
    ----------
    covariances : ndarray of shape (n_components, n_features, n_features)
        Covariances that satisfy the type's constraint.
    covariance_type : {"full", "tied", "diag", "spherical"}

    Returns
    -------
    ndarray
        ``(K, D, D)`` full, ``(D, D)`` tied, ``(K, D)`` diag, ``(K,)`` spherical.
    """
    return type_entry(covariance_type).from_full(covariances)


def full_covariances(covariances, covariance_type: str, n_components: int,
                     n_features: int) -> np.ndarray:
    """scikit-learn's covariances of a type as ``K`` full matrices (the inverse of
    :func:`typed_covariances`).

    Parameters
    ----------
    covariances : ndarray
        ``(K, D, D)`` full, ``(D, D)`` tied, ``(K, D)`` diag, ``(K,)`` spherical.
    covariance_type : {"full", "tied", "diag", "spherical"}
    n_components, n_features : int
        ``K`` and ``D`` (which a tied or spherical covariance does not show).

    Returns
    -------
    ndarray of shape (n_components, n_features, n_features)
    """
    return type_entry(covariance_type).to_full(covariances, n_components, n_features)


def typed_precisions_cholesky(covariances, covariance_type: str) -> np.ndarray:
    """scikit-learn's ``precisions_cholesky_`` from its ``covariances_`` of a type.

    Parameters
    ----------
    covariances : ndarray
        In scikit-learn's shape for the type (:func:`typed_covariances`).
    covariance_type : {"full", "tied", "diag", "spherical"}

    Returns
    -------
    ndarray
        Of the same shape: ``inv(L)^T`` of each full (or the tied) covariance, ``1 /
        sqrt(variance)`` of each diagonal or spherical one.

    Raises
    ------
    CholeskyError
        If a covariance is not positive definite.
    """
    return type_entry(covariance_type).precisions_cholesky(covariances)


def typed_precisions(precisions_cholesky, covariance_type: str) -> np.ndarray:
    """scikit-learn's ``precisions_`` from its ``precisions_cholesky_`` of a type.

    Parameters
    ----------
    precisions_cholesky : ndarray
        In scikit-learn's shape for the type (:func:`typed_precisions_cholesky`).
    covariance_type : {"full", "tied", "diag", "spherical"}

    Returns
    -------
    ndarray
        Of the same shape: ``U U^T`` (full, tied), ``U^2`` (diag, spherical).
    """
    return type_entry(covariance_type).precisions(precisions_cholesky)


def n_covariance_parameters(covariance_type: str, n_components: int, n_features: int) -> int:
    """Free parameters of the covariances of a type (scikit-learn's count).

    Parameters
    ----------
    covariance_type : {"full", "tied", "diag", "spherical"}
    n_components, n_features : int

    Returns
    -------
    int
        ``K D (D + 1) / 2`` full, ``D (D + 1) / 2`` tied, ``K D`` diag, ``K`` spherical.
    """
    return type_entry(covariance_type).n_parameters(n_components, n_features)


def n_mixture_parameters(covariance_type: str, n_components: int, n_features: int) -> int:
    """Free parameters of a mixture (scikit-learn's count, for BIC and AIC).

    Parameters
    ----------
    covariance_type : {"full", "tied", "diag", "spherical"}
    n_components, n_features : int

    Returns
    -------
    int
        Covariances (:func:`n_covariance_parameters`), ``K D`` means and ``K - 1`` weights.
    """
    k, d = n_components, n_features
    return int(n_covariance_parameters(covariance_type, k, d) + k * d + k - 1)


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
            raise CholeskyError(f"Component {failed}: {NOT_POSITIVE_DEFINITE}")
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


def diagonal_estep_coefficients(weights, means, variances, shift) -> np.ndarray:
    """:func:`estep_coefficients` of diagonal covariances, for the diagonal features.

    ``log pi_k + log N(y | mu_k, diag(v_k))`` is linear in ``[1, y', y'^2]`` (``y' = y -
    shift``) with coefficients ``c_k``, ``(mu_k - shift) / v_k`` and ``-1 / (2 v_k)``.

    Parameters
    ----------
    weights : ndarray of shape (n_components,)
        Mixture weights (floored at the smallest positive float).
    means : ndarray of shape (n_components, n_dims)
        Component means (projected on a coordinate subset, for a marginal pass).
    variances : ndarray of shape (n_components, n_dims)
        The diagonals of the covariances, positive.
    shift : ndarray of shape (n_dims,)
        Centre of the features.

    Returns
    -------
    theta : ndarray of shape (1 + 2 n_dims, n_components)
        Row 0 the constants, rows ``1..n_dims`` the linear terms, then the squares' terms.

    Raises
    ------
    CholeskyError
        If a (finite) variance is not positive.
    """
    k, m = means.shape
    variances = np.asarray(variances, dtype=np.float64)
    if np.any(variances <= 0) and np.all(np.isfinite(variances)):
        raise CholeskyError(NOT_POSITIVE_DEFINITE)
    precisions = 1.0 / variances
    nu = means - shift
    log_weights = np.log(np.maximum(weights, TINY))
    theta = np.empty((1 + 2 * m, k))
    theta[0] = (log_weights - 0.5 * m * LOG_2PI - 0.5 * np.log(variances).sum(axis=1)
                - 0.5 * np.einsum("ki,ki->k", nu * precisions, nu))
    theta[1 : 1 + m] = (nu * precisions).T
    theta[1 + m :] = -0.5 * precisions.T
    return theta


# ---- M-step, map back, weights ----------------------------------------------------------------


def projected_m_step(stats: SuffStats, shift_y, covariance_floor: float,
                     reg_covar: float = 0.0, covariance_type: str = "full"):
    """Closed-form M-step in the projected space from shifted sufficient statistics.

    With ``N = stats.n_rows`` and ``f_k = max(1e-5, N_k / N)`` (the divisor floor of the
    reference): ``mu~_k = s_k / (N f_k)`` and
    ``S~_k = sum_n r_nk (y_n - mu~_k)(y_n - mu~_k)^T / (N f_k)``, obtained from the shifted
    moments by an exact rank-one correction; then ``reg_covar`` is added to the diagonal
    (scikit-learn's regularisation) and the eigenvalue floor applied.

    The type table's ``pool`` then gives the type's M-step: ``covariance_type="tied"``
    pools the scatter, ``S~ = sum_k scatter_k / sum_k N_k`` for every component. The
    statistics of a diagonal pass (second moments of shape ``(K, m)``) give diagonal
    covariances, per coordinate: the M-step of ``"diag"``, and of ``"spherical"`` before
    :func:`constrain_covariances` averages them.

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
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        ``"tied"`` pools the scatter; the others are the per-component M-step.

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
    if stats.second_moment.ndim == 2:  # a diagonal pass: per coordinate
        scatter = (stats.second_moment - 2 * mean_shifted * stats.first_moment
                   + nk[:, None] * mean_shifted**2)
        variances = np.maximum(scatter / divisor[:, None] + reg_covar, covariance_floor)
        return mean_shifted + shift_y, diagonal_matrices(variances)
    # sum r (y' - a)(y' - a)^T = M - a s^T - s a^T + N_k a a^T, with a = mean_shifted.
    outer_as = mean_shifted[:, :, None] * stats.first_moment[:, None, :]
    scatter = (
        stats.second_moment
        - outer_as
        - np.swapaxes(outer_as, 1, 2)
        + nk[:, None, None] * mean_shifted[:, :, None] * mean_shifted[:, None, :]
    )
    covariances = scatter / divisor[:, None, None]
    covariances = type_entry(covariance_type).pool(covariances, divisor)
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


def map_back(means, covariances, new_means_y, new_covs_y, projection, covariance_floor,
             covariance_type: str = "full", weights=None):
    """Write a projected update back into the full space.

    ``mu <- mu + P^T (mu~ - P mu)`` and
    ``Sigma <- floor(Sigma + P^T (S~ - P Sigma P^T) P)``: the block of the (rotated)
    parameters seen through ``P`` is replaced, the rest is kept. ``projection=None`` is the
    joint update, where the new parameters simply replace the old. A constrained
    ``covariance_type`` is then projected onto its constraint (the type table's
    ``project``, :func:`constrain_covariances`).

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
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        The constraint the new covariances are projected onto.
    weights : ndarray of shape (n_components,), optional
        The new weights (``"tied"``: the weights of its mean, when the matrices differ).

    Returns
    -------
    means : ndarray of shape (n_components, n_features)
        New full-space means.
    covariances : ndarray of shape (n_components, n_features, n_features)
        New full-space covariances.
    """
    entry = type_entry(covariance_type)
    if projection is None:
        if not entry.constrains:  # the M-step's are floored already
            return new_means_y, new_covs_y
        return new_means_y, entry.project(new_covs_y, covariance_floor, weights)
    P = projection
    means = means + (new_means_y - means @ P.T) @ P
    if entry.diagonal and selects_coordinates(P):
        # Only the selected diagonal entries change: no D x D products.
        index = selected_coordinates(P)
        variances = np.diagonal(covariances, axis1=1, axis2=2).copy()
        variances[:, index] = np.diagonal(new_covs_y, axis1=1, axis2=2)
        return means, entry.project(diagonal_matrices(variances), covariance_floor, weights)
    delta = new_covs_y - P @ covariances @ P.T
    # symmetrize leaves a symmetric matrix exactly as it is: floor_eigenvalues (the full
    # type's projection) symmetrises once more at no change.
    return means, entry.project(symmetrize(covariances + P.T @ delta @ P), covariance_floor,
                                weights)


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
