"""Where a Dask array's chunks live on a cluster: the persist policy, balancing the workers,
and grouping chunks by the worker that holds them (distributed only)."""

from __future__ import annotations

from typing import NamedTuple

from dask.base import get_scheduler
from dask.core import flatten

#: Chunks are split when, after moving whole chunks, a worker holds more than its share of
#: rows by this fraction of the share (a pass waits for the most loaded worker).
BALANCE_TOLERANCE = 0.1


def active_client():
    """Find the ``distributed.Client`` Dask would compute on now.

    Returns
    -------
    client : distributed.Client or None
        The client behind Dask's current scheduler; None when that is not a
        ``distributed.Client`` (or ``distributed`` is not installed).
    """
    get = get_scheduler()
    client = getattr(get, "__self__", None)
    if client is None:
        return None
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover
        return None
    return client if isinstance(client, Client) else None


class Placement(NamedTuple):
    """Where a persisted array's blocks are, once balanced over the workers.

    Parameters
    ----------
    block_futures : list of distributed.Future
        The blocks a pass reads, in row order.
    block_rows : list of int
        The number of rows of each block, in the same order.
    groups : list of list of key
        Dask keys of the blocks in ``block_futures``, one task (or actor thread) per group.
    group_workers : list of str
        The address of the worker holding each group's blocks.
    """

    block_futures: list  # the blocks a pass reads, in row order
    block_rows: list
    groups: list  # lists of block keys, one task (or actor thread) each
    group_workers: list  # the worker holding each group's blocks


class ClusterLayout(NamedTuple):
    """What :func:`place_on_cluster` decided for an array.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features)
        The array passes read (persisted, or as given).
    futures : list of distributed.Future
        Every future the graph of ``X`` needs.
    persisted : list of distributed.Future
        Futures of the chunks persisted here (their keys are ``X``'s: release them).
    copies : list of distributed.Future
        Balancing copies made here (keys of their own: cancel them).
    placement : Placement or None
        Where the blocks are; None when ``X`` is not persisted (read from its source).
    """

    X: object  # the array passes read (persisted, or as given)
    futures: list  # every future the graph of X needs
    persisted: list  # futures of the chunks persisted here (their keys are X's: release them)
    copies: list  # balancing copies made here (keys of their own: cancel them)
    placement: Placement | None  # None when X is not persisted (read from its source)


def _holder(who_has, key):
    holders = who_has.get(key) or who_has.get(str(key)) or ["?"]
    return min(holders)


def _copy_chunk(block):
    return block


def _take_rows(block, start, stop, copy):
    rows = block[start:stop]
    return rows.copy() if copy else rows


