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
    """Open the Zarr array at ``url`` as a Dask array chunked by rows only, read lazily.

    Only the store's metadata is read here, on the client. Arrays that are not 2-D, not of a
    real numeric dtype, empty, or that use a codec that would unpickle (an object dtype,
    numcodecs' Pickle filter) are refused.

    Parameters
    ----------
    url : str or path-like
        The store: a local path or an fsspec URL, of an array or of a group.
    array : str, optional
        The array's name inside the group at ``url`` (default ``"X"``); must not be given
        when ``url`` is an array.
    storage_options : dict, optional
        The fsspec storage options for a remote store.

    Returns
    -------
    X : dask.array.Array of shape (n_samples, n_features)
        The array, with one chunk across the features (rechunked if the store has more).

    Raises
    ------
    StoreError
        If the store cannot be read or the array is not one we accept.
    """
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
    """Create a new Zarr group for ``out`` that appears there only once complete.

    On a local path the group is a hidden one beside ``out``, renamed into place when the
    ``with`` block ends and removed if it fails, so ``out`` holds a complete group or nothing
    (an existing ``out`` is refused). Remote URLs are written in place.

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
    """Write a model's predictions for the rows of ``X`` to a new Zarr group, chunk by chunk.

    The chunks are written by whoever computes them (the workers), into a group staged by
    :func:`staged_group`: a failed write leaves nothing at ``out``.

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
