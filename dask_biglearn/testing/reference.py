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

Missing values (NaN in ``X``) follow exact EM on incomplete data (Ghahramani and Jordan 1994;
maximum likelihood of the observed values, valid when values are missing at random), row by
row, in the pass's space ``y = P x``:

* ``P`` the identity or a coordinate subset (every row of ``P`` a row of the identity): a row's
  observed coordinates in ``y``-space are the selected ones it observes; its log-density is
  the observed marginal ``log N(y_O | mu_O, S_OO)`` of the projected model, its responsibilities
  follow from those, and its statistics from its completion under each component
  (:func:`reference_conditional`): ``N_k = sum r``, ``S1_k = sum r yhat_k`` and
  ``S2_k = sum r (yhat_k yhat_k^T + C_k)``;
* ``P`` a rotation within the coordinate subset ``T`` of its non-zero columns: only the rows
  observed on all of ``T`` take part, and on those the pass is the complete-data pass;
* a row with no observed coordinate in the pass's space is left out of the pass: it adds
  nothing to the statistics, the log-likelihood, nor the row count ``n`` of the divisor floor
  and the weights.

The M-step is then unchanged (two-pass: the scatter of the completed rows about the new mean,
plus the responsibility-weighted conditional covariances). Data without NaN takes exactly the
complete-data code path.
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


# ---- missing values: completion and E-step ----


def reference_conditional(x, mean, covariance):
    r"""The completion of one row with missing values under one Gaussian.

    Parameters
    ----------
    x : array-like of shape (n_features,)
        The row; NaN marks a missing value.
    mean : ndarray of shape (n_features,)
        The Gaussian's mean ``mu``.
    covariance : ndarray of shape (n_features, n_features)
        The Gaussian's covariance ``S``, positive definite.

    Returns
    -------
    completed : ndarray of shape (n_features,)
        ``E[x | x_O]``: the observed values, and the conditional mean on the missing ones.
    conditional_covariance : ndarray of shape (n_features, n_features)
        ``Cov[x | x_O]``: zero on the observed rows and columns.

    Notes
    -----
    With ``O`` the observed coordinates and ``M`` the missing ones,

    .. math::

        \hat x_M = \mu_M + S_{MO} S_{OO}^{-1} (x_O - \mu_O), \qquad
        C_{MM} = S_{MM} - S_{MO} S_{OO}^{-1} S_{OM}.

    A row with nothing observed completes to ``(mean, covariance)``; a row with nothing
    missing to ``(x, 0)``. ``C`` is returned symmetrised (it is symmetric exactly).

    References
    ----------
    Ghahramani, Z. and Jordan, M. I., "Supervised learning from incomplete data via an EM
    approach", NIPS 1994.
    """
    x = np.asarray(x, dtype=np.float64)
    mean = np.asarray(mean, dtype=np.float64)
    covariance = np.asarray(covariance, dtype=np.float64)
    missing = np.isnan(x)
    observed = ~missing
    completed = x.copy()
    conditional = np.zeros_like(covariance)
    if not missing.any():
        return completed, conditional
    s_oo = covariance[observed][:, observed]
    s_mo = covariance[missing][:, observed]
    s_mm = covariance[missing][:, missing]
    completed[missing] = mean[missing] + s_mo @ np.linalg.solve(s_oo, x[observed]
                                                                 - mean[observed])
    c_mm = s_mm - s_mo @ np.linalg.solve(s_oo, s_mo.T)
    conditional[np.ix_(missing, missing)] = 0.5 * (c_mm + c_mm.T)
    return completed, conditional


def _log_weights(weights):
    """``log pi_k``, with ``-inf`` for an empty component."""
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(weights, dtype=np.float64))


def _complete_log_prob(Y, weights, means_y, covs_y):
    """``log pi_k + log N(y_n | mu_k, S_k)`` of complete rows, shape ``(n, K)``."""
    n = len(Y)
    log_prob = np.empty((n, len(weights)))
    for j, (mu_y, cov_y) in enumerate(zip(means_y, covs_y, strict=True)):
        with np.errstate(divide="ignore"):
            log_w = np.log(weights[j])
        log_prob[:, j] = log_w + multivariate_normal(mu_y, cov_y).logpdf(Y).reshape(n)
    return log_prob