def balance_chunks(client, block_futures, block_rows, tolerance=BALANCE_TOLERANCE):
    """Copy chunks, or parts of them, so that every worker holds rows in proportion to its threads.

    The scheduler places persisted chunks where it likes (6 and 4 of 10 chunks is common on
    two workers), and a pass waits for the busiest worker. Chunks are copied, largest first,
    from a worker above its share to the worker furthest below its share, while that brings
    both closer to their shares. Then, while a worker still holds more than
    ``1 + tolerance`` times its share (a single chunk on two workers, say), its largest chunk
    is split: the rows above its share are copied to the worker furthest below its share, and
    the rows it keeps become a view of the chunk.
    The originals are left where they are (they may be the caller's); a receiving worker
    keeps a replica of a whole chunk until distributed's active memory manager drops it.
    Copies ask for their worker without requiring it: if it is lost, the scheduler can
    recompute them anywhere.

    Parameters
    ----------
    client : distributed.Client
        The client of the cluster holding the chunks.
    block_futures : list of distributed.Future
        The persisted chunks, in row order.
    block_rows : sequence of int
        The number of rows of each chunk, in the same order.
    tolerance : float, default=BALANCE_TOLERANCE
        Chunks are split while a worker holds more than ``1 + tolerance`` times its share of
        rows.

    Returns
    -------
    futures : list of distributed.Future
        The blocks a pass reads, in row order: copies in place of moved chunks, two pieces in
        place of a split one.
    holders : list of str
        The address of the worker holding each block.
    rows : list of int
        The number of rows of each block.
    copies : list of distributed.Future
        The futures created here that ``futures`` still reads (the caller cancels them when
        done).
    """
    from distributed import wait

    nthreads = client.nthreads()
    futures = list(block_futures)
    rows = [int(r) for r in block_rows]
    who_has = client.who_has(futures)
    holder = [_holder(who_has, f.key) for f in futures]
    if len(nthreads) < 2 or sum(rows) < 2:
        return futures, holder, rows, []
    total_threads = sum(nthreads.values())
    target = {w: sum(rows) * t / total_threads for w, t in nthreads.items()}
    load = dict.fromkeys(nthreads, 0.0)
    for w, r in zip(holder, rows, strict=True):
        load[w] = load.get(w, 0.0) + r
    copies = []

    def receiver():
        return min(target, key=lambda w: load[w] - target[w])

    def submit(*args, worker):
        future = client.submit(*args, workers=[worker], allow_other_workers=True, pure=False)
        copies.append(future)
        return future

    for i in sorted(range(len(rows)), key=lambda i: -rows[i]):
        donor, to = holder[i], receiver()
        excess = load[donor] - target.get(donor, 0.0)
        deficit = target[to] - load[to]
        if to == donor or rows[i] >= 2 * min(excess, deficit):
            continue
        futures[i] = submit(_copy_chunk, futures[i], worker=to)
        load[donor] -= rows[i]
        load[to] += rows[i]
        holder[i] = to
    # Split what whole chunks could not balance.
    pieces = []  # copies of split-off rows, released once their copies exist
    for _ in range(4 * len(nthreads)):
        donor = max(load, key=lambda w: load[w] - target.get(w, 0.0))
        excess = load[donor] - target.get(donor, 0.0)
        if donor not in target or excess <= tolerance * target[donor]:
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
        moved = submit(_copy_chunk, piece, worker=to)
        kept = submit(_take_rows, futures[i], 0, keep, False, worker=donor)
        futures[i : i + 1] = [kept, moved]
        holder[i : i + 1] = [donor, to]
        rows[i : i + 1] = [keep, n_move]
        load[donor] -= n_move
        load[to] += n_move
    wait(futures)
    for piece in pieces:
        piece.release()
    in_use = {f.key for f in futures}
    for future in copies:  # a chunk moved, then split: its first copy is no longer read
        if future.key not in in_use:
            future.release()
    return futures, holder, rows, [f for f in copies if f.key in in_use]


def place_on_cluster(client, X, persist="auto", memory_fraction=0.5) -> ClusterLayout:
    """Persist ``X`` if asked and sensible; group its chunks by the worker holding them.

    The chunks of a persisted array are balanced over the workers (:func:`balance_chunks`),
    then grouped: one group per worker thread that holds a chunk, each group on the worker
    holding its chunks. Chunks copied or split to balance the workers have new keys.

    Parameters
    ----------
    client : distributed.Client
        The client of the cluster the passes run on.
    X : dask.array.Array of shape (n_samples, n_features)
        The data, persisted already or not, in one chunk along the features.
    persist : {"auto", True, False}, default="auto"
        ``"auto"`` persists an array that is not persisted yet when it takes at most
        ``memory_fraction`` of the cluster's memory; ``True`` persists it whatever its
        size; ``False`` never persists (every pass reads the source).
    memory_fraction : float, default=0.5
        The largest share of the cluster's memory (the sum of the workers' memory limits)
        that ``persist="auto"`` lets ``X`` take.

    Returns
    -------
    layout : ClusterLayout
        The array passes read, the futures it needs, those created here, and (for a
        persisted array) the placement of its blocks.
    """
    from distributed import futures_of, wait

    block_keys = list(flatten(X.__dask_keys__()))
    futures = futures_of(X)
    persisted = []
    is_persisted = set(block_keys) <= {f.key for f in futures}
    if not is_persisted and persist is not False:
        info = client.scheduler_info()
        memory = sum(w.get("memory_limit", 0) for w in info["workers"].values())
        if persist is True or (memory and X.nbytes <= memory_fraction * memory):
            X = client.persist(X)
            wait(X)
            futures, is_persisted = futures_of(X), True
            persisted = list(futures)
    if not is_persisted:
        return ClusterLayout(X, futures, persisted, [], None)
    by_key = {f.key: f for f in futures}
    block_futures = [by_key[k] for k in block_keys]
    wait(block_futures)  # persisting is asynchronous: placement is known once done
    block_futures, holders, rows, copies = balance_chunks(client, block_futures, X.chunks[0])
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
    return ClusterLayout(X, futures + copies, persisted, copies,
                         Placement(block_futures, rows, groups, group_workers))
