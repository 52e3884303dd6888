"""The batch commands: ``make-data``, ``fit``, ``predict``, ``info`` (io -> estimator -> io).

Before a command starts any work it checks its arguments (:class:`UsageError`, exit code 2)
and its outputs: an output that exists is refused unless ``--overwrite`` is given, and the
folder of each local output must exist or be creatable and be writable (a file is created
and removed there), so a fit never runs to completion only to find it cannot save its
model. Errors raised while computing on a store name the store.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path

import numpy as np

from .cluster import add_cluster_options, connect


class UsageError(ValueError):
    """A command line that cannot be run as given (values or options that do not go
    together): :func:`dask_biglearn.cli.main` reports it as argparse reports a bad argument,
    with exit code 2, but in one line."""


class OutputError(ValueError):
    """An output that cannot be written: it exists (without ``--overwrite``), is a directory
    where a file goes, or its folder cannot be created or written to."""


def _say(args):
    quiet = getattr(args, "quiet", False) or getattr(args, "json", False)
    return (lambda *a, **k: None) if quiet else (lambda *a, **k: print(*a, **k, flush=True))


def _add_store_options(p):
    p.add_argument("store", metavar="STORE", help="Zarr store (path or fsspec URL)")
    p.add_argument("--array", default=None, help="the array inside a group (default X)")
    p.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE",
                   help="an fsspec storage option (repeatable)")
    p.add_argument("--allow-missing-chunks", action="store_true",
                   help="read chunks missing from the store as its fill value (otherwise a "
                        "missing chunk, e.g. of a store still being written, is an error)")


def _positive_int(text):
    value = float(str(text).replace("_", ""))
    if value != int(value) or value < 1:
        raise ValueError(f"expected a positive integer, got {text!r}")
    return int(value)


def _check_cluster_options(args):
    """Refuse a ``--n-workers`` below 1, which would start an embedded cluster without
    workers and wait for them forever.

    ``add_cluster_options`` (cluster.py) declares the option as a plain ``int``, so the value
    is checked here, at the start of each command and before any cluster starts. It is a
    :class:`UsageError`, exit code 2, as argparse gives a malformed value: the command line
    is wrong and running it again cannot help, where 1 says that a run failed. It is refused
    even when a running scheduler makes the option unused: a wrong value is never silently
    ignored.
    """
    n_workers = getattr(args, "n_workers", None)
    if n_workers is not None and n_workers < 1:
        raise UsageError(f"argument --n-workers: expected a positive integer, got {n_workers}")


def _add_overwrite_option(p, what):
    p.add_argument("--overwrite", action="store_true",
                   help=f"replace {what} if it exists (refused otherwise)")


def _is_local(url) -> bool:
    text = str(url)
    return "://" not in text or text.startswith("file://")


def _local(url) -> Path:
    return Path(str(url).removeprefix("file://")).expanduser()


def _same_path(a, b) -> bool:
    return _is_local(a) and _is_local(b) and _local(a).resolve() == _local(b).resolve()


def _probe_folder(path: Path) -> None:
    """Raise :class:`OutputError` unless ``path``'s folder exists or can be created, and a
    file can be created, written and removed there."""
    folder = path.parent
    while not folder.exists():  # the nearest existing ancestor: the folders are created there
        if folder == folder.parent:
            break
        folder = folder.parent
    if not folder.is_dir():
        raise OutputError(f"{path}: cannot create its folder, {folder} is not a directory.")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=folder)
        try:
            os.write(fd, b"\0" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise OutputError(f"{path}: cannot write in {folder} ({reason}).") from None


def _check_file_output(path, option, overwrite):
    """Check a local output file (a model, a checkpoint) before any work starts."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise OutputError(f"{path} is a directory: {option} names the file to write.")
    if path.exists() and not overwrite:
        raise OutputError(f"{path} exists: remove it, choose another {option} or give "
                          f"--overwrite.")
    _probe_folder(path)


def _is_zarr_group(path: Path) -> bool:
    return path.is_dir() and ((path / "zarr.json").is_file() or (path / ".zgroup").is_file())


