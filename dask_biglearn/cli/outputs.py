"""What the commands leave behind, made safe: their files, and their report.

Before a command starts any work it checks its outputs: an output that exists is refused
unless ``--overwrite`` is given (which replaces only what the option says: a file for a file
option, a Zarr group for a group option, never the input store), no output may lie inside the
input store nor hold it, a plot must name a format matplotlib can draw here, and the folder of
each local output must exist or be creatable and be writable (a file is created and removed
there). So a fit never runs to completion only to find it cannot save its results. A command
with several files writes them all or none (:func:`write_all_or_nothing`). Errors raised while
computing on a store name the store (and, for bad data, the chunk), a failed write names the
output, never its temporary file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import shutil
import sys
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

from .cluster import connect
from .options import UsageError, say

__all__ = ["FitRun", "Output", "OutputError", "cannot_write", "check_file_output",
           "check_group_output", "check_plot_output", "computing_on", "fit_warnings",
           "is_local", "is_zarr_group", "local_path", "one_line", "probe_folder",
           "refuse_outputs_in_store", "replacing", "report", "run_fit", "same_path",
           "write_all_or_nothing"]

#: Error numbers of writes only (a read never fails so): such an error with no file name
#: comes from writing the command's output.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


class OutputError(ValueError):
    """An output that cannot be written: it exists (without ``--overwrite``), is a directory
    where a file goes, or its folder cannot be created or written to."""


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none.

    Parameters
    ----------
    exc : BaseException

    Returns
    -------
    str
    """
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ---- paths ---------------------------------------------------------------------------------------


def is_local(url) -> bool:
    """Whether ``url`` is a local path (or a ``file://`` URL).

    Parameters
    ----------
    url : str or path-like

    Returns
    -------
    bool
    """
    text = str(url)
    return "://" not in text or text.startswith("file://")


def local_path(url) -> Path:
    """The local path of ``url`` (``~`` expanded).

    Parameters
    ----------
    url : str or path-like

    Returns
    -------
    pathlib.Path
    """
    return Path(str(url).removeprefix("file://")).expanduser()


def same_path(a, b) -> bool:
    """Whether ``a`` and ``b`` are the same local path (links resolved).

    Parameters
    ----------
    a, b : str or path-like

    Returns
    -------
    bool
    """
    return is_local(a) and is_local(b) and local_path(a).resolve() == local_path(b).resolve()


def refuse_outputs_in_store(store, outputs: dict) -> None:
    """Refuse outputs that are the input store, lie inside it, or hold it.

    Replacing such an output would remove or change the data the command reads (before or
    while it reads it).

    Parameters
    ----------
    store : str or path-like
        The input store.
    outputs : dict
        ``{option: path}``; None paths and remote URLs are skipped.

    Raises
    ------
    UsageError
        Naming the option, the output and the store (exit code 2).
    """
    if not is_local(store):
        return
    root = local_path(store).resolve()
    for option, out in outputs.items():
        if out is None or not is_local(out):
            continue
        path = local_path(out).resolve()
        if path == root:
            raise UsageError(f"{option} names the input store ({store}).")
        if root in path.parents:
            raise UsageError(f"{option} {out} lies inside the input store {store}: choose an "
                             f"output outside it.")
        if path in root.parents:
            raise UsageError(f"{option} {out} holds the input store {store}: choose an output "
                             f"outside it.")


# ---- outputs checked before any work ------------------------------------------------------------


def probe_folder(path: Path) -> None:
    """Raise :class:`OutputError` unless ``path``'s folder exists or can be created, and a
    file can be created, written and removed there.

    Parameters
    ----------
    path : pathlib.Path
        The output.
    """
    folder = path.parent
    while not folder.exists():  # the nearest existing ancestor: the folders are created there
        if folder == folder.parent:
            break
        folder = folder.parent
    if not folder.is_dir():
        raise OutputError(f"{path}: cannot create its folder, {folder} is not a directory.")
    probe = folder / f".{path.name}.{uuid.uuid4().hex[:8]}.probe"
    try:
        try:  # named first, so that an interruption at any point leaves no probe behind
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, b"\0" * 4096)
                os.fsync(fd)
            finally:
                os.close(fd)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise OutputError(f"{path}: cannot write in {folder} ({reason}).") from None


