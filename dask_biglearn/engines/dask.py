"""Passes over a row-chunked Dask array: tasks over its chunks and a tree reduction.

Every kind of pass (statistics, summaries, row samples, mini-batches) is one graph built by
:meth:`DaskEngine._reduction`: one task per group of blocks (or per piece of a block, for a
mini-batch), combined ``split_every`` at a time; the driver adds up the last level.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import operator
import uuid

import dask
import dask.threaded
import numpy as np
from dask.base import get_scheduler
from dask.core import flatten

from ..config import actor_pass_bytes as configured_actor_pass_bytes
from ..config import (
    actors_policy,
    driver_sample_bytes,
    persist_policy,
)
from ..config import split_every as resolve_split_every
from ..kernels.passes import PassSpec, pass_stats_batch
from ..kernels.sampling import (
    candidate_fraction,
    combine_samples,
    in_index_order,
    rows_up_to_key,
    sample_blocks,
    sample_key_threshold,
)
from ..kernels.stats import SuffStats, combine_stat_lists
from ..kernels.summaries import SUMMARY_BLOCK_ROWS, combine_summaries, summarize_blocks
from .actors import ActorRoute
from .base import Engine, data_summaries
from .local import InProcessEngine
from .placement import active_client, place_on_cluster

logger = logging.getLogger(__name__)

#: A pass's spec is written into every chunk task while its copies take at most this many
#: bytes in all: a key of its own would be one more task, and one more transfer to each
#: worker, on every pass.
INLINE_SPEC_BYTES = 2**20

#: Seconds to wait for the actors to start before passes go through the scheduler instead.
ACTOR_START_TIMEOUT = 60


def _rows_up_to_key(block, seed, threshold, block_info=None):
    """:func:`~dask_biglearn.kernels.sampling.rows_up_to_key` of a chunk of a
    ``map_blocks`` call, which knows the global index of the chunk's first row."""
    offset = int(block_info[0]["array-location"][0][0])
    return rows_up_to_key(block, offset, seed, threshold)