def _check_group_output(out, overwrite, storage_options=None):
    """Check a Zarr output (predictions, make-data's group) before any work starts.

    An existing one is refused unless ``overwrite``, and even then if it is not a Zarr group
    (``--overwrite`` never removes a folder that is not one of these). On a remote URL only
    its existence is checked, and only where fsspec can tell.
    """
    if not _is_local(out):
        with contextlib.suppress(Exception):  # unreachable or no rights: the write will say
            import fsspec

            fs, where = fsspec.core.url_to_fs(str(out), **(storage_options or {}))
            if fs.exists(where) and not overwrite:
                raise OutputError(f"{out} exists: remove it, choose another output or give "
                                  f"--overwrite.")
        return
    path = _local(out)
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise OutputError(f"{out} exists: remove it, choose another output or give "
                              f"--overwrite.")
        if not _is_zarr_group(path) or path.is_symlink():
            raise OutputError(f"{out} exists and is not a Zarr group: --overwrite replaces "
                              f"only a Zarr group; remove it yourself.")
    _probe_folder(path)


@contextlib.contextmanager
def _replacing(out, overwrite):
    """With ``--overwrite``, move an existing local group aside while the new one is
    written: put back if the command fails or is interrupted, removed once the new one is in
    place."""
    path = _local(out) if _is_local(out) else None
    if not overwrite or path is None or not path.exists():
        yield
        return
    aside = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.old")
    moved = False
    try:
        os.replace(path, aside)
        moved = True
        yield
    except BaseException:
        if moved and not path.exists():
            os.replace(aside, path)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _cannot_write(exc, outputs):
    """The output that an ``OSError`` failed to write (its path, its temporary file or
    staging group beside it, or a file inside it), or None."""
    filename = getattr(exc, "filename", None)
    if not isinstance(exc, OSError) or not filename:
        return None
    failed = Path(str(filename))
    for out in outputs:
        if out is None or not _is_local(out):
            continue
        path = _local(out)
        for candidate in (failed, *failed.parents):
            if candidate == path or (candidate.parent == path.parent
                                     and candidate.name.startswith(f".{path.name}.")):
                return out
    return None


@contextlib.contextmanager
def _computing_on(store, outputs=(), names=()):
    """Errors raised while computing on ``store`` read ``STORE: <problem>``.

    A failed write of one of ``outputs`` reads ``OUTPUT: cannot write ...`` (never the
    name of a temporary file); errors that already name the store or one of ``names`` (a
    checkpoint), and the loss of the scheduler, pass unchanged.
    """
    from distributed.comm.core import CommClosedError
    from sklearn.utils._param_validation import InvalidParameterError

    try:
        yield
    except (ConnectionError, CommClosedError, OutputError, InvalidParameterError):
        raise
    except Exception as exc:
        failed = _cannot_write(exc, outputs)
        if failed is not None:
            raise OutputError(f"{failed}: cannot write ({exc.strerror or exc}).") from exc
        text = _one_line(exc)
        if "scheduler-connection-lost" in text or any(
                str(name) in text for name in (store, *names) if name is not None):
            raise
        reason = text if isinstance(exc, ValueError) else f"{type(exc).__name__}: {text}"
        raise RuntimeError(f"{store}: {reason}") from exc


def _sample_size(text):
    if text == "auto":
        return "auto"
    value = float(text)
    if 0 < value <= 1 and "." in text:
        return value
    return _positive_int(text)


# ---- make-data --------------------------------------------------------------------------------


