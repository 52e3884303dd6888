"""How one EM pass over the data is executed: in-process on NumPy, or as a Dask tree reduction.

Both engines run the same kernel (:func:`dask_biglearn.numerics.chunk_stats` and its parts)
and return the same :class:`~dask_biglearn.numerics.SuffStats`; they differ only in where the
rows live.  Neither knows anything about the M-step or the schedule of matchings.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from typing import NamedTuple

import dask
import dask.threaded
import numpy as np
from dask.base import get_scheduler
from dask.core import flatten

from .numerics import (
    SuffStats,
    chunk_stats,
    combine_stats,
    default_block_rows,
    feature_pass,
    group_stats,
    n_quadratic_features,
    projected_features,
    row_blocks,
    sum_stats,
)

#: The in-process engine caches the quadratic features of the data when they fit in this many
#: bytes; larger data recomputes them block by block every pass.
FEATURE_CACHE_BYTES = 512 * 2**20

#: The parameters of a pass (E-step coefficients, shift, projection) are written into every
#: chunk task while their copies take at most this many bytes in all: a key of their own
#: would be one more task, and one more transfer to each worker, on every pass.
INLINE_PARAMETER_BYTES = 2**20

logger = logging.getLogger(__name__)


class InProcessEngine:
    """Passes over an in-memory NumPy array in a plain loop, with no scheduler round trip.

    Small fits make tens of thousands of passes, and the quadratic features of the data do
    not depend on the parameters. Within :data:`FEATURE_CACHE_BYTES` the engine keeps them:

    * the features of the data, computed once and reused by every joint pass;
    * the features of ``P x`` for the last projection ``P``, reused while the next passes use
      the same ``P`` (the ``n_inner_iter`` local updates of one BigLearn-EM outer iteration),
      in a buffer as large as the data's own features (so this needs room for both).

    Larger data recomputes the features block by block every pass.
    """

    def __init__(self, X: np.ndarray, shift: np.ndarray, block_rows: int | None = None):
        self.X = X
        self.shift = np.asarray(shift, dtype=np.float64)
        self.n_samples, self.n_features = X.shape
        self.block_rows = block_rows or default_block_rows(self.n_features)
        self._features = None
        if self._feature_bytes(self.n_features) <= FEATURE_CACHE_BYTES:
            self._features = self._block_features(None)
        self._projected = None  # (copy of P, its block features)
        self._projected_buffer = None

    def _feature_bytes(self, n_dims: int) -> int:
        return 8 * self.n_samples * n_quadratic_features(n_dims)

    def _block_features(self, projection, buffer=None):
        """Features of each sub-block, written into ``buffer`` (flat float64) if given."""
        width = n_quadratic_features(self.n_features if projection is None
                                     else projection.shape[0])
        if buffer is None:
            buffer = np.empty(width * self.n_samples)
        return [
            projected_features(self.X[start:stop], self.shift, projection,
                               out=buffer[width * start : width * stop].reshape(width, -1))
            for start, stop in row_blocks(self.n_samples, self.block_rows)
        ]

    def _features_of(self, projection):
        """Cached block features for ``projection`` (None: the data's own), or None when
        they do not fit the cache."""
        if projection is None:
            return self._features
        if self._projected is not None and np.array_equal(self._projected[0], projection):
            return self._projected[1]
        self._projected = None  # the buffer is about to change: never pair it with a stale P
        # One buffer, as wide as the data's own features (projections have m <= D rows),
        # reused by every projection: fresh memory for each would cost page faults.
        cached = 0 if self._features is None else self._feature_bytes(self.n_features)
        if (projection.shape[0] > self.n_features
                or cached + self._feature_bytes(self.n_features) > FEATURE_CACHE_BYTES):
            return None
        if self._projected_buffer is None:
            self._projected_buffer = np.empty(self._feature_bytes(self.n_features) // 8)
        self._projected = (np.array(projection),
                           self._block_features(projection, self._projected_buffer))
        return self._projected[1]

    def run_pass(self, theta, projection, need_stats=True) -> SuffStats:
        features = self._features_of(projection)
        if features is None:
            return chunk_stats(self.X, theta, self.shift, projection, need_stats, self.block_rows)
        theta_t = np.ascontiguousarray(theta.T)
        parts = (feature_pass(F_t, theta_t, need_stats) for F_t in features)
        return sum_stats(parts, theta.shape[1], need_stats)


def _active_client():
    """The ``distributed.Client`` Dask would compute on now, or None."""
    get = get_scheduler()
    client = getattr(get, "__self__", None)
    if client is None:
        return None
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover
        return None
    return client if isinstance(client, Client) else None


def _holder(who_has, key):
    holders = who_has.get(key) or who_has.get(str(key)) or ["?"]
    return min(holders)


def _copy_chunk(block):
    return block


def _take_rows(block, start, stop, copy):
    rows = block[start:stop]
    return rows.copy() if copy else rows


#: Chunks are split when, after moving whole chunks, a worker holds more than its share of
#: rows by this fraction of the share (a pass waits for the most loaded worker).
BALANCE_TOLERANCE = 0.1


def _balance_chunks(client, block_futures, block_rows):
    """Copy chunks, or parts of them, so that every worker holds rows in proportion to its
    threads.

    The scheduler places persisted chunks where it likes (6 and 4 of 10 chunks is common on
    two workers), and a pass waits for the busiest worker. Chunks are copied, largest first,
    from a worker above its share to the worker furthest below its share, while that brings
    both closer to their shares. Then, while a worker still holds more than
    ``1 + BALANCE_TOLERANCE`` times its share (a single chunk on two workers, say), its
    largest chunk is split: the rows above its share are copied to the worker furthest below
    its share, and the rows it keeps become a view of the chunk.
    The originals are left where they are (they may be the caller's); a receiving worker
    keeps a replica of a whole chunk until distributed's active memory manager drops it.
    Copies ask for their worker without requiring it: if it is lost, the scheduler can
    recompute them anywhere.

    Returns ``(futures, holders, rows)`` in row order: the blocks a pass reads (copies in
    place of moved chunks, two pieces in place of a split one), the worker holding each, and
    their row counts.
    """
    from distributed import wait

    nthreads = client.nthreads()
    futures = list(block_futures)
    rows = [int(r) for r in block_rows]
    who_has = client.who_has(futures)
    holder = [_holder(who_has, f.key) for f in futures]
    if len(nthreads) < 2 or sum(rows) < 2:
        return futures, holder, rows
    total_threads = sum(nthreads.values())
    target = {w: sum(rows) * t / total_threads for w, t in nthreads.items()}
    load = dict.fromkeys(nthreads, 0.0)
    for w, r in zip(holder, rows, strict=True):
        load[w] = load.get(w, 0.0) + r

    def receiver():
        return min(target, key=lambda w: load[w] - target[w])

    for i in sorted(range(len(rows)), key=lambda i: -rows[i]):
        donor, to = holder[i], receiver()
        excess = load[donor] - target.get(donor, 0.0)
        deficit = target[to] - load[to]
        if to == donor or rows[i] >= 2 * min(excess, deficit):
            continue
        futures[i] = client.submit(_copy_chunk, futures[i], workers=[to],
                                   allow_other_workers=True, pure=False)
        load[donor] -= rows[i]
        load[to] += rows[i]
        holder[i] = to
    # Split what whole chunks could not balance.
    pieces = []  # copies of split-off rows, released once their copies exist
    for _ in range(4 * len(nthreads)):
        donor = max(load, key=lambda w: load[w] - target.get(w, 0.0))
        excess = load[donor] - target.get(donor, 0.0)
        if donor not in target or excess <= BALANCE_TOLERANCE * target[donor]:
            break
        to = receiver()
        on_donor = [i for i in range(len(rows)) if holder[i] == donor and rows[i] > 1]
        if not on_donor or to == donor:
            break
        i = max(on_donor, key=lambda i: rows[i])
        n_move = int(min(excess, target[to] - load[to], rows[i] - 1))
        if n_move < 1:
            break
        keep = rows[i] - n_move
        piece = client.submit(_take_rows, futures[i], keep, rows[i], True, workers=[donor],
                              allow_other_workers=True, pure=False)
        pieces.append(piece)
        moved = client.submit(_copy_chunk, piece, workers=[to], allow_other_workers=True,
                              pure=False)
        kept = client.submit(_take_rows, futures[i], 0, keep, False, workers=[donor],
                             allow_other_workers=True, pure=False)
        futures[i : i + 1] = [kept, moved]
        holder[i : i + 1] = [donor, to]
        rows[i : i + 1] = [keep, n_move]
        load[donor] -= n_move
        load[to] += n_move
    wait(futures)
    del pieces
    return futures, holder, rows


#: ``DaskEngine(actors="auto")`` runs passes through actors when the persisted data takes at
#: most this many bytes: there a pass is short and the scheduler's round trips are a large
#: part of it.
ACTOR_PASS_BYTES = 256 * 2**20

#: Seconds to wait for the actors to start before passes go through the scheduler instead.
ACTOR_START_TIMEOUT = 60


class _Placement(NamedTuple):
    """Where a persisted array's blocks are, once balanced over the workers."""

    block_futures: list  # the blocks a pass reads, in row order
    block_rows: list
    groups: list  # lists of block keys, one task (or actor thread) each
    group_workers: list  # the worker holding each group's blocks


class _PassActor:
    """One worker's share of every pass: its groups of blocks, held in memory on that worker.

    Lives on the worker as a ``distributed`` actor. A pass is then one direct call from the
    driver to each worker, with no task for the scheduler to place: about half the time of a
    small pass. Groups run on threads of their own (the kernels release the GIL).
    """

    def __init__(self, groups):
        self._groups = groups
        self._pool = None

    def run(self, theta, shift, projection, need_stats, block_rows):
        def one(group):
            return group_stats(group, theta, shift, projection, need_stats, block_rows)

        if len(self._groups) == 1:
            return [one(self._groups[0])]
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(len(self._groups), "biglearn-pass")
        return list(self._pool.map(one, self._groups))


def _start_pass_actors(client, placement):
    """One :class:`_PassActor` per worker, given the futures of its blocks.

    Returns ``[(actor, its future), ...]``; the future keeps the actor (and its blocks) alive.
    """
    by_key = {f.key: f for f in placement.block_futures}
    by_worker = {}
    for group, worker in zip(placement.groups, placement.group_workers, strict=True):
        by_worker.setdefault(worker, []).append([by_key[k] for k in group])
    started = [
        # Bound to its worker: an actor lost with it must stay lost (its future no longer
        # "finished"), not reappear elsewhere behind a proxy that still calls the dead address.
        client.submit(_PassActor, groups, actor=True, workers=[worker],
                      allow_other_workers=False, pure=False)
        for worker, groups in sorted(by_worker.items())
    ]
    return [(future.result(timeout=ACTOR_START_TIMEOUT), future) for future in started]


class DaskEngine:
    """Passes over a row-chunked Dask array: tasks over its chunks and a tree reduction.

    Each task returns only ``K (1 + m + m^2) + 1`` numbers; ``split_every`` sets the fan-in
    of the reduction tree (default: ``dask.config`` ``"split_every"``, else 8); the driver
    adds up its last level (at most ``split_every`` results). One scheduler call per pass,
    on whatever scheduler is active (a ``distributed.Client`` if one is the default, else
    Dask's threads).

    The graph of a pass is built directly as a plain task dict: the (optimised) graph of the
    data once, plus one task per chunk group and per combine; nothing is tokenised per pass.

    With a ``distributed.Client``:

    * ``persist="auto"`` persists an array that is not persisted yet when it takes at most
      half of the cluster's memory (so a pass never ships in-memory data with its graph, and
      never re-reads a store that fits); larger arrays are read from their source every pass
      (out of core). ``persist=False`` never persists.
    * chunks are copied between workers, once, until each holds rows in proportion to its
      threads (whole chunks first, then parts of chunks, to within
      :data:`BALANCE_TOLERANCE`; one chunk on a cluster is shared by all workers), then
      grouped by the worker holding them, one task per worker thread that has a chunk (a
      worker holding one piece uses one thread): a pass costs a few tasks whatever the
      number of chunks, and no worker waits for another.
    * ``actors="auto"`` (for persisted data of at most :data:`ACTOR_PASS_BYTES`; ``True``:
      any persisted data) gives each worker a ``distributed`` actor holding its groups of
      chunks: a pass is then one direct call per worker, with no task for the scheduler to
      place (a one-chunk pass of 1e4 x 16 rows, K = 25: 19 ms instead of 33 ms on two
      local workers). Actors keep their chunks in memory (the worker cannot spill them) and
      do not survive their worker: if one is lost, the engine warns once and goes on with
      tasks, which the scheduler can recompute. ``actors=False`` always uses tasks.

    Otherwise every chunk is its own task.
    """

    def __init__(self, X, shift=None, split_every: int | None = None,
                 block_rows: int | None = None, persist="auto", actors="auto"):
        if X.numblocks[1] != 1:
            X = X.rechunk({1: -1})
        self.n_samples, self.n_features = (int(s) for s in X.shape)
        #: Centre of the moments; may be set after construction (e.g. once the data
        #: summaries are computed on the persisted array).
        self.shift = None if shift is None else np.asarray(shift, dtype=np.float64)
        split_every = split_every or dask.config.get("split_every", None) or 8
        if isinstance(split_every, dict):
            split_every = split_every.get(0, 8)
        if int(split_every) < 2:
            raise ValueError(f"split_every must be >= 2, got {split_every}.")
        self.split_every = int(split_every)
        self.block_rows = block_rows or default_block_rows(self.n_features)
        if actors not in ("auto", True, False):
            raise ValueError(f"actors must be 'auto', True or False, got {actors!r}.")
        client = _active_client()
        placement, futures = None, []
        if client is not None:
            X, futures, placement = self._place_on_cluster(client, X, persist)
        self.X = X
        keys = X.__dask_keys__()
        self._data_graph = dict(X.__dask_optimize__(X.__dask_graph__(), keys))
        # Optimising a graph built on persisted data drops its futures: put them back, so
        # tasks find the chunks (or the chunks they derive from) where they are.
        self._data_graph.update((f.key, f) for f in futures)
        if placement is None:
            self._block_keys = list(flatten(keys))
            #: Rows of each block a pass reads (pieces of split chunks included).
            self._block_rows = [int(r) for r in X.chunks[0]]
            self._groups = [[k] for k in self._block_keys]
        else:
            self._block_keys = [f.key for f in placement.block_futures]
            self._block_rows = placement.block_rows
            self._groups = placement.groups
        # Unique per engine: concurrent fits on the same data must not share task keys.
        self._name = f"biglearn-pass-{uuid.uuid4().hex}"
        self._passes = itertools.count()
        self._actors = None
        if placement is not None and (
                actors is True or (actors == "auto" and X.nbytes <= ACTOR_PASS_BYTES)):
            try:
                self._actors = _start_pass_actors(client, placement)
            except (OSError, RuntimeError, TimeoutError) as exc:  # e.g. a worker was lost
                logger.warning("Could not start the pass actors (%r); passes go through the "
                               "scheduler.", exc)

    @staticmethod
    def _place_on_cluster(client, X, persist):
        """Persist ``X`` if asked and sensible; group its chunks by the worker holding them.

        Returns ``(X, futures the graph of X needs, placement)``, with a :class:`_Placement`
        when ``X`` is persisted and None otherwise. Chunks copied or split to balance the
        workers have new keys.
        """
        from distributed import futures_of, wait

        block_keys = list(flatten(X.__dask_keys__()))
        futures = futures_of(X)
        is_persisted = set(block_keys) <= {f.key for f in futures}
        if not is_persisted and persist == "auto":
            info = client.scheduler_info()
            memory = sum(w.get("memory_limit", 0) for w in info["workers"].values())
            if memory and X.nbytes <= 0.5 * memory:
                X = client.persist(X)
                wait(X)
                futures, is_persisted = futures_of(X), True
        if not is_persisted:
            return X, futures, None
        by_key = {f.key: f for f in futures}
        block_futures = [by_key[k] for k in block_keys]
        wait(block_futures)  # persisting is asynchronous: placement is known once done
        block_futures, holders, rows = _balance_chunks(client, block_futures, X.chunks[0])
        # One group of chunks per worker thread, each group on the worker holding its chunks.
        nthreads = client.nthreads()
        by_worker = {}
        for f, worker in zip(block_futures, holders, strict=True):
            by_worker.setdefault(worker, []).append(f.key)
        groups, group_workers = [], []
        for worker, keys in sorted(by_worker.items()):
            n_groups = min(len(keys), nthreads.get(worker, 1))
            groups.extend(keys[i::n_groups] for i in range(n_groups))
            group_workers.extend([worker] * n_groups)
        futures = futures + block_futures
        return X, futures, _Placement(block_futures, rows, groups, group_workers)

    def stats_graph(self, theta, projection, need_stats=True):
        """The task graph of one pass: ``(graph, keys)``, the keys of at most ``split_every``
        partial :class:`SuffStats` whose sum is the pass's.

        The last sum happens on the driver: a combine task of its own would cost one more
        scheduling round and one more transfer between workers on every pass.
        """
        name = f"{self._name}-{next(self._passes)}"
        graph = dict(self._data_graph)
        args = (theta, self.shift, projection)
        n_bytes = sum(a.nbytes for a in args if a is not None)
        if n_bytes * len(self._groups) > INLINE_PARAMETER_BYTES:
            # Large parameters travel once, as keys of their own.
            keys = (f"{name}-theta", f"{name}-shift", f"{name}-projection")
            graph.update(zip(keys, args, strict=True))
            args = keys
        level = []
        for i, group in enumerate(self._groups):
            key = (f"{name}-chunk", i)
            graph[key] = (group_stats, list(group), *args, need_stats, self.block_rows)
            level.append(key)
        depth = 0
        while len(level) > self.split_every:
            depth += 1
            parts = [level[i : i + self.split_every]
                     for i in range(0, len(level), self.split_every)]
            level = [(f"{name}-combine-{depth}", j) for j in range(len(parts))]
            graph.update((key, (combine_stats, part))
                         for key, part in zip(level, parts, strict=True))
        return graph, level

    def _actor_pass(self, theta, projection, need_stats):
        """A pass through the actors, or None (and no more actors) if one is lost."""
        try:
            lost = [f.key for _, f in self._actors if f.status != "finished"]
            if lost:
                raise RuntimeError(f"actors {lost} are gone (their worker was lost)")
            calls = [actor.run(theta, self.shift, projection, need_stats, self.block_rows)
                     for actor, _ in self._actors]
            return combine_stats([part for call in calls for part in call.result()])
        except (OSError, RuntimeError, KeyError, TimeoutError) as exc:
            # An unreachable or lost actor (distributed raises these); tasks recover from it.
            # Errors of the pass itself are not caught: tasks would only raise them again.
            logger.warning("A pass through the workers' actors failed (%r); passes go "
                           "through the scheduler from now on.", exc)
            self._actors = None
            return None

    def run_pass(self, theta, projection, need_stats=True) -> SuffStats:
        if self._actors is not None:
            stats = self._actor_pass(theta, projection, need_stats)
            if stats is not None:
                return stats
        graph, keys = self.stats_graph(theta, projection, need_stats)
        get = get_scheduler(collections=[self.X]) or dask.threaded.get
        return combine_stats(get(graph, keys))
