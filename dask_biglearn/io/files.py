"""Our files: a ZIP archive of one JSON document and one ``.npz`` of float64 arrays.

Nothing is ever unpickled: the JSON is parsed by :mod:`json`, and each array is read from its
``.npy`` member after its header (read with :mod:`numpy.lib.format`, without the data) has
declared float64 with the shape the file's JSON declares. Every way a file can be wrong (not
a ZIP, foreign members, a truncated or corrupted member, bad JSON, another format, a newer
version, arrays of the wrong shape, non-finite values, a member that inflates beyond what it
declares) raises :class:`ModelFileError` with one line that names the file and the problem.
Writing is atomic: a temporary file in the target's folder, flushed to disk, then renamed
over the target, so a reader sees the old file or the new one, never a part.

What a reader allocates is bounded before anything is inflated. Format 2 declares every
array's shape in the JSON (``"arrays": {name: [dims...]}``): the arrays member may inflate
to no more than those shapes need, and each ``.npy`` header must declare exactly its shape,
so reading allocates (twice, at most: the member, then the arrays) what the declared shapes
need. A model file's declared shapes are moreover checked against its parameters
(:func:`dask_biglearn.io.models.read_model`) before any array is read. Every member, in
every format, also inflates to at most :data:`INFLATE_RATIO` times its compressed size
(beyond a floor): float parameters never compress that well, zip bombs do; so a small file
never takes much memory.
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
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from .._version import __version__

#: 2 declares the arrays' shapes in the JSON (``"arrays"``); 1 (before 0.2) did not; 3 adds
#: covariance types (a model's covariances of scikit-learn's shape for its
#: ``covariance_type``; files of 1 and 2 hold full covariances and no type).
FORMAT_VERSION = 3
FORMAT_MARKER = "dask-biglearn"
META_NAME = "dask-biglearn.json"
ARRAYS_NAME = "arrays.npz"
#: Bounds on what a reader inflates (a file claiming more is refused, not read).
MAX_META_BYTES = 16 * 2**20
MAX_ARRAYS_BYTES = 16 * 2**30
#: A member may inflate to at most ``INFLATE_RATIO`` times its compressed size, or to its
#: floor (float64 parameters deflate by less than 2; JSON by about 5 to 50). A writer whose
#: member would exceed it stores that member uncompressed instead.
INFLATE_RATIO = 64
META_INFLATE_FLOOR = 4 * 2**20
ARRAYS_INFLATE_FLOOR = 64 * 2**20
#: What an array takes in the ``.npz`` beside its data: its ``.npy`` header (128 bytes as
#: NumPy writes ours) and its local and central ZIP entries (about 130 bytes with ZIP64
#: fields), beside twice its member name; and the end records of the ``.npz``.
NPY_ENTRY_BYTES = 1024
NPZ_END_BYTES = 1024
MAX_NDIM = 32
_CHUNK = 2**20
_COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
#: What reading a damaged member can raise (a :class:`ModelFileError` is re-raised as is).
_READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError,
                ValueError, NotImplementedError, RuntimeError, KeyError, TypeError,
                SyntaxError, OverflowError, MemoryError, IndexError)


class ModelFileError(ValueError):
    """A file that is not one of ours, or is damaged, or is of a kind we cannot read."""


def write_document(path, kind: str, body: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Write one of our files: the header, then ``body``, and ``arrays``, atomically.

    The one writer of the header that :func:`read_archive` checks: the format marker, the
    format version, the kind of file, the package version and each array's shape.

    Parameters
    ----------
    path : path-like
    kind : str
        What the file holds (``"model"``, ``"checkpoint"``).
    body : dict
        JSON-able content, beside the header's keys.
    arrays : dict of str to ndarray
        Float arrays by name (written as float64).

    Returns
    -------
    path : pathlib.Path
    """
    arrays = {name: np.ascontiguousarray(a, dtype=np.float64) for name, a in arrays.items()}
    header = {"format": FORMAT_MARKER, "format_version": FORMAT_VERSION, "kind": kind,
              "package_version": __version__,
              "arrays": {name: [int(n) for n in a.shape] for name, a in arrays.items()}}
    clash = sorted(set(header) & set(body))
    if clash:
        raise ValueError(f"The body of a file may not hold the header's keys {clash}.")
    return write_archive(path, {**header, **body}, arrays)


