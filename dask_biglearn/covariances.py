"""The type table: per covariance type, what it stores and every operation that depends on it.

scikit-learn's four covariance types (``"full"``, ``"tied"``: one covariance shared by all
components, ``"diag"``, ``"spherical"``: ``sigma_k^2 I``) each have one entry in
:data:`TYPE_TABLE`, a :class:`CovarianceType`: its stored shape and parameter count, its
conversions to and from ``K`` full matrices, its precisions and their Cholesky factors, its
projection onto the type, the M-step's pooling, the variances a model file's range check reads,
and the draws of ``sample``. Every other module asks the table (:func:`type_entry`) instead of
branching on the type's name, as scikit-learn dispatches its M-step through a dict
(``{"full": _estimate_gaussian_covariances_full, ...}[covariance_type]``).

The driver keeps every type as a stack of ``K`` full ``D x D`` matrices that satisfy the type
(:mod:`dask_biglearn.algebra`). The entries meet that representation in ``to_full``,
``from_full``, ``project`` and ``pool`` only: storing each type in its own shape changes these
entries, not the modules that ask them.

The symmetric-matrix helpers the entries are built from (symmetric part, eigenvalue floor,
Cholesky factors of the precisions) live here too, below the driver's algebra, which re-exports
them. This module imports only NumPy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

_TINY = np.finfo(np.float64).tiny

# ---- Symmetric matrices: repair and factors -------------------------------------------------


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


def diagonal_matrices(variances: np.ndarray) -> np.ndarray:
    """Diagonal matrices from their diagonals.

    Parameters
    ----------
    variances : ndarray of shape (n_matrices, n_dims)

    Returns
    -------
    ndarray of shape (n_matrices, n_dims, n_dims)
    """
    k, m = variances.shape
    out = np.zeros((k, m, m))
    out[:, np.arange(m), np.arange(m)] = variances
    return out


class CholeskyError(np.linalg.LinAlgError):
    """A covariance matrix is not numerically positive definite."""


#: The message of a :class:`CholeskyError`: what happened, and what to do about it.
NOT_POSITIVE_DEFINITE = (
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
        raise CholeskyError(NOT_POSITIVE_DEFINITE) from exc


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


# ---- The entries' functions, shared by several types -----------------------------------------


def _unchanged(array):
    """The array itself: a conversion a type does not need."""
    return array


def _per_component(covariances: np.ndarray, nk: np.ndarray) -> np.ndarray:
    """The M-step's covariances of each component, not pooled."""
    return covariances


def _no_matrices(variances) -> None:
    """A diagonal type stores variances, no matrices."""


def _matrix_diagonals(matrices: np.ndarray) -> np.ndarray:
    """The diagonals of a matrix (``(D,)``) or of a stack of them (``(K, D)``)."""
    return np.diagonal(matrices, axis1=-2, axis2=-1)


def _outer_products(precisions_cholesky: np.ndarray) -> np.ndarray:
    """Precisions ``U U^T`` from their Cholesky factors, of one matrix or of a stack."""
    return precisions_cholesky @ np.swapaxes(precisions_cholesky, -1, -2)


def _squares(precisions_cholesky: np.ndarray) -> np.ndarray:
    """Precisions of variances from their Cholesky factors (their square roots)."""
    return precisions_cholesky**2


def _inverse_square_roots(variances: np.ndarray) -> np.ndarray:
    """The Cholesky factors ``1 / sqrt(v)`` of the precisions of positive variances.

    Raises
    ------
    CholeskyError
        If a variance is not positive.
    """
    if not np.all(variances > 0):
        raise CholeskyError(NOT_POSITIVE_DEFINITE)
    return 1.0 / np.sqrt(variances)


def _draw_full(rng, means: np.ndarray, covariances, counts: np.ndarray) -> np.ndarray:
    """``counts[k]`` draws of each component from its matrix (scikit-learn's draws)."""
    return np.vstack([rng.multivariate_normal(mean, covariance, int(count))
                      for mean, covariance, count in zip(means, covariances, counts,
                                                         strict=True)])


def _draw_scaled(rng, means: np.ndarray, variances: np.ndarray,
                 counts: np.ndarray) -> np.ndarray:
    """``counts[k]`` draws of each component from its variances: standard normal draws scaled
    by their square roots (scikit-learn's draws of the diagonal types)."""
    d = means.shape[1]
    return np.vstack([mean + rng.standard_normal(size=(int(count), d)) * np.sqrt(variance)
                      for mean, variance, count in zip(means, variances, counts, strict=True)])


# ---- full ------------------------------------------------------------------------------------


def _full_to_full(covariances, n_components: int, n_features: int) -> np.ndarray:
    """Full covariances, as float64."""
    return np.asarray(covariances, dtype=np.float64)


