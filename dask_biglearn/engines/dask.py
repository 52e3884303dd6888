"""Passes over a row-chunked Dask array: tasks over its chunks and a tree reduction."""

from __future__ import annotations

import itertools
import logging
import uuid

import dask
import dask.threaded
import numpy as np
from dask.base import get_scheduler
from dask.core import flatten

from ..config import compiled_kernels
from ..kernels.features import default_block_rows
from ..kernels.passes import PassSpec, pass_stats_batch
from ..kernels.sampling import (
    candidate_fraction,
    combine_samples,
    in_index_order,
    rows_below_threshold,
    sample_blocks,
)
from ..kernels.stats import SuffStats, combine_stat_lists
from ..kernels.summaries import combine_summaries, summarize_blocks
from .actors import ActorRoute
from .base import EngineBase, data_summaries
from .placement import active_client, place_on_cluster

logger = logging.getLogger(__name__)

#: A pass's spec is written into every chunk task while its copies take at most this many
#: bytes in all: a key of its own would be one more task, and one more transfer to each
#: worker, on every pass.
INLINE_SPEC_BYTES = 2**20

#: ``actors="auto"`` runs passes through actors when the persisted data takes at most this
#: many bytes: there a pass is short and the scheduler's round trips are a large part of it.
ACTOR_PASS_BYTES = 256 * 2**20

#: Seconds to wait for the actors to start before passes go through the scheduler instead.
ACTOR_START_TIMEOUT = 60


def _split_every(split_every) -> int:
    split_every = split_every or dask.config.get("split_every", None) or 8
    if isinstance(split_every, dict):
        split_every = split_every.get(0, 8)
    if int(split_every) < 2:
        raise ValueError(f"split_every must be >= 2, got {split_every}.")
    return int(split_every)