def _incomplete_e_step(Y, weights, means_y, covs_y, *, complete=True):
    """Per row: the observed-data log-probabilities ``log pi_k + log N(y_O | mu_kO, S_kOO)``
    and the completions (:func:`reference_conditional`) of the rows with at least one
    observed value (the others are left out; the kept rows keep their order).

    Returns ``log_prob`` of shape ``(n_kept, K)``, and with ``complete``, ``completed`` of
    shape ``(n_kept, K, m)`` and ``conditional`` of shape ``(n_kept, K, m, m)``.
    """
    Y = Y[~np.isnan(Y).all(axis=1)]
    observed = ~np.isnan(Y)
    log_w = _log_weights(weights)
    k, (n, m) = len(weights), Y.shape
    log_prob = np.empty((n, k))
    completed = np.empty((n, k, m))
    conditional = np.empty((n, k, m, m))
    # The rows of one missingness pattern share their observed marginal: one frozen
    # distribution per (pattern, component) instead of one per (row, component).
    for pattern in np.unique(observed, axis=0):
        rows = np.flatnonzero((observed == pattern).all(axis=1))
        for j in range(k):
            marginal = multivariate_normal(means_y[j][pattern],
                                           covs_y[j][np.ix_(pattern, pattern)])
            log_prob[rows, j] = log_w[j] + marginal.logpdf(Y[np.ix_(rows, pattern)]).reshape(-1)
            if complete:
                for i in rows:
                    completed[i, j], conditional[i, j] = reference_conditional(
                        Y[i], means_y[j], covs_y[j])
    if not complete:
        return log_prob
    return log_prob, completed, conditional


# ---- the reference update ----


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
        The data; NaN marks a missing value (see the module docstring).
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
        Mean log-likelihood of the incoming parameters in the projected space (of the
        observed values, over the rows that take part).

    Raises
    ------
    ValueError
        If no row takes part in the pass.
    """
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    P = np.eye(d) if projection is None else np.asarray(projection, dtype=np.float64)
    k = len(weights)
    means_y = [P @ means[j] for j in range(k)]
    covs_y = [P @ covariances[j] @ P.T for j in range(k)]
    if not np.isnan(X).any():
        Y = X @ P.T
    elif _selects_coordinates(P):
        # Selecting a coordinate reads only that coordinate: the others may be NaN.
        Y = X[:, np.argmax(P, axis=1)]
    else:
        # XXX: a rotation mixes the coordinates of its subset T; only the rows observed on
        # all of T take part (ALGORITHM.md leaves the rule open; issue 24 sets it).
        subset = np.any(P != 0, axis=0)
        Y = X[~np.isnan(X[:, subset]).any(axis=1)][:, subset] @ P[:, subset].T
    if np.isnan(Y).any():
        log_prob, completed, conditional = _incomplete_e_step(Y, weights, means_y, covs_y)
        n = len(log_prob)
    else:
        log_prob = _complete_log_prob(Y, weights, means_y, covs_y)
        completed = conditional = None
        n = len(Y)
    if n == 0:
        raise ValueError("no row has an observed coordinate in the pass's space "
                         f"(projection of shape {P.shape}): the update is undefined")
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
    new_covs_y = []
    for j in range(k):
        rows = Y if completed is None else completed[:, j]
        mu_y = (resp[:, j] @ rows + (divisor[j] - nk[j]) * center_y) / divisor[j]
        diff = rows - mu_y
        scatter = (resp[:, j, None] * diff).T @ diff
        if conditional is not None:
            # E[(y - mu)(y - mu)^T | y_O] = (yhat - mu)(yhat - mu)^T + C.
            scatter = scatter + np.einsum("n,nab->ab", resp[:, j], conditional[:, j])
        new_means[j] = mu_y if projection is None else means[j] + P.T @ (mu_y - P @ means[j])
        new_covs_y.append(scatter / divisor[j])
    if covariance_type == "tied":
        pooled = sum(c * n for c, n in zip(new_covs_y, divisor, strict=True)) / divisor.sum()
        new_covs_y = [pooled] * k
    for j in range(k):
        cov_y = (np.diag(np.maximum(np.diag(new_covs_y[j]), covariance_floor)) if diagonal
                 else reference_floor(new_covs_y[j], covariance_floor))
        if projection is not None:
            cov_y = covariances[j] + P.T @ (cov_y - P @ covariances[j] @ P.T) @ P
        new_covs[j] = reference_constrain(cov_y, covariance_type, covariance_floor)
    return new_weights, new_means, new_covs, float(log_norm.mean())


def reference_log_likelihood(X, weights, means, covariances):
    """Mean joint log-likelihood per sample (of the observed values, for rows with NaN).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The data; NaN marks a missing value. A row's log-likelihood is that of its observed
        values, ``log sum_k pi_k N(x_O | mu_kO, Sigma_kOO)``; a row with nothing observed is
        left out of the mean.
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

    Raises
    ------
    ValueError
        If no row has an observed value.
    """
    X = np.asarray(X, dtype=np.float64)
    if np.isnan(X).any():
        log_prob = _incomplete_e_step(X, weights, means, covariances, complete=False)
        if len(log_prob) == 0:
            raise ValueError("no row has an observed value: the log-likelihood is undefined")
        return float(logsumexp(log_prob, axis=1).mean())
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
        The data; NaN marks a missing value (see :func:`reference_em_update`).
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
