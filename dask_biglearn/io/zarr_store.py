"""Zarr in and out: open a store as a row-chunked Dask array, write predictions back.

Opening reads only the store's metadata on the client. Arrays that are not 2-D, not of a real
numeric dtype, or that use a codec that would unpickle (an object dtype, numcodecs' Pickle
filter) are refused with :class:`StoreError`. Predictions are written chunk by chunk by
whoever computes them (the workers), into a temporary group beside the target that is renamed
into place once complete: a failed write leaves nothing at the target.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

#: Codec names that unpickle what they decode.
UNSAFE_CODECS = ("pickle",)


class StoreError(ValueError):
    """A store that cannot be read as our input, or written as our output."""


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


def open_zarr_array(url, array: str | None = None, storage_options: dict | None = None):
    """The Zarr array at ``url`` (``array``: its name inside a group; default ``"X"`` when
    ``url`` is a group) as a Dask array chunked by rows only, read lazily."""
    import dask.array as da
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
    if node.ndim != 2:
        raise StoreError(f"{url}: expected a 2-D array (n_samples, n_features), got shape "
                         f"{node.shape}.")
    if np.dtype(node.dtype).kind not in "fiu":
        raise StoreError(f"{url}: expected a real numeric dtype, got {node.dtype}.")
    unsafe = [n for n in _codec_names(node) if any(u in n for u in UNSAFE_CODECS)]
    if unsafe:
        raise StoreError(f"{url}: its codecs {unsafe} would unpickle data; refused.")
    if node.shape[0] < 1 or node.shape[1] < 1:
        raise StoreError(f"{url}: the array is empty (shape {node.shape}).")
    X = da.from_zarr(node)
    if X.numblocks[1] != 1:
        X = X.rechunk({1: -1})
    return X


@contextlib.contextmanager
def staged_group(out, storage_options=None):
    """A new Zarr group for ``out``, yielded as the URL to write to: on a local path a
    hidden group beside it, renamed into place when the block ends and removed if it fails,
    so ``out`` holds a complete group or nothing (an existing ``out`` is refused). Remote
    URLs are written in place."""
    import zarr

    local = _is_local(out)
    target = _local_path(out) if local else None
    if local and target.exists():
        raise StoreError(f"{out} exists: remove it or choose another output.")
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp") if local else None
    url = str(staging) if local else str(out)
    try:
        zarr.open_group(store=url, mode="w", storage_options=storage_options)
        yield url
        if local:
            os.replace(staging, target)
    except BaseException:
        if local:
            shutil.rmtree(staging, ignore_errors=True)
        raise


def write_predictions(model, X, out, *, log_likelihood=False, responsibilities=False,
                      storage_options=None) -> list[str]:
    """Write ``labels`` (int64; and ``log_likelihood``, ``responsibilities`` on request) of
    ``model`` for the rows of ``X`` to the Zarr group ``out``, chunk by chunk. Returns the
    names written."""
    import dask.array as da

    outputs = {"labels": model.predict(X).astype(np.int64)}
    if log_likelihood:
        outputs["log_likelihood"] = model.score_samples(X)
    if responsibilities:
        outputs["responsibilities"] = model.predict_proba(X)
    with staged_group(out, storage_options) as url:
        da.compute(*[da.to_zarr(a, url, component=name, storage_options=storage_options,
                                mode="w", compute=False)
                     for name, a in outputs.items()])
    return list(outputs)
