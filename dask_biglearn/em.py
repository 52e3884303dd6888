"""The driver: the EM iterations of plain (joint) EM and of BigLearn-EM over any engine.

An *engine* is anything with ``n_samples``, ``n_features``, ``shift`` and
``run_pass(theta, projection, need_stats) -> SuffStats`` (see :mod:`dask_biglearn.engine`).
This module owns the order of the updates, the bookkeeping and the logging; the algebra lives
in :mod:`dask_biglearn.numerics` and the randomness in :mod:`dask_biglearn.projection`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from .numerics import (
    estep_coefficients,
    map_back,
    project_params,
    projected_m_step,
    smoothed_weights,
)
from .projection import MATCHING_KINDS, MatchingSchedule, Projection

logger = logging.getLogger("dask_biglearn")


@dataclass(frozen=True)
class MixtureParams:
    """Full-space parameters of a Gaussian mixture with full covariances.

    weights : (n_components,); means : (n_components, n_features);
    covariances : (n_components, n_features, n_features).
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray


@dataclass
class FitResult:
    """What one run of a fitting loop returns."""

    params: MixtureParams
    lower_bound: float
    lower_bounds: list = field(default_factory=list)
    n_iter: int = 0
    converged: bool = False
    matchings: list = field(default_factory=list)
    best_iteration: int = 0


def em_update(engine, params: MixtureParams, projection: Projection, *, covariance_floor,
              weight_concentration):
    """One EM update in the space ``y = P x``, mapped back to the full space.

    Returns ``(new_params, mean_log_likelihood)`` where the log-likelihood is that of the
    *incoming* parameters in the projected space (the joint one when ``P`` is the identity).
    """
    P = projection.matrix
    n = engine.n_samples
    means_y, covs_y = project_params(params.means, params.covariances, P)
    shift_y = engine.shift if P is None else P @ engine.shift
    theta = estep_coefficients(params.weights, means_y, covs_y, shift_y)
    stats = engine.run_pass(theta, P, need_stats=True)
    _check_finite(stats.log_lik_sum, stats.resp_sum)
    new_means_y, new_covs_y = projected_m_step(stats, n, shift_y, covariance_floor)
    weights = smoothed_weights(stats.resp_sum, n, weight_concentration)
    means, covariances = map_back(
        params.means, params.covariances, new_means_y, new_covs_y, P, covariance_floor
    )
    return MixtureParams(weights, means, covariances), stats.log_lik_sum / n


def mean_log_likelihood(engine, params: MixtureParams) -> float:
    """Mean joint log-likelihood per sample: one E-step-only pass."""
    theta = estep_coefficients(params.weights, params.means, params.covariances, engine.shift)
    log_lik_sum = engine.run_pass(theta, None, need_stats=False).log_lik_sum
    _check_finite(log_lik_sum)
    return log_lik_sum / engine.n_samples


def _check_finite(*values):
    if not all(np.all(np.isfinite(v)) for v in values):
        raise FloatingPointError(
            "The E-step produced non-finite values: the data's squared deviations overflow "
            "or a covariance is degenerate. Scale the data (e.g. standardise it) and check "
            "covariance_floor."
        )


def fit_joint_em(engine, params: MixtureParams, *, max_iter: int, tol: float,
                 covariance_floor: float) -> FitResult:
    """Plain EM: joint updates, no weight smoothing, stop when the mean log-likelihood
    changes by less than ``tol`` between two iterations (scikit-learn's rule)."""
    lower_bounds = []
    prev = -np.inf
    converged = False
    n_iter = 0
    joint = Projection.identity()
    start = time.perf_counter()
    for n_iter in range(1, max_iter + 1):
        params, ll = em_update(engine, params, joint, covariance_floor=covariance_floor,
                               weight_concentration=0.0)
        lower_bounds.append(ll)
        logger.debug("EM iteration %d: mean log-likelihood %.6f", n_iter, ll)
        if abs(ll - prev) < tol:
            converged = True
            break
        prev = ll
    final = mean_log_likelihood(engine, params)
    logger.info("EM finished after %d iterations in %.2fs: mean log-likelihood %.6f%s",
                n_iter, time.perf_counter() - start, final,
                "" if converged or max_iter == 0 else " (not converged)")
    return FitResult(params, final, lower_bounds, n_iter, converged, best_iteration=n_iter)


def fit_biglearn_em(engine, params: MixtureParams, *, schedule: MatchingSchedule,
                    rng: np.random.Generator, max_iter: int, n_inner_iter: int,
                    check_every: int, covariance_floor: float,
                    weight_concentration: float) -> FitResult:
    """BigLearn-EM: each outer iteration draws a projection and makes ``n_inner_iter`` EM
    updates in it. Every ``check_every`` outer iterations and at the end the joint mean
    log-likelihood is evaluated; the best checked parameters are returned."""
    d = engine.n_features
    matchings = []
    lower_bounds = []
    best_ll, best_params, best_iteration = -np.inf, params, 0
    start = time.perf_counter()
    for it in range(1, max_iter + 1):
        projection = schedule.sample(rng, d)
        matchings.append(projection.kind)
        for _ in range(n_inner_iter):
            params, _ = em_update(engine, params, projection, covariance_floor=covariance_floor,
                                  weight_concentration=weight_concentration)
        if it % check_every == 0 or it == max_iter:
            ll = mean_log_likelihood(engine, params)
            lower_bounds.append(ll)
            if ll > best_ll:
                best_ll, best_params, best_iteration = ll, params, it
            logger.info(
                "BigLearn-EM iteration %d/%d (%.1fs): joint mean log-likelihood %.6f, best %.6f "
                "at iteration %d", it, max_iter, time.perf_counter() - start, ll, best_ll,
                best_iteration)
    if max_iter == 0:
        best_ll = mean_log_likelihood(engine, params)
    counts = {k: matchings.count(k) for k in MATCHING_KINDS}
    logger.info("BigLearn-EM finished %d iterations in %.2fs (matchings %s)", max_iter,
                time.perf_counter() - start, counts)
    return FitResult(best_params, best_ll, lower_bounds, max_iter, True, matchings,
                     best_iteration)
