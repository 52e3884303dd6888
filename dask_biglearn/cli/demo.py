"""``dask-biglearn demo``: the real job, in small.

On an embedded ``LocalCluster`` of memory-limited workers it writes a Zarr store of a hard
mixture (too big for the workers to persist, so every pass reads it from disk), fits it out
of core in the scalable mode with a progress bar, writes the predictions back to Zarr, and
prints the fit against plain EM from a random start and against scikit-learn on a subsample:
modes found, test KL to the true mixture, full-data passes, time. ``--grid`` runs the paper's
2-D simulation instead (:mod:`.demo_grid`).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

from .cluster import add_cluster_options, connect
from .demo_grid import run_demo as run_grid_demo
from .options import check_cluster_options, path, positive_int, seed
from .outputs import OutputError, check_group_output


def add_demo(sub):
    """Add the ``demo`` subcommand, which calls :func:`run_demo`.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The subcommands of the ``dask-biglearn`` parser (what ``add_subparsers`` returns).
    """
    p = sub.add_parser("demo", help="write, fit out of core, predict and compare, on a "
                                    "LocalCluster (--grid: the paper's 2-D simulation)")
    p.add_argument("--grid", action="store_true",
                   help="the paper's 25-component 2-D simulation instead")
    p.add_argument("--n-samples", type=positive_int, default=8_000_000)
    p.add_argument("--n-features", type=positive_int, default=8)
    p.add_argument("--n-components", type=positive_int, default=12)
    p.add_argument("--chunk-rows", type=positive_int, default=None,
                   help="rows per chunk (default 250000; --grid: 1000)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--em-max-iter", type=positive_int, default=None,
                   help="plain EM iterations from a random start (default 20; --grid: 300)")
    p.add_argument("--subsample", type=positive_int, default=50_000,
                   help="rows scikit-learn fits on (at most the data's)")
    p.add_argument("--workdir", default=None, type=path,
                   help="where the store (data.zarr) and the predictions (predictions.zarr) "
                        "go, neither of which may exist (default: a temporary folder, "
                        "removed at the end)")
    # --grid's options
    p.add_argument("--seeds", type=seed, nargs="+", default=[0, 1, 2], help="(--grid)")
    p.add_argument("--max-iter", type=positive_int, default=300,
                   help="(--grid) outer iterations")
    p.add_argument("--scheduler-address", default=None, type=path,
                   help="(--grid) a running scheduler")
    p.add_argument("--dashboard", default=None, help="(--grid) dashboard address")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress")
    add_cluster_options(p, memory_limit_default="400MB")
    p.set_defaults(func=run_demo)


def _check_workdir(workdir) -> tuple[Path, Path]:
    """``--workdir``'s two outputs, checked before any work: neither may exist (the demo
    never replaces anything), and the folder must be writable."""
    store, predictions = Path(workdir) / "data.zarr", Path(workdir) / "predictions.zarr"
    for out in (store, predictions):
        if out.exists() or out.is_symlink():
            raise OutputError(f"{out} exists: the demo replaces nothing; remove it or choose "
                              f"another --workdir.")
        check_group_output(out, overwrite=False, option="--workdir")
    return store, predictions


def _write_store(X, store):
    """Write ``X`` as the array ``X`` of a new group ``store``, whole or not at all, every
    chunk stored."""
    import dask

    from ..io.zarr_store import staged_group, to_zarr_every_chunk

    with staged_group(store) as url:
        dask.compute(to_zarr_every_chunk(X, url, "X"))


def run_demo(args) -> int:
    """Run ``dask-biglearn demo``: the real job, in small (``--grid``: the paper's simulation).

    Writes a Zarr store of a hard mixture on an embedded cluster of memory-limited workers,
    fits it out of core with ``BigLearnGaussianMixture(sample_size="auto")`` and a progress
    bar, writes the predictions back to Zarr, and prints a table comparing the fit with plain
    EM from a random start and with scikit-learn on a subsample: modes found, test KL to the
    true mixture, full-data passes and time. With ``--grid`` it runs
    :func:`dask_biglearn.cli.demo_grid.run_demo` instead. The cluster options and, with
    ``--workdir``, both outputs are checked before any work.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments of ``demo``; ``em_max_iter`` and ``chunk_rows`` are set to
        their defaults here when not given.

    Returns
    -------
    exit_code : int
        0 (failures raise, and :func:`dask_biglearn.cli.main` reports them).
    """
    check_cluster_options(args)
    if args.grid:
        args.em_max_iter = 300 if args.em_max_iter is None else args.em_max_iter
        args.chunk_rows = 1000 if args.chunk_rows is None else args.chunk_rows
        return run_grid_demo(args)
    args.em_max_iter = 20 if args.em_max_iter is None else args.em_max_iter
    args.chunk_rows = 250_000 if args.chunk_rows is None else args.chunk_rows
    if args.workdir is not None:
        _check_workdir(args.workdir)
    import numpy as np
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    from .. import BigLearnGaussianMixture, GaussianMixture
    from ..datasets import (
        lazy_mixture,
        mixture_log_density,
        modes_found,
        random_mixture,
        sample_mixture,
    )
    from ..engines.dask import DaskEngine
    from ..io.zarr_store import open_zarr_array, write_predictions
    from ..progress import ProgressBar

    started = time.perf_counter()
    k, d, seed = args.n_components, args.n_features, args.seed
    truth = random_mixture(d, k, separation=2.0, random_state=seed)
    X_test, _ = sample_mixture(*truth, 20_000, random_state=(seed, 2))
    log_q = mixture_log_density(X_test, *truth)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="biglearn-demo-"))
    store, predictions = workdir / "data.zarr", workdir / "predictions.zarr"
    rows = []

    def report(name, w, m, c, passes, seconds):
        kl = float(np.mean(log_q - mixture_log_density(X_test, w, m, c)))
        rows.append((name, modes_found(*truth, w, m), kl, passes, seconds))

    try:
        with connect(args) as client, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            X, _ = lazy_mixture(*truth, args.n_samples, args.chunk_rows, seed=seed)
            t0 = time.perf_counter()
            _write_store(X, store)
            memory = sum(w["memory_limit"] for w in client.scheduler_info()["workers"].values())
            print(f"Wrote {store}: {args.n_samples} x {d} float64 ({X.nbytes / 1e6:.0f} MB, "
                  f"the workers hold {memory / 1e6:.0f} MB in all) in "
                  f"{time.perf_counter() - t0:.0f} s; a mixture of {k} Gaussians, "
                  f"separation 2", flush=True)
            Xz = open_zarr_array(store)

            t0 = time.perf_counter()
            bar = ProgressBar()
            ours = BigLearnGaussianMixture(k, sample_size="auto", random_state=seed,
                                           callbacks=[bar]).fit(Xz)
            bar.close()
            report("BigLearnGaussianMixture(sample_size='auto')", ours.weights_, ours.means_,
                   ours.covariances_, ours.n_data_passes_, time.perf_counter() - t0)
            t0 = time.perf_counter()
            write_predictions(ours, Xz, predictions)
            print(f"Predicted labels back to {predictions} in "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)

            t0 = time.perf_counter()
            em = GaussianMixture(k, max_iter=args.em_max_iter, init_params="random",
                                 random_state=seed).fit(Xz)
            report(f"plain EM, random start ({args.em_max_iter} iterations)", em.weights_,
                   em.means_, em.covariances_, em.n_data_passes_, time.perf_counter() - t0)

            t0 = time.perf_counter()
            with DaskEngine(Xz) as engine:
                subsample = engine.take_sample(args.subsample, seed)
                passes = engine.n_data_passes
            sk = SkGaussianMixture(k, n_init=10, random_state=seed).fit(subsample)
            report(f"scikit-learn n_init=10 on {len(subsample)} rows", sk.weights_, sk.means_,
                   sk.covariances_, passes, time.perf_counter() - t0)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    width = max(len(r[0]) for r in rows)
    header = f"{'method':<{width}}  {'modes':>7}  {'test KL':>8}  {'passes':>6}  {'time':>6}"
    print()
    print(header)
    print("-" * len(header))
    for name, found, kl, passes, seconds in rows:
        print(f"{name:<{width}}  {found:>3}/{k:<3}  {kl:>8.4f}  {passes:>6}  {seconds:>5.0f}s")
    print(f"(test KL to the true mixture on 20000 held-out rows; passes: reads of the full "
          f"data) done in {time.perf_counter() - started:.0f} s")
    sys.stdout.flush()
    return 0
