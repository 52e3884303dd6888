"""A dense NumPy/SciPy reference of BigLearn-EM: small, slow and obviously correct.

It forms the full ``(n_samples, n_components)`` responsibilities, computes log-densities with
``scipy.stats.multivariate_normal`` and covariances two-pass, exactly as ALGORITHM.md states the
update. The engine and the distributed path are tested against it.

Covariance types are kept, as the library keeps them, as ``K`` full matrices that satisfy the
type; an update is the projected M-step of the type, mapped back, then projected onto the
type (:func:`reference_constrain`):

* ``"full"``: the per-component M-step;
* ``"tied"``: the pooled scatter ``sum_k scatter_k / sum_k N_k`` shared by all components;
* ``"diag"``, ``"spherical"``: through the identity or a coordinate subset the projected model
  is diagonal and its M-step keeps only the variances; through a rotation it is the full
  M-step; mapped back, the new covariance keeps its diagonal (``"diag"``) or the mean of its
  diagonal times the identity (``"spherical"``).
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

NK_FLOOR_FRACTION = 1e-5


def reference_floor(covariance, floor):
    """Eigenvalue floor ``V diag(max(L, floor)) V^T`` of one symmetric matrix.

    Parameters
    ----------
    covariance : ndarray of shape (n_features, n_features)
        A (nearly) symmetric matrix.
    floor : float
        Smallest eigenvalue allowed.

    Returns
    -------
    ndarray of shape (n_features, n_features)
        The floored, symmetric matrix.
    """
    covariance = 0.5 * (covariance + covariance.T)
    L, V = np.linalg.eigh(covariance)
    out = (V * np.maximum(L, floor)) @ V.T
    return 0.5 * (out + out.T)


def _selects_coordinates(P) -> bool:
    """Whether every row of ``P`` is a row of the identity."""
    return bool(np.all(np.sort(P, axis=1)[:, -1] == 1.0)
                and np.all(np.count_nonzero(P, axis=1) == 1))


def reference_constrain(covariance, covariance_type, floor):
    """One mapped-back covariance projected onto a type's constraint, floored.

    Parameters
    ----------
    covariance : ndarray of shape (n_features, n_features)
    covariance_type : {"full", "tied", "diag", "spherical"}
        ``"full"`` and ``"tied"`` keep the matrix (a tied update is shared already).
    floor : float

    Returns
    -------
    ndarray of shape (n_features, n_features)
    """
    if covariance_type in ("full", "tied"):
        return reference_floor(covariance, floor)
    variances = np.diag(covariance).copy()
    if covariance_type == "spherical":
        variances[:] = variances.mean()
    return np.diag(np.maximum(variances, floor))


def reference_em_update(X, weights, means, covariances, projection=None, *,
                        covariance_floor, weight_concentration, shrink_center=None,
                        covariance_type="full"):
    """One EM update in the space ``y = P x`` (``projection=None``: the identity).

    When a component's mass ``N_k`` is below ``1e-5 N`` its divisor is floored at ``1e-5 N``;
    the missing mass ``1e-5 N - N_k`` sits at ``shrink_center`` (the library uses the data
    mean, so that fits do not depend on where the origin is; ALGORITHM.md's reference code
    uses the origin, the default here).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The data.
    weights : ndarray of shape (n_components,)
        Current weights.
    means : ndarray of shape (n_components, n_features)
        Current means.
    covariances : ndarray of shape (n_components, n_features, n_features)
        Current covariances.
    projection : array-like of shape (n_dims, n_features), optional
        ``P``, orthonormal rows; None is the identity.
    covariance_floor : float
        Smallest eigenvalue allowed in the new covariances.
    weight_concentration : float
        ``alpha`` of the weight smoothing (0: plain EM).
    shrink_center : ndarray of shape (n_features,), optional
        Where the missing mass of a floored divisor sits; None is the origin.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        The type of the covariances (given as full matrices of the type) and of the update
        (see the module docstring).

    Returns
    -------
    weights : ndarray of shape (n_components,)
        New weights.
    means : ndarray of shape (n_components, n_features)
        New full-space means.
    covariances : ndarray of shape (n_components, n_features, n_features)
        New full-space covariances.
    mean_log_likelihood : float
        Mean log-likelihood of the incoming parameters in the projected space.
    """
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    P = np.eye(d) if projection is None else np.asarray(projection, dtype=np.float64)
    Y = X @ P.T
    k = len(weights)
    log_prob = np.empty((n, k))
    for j in range(k):
        mu_y = P @ means[j]
        cov_y = P @ covariances[j] @ P.T
        with np.errstate(divide="ignore"):
            log_w = np.log(weights[j])
        log_prob[:, j] = log_w + multivariate_normal(mu_y, cov_y).logpdf(Y).reshape(n)
    log_norm = logsumexp(log_prob, axis=1)
    resp = np.exp(log_prob - log_norm[:, None])
    nk = resp.sum(axis=0)
    divisor = np.maximum(nk, NK_FLOOR_FRACTION * n)
    center_y = np.zeros(len(P)) if shrink_center is None else P @ shrink_center
    new_weights = nk / n + weight_concentration
    new_weights /= new_weights.sum()
    new_means = np.empty_like(means)
    new_covs = np.empty_like(covariances)
    diagonal = covariance_type in ("diag", "spherical") and _selects_coordinates(P)
    covs_y = []
    for j in range(k):
        mu_y = (resp[:, j] @ Y + (divisor[j] - nk[j]) * center_y) / divisor[j]
        diff = Y - mu_y
        scatter = (resp[:, j, None] * diff).T @ diff
        new_means[j] = mu_y if projection is None else means[j] + P.T @ (mu_y - P @ means[j])
        covs_y.append(scatter / divisor[j])
    if covariance_type == "tied":
        pooled = sum(c * n for c, n in zip(covs_y, divisor, strict=True)) / divisor.sum()
        covs_y = [pooled] * k
    for j in range(k):
        cov_y = (np.diag(np.maximum(np.diag(covs_y[j]), covariance_floor)) if diagonal
                 else reference_floor(covs_y[j], covariance_floor))
        if projection is not None:
            cov_y = covariances[j] + P.T @ (cov_y - P @ covariances[j] @ P.T) @ P
        new_covs[j] = reference_constrain(cov_y, covariance_type, covariance_floor)
    return new_weights, new_means, new_covs, float(log_norm.mean())


def reference_log_likelihood(X, weights, means, covariances):
    """Mean joint log-likelihood per sample.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The data.
    weights : ndarray of shape (n_components,)
        Mixture weights.
    means : ndarray of shape (n_components, n_features)
        Component means.
    covariances : ndarray of shape (n_components, n_features, n_features)
        Component covariances.

    Returns
    -------
    float
        ``mean_n log sum_k pi_k N(x_n | mu_k, Sigma_k)``.
    """
    X = np.asarray(X, dtype=np.float64)
    log_prob = np.column_stack([
        np.log(w) + multivariate_normal(m, c).logpdf(X).reshape(len(X))
        for w, m, c in zip(weights, means, covariances, strict=True)
    ])
    return float(logsumexp(log_prob, axis=1).mean())


def reference_biglearn_em(X, weights, means, covariances, *, schedule, rng, max_iter,
                          n_inner_iter, check_every, covariance_floor, weight_concentration,
                          shrink_center=None, covariance_type="full"):
    """The whole BigLearn-EM loop on the reference update; returns the best checked params.

    Draws its projections from ``schedule`` and ``rng`` exactly as the library does, so a
    library fit from the same state must follow the same path.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        The data.
    weights : ndarray of shape (n_components,)
        Initial weights.
    means : ndarray of shape (n_components, n_features)
        Initial means.
    covariances : ndarray of shape (n_components, n_features, n_features)
        Initial covariances.
    schedule : MatchingSchedule
        The law of each outer iteration's projection.
    rng : numpy.random.Generator
        Source of the projections.
    max_iter : int
        Number of outer iterations.
    n_inner_iter : int
        EM updates per outer iteration, all in its projected space.
    check_every : int
        The joint log-likelihood is checked every ``check_every`` outer iterations and after
        the last one.
    covariance_floor : float
        Smallest eigenvalue allowed in the covariances.
    weight_concentration : float
        ``alpha`` of the weight smoothing (0: plain EM).
    shrink_center : ndarray of shape (n_features,), optional
        Where the missing mass of a floored divisor sits (see :func:`reference_em_update`).
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        The covariances' type (see :func:`reference_em_update`).

    Returns
    -------
    best_params : tuple of ndarray or None
        ``(weights, means, covariances)`` of the best checked iteration.
    best_log_likelihood : float
        Its mean joint log-likelihood.
    kinds : list of str
        The matching kind of every outer iteration.
    """
    best = (-np.inf, None)
    kinds = []
    for it in range(1, max_iter + 1):
        projection = schedule.sample(rng, X.shape[1])
        kinds.append(projection.kind)
        for _ in range(n_inner_iter):
            weights, means, covariances, _ = reference_em_update(
                X, weights, means, covariances, projection.matrix,
                covariance_floor=covariance_floor, weight_concentration=weight_concentration,
                shrink_center=shrink_center, covariance_type=covariance_type,
            )
        if it % check_every == 0 or it == max_iter:
            ll = reference_log_likelihood(X, weights, means, covariances)
            if ll > best[0]:
                best = (ll, (weights, means, covariances))
    return best[1], best[0], kinds