def add_make_data(sub):
    """Add the ``make-data`` subcommand, which calls :func:`make_data`.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The subcommands of the ``dask-biglearn`` parser (what ``add_subparsers`` returns).
    """
    p = sub.add_parser("make-data", help="write synthetic Gaussian-mixture data to a Zarr group")
    p.add_argument("out", metavar="OUT",
                   help="the Zarr group to create (must not exist, unless --overwrite)")
    p.add_argument("--n-samples", type=_positive_int, required=True)
    p.add_argument("--n-features", type=_positive_int, required=True)
    p.add_argument("--n-components", type=_positive_int, required=True)
    p.add_argument("--chunk-rows", type=_positive_int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    p.add_argument("--separation", type=float, default=2.0,
                   help="Dasgupta separation of the two closest components")
    p.add_argument("--quiet", action="store_true")
    _add_overwrite_option(p, "OUT (a Zarr group)")
    add_cluster_options(p)
    p.set_defaults(func=make_data)


def make_data(args) -> int:
    """Write a synthetic Gaussian-mixture data set to a new Zarr group (``make-data``).

    The group holds the array ``X`` and the true ``labels``, computed chunk by chunk on the
    workers (each chunk from the generator seeded by ``(seed, chunk)``), and the true
    ``weights``, ``means`` and ``covariances``; it is written beside ``OUT`` and renamed into
    place when complete. An existing ``OUT`` is refused unless ``--overwrite`` (and it is a
    Zarr group), and its folder is checked to be writable before any work starts.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments of ``make-data``.

    Returns
    -------
    exit_code : int
        0 (failures raise, and :func:`dask_biglearn.cli.main` reports them).
    """
    import dask.array as da
    import zarr

    from ..datasets import lazy_mixture, random_mixture
    from ..io.zarr_store import staged_group

    say = _say(args)
    _check_cluster_options(args)
    out = Path(args.out)
    if args.n_components > args.n_samples:
        raise ValueError("--n-components is larger than --n-samples.")
    _check_group_output(out, args.overwrite)
    truth = random_mixture(args.n_features, args.n_components, separation=args.separation,
                           random_state=args.seed)
    started = time.perf_counter()
    with connect(args, log=say), _replacing(out, args.overwrite), staged_group(out) as url:
        X, labels = lazy_mixture(*truth, args.n_samples, args.chunk_rows, seed=args.seed,
                                 dtype=args.dtype)
        group = zarr.open_group(url, mode="a")
        for name, value in zip(("weights", "means", "covariances"), truth, strict=True):
            group.create_array(name, data=np.asarray(value, dtype=np.float64))
        group.attrs.update({"generator": "dask_biglearn.datasets.random_mixture",
                            "seed": args.seed, "separation": args.separation})
        da.compute(da.to_zarr(X, url, component="X", mode="w", compute=False),
                   da.to_zarr(labels, url, component="labels", mode="w", compute=False))
    say(f"Wrote {out}: X {X.shape} {args.dtype} in {len(X.chunks[0])} chunks "
        f"({X.nbytes / 1e9:.2f} GB), labels, weights, means, covariances "
        f"in {time.perf_counter() - started:.1f} s")
    return 0


# ---- fit ----------------------------------------------------------------------------------------


def add_fit(sub):
    """Add the ``fit`` subcommand, which calls :func:`fit`.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The subcommands of the ``dask-biglearn`` parser (what ``add_subparsers`` returns).
    """
    p = sub.add_parser("fit", help="fit a mixture to a Zarr array and save the model")
    _add_store_options(p)
    p.add_argument("--n-components", type=_positive_int, required=True)
    p.add_argument("--method", choices=["biglearn", "em"], default="biglearn")
    p.add_argument("--max-iter", type=int, default=None)
    p.add_argument("--n-inner-iter", type=int, default=None)
    p.add_argument("--n-init", type=int, default=None)
    p.add_argument("--init", default=None,
                   choices=["random", "random_from_data", "k-means++", "kmeans",
                            "kmeans-pursuit", "auto"])
    p.add_argument("--sample-size", type=_sample_size, default=None,
                   help="scalable mode: rows, a fraction (0.01) or auto")
    p.add_argument("--init-model", default=None, metavar="MODEL",
                   help="start from this saved model (one start: its weights, means and "
                        "precisions), as scikit-learn's warm_start")
    p.add_argument("--covariance-type", default=None,
                   choices=["full", "tied", "diag", "spherical"],
                   help="scikit-learn's covariance types (default full; with --init-model, "
                        "the model's)")
    p.add_argument("--covariance-floor", type=float, default=None)
    p.add_argument("--sample-weight", default=None, metavar="NAME",
                   help="weigh the rows by the 1-D array NAME of the same Zarr group (one "
                        "non-negative weight per row)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", required=True, metavar="OUT",
                   help="where the model goes (must not exist, unless --overwrite)")
    p.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="write the fit's state here as it goes (must not exist, unless "
                        "--resume or --overwrite)")
    p.add_argument("--checkpoint-every", type=_positive_int, default=10, metavar="N",
                   help="iterations between checkpoints")
    p.add_argument("--resume", action="store_true",
                   help="continue the fit that wrote --checkpoint (which must exist)")
    p.add_argument("--quiet", action="store_true", help="no progress, no log")
    p.add_argument("--json", action="store_true", help="print a JSON summary (only)")
    _add_overwrite_option(p, "the model, and start afresh over an existing checkpoint")
    add_cluster_options(p)
    p.set_defaults(func=fit)


