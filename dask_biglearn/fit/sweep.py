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
the full-data refinements then share their passes the same way. The k-means starts and the
moves of every program rank on one row sample too (of the largest plan's size, drawn once
from the sweep's generator): a program's starts are then not those it draws alone. The threads only take
turns: the passes run one at a time, in the thread of the last program to ask, while the
others wait; every program draws from its own generator, so its result is the one it gets
alone.
"""

from __future__ import annotations

import threading

from ..initialization import SAMPLE_STARTS, init_sample_size
from .plan import conclude, explore

__all__ = ["SharedPasses", "run_plans"]


class SharedPasses:
    """Collects the passes of several programs and runs them together.

    Parameters
    ----------
    n_programs : int
        How many programs share the passes (each calls :meth:`done` when it ends).
    """

    def __init__(self, n_programs: int):
        self._ready = threading.Condition()
        self._live = int(n_programs)
        self._waiting = []  # (engine, specs, slot)
        self.n_batches = 0

    def run_passes(self, engine, specs):
        """The statistics of ``specs`` over ``engine``'s data, from a read shared with the
        other programs' pending passes (once every live program waits).

        Parameters
        ----------
        engine : Engine
        specs : list of PassSpec

        Returns
        -------
        list of SuffStats
        """
        slot = {}
        with self._ready:
            self._waiting.append((engine, list(specs), slot))
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
        self.n_batches += 1
        for engine in {id(e): e for e, _, _ in batch}.values():
            mine = [(specs, slot) for e, specs, slot in batch if e is engine]
            try:
                stats = engine.run_passes([spec for specs, _ in mine for spec in specs])
            except BaseException as exc:  # noqa: BLE001 - every program of the pass sees it
                for _, slot in mine:
                    slot["error"] = exc
                continue
            start = 0
            for specs, slot in mine:
                slot["stats"] = stats[start : start + len(specs)]
                start += len(specs)
        self._ready.notify_all()


class _SharedEngine:
    """An engine whose passes go through a :class:`SharedPasses`, and whose row sample (for
    the k-means starts and the moves) is the sweep's one; everything else is the engine's
    own."""

    def __init__(self, engine, shared: SharedPasses, sample=None):
        self._engine = engine
        self._shared = shared
        self._sample = sample

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def take_sample(self, size, seed):
        if self._sample is None:
            return self._engine.take_sample(size, seed)
        return self._sample

    def run_passes(self, specs):
        return self._shared.run_passes(self._engine, specs)

    def run_pass(self, spec):
        return self.run_passes([spec])[0]


def _in_threads(programs):
    """Run the callables ``programs`` in threads whose passes are shared; return their
    results in order (the first failure is raised once all have ended)."""
    shared = SharedPasses(len(programs))
    results, errors = [None] * len(programs), [None] * len(programs)

    def run(i):
        try:
            results[i] = programs[i](shared)
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
    (every plan's ``sample_rows`` None), the programs run on the full data; otherwise one
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
    sizes = [plan.sample_rows for plan in plans]
    largest = max(plan.n_components for plan in plans)
    ranks = any(p.init_params in SAMPLE_STARTS or p.moves is not None for p in plans)

    def one_sample(on):  # the rows every program's starts and moves work on
        if not ranks:
            return None
        size = init_sample_size(on.summaries.n_samples, largest)
        return on.take_sample(size, int(rng.integers(2**63 - 1)))

    if any(size is None for size in sizes):
        rows = one_sample(engine)
        return _in_threads([
            lambda shared, plan=plan, g=g: conclude(
                _SharedEngine(engine, shared, rows), plan,
                *explore(_SharedEngine(engine, shared, rows), plan, g, callbacks), None,
                callbacks)
            for plan, g in zip(plans, rngs, strict=True)])
    seed = int(rng.integers(2**63 - 1))
    with engine.sample_engine(max(sizes), seed) as on_sample:
        rows = one_sample(on_sample)
        explored = _in_threads([
            lambda shared, plan=plan, g=g: explore(_SharedEngine(on_sample, shared, rows),
                                                   plan, g, callbacks)
            for plan, g in zip(plans, rngs, strict=True)])
        n_sample_passes = int(on_sample.n_data_passes)
    return _in_threads([
        lambda shared, plan=plan, found=found: conclude(
            _SharedEngine(engine, shared, rows), plan, *found, n_sample_passes, callbacks)
        for plan, found in zip(plans, explored, strict=True)])
