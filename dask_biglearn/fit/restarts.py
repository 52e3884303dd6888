"""Independent starts of one fit, advancing together; the best by joint training
log-likelihood is kept."""

from __future__ import annotations

from ..model import FitState
from .loop import run_fits


def start_generators(n_init: int, rng, n_extra: int = 0) -> list:
    """The generators of a fit's starts: nested, so that more starts never lose one.

    Start ``i < n_init`` draws from the ``i``-th child of ``rng`` (``rng.spawn``, one
    generator per start, also for a single start); the ``n_extra`` starts after them (those
    ``init_params="auto"`` adds) from the children of the first start's generator. With the
    same ``rng``, the starts of ``n_init = m`` (and ``n_extra = e``) are therefore the first
    ``m`` (and ``e``) starts of any larger ``n_init`` (and ``n_extra``): raising ``n_init``
    keeps every start and adds others. Spawning draws nothing from a generator, so no start's
    stream depends on how many others there are.

    Parameters
    ----------
    n_init : int
        The independent starts.
    rng : numpy.random.Generator
        The fit's generator.
    n_extra : int, default=0
        Starts after them, nested among themselves.

    Returns
    -------
    generators : list of numpy.random.Generator
        ``n_init + n_extra`` generators, in the order of the starts.
    """
    generators = rng.spawn(n_init)
    return generators + (generators[0].spawn(n_extra) if n_extra else [])


def start_states(initial_params, n_init: int, rng, n_extra: int = 0) -> list[FitState]:
    """Return the fresh states of a fit's starts, each with a generator of its own.

    The generators are :func:`start_generators`: each start draws its parameters and every
    later draw from its own, so a start is the same whether it runs alone or beside others,
    and the starts of a smaller ``n_init`` are among those of a larger one.

    Parameters
    ----------
    initial_params : callable
        ``initial_params(generator, index) -> MixtureParams``: the initial parameters of the
        ``index``-th start, drawn from its own generator.
    n_init : int
        How many independent starts.
    rng : numpy.random.Generator
        The fit's generator.
    n_extra : int, default=0
        Starts after them (see :func:`start_generators`).

    Returns
    -------
    states : list of FitState
        New states (``restart`` numbered from 0), each with the generator of its start.
    """
    generators = start_generators(n_init, rng, n_extra)
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


def refine(engine, states, settings, callbacks=(), phase="refine"):
    """Run plain EM from the result of each finished state, all advancing together.

    The exact full-data polish of a model that matchings and weight smoothing found (and,
    in the scalable mode, the full-data refinement of the model explored on the sample).

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
    phase : str, default="refine"
        The refining states' phase (``"refine-full"``: the scalable mode's full-data
        refinement).

    Returns
    -------
    states : list of FitState
        The refining states, one per state, in order.
    """
    refining = [FitState(s.best_params, s.rng, restart=s.restart, phase=phase)
                for s in states]
    return run_fits(engine, refining, settings, callbacks)