def _project_full(covariances: np.ndarray, floor: float, weights=None) -> np.ndarray:
    """The eigenvalue floor: every symmetric matrix is of the full type."""
    return floor_eigenvalues(covariances, floor)


# ---- tied ------------------------------------------------------------------------------------


def _first_matrix(covariances: np.ndarray) -> np.ndarray:
    """The shared covariance of ``K`` equal matrices."""
    return covariances[0].copy()


def _tied_to_full(covariance, n_components: int, n_features: int) -> np.ndarray:
    """The shared covariance, once per component."""
    covariance = np.asarray(covariance, dtype=np.float64)
    return np.broadcast_to(covariance, (n_components, *covariance.shape)).copy()


def _tied_precisions_cholesky(covariance: np.ndarray) -> np.ndarray:
    """``inv(L)^T`` of the shared covariance."""
    return precision_cholesky(covariance[None])[0]


def _project_tied(covariances: np.ndarray, floor: float, weights=None) -> np.ndarray:
    """The ``weights``-weighted mean of the matrices (equal weights when None; the first
    matrix unchanged when they are all equal), floored, for every component."""
    k, d, _ = covariances.shape
    if np.all(covariances == covariances[:1]):
        shared = covariances[0]
    else:
        w = np.full(k, 1.0 / k) if weights is None else np.asarray(weights) / np.sum(weights)
        shared = np.einsum("k,kij->ij", w, covariances)
    shared = floor_eigenvalues(shared, floor)
    return np.broadcast_to(shared, (k, d, d)).copy()


def _pool_tied(covariances: np.ndarray, nk: np.ndarray) -> np.ndarray:
    """The pooled scatter ``sum_k scatter_k / sum_k N_k`` (``scatter_k = covariances_k N_k``),
    for every component."""
    shared = np.einsum("k,kij->ij", nk, covariances) / max(float(nk.sum()), _TINY)
    return np.broadcast_to(shared, covariances.shape).copy()


def _one_matrix(covariance: np.ndarray) -> np.ndarray:
    """The shared covariance as a stack of one matrix."""
    return covariance[None]


def _draw_tied(rng, means: np.ndarray, covariance: np.ndarray,
               counts: np.ndarray) -> np.ndarray:
    """scikit-learn's draws of each component from the shared matrix."""
    return _draw_full(rng, means, [covariance] * len(counts), counts)


# ---- diag ------------------------------------------------------------------------------------


def _diagonals(covariances: np.ndarray) -> np.ndarray:
    """The variances of diagonal matrices."""
    return np.diagonal(covariances, axis1=1, axis2=2).copy()


def _diag_to_full(variances, n_components: int, n_features: int) -> np.ndarray:
    """Diagonal matrices of the variances."""
    return diagonal_matrices(np.asarray(variances, dtype=np.float64))


def _project_diag(covariances: np.ndarray, floor: float, weights=None) -> np.ndarray:
    """The diagonals (off-diagonal entries dropped), each at least ``floor``."""
    variances = np.diagonal(covariances, axis1=1, axis2=2)
    return diagonal_matrices(np.maximum(variances, floor))


# ---- spherical -------------------------------------------------------------------------------


def _mean_diagonals(covariances: np.ndarray) -> np.ndarray:
    """The variance of each spherical matrix, as the mean of its diagonal."""
    return np.diagonal(covariances, axis1=1, axis2=2).mean(axis=1)


def _spherical_to_full(variances, n_components: int, n_features: int) -> np.ndarray:
    """Each variance times the identity."""
    variances = np.asarray(variances, dtype=np.float64)
    return variances[:, None, None] * np.eye(n_features)[None]


def _project_spherical(covariances: np.ndarray, floor: float, weights=None) -> np.ndarray:
    """``trace / D`` times the identity, at least ``floor``."""
    d = covariances.shape[-1]
    variances = np.diagonal(covariances, axis1=1, axis2=2)
    variances = np.repeat(variances.mean(axis=1, keepdims=True), d, axis=1)
    return diagonal_matrices(np.maximum(variances, floor))


