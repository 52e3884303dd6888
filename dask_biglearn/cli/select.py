"""``dask-biglearn select``: choose the number of components of a Zarr array's mixture in one
sweep that shares every read of the data, print the table, save the best model (and draw the
criterion against K), both files or neither."""

from __future__ import annotations

import argparse
import math

from .cluster import add_cluster_options
from .commands import missing_fields, missing_note
from .options import (
    UsageError,
    add_overwrite_option,
    add_store_options,
    check_cluster_options,
    covariance_types,
    fraction,
    path,
    positive_int,
    sample_size,
    say,
    seed,
    storage_options,
)
from .outputs import (
    Output,
    check_file_output,
    check_plot_output,
    refuse_outputs_in_store,
    report,
    run_fit,
    same_path,
    write_all_or_nothing,
)

__all__ = ["MAX_CANDIDATES", "add_select", "parse_components", "select", "table_rows"]

COLUMNS = ("n_components", "covariance_type", "n_parameters", "bic", "aic",
           "train_log_likelihood", "heldout_log_likelihood", "rank")

#: The most numbers of components one sweep tries (each candidate is a fit of its own, run
#: side by side with the others).
MAX_CANDIDATES = 1000


def _candidates(text: str) -> range | list[int]:
    """The candidates ``text`` gives: a ``range`` for ``START:STOP[:STEP]`` (never built as a
    list here), a sorted list of the distinct values of a comma list."""
    if ":" in text:
        parts = [int(p) for p in text.split(":")]
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] < 1):
            raise ValueError
        start, stop, step = (*parts, 1) if len(parts) == 2 else parts
        return range(start, stop + 1, step)
    return sorted({int(p) for p in text.split(",")})


def parse_components(text: str) -> list[int]:
    """``--n-components``: ``START:STOP[:STEP]`` (STOP included) or a comma list.

    A range is reasoned on as a ``range`` (its length and its ends) and refused when it
    gives no candidate, one below 1, or more than :data:`MAX_CANDIDATES`, before its list is
    built: ``1:1000000000000`` costs nothing to refuse.

    Parameters
    ----------
    text : str

    Returns
    -------
    list of int
        The candidate numbers of components, sorted, each at least 1.

    Raises
    ------
    argparse.ArgumentTypeError
        For anything else (argparse prints its message).
    """
    try:
        candidates = _candidates(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expects START:STOP[:STEP] or a comma list of integers, got {text!r}") from None
    if len(candidates) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} gives no candidate (is START above "
                                         f"STOP?)")
    if candidates[0] < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a mixture has at least 1 component, "
                                         f"got {candidates[0]}")
    if len(candidates) > MAX_CANDIDATES:
        raise argparse.ArgumentTypeError(f"{text!r} gives {len(candidates)} candidates; one "
                                         f"sweep tries at most {MAX_CANDIDATES} (use a STEP)")
    return list(candidates)


def add_select(sub):
    """Add the ``select`` subcommand, which calls :func:`select`.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The subcommands of the ``dask-biglearn`` parser (what ``add_subparsers`` returns).
    """
    from ..selection import CRITERIA

    p = sub.add_parser("select", help="choose the number of components in one sweep, save "
                                      "the best model")
    add_store_options(p)
    p.add_argument("--n-components", type=parse_components, required=True,
                   metavar="START:STOP[:STEP]|K1,K2,...",
                   help=f"the candidates (STOP included), e.g. 5:50:5; at most "
                        f"{MAX_CANDIDATES}")
    p.add_argument("--covariance-type", type=covariance_types, default=("full",),
                   metavar="TYPES", help="comma list of candidate types, e.g. full,diag")
    p.add_argument("--criterion", choices=CRITERIA, default="bic")
    p.add_argument("--heldout-fraction", type=fraction, default=None,
                   help="rows held out (by global index and seed; default 0.1 for "
                        "--criterion heldout, else 0)")
    p.add_argument("--method", choices=["biglearn", "em"], default="biglearn")
    p.add_argument("--n-init", type=positive_int, default=None)
    p.add_argument("--sample-size", type=sample_size, default=None,
                   help="scalable mode: one sample (rows, a fraction or auto) for all "
                        "candidates")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--model", required=True, metavar="BEST", type=path,
                   help="where the best model goes (must not exist, unless --overwrite)")
    p.add_argument("--plot", default=None, metavar="FILE.png", type=path,
                   help="draw the criterion and the log-likelihoods against K (the extension "
                        "names the format: png, pdf, svg, ...)")
    p.add_argument("--quiet", action="store_true", help="no log")
    p.add_argument("--json", action="store_true", help="print a JSON summary (only)")
    add_overwrite_option(p, "the model and the plot")
    add_cluster_options(p)
    p.set_defaults(func=select)