def _storage_options(items):
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--storage-option expects KEY=VALUE, got {item!r}")
        options[key] = value
    return options or None


def _estimator(args, progress):
    from .. import BigLearnGaussianMixture, GaussianMixture

    given = {"max_iter": args.max_iter, "n_init": args.n_init, "init_params": args.init,
             "sample_size": args.sample_size, "covariance_floor": args.covariance_floor,
             "covariance_type": getattr(args, "covariance_type", None)}
    if args.method == "biglearn":
        given["n_inner_iter"] = args.n_inner_iter
        cls = BigLearnGaussianMixture
    else:
        if args.n_inner_iter is not None:
            raise ValueError("--n-inner-iter applies to --method biglearn only.")
        cls = GaussianMixture
    params = {k: v for k, v in given.items() if v is not None}
    if getattr(args, "init_model", None):
        params.update(_init_model_parameters(args))
    model = cls(args.n_components, random_state=args.seed, callbacks=progress,
                checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every,
                resume=args.resume, **params)
    model._validate_params()  # a bad hyper-parameter is refused before any work starts
    return model


def _init_model_parameters(args) -> dict:
    """``--init-model``: the saved model's parameters as the one start of the fit."""
    from .. import load as load_model
    from ..initialization import one_given_start

    if args.n_init is not None or args.init is not None:
        raise UsageError("--init-model is the fit's one start: leave out --n-init and --init.")
    start = load_model(args.init_model)
    if start.n_components != args.n_components:
        raise UsageError(f"--init-model {args.init_model} has {start.n_components} "
                         f"components, --n-components asks for {args.n_components}.")
    if getattr(args, "covariance_type", None) not in (None, start.covariance_type):
        raise UsageError(f"--init-model {args.init_model} has covariance_type "
                         f"{start.covariance_type!r}, --covariance-type asks for "
                         f"{args.covariance_type!r}.")
    return {**one_given_start(start.weights_, start.means_, start.precisions_),
            "covariance_type": start.covariance_type}


def _check_fit_outputs(args):
    """The model and checkpoint paths, checked before any work starts."""
    if args.resume and not args.checkpoint:
        raise UsageError("--resume needs --checkpoint.")
    if args.checkpoint and Path(args.model).expanduser().resolve() == Path(
            args.checkpoint).expanduser().resolve():
        raise UsageError(f"--model and --checkpoint name the same file ({args.model}).")
    _check_file_output(args.model, "--model", args.overwrite)
    if not args.checkpoint:
        return
    checkpoint = Path(args.checkpoint).expanduser()
    if args.resume:
        if checkpoint.is_dir():
            raise OutputError(f"{checkpoint} is a directory: --checkpoint names the file to "
                              f"write.")
        if not checkpoint.exists():
            raise OutputError(f"--resume: no checkpoint at {checkpoint} (nothing to "
                              f"continue; fit without --resume to start afresh).")
        from ..fit.journal import CHECKPOINT_KIND
        from ..io.files import read_archive

        read_archive(checkpoint, CHECKPOINT_KIND)  # ours and readable, or one line now
        _probe_folder(checkpoint)
        return
    if checkpoint.is_file() and not args.overwrite:
        raise OutputError(f"{checkpoint} exists (the checkpoint of an interrupted fit?): give "
                          f"--resume to continue it, --overwrite to start afresh, or choose "
                          f"another --checkpoint.")
    _check_file_output(checkpoint, "--checkpoint", args.overwrite)


def _fit_warnings(caught) -> list[str]:
    """What the caught warnings say that the user must hear: a degenerate fit, a fit that
    did not converge, a selection at the edge of its candidates (one line each, each
    once)."""
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


