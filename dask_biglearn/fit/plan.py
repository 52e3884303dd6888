"""The fit program: a frozen plan in, one result out.

An estimator turns its hyper-parameters into a :class:`FitPlan` (what to do, decided before
any pass) and :func:`run_plan` carries it out over an engine:

1. **starts** (:func:`draw_starts`): ``n_init`` starting models, each from a generator of its
   own, the k-means starts sharing one row sample; the starts are nested (those of a smaller
   ``n_init`` are among those of a larger one: :func:`~dask_biglearn.fit.restarts.
   start_generators`), so raising ``n_init`` never loses a start;
2. **warm-up** (when ``n_explore < n_init``): plain EM from every start, all advancing
   together; the best ``n_explore`` go on;
3. **exploration**: the main loop (BigLearn-EM's matchings, or plain EM) from those starts
   (after a warm-up, each explorer's first check is its warm-up model's log-likelihood: the
   matchings must beat that EM, and the stopping rule judges them from there);
4. **refinement** (``refine_explored``): plain EM from each explored model;
5. **moves** (``moves``): split-merge or re-seeding from the best model so far
   (:mod:`~dask_biglearn.fit.moves`);
6. in the **scalable mode** (``sample_rows``) steps 1-5 run on a row sample (an engine of its
   own, :meth:`Engine.sample_engine`), then plain EM over the full data refines the best;
7. **degenerate components** of the result (a collapsed weight, or a covariance on the floor
   in every direction) are re-seeded at the worst-explained rows and the model polished,
   where that leaves fewer of them (:func:`~dask_biglearn.fit.moves.reseed_degenerate`);
   no pass is made when there are none, and the polish runs within what is left of the
   budget of the loop that made the result (``max_iter`` of plain EM on the full data, the
   refinement's otherwise: :func:`_reseed_budget`), so a fit never reads the data more
   often than its settings allow.

Every start's warm-up, every refined exploration and the moves' result is a
:class:`Candidate`; the best by joint training log-likelihood wins (:func:`best_candidate`).
The result (:class:`FitResult`) holds the winner, the candidates and the accounting the
estimator reports. Nothing here imports Dask: the engine does the passes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..algebra import constrain_params
from ..initialization import (
    SAMPLE_STARTS,
    apply_user_init,
    init_sample,
    initial_params,
    pursuit_directions,
    start_kinds,
)
from ..model import FitState, MixtureParams
from .loop import FitSettings, finish_fits, run_fits
from .moves import MoveSettings, degenerate_components, improve_by_moves, reseed_degenerate
from .restarts import best_state, refine, start_states

__all__ = [
    "Candidate",
    "Exploration",
    "FitPlan",
    "FitResult",
    "best_candidate",
    "check_positive_rows",
    "conclude",
    "degeneracy",
    "draw_starts",
    "explore",
    "run_plan",
]


@dataclass(frozen=True, eq=False)
class FitPlan:
    """What a fit does, decided before any pass (see the module docstring).

    Parameters
    ----------
    n_components : int
    init_params : {"random", "random_from_data", "k-means++", "kmeans"}
        How each start is drawn (:mod:`dask_biglearn.initialization`).
    n_init : int
        The estimator's independent starts (``init_params="auto"`` adds pursuit starts to
        them: :func:`~dask_biglearn.initialization.start_kinds`).
    covariance_floor : float
        Eigenvalue floor of every covariance.
    explore : FitSettings
        The main loop from the starts (BigLearn-EM or plain EM).
    em : FitSettings
        Plain EM of the warm-up, the refinement, the moves' polish and the scalable mode's
        full-data refinement.
    refine_explored : bool, default=False
        Refine each explored model with ``em``.
    n_explore : int or None, default=None
        With fewer than ``n_init``: only the best ``n_explore`` warm-up models explore.
    moves : MoveSettings or None, default=None
        Escape moves after the refinement; None: none.
    sample_rows : int or None, default=None
        The scalable mode: explore on this many rows, refine on all of them.
    weights_init, means_init, precisions_init : ndarray or None, default=None
        Starting parameters given by the user, each replacing its part of every start.
    previous_lower_bound : float or None, default=None
        A warm start's: the log-likelihood of the previous fit's last iteration, which plain
        EM's first iteration is judged against (so that convergence spans warm fits, as in
        scikit-learn).
    """

    n_components: int
    init_params: str
    n_init: int
    covariance_floor: float
    explore: FitSettings
    em: FitSettings
    refine_explored: bool = False
    n_explore: int | None = None
    moves: MoveSettings | None = None
    sample_rows: int | None = None
    weights_init: np.ndarray | None = None
    means_init: np.ndarray | None = None
    precisions_init: np.ndarray | None = None
    previous_lower_bound: float | None = None

    @property
    def covariance_type(self) -> str:
        """The covariance type of every fit of the plan (its settings')."""
        return self.em.covariance_type

    @property
    def warms_up(self) -> bool:
        """Whether every start first runs plain EM and only the best explore."""
        return self.n_explore is not None and self.n_explore < len(
            start_kinds(self.init_params, self.n_init))


@dataclass(frozen=True)
class Candidate:
    """One model a fit may return.

    Parameters
    ----------
    main : FitState
        The main loop's state that led to it: its history (iterations, matchings, checks)
        is what the estimator reports.
    result : FitState
        The finished state whose ``best_params`` is the model: ``main`` itself, or its
        refinement, its moves, or (scalable mode) its full-data refinement.
    """

    main: FitState
    result: FitState


@dataclass(frozen=True)
class FitResult:
    """What :func:`run_plan` returns.

    Parameters
    ----------
    chosen : Candidate
        The winner.
    candidates : tuple of Candidate
        Every candidate the fit compared (on the sample, in the scalable mode).
    n_moves : int
        Moves kept (each raised the joint log-likelihood).
    n_sample_passes : int
        Passes over the scalable mode's row sample (0 without one).
    reseeded : tuple of int
        The components re-seeded because they were degenerate (step 7).
    degenerate : tuple of int
        The components of the model still degenerate, kept at the floor.
    n_reseed_iter : int
        The plain EM iterations that polished the re-seeded model (0 when none was kept).
    """

    chosen: Candidate
    candidates: tuple
    n_moves: int = 0
    n_sample_passes: int = 0
    reseeded: tuple = ()
    degenerate: tuple = ()
    n_reseed_iter: int = 0

    @property
    def params(self) -> MixtureParams:
        """The fitted model."""
        return self.chosen.result.best_params

    @property
    def lower_bound(self) -> float:
        """The fitted model's mean joint log-likelihood per training row."""
        return float(self.chosen.result.best_lower_bound)

    @property
    def lower_bounds(self) -> list[float]:
        """The history: the main loop's checks, then those of the refinement after it."""
        main, result = self.chosen.main, self.chosen.result
        return list(main.lower_bounds) + ([] if result is main else list(result.lower_bounds))

    @property
    def n_refine_iter(self) -> int:
        """Plain EM iterations after the main loop (0 when its own state won)."""
        main, result = self.chosen.main, self.chosen.result
        return 0 if result is main else int(result.iteration)


def best_candidate(candidates) -> Candidate:
    """The candidate with the best model, near-ties to the first (see :func:`best_state`).

    Parameters
    ----------
    candidates : sequence of Candidate

    Returns
    -------
    candidate : Candidate
    """
    best = best_state([c.result for c in candidates])
    return next(c for c in candidates if c.result is best)


def draw_starts(engine, plan: FitPlan, rng, sample=None
                ) -> tuple[list[FitState], np.ndarray | None]:
    """The fit's starting states, and the row sample the k-means starts drew.

    Parameters
    ----------
    engine : Engine
    plan : FitPlan
    rng : numpy.random.Generator
        The fit's generator: the sample's seed (unless ``sample`` is given), then one
        generator per start (:func:`~dask_biglearn.fit.restarts.start_states`).
    sample : ndarray of shape (n_rows, n_features) or None, default=None
        The rows the k-means starts work on, when the caller drew them (a sweep's one sample
        for all its programs); None draws them from ``engine`` when the starts need them.
        Either way with no NaN: a missing value is its column's mean, and rows with no
        observed value are left out (:func:`~dask_biglearn.initialization.start_rows`).

    Returns
    -------
    starts : list of FitState
    sample : ndarray of shape (n_rows, n_features) or None
        The rows the k-means starts worked on (None for the other starts).
    """
    kinds = start_kinds(plan.init_params, plan.n_init)
    if sample is None or plan.init_params not in SAMPLE_STARTS:
        sample = init_sample(plan.init_params, rng, plan.n_components, engine)
    sources = None
    if "kmeans-pursuit" in kinds:  # one FastICA for all the starts
        sources = pursuit_directions(sample, int(rng.integers(2**31 - 1)))

    reg_covar = plan.em.reg_covar

    def initial(generator, index):
        params = initial_params(kinds[index], generator, plan.n_components, engine,
                                plan.covariance_floor, sample, sources)
        if reg_covar:  # scikit-learn adds it to the covariances its starts estimate too
            params = dataclasses.replace(params, covariances=params.covariances
                                         + reg_covar * np.eye(params.means.shape[1]))
        params = apply_user_init(params, weights_init=plan.weights_init,
                                 means_init=plan.means_init,
                                 precisions_init=plan.precisions_init,
                                 covariance_floor=plan.covariance_floor,
                                 covariance_type=plan.covariance_type)
        return constrain_params(params, plan.covariance_type, plan.covariance_floor)

    return start_states(initial, plan.n_init, rng, len(kinds) - plan.n_init), sample


def _explorer(warm: FitState) -> FitState:
    """The exploring state of a warm-up's model: its log-likelihood is the first check, so
    the matchings must beat the warm-up's EM to count, and the stopping rule judges them
    from the start (``n_iter_no_change`` outer iterations without beating it end them)."""
    return FitState(warm.best_params, warm.rng, restart=warm.restart,
                    lower_bounds=[warm.best_lower_bound], best_params=warm.best_params,
                    best_lower_bound=warm.best_lower_bound)


def _warm_up(engine, plan: FitPlan, starts, callbacks):
    """Plain EM from every start; returns ``(warm states, the starts that explore)``, or
    ``(warm states, None)`` when a callback stopped the fit."""
    for start in starts:
        start.phase = "warm-up"
    warm = run_fits(engine, starts, plan.em, callbacks)
    if not all(s.finished for s in warm):
        finish_fits(engine, [s for s in warm if not s.finished], plan.em)
        return warm, None
    chosen, rest = [], list(warm)
    for _ in range(plan.n_explore):  # the best, near-ties to the first (see best_state)
        chosen.append(best_state(rest))
        rest = [s for s in rest if s is not chosen[-1]]
    explorers = [_explorer(s) for s in sorted(chosen, key=lambda s: s.restart)]
    return warm, explorers


@dataclass(frozen=True)
class Exploration:
    """What :func:`explore` found, for :func:`conclude`.

    Parameters
    ----------
    candidates : list of Candidate
    n_moves : int
        Moves kept.
    sample : ndarray of shape (n_rows, n_features) or None
        The row sample the starts and the moves ranked on (None when none needed one): the
        re-seeding of degenerate components ranks on it too, with no pass of its own.
    """

    candidates: list
    n_moves: int = 0
    sample: np.ndarray | None = None


def explore(engine, plan: FitPlan, rng, callbacks=(), sample=None) -> Exploration:
    """Steps 1-5 of the fit program (see the module docstring) on ``engine``.

    A callback that stops the fit skips what is left: the candidates are then the states
    as they stood, finished.

    Parameters
    ----------
    engine : Engine
    plan : FitPlan
    rng : numpy.random.Generator
    callbacks : iterable of callable, default=()
        ``callback(state, event)`` (:mod:`dask_biglearn.fit.loop`).
    sample : ndarray of shape (n_rows, n_features) or None, default=None
        The rows the k-means starts and the moves rank on, when the caller drew them (a
        sweep); None draws them from ``engine`` where needed.

    Returns
    -------
    exploration : Exploration
    """
    callbacks = list(callbacks)
    starts, sample = draw_starts(engine, plan, rng, sample)
    if plan.previous_lower_bound is not None and plan.explore.is_plain_em:
        for start in starts:  # what plain EM's first iteration is judged against
            start.best_lower_bound = plan.previous_lower_bound
    warm = []
    if plan.warms_up:
        warm, starts = _warm_up(engine, plan, starts, callbacks)
        if starts is None:
            return Exploration([Candidate(s, s) for s in warm], 0, sample)
    explored = run_fits(engine, starts, plan.explore, callbacks)
    stopped = [s for s in explored if not s.finished]
    finish_fits(engine, stopped, plan.explore)
    results = explored
    if not stopped and plan.refine_explored:
        results = refine(engine, explored, plan.em, callbacks)
        finish_fits(engine, [s for s in results if not s.finished], plan.em)
    found = [*(Candidate(m, r) for m, r in zip(explored, results, strict=True)),
             *(Candidate(s, s) for s in warm)]
    if stopped or plan.moves is None:
        return Exploration(found, 0, sample)
    best = best_candidate(found)
    if sample is None:  # the moves rank their candidates on a row sample
        sample = init_sample("kmeans", best.result.rng, plan.n_components, engine)
    moved, n_moves = improve_by_moves(engine, best.result, sample, plan.moves, plan.em,
                                      callbacks)
    return Exploration([*found, Candidate(best.main, moved)], n_moves, sample)


def run_plan(engine, plan: FitPlan, rng, callbacks=()) -> FitResult:
    """Carry out the fit program of ``plan`` over ``engine``'s data.

    Parameters
    ----------
    engine : Engine
        The data (the scalable mode takes its sample through ``engine.sample_engine``).
    plan : FitPlan
    rng : numpy.random.Generator
        Every random draw of the fit comes from it, in a fixed order.
    callbacks : iterable of callable, default=()
        ``callback(state, event)``, called for every fit of every phase.

    Returns
    -------
    result : FitResult
    """
    callbacks = list(callbacks)
    check_positive_rows(engine.summaries, plan.n_components)
    if plan.sample_rows is None:
        return conclude(engine, plan, explore(engine, plan, rng, callbacks), None, callbacks)
    seed = int(rng.integers(2**63 - 1))
    with engine.sample_engine(engine.summaries.rows_holding(plan.sample_rows),
                              seed) as on_sample:
        found = explore(on_sample, plan, rng, callbacks)
        n_sample_passes = int(on_sample.n_data_passes)
    return conclude(engine, plan, found, n_sample_passes, callbacks)


def check_positive_rows(summaries, n_components: int) -> None:
    """Refuse a fit of more components than the data has rows of positive weight.

    Parameters
    ----------
    summaries : DataSummaries
        The data's summary pass.
    n_components : int

    Raises
    ------
    ValueError
        If fewer rows than ``n_components`` have a positive ``sample_weight`` and an
        observed value (rows with no observed value take no part in a fit).
    """
    positive = summaries.n_positive_rows
    if positive >= n_components:
        return
    if not summaries.n_empty:
        raise ValueError(f"sample_weight is positive on only {positive} of the "
                         f"{summaries.n_samples} rows, fewer than n_components={n_components}: "
                         f"fit fewer components, or give more rows a positive weight.")
    weighted = summaries.n_counted_rows < summaries.n_samples
    raise ValueError(f"only {positive} of the {summaries.n_samples} rows have an observed "
                     f"value{' and a positive sample_weight' if weighted else ''} (every value "
                     f"of {summaries.n_empty} rows is NaN: they are ignored), fewer than "
                     f"n_components={n_components}: fit fewer components.")


def conclude(engine, plan: FitPlan, exploration: Exploration, n_sample_passes,
             callbacks=()) -> FitResult:
    """Steps 6 and 7 of the fit program: after the exploration, the full-data refinement of
    the best candidate (the scalable mode: ``n_sample_passes`` is not None) and the
    re-seeding of degenerate components.

    Parameters
    ----------
    engine : Engine
        The full data.
    plan : FitPlan
    exploration : Exploration
        What :func:`explore` found (on the sample, in the scalable mode).
    n_sample_passes : int or None
        Passes over the scalable mode's sample; None without one (the candidates are
        full-data fits already).
    callbacks : iterable of callable, default=()

    Returns
    -------
    result : FitResult
    """
    callbacks = list(callbacks)
    candidates = exploration.candidates
    chosen = best_candidate(candidates)
    if n_sample_passes is not None:
        refined = refine(engine, [chosen.result], plan.em, callbacks, phase="refine-full")[0]
        if not refined.finished:
            finish_fits(engine, [refined], plan.em)
        chosen = Candidate(chosen.main, refined)
    budget = _reseed_budget(plan, chosen.result, n_sample_passes is not None)
    chosen, reseeded, degenerate, n_polish = _reseed(engine, plan, chosen, exploration.sample,
                                                     budget, callbacks)
    return FitResult(chosen, tuple(candidates), exploration.n_moves, n_sample_passes or 0,
                     reseeded, degenerate, n_polish)


def _reseed_budget(plan: FitPlan, result: FitState, scalable: bool) -> int:
    """The plain EM iterations the re-seeding of degenerate components may polish with: what
    is left of the budget of the loop that made ``result``, less the reads that polish adds
    outside its iterations (its closing evaluation, and a row sample if it must draw one).

    Plain EM on the full data (:class:`~dask_biglearn.estimator.GaussianMixture`) made
    ``result`` under ``plan.explore`` (``max_iter``); every other fit under ``plan.em`` (the
    refinement's ``refine_max_iter``). So the re-seeding never makes a fit read the data
    more often than its settings allow."""
    ran_under = plan.explore if plan.explore.is_plain_em and not scalable else plan.em
    return max(0, ran_under.max_iter - int(result.iteration) - 1)


def _reseed(engine, plan: FitPlan, chosen: Candidate, sample, budget: int, callbacks):
    """Step 7: ``(candidate, reseeded, degenerate, polish iterations)``; the candidate
    unchanged, and no pass made, when no component is degenerate, the fit was stopped, or no
    EM iteration is left of ``budget`` to polish with (the paper's algorithm has none)."""
    state = chosen.result
    degenerate = degenerate_components(state.best_params, plan.covariance_floor)
    if sample is None and budget > 0:  # drawing one costs a read of the data
        budget -= 1
    if not degenerate or not state.finished or budget <= 0:
        return chosen, (), tuple(degenerate), 0
    if sample is None:
        sample = init_sample("kmeans", state.rng, plan.n_components, engine)
    polish = dataclasses.replace(plan.em, max_iter=min(plan.em.max_iter, budget))
    result, reseeded, still = reseed_degenerate(engine, state, sample, polish, callbacks)
    if result is state:
        return chosen, (), tuple(still), 0
    n_polish = int(result.iteration)
    if state is not chosen.main:  # the polish continues the refinement's history
        result.iteration += state.iteration
        result.lower_bounds = [*state.lower_bounds, *result.lower_bounds]
    return Candidate(chosen.main, result), tuple(reseeded), tuple(still), n_polish


def degeneracy(summaries, params: MixtureParams, covariance_floor: float,
               degenerate=()) -> str | None:
    """Why a fit is degenerate, or None: data with no spread, components on one point, or
    components that stayed degenerate after their re-seeding.

    Data whose variance is at most ``covariance_floor`` in every feature (all rows
    identical, or values at a scale far below the floor) gives components on the floor that
    describe nothing; so do components that all share one mean with covariances on the floor,
    and components the re-seeding could not revive (more components than distinct rows).

    Parameters
    ----------
    summaries : DataSummaries
        The engine's summary of the data (its per-feature variance).
    params : MixtureParams
        The fitted model.
    covariance_floor : float
    degenerate : sequence of int, default=()
        The fitted model's components still degenerate (:attr:`FitResult.degenerate`).

    Returns
    -------
    message : str or None
        What is wrong and what to do, for a warning.
    """
    if np.all(summaries.var <= covariance_floor):
        return (f"The data has no spread above covariance_floor={covariance_floor:g} in any "
                f"feature (largest variance {float(np.max(summaries.var)):.3g}): all rows are "
                "identical, or the values are on a scale far below the floor. Every component "
                "sits on the floor and every row gets the same label: scale the data or lower "
                "covariance_floor.")
    means, covariances = params.means, params.covariances
    spread = float(np.max(np.ptp(means, axis=0))) if len(means) > 1 else np.inf
    largest = float(np.max(np.linalg.eigvalsh(covariances)))
    if spread <= np.sqrt(covariance_floor) and largest <= 2 * covariance_floor:
        return (f"All {len(means)} components collapsed onto one point with covariances on "
                f"the floor ({covariance_floor:g}): the model describes no structure of the "
                "data. Scale the data, lower covariance_floor or fit fewer components.")
    if len(degenerate):
        listed = list(degenerate)[:10]
        more = f" and {len(degenerate) - 10} more" if len(degenerate) > 10 else ""
        return (f"{len(degenerate)} of the {len(means)} components are degenerate (a weight "
                f"below 1e-6, or a covariance on covariance_floor={covariance_floor:g} in every "
                f"direction: components {listed}{more}) and re-seeding them did not help: they "
                "are kept at the floor (degenerate_components_). The data may hold fewer "
                "distinct rows, or clusters, than n_components: fit fewer components.")
    return None