def check_file_output(path, option, overwrite) -> None:
    """Check a local output file (a model, a checkpoint, a plot) before any work starts.

    Parameters
    ----------
    path : str or path-like
    option : str
        The option that names it, for the messages.
    overwrite : bool
        Whether an existing file may be replaced.

    Raises
    ------
    OutputError
        If it is a directory, exists (without ``overwrite``), or cannot be written.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise OutputError(f"{path} is a directory: {option} names the file to write.")
    if path.exists() and not overwrite:
        raise OutputError(f"{path} exists: remove it, choose another {option} or give "
                          f"--overwrite.")
    probe_folder(path)


def is_zarr_group(path: Path) -> bool:
    """Whether ``path`` is a local Zarr group (version 2 or 3), not an array nor anything else.

    Parameters
    ----------
    path : pathlib.Path

    Returns
    -------
    bool
    """
    if not path.is_dir():
        return False
    if (path / ".zgroup").is_file():
        return True
    try:
        return json.loads((path / "zarr.json").read_text()).get("node_type") == "group"
    except (OSError, ValueError, AttributeError):
        return False


def check_group_output(out, overwrite, storage_options=None, option="the output") -> None:
    """Check a Zarr output (predictions, make-data's group) before any work starts.

    An existing one is refused unless ``overwrite``, and even then if it is not a Zarr group
    (``--overwrite`` never removes a folder that is not one, nor a Zarr array). On a remote
    URL only its existence is checked, and only where fsspec can tell.

    Parameters
    ----------
    out : str or path-like
    overwrite : bool
    storage_options : dict, optional
        The fsspec storage options for a remote ``out``.
    option : str, default="the output"
        What names it, for the messages.

    Raises
    ------
    OutputError
        If it exists (without ``overwrite``), is not a Zarr group, or cannot be written.
    """
    if not is_local(out):
        with contextlib.suppress(Exception):  # unreachable or no rights: the write will say
            import fsspec

            fs, where = fsspec.core.url_to_fs(str(out), **(storage_options or {}))
            if fs.exists(where) and not overwrite:
                raise OutputError(f"{out} exists: remove it, choose another {option} or "
                                  f"give --overwrite.")
        return
    path = local_path(out)
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise OutputError(f"{out} exists: remove it, choose another {option} or give "
                              f"--overwrite.")
        if not is_zarr_group(path) or path.is_symlink():
            raise OutputError(f"{out} exists and is not a Zarr group: --overwrite replaces "
                              f"only a Zarr group; remove it yourself.")
    probe_folder(path)


def check_plot_output(path, overwrite) -> str:
    """Check ``--plot`` before any work: a format matplotlib draws here, named by the file's
    extension, and a file that can be written.

    matplotlib would add ``.png`` to a name without an extension (and write another file than
    the one checked), and fails on an unknown one only once the figure is drawn: both are
    refused here. An empty figure is drawn in memory in the format, so a format whose tools
    are missing is refused now too.

    Parameters
    ----------
    path : str or path-like
    overwrite : bool

    Returns
    -------
    format : str
        The format (the extension, lower case).

    Raises
    ------
    UsageError
        Without matplotlib, without an extension, or for a format that cannot be drawn.
    OutputError
        As :func:`check_file_output`.
    """
    try:
        import matplotlib
    except ImportError:
        raise UsageError("--plot needs matplotlib (pip install matplotlib).") from None
    import io

    matplotlib.use("Agg")  # a batch job draws into the file only
    from matplotlib.backend_bases import FigureCanvasBase
    from matplotlib.figure import Figure

    formats = sorted(FigureCanvasBase.get_supported_filetypes())
    kind = Path(path).suffix.lower().removeprefix(".")
    if not kind:
        raise UsageError(f"--plot {path}: name the file with its format's extension (e.g. "
                         f"{path}.png); one of {', '.join(formats)}.")
    if kind not in formats:
        raise UsageError(f"--plot {path}: matplotlib does not write .{kind} files; name a "
                         f"file ending in one of {', '.join(formats)}.")
    try:
        Figure(figsize=(1, 1)).savefig(io.BytesIO(), format=kind)
    except Exception as exc:  # noqa: BLE001 - whatever stops the drawing, said in one line
        raise UsageError(f"--plot {path}: cannot draw a .{kind} file here "
                         f"({one_line(exc)}).") from None
    check_file_output(path, "--plot", overwrite)
    return kind


# ---- writing the outputs ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Output:
    """A file a command writes once its work is done.

    Parameters
    ----------
    path : str or path-like
        Where it goes.
    what : str
        What it is, for the messages (``"model"``, ``"plot"``).
    write : callable
        ``write(path)`` writes it at ``path``.
    atomic : bool, default=False
        Whether ``write`` is atomic itself (a file appears whole or not at all).
    """

    path: object
    what: str
    write: Callable
    atomic: bool = False


def _make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; the ones created, outermost first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        if folder == folder.parent:
            break
        folder = folder.parent
    missing.reverse()
    for each in missing:
        each.mkdir()
    return missing


def write_all_or_nothing(outputs) -> None:
    """Write every output, or none of them: the folders they need are created, those that are
    not atomic are written to a temporary file beside their target first, then the atomic
    ones are written, then the temporary files are renamed into place.

    If a write fails (or is interrupted), the temporary files and the folders created are
    removed and no output is left in place (an atomic write that fails leaves nothing
    itself). Only the final renames, in folders already written to, come after the last
    write.

    Parameters
    ----------
    outputs : iterable of Output

    Raises
    ------
    OutputError
        ``PATH: cannot write the WHAT (reason).``, naming the output that failed.
    """
    staged, created = [], []
    try:
        ordered = sorted(outputs, key=lambda out: out.atomic)  # the staged ones first
        for out in ordered:
            final = Path(out.path).expanduser()
            try:
                created += _make_folders(final.parent)
                if out.atomic:
                    out.write(final)
                    continue
                temporary = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.tmp"
                                            f"{final.suffix}")
                staged.append((temporary, final))
                out.write(temporary)
            except OSError as exc:
                raise OutputError(f"{final}: cannot write the {out.what} "
                                  f"({exc.strerror or type(exc).__name__}).") from None
            except Exception as exc:  # noqa: BLE001 - said in one line, naming the output
                raise OutputError(f"{final}: cannot write the {out.what} "
                                  f"({one_line(exc)}).") from None
        for temporary, final in staged:
            os.replace(temporary, final)
    except BaseException:
        for temporary, _ in staged:
            with contextlib.suppress(OSError):
                temporary.unlink()
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _remove(path: Path) -> None:
    """Remove a file or a folder, if it is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


@contextlib.contextmanager
def replacing(out, overwrite):
    """With ``--overwrite``, move an existing local output (a group, a checkpoint) aside while
    the new one is written: put back if the command fails or is interrupted before a new one
    is in place, removed otherwise.

    Parameters
    ----------
    out : str or path-like or None
        The output (None: nothing to replace).
    overwrite : bool

    Yields
    ------
    None
    """
    path = local_path(out) if out is not None and is_local(out) else None
    if not overwrite or path is None or not (path.exists() or path.is_symlink()):
        yield
        return
    aside = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.old")
    moved = False
    try:
        os.replace(path, aside)
        moved = True
        yield
    except BaseException:
        if moved and not (path.exists() or path.is_symlink()):
            os.replace(aside, path)
        elif moved:  # a new one is in place (a checkpoint of the new fit): keep it
            _remove(aside)
        raise
    _remove(aside)


# ---- errors while computing ---------------------------------------------------------------------


def cannot_write(exc, outputs):
    """The output that an ``OSError`` failed to write, or None.

    Its path, its temporary file or staging group beside it, or a file inside it; an error of
    writes only (a full disk, :data:`WRITE_ERRNOS`) that names no file is the write of the one
    local output, when there is one.

    Parameters
    ----------
    exc : BaseException
    outputs : iterable
        The command's outputs (None for those not asked for).

    Returns
    -------
    output or None
    """
    if not isinstance(exc, OSError):
        return None
    local = [out for out in outputs if out is not None and is_local(out)]
    filename = getattr(exc, "filename", None)
    if not filename:
        return local[0] if exc.errno in WRITE_ERRNOS and len(local) == 1 else None
    failed = Path(str(filename))
    for out in local:
        path = local_path(out)
        for candidate in (failed, *failed.parents):
            if candidate == path or (candidate.parent == path.parent
                                     and candidate.name.startswith(f".{path.name}.")):
                return out
    return None


def _about_the_data(exc) -> bool:
    """Whether ``exc`` may come from the data: infinity (NaN is a missing value, not an
    error), or a chunk that Zarr (or its codecs) failed to read (its traceback, a worker's
    included, passes through them)."""
    if "contains infinity" in str(exc) or "NaN or infinity" in str(exc):
        return True
    frame = exc.__traceback__
    while frame is not None:
        module = str(frame.tb_frame.f_globals.get("__name__", ""))
        if module.startswith(("zarr.", "numcodecs.")):
            return True
        frame = frame.tb_next
    return False


def _bad_chunk(arrays) -> str | None:
    """The first bad chunk of the first of ``arrays`` that has one, described, or None."""
    from ..io.zarr_store import first_bad_chunk

    for url, array, options in arrays:
        with contextlib.suppress(Exception):  # the diagnosis is a bonus: never a new error
            found = first_bad_chunk(url, array, options)
            if found is not None:
                return found
    return None


def _with_chunk(reason: str, chunk: str | None) -> str:
    """The problem, said by the chunk at fault when it is the same problem (a chunk that
    cannot be read, or that holds the infinity the error is about), else both."""
    if chunk is None:
        return reason
    if "cannot be read" in chunk or ("infinity" in reason and "holds infinity" in chunk):
        return f"{chunk}."
    return f"{reason} ({chunk})"


@contextlib.contextmanager
def computing_on(store, outputs=(), names=(), arrays=()):
    """Errors raised while computing on ``store`` read ``STORE: <problem>``.

    A failed write of one of ``outputs`` reads ``OUTPUT: cannot write ...`` (never the
    name of a temporary file); errors that already name the store or one of ``names`` (a
    checkpoint), and the loss of the scheduler, pass unchanged. When the problem may come
    from the data (infinity, a chunk that cannot be decoded), ``arrays`` are read again to
    name the first chunk at fault.

    Parameters
    ----------
    store : str
        The input store.
    outputs : iterable, default=()
        What the computation writes.
    names : iterable, default=()
        Names that an error may already carry.
    arrays : iterable of (url, array, storage_options), default=()
        The arrays the computation reads, for the diagnosis of a bad chunk.

    Yields
    ------
    None
    """
    from distributed.comm.core import CommClosedError
    from sklearn.utils._param_validation import InvalidParameterError

    try:
        yield
    except (ConnectionError, CommClosedError, OutputError, InvalidParameterError):
        raise
    except Exception as exc:
        failed = cannot_write(exc, outputs)
        if failed is not None:
            raise OutputError(f"{failed}: cannot write ({exc.strerror or exc}).") from exc
        text = one_line(exc)
        if "scheduler-connection-lost" in text or any(
                str(name) in text for name in (store, *names) if name is not None):
            raise
        reason = text if isinstance(exc, ValueError) else f"{type(exc).__name__}: {text}"
        chunk = _bad_chunk(arrays) if arrays and _about_the_data(exc) else None
        raise RuntimeError(f"{store}: {_with_chunk(reason, chunk)}") from exc


# ---- running a fit, and its report --------------------------------------------------------------


def fit_warnings(caught) -> list[str]:
    """What the caught warnings say that the user must hear: a degenerate fit, a fit that
    did not converge, a selection at the edge of its candidates (one line each, each once).

    Parameters
    ----------
    caught : list of warnings.WarningMessage

    Returns
    -------
    list of str
    """
    from sklearn.exceptions import ConvergenceWarning

    from ..exceptions import DegenerateFitWarning, SelectionBoundaryWarning

    said = []
    for item in caught:
        if issubclass(item.category, (DegenerateFitWarning, ConvergenceWarning,
                                      SelectionBoundaryWarning)):
            text = " ".join(str(item.message).split())
            if text not in said:
                said.append(text)
    return said


@dataclasses.dataclass(frozen=True)
class FitRun:
    """How a fit ran: its time, the dashboard, and the warnings to say.

    Parameters
    ----------
    seconds : float
        The time it took, connecting included.
    dashboard : str or None
        The cluster's dashboard.
    warnings : list of str
        What the fit's warnings say (:func:`fit_warnings`).
    """

    seconds: float
    dashboard: str | None
    warnings: list


def run_fit(args, fit, *, outputs=(), names=(), arrays=()) -> FitRun:
    """Run ``fit()`` where ``args`` ask (:func:`~dask_biglearn.cli.cluster.connect`), its
    errors naming the store (:func:`computing_on`), its warnings recorded, not shown.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments, with ``store`` and the cluster options.
    fit : callable
        The work, called without arguments.
    outputs, names, arrays
        As :func:`computing_on` takes them.

    Returns
    -------
    FitRun
    """
    started = time.perf_counter()
    with connect(args, log=say(args)) as client, \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # recorded, not shown: only some are said
        with computing_on(args.store, outputs, names, arrays):
            fit()
        dashboard = client.dashboard_link
    return FitRun(time.perf_counter() - started, dashboard, fit_warnings(caught))


def report(args, summary: dict, lines=(), closing=None) -> None:
    """Print a command's report: with ``--json`` the summary only; else ``lines`` on stdout,
    each of the summary's ``warnings`` as one line ``dask-biglearn COMMAND: warning: ...``
    on stderr, then ``closing`` (unless ``--quiet``).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments, with ``command``, ``json`` and ``quiet``.
    summary : dict
        JSON-able, with ``warnings``.
    lines : iterable of str, default=()
    closing : str, optional
    """
    if args.json:
        print(json.dumps(summary), flush=True)
        return
    for line in lines:
        print(line)
    for note in summary["warnings"]:
        print(f"dask-biglearn {args.command}: warning: {note}", file=sys.stderr, flush=True)
    if closing is not None:
        say(args)(closing)
