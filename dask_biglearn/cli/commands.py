"""The batch commands: ``make-data``, ``fit``, ``predict``, ``info`` (io -> estimator -> io)."""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from .cluster import add_cluster_options, connect


def _say(args):
    quiet = getattr(args, "quiet", False) or getattr(args, "json", False)
    return (lambda *a, **k: None) if quiet else (lambda *a, **k: print(*a, **k, flush=True))


def _add_store_options(p):
    p.add_argument("store", metavar="STORE", help="Zarr store (path or fsspec URL)")
    p.add_argument("--array", default=None, help="the array inside a group (default X)")
    p.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE",
                   help="an fsspec storage option (repeatable)")


def _positive_int(text):
    value = float(str(text).replace("_", ""))
    if value != int(value) or value < 1:
        raise ValueError(f"expected a positive integer, got {text!r}")
    return int(value)


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
    p.add_argument("out", metavar="OUT", help="the Zarr group to create (must not exist)")
    p.add_argument("--n-samples", type=_positive_int, required=True)
    p.add_argument("--n-features", type=_positive_int, required=True)
    p.add_argument("--n-components", type=_positive_int, required=True)
    p.add_argument("--chunk-rows", type=_positive_int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    p.add_argument("--separation", type=float, default=2.0,
                   help="Dasgupta separation of the two closest components")
    p.add_argument("--quiet", action="store_true")
    add_cluster_options(p)
    p.set_defaults(func=make_data)


def make_data(args) -> int:
    """Write a synthetic Gaussian-mixture data set to a new Zarr group (``make-data``).

    The group holds the array ``X`` and the true ``labels``, computed chunk by chunk on the
    workers (each chunk from the generator seeded by ``(seed, chunk)``), and the true
    ``weights``, ``means`` and ``covariances``; it is written beside ``OUT`` and renamed into
    place when complete.

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
    out = Path(args.out)
    if args.n_components > args.n_samples:
        raise ValueError("--n-components is larger than --n-samples.")
    truth = random_mixture(args.n_features, args.n_components, separation=args.separation,
                           random_state=args.seed)
    started = time.perf_counter()
    with connect(args, log=say), staged_group(out) as url:
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
                   choices=["random", "random_from_data", "k-means++", "kmeans"])
    p.add_argument("--sample-size", type=_sample_size, default=None,
                   help="scalable mode: rows, a fraction (0.01) or auto")
    p.add_argument("--covariance-floor", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", required=True, metavar="OUT", help="where the model goes")
    p.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="write the fit's state here as it goes")
    p.add_argument("--checkpoint-every", type=_positive_int, default=10, metavar="N",
                   help="iterations between checkpoints")
    p.add_argument("--resume", action="store_true",
                   help="continue the fit that wrote --checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress, no log")
    p.add_argument("--json", action="store_true", help="print a JSON summary (only)")
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
             "sample_size": args.sample_size, "covariance_floor": args.covariance_floor}
    if args.method == "biglearn":
        given["n_inner_iter"] = args.n_inner_iter
        cls = BigLearnGaussianMixture
    else:
        if args.n_inner_iter is not None:
            raise ValueError("--n-inner-iter applies to --method biglearn only.")
        cls = GaussianMixture
    params = {k: v for k, v in given.items() if v is not None}
    if args.resume and not args.checkpoint:
        raise ValueError("--resume needs --checkpoint.")
    return cls(args.n_components, random_state=args.seed, callbacks=progress,
               checkpoint=args.checkpoint, checkpoint_every=args.checkpoint_every,
               resume=args.resume, **params)


def fit(args) -> int:
    """Fit a mixture to a Zarr array and save the model (``fit``).

    The array is read lazily from the store; the fit shows a progress bar on a terminal
    (unless ``--quiet`` or ``--json``), and a one-line summary, or with ``--json`` a JSON
    summary, is printed once the model is saved.

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
    X = open_zarr_array(args.store, args.array, _storage_options(args.storage_option))
    if args.n_components > X.shape[0]:
        raise ValueError(f"--n-components {args.n_components} is larger than the store's "
                         f"{X.shape[0]} rows.")
    show = not (args.quiet or args.json) and sys.stderr.isatty()
    bar = ProgressBar(disable=not show, n_inner_iter=args.n_inner_iter or 5)
    model = _estimator(args, [bar])
    say(f"Fitting {type(model).__name__}(n_components={args.n_components}) to {args.store} "
        f"{X.shape} {X.dtype} in {len(X.chunks[0])} chunks")
    started = time.perf_counter()
    with connect(args, log=say) as client, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
        dashboard = client.dashboard_link
    bar.close()
    seconds = time.perf_counter() - started
    model.save(args.model)
    summary = {"model": str(args.model), "estimator": type(model).__name__,
               "n_components": int(args.n_components), "n_samples": int(X.shape[0]),
               "n_features": int(X.shape[1]), "lower_bound": float(model.lower_bound_),
               "n_iter": int(model.n_iter_), "converged": bool(model.converged_),
               "n_data_passes": int(model.n_data_passes_), "bytes_read": int(model.bytes_read_),
               "n_sample_passes": int(model.n_sample_passes_), "seconds": seconds,
               "dashboard": dashboard}
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
    p.add_argument("--out", required=True, help="the Zarr group to create")
    p.add_argument("--log-likelihood", action="store_true",
                   help="also write the per-sample log-likelihood")
    p.add_argument("--responsibilities", action="store_true",
                   help="also write the per-sample responsibilities")
    p.add_argument("--quiet", action="store_true")
    add_cluster_options(p)
    p.set_defaults(func=predict)


def predict(args) -> int:
    """Write a saved model's predictions for a Zarr array to a new Zarr group (``predict``).

    The labels, and on request the per-sample log-likelihood and responsibilities, are
    written chunk by chunk by :func:`dask_biglearn.io.zarr_store.write_predictions`.

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
    model = load_model(args.model)
    X = open_zarr_array(args.store, args.array, _storage_options(args.storage_option))
    if X.shape[1] != model.n_features_in_:
        raise StoreError(f"{args.store} has {X.shape[1]} features; the model was fitted on "
                         f"{model.n_features_in_}.")
    started = time.perf_counter()
    with connect(args, log=say):
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
