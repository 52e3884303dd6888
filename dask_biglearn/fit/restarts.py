"""Independent starts of one fit, advancing together; the best by joint training
log-likelihood is kept."""

from __future__ import annotations

from ..model import FitState
from .loop import run_fits


def start_states(initial_params, n_init: int, rng) -> list[FitState]:
    """``n_init`` fresh states. One start uses ``rng`` itself; several use the generators
    ``rng.spawn(n_init)``, one each, for their start and every later draw, so that each start
    is the same whether it runs alone or beside the others."""
    generators = [rng] if n_init == 1 else rng.spawn(n_init)
    return [FitState(initial_params(g), g, restart=i) for i, g in enumerate(generators)]


def best_state(states) -> FitState:
    """The finished state with the highest ``best_lower_bound`` (the first among equals)."""
    best = None
    for state in states:
        if best is None or state.best_lower_bound > best.best_lower_bound:
            best = state
    return best


def run_restarts(engine, initial_params, n_init: int, settings, rng, callbacks=()):
    """Fit from ``n_init`` starts ``initial_params(generator)``, advancing together (every
    read of the data serves all of them). Returns all their states (see
    :func:`~dask_biglearn.fit.loop.run_fits`)."""
    return run_fits(engine, start_states(initial_params, n_init, rng), settings, callbacks)


def refine(engine, states, settings, callbacks=()):
    """Plain EM (``settings``, from :meth:`FitSettings.plain_em`) from the result of each
    finished state, all advancing together: the exact full-data polish of a model that
    matchings and weight smoothing found. Returns the refining states (``phase="refine"``)."""
    refining = [FitState(s.best_params, s.rng, restart=s.restart, phase="refine")
                for s in states]
    return run_fits(engine, refining, settings, callbacks)