def fit(args) -> int:
    """Fit a mixture to a Zarr array and save the model (``fit``).

    The array is read lazily from the store; the fit shows a progress bar on a terminal
    (unless ``--quiet`` or ``--json``), and a one-line summary, or with ``--json`` a JSON
    summary, is printed once the model is saved. The model and checkpoint paths are checked
    first (:func:`_check_fit_outputs`): an existing model or checkpoint is refused unless
    ``--overwrite`` (or, for the checkpoint, ``--resume``), ``--resume`` needs an existing
    checkpoint. A degenerate fit or one that did not converge is said on stderr as one line
    each, ``dask-biglearn fit: warning: ...`` (with ``--json``, in the summary's
    ``warnings`` only); the exit code stays 0.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments of ``fit``.

    Returns
    -------
    exit_code : int
        0 (failures raise, and :func:`dask_biglearn.cli.main` reports them).
    """
    from ..io.zarr_store import open_zarr_array
    from ..progress import ProgressBar

    say = _say(args)
    _check_cluster_options(args)
    _check_fit_outputs(args)
    X = open_zarr_array(args.store, args.array, _storage_options(args.storage_option),
                        allow_missing_chunks=args.allow_missing_chunks)
    if args.n_components > X.shape[0]:
        raise ValueError(f"--n-components {args.n_components} is larger than the store's "
                         f"{X.shape[0]} rows.")
    weights = None
    if args.sample_weight:
        weights = open_zarr_array(args.store, args.sample_weight,
                                  _storage_options(args.storage_option),
                                  allow_missing_chunks=args.allow_missing_chunks, ndim=1)
        if weights.shape[0] != X.shape[0]:
            raise ValueError(f"--sample-weight {args.sample_weight} has {weights.shape[0]} "
                             f"rows, the store's array {X.shape[0]}.")
    show = not (args.quiet or args.json) and sys.stderr.isatty()
    bar = ProgressBar(disable=not show, n_inner_iter=args.n_inner_iter or 5)
    model = _estimator(args, [bar])
    if model.means_init is not None and np.shape(model.means_init)[1] != X.shape[1]:
        raise ValueError(f"--init-model {args.init_model} has {np.shape(model.means_init)[1]} "
                         f"features, the store's array {X.shape[1]}.")
    say(f"Fitting {type(model).__name__}(n_components={args.n_components}) to {args.store} "
        f"{X.shape} {X.dtype} in {len(X.chunks[0])} chunks")
    started = time.perf_counter()
    with connect(args, log=say) as client, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # recorded, not shown: only some are said below
        with _computing_on(args.store, (args.checkpoint,), (args.checkpoint,)):
            model.fit(X, sample_weight=weights)
        dashboard = client.dashboard_link
    bar.close()
    seconds = time.perf_counter() - started
    notes = _fit_warnings(caught)
    try:
        model.save(args.model)
    except OSError as exc:  # its message would name the temporary file
        raise OutputError(f"{args.model}: cannot write the model "
                          f"({exc.strerror or type(exc).__name__}).") from None
    summary = {"model": str(args.model), "estimator": type(model).__name__,
               "n_components": int(args.n_components), "n_samples": int(X.shape[0]),
               "n_features": int(X.shape[1]), "lower_bound": float(model.lower_bound_),
               "n_iter": int(model.n_iter_), "converged": bool(model.converged_),
               "n_data_passes": int(model.n_data_passes_), "bytes_read": int(model.bytes_read_),
               "n_sample_passes": int(model.n_sample_passes_), "seconds": seconds,
               "dashboard": dashboard, "warnings": notes}
    if not args.json:
        for note in notes:
            print(f"dask-biglearn fit: warning: {note}", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(summary))
    else:
        say(f"Saved {args.model}: mean log-likelihood {model.lower_bound_:.6f}, "
            f"{model.n_data_passes_} full-data passes ({model.bytes_read_ / 1e9:.2f} GB read), "
            f"{seconds:.1f} s")
    return 0


# ---- predict ----------------------------------------------------------------------------------


