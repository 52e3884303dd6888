"""The actor route: one ``distributed`` actor per worker holds that worker's chunks, and a
pass is one direct call to each, with no task for the scheduler to place.

A pass through the scheduler waits before its first task starts and after its last task
ends; for small persisted data that wait is most of a pass. Actors keep their chunks in
memory (the worker cannot spill them) and die with their worker: if one is lost, the route
warns once and closes, and the engine goes on with tasks, which the scheduler can recompute.
"""

from __future__ import annotations

import logging

from ..kernels.passes import pass_stats_batch
from ..kernels.stats import combine_stat_lists

logger = logging.getLogger(__name__)

#: Errors of an unreachable or lost actor (what distributed raises); tasks recover from them.
#: Errors of the pass itself are not among them: tasks would only raise them again.
LOST_ACTOR_ERRORS = (OSError, RuntimeError, KeyError, TimeoutError)


class PassActor:
    """One worker's share of every pass: its groups of blocks, held in memory on that worker.

    Groups run on threads of their own (the kernels release the GIL).

    Parameters
    ----------
    groups : list of list of ndarray of shape (n_rows_i, n_features)
        This worker's groups of blocks (``distributed`` turns the futures it is started with
        into their data).
    """

    def __init__(self, groups):
        self._groups = groups
        self._pool = None

    def run(self, specs, block_rows):
        """Run this worker's share of several passes, one thread per group of blocks.

        Parameters
        ----------
        specs : list of PassSpec
            The passes, each over all the blocks (see
            :func:`dask_biglearn.kernels.passes.pass_stats_batch`).
        block_rows : int or None
            Rows per sub-block of the kernel (None: its default).

        Returns
        -------
        stats : list of list of SuffStats
            For each group, the statistics of each pass over that group's blocks.
        """
        def one(group):
            return pass_stats_batch(group, specs, block_rows)

        if len(self._groups) == 1:
            return [one(self._groups[0])]
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(len(self._groups), "biglearn-pass")
        return list(self._pool.map(one, self._groups))

    def close(self):
        """Stop the thread pool and drop the blocks."""
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None
        self._groups = []


class ActorRoute:
    """The actors of one engine: start them, run passes through them, close them.

    Parameters
    ----------
    client : distributed.Client
        The client of the cluster the actors run on.
    placement : Placement
        The engine's groups of chunks and the worker holding each group.
    start_timeout : float
        Seconds to wait for the actors to start.
    """

    def __init__(self, client, placement, start_timeout: float):
        by_key = {f.key: f for f in placement.block_futures}
        by_worker = {}
        for group, worker in zip(placement.groups, placement.group_workers, strict=True):
            by_worker.setdefault(worker, []).append([by_key[k] for k in group])
        started = [
            # Bound to its worker: an actor lost with it must stay lost (its future no longer
            # "finished"), not reappear elsewhere behind a proxy that calls the dead address.
            client.submit(PassActor, groups, actor=True, workers=[worker],
                          allow_other_workers=False, pure=False)
            for worker, groups in sorted(by_worker.items())
        ]
        self._client = client
        self._actors = []  # (actor proxy, its future): the future keeps it alive
        try:
            for future in started:
                self._actors.append((future.result(timeout=start_timeout), future))
        except BaseException:
            client.cancel(started)
            raise

    def run_passes(self, specs, block_rows):
        """Run several passes through the actors, one direct call to each.

        Parameters
        ----------
        specs : list of PassSpec
            The passes, each over all the blocks.
        block_rows : int or None
            Rows per sub-block of the kernel (None: its default).

        Returns
        -------
        stats : list of SuffStats or None
            One per spec, summed over the workers; None (and the route closed) if an actor
            is lost, so the caller runs the passes as tasks instead.
        """
        try:
            lost = [f.key for _, f in self._actors if f.status != "finished"]
            if lost:
                raise RuntimeError(f"actors {lost} are gone (their worker was lost)")
            calls = [actor.run(specs, block_rows) for actor, _ in self._actors]
            return combine_stat_lists([part for call in calls for part in call.result()])
        except LOST_ACTOR_ERRORS as exc:
            logger.warning("A pass through the workers' actors failed (%r); passes go "
                           "through the scheduler from now on.", exc)
            self.close()
            return None

    def close(self):
        """Stop the actors' thread pools and cancel the actors, which releases their chunks.

        Cancelling is needed: an actor proxy holds a future of its own, so releasing ours
        would not be enough. Closing an actor whose worker is lost is skipped.
        """
        actors, self._actors = self._actors, []
        calls = []
        for actor, future in actors:
            if future.status == "finished":
                try:
                    calls.append(actor.close())
                except LOST_ACTOR_ERRORS:
                    pass
        for call in calls:
            try:
                call.result(timeout=10)
            except Exception:  # best effort: the actor is released below in any case
                logger.debug("Closing a pass actor failed", exc_info=True)
        if actors:
            self._client.cancel([future for _, future in actors])
