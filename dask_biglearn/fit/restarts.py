"""Independent starts of one fit; the best by joint training log-likelihood is kept."""

from __future__ import annotations

from ..model import FitState
from .loop import run_fit


def run_restarts(engine, initial_params, n_init: int, settings, rng, callbacks=()) -> FitState:
    """Fit from ``n_init`` starts drawn in turn by ``initial_params(rng)``, one after another.

    Returns the finished state with the highest ``best_lower_bound`` (the first among equals),
    or, if a callback stopped a start, that start's unfinished state.
    """
    best = None
    for _ in range(n_init):
        state = run_fit(engine, FitState(initial_params(rng), rng), settings, callbacks)
        if not state.finished:
            return state
        if best is None or state.best_lower_bound > best.best_lower_bound:
            best = state
    return best
