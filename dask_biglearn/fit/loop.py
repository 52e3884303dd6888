"""The one fitting loop, for plain (joint) EM and BigLearn-EM, over any engine.

An iteration draws a projection (always the identity for plain EM, which draws nothing), makes
``n_inner_iter`` EM updates in it, and at a check records the joint mean log-likelihood:

* plain EM checks at every iteration with the log-likelihood its joint update computed anyway
  (that of the parameters entering the iteration), stops when it changes by less than ``tol``
  (scikit-learn's rule) and returns its last parameters;
* BigLearn-EM checks every ``check_every`` outer iterations and at the end with a pass of its
  own (consecutive iterations optimise different projected objectives, so only the joint
  log-likelihood compares) and returns the best checked parameters. It counts as converged
  when the best checked log-likelihood rose by less than ``tol`` over the last
  ``n_iter_no_change`` outer iterations (the last check interval when that is None); with
  ``n_iter_no_change`` set it then stops, else it runs ``max_iter`` outer iterations.

Everything the loop needs to continue lives in a :class:`~dask_biglearn.model.FitState`, which
it updates in place. Callbacks ``callback(state, event)`` are called on the driver after every
iteration (``event == "iteration"``) and after every check (``"check"``); one that returns a
true value stops the fit there, leaving a state that :func:`run_fit` continues exactly (and
:func:`finish_fit` closes, as the estimators do). A progress bar, a checkpoint writer or a
stopping rule plugs in here.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from ..algebra import (
    estep_coefficients,
    map_back,
    project_params,
    projected_m_step,
    smoothed_weights,
)
from ..kernels.passes import PassSpec
from ..model import FitState, MixtureParams
from ..projection import MATCHING_KINDS, MatchingSchedule, Projection
from .journal import current_journal

logger = logging.getLogger(__name__)

#: ``callback(state, event) -> bool | None``; a true value stops the fit.
Callback = Callable[[FitState, str], "bool | None"]

ITERATION, CHECK = "iteration", "check"


@dataclass(frozen=True)
class FitSettings:
    """How a fit runs: the hyper-parameters the loop reads (use :meth:`plain_em` or
    :meth:`biglearn`)."""

    max_iter: int
    covariance_floor: float
    tol: float
    schedule: MatchingSchedule | None = None  # None: plain EM
    n_inner_iter: int = 1
    check_every: int = 1
    weight_concentration: float = 0.0
    n_iter_no_change: int | None = None

    @classmethod
    def plain_em(cls, *, max_iter, tol, covariance_floor) -> FitSettings:
        """Joint updates, no weight smoothing, stop on ``tol``, return the last parameters."""
        return cls(max_iter=max_iter, covariance_floor=covariance_floor, tol=tol)

    @classmethod
    def biglearn(cls, *, schedule, max_iter, n_inner_iter, check_every, covariance_floor,
                 weight_concentration, tol, n_iter_no_change=None) -> FitSettings:
        """BigLearn-EM: up to ``max_iter`` outer iterations drawn from ``schedule``, the best
        checked parameters returned."""
        return cls(max_iter=max_iter, covariance_floor=covariance_floor, tol=tol,
                   schedule=schedule, n_inner_iter=n_inner_iter, check_every=check_every,
                   weight_concentration=weight_concentration,
                   n_iter_no_change=n_iter_no_change)

    @property
    def is_plain_em(self) -> bool:
        return self.schedule is None

    @property
    def stops_when_converged(self) -> bool:
        return self.is_plain_em or self.n_iter_no_change is not None

    @property
    def checks_per_window(self) -> int:
        """How many checks back BigLearn-EM's convergence test looks."""
        if self.n_iter_no_change is None:
            return 1
        return max(1, -(-self.n_iter_no_change // self.check_every))

    def check_due(self, iteration: int) -> bool:
        return iteration % self.check_every == 0 or iteration == self.max_iter


# ---- one update, one evaluation ---------------------------------------------------------------


def _check_finite(*values):
    if not all(np.all(np.isfinite(v)) for v in values):
        raise FloatingPointError(
            "The E-step produced non-finite values: the data's squared deviations overflow "
            "or a covariance is degenerate. Scale the data (e.g. standardise it) and check "
            "covariance_floor."
        )


def _spec(engine, params: MixtureParams, projection: np.ndarray | None, moments: bool):
    """The pass description for ``params`` seen through ``projection``; returns
    ``(spec, projected centre)``."""
    shift = engine.summaries.shift
    means_y, covs_y = project_params(params.means, params.covariances, projection)
    shift_y = shift if projection is None else projection @ shift
    theta = estep_coefficients(params.weights, means_y, covs_y, shift_y,
                               compiled=engine.compiled)
    return PassSpec(theta, shift, projection, moments, engine.compiled), shift_y


def _m_step(params, projection, stats, shift_y, covariance_floor, weight_concentration):
    _check_finite(stats.log_lik_sum, stats.resp_sum)
    P = projection.matrix
    new_means_y, new_covs_y = projected_m_step(stats, shift_y, covariance_floor)
    weights = smoothed_weights(stats.resp_sum, stats.n_rows, weight_concentration)
    means, covariances = map_back(
        params.means, params.covariances, new_means_y, new_covs_y, P, covariance_floor
    )
    return MixtureParams(weights, means, covariances), stats.log_lik_sum / stats.n_rows


def em_updates(engine, params_list, projections, *, covariance_floor, weight_concentration):
    """One EM update of each of several models, each in its own projected space, from one
    read of the data (the restarts of a fit advance together); see :func:`em_update`."""
    specs = [_spec(engine, params, projection.matrix, moments=True)
             for params, projection in zip(params_list, projections, strict=True)]
    stats_list = engine.run_passes([spec for spec, _ in specs])
    return [_m_step(params, projection, stats, shift_y, covariance_floor, weight_concentration)
            for params, projection, stats, (_, shift_y)
            in zip(params_list, projections, stats_list, specs, strict=True)]


def em_update(engine, params: MixtureParams, projection: Projection, *, covariance_floor,
              weight_concentration):
    """One EM update in the space ``y = P x``, mapped back to the full space.

    Returns ``(new_params, mean_log_likelihood)`` where the log-likelihood is that of the
    *incoming* parameters in the projected space (the joint one when ``P`` is the identity),
    per row the pass covered.
    """
    return em_updates(engine, [params], [projection], covariance_floor=covariance_floor,
                      weight_concentration=weight_concentration)[0]


def mean_log_likelihoods(engine, params_list) -> list[float]:
    """Mean joint log-likelihood per row of each model: one E-step-only read of the data."""
    stats_list = engine.run_passes([_spec(engine, params, None, moments=False)[0]
                                    for params in params_list])
    for stats in stats_list:
        _check_finite(stats.log_lik_sum)
    return [stats.log_lik_sum / stats.n_rows for stats in stats_list]


def mean_log_likelihood(engine, params: MixtureParams) -> float:
    """Mean joint log-likelihood per row: one E-step-only pass."""
    return mean_log_likelihoods(engine, [params])[0]


# ---- the loop ---------------------------------------------------------------------------------


def _next_projection(settings: FitSettings, rng, n_features: int) -> Projection:
    if settings.is_plain_em:
        return Projection.identity()  # draws nothing: restarts see the same generator
    return settings.schedule.sample(rng, n_features)


def _notify(callbacks, states, event: str) -> bool:
    """Call every callback for every state (none skipped); whether any asked to stop."""
    stop = False
    for state in states:
        for callback in callbacks:
            stop = bool(callback(state, event)) or stop
    return stop


def _check(engine, states, settings: FitSettings, update_lls, started: float):
    """Record the joint log-likelihood of each state at a check; update best and
    convergence. BigLearn-EM evaluates all of them in one read of the data."""
    if settings.is_plain_em:
        for state, ll in zip(states, update_lls, strict=True):
            previous = state.lower_bounds[-1] if state.lower_bounds else -math.inf
            state.lower_bounds.append(ll)
            state.converged = abs(ll - previous) < settings.tol
            logger.debug("EM iteration %d: mean log-likelihood %.6f", state.iteration, ll)
        return
    for state, ll in zip(states, mean_log_likelihoods(engine, [s.params for s in states]),
                         strict=True):
        it = state.iteration
        state.lower_bounds.append(ll)
        if ll > state.best_lower_bound:
            state.best_params, state.best_lower_bound, state.best_iteration = (
                state.params, ll, it)
        window = settings.checks_per_window
        best_so_far = np.maximum.accumulate(state.lower_bounds)
        state.converged = (len(best_so_far) > window
                           and best_so_far[-1] - best_so_far[-1 - window] < settings.tol)
        logger.info("BigLearn-EM iteration %d/%d (%.1fs): joint mean log-likelihood %.6f, "
                    "best %.6f at iteration %d", it, settings.max_iter,
                    time.perf_counter() - started, ll, state.best_lower_bound,
                    state.best_iteration)


def finish_fits(engine, states, settings: FitSettings, started: float | None = None):
    """Close fits: the result of each is its last parameters (plain EM, or a fit with no
    check yet, evaluated together in one more read of the data) or its best checked ones."""
    last = [s for s in states if settings.is_plain_em or s.best_params is None]
    if last:
        for state, ll in zip(last, mean_log_likelihoods(engine, [s.params for s in last]),
                             strict=True):
            state.best_params, state.best_lower_bound = state.params, ll
            state.best_iteration = state.iteration
    elapsed = 0.0 if started is None else time.perf_counter() - started
    for state in states:
        state.finished = True
        if settings.is_plain_em:
            logger.info("EM finished after %d iterations in %.2fs: mean log-likelihood %.6f%s",
                        state.iteration, elapsed, state.best_lower_bound,
                        "" if state.converged or settings.max_iter == 0 else " (not converged)")
        else:
            counts = {k: state.matchings.count(k) for k in MATCHING_KINDS}
            logger.info("BigLearn-EM finished %d iterations in %.2fs (matchings %s)",
                        state.iteration, elapsed, counts)
    return states


def finish_fit(engine, state: FitState, settings: FitSettings, started: float | None = None):
    """:func:`finish_fits` of one fit."""
    return finish_fits(engine, [state], settings, started)[0]


def _is_done(state: FitState, settings: FitSettings) -> bool:
    return state.iteration >= settings.max_iter or (settings.stops_when_converged
                                                    and state.converged)


def run_fits(engine, states, settings: FitSettings,
             callbacks: Iterable[Callback] = ()) -> list:
    """Run (or continue) several fits together until they end or a callback stops them.

    The fits advance in lockstep and every read of the data serves all of them (one task
    per chunk computes each fit's statistics): ``n`` restarts cost the passes of one, plus
    at most one evaluation pass for each plain-EM fit that converges before the others.

    Parameters
    ----------
    engine : Engine
        Where the rows live (:mod:`dask_biglearn.engines`).
    states : list of FitState
        Updated in place: new ones (``FitState(params, rng)``, each with a generator of its
        own) or ones a fit left.
    settings : FitSettings
    callbacks : iterable of callable
        ``callback(state, event)``, see the module docstring, called for each fit.

    Returns
    -------
    states : list of FitState
        ``state.finished`` is False for the fits a callback stopped.
    """
    callbacks = list(callbacks)
    started = time.perf_counter()
    journal = current_journal()
    if journal is not None:
        loop_index, complete = journal.begin(states)
        if complete:
            return states
    active = [s for s in states if not s.finished]
    while True:
        done = [s for s in active if _is_done(s, settings)]
        if done:
            finish_fits(engine, done, settings, started)
            active = [s for s in active if not s.finished]
        if not active:
            if journal is not None:
                journal.complete(loop_index, states)
            return states
        projections = [_next_projection(settings, s.rng, engine.n_features) for s in active]
        params = [s.params for s in active]
        for _ in range(settings.n_inner_iter):
            updates = em_updates(engine, params, projections,
                                 covariance_floor=settings.covariance_floor,
                                 weight_concentration=settings.weight_concentration)
            params = [p for p, _ in updates]
        for state, new, projection in zip(active, params, projections, strict=True):
            state.params = new
            state.iteration += 1
            state.matchings.append(projection.kind)
        stop = _notify(callbacks, active, ITERATION)
        due = [(s, ll) for s, (_, ll) in zip(active, updates, strict=True)
               if settings.check_due(s.iteration)]
        if due:
            _check(engine, [s for s, _ in due], settings, [ll for _, ll in due], started)
            stop = _notify(callbacks, [s for s, _ in due], CHECK) or stop
        if journal is not None:
            journal.progress(loop_index, states, force=stop)
        if stop:
            return states


def run_fit(engine, state: FitState, settings: FitSettings,
            callbacks: Iterable[Callback] = ()) -> FitState:
    """Run (or continue) the fit in ``state`` until it ends or a callback stops it (see
    :func:`run_fits`); ``state.finished`` is False when a callback stopped it."""
    return run_fits(engine, [state], settings, callbacks)[0]
