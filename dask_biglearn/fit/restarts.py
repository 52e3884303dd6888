"""Independent starts of one fit, advancing together; the best by joint training
log-likelihood is kept."""

from __future__ import annotations

from ..model import FitState
from .loop import run_fits


def start_states(initial_params, n_init: int, rng) -> list[FitState]:
    """Return ``n_init`` fresh states, one per independent start.

    One start uses ``rng`` itself; several use the generators ``rng.spawn(n_init)``, one
    each, for their start and every later draw, so that each start is the same whether it
    runs alone or beside the others.

    Parameters
    ----------
    initial_params : callable
        ``initial_params(generator, index) -> MixtureParams``: the initial parameters of the
        ``index``-th start, drawn from its own generator.
    n_init : int
        How many starts.
    rng : numpy.random.Generator
        The fit's generator.

    Returns
    -------
    states : list of FitState
        New states (``restart`` numbered from 0), each with the generator of its start.
    """
    generators = [rng] if n_init == 1 else rng.spawn(n_init)
    return [FitState(initial_params(g, i), g, restart=i) for i, g in enumerate(generators)]


#: Starts whose log-likelihoods differ by less than this (relative) are equally good: the
#: first of them is kept. Two starts that found the same optimum (components in another
#: order) differ only by rounding, which depends on the chunking: without this tolerance the
#: chosen start, and so the order of the components, would too.
TIE_TOLERANCE = 1e-9


def best_state(states, tie_tolerance=TIE_TOLERANCE) -> FitState:
    """Return the first state whose ``best_lower_bound`` is within ``tie_tolerance`` of the
    highest.

    Starts within the tolerance found the same optimum up to rounding (see
    :data:`TIE_TOLERANCE`): taking the first of them keeps the choice independent of the
    chunking.

    Parameters
    ----------
    states : list of FitState
        Finished states.
    tie_tolerance : float, default=TIE_TOLERANCE
        Relative tolerance (of ``max(1, |highest|)``) under which two lower bounds tie.

    Returns
    -------
    state : FitState
        The best state, the first among ties.
    """
    top = max(s.best_lower_bound for s in states)
    margin = tie_tolerance * max(1.0, abs(top))
    return next(s for s in states if s.best_lower_bound >= top - margin)


def refine(engine, states, settings, callbacks=()):
    """Run plain EM from the result of each finished state, all advancing together.

    The exact full-data polish of a model that matchings and weight smoothing found.

    Parameters
    ----------
    engine : Engine
        Where the rows live.
    states : list of FitState
        Finished states; each refinement starts from its ``best_params`` and continues with
        its generator, under the same ``restart`` number.
    settings : FitSettings
        Plain EM's settings, from :meth:`~dask_biglearn.fit.loop.FitSettings.plain_em`.
    callbacks : iterable of callable, default=()
        ``callback(state, event)``, as :func:`~dask_biglearn.fit.loop.run_fits` takes them.

    Returns
    -------
    states : list of FitState
        The refining states (``phase="refine"``), one per state, in order.
    """
    refining = [FitState(s.best_params, s.rng, restart=s.restart, phase="refine")
                for s in states]
    return run_fits(engine, refining, settings, callbacks)
