"""``dask-biglearn select``: choose the number of components of a Zarr array's mixture in one
sweep that shares every read of the data, print the table, save the best model."""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import numpy as np

from .cluster import add_cluster_options, connect
from .commands import (
    OutputError,
    UsageError,
    _add_overwrite_option,
    _add_store_options,
    _check_cluster_options,
    _check_file_output,
    _computing_on,
    _fit_warnings,
    _positive_int,
    _sample_size,
    _say,
    _storage_options,
)

__all__ = ["add_select", "parse_components", "select", "table_rows"]

COLUMNS = ("n_components", "covariance_type", "n_parameters", "bic", "aic",
           "train_log_likelihood", "heldout_log_likelihood", "rank")


def parse_components(text: str) -> list[int]:
    """``--n-components``: ``START:STOP[:STEP]`` (STOP included) or a comma list.

    Parameters
    ----------
    text : str

    Returns
    -------
    list of int
        The candidate numbers of components, each at least 1.

    Raises
    ------
    argparse.ArgumentTypeError
        For anything else (a ``ValueError``; argparse prints its message).
    """
    try:
        if ":" in text:
            parts = [int(p) for p in text.split(":")]
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] < 1):
                raise ValueError
            start, stop, step = (*parts, 1) if len(parts) == 2 else parts
            values = list(range(start, stop + 1, step))
        else:
            values = [int(p) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expects START:STOP[:STEP] or a comma list of integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} gives no candidate of at least 1 "
                                         f"component")
    return sorted(set(values))


def _types(text: str) -> tuple[str, ...]:
    from ..algebra import COVARIANCE_TYPES

    types = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in types if t not in COVARIANCE_TYPES]
    if not types or bad:
        raise argparse.ArgumentTypeError(f"expects a comma list of {COVARIANCE_TYPES}, got "
                                         f"{text!r}")
    return tuple(dict.fromkeys(types))


def add_select(sub):
    """Add the ``select`` subcommand, which calls :func:`select`.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The subcommands of the ``dask-biglearn`` parser (what ``add_subparsers`` returns).
    """
    p = sub.add_parser("select", help="choose the number of components in one sweep, save "
                                      "the best model")
    _add_store_options(p)
    p.add_argument("--n-components", type=parse_components, required=True,
                   metavar="START:STOP[:STEP]|K1,K2,...",
                   help="the candidates (STOP included), e.g. 5:50:5")
    p.add_argument("--covariance-type", type=_types, default=("full",), metavar="TYPES",
                   help="comma list of candidate types, e.g. full,diag")
    p.add_argument("--criterion", choices=["bic", "aic", "heldout"], default="bic")
    p.add_argument("--heldout-fraction", type=float, default=None,
                   help="rows held out (by global index and seed; default 0.1 for "
                        "--criterion heldout, else 0)")
    p.add_argument("--method", choices=["biglearn", "em"], default="biglearn")
    p.add_argument("--n-init", type=_positive_int, default=None)
    p.add_argument("--sample-size", type=_sample_size, default=None,
                   help="scalable mode: one sample (rows, a fraction or auto) for all "
                        "candidates")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", required=True, metavar="BEST",
                   help="where the best model goes (must not exist, unless --overwrite)")
    p.add_argument("--plot", default=None, metavar="FILE.png",
                   help="draw the criterion and the log-likelihoods against K")
    p.add_argument("--quiet", action="store_true", help="no log")
    p.add_argument("--json", action="store_true", help="print a JSON summary (only)")
    _add_overwrite_option(p, "the model and the plot")
    add_cluster_options(p)
    p.set_defaults(func=select)


def _selection(args):
    from .. import BigLearnGaussianMixture, GaussianMixture, GaussianMixtureSelection

    given = {"n_init": args.n_init, "sample_size": args.sample_size}
    cls = BigLearnGaussianMixture if args.method == "biglearn" else GaussianMixture
    estimator = cls(**{k: v for k, v in given.items() if v is not None})
    selection = GaussianMixtureSelection(args.n_components, covariance_type=args.covariance_type,
                                         criterion=args.criterion, estimator=estimator,
                                         heldout_fraction=args.heldout_fraction,
                                         random_state=args.seed)
    selection._validate_params()  # a bad setting is refused before any work starts
    return selection


