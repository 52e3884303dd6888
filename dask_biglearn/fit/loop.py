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
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from ..algebra import (
    diagonal_estep_coefficients,
    estep_coefficients,
    is_diagonal_type,
    map_back,
    project_params,
    projected_m_step,
    selected_coordinates,
    selects_coordinates,
    smoothed_weights,
)
from ..kernels.passes import PassSpec
from ..model import FitState, MixtureParams
from ..projection import MATCHING_KINDS, MatchingSchedule, Projection
from ..verbosity import log_interval
from .journal import current_journal

logger = logging.getLogger(__name__)

#: ``callback(state, event) -> bool | None``; a true value stops the fit.
Callback = Callable[[FitState, str], "bool | None"]

ITERATION, CHECK = "iteration", "check"


@dataclass(frozen=True)
class FitSettings:
    """How a fit runs: the hyper-parameters the loop reads.

    Build them with :meth:`plain_em` or :meth:`biglearn`.

    Parameters
    ----------
    max_iter : int
        Iterations (outer iterations for BigLearn-EM) at most.
    covariance_floor : float
        Eigenvalue floor of the covariances, applied after every update.
    tol : float
        Plain EM: stop when the mean log-likelihood changes by less than this between
        iterations. BigLearn-EM: converged when the best checked joint log-likelihood rose by
        less than this over the last ``n_iter_no_change`` outer iterations (the last check
        interval when that is None).
    schedule : MatchingSchedule or None, default=None
        The law of each outer iteration's projection; None is plain EM (the identity,
        drawing nothing).
    n_inner_iter : int, default=1
        EM updates per outer iteration, in its projected space.
    check_every : int, default=1
        Outer iterations between checks of the joint log-likelihood (and a check at the
        last).
    weight_concentration : float, default=0.0
        Weight smoothing ``alpha`` (0: none).
    n_iter_no_change : int or None, default=None
        BigLearn-EM stops once converged over this many outer iterations (judged at the
        checks); None runs all ``max_iter`` outer iterations.
    reg_covar : float, default=0.0
        Added to the diagonal of every updated covariance (in the update's projected
        space) before the floor: scikit-learn's ``reg_covar``.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        The covariances' constraint (:mod:`dask_biglearn.algebra`): which kernel a pass runs
        and how an update is projected back onto the type.
    """

    max_iter: int
    covariance_floor: float
    tol: float
    schedule: MatchingSchedule | None = None  # None: plain EM
    n_inner_iter: int = 1
    check_every: int = 1
    weight_concentration: float = 0.0
    n_iter_no_change: int | None = None
    reg_covar: float = 0.0
    covariance_type: str = "full"

    @classmethod
    def plain_em(cls, *, max_iter, tol, covariance_floor, reg_covar=0.0,
                 covariance_type="full") -> FitSettings:
        """Settings of plain EM.

        Joint updates, no weight smoothing, stop on ``tol``, return the last parameters.

        Parameters
        ----------
        max_iter : int
            Iterations at most.
        tol : float
            Stop when the mean log-likelihood changes by less than this between iterations
            (scikit-learn's rule).
        covariance_floor : float
            Eigenvalue floor of the covariances.
        reg_covar : float, default=0.0
            Added to the diagonal of every updated covariance.
        covariance_type : {"full", "tied", "diag", "spherical"}, default="full"

        Returns
        -------
        settings : FitSettings
            Settings with no schedule, one check per iteration and no weight smoothing.
        """
        return cls(max_iter=max_iter, covariance_floor=covariance_floor, tol=tol,
                   reg_covar=reg_covar, covariance_type=covariance_type)

    @classmethod
    def biglearn(cls, *, schedule, max_iter, n_inner_iter, check_every, covariance_floor,
                 weight_concentration, tol, n_iter_no_change=None,
                 reg_covar=0.0, covariance_type="full") -> FitSettings:
        """Settings of BigLearn-EM.

        Up to ``max_iter`` outer iterations whose projections are drawn from ``schedule``;
        the best checked parameters are returned.

        Parameters
        ----------
        schedule : MatchingSchedule
            The law of each outer iteration's projection.
        max_iter : int
            Outer iterations at most.
        n_inner_iter : int
            EM updates per outer iteration.
        check_every : int
            Outer iterations between checks of the joint log-likelihood.
        covariance_floor : float
            Eigenvalue floor of the covariances.
        weight_concentration : float
            Weight smoothing ``alpha`` (0: none).
        tol : float
            Converged when the best checked joint log-likelihood rose by less than this over
            the last ``n_iter_no_change`` outer iterations (the last check interval when that
            is None).
        n_iter_no_change : int or None, default=None
            Stop once converged over this many outer iterations; None runs all ``max_iter``.
        reg_covar : float, default=0.0
            Added to the diagonal of every updated covariance, in its projected space.
        covariance_type : {"full", "tied", "diag", "spherical"}, default="full"

        Returns
        -------
        settings : FitSettings
        """
        return cls(max_iter=max_iter, covariance_floor=covariance_floor, tol=tol,
                   schedule=schedule, n_inner_iter=n_inner_iter, check_every=check_every,
                   weight_concentration=weight_concentration,
                   n_iter_no_change=n_iter_no_change, reg_covar=reg_covar,
                   covariance_type=covariance_type)

    @property
    def is_plain_em(self) -> bool:
        """Whether these are plain EM's settings (no schedule: joint updates only)."""
        return self.schedule is None

    @property
    def stops_when_converged(self) -> bool:
        """Whether the fit stops once converged (plain EM, or ``n_iter_no_change`` set)."""
        return self.is_plain_em or self.n_iter_no_change is not None

    @property
    def checks_per_window(self) -> int:
        """How many checks back BigLearn-EM's convergence test looks."""
        if self.n_iter_no_change is None:
            return 1
        return max(1, -(-self.n_iter_no_change // self.check_every))

    def check_due(self, iteration: int) -> bool:
        """Whether a check of the joint log-likelihood follows ``iteration``.

        Parameters
        ----------
        iteration : int
            The number of iterations completed.

        Returns
        -------
        due : bool
            True every ``check_every`` iterations and at ``max_iter``.
        """
        return iteration % self.check_every == 0 or iteration == self.max_iter


# ---- one update, one evaluation ---------------------------------------------------------------


def _check_finite(*values):
    if not all(np.all(np.isfinite(v)) for v in values):
        raise FloatingPointError(
            "The E-step produced non-finite values: the data's squared deviations overflow "
            "or a covariance is degenerate. Scale the data (e.g. standardise it) and check "
            "covariance_floor."
        )


def pass_spec(engine, params: MixtureParams, projection: np.ndarray | None, moments: bool,
              covariance_type: str = "full"):
    """The pass description for ``params`` seen through ``projection``.

    A diagonal or spherical model seen through the identity or a coordinate subset gets a
    diagonal pass (its projected covariances are diagonal: ``O(N K m)``); every other pass
    is the quadratic one.

    Parameters
    ----------
    engine : Engine
        Gives the data's centre (``summaries.shift``) and the kernels' choice.
    params : MixtureParams
        The model whose E-step the pass computes.
    projection : ndarray of shape (m, n_features) or None
        ``P`` of ``y = P x``; None is the identity.
    moments : bool
        Whether the pass returns first and second moments (an EM update) or only the
        log-likelihood (an evaluation).
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        The model's covariance type.

    Returns
    -------
    spec : PassSpec
        The pass's description, for
        :meth:`~dask_biglearn.engines.base.Engine.run_passes`.
    shift_y : ndarray of shape (m,)
        The projected centre of the pass's moments.
    """
    shift = engine.summaries.shift
    shift_y = shift if projection is None else projection @ shift
    if is_diagonal_type(covariance_type) and selects_coordinates(projection):
        means_y, variances = params.means, np.diagonal(params.covariances, axis1=1, axis2=2)
        if projection is not None:
            index = selected_coordinates(projection)
            means_y, variances = means_y[:, index], variances[:, index]
        theta = diagonal_estep_coefficients(params.weights, means_y, variances, shift_y)
        return PassSpec(theta, shift, projection, moments, engine.compiled,
                        engine.float32_products, diagonal=True,
                        weighted=engine.weighted, missing=engine.missing), shift_y
    means_y, covs_y = project_params(params.means, params.covariances, projection)
    theta = estep_coefficients(params.weights, means_y, covs_y, shift_y,
                               compiled=engine.compiled)
    return PassSpec(theta, shift, projection, moments, engine.compiled,
                    engine.float32_products, weighted=engine.weighted,
                    missing=engine.missing), shift_y


def m_step(params, projection, stats, shift_y, covariance_floor, weight_concentration,
           reg_covar=0.0, covariance_type="full"):
    """The M-step of one pass's statistics, in the projected space, mapped back.

    Parameters
    ----------
    params : MixtureParams
        The parameters that entered the pass (the unmatched part is kept).
    projection : Projection
        The space ``y = P x`` the pass saw the model through.
    stats : SuffStats
        The pass's statistics, centred at ``shift_y``.
    shift_y : ndarray of shape (m,)
        The projected centre of the pass's moments, from :func:`pass_spec`.
    covariance_floor : float
        Eigenvalue floor of the covariances.
    weight_concentration : float
        Weight smoothing ``alpha`` (0: none).
    reg_covar : float, default=0.0
        Added to the diagonal of the projected covariances before the floor.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        The projected M-step's type, and the constraint the update is projected onto.

    Returns
    -------
    params : MixtureParams
        The updated full-space parameters.
    mean_log_likelihood : float
        Of the incoming parameters in the projected space, per row the pass covered (NaN,
        and the parameters unchanged, when no row took part: a pass over data with missing
        values leaves out the rows it cannot see).
    """
    _check_finite(stats.log_lik_sum, stats.resp_sum)
    if not stats.n_rows > 0:  # no row took part (a rotated pass over data with holes there)
        return params, float("nan")
    P = projection.matrix
    new_means_y, new_covs_y = projected_m_step(stats, shift_y, covariance_floor, reg_covar,
                                               covariance_type)
    weights = smoothed_weights(stats.resp_sum, stats.n_rows, weight_concentration)
    means, covariances = map_back(
        params.means, params.covariances, new_means_y, new_covs_y, P, covariance_floor,
        covariance_type, weights)
    return MixtureParams(weights, means, covariances), stats.log_lik_sum / stats.n_rows


def em_updates(engine, params_list, projections, *, covariance_floor, weight_concentration,
               reg_covar=0.0, covariance_type="full"):
    """One EM update of each of several models, each in its own projected space.

    All the updates come from one read of the data (the restarts of a fit advance
    together); see :func:`em_update`.

    Parameters
    ----------
    engine : Engine
        Where the rows live.
    params_list : list of MixtureParams
        The models' current parameters.
    projections : list of Projection
        The space ``y = P x`` of each model's update, one per model.
    covariance_floor : float
        Eigenvalue floor of the covariances.
    weight_concentration : float
        Weight smoothing ``alpha`` (0: none).
    reg_covar : float, default=0.0
        Added to the diagonal of every updated covariance before the floor.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        The models' covariance type.

    Returns
    -------
    updates : list of (MixtureParams, float)
        One ``(new_params, mean_log_likelihood)`` per model, as :func:`em_update` returns.
    """
    updates, _ = _updates_and_evaluations(
        engine, params_list, projections, [], covariance_floor=covariance_floor,
        weight_concentration=weight_concentration, reg_covar=reg_covar,
        covariance_type=covariance_type)
    return updates


def _updates_and_evaluations(engine, params_list, projections, evaluated, *, covariance_floor,
                             weight_concentration, reg_covar, covariance_type):
    """One read of the data: an EM update of each of ``params_list`` (see
    :func:`em_updates`) and the mean joint log-likelihood of each of ``evaluated`` (see
    :func:`mean_log_likelihoods`); returns ``(updates, log-likelihoods)``."""
    specs = [pass_spec(engine, params, projection.matrix, moments=True,
                       covariance_type=covariance_type)
             for params, projection in zip(params_list, projections, strict=True)]
    evaluations = [pass_spec(engine, params, None, moments=False,
                             covariance_type=covariance_type)[0] for params in evaluated]
    stats_list = engine.run_passes([spec for spec, _ in specs] + evaluations)
    updates = [m_step(params, projection, stats, shift_y, covariance_floor,
                      weight_concentration, reg_covar, covariance_type)
               for params, projection, stats, (_, shift_y)
               in zip(params_list, projections, stats_list[:len(specs)], specs, strict=True)]
    return updates, _mean_log_likelihoods_of(stats_list[len(specs):])


def em_update(engine, params: MixtureParams, projection: Projection, *, covariance_floor,
              weight_concentration, covariance_type="full"):
    """One EM update in the space ``y = P x``, mapped back to the full space.

    Parameters
    ----------
    engine : Engine
        Where the rows live.
    params : MixtureParams
        The current parameters.
    projection : Projection
        The space ``y = P x`` of the update.
    covariance_floor : float
        Eigenvalue floor of the covariances.
    weight_concentration : float
        Weight smoothing ``alpha`` (0: none).
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        The model's covariance type.

    Returns
    -------
    new_params : MixtureParams
        The updated full-space parameters.
    mean_log_likelihood : float
        That of the *incoming* parameters in the projected space (the joint one when ``P``
        is the identity), per row the pass covered.
    """
    return em_updates(engine, [params], [projection], covariance_floor=covariance_floor,
                      weight_concentration=weight_concentration,
                      covariance_type=covariance_type)[0]


def mean_log_likelihoods(engine, params_list, covariance_type="full") -> list[float]:
    """Mean joint log-likelihood per row of each model: one E-step-only read of the data.

    Parameters
    ----------
    engine : Engine
        Where the rows live.
    params_list : list of MixtureParams
        The models to evaluate.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        Their covariance type (diagonal types evaluate with the diagonal kernel).

    Returns
    -------
    mean_log_likelihoods : list of float
        One per model, in order.
    """
    stats_list = engine.run_passes([pass_spec(engine, params, None, moments=False,
                                              covariance_type=covariance_type)[0]
                                    for params in params_list])
    return _mean_log_likelihoods_of(stats_list)


def _mean_log_likelihoods_of(stats_list) -> list[float]:
    """The mean log-likelihood per row of each evaluation pass's statistics."""
    for stats in stats_list:
        _check_finite(stats.log_lik_sum)
    return [stats.log_lik_sum / stats.n_rows for stats in stats_list]


def mean_log_likelihood(engine, params: MixtureParams, covariance_type="full") -> float:
    """Mean joint log-likelihood per row: one E-step-only pass.

    Parameters
    ----------
    engine : Engine
        Where the rows live.
    params : MixtureParams
        The model to evaluate.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"

    Returns
    -------
    mean_log_likelihood : float
    """
    return mean_log_likelihoods(engine, [params], covariance_type)[0]


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
            # Before the first iteration: -inf, or a warm start's previous log-likelihood.
            previous = state.lower_bounds[-1] if state.lower_bounds else state.best_lower_bound
            state.lower_bounds.append(ll)
            state.converged = abs(ll - previous) < settings.tol
            if state.iteration % log_interval() == 0:
                logger.debug("EM iteration %d: mean log-likelihood %.6f", state.iteration, ll)
        return
    lls = mean_log_likelihoods(engine, [s.params for s in states], settings.covariance_type)
    for state, ll in zip(states, lls, strict=True):
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


def _closing(states, settings: FitSettings) -> list:
    """The states whose result is their last parameters, which closing them evaluates:
    plain EM's, and any fit with no check yet."""
    return [s for s in states if settings.is_plain_em or s.best_params is None]


def finish_fits(engine, states, settings: FitSettings, started: float | None = None,
                evaluated=None):
    """Close fits and mark them finished.

    The result of each is its last parameters (plain EM, or a fit with no check yet,
    evaluated together in one more read of the data, unless ``evaluated`` gives their
    log-likelihoods) or its best checked ones.

    Parameters
    ----------
    engine : Engine
        Where the rows live.
    states : list of FitState
        The fits to close, updated in place (``best_*`` and ``finished``).
    settings : FitSettings
        The settings the fits ran with.
    started : float or None, default=None
        The :func:`time.perf_counter` at which the fits started, for the log; None logs no
        duration.
    evaluated : list of float or None, default=None
        The mean log-likelihoods of the last parameters of the states that need them (in
        their order among ``states``), from a read of the data already made; None makes one.

    Returns
    -------
    states : list of FitState
        The same states, finished.
    """
    last = _closing(states, settings)
    if last:
        lls = evaluated
        if lls is None:
            lls = mean_log_likelihoods(engine, [s.params for s in last],
                                       settings.covariance_type)
        for state, ll in zip(last, lls, strict=True):
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
    """Close one fit: :func:`finish_fits` of one state.

    Parameters
    ----------
    engine : Engine
        Where the rows live.
    state : FitState
        The fit to close, updated in place.
    settings : FitSettings
        The settings the fit ran with.
    started : float or None, default=None
        The :func:`time.perf_counter` at which the fit started, for the log.

    Returns
    -------
    state : FitState
        The same state, finished.
    """
    return finish_fits(engine, [state], settings, started)[0]


def _is_done(state: FitState, settings: FitSettings) -> bool:
    return state.iteration >= settings.max_iter or (settings.stops_when_converged
                                                    and state.converged)


def run_fits(engine, states, settings: FitSettings,
             callbacks: Iterable[Callback] = ()) -> list:
    """Run (or continue) several fits together until they end or a callback stops them.

    The fits advance in lockstep and every read of the data serves all of them (one task
    per chunk computes each fit's statistics): ``n`` restarts cost the passes of the longest
    one (a plain-EM fit that converges before the others is evaluated in their next read).

    Parameters
    ----------
    engine : Engine
        Where the rows live (:mod:`dask_biglearn.engines`).
    states : list of FitState
        Updated in place: new ones (``FitState(params, rng)``, each with a generator of its
        own) or ones a fit left.
    settings : FitSettings
        How the fits run.
    callbacks : iterable of callable, default=()
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
        active = [s for s in active if not _is_done(s, settings)]
        if not active:
            finish_fits(engine, done, settings, started)
            if journal is not None:
                journal.complete(loop_index, states)
            return states
        projections = [_next_projection(settings, s.rng, engine.n_features) for s in active]
        params = [s.params for s in active]
        # Fits that ended before the others are evaluated in the others' next read.
        closing = [s.params for s in _closing(done, settings)]
        for _ in range(settings.n_inner_iter):
            updates, evaluated = _updates_and_evaluations(
                engine, params, projections, closing,
                covariance_floor=settings.covariance_floor,
                weight_concentration=settings.weight_concentration,
                reg_covar=settings.reg_covar, covariance_type=settings.covariance_type)
            params = [p for p, _ in updates]
            if closing:
                finish_fits(engine, done, settings, started, evaluated=evaluated)
                closing = []
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
    """Run (or continue) the fit in ``state`` until it ends or a callback stops it.

    :func:`run_fits` of one fit.

    Parameters
    ----------
    engine : Engine
        Where the rows live (:mod:`dask_biglearn.engines`).
    state : FitState
        Updated in place: a new one (``FitState(params, rng)``) or one a fit left.
    settings : FitSettings
        How the fit runs.
    callbacks : iterable of callable, default=()
        ``callback(state, event)``, see the module docstring.

    Returns
    -------
    state : FitState
        ``state.finished`` is False when a callback stopped it.
    """
    return run_fits(engine, [state], settings, callbacks)[0]
