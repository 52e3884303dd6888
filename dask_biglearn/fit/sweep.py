"""Several fit programs over the same data, every read of the data shared between them.

A sweep over the number of components (and the covariance type) fits one model per
candidate. Each candidate's fit program (:mod:`dask_biglearn.fit.plan`) runs as it would
alone, in a thread of its own, through a proxy of the engine whose passes are collected:
when every program still running waits for a pass, one read of the data computes all their
passes together (:meth:`Engine.run_passes` of the union of their specs; the kernels stack
the models of different sizes), and each program gets its own statistics back. So a sweep
reads the data about as often as its longest program alone, a finished program costs
nothing more, and no program waits for another's phase: each is at its own step.

In the scalable mode one row sample (of the largest plan's size) serves every exploration;
the full-data refinements then share their passes the same way. The k-means starts, the
moves and the re-seeding of every program rank on one row sample too (of the largest plan's
size, drawn once from the sweep's generator and handed to each program: the ``sample``
argument of :func:`~dask_biglearn.fit.plan.explore`; like every start's rows, a missing
value in it is its column's mean, and rows with no observed value are left out), so a
program's k-means starts are not those it draws alone. The threads only take turns: the passes run one at a time, in the
thread of the last program to ask, while the others wait; every program draws from its own
generator, so a program whose starts need no sample gets the result it gets alone.
"""

from __future__ import annotations

import threading

from ..initialization import SAMPLE_STARTS, init_sample_size, start_rows
from .plan import check_positive_rows, conclude, explore

__all__ = ["SharedPasses", "run_plans"]


class SharedPasses:
    """Collects the passes of several programs over one engine and runs them together.

    Parameters
    ----------
    engine : Engine
        The data every program's passes read.
    n_programs : int
        How many programs share the passes (each calls :meth:`done` when it ends).
    """

    def __init__(self, engine, n_programs: int):
        self._engine = engine
        self._ready = threading.Condition()
        self._live = int(n_programs)
        self._waiting = []  # (specs, slot)

    def run_passes(self, specs):
        """The statistics of ``specs``, from a read of the data shared with the other
        programs' pending passes (once every live program waits).

        Parameters
        ----------
        specs : list of PassSpec

        Returns
        -------
        list of SuffStats
        """
        slot = {}
        with self._ready:
            self._waiting.append((list(specs), slot))
            self._run_if_all_wait()
            while "stats" not in slot and "error" not in slot:
                self._ready.wait()
        if "error" in slot:
            raise slot["error"]
        return slot["stats"]

    def done(self):
        """A program ended (or failed): the others no longer wait for it."""
        with self._ready:
            self._live -= 1
            self._run_if_all_wait()

    def _run_if_all_wait(self):
        if not self._waiting or len(self._waiting) < self._live:
            return
        batch, self._waiting = self._waiting, []
        try:
            stats = self._engine.run_passes([spec for specs, _ in batch for spec in specs])
        except BaseException as exc:  # noqa: BLE001 - every program of the pass sees it
            for _, slot in batch:
                slot["error"] = exc
        else:
            start = 0
            for specs, slot in batch:
                slot["stats"] = stats[start : start + len(specs)]
                start += len(specs)
        self._ready.notify_all()


class _SharedEngine:
    """One program's engine: its passes go through a :class:`SharedPasses`; what else a
    program reads of an engine (the summaries, the kernels' choices, rows by index or by
    sample) is the engine's own."""

    def __init__(self, engine, shared: SharedPasses):
        self._shared = shared
        self.summaries = engine.summaries
        self.n_features = engine.n_features
        self.compiled = engine.compiled
        self.float32_products = engine.float32_products
        self.weighted = engine.weighted
        self.missing = engine.missing
        self.take_rows = engine.take_rows
        self.take_sample = engine.take_sample

    def run_passes(self, specs):
        return self._shared.run_passes(specs)

    def run_pass(self, spec):
        return self.run_passes([spec])[0]


def _in_threads(engine, programs):
    """Run the callables ``programs`` (each ``program(engine) -> result``) in threads whose
    passes over ``engine`` are shared; return their results in order (the first failure is
    raised once all have ended)."""
    shared = SharedPasses(engine, len(programs))
    results, errors = [None] * len(programs), [None] * len(programs)

    def run(i):
        try:
            results[i] = programs[i](_SharedEngine(engine, shared))
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread
            errors[i] = exc
        finally:
            shared.done()

    threads = [threading.Thread(target=run, args=(i,), name=f"biglearn-sweep-{i}")
               for i in range(len(programs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for error in errors:
        if error is not None:
            raise error
    return results


def run_plans(engine, plans, rng, callbacks=()) -> list:
    """Carry out several fit programs over ``engine``'s data, sharing every pass.

    Each plan draws from a generator of its own (``rng.spawn``). Without a sample
    (a plan's ``sample_rows`` None), the programs run on the full data; otherwise one
    sample of the largest plan's ``sample_rows`` rows serves every exploration, and the
    full-data refinements follow, sharing their passes too.

    Parameters
    ----------
    engine : Engine
    plans : sequence of FitPlan
    rng : numpy.random.Generator
    callbacks : iterable of callable, default=()
        ``callback(state, event)``, called from the programs' threads.

    Returns
    -------
    list of FitResult
        One per plan, in order.
    """
    plans, callbacks = list(plans), list(callbacks)
    rngs = rng.spawn(len(plans))
    largest = max(plan.n_components for plan in plans)
    check_positive_rows(engine.summaries, largest)
    ranks = any(p.init_params in SAMPLE_STARTS or p.moves is not None for p in plans)

    def one_sample(on):  # the rows every program's starts, moves and re-seeding rank on
        if not ranks:
            return None
        size = init_sample_size(on.summaries.n_positive_rows, largest)
        seed = int(rng.integers(2**63 - 1))
        return start_rows(on.take_sample(on.summaries.rows_holding(size), seed), on, largest,
                          seed)

    def program(plan, generator, rows):
        def run(on):
            return conclude(on, plan, explore(on, plan, generator, callbacks, rows), None,
                            callbacks)
        return run

    if any(plan.sample_rows is None for plan in plans):
        rows = one_sample(engine)
        return _in_threads(engine, [program(plan, g, rows)
                                    for plan, g in zip(plans, rngs, strict=True)])

    def exploration(plan, generator, rows):
        def run(on):
            return explore(on, plan, generator, callbacks, rows)
        return run

    def conclusion(plan, found, n_sample_passes):
        def run(on):
            return conclude(on, plan, found, n_sample_passes, callbacks)
        return run

    seed = int(rng.integers(2**63 - 1))
    size = engine.summaries.rows_holding(max(plan.sample_rows for plan in plans))
    with engine.sample_engine(size, seed) as on_sample:
        rows = one_sample(on_sample)
        explored = _in_threads(on_sample, [exploration(plan, g, rows)
                                           for plan, g in zip(plans, rngs, strict=True)])
        n_sample_passes = int(on_sample.n_data_passes)
    return _in_threads(engine, [conclusion(plan, found, n_sample_passes)
                                for plan, found in zip(plans, explored, strict=True)])
