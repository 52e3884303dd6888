"""Zarr in and out: open a store as a row-chunked Dask array, write predictions back.

Opening reads only the store's metadata, and the list of its chunk keys, on the client.
Arrays that are not 2-D, not of a real numeric dtype, or that use a codec that would unpickle
(an object dtype, numcodecs' Pickle filter) are refused with :class:`StoreError`, and so are
arrays with a chunk missing from the store unless the caller accepts reading it as the
array's fill value (:class:`MissingChunkError`). A chunk is missing when the store is
incomplete (still being written), or when its writer left out a chunk whose values all equal
the fill value (Zarr's default, ``write_empty_chunks=False``); what this module writes stores
every chunk and says so in its attributes (:data:`EVERY_CHUNK_STORED`), so that a chunk
missing from it can only mean an incomplete store. Predictions are written chunk by chunk by
whoever computes them (the workers), into a temporary group beside the target that is renamed
into place once complete. A write that fails (or is interrupted) cancels its tasks and waits
until none is still running before it removes the temporary group: a failed write leaves
nothing, at the target or beside it.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np

#: Codec names that unpickle what they decode.
UNSAFE_CODECS = ("pickle",)

#: Seconds a failed write waits for its cancelled tasks that are still running to end (a task
#: already writing a chunk cannot be stopped) before it removes the staging group anyway.
STOP_TIMEOUT = 300.0

#: Scheduler task states in which a task may still run.
_SCHEDULED_STATES = frozenset({"released", "waiting", "queued", "no-worker", "processing"})

#: Worker task states in which a task is running or may still start.
_LIVE_STATES = frozenset({"waiting", "ready", "constrained", "executing", "long-running",
                          "cancelled", "resumed"})


#: The attribute, and its value, of the arrays written here: every chunk is stored, even one
#: whose values all equal the fill value.
EVERY_CHUNK_STORED = ("dask_biglearn", {"every_chunk_stored": True})

#: Zarr's configuration of the arrays written here (stored chunks equal to the fill value).
WRITE_CONFIG = {"write_empty_chunks": True}

#: Tasks at most of a search for the first bad chunk (each reads a run of row chunks in order).
_SEARCH_TASKS = 256


class StoreError(ValueError):
    """A store that cannot be read as our input, or written as our output."""


class MissingChunkError(StoreError):
    """A chunk (or shard) is missing from the store.

    Parameters
    ----------
    message : str
        The one line that says so, and what it can mean.
    coords : tuple of int
        The grid coordinates of the first missing chunk.
    n_stored : int
        How many of the array's chunks (or shards) the store holds.
    fill_value : scalar or None
        What a missing chunk reads as.
    """

    def __init__(self, message, coords=(), n_stored=0, fill_value=None):
        super().__init__(message)
        self.coords = coords
        self.n_stored = n_stored
        self.fill_value = fill_value

    def __reduce__(self):
        return type(self), (str(self), self.coords, self.n_stored, self.fill_value)


def _is_local(url) -> bool:
    text = str(url)
    return "://" not in text or text.startswith("file://")


def _local_path(url) -> Path:
    text = str(url)
    return Path(text.removeprefix("file://"))


def _codec_names(array) -> list[str]:
    names = []
    for attribute in ("filters", "compressors", "serializer"):
        codecs = getattr(array, attribute, None)
        if codecs is None:
            continue
        for codec in codecs if isinstance(codecs, tuple | list) else (codecs,):
            names.append(type(codec).__name__.lower())
            names.append(str(getattr(codec, "codec_id", "")).lower())
    return names


def _chunk_keys_present(node) -> set[str]:
    """The chunk (or shard) keys of ``node`` present in its store, relative to the array."""
    from zarr.core.sync import sync

    path = node.store_path.path
    prefix = f"{path}/" if path else ""

    async def listing():
        return [key async for key in node.store_path.store.list_prefix(prefix)]

    return {key[len(prefix):] for key in sync(listing())}


def _first_missing_chunk(node):
    """The grid coordinates of the first chunk (shard, for a sharded array) of ``node`` that
    its store lacks, in C order, or None when all are present."""
    if node.nchunks_initialized >= node.nchunks:  # the quick answer, one listing
        return None
    per_key = node.shards or node.chunks
    grid = tuple(math.ceil(n / c) for n, c in zip(node.shape, per_key, strict=True))
    present = _chunk_keys_present(node)
    for coords in np.ndindex(*grid):
        if node.metadata.encode_chunk_key(coords) not in present:
            return tuple(int(c) for c in coords)
    return None


def _open_node(url, array, storage_options):
    """The Zarr array at ``url`` (or the array ``array`` of the group there), or
    :class:`StoreError`."""
    import zarr

    if _is_local(url) and not _local_path(url).exists():
        raise StoreError(f"{url}: no such store.")
    try:
        node = zarr.open(store=str(url), mode="r", storage_options=storage_options)
        if isinstance(node, zarr.Group):
            name = array or "X"
            if name not in node:
                raise StoreError(f"{url}: the group has no array {name!r} (it has "
                                 f"{sorted(node.array_keys())[:10]}).")
            node = node[name]
            if isinstance(node, zarr.Group):
                raise StoreError(f"{url}: {name!r} is a group, not an array (it holds "
                                 f"{sorted(node.keys())[:10]}).")
        elif array not in (None, ""):
            raise StoreError(f"{url} is an array, not a group holding {array!r}.")
    except StoreError:
        raise
    except (zarr.errors.BaseZarrError, OSError, ValueError, KeyError, TypeError,
            RuntimeError, ImportError) as exc:  # unreadable metadata, unknown protocols
        if any(u in str(exc).lower() for u in UNSAFE_CODECS):
            raise StoreError(f"{url}: its codecs would unpickle data; refused.") from None
        raise StoreError(f"{url}: not a readable Zarr store ({type(exc).__name__}: "
                         f"{exc}).") from None
    return node


def _array_name(node) -> str:
    return f"array {node.path!r}" if node.path else "the array"


def _fill(node):
    fill = node.fill_value
    return getattr(fill, "item", lambda: fill)()


def _every_chunk_stored(node) -> bool:
    """Whether the array says that its writer stored every chunk (:data:`EVERY_CHUNK_STORED`)."""
    key, value = EVERY_CHUNK_STORED
    try:
        return node.attrs.get(key) == value
    except (AttributeError, TypeError, ValueError):
        return False


def _missing_chunk_error(url, node, missing) -> MissingChunkError:
    """The error for ``node``'s first missing chunk ``missing``: what it can mean, by who
    wrote the store."""
    kind = "shard" if node.shards else "chunk"
    what = f"{kind} {missing} of {_array_name(node)} is missing"
    fill = _fill(node)
    n_stored = node.nchunks_initialized
    if node.fill_value is None:
        text = (f"{url}: {what} (the store is incomplete, or still being written), and the "
                f"array declares no fill value to read it as.")
    elif _every_chunk_stored(node):
        text = (f"{url}: {what}: the store is incomplete (still being written?) or damaged; "
                f"its writer, dask_biglearn, stores every {kind}.")
    else:
        text = (f"{url}: {what}: the store is incomplete (still being written?), or its "
                f"writer left out a {kind} whose values all equal the fill value {fill!r} "
                f"(Zarr's default, write_empty_chunks=False). Only for a store known to be "
                f"complete, pass allow_missing_chunks=True (--allow-missing-chunks) to read "
                f"missing {kind}s as the fill value {fill!r}.")
    return MissingChunkError(text, missing, n_stored, None if node.fill_value is None else fill)


def open_zarr_array(url, array: str | None = None, storage_options: dict | None = None, *,
                    allow_missing_chunks: bool = False, ndim: int = 2):
    """Open the Zarr array at ``url`` as a Dask array chunked by rows only, read lazily.

    Only the store's metadata, and the list of its chunk keys, are read here, on the client.
    Arrays that are not 2-D, not of a real numeric dtype, empty, or that use a codec that
    would unpickle (an object dtype, numcodecs' Pickle filter) are refused, and so are arrays
    with a chunk missing from the store, unless ``allow_missing_chunks`` accepts reading
    missing chunks as the array's declared fill value.

    Parameters
    ----------
    url : str or path-like
        The store: a local path or an fsspec URL, of an array or of a group.
    array : str, optional
        The array's name inside the group at ``url`` (default ``"X"``); must not be given
        when ``url`` is an array.
    storage_options : dict, optional
        The fsspec storage options for a remote store.
    allow_missing_chunks : bool, default=False
        Read the chunks missing from the store as the array's fill value. A chunk is missing
        when the store is incomplete (still being written), or when its writer left out a
        chunk equal to the fill value (Zarr's default ``write_empty_chunks=False``, e.g. an
        all-zero block): give it only for a store known to be complete. Without it, a missing
        chunk is an error whose message says which of the two it can be (a store written by
        this module stores every chunk); an array that declares no fill value (Zarr 2's
        ``null``) is refused either way.
    ndim : {2, 1}, default=2
        The dimensions the array must have: 2 for data ``(n_samples, n_features)``, 1 for
        one value per row (``sample_weight``).

    Returns
    -------
    X : dask.array.Array of shape (n_samples, n_features) or (n_samples,)
        The array, with one chunk across the features (rechunked if the store has more).

    Raises
    ------
    MissingChunkError
        If a chunk is missing (one line naming the store and the first missing chunk).
    StoreError
        If the store cannot be read or the array is not one we accept.
    """
    import dask.array as da

    node = _open_node(url, array, storage_options)
    if node.ndim != ndim:
        expected = "a 2-D array (n_samples, n_features)" if ndim == 2 else (
            "a 1-D array (n_samples,)")
        where = f"{url}" if not array else f"{url} (array {array!r})"
        raise StoreError(f"{where}: expected {expected}, got shape {node.shape}.")
    if np.dtype(node.dtype).kind not in "fiu":
        raise StoreError(f"{url}: expected a real numeric dtype, got {node.dtype}.")
    unsafe = [n for n in _codec_names(node) if any(u in n for u in UNSAFE_CODECS)]
    if unsafe:
        raise StoreError(f"{url}: its codecs {unsafe} would unpickle data; refused.")
    if min(node.shape) < 1:
        raise StoreError(f"{url}: the array is empty (shape {node.shape}).")
    try:
        missing = _first_missing_chunk(node)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise StoreError(f"{url}: cannot list the store's chunks ({type(exc).__name__}: "
                         f"{exc}).") from None
    if missing is not None and (node.fill_value is None or not allow_missing_chunks):
        raise _missing_chunk_error(url, node, missing)
    X = da.from_zarr(node)
    if ndim == 2 and X.numblocks[1] != 1:
        X = X.rechunk({1: -1})
    return X


# ---- the first bad chunk ------------------------------------------------------------------------


def _first_problem(node, first, stop):
    """The first chunk of row chunks ``first`` to ``stop - 1`` of ``node`` (in C order) that
    cannot be read or holds infinity (NaN is a missing value, not a problem):
    ``(coords, problem)``, or None (run where the chunks are read)."""
    per_key = node.chunks
    grid = [math.ceil(n / c) for n, c in zip(node.shape, per_key, strict=True)]
    floating = np.dtype(node.dtype).kind == "f"
    for i in range(first, stop):
        for rest in np.ndindex(*grid[1:]):
            coords = (i, *(int(c) for c in rest))
            where = tuple(slice(c * size, (c + 1) * size)
                          for c, size in zip(coords, per_key, strict=True))
            try:
                block = np.asarray(node[where])
            except Exception as exc:  # noqa: BLE001 - a chunk that cannot be read, whatever why
                return coords, f"{type(exc).__name__}: {exc}".splitlines()[0]
            if floating and np.isinf(block).any():
                return coords, "infinity"
    return None


def first_bad_chunk(url, array: str | None = None, storage_options: dict | None = None):
    """Find the first chunk of an array that cannot be read or holds infinity (NaN marks a
    missing value: not a problem).

    Every chunk is read (on the active Dask scheduler, a run of row chunks per task), so this
    is for explaining an error, not for checking a store before use.

    Parameters
    ----------
    url : str or path-like
        The store, as :func:`open_zarr_array` takes it.
    array : str, optional
        The array's name inside the group at ``url`` (default ``"X"``).
    storage_options : dict, optional
        The fsspec storage options for a remote store.

    Returns
    -------
    description : str or None
        ``chunk (i, j) of array 'X' (rows a to b) holds infinity`` (or ``cannot be read:
        PROBLEM``), or None when every chunk reads and holds no infinity.
    """
    import dask

    node = _open_node(url, array, storage_options)
    rows = node.chunks[0]
    n_row_chunks = math.ceil(node.shape[0] / rows)
    step = max(1, math.ceil(n_row_chunks / _SEARCH_TASKS))
    tasks = [dask.delayed(_first_problem, pure=True)(node, first,
                                                    min(first + step, n_row_chunks))
             for first in range(0, n_row_chunks, step)]
    found = next((hit for hit in dask.compute(*tasks) if hit is not None), None)
    if found is None:
        return None
    coords, problem = found
    start = coords[0] * rows
    stop = min(start + rows, node.shape[0])
    return (f"chunk {coords} of {_array_name(node)} (rows {start} to {stop - 1}) "
            f"{'holds' if problem == 'infinity' else 'cannot be read:'} {problem}")


# ---- writing every chunk ----------------------------------------------------------------------


def to_zarr_every_chunk(X, url, component, storage_options=None):
    """``da.to_zarr(X, url, component=component, compute=False)``, every chunk stored.

    The array is created now, with Zarr's ``write_empty_chunks=True`` (a chunk whose values
    all equal the fill value is stored too) and the attribute :data:`EVERY_CHUNK_STORED`, so
    a reader can tell a chunk missing from it (an incomplete store) from one left out as
    empty. Nothing is written until the result is computed.

    Parameters
    ----------
    X : dask.array.Array
    url : str
        The group.
    component : str
        The array's name in the group.
    storage_options : dict, optional
        The fsspec storage options for a remote ``url``.

    Returns
    -------
    dask collection
        The writes, to compute.
    """
    import dask.array as da
    import zarr

    writes = da.to_zarr(X, url, component=component, storage_options=storage_options,
                        mode="w", compute=False, config=WRITE_CONFIG)
    array = zarr.open_array(store=url, path=component, mode="r+",
                            storage_options=storage_options)
    key, value = EVERY_CHUNK_STORED
    array.attrs[key] = value
    return writes


def create_array_every_chunk(group, name, data):
    """Create the array ``name`` of ``group`` from ``data`` (small, in memory), every chunk
    stored and said so (:data:`EVERY_CHUNK_STORED`).

    Parameters
    ----------
    group : zarr.Group
    name : str
    data : numpy.ndarray

    Returns
    -------
    zarr.Array
    """
    key, value = EVERY_CHUNK_STORED
    return group.create_array(name, data=data, config=WRITE_CONFIG, attributes={key: value})


def _scheduler_holds(keys, dask_scheduler=None) -> int:
    """How many of ``keys`` the scheduler may still run (run on the scheduler); keys held in
    memory (e.g. persisted data the graph reads) do not count."""
    tasks = dask_scheduler.tasks
    return sum(1 for key in keys
               if (ts := tasks.get(key)) is not None and ts.state in _SCHEDULED_STATES)


def _worker_runs(keys, dask_worker=None) -> int:
    """How many of ``keys`` a worker runs or may still start (run on each worker)."""
    tasks = dask_worker.state.tasks
    return sum(1 for key in keys
               if (ts := tasks.get(key)) is not None and ts.state in _LIVE_STATES)


def _stop_on_client(client, futures, keys, timeout=STOP_TIMEOUT):
    """Cancel ``futures`` and wait until no task of ``keys`` may still run on the scheduler
    or is running (or about to run) on a worker, seen twice in a row, 0.1 s apart."""
    with contextlib.suppress(OSError, RuntimeError, ValueError):  # a scheduler gone
        client.cancel(futures, force=True)
    keys = list(keys)
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 2 and time.monotonic() < deadline:
        try:
            busy = client.run_on_scheduler(_scheduler_holds, keys)
            if not busy:
                counts = client.run(_worker_runs, keys, on_error="return")
                busy = sum(n for n in counts.values() if isinstance(n, int))
        except (OSError, RuntimeError, ValueError):  # the scheduler is gone: nothing to ask
            return
        quiet = 0 if busy else quiet + 1
        time.sleep(0.1)


def _wait_here(client, futures):
    """Wait in this thread until all ``futures`` are done, one has failed, or the client has
    stopped running.

    A ``distributed`` wait or gather interrupted by Ctrl-C leaves its coroutine behind on the
    client's event loop, whose tasks then log "Task exception was never retrieved" once the
    futures are cancelled; waiting here on an event that the futures' callbacks set (and
    looking at their states now and then) leaves none.
    """
    done = threading.Event()

    def finished(future):
        if future.status != "finished" or all(f.done() for f in futures):
            done.set()

    for future in futures:
        future.add_done_callback(finished)
    while not done.wait(0.2):
        if (all(f.done() for f in futures) or any(f.status == "error" for f in futures)
                or client.status not in ("running", "connecting")):
            return


class _StopOnFailure:
    """A Dask scheduler (a ``get`` function) that runs a graph on ``scheduler`` and, when the
    graph fails or is interrupted, stops it: its tasks are cancelled and the running ones
    waited for before the exception goes on.

    On a ``distributed`` client the graph's futures are kept, cancelled, and the scheduler and
    the workers asked until none of its tasks is left; on Dask's threads the graph runs in a
    pool of its own, shut down (pending tasks cancelled, running ones waited for); any other
    scheduler (the synchronous one) runs it as it would.
    """

    def __init__(self, scheduler):
        self.scheduler = (scheduler.scheduler if isinstance(scheduler, _StopOnFailure)
                          else scheduler)

    def __call__(self, dsk, keys, **kwargs):
        import dask.threaded

        distributed = sys.modules.get("distributed")  # no client without it
        client = getattr(self.scheduler, "__self__", None)
        if distributed is not None and isinstance(client, distributed.Client):
            return self._on_client(client, dsk, keys, **kwargs)
        if self.scheduler is None or self.scheduler is dask.threaded.get:
            return self._on_threads(dsk, keys, **kwargs)
        return self.scheduler(dsk, keys, **kwargs)

    @staticmethod
    def _on_client(client, dsk, keys, **kwargs):
        from dask.core import flatten
        from distributed import Future, futures_of

        graph = dsk.__dask_graph__() if hasattr(dsk, "__dask_graph__") else dsk
        futures = None
        try:
            packed = client.get(graph, keys, sync=False, **kwargs)
            futures = futures_of(packed)
            _wait_here(client, futures)
            return client.gather(packed)
        except BaseException:
            if futures is None:  # interrupted while submitting: what was sent, by its keys
                futures = [Future(key, client) for key in flatten(keys)]
            _stop_on_client(client, futures, graph.keys())
            raise

    @staticmethod
    def _on_threads(dsk, keys, num_workers=None, pool=None, **kwargs):
        import dask.config
        import dask.threaded
        from dask.system import CPU_COUNT

        executor = getattr(dask.threaded, "ContextAwareThreadPoolExecutor", None)
        if executor is None:  # pragma: no cover - older Dask
            from concurrent.futures import ThreadPoolExecutor as executor
        pool = executor(num_workers or dask.config.get("num_workers", None) or CPU_COUNT)
        try:
            result = dask.threaded.get(dsk, keys, pool=pool, **kwargs)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return result


def compute_writes(*collections, **kwargs):
    """Compute Dask collections whose tasks write (e.g. ``da.to_zarr(..., compute=False)``),
    stopping them all if one fails.

    ``dask.compute`` returns as soon as a task fails (or on Ctrl-C) while the other tasks
    still run and write. Here, on any failure, the graph's tasks are cancelled and those
    already running waited for (on a ``distributed`` client: until neither the scheduler nor
    any worker has one left; on Dask's threads: the graph's own thread pool is shut down)
    before the exception is raised, so that what they wrote can then be removed for good.

    Parameters
    ----------
    *collections : dask collections
        What to compute, as for ``dask.compute``.
    **kwargs
        Passed on to ``dask.compute`` (not ``scheduler``: the active one is used).

    Returns
    -------
    results : tuple
        The computed results, as ``dask.compute`` returns them.
    """
    import dask
    from dask.base import get_scheduler

    scheduler = _StopOnFailure(get_scheduler(collections=collections))
    return dask.compute(*collections, scheduler=scheduler, **kwargs)


@contextlib.contextmanager
def staged_group(out, storage_options=None):
    """Create a new Zarr group for ``out`` that appears there only once complete.

    On a local path the group is a hidden one beside ``out``, renamed into place when the
    ``with`` block ends and removed if it fails, so ``out`` holds a complete group or nothing
    (an existing ``out`` is refused). Remote URLs are written in place. Within the block,
    ``dask.compute`` runs as :func:`compute_writes` does (on the scheduler active when the
    block starts): a computation that fails, or is interrupted, stops its tasks and waits for
    those still running, so none writes into the staging group once it is removed. (Dask's
    configuration is process-wide: computations of other threads during the block run so too.)

    Parameters
    ----------
    out : str or path-like
        The group to create: a local path or an fsspec URL.
    storage_options : dict, optional
        The fsspec storage options for a remote ``out``.

    Yields
    ------
    url : str
        Where to write the group's contents during the block.

    Raises
    ------
    StoreError
        If ``out`` is a local path that exists.
    """
    import dask.config
    import zarr
    from dask.base import get_scheduler

    local = _is_local(out)
    target = _local_path(out) if local else None
    if local and target.exists():
        raise StoreError(f"{out} exists: remove it or choose another output.")
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp") if local else None
    url = str(staging) if local else str(out)
    try:
        zarr.open_group(store=url, mode="w", storage_options=storage_options)
        with dask.config.set(scheduler=_StopOnFailure(get_scheduler())):
            yield url
        if local:
            os.replace(staging, target)
    except BaseException:
        if local:
            _remove_settled(staging)
        raise


def _remove_settled(folder: Path, settle: float = 0.1, timeout: float = 5.0) -> None:
    """Remove ``folder``, again until it stays absent for two looks ``settle`` seconds apart.

    Zarr writes metadata from an event loop of its own: an interrupted ``open_group`` or
    ``create_array`` in this thread leaves its write running there, and it may create the
    folder again after a first removal.
    """
    deadline = time.monotonic() + timeout
    absent = 0
    while absent < 2 and time.monotonic() < deadline:
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
            absent = 0
        else:
            absent += 1
        time.sleep(settle)


def write_predictions(model, X, out, *, log_likelihood=False, responsibilities=False,
                      storage_options=None) -> list[str]:
    """Write a model's predictions for the rows of ``X`` to a new Zarr group, chunk by chunk.

    The chunks are written by whoever computes them (the workers), into a group staged by
    :func:`staged_group` and computed by :func:`compute_writes`: a failed or interrupted
    write stops all its tasks and leaves nothing, at ``out`` or beside it. Every chunk is
    stored (:func:`to_zarr_every_chunk`).

    Parameters
    ----------
    model : GaussianMixture or BigLearnGaussianMixture
        A fitted model.
    X : dask.array.Array of shape (n_samples, n_features)
        The rows to predict.
    out : str or path-like
        The Zarr group to create: a local path or an fsspec URL.
    log_likelihood : bool, default=False
        Also write ``log_likelihood``, the per-sample log-likelihood, of shape
        ``(n_samples,)``.
    responsibilities : bool, default=False
        Also write ``responsibilities``, the per-sample responsibilities, of shape
        ``(n_samples, n_components)``.
    storage_options : dict, optional
        The fsspec storage options for a remote ``out``.

    Returns
    -------
    names : list of str
        The names of the arrays written: ``labels`` (int64, of shape ``(n_samples,)``), then
        those asked for.
    """
    outputs = {"labels": model.predict(X).astype(np.int64)}
    if log_likelihood:
        outputs["log_likelihood"] = model.score_samples(X)
    if responsibilities:
        outputs["responsibilities"] = model.predict_proba(X)
    with staged_group(out, storage_options) as url:
        compute_writes(*[to_zarr_every_chunk(a, url, name, storage_options)
                         for name, a in outputs.items()])
    return list(outputs)


def stored_chunks(url, array: str | None = None,
                  storage_options: dict | None = None) -> tuple[int, ...]:
    """The chunk shape of a Zarr array as stored (before :func:`open_zarr_array` joins its
    feature chunks into one).

    Parameters
    ----------
    url : str or path-like
        The store, as :func:`open_zarr_array` takes it.
    array : str, optional
        The array's name inside the group at ``url`` (default ``"X"``).
    storage_options : dict, optional
        The fsspec storage options for a remote store.

    Returns
    -------
    chunks : tuple of int
        Rows and columns of one chunk.
    """
    return tuple(int(c) for c in _open_node(url, array, storage_options).chunks)


def write_imputed(imputer, X, out, *, name: str = "X", chunks=None, attributes=None,
                  storage_options=None) -> dict:
    """Write ``imputer.transform(X)`` to the array ``name`` of a new Zarr group, chunk by chunk.

    The chunks are imputed and written by whoever computes them (the workers), into a group
    staged by :func:`staged_group` and computed by :func:`compute_writes`: a failed or
    interrupted write stops all its tasks and leaves nothing, at ``out`` or beside it. Every
    chunk is stored (:func:`to_zarr_every_chunk`). The missing values are counted in the same
    computation (each chunk of ``X`` is read once).

    Parameters
    ----------
    imputer : GaussianMixtureImputer
        Fitted; its ``transform`` gives the lazy imputed array.
    X : dask.array.Array of shape (n_samples, n_features)
        The rows to impute (NaN marks a missing value).
    out : str or path-like
        The Zarr group to create: a local path or an fsspec URL.
    name : str, default="X"
        The array's name in the group.
    chunks : tuple of int, optional
        The chunk shape to write (default: ``X``'s chunks).
    attributes : dict, optional
        JSON-able attributes of the group (what wrote it, and how).
    storage_options : dict, optional
        The fsspec storage options for a remote ``out``.

    Returns
    -------
    counts : dict
        ``n_missing`` (values imputed) and ``n_incomplete_rows`` (rows with at least one).
    """
    import dask.array as da
    import zarr

    imputed = imputer.transform(X)
    if chunks is not None:
        imputed = imputed.rechunk(tuple(chunks))
    holes = da.isnan(X)
    with staged_group(out, storage_options) as url:
        if attributes:
            zarr.open_group(store=url, mode="a",
                            storage_options=storage_options).attrs.update(attributes)
        _, n_missing, n_incomplete = compute_writes(
            to_zarr_every_chunk(imputed, url, name, storage_options), holes.sum(),
            holes.any(axis=1).sum())
    return {"n_missing": int(n_missing), "n_incomplete_rows": int(n_incomplete)}