def _check_select_options(args) -> None:
    """Options that do not go together, refused before any work (exit code 2)."""
    if args.criterion == "heldout" and args.heldout_fraction == 0:
        raise UsageError("--criterion heldout needs held-out rows: give a --heldout-fraction "
                         "above 0 (default 0.1).")


def _check_select_outputs(args) -> str | None:
    """The model and the plot, checked before any work starts; the plot's format."""
    if args.plot and same_path(args.plot, args.model):
        raise UsageError(f"--model and --plot name the same file ({args.model}).")
    check_file_output(args.model, "--model", args.overwrite)
    kind = check_plot_output(args.plot, args.overwrite) if args.plot else None
    refuse_outputs_in_store(args.store, {"--model": args.model, "--plot": args.plot})
    return kind


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


def _plot_writer(selection):
    """``write(path)``: draw the selection into ``path`` (its extension names the format)."""

    def write(where):
        import matplotlib.pyplot as plt

        plt.close(selection.plot(where))

    return write


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
            row[name] = None if math.isnan(value) else value
        rows.append(row)
    return rows


def select(args) -> int:
    """Choose the number of components of a Zarr array's mixture (``select``).

    Every candidate of ``--n-components`` (and ``--covariance-type``) is fitted in one sweep
    (:class:`~dask_biglearn.GaussianMixtureSelection`: the candidates share every read of the
    data); the table is printed (or, with ``--json``, a JSON summary), the best model saved to
    ``--model`` and, with ``--plot``, the criterion drawn against K. Both files are checked
    before the sweep (the plot's format too) and written both or neither.

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

    check_cluster_options(args)
    _check_select_options(args)
    _check_select_outputs(args)
    options = storage_options(args.storage_option)
    X = open_zarr_array(args.store, args.array, options,
                        allow_missing_chunks=args.allow_missing_chunks)
    if args.n_components[-1] > X.shape[0]:
        raise ValueError(f"--n-components {args.n_components[-1]} is larger than the "
                         f"store's {X.shape[0]} rows.")
    selection = _selection(args)
    say(args)(f"Selecting among {len(args.n_components) * len(args.covariance_type)} "
              f"candidates on {args.store} {X.shape} {X.dtype} in {len(X.chunks[0])} chunks")
    run = run_fit(args, lambda: selection.fit(X), arrays=[(args.store, args.array, options)])
    outputs = [Output(args.model, "model", selection.best_estimator_.save, atomic=True)]
    if args.plot:
        outputs.append(Output(args.plot, "plot", _plot_writer(selection)))
    write_all_or_nothing(outputs)
    rows = table_rows(selection)
    best = selection.best_estimator_
    summary = {"model": str(args.model), "criterion": args.criterion,
               "best": selection.best_params_, **missing_fields(best), "candidates": rows,
               "n_data_passes": int(selection.n_data_passes_),
               "n_sample_passes": int(selection.n_sample_passes_),
               "bytes_read": int(selection.bytes_read_), "seconds": run.seconds,
               "plot": args.plot, "warnings": run.warnings}
    note = missing_note(best, int(X.shape[0]))
    lines = [f"{note[0].upper()}{note[1:]}."] if note else []  # the first line says it
    report(args, summary, lines=[*lines, *_table(rows)], closing=(
        f"Best: {selection.best_params_} by {args.criterion}; saved {args.model}"
        f"{f' and {args.plot}' if args.plot else ''}; {selection.n_data_passes_} full-data "
        f"passes for the whole sweep ({selection.bytes_read_ / 1e9:.2f} GB read), "
        f"{run.seconds:.1f} s"))
    return 0


def _table(rows) -> list[str]:
    """The candidates' table, one line per candidate under a header."""
    header = ["K", "type", "params", "BIC", "AIC", "train LL", "held-out LL", "rank"]
    lines = ["  ".join(f"{h:>12}" for h in header)]
    for row in rows:
        cells = [row["n_components"], row["covariance_type"], row["n_parameters"],
                 *(f"{row[c]:.6g}" if row[c] is not None else "-"
                   for c in ("bic", "aic", "train_log_likelihood", "heldout_log_likelihood")),
                 row["rank"]]
        lines.append("  ".join(f"{c!s:>12}" for c in cells))
    return lines
