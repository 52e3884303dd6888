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

from ..algebra import floor_eigenvalues, precision_cholesky
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
    """Which moves, how many candidates a round tries and for how long."""

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
    """``(responsibilities (n, K), per-component log-densities (n, K), log p(x) (n,))``."""
    log_prob = weighted_log_prob(sample, params.weights, params.means,
                                 precision_cholesky(params.covariances))
    log_p = logsumexp(log_prob, axis=1)
    with np.errstate(divide="ignore"):
        log_density = log_prob - np.log(params.weights)
    return np.exp(log_prob - log_p[:, None]), log_density, log_p


def merge_scores(resp: np.ndarray) -> np.ndarray:
    """SMEM's ``J_merge(i, j)``: cosine of the responsibility vectors; the diagonal is -inf."""
    norms = np.linalg.norm(resp, axis=0)
    scores = (resp.T @ resp) / np.maximum(np.outer(norms, norms), 1e-300)
    np.fill_diagonal(scores, -np.inf)
    return scores


def split_scores(resp: np.ndarray, log_density: np.ndarray, n_features: int) -> np.ndarray:
    """How far each component's rows are from one Gaussian: the deficit of their
    responsibility-weighted multivariate kurtosis (Mardia's ``b_2``, the mean squared
    Mahalanobis distance, ``D (D + 2)`` for a Gaussian), relative. A component that spans two
    clusters is platykurtic (``b_2`` low, the score high).

    (SMEM's own criterion, the KL from the weighted empirical density to the Gaussian, mixes
    in each component's volume: on data with clusters of different scales it ranks by size,
    not by fit.)
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
    """Pairs ``(i, j)``, ``i < j``, by decreasing ``scores[i, j]``."""
    i, j = np.triu_indices(len(scores), k=1)
    order = np.argsort(-scores[i, j], kind="stable")
    return [(int(i[o]), int(j[o])) for o in order]


# ---- the closed-form changes ------------------------------------------------------------------


def merged(params: MixtureParams, i: int, j: int):
    """``(weight, mean, covariance)`` of components ``i`` and ``j`` moment-matched into one."""
    w = params.weights[[i, j]]
    weight = w.sum()
    a = w / weight
    mean = a[0] * params.means[i] + a[1] * params.means[j]
    cov = sum(a[t] * (params.covariances[c] + np.outer(params.means[c] - mean,
                                                        params.means[c] - mean))
              for t, c in enumerate((i, j)))
    return weight, mean, cov


def split(weight, mean, cov, floor):
    """Two components from one, either side of ``mean`` along the principal axis, with the
    same first and second moments."""
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
    """SMEM's candidates: merge pairs ranked by ``J_merge`` and split targets (other than the
    pair) ranked by :func:`split_scores`, combined in the order of the sum of their ranks
    (ties: the better merge first); up to ``n_candidates``."""
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
    """Greedy EM's re-seeding: remove the redundant member of the most overlapping pairs (the
    lighter one; its weight goes to the other) or the most starved component, and place it
    at the worst-explained sample rows, one candidate each."""
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
    """Every kind's candidates, in the order of ``moves.kinds``."""
    return [c for kind in moves.kinds
            for c in PROPOSALS[kind](params, sample, moves.n_candidates, floor)]


# ---- the driver ---------------------------------------------------------------------------------


def improve_by_moves(engine, state: FitState, sample, moves: MoveSettings,
                     em: FitSettings, callbacks=()):
    """Rounds of moves from the finished ``state``'s result: returns the finished state of
    the best model found (``state`` itself when no move helped) and the number of moves
    kept. Every state a round makes has ``phase="move"``."""
    trial = FitSettings.plain_em(max_iter=moves.trial_iter, tol=em.tol,
                                 covariance_floor=em.covariance_floor)
    current, kept = state, 0
    for _ in range(moves.max_rounds):
        proposals = candidates(current.best_params, sample, moves, em.covariance_floor)
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