def table_rows(selection) -> list[dict]:
    """The rows of a fitted selection's ``cv_results_``, as JSON-able dicts.

    Parameters
    ----------
    selection : GaussianMixtureSelection

    Returns
    -------
    list of dict
        One per candidate: :data:`COLUMNS` (NaN held-out log-likelihoods as None).
    """
    table = selection.cv_results_
    rows = []
    for i in range(len(table["bic"])):
        row = {"n_components": int(table["param_n_components"][i]),
               "covariance_type": str(table["param_covariance_type"][i]),
               "n_parameters": int(table["n_parameters"][i]), "rank": int(table["rank"][i])}
        for name in ("bic", "aic", "train_log_likelihood", "heldout_log_likelihood"):
            value = float(table[name][i])
            row[name] = None if np.isnan(value) else value
        rows.append(row)
    return rows


def select(args) -> int:
    """Choose the number of components of a Zarr array's mixture (``select``).

    Every candidate of ``--n-components`` (and ``--covariance-type``) is fitted in one sweep
    (:class:`~dask_biglearn.GaussianMixtureSelection`: the candidates share every read of the
    data); the table is printed (or, with ``--json``, a JSON summary), the best model saved to
    ``--model`` and, with ``--plot``, the criterion drawn against K.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments of ``select``.

    Returns
    -------
    exit_code : int
        0 (failures raise, and :func:`dask_biglearn.cli.main` reports them).
    """
    from ..io.zarr_store import open_zarr_array

    say = _say(args)
    _check_cluster_options(args)
    _check_file_output(args.model, "--model", args.overwrite)
    if args.plot:
        try:
            import matplotlib
        except ImportError:
            raise UsageError("--plot needs matplotlib (pip install matplotlib).") from None
        _check_file_output(args.plot, "--plot", args.overwrite)
    X = open_zarr_array(args.store, args.array, _storage_options(args.storage_option),
                        allow_missing_chunks=args.allow_missing_chunks)
    if max(args.n_components) > X.shape[0]:
        raise ValueError(f"--n-components {max(args.n_components)} is larger than the "
                         f"store's {X.shape[0]} rows.")
    selection = _selection(args)
    say(f"Selecting among {len(args.n_components) * len(args.covariance_type)} candidates "
        f"on {args.store} {X.shape} {X.dtype} in {len(X.chunks[0])} chunks")
    started = time.perf_counter()
    with connect(args, log=say), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _computing_on(args.store):
            selection.fit(X)
    seconds = time.perf_counter() - started
    best = selection.best_estimator_
    try:
        best.save(args.model)
        if args.plot:
            import matplotlib

            matplotlib.use("Agg")  # a batch job draws into the file only
            selection.plot(args.plot)
    except OSError as exc:
        raise OutputError(f"cannot write the outputs ({exc.strerror or exc}).") from None
    rows = table_rows(selection)
    summary = {"model": str(args.model), "criterion": args.criterion,
               "best": selection.best_params_, "candidates": rows,
               "n_data_passes": int(selection.n_data_passes_),
               "n_sample_passes": int(selection.n_sample_passes_),
               "bytes_read": int(selection.bytes_read_), "seconds": seconds,
               "plot": args.plot, "warnings": _fit_warnings(caught)}
    if args.json:
        print(json.dumps(summary))
        return 0
    header = ["K", "type", "params", "BIC", "AIC", "train LL", "held-out LL", "rank"]
    print("  ".join(f"{h:>12}" for h in header))
    for row in rows:
        cells = [row["n_components"], row["covariance_type"], row["n_parameters"],
                 *(f"{row[c]:.6g}" if row[c] is not None else "-"
                   for c in ("bic", "aic", "train_log_likelihood", "heldout_log_likelihood")),
                 row["rank"]]
        print("  ".join(f"{c!s:>12}" for c in cells))
    for note in summary["warnings"]:
        print(f"dask-biglearn select: warning: {note}", file=sys.stderr, flush=True)
    say(f"Best: {selection.best_params_} by {args.criterion}; saved {args.model}; "
        f"{selection.n_data_passes_} full-data passes for the whole sweep "
        f"({selection.bytes_read_ / 1e9:.2f} GB read), {seconds:.1f} s")
    return 0