class DaskEngine(EngineBase):
    """Passes over a row-chunked Dask array: tasks over its chunks and a tree reduction.

    Each task returns only ``K (1 + m + m^2) + 2`` numbers; ``split_every`` sets the fan-in
    of the reduction tree (default: ``dask.config`` ``"split_every"``, else 8); the driver
    adds up its last level (at most ``split_every`` results). One scheduler call per pass,
    on whatever scheduler is active (a ``distributed.Client`` if one is the default, else
    Dask's threads). The summary pass runs through the same graph, once, when the engine is
    built.

    The graph of a pass is built directly as a plain task dict: the (optimised) graph of the
    data once, plus one task per chunk group and per combine; nothing is tokenised per pass.

    With a ``distributed.Client``:

    * ``persist="auto"`` persists an array that is not persisted yet when it takes at most
      half of the cluster's memory (so a pass never ships in-memory data with its graph, and
      never re-reads a store that fits); larger arrays are read from their source every pass
      (out of core). ``persist=False`` never persists.
    * chunks are copied between workers, once, until each holds rows in proportion to its
      threads (:func:`~dask_biglearn.engines.placement.balance_chunks`), then grouped by the
      worker holding them, one task per worker thread that has a chunk: a pass costs a few
      tasks whatever the number of chunks, and no worker waits for another.
    * ``actors="auto"`` (for persisted data of at most ``actor_pass_bytes``; ``True``: any
      persisted data) gives each worker a ``distributed`` actor holding its groups of chunks
      (:mod:`~dask_biglearn.engines.actors`): a pass is then one direct call per worker.
      ``actors=False`` always uses tasks.

    Otherwise every chunk is its own task. A pass's spec is written into every chunk task
    while its copies take at most ``inline_spec_bytes`` (else it is a key of its own, sent
    once). :meth:`close` releases what the engine created on
    the cluster (persisted chunks, balancing copies, actors).
    """

    def __init__(self, X, *, split_every: int | None = None, block_rows: int | None = None,
                 persist="auto", actors="auto", compiled: bool | None = None,
                 actor_pass_bytes: int = ACTOR_PASS_BYTES,
                 inline_spec_bytes: int = INLINE_SPEC_BYTES):
        if actors not in ("auto", True, False):
            raise ValueError(f"actors must be 'auto', True or False, got {actors!r}.")
        if X.numblocks[1] != 1:
            X = X.rechunk({1: -1})
        self.n_samples, self.n_features = (int(s) for s in X.shape)
        self.split_every = _split_every(split_every)
        self.block_rows = block_rows or default_block_rows(self.n_features)
        self.compiled = compiled_kernels() if compiled is None else bool(compiled)
        self.inline_spec_bytes = int(inline_spec_bytes)
        # Unique per engine: concurrent fits on the same data must not share task keys.
        self._name = f"biglearn-pass-{uuid.uuid4().hex}"
        self._passes = itertools.count()
        self._client = active_client()
        self._persisted, self._copies = [], []  # what this engine created on the cluster
        self._actors = None
        self.n_data_passes = 0  # reads of the whole data: summaries, samples, passes
        self.rows_read = 0  # by mini-batches, beyond the full passes
        layout = None
        if self._client is not None:
            layout = place_on_cluster(self._client, X, persist)
            X, self._persisted, self._copies = layout.X, layout.persisted, layout.copies
        try:
            self._set_graph(X, layout)
            self.summaries = self._summary_pass()
            if layout is not None and layout.placement is not None and (
                    actors is True or (actors == "auto" and X.nbytes <= actor_pass_bytes)):
                self._actors = self._start_actors(self._client, layout.placement)
        except BaseException:
            self.close()
            raise

    def _set_graph(self, X, layout):
        self.X = X
        keys = X.__dask_keys__()
        self._data_graph = dict(X.__dask_optimize__(X.__dask_graph__(), keys))
        placement = None if layout is None else layout.placement
        if layout is not None:
            # Optimising a graph built on persisted data drops its futures: put them back,
            # so tasks find the chunks (or the chunks they derive from) where they are.
            self._data_graph.update((f.key, f) for f in layout.futures)
        if placement is None:
            block_keys, block_rows = list(flatten(keys)), X.chunks[0]
            self._groups = [[k] for k in block_keys]
        else:
            block_keys = [f.key for f in placement.block_futures]
            block_rows, self._groups = placement.block_rows, placement.groups
        # Global index of each block's first row (blocks are in row order).
        starts = np.concatenate([[0], np.cumsum(block_rows)[:-1]]).astype(int)
        self._block_offsets = dict(zip(block_keys, starts.tolist(), strict=True))

    @staticmethod
    def _start_actors(client, placement):
        try:
            return ActorRoute(client, placement, ACTOR_START_TIMEOUT)
        except (OSError, RuntimeError, TimeoutError) as exc:  # e.g. a worker was lost
            logger.warning("Could not start the pass actors (%r); passes go through the "
                           "scheduler.", exc)
            return None

    # ---- graphs ------------------------------------------------------------------------------

    def _reduction_graph(self, name, kernel, args, combine, with_offsets=False):
        """``kernel(blocks_of_group, *args)`` per group (``kernel(blocks, offsets, *args)``
        with the global index of each block's first row if ``with_offsets``), combined
        ``split_every`` at a time until at most ``split_every`` keys are left; returns
        ``(graph, keys)``."""
        graph = dict(self._data_graph)
        level = []
        for i, group in enumerate(self._groups):
            key = (f"{name}-chunk", i)
            offsets = ([self._block_offsets[k] for k in group],) if with_offsets else ()
            graph[key] = (kernel, list(group), *offsets, *args)
            level.append(key)
        depth = 0
        while len(level) > self.split_every:
            depth += 1
            parts = [level[i : i + self.split_every]
                     for i in range(0, len(level), self.split_every)]
            level = [(f"{name}-combine-{depth}", j) for j in range(len(parts))]
            graph.update((key, (combine, part)) for key, part in zip(level, parts, strict=True))
        return graph, level

    def stats_graph(self, specs):
        """The task graph of one read of the data for the passes ``specs`` (a
        :class:`~dask_biglearn.kernels.passes.PassSpec` or a list of them): ``(graph, keys)``,
        the keys of at most ``split_every`` partial results, each a list of
        :class:`~dask_biglearn.kernels.stats.SuffStats` (one per spec), whose sums are the
        passes'.

        The last sum happens on the driver: a combine task of its own would cost one more
        scheduling round and one more transfer between workers on every pass.
        """
        specs = [specs] if isinstance(specs, PassSpec) else list(specs)
        name = f"{self._name}-{next(self._passes)}"
        specs_arg = specs
        extra = {}
        if sum(s.nbytes for s in specs) * len(self._groups) > self.inline_spec_bytes:
            specs_arg = f"{name}-spec"  # large specs travel once, as a key of their own
            extra[specs_arg] = specs
        graph, keys = self._reduction_graph(name, pass_stats_batch,
                                            (specs_arg, self.block_rows), combine_stat_lists)
        graph.update(extra)
        return graph, keys

    def _compute(self, graph, keys):
        self.n_data_passes += 1
        get = get_scheduler(collections=[self.X]) or dask.threaded.get
        return get(graph, keys)

    def _summary_pass(self):
        graph, keys = self._reduction_graph(f"{self._name}-summary", summarize_blocks, (),
                                            combine_summaries)
        return data_summaries(combine_summaries(self._compute(graph, keys)))

    @property
    def route(self) -> str:
        """How passes run now: ``"actors"`` (one call per worker) or ``"tasks"``."""
        return "tasks" if self._actors is None else "actors"

    @property
    def n_pass_tasks(self) -> int:
        """Tasks over the data per pass through the scheduler (chunk groups; combines aside)."""
        return len(self._groups)

    # ---- the engine protocol -----------------------------------------------------------------

    def run_passes(self, specs) -> list[SuffStats]:
        specs = list(specs)
        if self._actors is not None:
            stats = self._actors.run_passes(specs, self.block_rows)
            if stats is not None:
                self.n_data_passes += 1
                return stats
            self._actors = None  # lost: tasks from now on
        return combine_stat_lists(self._compute(*self.stats_graph(specs)))

    def run_passes_on_rows(self, specs, ranges) -> list[SuffStats]:
        """The passes over the rows ``[start, stop)`` of each range only (a mini-batch): a
        task per chunk the ranges touch, which reads only those chunks."""
        import dask.array as da

        specs = list(specs)
        parts = da.concatenate([self.X[start:stop] for start, stop in ranges])
        self.rows_read += int(parts.shape[0])
        blocks = parts.to_delayed().ravel().tolist()
        level = [dask.delayed(pass_stats_batch, pure=True)([block], specs, self.block_rows)
                 for block in blocks]
        while len(level) > self.split_every:
            level = [dask.delayed(combine_stat_lists, pure=True)(level[i:i + self.split_every])
                     for i in range(0, len(level), self.split_every)]
        return combine_stat_lists(dask.compute(*level))

    def take_rows(self, indices) -> np.ndarray:
        return np.asarray(self.X[np.asarray(indices)].compute())

    def take_sample(self, size: int, seed: int) -> np.ndarray:
        """``size`` rows (all, if fewer) chosen by their global index and ``seed``, in index
        order, float64: one pass, whatever the chunking (see
        :mod:`~dask_biglearn.kernels.sampling`). Each chunk sends only its candidates below
        :func:`~dask_biglearn.kernels.sampling.candidate_fraction`, so the pass holds about
        ``size`` rows in all; in the (vanishingly rare) case that fewer than ``size`` rows
        fall below it, a second pass keeps every candidate."""
        fraction = candidate_fraction(size, self.n_samples)
        while True:
            graph, keys = self._reduction_graph(
                f"{self._name}-sample-{next(self._passes)}", sample_blocks,
                (int(seed), int(size), fraction), combine_samples, with_offsets=True)
            sample = combine_samples(self._compute(graph, keys))
            if len(sample.keys) >= min(size, self.n_samples) or fraction >= 1.0:
                return in_index_order(sample)
            fraction = 1.0

    def persisted_sample(self, size: int, seed: int):
        """About ``size`` rows chosen by their global index and ``seed``
        (:func:`~dask_biglearn.kernels.sampling.rows_below_threshold`), taken chunk by chunk
        into a Dask array persisted on the workers (one pass; never on the driver). The
        caller releases it (``del``)."""
        import dask.array as da

        fraction = size / self.n_samples
        offsets = np.concatenate([[0], np.cumsum(self.X.chunks[0])[:-1]]).astype(int)
        parts = [da.from_delayed(
            dask.delayed(rows_below_threshold, pure=True)(block, int(offset), int(seed),
                                                          fraction),
            shape=(np.nan, self.n_features), dtype=np.float64)
            for block, offset in zip(self.X.to_delayed().ravel(), offsets, strict=True)]
        sample = da.concatenate(parts, allow_unknown_chunksizes=True)
        if self._client is not None:
            sample = self._client.persist(sample)
        else:
            sample = sample.persist()
        self.n_data_passes += 1
        sample.compute_chunk_sizes()
        return sample

    def close(self) -> None:
        """Release the actors, the balancing copies and the chunks this engine persisted.

        Actors and copies have keys of their own and are cancelled; persisted chunks keep
        the keys of the array (which a caller may hold too) and are only released.
        """
        if self._actors is not None:
            self._actors.close()
            self._actors = None
        copies, persisted = self._copies, self._persisted
        self._copies, self._persisted = [], []
        self.X, self._data_graph, self._groups, self._block_offsets = None, {}, [], {}
        if copies:
            self._client.cancel(copies)
        for future in persisted:
            future.release()