# ---- The table ------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class CovarianceType:
    """One covariance type: what it stores, and every operation that depends on it.

    ``K`` is the number of components, ``D`` the number of features; "typed" arrays have
    scikit-learn's shape for the type (``shape``), "full" ones are the driver's
    ``(K, D, D)`` stacks of matrices that satisfy the type.

    Parameters
    ----------
    name : str
        scikit-learn's name of the type.
    diagonal : bool
        Whether the covariances are diagonal: a pass through the identity or a coordinate
        subset then runs on the diagonal features.
    constrains : bool
        Whether the type constrains a symmetric matrix (every type but full). An
        unconstrained type's projection is the eigenvalue floor alone, which a start's
        parameters and a joint update already satisfy.
    shape : callable (K, D) -> tuple of int
        The stored shape of the covariances (and of the precisions and their factors).
    n_parameters : callable (K, D) -> int
        The covariances' free parameters (scikit-learn's count).
    from_full : callable (full covariances) -> typed covariances
        The covariances in the type's shape.
    to_full : callable (typed, K, D) -> full
        The inverse of ``from_full``, as float64; also of precisions and their factors.
    precisions_cholesky : callable (typed covariances) -> typed factors
        scikit-learn's ``precisions_cholesky_``; raises :class:`CholeskyError` if a
        covariance is not positive definite.
    precisions : callable (typed factors) -> typed precisions
        scikit-learn's ``precisions_`` from its ``precisions_cholesky_``.
    project : callable (full covariances, floor, weights=None) -> full covariances
        The nearest matrices of the type in the Frobenius norm (for tied, to the
        ``weights``-weighted mean), eigenvalues at least ``floor``.
    pool : callable (full covariances, N_k) -> full covariances
        The M-step's covariances from the per-component ones: tied pools the scatter, the
        other types keep them.
    diagonals : callable (typed covariances) -> variances
        Every variance the typed covariances hold (the diagonals of their matrices).
    matrices : callable (typed covariances) -> ndarray of shape (n, D, D) or None
        The matrices the typed covariances hold (None for the diagonal types, which hold
        variances).
    draw : callable (rng, means, typed covariances, counts) -> ndarray of shape (N, D)
        ``counts[k]`` draws of each component in turn, as scikit-learn's ``sample`` draws
        them from the same generator.
    """

    name: str
    diagonal: bool
    constrains: bool
    shape: Callable[[int, int], tuple[int, ...]]
    n_parameters: Callable[[int, int], int]
    from_full: Callable[[np.ndarray], np.ndarray]
    to_full: Callable[[np.ndarray, int, int], np.ndarray]
    precisions_cholesky: Callable[[np.ndarray], np.ndarray]
    precisions: Callable[[np.ndarray], np.ndarray]
    project: Callable[..., np.ndarray]
    pool: Callable[[np.ndarray, np.ndarray], np.ndarray]
    diagonals: Callable[[np.ndarray], np.ndarray]
    matrices: Callable[[np.ndarray], np.ndarray | None]
    draw: Callable[..., np.ndarray]

    def __repr__(self) -> str:
        return f"CovarianceType({self.name!r})"


#: The type table, by scikit-learn's name of each type.
TYPE_TABLE = {
    "full": CovarianceType(
        name="full", diagonal=False, constrains=False,
        shape=lambda k, d: (k, d, d), n_parameters=lambda k, d: k * d * (d + 1) // 2,
        from_full=_unchanged, to_full=_full_to_full,
        precisions_cholesky=precision_cholesky, precisions=_outer_products,
        project=_project_full, pool=_per_component,
        diagonals=_matrix_diagonals, matrices=_unchanged, draw=_draw_full),
    "tied": CovarianceType(
        name="tied", diagonal=False, constrains=True,
        shape=lambda k, d: (d, d), n_parameters=lambda k, d: d * (d + 1) // 2,
        from_full=_first_matrix, to_full=_tied_to_full,
        precisions_cholesky=_tied_precisions_cholesky, precisions=_outer_products,
        project=_project_tied, pool=_pool_tied,
        diagonals=_matrix_diagonals, matrices=_one_matrix, draw=_draw_tied),
    "diag": CovarianceType(
        name="diag", diagonal=True, constrains=True,
        shape=lambda k, d: (k, d), n_parameters=lambda k, d: k * d,
        from_full=_diagonals, to_full=_diag_to_full,
        precisions_cholesky=_inverse_square_roots, precisions=_squares,
        project=_project_diag, pool=_per_component,
        diagonals=_unchanged, matrices=_no_matrices, draw=_draw_scaled),
    "spherical": CovarianceType(
        name="spherical", diagonal=True, constrains=True,
        shape=lambda k, d: (k,), n_parameters=lambda k, d: k,
        from_full=_mean_diagonals, to_full=_spherical_to_full,
        precisions_cholesky=_inverse_square_roots, precisions=_squares,
        project=_project_spherical, pool=_per_component,
        diagonals=_unchanged, matrices=_no_matrices, draw=_draw_scaled),
}

#: scikit-learn's covariance types, in its order.
COVARIANCE_TYPES = tuple(TYPE_TABLE)


def type_entry(covariance_type: str) -> CovarianceType:
    """The table's entry of a covariance type.

    Parameters
    ----------
    covariance_type : {"full", "tied", "diag", "spherical"}

    Returns
    -------
    CovarianceType

    Raises
    ------
    ValueError
        If the type is not one of :data:`COVARIANCE_TYPES`.
    """
    try:
        return TYPE_TABLE[covariance_type]
    except KeyError:
        raise ValueError(f"Unknown covariance_type {covariance_type!r}; expected one of "
                         f"{COVARIANCE_TYPES}.") from None
