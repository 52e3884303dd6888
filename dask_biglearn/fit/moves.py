"""Escape moves: closed-form changes of a converged model, tried and kept only if they help.

BigLearn-EM's matchings are one way out of a bad local optimum. The mixture literature has
others that act on the same parameters and are judged by the same joint log-likelihood:

* **split-merge** (SMEM; Ueda, Nakano, Ghahramani & Hinton, *Neural Computation* 2000): merge
  the two components whose responsibilities overlap most (``J_merge``, the normalised inner
  product of their responsibility vectors) into one, by moment matching, and split the
  component whose local fit is worst (``J_split``, the Kullback-Leibler divergence from the
  responsibility-weighted empirical density of its rows to its Gaussian) into two along its
  principal axis, reusing the slot the merge freed. This is the move for the commonest bad
  optimum of k-means-started EM: two components share one cluster while one component
  spans two.
* **re-seeding** (greedy EM; Verbeek, Vlassis & Kröse, *Neural Computation* 2003): take the
  redundant member of the most overlapping pair (or the most starved component) away and
  put it where the data is worst explained: at the sample row of lowest mixture density,
  with a covariance from the component that now holds that row.

Candidates are ranked on a row sample kept in the driver's memory (the one the k-means start
drew: a few thousand rows, chosen by global row index and seed, so the ranking does not
depend on the chunking). A round builds the best ``n_candidates`` candidates, runs a few plain
EM iterations from all of them together (one read of the data serves them all), and keeps the
best only if its joint training log-likelihood beats the current model's; the kept model is
then polished by plain EM to convergence. Rounds repeat until no candidate helps.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from ..algebra import constrain_params, floor_eigenvalues, precision_cholesky
from ..kernels.scoring import weighted_log_prob
from ..model import FitState, MixtureParams
from .loop import FitSettings, finish_fits, run_fits

logger = logging.getLogger(__name__)

SPLIT_MERGE, RESEED = "split-merge", "reseed"
MOVE_KINDS = (SPLIT_MERGE, RESEED)

#: A split puts the two new means this many standard deviations (along the principal axis)
#: either side of the old one and shrinks the variance along that axis to keep the
#: component's second moment: ``lambda (1 - SPLIT_OFFSET**2)``.
SPLIT_OFFSET = 0.8


@dataclass(frozen=True)
class MoveSettings:
    """Which moves, how many candidates a round tries and for how long.

    Parameters
    ----------
    kinds : tuple of {"split-merge", "reseed"}, default=("split-merge",)
        The moves to try, in this order.
    max_rounds : int, default=10
        The most rounds of moves; rounds also stop when no candidate helps.
    n_candidates : int, default=5
        The most candidates of each kind a round tries.
    trial_iter : int, default=10
        The plain EM iterations a round runs from its candidates before it compares them.

    Raises
    ------
    ValueError
        If ``kinds`` names an unknown move.
    """

    kinds: tuple[str, ...] = (SPLIT_MERGE,)
    max_rounds: int = 10
    n_candidates: int = 5
    trial_iter: int = 10

    def __post_init__(self):
        unknown = set(self.kinds) - set(MOVE_KINDS)
        if unknown:
            raise ValueError(f"Unknown move(s) {sorted(unknown)}; choose from {MOVE_KINDS}.")


# ---- ranking, on the sample -------------------------------------------------------------------


def responsibilities(sample: np.ndarray, params: MixtureParams):
    """Compute the responsibilities and log-densities of a mixture on the sample rows.

    Parameters
    ----------
    sample : ndarray of shape (n_samples, n_features)
        The rows candidates are ranked on.
    params : MixtureParams
        The mixture.

    Returns
    -------
    resp : ndarray of shape (n_samples, n_components)
        The responsibilities of the components for each row.
    log_density : ndarray of shape (n_samples, n_components)
        Each component's log-density at each row (without its weight).
    log_p : ndarray of shape (n_samples,)
        The mixture's log-density ``log p(x)`` at each row.
    """
    log_prob = weighted_log_prob(sample, params.weights, params.means,
                                 precision_cholesky(params.covariances))
    log_p = logsumexp(log_prob, axis=1)
    with np.errstate(divide="ignore"):
        log_density = log_prob - np.log(params.weights)
    return np.exp(log_prob - log_p[:, None]), log_density, log_p


def merge_scores(resp: np.ndarray) -> np.ndarray:
    """Compute SMEM's ``J_merge(i, j)``: the cosine of the responsibility vectors.

    Parameters
    ----------
    resp : ndarray of shape (n_samples, n_components)
        The responsibilities on the sample rows.

    Returns
    -------
    scores : ndarray of shape (n_components, n_components)
        Symmetric, higher for pairs whose responsibilities overlap more; the diagonal is
        ``-inf``.
    """
    norms = np.linalg.norm(resp, axis=0)
    scores = (resp.T @ resp) / np.maximum(np.outer(norms, norms), 1e-300)
    np.fill_diagonal(scores, -np.inf)
    return scores


def split_scores(resp: np.ndarray, log_density: np.ndarray, n_features: int) -> np.ndarray:
    """Score how far each component's rows are from one Gaussian, for choosing what to split.

    The score is the relative deficit of the rows' responsibility-weighted multivariate
    kurtosis (Mardia's ``b_2``, the mean squared Mahalanobis distance, ``D (D + 2)`` for a
    Gaussian). A component that spans two clusters is platykurtic (``b_2`` low, the score
    high).

    (SMEM's own criterion, the KL from the weighted empirical density to the Gaussian, mixes
    in each component's volume: on data with clusters of different scales it ranks by size,
    not by fit.)

    Parameters
    ----------
    resp : ndarray of shape (n_samples, n_components)
        The responsibilities on the sample rows.
    log_density : ndarray of shape (n_samples, n_components)
        Each component's log-density at each sample row (see :func:`responsibilities`).
    n_features : int
        The dimension ``D`` of the data.

    Returns
    -------
    scores : ndarray of shape (n_components,)
        ``1 - b_2 / (D (D + 2))`` per component; ``-inf`` for a component holding less than
        two rows' worth of responsibility (nothing to split).
    """
    mass = resp.sum(axis=0)
    # log N(x | k) = -(D log 2 pi + log |Sigma_k| + m_nk) / 2: m_nk up to a per-component
    # constant, fixed by the M-step identity sum_n r_nk m_nk = N_k D (exact on the data,
    # close on a sample).
    minus_half_m = log_density - (resp * log_density).sum(axis=0) / np.maximum(mass, 1e-300)
    m = n_features - 2.0 * minus_half_m
    kurtosis = (resp * m**2).sum(axis=0) / np.maximum(mass, 1e-300)
    scores = 1.0 - kurtosis / (n_features * (n_features + 2.0))
    scores[mass < 2.0] = -np.inf  # nothing to split
    return scores


def ranked_pairs(scores: np.ndarray):
    """List the pairs ``(i, j)``, ``i < j``, by decreasing ``scores[i, j]``.

    Parameters
    ----------
    scores : ndarray of shape (n_components, n_components)
        Pair scores, e.g. :func:`merge_scores`; only the upper triangle is read.

    Returns
    -------
    pairs : list of tuple of (int, int)
        Every pair once, the best first (ties in index order).
    """
    i, j = np.triu_indices(len(scores), k=1)
    order = np.argsort(-scores[i, j], kind="stable")
    return [(int(i[o]), int(j[o])) for o in order]


# ---- the closed-form changes ------------------------------------------------------------------


def merged(params: MixtureParams, i: int, j: int):
    """Merge components ``i`` and ``j`` into one by moment matching.

    Parameters
    ----------
    params : MixtureParams
        The mixture.
    i, j : int
        The components to merge.

    Returns
    -------
    weight : float
        The sum of their weights.
    mean : ndarray of shape (n_features,)
        The weighted mean of their means.
    covariance : ndarray of shape (n_features, n_features)
        The covariance of the two-component mixture they form.
    """
    w = params.weights[[i, j]]
    weight = w.sum()
    a = w / weight
    mean = a[0] * params.means[i] + a[1] * params.means[j]
    cov = sum(a[t] * (params.covariances[c] + np.outer(params.means[c] - mean,
                                                        params.means[c] - mean))
              for t, c in enumerate((i, j)))
    return weight, mean, cov


def split(weight, mean, cov, floor):
    """Split one component into two along its principal axis, keeping its first two moments.

    The new means lie ``SPLIT_OFFSET`` standard deviations either side of ``mean`` along the
    principal axis, and the variance along that axis shrinks to keep the second moment.

    Parameters
    ----------
    weight : float
        The component's weight.
    mean : ndarray of shape (n_features,)
        The component's mean.
    cov : ndarray of shape (n_features, n_features)
        The component's covariance.
    floor : float
        The covariance floor: the smallest eigenvalue the new covariance may have.

    Returns
    -------
    first, second : tuple of (float, ndarray, ndarray)
        ``(weight, mean, covariance)`` of each new component: half the weight each, the
        same covariance, the means either side of ``mean``.
    """
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    lam, v = eigenvalues[-1], eigenvectors[:, -1]
    step = SPLIT_OFFSET * np.sqrt(lam) * v
    shrunk = floor_eigenvalues(cov - SPLIT_OFFSET**2 * lam * np.outer(v, v), floor)
    return (weight / 2, mean + step, shrunk), (weight / 2, mean - step, shrunk)


def _with(params: MixtureParams, changes) -> MixtureParams:
    """``params`` with the components ``{slot: (weight, mean, covariance)}`` replaced."""
    weights, means, covs = (params.weights.copy(), params.means.copy(),
                            params.covariances.copy())
    for slot, (w, m, c) in changes.items():
        weights[slot], means[slot], covs[slot] = w, m, 0.5 * (c + c.T)
    return MixtureParams(weights / weights.sum(), means, covs)


def split_merge_candidates(params, sample, n_candidates, floor):
    """Propose SMEM's split-merge candidates.

    Merge pairs ranked by ``J_merge`` and split targets (other than the pair) ranked by
    :func:`split_scores` are combined in the order of the sum of their ranks (ties: the
    better merge first). The merged pair takes the first slot of the pair, the split the
    target's slot and the slot the merge freed.

    Parameters
    ----------
    params : MixtureParams
        The converged mixture.
    sample : ndarray of shape (n_samples, n_features)
        The rows candidates are ranked on.
    n_candidates : int
        The most candidates to return.
    floor : float
        The covariance floor.

    Returns
    -------
    candidates : list of MixtureParams
        Up to ``n_candidates`` changed mixtures, the most promising first.
    """
    resp, log_density, _ = responsibilities(sample, params)
    split_order = [int(k) for k in np.argsort(-split_scores(resp, log_density,
                                                            sample.shape[1]), kind="stable")]
    pairs = ranked_pairs(merge_scores(resp))[:n_candidates]
    triples = sorted(((a + b, a, pair, k) for a, pair in enumerate(pairs)
                      for b, k in enumerate([k for k in split_order if k not in pair]
                                            [:n_candidates])),
                     key=lambda t: t[:2])
    found = []
    for _, _, (i, j), k in triples[:n_candidates]:
        new_k, new_j = split(params.weights[k], params.means[k], params.covariances[k], floor)
        found.append(_with(params, {i: merged(params, i, j), k: new_k, j: new_j}))
    return found


def reseed_candidates(params, sample, n_candidates, floor):
    """Propose greedy EM's re-seeding candidates.

    The redundant member of each of the most overlapping pairs (the lighter one) or the most
    starved component is taken away (its weight goes to the component that overlaps it
    most) and placed at one of the worst-explained sample rows, with a covariance from the
    component that holds that row: one candidate each.

    Parameters
    ----------
    params : MixtureParams
        The converged mixture.
    sample : ndarray of shape (n_samples, n_features)
        The rows candidates are ranked on.
    n_candidates : int
        The most candidates to return.
    floor : float
        The covariance floor.

    Returns
    -------
    candidates : list of MixtureParams
        Up to ``n_candidates`` changed mixtures, the most promising first.
    """
    resp, _, log_p = responsibilities(sample, params)
    removable = []
    for i, j in ranked_pairs(merge_scores(resp)):
        light = i if params.weights[i] <= params.weights[j] else j
        if light not in removable:
            removable.append(light)
        if len(removable) >= n_candidates:
            break
    starved = int(np.argmin(params.weights))
    if starved not in removable:
        removable[-1:] = [starved]
    worst = np.argsort(log_p, kind="stable")
    found = []
    for slot, row in zip(removable, worst, strict=False):
        x = sample[row]
        owner = int(np.argmax(resp[row]))
        partner = _partner(params, resp, slot)
        keep = params.weights[partner] + params.weights[slot]
        weight = max(params.weights[slot], 1.0 / len(sample))
        changes = {partner: (keep - weight, params.means[partner], params.covariances[partner]),
                   slot: (weight, x, floor_eigenvalues(params.covariances[owner] / 4, floor))}
        found.append(_with(params, changes))
    return found


def _partner(params, resp, slot):
    """The component that overlaps ``slot`` most (takes its weight when it moves)."""
    scores = merge_scores(resp)[slot]
    return int(np.argmax(scores))


PROPOSALS = {SPLIT_MERGE: split_merge_candidates, RESEED: reseed_candidates}


def candidates(params, sample, moves: MoveSettings, floor):
    """Propose every kind's candidates, in the order of ``moves.kinds``.

    Parameters
    ----------
    params : MixtureParams
        The converged mixture.
    sample : ndarray of shape (n_samples, n_features)
        The rows candidates are ranked on.
    moves : MoveSettings
        Which kinds, and how many candidates of each.
    floor : float
        The covariance floor.

    Returns
    -------
    candidates : list of MixtureParams
        The changed mixtures of every kind.
    """
    return [c for kind in moves.kinds
            for c in PROPOSALS[kind](params, sample, moves.n_candidates, floor)]


# ---- the driver ---------------------------------------------------------------------------------


def improve_by_moves(engine, state: FitState, sample, moves: MoveSettings,
                     em: FitSettings, callbacks=()):
    """Run rounds of moves from the finished ``state``'s result while they help.

    A round runs ``moves.trial_iter`` plain EM iterations from all its candidates together
    and keeps the best only if its joint log-likelihood beats the current model's by more
    than ``em.tol``; the kept model is then polished by plain EM to convergence. Every state
    a round makes has ``phase="move"``.

    Parameters
    ----------
    engine : Engine
        Where the rows live (:mod:`dask_biglearn.engines`).
    state : FitState
        A finished fit; its ``best_params`` are the starting model.
    sample : ndarray of shape (n_samples, n_features)
        The rows candidates are ranked on, kept in the driver's memory.
    moves : MoveSettings
        Which moves, and how many candidates and rounds.
    em : FitSettings
        The plain-EM settings of the fit (its ``tol`` and ``covariance_floor`` also apply to
        the trials).
    callbacks : iterable of callable, default=()
        ``callback(state, event)``, called for each fit a round runs (see
        :func:`dask_biglearn.fit.loop.run_fits`).

    Returns
    -------
    state : FitState
        The finished state of the best model found (``state`` itself when no move helped).
    n_moves : int
        The number of moves kept.
    """
    trial = FitSettings.plain_em(max_iter=moves.trial_iter, tol=em.tol,
                                 covariance_floor=em.covariance_floor, reg_covar=em.reg_covar,
                                 covariance_type=em.covariance_type)
    current, kept = state, 0
    for _ in range(moves.max_rounds):
        proposals = [constrain_params(p, em.covariance_type, em.covariance_floor)
                     for p in candidates(current.best_params, sample, moves,
                                         em.covariance_floor)]
        if not proposals:
            break
        tried = [FitState(p, current.rng, restart=current.restart, phase="move")
                 for p in proposals]
        tried = run_fits(engine, tried, trial, callbacks)
        if not all(s.finished for s in tried):
            break
        best = max(tried, key=lambda s: s.best_lower_bound)
        gain = best.best_lower_bound - current.best_lower_bound
        logger.info("Moves round %d: best candidate's log-likelihood %+.6f", kept + 1, gain)
        if not gain > em.tol:
            break
        polished = FitState(best.best_params, current.rng, restart=current.restart,
                            phase="move")
        polished = run_fits(engine, [polished], em, callbacks)[0]
        if not polished.finished:
            finish_fits(engine, [polished], em)
        polished.lower_bounds = [*current.lower_bounds, *best.lower_bounds,
                                 *polished.lower_bounds]
        current, kept = polished, kept + 1
    return current, kept


# ---- degenerate components -----------------------------------------------------------------

#: A component is degenerate when its weight is below this...
DEGENERATE_WEIGHT = 1e-6
#: ...or when its covariance sits on the floor in every direction (largest eigenvalue at most
#: this multiple of the floor).
ON_FLOOR = 1.0 + 1e-6


def degenerate_components(params: MixtureParams, floor: float) -> list[int]:
    """The components whose weight collapsed or whose covariance is on the floor throughout.

    Parameters
    ----------
    params : MixtureParams
    floor : float
        The covariance floor.

    Returns
    -------
    list of int
        Their indices, in order.
    """
    largest = np.linalg.eigvalsh(params.covariances)[:, -1]
    bad = (params.weights < DEGENERATE_WEIGHT) | (largest <= ON_FLOOR * floor)
    return [int(k) for k in np.flatnonzero(bad)]


def reseeded(params: MixtureParams, slots, sample, floor) -> MixtureParams:
    """``params`` with the components ``slots`` moved to the worst-explained sample rows.

    Each takes one of the sample rows of lowest mixture density (distinct rows, the worst
    first), a covariance a quarter of that of the component holding the row (floored), and
    weight ``1 / K``; the weights are renormalised.

    Parameters
    ----------
    params : MixtureParams
    slots : sequence of int
        The components to move.
    sample : ndarray of shape (n_samples, n_features)
        The rows ranked by how well the mixture explains them.
    floor : float
        The covariance floor.

    Returns
    -------
    MixtureParams
    """
    resp, _, log_p = responsibilities(sample, params)
    healthy = np.ones(len(params.weights), dtype=bool)
    healthy[list(slots)] = False
    rows, seen = [], set()
    for row in np.argsort(log_p, kind="stable"):
        key = sample[row].tobytes()
        if key not in seen:
            seen.add(key)
            rows.append(row)
        if len(rows) == len(slots):
            break
    changes = {}
    k = len(params.weights)
    for slot, row in zip(slots, rows, strict=False):
        owners = np.where(healthy, resp[row], -1.0)
        owner = int(np.argmax(owners)) if healthy.any() else slot
        changes[slot] = (1.0 / k, sample[row],
                         floor_eigenvalues(params.covariances[owner] / 4, floor))
    return _with(params, changes)


def reseed_degenerate(engine, state: FitState, sample, em: FitSettings, callbacks=()):
    """Re-seed the degenerate components of a finished fit's model, where that helps.

    The components :func:`degenerate_components` finds are moved to the worst-explained
    sample rows (:func:`reseeded`) and plain EM (``em``) polishes the result. Where the
    polished model has fewer degenerate components it is kept (even if its training
    likelihood is lower: a component collapsed onto a point or a few duplicated rows is a
    spike of the likelihood, not a fit); otherwise the model is kept as it was, its
    degenerate components held at the floor. Nothing is done, and no pass made, when no
    component is degenerate.

    Parameters
    ----------
    engine : Engine
        Where the rows live.
    state : FitState
        A finished fit; its ``best_params`` are the model.
    sample : ndarray of shape (n_samples, n_features) or None
        The rows to rank; None draws none and keeps the model.
    em : FitSettings
        Plain EM's settings (floor, type, tolerance).
    callbacks : iterable of callable, default=()
        ``callback(state, event)`` for the polishing fit.

    Returns
    -------
    state : FitState
        The finished state of the model returned: ``state`` itself, or the polishing fit
        (its ``iteration`` and ``lower_bounds`` its own).
    reseeded : list of int
        The components that were re-seeded (empty when none was, or it did not help).
    degenerate : list of int
        The components of the returned model still degenerate (kept at the floor).
    """
    floor = em.covariance_floor
    degenerate = degenerate_components(state.best_params, floor)
    if not degenerate or sample is None or len(sample) == 0:
        return state, [], degenerate
    start = constrain_params(reseeded(state.best_params, degenerate, sample, floor),
                             em.covariance_type, floor)
    polished = FitState(start, state.rng, restart=state.restart, phase="move")
    polished = run_fits(engine, [polished], em, callbacks)[0]
    if not polished.finished:
        finish_fits(engine, [polished], em)
    still = degenerate_components(polished.best_params, floor)
    if not np.isfinite(polished.best_lower_bound) or len(still) >= len(degenerate):
        logger.info("Components %s are degenerate (collapsed, or on the covariance floor); "
                    "re-seeding them did not help: kept at the floor.", degenerate)
        return state, [], degenerate
    logger.info("Re-seeded degenerate components %s from the worst-explained rows "
                "(log-likelihood %.6f -> %.6f).", degenerate, state.best_lower_bound,
                polished.best_lower_bound)
    return polished, degenerate, still
