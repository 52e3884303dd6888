"""Our files: a ZIP archive of one JSON document and one ``.npz`` of float64 arrays.

Nothing is ever unpickled: the JSON is parsed by :mod:`json` and the arrays are read with
``numpy.load(..., allow_pickle=False)``. Every way a file can be wrong (not a ZIP, foreign
members, a truncated or corrupted member, bad JSON, another format, a newer version, arrays
of the wrong shape, non-finite values) raises :class:`ModelFileError` with one line that
names the file and the problem. Writing is atomic: a temporary file in the target's folder,
flushed to disk, then renamed over the target, so a reader sees the old file or the new one,
never a part.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .._version import __version__

FORMAT_VERSION = 1
FORMAT_MARKER = "dask-biglearn"
META_NAME = "dask-biglearn.json"
ARRAYS_NAME = "arrays.npz"
#: Bounds on what a reader inflates (a file claiming more is refused, not read).
MAX_META_BYTES = 64 * 2**20
MAX_ARRAYS_BYTES = 16 * 2**30


class ModelFileError(ValueError):
    """A file that is not one of ours, or is damaged, or is of a kind we cannot read."""


def write_document(path, kind: str, body: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Write one of our files: the header, then ``body``, and ``arrays``, atomically.

    The one writer of the header that :func:`read_archive` checks: the format marker, the
    format version, the kind of file and the package version.

    Parameters
    ----------
    path : path-like
    kind : str
        What the file holds (``"model"``, ``"checkpoint"``).
    body : dict
        JSON-able content, beside the header's keys.
    arrays : dict of str to ndarray
        Float arrays by name.

    Returns
    -------
    path : pathlib.Path
    """
    header = {"format": FORMAT_MARKER, "format_version": FORMAT_VERSION, "kind": kind,
              "package_version": __version__}
    return write_archive(path, {**header, **body}, arrays)


def write_archive(path, meta: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``meta`` (JSON-able) and ``arrays`` to ``path`` atomically.

    Parameters
    ----------
    path : path-like
    meta : dict
        The JSON document (:func:`write_document` adds our header).
    arrays : dict of str to ndarray

    Returns
    -------
    path : pathlib.Path
    """
    path = Path(path)
    buffer = io.BytesIO()
    np.savez(buffer, **{name: np.ascontiguousarray(a) for name, a in arrays.items()})
    document = json.dumps(meta, allow_nan=False, sort_keys=True, indent=1).encode()
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                archive.writestr(META_NAME, document)
                archive.writestr(ARRAYS_NAME, buffer.getvalue())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def read_archive(path, kind: str) -> tuple[dict, dict[str, np.ndarray]]:
    """Read one of our files, checking its header.

    Parameters
    ----------
    path : path-like
    kind : str
        What the file must hold (its header's ``kind``).

    Returns
    -------
    meta : dict
        The JSON document.
    arrays : dict of str to ndarray
        Finite float64 arrays by name.

    Raises
    ------
    ModelFileError
        For anything that is not such a file of ours, or is damaged.
    """
    path = Path(path)
    where = f"{path}"
    if path.is_dir():
        raise ModelFileError(f"{where} is a directory, not a dask_biglearn file.")
    if not path.is_file():
        raise ModelFileError(f"{where}: no such file.")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = {info.filename: info for info in archive.infolist()}
            if set(infos) != {META_NAME, ARRAYS_NAME}:
                raise ModelFileError(f"{where} is not a dask_biglearn file (its members are "
                                     f"{sorted(infos)[:5]}).")
            if (infos[META_NAME].file_size > MAX_META_BYTES
                    or infos[ARRAYS_NAME].file_size > MAX_ARRAYS_BYTES):
                raise ModelFileError(f"{where}: a member is larger than any file we write.")
            document = archive.read(META_NAME)
            blob = archive.read(ARRAYS_NAME)
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError,
            ValueError, NotImplementedError, RuntimeError, KeyError) as exc:
        raise ModelFileError(f"{where} is not a readable dask_biglearn file "
                             f"(not a ZIP archive, truncated or corrupted: {exc}).") from None
    try:
        meta = json.loads(document.decode("utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelFileError(f"{where}: its {META_NAME} is not valid JSON ({exc}).") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_MARKER:
        raise ModelFileError(f"{where} is not a dask_biglearn file (no format marker).")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"{where}: bad format version {version!r}.")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{where} was written in format {version} by a newer "
                             f"dask_biglearn; this one reads up to {FORMAT_VERSION}: upgrade.")
    if meta.get("kind") != kind:
        raise ModelFileError(f"{where} is a dask_biglearn {meta.get('kind')!r} file, not a "
                             f"{kind!r} file.")
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, KeyError,
            TypeError, RuntimeError, MemoryError) as exc:
        raise ModelFileError(f"{where}: its {ARRAYS_NAME} is damaged ({exc}).") from None
    for name, array in arrays.items():
        if array.dtype != np.float64:
            raise ModelFileError(f"{where}: array {name!r} is {array.dtype}, not float64.")
        if not np.all(np.isfinite(array)):
            raise ModelFileError(f"{where}: array {name!r} holds NaN or infinite values.")
    return meta, arrays


def _no_constants(name):
    raise ValueError(f"{name} is not allowed")


def require(meta: dict, key: str, types, where: str):
    """``meta[key]``, checked to be of ``types``, or :class:`ModelFileError`.

    Parameters
    ----------
    meta : dict
    key : str
    types : type or tuple of type
        A bool is accepted only where ``bool`` is named.
    where : str
        The file, for the message.

    Returns
    -------
    value : object
    """
    if key not in meta:
        raise ModelFileError(f"{where}: {key!r} is missing.")
    value = meta[key]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in
                                        (types if isinstance(types, tuple) else (types,))):
        raise ModelFileError(f"{where}: {key!r} has the wrong type ({type(value).__name__}).")
    if isinstance(value, float) and not math.isfinite(value):
        raise ModelFileError(f"{where}: {key!r} is not finite.")
    return value
