"""The batch commands: ``make-data``, ``fit``, ``predict``, ``impute``, ``info`` (io -> estimator
-> io).

Before a command starts any work it checks its arguments (:mod:`.options`: a bad value or
options that do not go together exit with code 2) and its outputs (:mod:`.outputs`: an
output that exists is refused unless ``--overwrite`` is given, no output may lie inside the
input store or hold it, and the folder of each local output must exist or be creatable and
be writable), so a fit never runs to completion only to find it cannot save its model.
Errors raised while computing on a store name the store.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

from .cluster import add_cluster_options, connect
from .options import (
    UsageError,
    add_overwrite_option,
    add_store_options,
    check_cluster_options,
    non_negative_float,
    non_negative_int,
    path,
    positive_float,
    positive_int,
    sample_size,
    say,
    seed,
    storage_options,
)
from .outputs import (
    Output,
    OutputError,
    check_file_output,
    check_group_output,
    computing_on,
    probe_folder,
    refuse_outputs_in_store,
    replacing,
    report,
    run_fit,
    write_all_or_nothing,
)


def _number(value: float) -> str:
    """A log-likelihood for people: six decimals, or six digits and an exponent when it is
    too large for decimals to help (a tampered ``1e308`` is not printed with 309 digits)."""
    return f"{value:.6f}" if abs(value) < 1e6 else f"{value:.6e}"


def load_model(path):
    """:func:`dask_biglearn.load`, without NumPy's floating-point warnings on stderr (a file
    whose parameters overflow is refused in one line; its warnings would add lines).

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    GaussianMixture or BigLearnGaussianMixture
    """
    import numpy as np

    from .. import load

    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return load(path)


def missing_fields(model) -> dict:
    """The ``--json`` summary's fields about the training data's missing values.

    Parameters
    ----------
    model : GaussianMixture or BigLearnGaussianMixture
        Fitted.

    Returns
    -------
    dict
        ``missing_fraction`` (0.0 for complete data), ``n_incomplete_rows`` and
        ``n_empty_rows``.
    """
    return {"missing_fraction": float(getattr(model, "missing_fraction_", 0.0)),
            "n_incomplete_rows": int(getattr(model, "n_incomplete_rows_", 0)),
            "n_empty_rows": int(getattr(model, "n_empty_rows_", 0))}


def missing_note(model, n_rows: int) -> str:
    """The text summary's words on the missing values, or nothing for complete data.

    Parameters
    ----------
    model : GaussianMixture or BigLearnGaussianMixture
        Fitted.
    n_rows : int
        The store's rows.

    Returns
    -------
    str
        ``"12.3% of the values missing, in 4000 of 10000 rows"`` (and the rows with no
        observed value, when there are), or ``""``.
    """
    from ..estimator import missing_summary

    fields = missing_fields(model)
    if not fields["n_incomplete_rows"]:
        return ""
    return missing_summary(fields["missing_fraction"], fields["n_incomplete_rows"], n_rows,
                           fields["n_empty_rows"])


def _store_arrays(args, options):
    """The arrays a command reads, as :func:`~.outputs.computing_on` takes them."""
    names = [args.array, getattr(args, "sample_weight", None)]
    return [(args.store, name, options) for i, name in enumerate(names) if i == 0 or name]


# ---- make-data --------------------------------------------------------------------------------


def add_make_data(sub):
    """Add the ``make-data`` subcommand, which calls :func:`make_data`.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The subcommands of the ``dask-biglearn`` parser (what ``add_subparsers`` returns).
    """
    p = sub.add_parser("make-data", help="write synthetic Gaussian-mixture data to a Zarr group")
    p.add_argument("out", metavar="OUT", type=path,
                   help="the Zarr group to create (must not exist, unless --overwrite)")
    p.add_argument("--n-samples", type=positive_int, required=True)
    p.add_argument("--n-features", type=positive_int, required=True)
    p.add_argument("--n-components", type=positive_int, required=True)
    p.add_argument("--chunk-rows", type=positive_int, default=100_000)
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    p.add_argument("--separation", type=non_negative_float, default=2.0,
                   help="Dasgupta separation of the two closest components (finite, >= 0)")
    p.add_argument("--quiet", action="store_true")
    add_overwrite_option(p, "OUT (a Zarr group)")
    add_cluster_options(p)
    p.set_defaults(func=make_data)


def make_data(args) -> int:
    """Write a synthetic Gaussian-mixture data set to a new Zarr group (``make-data``).

    The group holds the array ``X`` and the true ``labels``, computed chunk by chunk on the
    workers (each chunk from the generator seeded by ``(seed, chunk)``), and the true
    ``weights``, ``means`` and ``covariances``; it is written beside ``OUT`` and renamed into
    place when complete, every chunk stored (even one of zeros: a reader then knows that a
    missing chunk means an incomplete store). An existing ``OUT`` is refused unless
    ``--overwrite`` (and it is a Zarr group), and its folder is checked to be writable before
    any work starts.

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
    import numpy as np
    import zarr

    from ..datasets import lazy_mixture, random_mixture
    from ..io.zarr_store import create_array_every_chunk, staged_group, to_zarr_every_chunk

    check_cluster_options(args)
    out = Path(args.out)
    if args.n_components > args.n_samples:
        raise ValueError("--n-components is larger than --n-samples.")
    check_group_output(out, args.overwrite, option="OUT")
    truth = random_mixture(args.n_features, args.n_components, separation=args.separation,
                           random_state=args.seed)
    started = time.perf_counter()
    with warnings.catch_warnings():
        # The true parameters travel in the graph; with many features distributed warns
        # that the graph is large, which is expected here.
        warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
        with connect(args, log=say(args)), replacing(out, args.overwrite), \
                staged_group(out) as url:
            X, labels = lazy_mixture(*truth, args.n_samples, args.chunk_rows, seed=args.seed,
                                     dtype=args.dtype)
            group = zarr.open_group(url, mode="a")
            for name, value in zip(("weights", "means", "covariances"), truth, strict=True):
                create_array_every_chunk(group, name, np.asarray(value, dtype=np.float64))
            group.attrs.update({"generator": "dask_biglearn.datasets.random_mixture",
                                "seed": args.seed, "separation": args.separation})
            da.compute(to_zarr_every_chunk(X, url, "X"),
                       to_zarr_every_chunk(labels, url, "labels"))
    say(args)(f"Wrote {out}: X {X.shape} {args.dtype} in {len(X.chunks[0])} chunks "
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
    from ..algebra import COVARIANCE_TYPES
    from ..initialization import INIT_METHODS

    p = sub.add_parser("fit", help="fit a mixture to a Zarr array and save the model")
    add_store_options(p)
    p.add_argument("--n-components", type=positive_int, required=True)
    p.add_argument("--method", choices=["biglearn", "em"], default="biglearn")
    p.add_argument("--max-iter", type=non_negative_int, default=None)
    p.add_argument("--n-inner-iter", type=positive_int, default=None)
    p.add_argument("--n-init", type=positive_int, default=None)
    p.add_argument("--init", default=None, choices=INIT_METHODS)
    p.add_argument("--sample-size", type=sample_size, default=None,
                   help="scalable mode: rows, a fraction (0.01) or auto")
    p.add_argument("--init-model", default=None, metavar="MODEL", type=path,
                   help="start from this saved model (one start: its weights, means and "
                        "precisions), as scikit-learn's warm_start")
    p.add_argument("--covariance-type", default=None, choices=COVARIANCE_TYPES,
                   help="scikit-learn's covariance types (default full; with --init-model, "
                        "the model's)")
    p.add_argument("--covariance-floor", type=positive_float, default=None)
    p.add_argument("--sample-weight", default=None, metavar="NAME",
                   help="weigh the rows by the 1-D array NAME of the same Zarr group (one "
                        "non-negative weight per row)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--model", required=True, metavar="OUT", type=path,
                   help="where the model goes (must not exist, unless --overwrite)")
    p.add_argument("--checkpoint", default=None, metavar="PATH", type=path,
                   help="write the fit's state here as it goes (must not exist, unless "
                        "--resume or --overwrite)")
    p.add_argument("--checkpoint-every", type=positive_int, default=10, metavar="N",
                   help="iterations between checkpoints")
    p.add_argument("--resume", action="store_true",
                   help="continue the fit that wrote --checkpoint, or start afresh when there "
                        "is no checkpoint yet (says which): the one command a requeued batch "
                        "job can repeat (with --overwrite, it replaces the model a finished "
                        "run saved)")
    p.add_argument("--quiet", action="store_true", help="no progress, no log")
    p.add_argument("--json", action="store_true", help="print a JSON summary (only)")
    add_overwrite_option(p, "the model, and start afresh over an existing checkpoint")
    add_cluster_options(p)
    p.set_defaults(func=fit)


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
            raise UsageError("--n-inner-iter applies to --method biglearn only.")
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
    check_file_output(args.model, "--model", args.overwrite)
    refuse_outputs_in_store(args.store, {"--model": args.model,
                                         "--checkpoint": args.checkpoint})
    if not args.checkpoint:
        return
    checkpoint = Path(args.checkpoint).expanduser()
    if args.resume:
        if checkpoint.is_dir():
            raise OutputError(f"{checkpoint} is a directory: --checkpoint names the file to "
                              f"write.")
        if not checkpoint.exists():  # nothing to continue yet: a fit afresh
            check_file_output(checkpoint, "--checkpoint", False)
            return
        from ..fit.journal import describe_checkpoint

        describe_checkpoint(checkpoint)  # ours and readable, or one line now
        probe_folder(checkpoint)
        return
    if checkpoint.is_file() and not args.overwrite:
        raise OutputError(f"{checkpoint} exists (the checkpoint of an interrupted fit?): give "
                          f"--resume to continue it, --overwrite to start afresh, or choose "
                          f"another --checkpoint.")
    check_file_output(checkpoint, "--checkpoint", args.overwrite)


def _resuming(args):
    """With ``--resume``: say whether the fit continues its checkpoint (and from where) or
    starts afresh; return what the checkpoint held (None: afresh, or no ``--resume``)."""
    if not args.resume:
        return None
    from ..fit.journal import describe_checkpoint, describe_progress

    checkpoint = Path(args.checkpoint).expanduser()
    if not checkpoint.exists():
        say(args)(f"No checkpoint at {args.checkpoint} yet: starting afresh (it is written as "
                  f"the fit goes).")
        return None
    progress = describe_checkpoint(checkpoint)["progress"]
    say(args)(f"Resuming from {args.checkpoint}: {describe_progress(progress)}.")
    return progress


def _open_weights(args, X, options):
    """``--sample-weight``: the 1-D array of the same group, one weight per row of ``X``."""
    from ..io.zarr_store import MissingChunkError, open_zarr_array

    try:
        weights = open_zarr_array(args.store, args.sample_weight, options, ndim=1)
    except MissingChunkError as exc:
        if exc.n_stored == 0 and exc.fill_value == 0:  # Zarr stores no chunk of zeros
            raise ValueError(f"{args.store}: --sample-weight {args.sample_weight}: all weights "
                             f"zero (the array stores no chunk, so every weight reads as its "
                             f"fill value 0): nothing to fit.") from None
        if not args.allow_missing_chunks:
            raise
        weights = open_zarr_array(args.store, args.sample_weight, options,
                                  allow_missing_chunks=True, ndim=1)
    if weights.shape[0] != X.shape[0]:
        raise ValueError(f"--sample-weight {args.sample_weight} has {weights.shape[0]} "
                         f"rows, the store's array {X.shape[0]}.")
    return weights


def fit(args) -> int:
    """Fit a mixture to a Zarr array and save the model (``fit``).

    The array is read lazily from the store; the fit shows a progress bar on a terminal
    (unless ``--quiet`` or ``--json``), and a one-line summary, or with ``--json`` a JSON
    summary, is printed once the model is saved. The model and checkpoint paths are checked
    first (:func:`_check_fit_outputs`): an existing model or checkpoint is refused unless
    ``--overwrite`` (or, for the checkpoint, ``--resume``), and neither may lie inside the
    input store. ``--resume`` continues an existing checkpoint (of this fit: another is
    refused) or starts afresh when there is none, and says which; the model then counts the
    passes of every run. A degenerate fit or one that did
    not converge is said on stderr as one line each, ``dask-biglearn fit: warning: ...``
    (with ``--json``, in the summary's ``warnings`` only); the exit code stays 0.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments of ``fit``.

    Returns
    -------
    exit_code : int
        0 (failures raise, and :func:`dask_biglearn.cli.main` reports them).
    """
    import sys

    import numpy as np

    from ..io.zarr_store import open_zarr_array
    from ..progress import ProgressBar

    check_cluster_options(args)
    _check_fit_outputs(args)
    options = storage_options(args.storage_option)
    X = open_zarr_array(args.store, args.array, options,
                        allow_missing_chunks=args.allow_missing_chunks)
    if args.n_components > X.shape[0]:
        raise ValueError(f"--n-components {args.n_components} is larger than the store's "
                         f"{X.shape[0]} rows.")
    weights = _open_weights(args, X, options) if args.sample_weight else None
    show = not (args.quiet or args.json) and sys.stderr.isatty()
    bar = ProgressBar(disable=not show, n_inner_iter=args.n_inner_iter or 5)
    model = _estimator(args, [bar])
    if model.means_init is not None and np.shape(model.means_init)[1] != X.shape[1]:
        raise ValueError(f"--init-model {args.init_model} has {np.shape(model.means_init)[1]} "
                         f"features, the store's array {X.shape[1]}.")
    say(args)(f"Fitting {type(model).__name__}(n_components={args.n_components}) to "
              f"{args.store} {X.shape} {X.dtype} in {len(X.chunks[0])} chunks")
    resumed_from = _resuming(args)
    # --overwrite starts afresh: an existing checkpoint is moved aside (put back if the fit
    # fails before it writes one of its own), as the estimator never overwrites one.
    with replacing(args.checkpoint, args.overwrite and not args.resume):
        run = run_fit(args, lambda: model.fit(X, sample_weight=weights),
                      outputs=(args.checkpoint,), names=(args.checkpoint,),
                      arrays=_store_arrays(args, options))
    bar.close()
    write_all_or_nothing([Output(args.model, "model", model.save, atomic=True)])
    summary = {"model": str(args.model), "estimator": type(model).__name__,
               "n_components": int(args.n_components), "n_samples": int(X.shape[0]),
               "n_features": int(X.shape[1]), **missing_fields(model),
               "lower_bound": float(model.lower_bound_),
               "n_iter": int(model.n_iter_), "converged": bool(model.converged_),
               "n_data_passes": int(model.n_data_passes_), "bytes_read": int(model.bytes_read_),
               "n_sample_passes": int(model.n_sample_passes_), "seconds": run.seconds,
               "dashboard": run.dashboard, "warnings": run.warnings,
               "resumed_from": resumed_from}
    note = missing_note(model, int(X.shape[0]))
    report(args, summary, closing=(
        f"Saved {args.model}{f' ({note})' if note else ''}: mean log-likelihood "
        f"{_number(model.lower_bound_)}, "
        f"{model.n_data_passes_} full-data passes ({model.bytes_read_ / 1e9:.2f} GB read), "
        f"{run.seconds:.1f} s"))
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
    p.add_argument("model", metavar="MODEL", type=path)
    add_store_options(p)
    p.add_argument("--out", required=True, type=path,
                   help="the Zarr group to create (must not exist, unless --overwrite; never "
                        "inside the input store nor holding it)")
    p.add_argument("--log-likelihood", action="store_true",
                   help="also write the per-sample log-likelihood")
    p.add_argument("--responsibilities", action="store_true",
                   help="also write the per-sample responsibilities")
    p.add_argument("--quiet", action="store_true")
    add_overwrite_option(p, "--out (a Zarr group)")
    add_cluster_options(p)
    p.set_defaults(func=predict)


def _model_and_rows(args, options):
    """What ``predict`` and ``impute`` read, after checking ``--out`` (never in the input
    store; an existing one only with ``--overwrite``): the saved model and the store's lazy
    array, of the model's number of features."""
    from ..io.zarr_store import StoreError, open_zarr_array

    refuse_outputs_in_store(args.store, {"--out": args.out})
    check_group_output(args.out, args.overwrite, options, option="--out")
    model = load_model(args.model)
    X = open_zarr_array(args.store, args.array, options,
                        allow_missing_chunks=args.allow_missing_chunks)
    if X.shape[1] != model.n_features_in_:
        raise StoreError(f"{args.store} has {X.shape[1]} features; the model was fitted on "
                         f"{model.n_features_in_}.")
    return model, X


def predict(args) -> int:
    """Write a saved model's predictions for a Zarr array to a new Zarr group (``predict``).

    The labels, and on request the per-sample log-likelihood and responsibilities, are
    written chunk by chunk by :func:`dask_biglearn.io.zarr_store.write_predictions`. An
    ``--out`` that is the input store, lies inside it or holds it is refused (exit code 2);
    an existing ``--out`` is refused unless ``--overwrite`` (and it is a Zarr group), and its
    folder is checked to be writable before any work starts. A write that fails for lack of
    space names ``--out``.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments of ``predict``.

    Returns
    -------
    exit_code : int
        0 (failures raise, and :func:`dask_biglearn.cli.main` reports them).
    """
    from ..io.zarr_store import write_predictions

    check_cluster_options(args)
    options = storage_options(args.storage_option)
    model, X = _model_and_rows(args, options)
    started = time.perf_counter()
    with connect(args, log=say(args)), replacing(args.out, args.overwrite), \
            computing_on(args.store, (args.out,), (args.out,), _store_arrays(args, options)):
        names = write_predictions(model, X, args.out, log_likelihood=args.log_likelihood,
                                  responsibilities=args.responsibilities,
                                  storage_options=options)
    say(args)(f"Wrote {', '.join(names)} for {X.shape[0]} rows to {args.out} in "
              f"{time.perf_counter() - started:.1f} s")
    return 0


# ---- impute -----------------------------------------------------------------------------------


def add_impute(sub):
    """Add the ``impute`` subcommand, which calls :func:`impute`.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The subcommands of the ``dask-biglearn`` parser (what ``add_subparsers`` returns).
    """
    p = sub.add_parser("impute", help="write a Zarr array with its missing values (NaN) "
                                      "imputed under a model")
    p.add_argument("model", metavar="MODEL", type=path,
                   help="a saved model (fit --model, select --model)")
    add_store_options(p)
    p.add_argument("--out", required=True, type=path,
                   help="the Zarr group to create, holding the completed array under the "
                        "input's name (must not exist, unless --overwrite; never inside the "
                        "input store nor holding it)")
    p.add_argument("--sample-posterior", action="store_true",
                   help="draw each row's missing values from their conditional distribution "
                        "(one draw of a multiple imputation) instead of their conditional mean")
    p.add_argument("--seed", type=seed, default=None,
                   help="the draw's seed, with --sample-posterior (default 0): the same seed "
                        "draws the same values, whatever the chunks and the workers")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--json", action="store_true", help="print a JSON summary (only)")
    add_overwrite_option(p, "--out (a Zarr group)")
    add_cluster_options(p)
    p.set_defaults(func=impute)


def impute(args) -> int:
    """Write a Zarr array with its missing values imputed under a saved model (``impute``).

    Each missing value (NaN) gets its conditional mean given the row's observed values under
    the model (:class:`dask_biglearn.GaussianMixtureImputer`), or with ``--sample-posterior``
    a draw from its conditional distribution, seeded by ``--seed`` and the rows' global
    indices (the same draw whatever the chunking). The completed array is written chunk by
    chunk on the workers (:func:`dask_biglearn.io.zarr_store.write_imputed`) under the input
    array's name, with the input's chunk shape and float dtype (an integer array, which has
    nothing missing, is written as float64), in a new group staged beside ``--out`` and
    renamed into place once complete: a failed or interrupted write (Ctrl-C, SIGTERM) leaves
    nothing. The outputs are checked as ``predict`` checks them, before any work: an
    ``--out`` that is the input store, lies inside it or holds it is refused (exit code 2),
    an existing one unless ``--overwrite`` (and it is a Zarr group); a write that fails for
    lack of space names ``--out``. A one-line summary, or with ``--json`` a JSON one.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments of ``impute``.

    Returns
    -------
    exit_code : int
        0 (failures raise, and :func:`dask_biglearn.cli.main` reports them).
    """
    from .. import GaussianMixtureImputer, __version__
    from ..io.zarr_store import stored_chunks, write_imputed

    check_cluster_options(args)
    if args.seed is not None and not args.sample_posterior:
        raise UsageError("--seed seeds the draw of --sample-posterior: give both, or neither "
                         "(the conditional means need no seed).")
    draw_seed = (0 if args.seed is None else args.seed) if args.sample_posterior else None
    options = storage_options(args.storage_option)
    model, X = _model_and_rows(args, options)
    imputer = GaussianMixtureImputer.from_model(model, sample_posterior=args.sample_posterior,
                                                random_state=draw_seed)
    name = args.array or "X"
    chunks = stored_chunks(args.store, args.array, options)
    attributes = {"dask_biglearn_impute": {
        "model": str(args.model), "store": str(args.store), "array": name,
        "sample_posterior": bool(args.sample_posterior), "seed": draw_seed,
        "package_version": __version__}}
    started = time.perf_counter()
    with connect(args, log=say(args)), replacing(args.out, args.overwrite), \
            computing_on(args.store, (args.out,), (args.out,), _store_arrays(args, options)):
        counts = write_imputed(imputer, X, args.out, name=name, chunks=chunks,
                               attributes=attributes, storage_options=options)
    seconds = time.perf_counter() - started
    dtype = X.dtype if X.dtype.kind == "f" else "float64"
    summary = {"out": str(args.out), "array": name, "model": str(args.model),
               "store": str(args.store), "n_samples": int(X.shape[0]),
               "n_features": int(X.shape[1]), "dtype": str(dtype), "chunks": list(chunks),
               **counts, "sample_posterior": bool(args.sample_posterior), "seed": draw_seed,
               "seconds": seconds, "warnings": []}
    how = (f"drawn from their conditional distribution (seed {draw_seed})"
           if args.sample_posterior else "set to their conditional means")
    report(args, summary, closing=(
        f"Wrote {args.out}: {name} {tuple(X.shape)} {dtype} with {counts['n_missing']} missing "
        f"values in {counts['n_incomplete_rows']} rows {how}, in {seconds:.1f} s"))
    return 0


# ---- info -------------------------------------------------------------------------------------


def add_info(sub):
    """Add the ``info`` subcommand, which calls :func:`info`.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The subcommands of the ``dask-biglearn`` parser (what ``add_subparsers`` returns).
    """
    p = sub.add_parser("info", help="describe a model file, or how far a checkpoint got")
    p.add_argument("model", metavar="FILE", type=path,
                   help="a model (fit --model) or a checkpoint (fit --checkpoint)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=info)


def info(args) -> int:
    """Describe a model file, or a checkpoint (``info``).

    For a model: the estimator, its size and covariance type, the file's format and package
    versions, the fit's mean log-likelihood, iterations, convergence, full-data passes and
    weights. For a checkpoint: the fit it belongs to and how far it got (its loops, the last
    one's phase and iteration, the full-data passes so far:
    :func:`~dask_biglearn.fit.journal.describe_checkpoint`). As text, or with ``--json`` as
    one JSON object (with the hyper-parameters too).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments of ``info``.

    Returns
    -------
    exit_code : int
        0 (failures raise, and :func:`dask_biglearn.cli.main` reports them).
    """
    import json

    from ..io.files import file_kind, read_archive

    if file_kind(args.model) == "checkpoint":
        return _checkpoint_info(args)
    model = load_model(args.model)
    meta, _ = read_archive(args.model, "model")
    facts = {"file": str(args.model), "estimator": type(model).__name__,
             "format_version": meta["format_version"],
             "package_version": meta.get("package_version"),
             "n_components": int(model.n_components), "n_features": int(model.n_features_in_),
             "covariance_type": model.covariance_type,
             "lower_bound": float(model.lower_bound_), "n_iter": int(model.n_iter_),
             "converged": bool(model.converged_),
             "n_data_passes": int(getattr(model, "n_data_passes_", 0)),
             "weights": [float(w) for w in model.weights_],
             "hyper_parameters": meta["hyper_parameters"]}
    if args.json:
        print(json.dumps(facts))
        return 0
    print(f"{facts['file']}: {facts['estimator']}, {facts['n_components']} components in "
          f"{facts['n_features']} dimensions, {facts['covariance_type']} covariances (format "
          f"{facts['format_version']}, dask_biglearn {facts['package_version']})")
    print(f"  mean log-likelihood {_number(facts['lower_bound'])}, {facts['n_iter']} "
          f"iterations, converged {facts['converged']}, {facts['n_data_passes']} full-data "
          f"passes")
    print("  weights " + " ".join(f"{w:.3f}" for w in facts["weights"]))
    return 0


def _checkpoint_info(args) -> int:
    """``info`` of a checkpoint: the fit it belongs to and how far it got."""
    import json

    from ..fit.journal import describe_checkpoint, describe_progress

    facts = {"kind": "checkpoint", **describe_checkpoint(args.model)}
    if args.json:
        print(json.dumps(facts))
        return 0
    params = facts.get("hyper_parameters") or {}
    print(f"{facts['file']}: the checkpoint of a {facts.get('estimator')} fit, "
          f"{params.get('n_components')} components, "
          f"{params.get('covariance_type', 'full')} covariances, to data of shape "
          f"{tuple(facts.get('shape') or ())} {facts.get('dtype')}")
    print(f"  {describe_progress(facts['progress'])}")
    return 0