class DaskEngine(Engine):
    """An :class:`~dask_biglearn.engines.base.Engine` over a row-chunked Dask array: tasks
    over its chunks and a tree reduction.

    Each task returns only ``K (1 + m + m^2) + 2`` numbers; ``split_every`` sets the fan-in
    of the reduction tree; the driver adds up its last level (at most ``split_every``
    results). One scheduler call per pass, on whatever scheduler is active (a
    ``distributed.Client`` if one is the default, else Dask's threads). The summary pass runs
    through the same graph, once, when the engine is built.

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
    once). :meth:`close` releases what the engine created on the cluster: actors and
    balancing copies (keys of their own) are cancelled, persisted chunks (which keep the
    array's keys, which a caller may hold too) only released. A sample engine keeps its
    sample on the workers (persisted, an engine of this class over it, whose passes use every
    worker's cores) on a ``distributed`` cluster, or takes it into this process (an
    :class:`~dask_biglearn.engines.local.InProcessEngine`) where
    ``biglearn.driver-sample-bytes`` allows; both hold the same rows.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features)
        Validated data (:func:`dask_biglearn.validation.check_dask_array`): one chunk along
        the features, known row chunks.
    split_every : int, optional
        Fan-in of the reduction tree (default: :func:`dask_biglearn.config.split_every`).
    block_rows : int, optional
        Rows per sub-block of the kernel.
    persist : {"auto", True, False}, optional
        Default: the Dask configuration key ``biglearn.persist``.
    actors : {"auto", True, False}, optional
        Default: the Dask configuration key ``biglearn.actors``.
    compiled : bool, optional
        Run the compiled kernels (default: :func:`dask_biglearn.config.compiled_kernels`).
    actor_pass_bytes : int, optional
        Default: the Dask configuration key ``biglearn.actor-pass-bytes``.
    inline_spec_bytes : int, default=INLINE_SPEC_BYTES
    weighted : bool, default=False
        The last column of ``X`` is the rows' weights (``sample_weight``), not a feature
        (see :class:`~dask_biglearn.engines.local.InProcessEngine`).
    parent : DataSummaries, optional
        The summaries of the data ``X`` is a row sample of (a sample engine's): a feature
        with no observed value in the sample takes them (:func:`~dask_biglearn.engines.base.
        data_summaries`).
    """

    def __init__(self, X, *, split_every: int | None = None, block_rows: int | None = None,
                 persist=None, actors=None, compiled: bool | None = None,
                 actor_pass_bytes: int | None = None,
                 inline_spec_bytes: int = INLINE_SPEC_BYTES, weighted: bool = False,
                 parent=None):
        self.persist, self.actors = persist_policy(persist), actors_policy(actors)
        if X.ndim != 2 or X.numblocks[1] != 1:
            raise ValueError(
                f"DaskEngine needs a 2-D array in one chunk along the features, got chunks "
                f"{X.chunks}: validate it first (dask_biglearn.validation.check_dask_array).")
        super().__init__(X, weighted=weighted, compiled=compiled, block_rows=block_rows)
        self.split_every = resolve_split_every(split_every)
        self.inline_spec_bytes = int(inline_spec_bytes)
        # Unique per engine: concurrent fits on the same data must not share task keys.
        self._name = f"biglearn-pass-{uuid.uuid4().hex}"
        self._passes = itertools.count()
        self._client = active_client()
        self._persisted, self._copies = [], []  # what this engine created on the cluster
        self._actors = None
        layout = None
        if self._client is not None:
            layout = place_on_cluster(self._client, X, self.persist)
            X, self._persisted, self._copies = layout.X, layout.persisted, layout.copies
        try:
            self._set_graph(X, layout)
            self.summaries = self._summary_pass(parent)
            limit = (configured_actor_pass_bytes() if actor_pass_bytes is None
                      else int(actor_pass_bytes))
            if layout is not None and layout.placement is not None and (
                    self.actors is True or (self.actors == "auto" and X.nbytes <= limit)):
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
        # Each block's key and its rows [start, stop) in the global row index (row order).
        stops = np.cumsum(block_rows).astype(int).tolist()
        starts = [0, *stops[:-1]]
        self._blocks = {key: (start, stop)
                        for key, start, stop in zip(block_keys, starts, stops, strict=True)}

    @staticmethod
    def _start_actors(client, placement):
        try:
            return ActorRoute(client, placement, ACTOR_START_TIMEOUT)
        except (OSError, RuntimeError, TimeoutError) as exc:  # e.g. a worker was lost
            logger.warning("Could not start the pass actors (%r); passes go through the "
                           "scheduler.", exc)
            return None

    # ---- graphs ------------------------------------------------------------------------------

    def _reduction(self, name, leaves, combine, extra=None):
        """The one builder of a pass's graph: the data's graph, the ``leaves`` (tasks over the
        data, each returning a partial result), and ``combine`` tasks ``split_every`` at a
        time until at most ``split_every`` keys are left. Returns ``(graph, keys)``: the
        driver combines the last level (a combine task of its own would cost one more
        scheduling round and one more transfer between workers on every pass)."""
        graph = dict(self._data_graph)
        graph.update(extra or {})
        level = []
        for i, task in enumerate(leaves):
            level.append((f"{name}-chunk", i))
            graph[level[-1]] = task
        depth = 0
        while len(level) > self.split_every:
            depth += 1
            parts = [level[i : i + self.split_every]
                     for i in range(0, len(level), self.split_every)]
            level = [(f"{name}-combine-{depth}", j) for j in range(len(parts))]
            graph.update((key, (combine, part)) for key, part in zip(level, parts, strict=True))
        return graph, level

    def _group_tasks(self, kernel, args, with_offsets=False):
        """``kernel(blocks_of_group, *args)`` per group of blocks
        (``kernel(blocks, offsets, *args)``, with the global index of each block's first row,
        if ``with_offsets``)."""
        tasks = []
        for group in self._groups:
            offsets = ([self._blocks[k][0] for k in group],) if with_offsets else ()
            tasks.append((kernel, list(group), *offsets, *args))
        return tasks

    def _range_pieces(self, ranges):
        """Tasks that read the pieces of blocks the row ranges ``[start, stop)`` cover: a
        task reads only the block it needs."""
        pieces = []
        for start, stop in ranges:
            for key, (first, last) in self._blocks.items():
                lo, hi = max(start, first), min(stop, last)
                if lo < hi:
                    pieces.append((operator.getitem, key,
                                   (slice(lo - first, hi - first), slice(None))))
        return pieces

    def _spec_argument(self, name, specs, n_tasks):
        """The specs as a task argument: inline while their copies take at most
        ``inline_spec_bytes``, else a key of their own (sent once). Returns ``(arg, extra)``."""
        if sum(s.nbytes for s in specs) * n_tasks > self.inline_spec_bytes:
            return f"{name}-spec", {f"{name}-spec": specs}
        return specs, {}

    def stats_graph(self, specs):
        """The task graph of one read of the data for several passes.

        The last sum happens on the driver.

        Parameters
        ----------
        specs : PassSpec or list of PassSpec

        Returns
        -------
        graph : dict
        keys : list
            The keys of at most ``split_every`` partial results, each a list of
            :class:`~dask_biglearn.kernels.stats.SuffStats` (one per spec), whose sums are
            the passes'.
        """
        specs = [specs] if isinstance(specs, PassSpec) else list(specs)
        name = f"{self._name}-{next(self._passes)}"
        specs_arg, extra = self._spec_argument(name, specs, len(self._groups))
        leaves = self._group_tasks(pass_stats_batch, (specs_arg, self.block_rows))
        return self._reduction(name, leaves, combine_stat_lists, extra)

    def _compute(self, graph, keys, full_pass=True):
        self.n_data_passes += int(full_pass)
        get = get_scheduler(collections=[self.X]) or dask.threaded.get
        return get(graph, keys)

    def _summary_pass(self, parent=None):
        leaves = self._group_tasks(summarize_blocks, (SUMMARY_BLOCK_ROWS, self.weighted))
        graph, keys = self._reduction(f"{self._name}-summary", leaves, combine_summaries)
        return data_summaries(combine_summaries(self._compute(graph, keys)), parent)

    @property
    def route(self) -> str:
        """How passes run now: ``"actors"`` (one call per worker) or ``"tasks"``."""
        return "tasks" if self._actors is None else "actors"

    @property
    def n_pass_tasks(self) -> int:
        """Tasks over the data per pass through the scheduler (chunk groups; combines aside)."""
        return len(self._groups)

    # ---- the engine contract (docstrings: Engine's) -------------------------------------------------------------

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
        """The passes over some row ranges only (a mini-batch).

        A task per piece of a block that the ranges touch, which reads only that block.

        Parameters
        ----------
        specs : list of PassSpec
        ranges : list of (int, int)
            Row ranges ``[start, stop)`` of the global row index.

        Returns
        -------
        stats : list of SuffStats
            One per spec, over the rows of the ranges.
        """
        specs = list(specs)
        name = f"{self._name}-rows-{next(self._passes)}"
        pieces = self._range_pieces(ranges)
        specs_arg, extra = self._spec_argument(name, specs, len(pieces))
        leaves = [(pass_stats_batch, [piece], specs_arg, self.block_rows) for piece in pieces]
        self.rows_read += sum(stop - start for start, stop in ranges)
        graph, keys = self._reduction(name, leaves, combine_stat_lists, extra)
        return combine_stat_lists(self._compute(graph, keys, full_pass=False))

    def take_rows(self, indices) -> np.ndarray:
        return np.asarray(self.X[np.asarray(indices)].compute())

    def take_sample(self, size: int, seed: int) -> np.ndarray:
        # Each chunk sends only its candidates below candidate_fraction, so the pass holds
        # about ``size`` rows in all; in the (vanishingly rare) case that fewer than ``size``
        # rows fall below it, a second pass keeps every candidate.
        fraction = candidate_fraction(size, self.n_samples)
        while True:
            leaves = self._group_tasks(sample_blocks, (int(seed), int(size), fraction),
                                       with_offsets=True)
            graph, keys = self._reduction(f"{self._name}-sample-{next(self._passes)}",
                                          leaves, combine_samples)
            sample = combine_samples(self._compute(graph, keys))
            if len(sample.keys) >= min(size, self.n_samples) or fraction >= 1.0:
                return in_index_order(sample)
            fraction = 1.0

    def persisted_sample(self, size: int, seed: int):
        """The rows of :meth:`take_sample`, kept on the workers.

        The sample's largest key is found from the row indices alone
        (:func:`~dask_biglearn.kernels.sampling.sample_key_threshold`, no data read); each
        chunk then keeps its rows with keys at most that
        (:func:`~dask_biglearn.kernels.sampling.rows_up_to_key`): one pass, nothing on the
        driver, the same rows as :meth:`take_sample` whatever the chunking.

        Parameters
        ----------
        size : int
            Rows of the sample (all, if there are fewer).
        seed : int

        Returns
        -------
        rows : dask.array.Array of shape (min(size, n_samples), n_features)
            Persisted, float64, in index order, with known chunk sizes; the caller releases
            it (``del``).
        """
        threshold = sample_key_threshold(self.n_samples, int(seed), int(size))
        sample = self.X.map_blocks(
            _rows_up_to_key, int(seed), threshold, dtype=np.float64,
            chunks=((np.nan,) * self.X.numblocks[0], (self.X.shape[1],)),
            meta=np.empty((0, self.X.shape[1]), dtype=np.float64))
        sample = sample.persist() if self._client is None else self._client.persist(sample)
        self.n_data_passes += 1
        sample.compute_chunk_sizes()
        return sample

    @contextlib.contextmanager
    def sample_engine(self, n_rows: int, seed: int):
        if n_rows * self.X.shape[1] * 8 <= driver_sample_bytes(self._client is not None):
            with InProcessEngine(self.take_sample(n_rows, seed), compiled=self.compiled,
                                 weighted=self.weighted, parent=self.summaries) as engine:
                yield engine
            return
        rows = self.persisted_sample(n_rows, seed)
        try:
            with DaskEngine(rows, split_every=self.split_every, compiled=self.compiled,
                            persist=self.persist, actors=self.actors,
                            weighted=self.weighted, parent=self.summaries) as engine:
                yield engine
        finally:
            del rows  # the last reference: the workers drop the sample

    def close(self) -> None:
        if self._actors is not None:
            self._actors.close()
            self._actors = None
        copies, persisted = self._copies, self._persisted
        self._copies, self._persisted = [], []
        self.X, self._data_graph, self._groups, self._blocks = None, {}, [], {}
        if copies:
            self._client.cancel(copies)
        for future in persisted:
            future.release()