def write_archive(path, meta: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``meta`` (JSON-able) and ``arrays`` to ``path`` atomically.

    Each member is compressed unless it would then inflate by more than a reader accepts
    (:data:`INFLATE_RATIO`); it is stored as it is then.

    Parameters
    ----------
    path : path-like
    meta : dict
        The JSON document (:func:`write_document` adds our header).
    arrays : dict of str to ndarray

    Returns
    -------
    path : pathlib.Path

    Raises
    ------
    ValueError
        When the document or the arrays are larger than a reader accepts.
    """
    path = Path(path)
    buffer = io.BytesIO()
    np.savez(buffer, **{name: np.ascontiguousarray(a) for name, a in arrays.items()})
    blob = buffer.getvalue()
    document = json.dumps(meta, allow_nan=False, sort_keys=True, indent=1).encode()
    if len(document) > MAX_META_BYTES or len(blob) > MAX_ARRAYS_BYTES:
        raise ValueError(f"Cannot write {path}: its document ({len(document)} bytes) or its "
                         f"arrays ({len(blob)} bytes) are larger than a reader accepts.")
    members = {META_NAME: (document, META_INFLATE_FLOOR),
               ARRAYS_NAME: (blob, ARRAYS_INFLATE_FLOOR)}
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            stored = set()
            while True:
                with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                    for name, (data, _) in members.items():
                        archive.writestr(name, data, compress_type=(
                            zipfile.ZIP_STORED if name in stored else zipfile.ZIP_DEFLATED))
                    too_inflating = {name for name, (_, floor) in members.items()
                                     if _inflates_too_much(archive.getinfo(name), floor)}
                if not too_inflating - stored:
                    break
                stored |= too_inflating
                fh.seek(0)
                fh.truncate()
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def _inflates_too_much(info: zipfile.ZipInfo, floor: int) -> bool:
    return info.file_size > max(floor, INFLATE_RATIO * info.compress_size)


def read_archive(path, kind: str, *, check_shapes: Callable | None = None
                 ) -> tuple[dict, dict[str, np.ndarray]]:
    """Read one of our files, checking its header, and bounding what it inflates.

    Parameters
    ----------
    path : path-like
    kind : str
        What the file must hold (its header's ``kind``).
    check_shapes : callable, optional
        ``check_shapes(meta, shapes)``, called with the JSON document and every array's
        shape (a dict of str to tuple of int) before any array's data is read (format 2:
        the declared shapes, before the arrays member is inflated; format 1: the shapes of
        the ``.npy`` headers): it raises :class:`ModelFileError` to refuse the file.

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
    with _our_archive(path, where) as (archive, infos):
        if set(infos) != {META_NAME, ARRAYS_NAME} or len(archive.infolist()) != 2:
            raise ModelFileError(f"{where} is not a dask_biglearn file (its members are "
                                 f"{_short(sorted(infos)[:5])}).")
        length = path.stat().st_size
        meta = _read_meta(archive, infos[META_NAME], where, length)
        declared = _check_header(meta, kind, where)
        if declared is not None and check_shapes is not None:
            check_shapes(meta, declared)
        blob = _read_member(archive, infos[ARRAYS_NAME], where,
                            _arrays_limit(infos[ARRAYS_NAME], declared, where), length)
    try:
        arrays = _read_arrays(blob, meta, declared, where, check_shapes)
    except ModelFileError:
        raise
    except _READ_ERRORS as exc:
        raise ModelFileError(f"{where}: its {ARRAYS_NAME} is damaged ({_short(exc)})."
                             ) from None
    for name, array in arrays.items():
        if not np.all(np.isfinite(array)):
            raise ModelFileError(f"{where}: array {_short(name)} holds NaN or infinite values.")
    return meta, arrays


@contextlib.contextmanager
def _our_archive(path: Path, where: str):
    """The open ZIP archive of a file and its members by name; any failure to read it (not
    a file, not a ZIP archive, truncated, corrupted) as one :class:`ModelFileError`."""
    if path.is_dir():
        raise ModelFileError(f"{where} is a directory, not a dask_biglearn file.")
    if not path.is_file():
        raise ModelFileError(f"{where}: no such file.")
    try:
        with zipfile.ZipFile(path) as archive:
            yield archive, {info.filename: info for info in archive.infolist()}
    except ModelFileError:
        raise
    except _READ_ERRORS as exc:
        raise ModelFileError(f"{where} is not a readable dask_biglearn file (not a ZIP "
                             f"archive, truncated or corrupted: {_short(exc)}).") from None


def file_kind(path) -> str:
    """What one of our files holds (its header's ``kind``: ``"model"``, ``"checkpoint"``),
    read from its JSON document alone, with the checks :func:`read_archive` makes of it.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    kind : str

    Raises
    ------
    ModelFileError
        For anything that is not such a file of ours, or is damaged.
    """
    path = Path(path)
    where = f"{path}"
    with _our_archive(path, where) as (archive, infos):
        if META_NAME not in infos:
            raise ModelFileError(f"{where} is not a dask_biglearn file (its members are "
                                 f"{_short(sorted(infos)[:5])}).")
        meta = _read_meta(archive, infos[META_NAME], where, path.stat().st_size)
    kind = meta.get("kind") if isinstance(meta, dict) else None
    if not isinstance(kind, str):
        raise ModelFileError(f"{where} is not a dask_biglearn file (no kind in its header).")
    _check_header(meta, kind, where)
    return kind


def _short(value, limit: int = 120) -> str:
    """``repr``-like text of ``value`` on one line, at most about ``limit`` characters."""
    text = (repr(value) if not isinstance(value, BaseException) else str(value) or
            type(value).__name__)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def _read_member(archive, info: zipfile.ZipInfo, where: str, limit: int,
                 length: int) -> bytes:
    """A member's bytes, inflated a chunk at a time (``ZipFile.read`` inflates a deflated
    member whole before cutting it to its declared size), after checking what it declares:
    at most ``limit`` bytes, from compressed bytes that lie in the file (of ``length``
    bytes), so that the inflation ratio the limit allows is the true one."""
    if info.header_offset + info.compress_size > length:
        raise ModelFileError(f"{where}: its {info.filename} runs past the end of the file "
                             f"(truncated).")
    if info.compress_type not in _COMPRESSIONS:
        raise ModelFileError(f"{where}: its {info.filename} is compressed in a way we never "
                             f"write ({info.compress_type}).")
    if info.file_size > limit:
        raise ModelFileError(f"{where}: its {info.filename} would inflate to {info.file_size} "
                             f"bytes, more than such a file holds (at most {limit}); not read.")
    chunks, total = [], 0
    with archive.open(info) as fh:
        while chunk := fh.read(_CHUNK):
            total += len(chunk)
            if total > info.file_size:
                raise ModelFileError(f"{where}: its {info.filename} is larger than it says.")
            chunks.append(chunk)
    if total != info.file_size:
        raise ModelFileError(f"{where}: its {info.filename} is truncated.")
    return b"".join(chunks)


def _read_meta(archive, info: zipfile.ZipInfo, where: str, length: int) -> dict:
    limit = min(MAX_META_BYTES, max(META_INFLATE_FLOOR, INFLATE_RATIO * info.compress_size))
    document = _read_member(archive, info, where, limit, length)
    try:
        return json.loads(document.decode("utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelFileError(f"{where}: its {META_NAME} is not valid JSON ({_short(exc)})."
                             ) from None


def _check_header(meta, kind: str, where: str) -> dict[str, tuple[int, ...]] | None:
    """Check the header; the declared shapes of the arrays (``None`` in format 1)."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_MARKER:
        raise ModelFileError(f"{where} is not a dask_biglearn file (no format marker).")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"{where}: bad format version {_short(version)}.")
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{where} was written in format {version} by a newer "
                             f"dask_biglearn; this one reads up to {FORMAT_VERSION}: upgrade.")
    if meta.get("kind") != kind:
        raise ModelFileError(f"{where} is a dask_biglearn {_short(meta.get('kind'))} file, "
                             f"not a {kind!r} file.")
    if version == 1:
        return None
    shapes = meta.get("arrays")
    if not isinstance(shapes, dict):
        raise ModelFileError(f"{where}: its header does not declare the arrays' shapes.")
    declared = {}
    for name, dims in shapes.items():
        if (not isinstance(dims, list) or len(dims) > MAX_NDIM
                or not all(type(n) is int and n >= 0 for n in dims)):
            raise ModelFileError(f"{where}: bad declared shape {_short(dims)} of array "
                                 f"{_short(name)}.")
        declared[name] = tuple(dims)
    return declared


def _arrays_limit(info: zipfile.ZipInfo, declared, where: str) -> int:
    """The most the arrays member may inflate to.

    Format 2: what the declared shapes need (8 bytes an element, plus each array's ``.npy``
    header and ZIP entries). Format 1, which declares no shapes: only the inflation ratio
    and :data:`MAX_ARRAYS_BYTES` bound the member, and the arrays read from it are bounded
    by it (each ``.npy`` header must declare exactly its stored member's size).
    """
    limit = min(MAX_ARRAYS_BYTES, max(ARRAYS_INFLATE_FLOOR, INFLATE_RATIO * info.compress_size))
    if declared is not None:
        need = NPZ_END_BYTES + sum(8 * math.prod(shape) + NPY_ENTRY_BYTES
                                   + 2 * len(f"{name}.npy".encode())
                                   for name, shape in declared.items())
        if need > MAX_ARRAYS_BYTES:
            raise ModelFileError(f"{where}: its declared arrays take {need} bytes, more than "
                                 f"such a file holds (at most {MAX_ARRAYS_BYTES}); not read.")
        limit = min(limit, need)
    return limit


def _read_arrays(blob: bytes, meta: dict, declared, where: str, check_shapes):
    """The arrays of the ``.npz`` ``blob``: every ``.npy`` header checked (float64, the
    declared shape, exactly its member's size) before any data is read."""
    with zipfile.ZipFile(io.BytesIO(blob)) as npz:
        infos = npz.infolist()
        entries, total = {}, 0
        for info in infos:
            name = info.filename.removesuffix(".npy")
            if name == info.filename or name in entries:
                raise ModelFileError(f"{where}: its {ARRAYS_NAME} holds a foreign or repeated "
                                     f"member {_short(info.filename)}.")
            if declared is not None and name not in declared:
                raise ModelFileError(f"{where}: its {ARRAYS_NAME} holds an undeclared array "
                                     f"{_short(name)}.")
            # Stored, as numpy.savez writes: the data lies in the blob, so the sizes below,
            # checked against the blob, bound what the arrays take.
            total += info.file_size
            if (info.compress_type != zipfile.ZIP_STORED
                    or info.compress_size != info.file_size or total > len(blob)):
                raise ModelFileError(f"{where}: its {ARRAYS_NAME} member {_short(name)} is "
                                     f"not stored as we write it, or larger than the file.")
            with npz.open(info) as fh:
                shape, fortran, offset = _npy_header(fh, name, where)
            if offset + 8 * math.prod(shape) != info.file_size:
                raise ModelFileError(f"{where}: array {_short(name)} of shape {shape} does not "
                                     f"fill its member ({info.file_size} bytes).")
            if declared is not None and shape != declared[name]:
                raise ModelFileError(f"{where}: array {_short(name)} has shape {shape}, not its "
                                     f"declared {declared[name]}.")
            entries[name] = (info, shape, fortran, offset)
        if declared is not None and set(entries) != set(declared):
            missing = sorted(set(declared) - set(entries))
            raise ModelFileError(f"{where}: declared arrays are missing ({_short(missing)}).")
        if declared is None and check_shapes is not None:
            check_shapes(meta, {name: entry[1] for name, entry in entries.items()})
        return {name: _read_data(npz, *entry, where) for name, entry in entries.items()}


def _npy_header(fh, name: str, where: str) -> tuple[tuple[int, ...], bool, int]:
    """Shape, Fortran order and data offset of a ``.npy`` member declaring float64."""
    version = npy_format.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = npy_format.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, fortran, dtype = npy_format.read_array_header_2_0(fh)
    else:
        raise ModelFileError(f"{where}: array {_short(name)} is in .npy format {version}, "
                             f"which we never write.")
    if dtype != np.float64:
        raise ModelFileError(f"{where}: array {_short(name)} is {_short(str(dtype))}, "
                             f"not float64.")
    if len(shape) > MAX_NDIM or not all(type(n) is int and n >= 0 for n in shape):
        raise ModelFileError(f"{where}: array {_short(name)} has a bad shape.")
    return tuple(shape), bool(fortran), fh.tell()


def _read_data(npz, info, shape, fortran, offset, where) -> np.ndarray:
    """Read an array whose header :func:`_npy_header` checked: exactly its declared bytes."""
    array = np.empty(shape[::-1] if fortran else shape, dtype=np.float64)
    view = memoryview(array.reshape(-1)).cast("B")
    with npz.open(info) as fh:
        fh.read(offset)
        position = 0
        while position < len(view):
            chunk = fh.read(min(_CHUNK, len(view) - position))
            if not chunk:
                raise ModelFileError(f"{where}: array {_short(info.filename)} is truncated.")
            view[position:position + len(chunk)] = chunk
            position += len(chunk)
        if fh.read(1):
            raise ModelFileError(f"{where}: array {_short(info.filename)} is too long.")
    return array.T if fortran else array


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
        raise ModelFileError(f"{where}: {_short(key)} is missing.")
    value = meta[key]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in
                                        (types if isinstance(types, tuple) else (types,))):
        raise ModelFileError(f"{where}: {_short(key)} has the wrong type "
                             f"({type(value).__name__}).")
    if isinstance(value, float) and not math.isfinite(value):
        raise ModelFileError(f"{where}: {_short(key)} is not finite.")
    return value