def add_predict(sub):
    """Add the ``predict`` subcommand, which calls :func:`predict`.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The subcommands of the ``dask-biglearn`` parser (what ``add_subparsers`` returns).
    """
    p = sub.add_parser("predict", help="write a model's predictions for a Zarr array to Zarr")
    p.add_argument("model", metavar="MODEL")
    _add_store_options(p)
    p.add_argument("--out", required=True,
                   help="the Zarr group to create (must not exist, unless --overwrite)")
    p.add_argument("--log-likelihood", action="store_true",
                   help="also write the per-sample log-likelihood")
    p.add_argument("--responsibilities", action="store_true",
                   help="also write the per-sample responsibilities")
    p.add_argument("--quiet", action="store_true")
    _add_overwrite_option(p, "--out (a Zarr group)")
    add_cluster_options(p)
    p.set_defaults(func=predict)


def predict(args) -> int:
    """Write a saved model's predictions for a Zarr array to a new Zarr group (``predict``).

    The labels, and on request the per-sample log-likelihood and responsibilities, are
    written chunk by chunk by :func:`dask_biglearn.io.zarr_store.write_predictions`. An
    existing ``--out`` is refused unless ``--overwrite`` (and it is a Zarr group other than
    the input store), and its folder is checked to be writable before any work starts.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments of ``predict``.

    Returns
    -------
    exit_code : int
        0 (failures raise, and :func:`dask_biglearn.cli.main` reports them).
    """
    from .. import load as load_model
    from ..io.zarr_store import StoreError, open_zarr_array, write_predictions

    say = _say(args)
    _check_cluster_options(args)
    options = _storage_options(args.storage_option)
    if _same_path(args.out, args.store):
        raise UsageError(f"--out names the input store ({args.store}).")
    _check_group_output(args.out, args.overwrite, options)
    model = load_model(args.model)
    X = open_zarr_array(args.store, args.array, options,
                        allow_missing_chunks=args.allow_missing_chunks)
    if X.shape[1] != model.n_features_in_:
        raise StoreError(f"{args.store} has {X.shape[1]} features; the model was fitted on "
                         f"{model.n_features_in_}.")
    started = time.perf_counter()
    with connect(args, log=say), _replacing(args.out, args.overwrite), \
            _computing_on(args.store, (args.out,), (args.out,)):
        names = write_predictions(model, X, args.out, log_likelihood=args.log_likelihood,
                                  responsibilities=args.responsibilities)
    say(f"Wrote {', '.join(names)} for {X.shape[0]} rows to {args.out} in "
        f"{time.perf_counter() - started:.1f} s")
    return 0


# ---- info -------------------------------------------------------------------------------------


def add_info(sub):
    """Add the ``info`` subcommand, which calls :func:`info`.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The subcommands of the ``dask-biglearn`` parser (what ``add_subparsers`` returns).
    """
    p = sub.add_parser("info", help="describe a model file")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=info)


def info(args) -> int:
    """Describe a model file (``info``).

    Prints the estimator, its size, the file's format and package versions, the fit's
    mean log-likelihood, iterations, convergence, full-data passes and weights: as text, or
    with ``--json`` as one JSON object (with the hyper-parameters too).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments of ``info``.

    Returns
    -------
    exit_code : int
        0 (failures raise, and :func:`dask_biglearn.cli.main` reports them).
    """
    from .. import load as load_model
    from ..io.files import read_archive

    model = load_model(args.model)
    meta, _ = read_archive(args.model, "model")
    facts = {"file": str(args.model), "estimator": type(model).__name__,
             "format_version": meta["format_version"],
             "package_version": meta.get("package_version"),
             "n_components": int(model.n_components), "n_features": int(model.n_features_in_),
             "lower_bound": float(model.lower_bound_), "n_iter": int(model.n_iter_),
             "converged": bool(model.converged_),
             "n_data_passes": int(getattr(model, "n_data_passes_", 0)),
             "weights": [float(w) for w in model.weights_],
             "hyper_parameters": meta["hyper_parameters"]}
    if args.json:
        print(json.dumps(facts))
        return 0
    print(f"{facts['file']}: {facts['estimator']}, {facts['n_components']} components in "
          f"{facts['n_features']} dimensions (format {facts['format_version']}, "
          f"dask_biglearn {facts['package_version']})")
    print(f"  mean log-likelihood {facts['lower_bound']:.6f}, {facts['n_iter']} iterations, "
          f"converged {facts['converged']}, {facts['n_data_passes']} full-data passes")
    print("  weights " + " ".join(f"{w:.3f}" for w in facts["weights"]))
    return 0
