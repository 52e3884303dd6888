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


#: Starts whose log-likelihoods differ by less than this (relative) are equally good: the
#: first of them is kept. Two starts that found the same optimum (components in another
#: order) differ only by rounding, which depends on the chunking: without this tolerance the
#: chosen start, and so the order of the components, would too.
TIE_TOLERANCE = 1e-9


def best_state(states, tie_tolerance=TIE_TOLERANCE) -> FitState:
    """The first state whose ``best_lower_bound`` is within ``tie_tolerance`` (relative) of
    the highest."""
    top = max(s.best_lower_bound for s in states)
    margin = tie_tolerance * max(1.0, abs(top))
    return next(s for s in states if s.best_lower_bound >= top - margin)


def refine(engine, states, settings, callbacks=()):
    """Plain EM (``settings``, from :meth:`FitSettings.plain_em`) from the result of each
    finished state, all advancing together: the exact full-data polish of a model that
    matchings and weight smoothing found. Returns the refining states (``phase="refine"``)."""
    refining = [FitState(s.best_params, s.rng, restart=s.restart, phase="refine")
                for s in states]
    return run_fits(engine, refining, settings, callbacks)
