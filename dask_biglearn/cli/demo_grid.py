"""``dask-biglearn demo --grid``: the paper's simulation on a LocalCluster.

The demo fits the paper's 25-component 2-D simulation on an embedded ``LocalCluster`` (the
commands' own, :func:`~dask_biglearn.cli.cluster.connect`), with the training data as a chunked
Dask array persisted on the workers, and prints plain EM against BigLearn-EM. The seeds run
concurrently from driver threads, so both workers stay busy; a Ctrl-C or SIGTERM stops every
fit at its next iteration, so the command ends promptly.
"""

from __future__ import annotations

import threading
import time
import warnings
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

from .cluster import connect

__all__ = ["run_demo"]

#: Seconds between two looks of the main thread at the fits (it must return to Python
#: often, for a signal's handler to run).
_POLL = 0.2


class _Stopped(Exception):
    """The command was interrupted: the fits of the other threads stop."""


def _stop_when(stop: threading.Event):
    """A fit callback that ends the fit (by raising) once ``stop`` is set."""

    def callback(state, event):
        if stop.is_set():
            raise _Stopped("stopped")
        return False

    return callback


def _fit_seed(seed, X_train, X_test, args, stop):
    import numpy as np
    from sklearn.exceptions import ConvergenceWarning

    from .. import PAPER_SETTINGS, BigLearnGaussianMixture, GaussianMixture
    from ..datasets import count_modes_found, grid25_log_density, grid25_params

    _, true_means, _ = grid25_params()
    log_q = grid25_log_density(X_test)
    row = {"seed": seed}
    callbacks = [_stop_when(stop)]
    models = {
        "em": GaussianMixture(25, max_iter=args.em_max_iter, tol=1e-6, covariance_floor=1e-5,
                              init_params="random", random_state=seed, callbacks=callbacks),
        # The paper's showcase: its algorithm from the same random start as plain EM.
        "biglearn": BigLearnGaussianMixture(25, **{**PAPER_SETTINGS,
                                                  "weight_concentration": 1 / np.sqrt(25)},
                                            max_iter=args.max_iter, covariance_floor=1e-5,
                                            random_state=seed, callbacks=callbacks),
    }
    for name, model in models.items():
        if stop.is_set():
            raise _Stopped("stopped")
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X_train)
        row[f"{name}_seconds"] = time.perf_counter() - start
        row[f"{name}_kl"] = float(np.mean(log_q - model.score_samples(X_test)))
        row[f"{name}_modes"] = count_modes_found(true_means, model.means_, model.weights_)
    return row


def _fit_all(jobs, args) -> list[dict]:
    """Fit every seed's job in a thread of its own; on any exception of the main thread
    (Ctrl-C, SIGTERM) or of a fit, the other fits stop at their next iteration and are
    waited for."""
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=len(jobs))
    try:
        futures = [pool.submit(_fit_seed, *job, args, stop) for job in jobs]
        while not all(f.done() for f in futures):
            wait(futures, timeout=_POLL, return_when=FIRST_EXCEPTION)
            if any(f.done() and f.exception() is not None for f in futures):
                break
        return [f.result() for f in futures]
    finally:  # done, failed or interrupted: a fit still running stops at its next iteration
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)


def run_demo(args) -> int:
    """Run ``dask-biglearn demo --grid``: plain EM against BigLearn-EM on the paper's grid.

    For each seed, the 25-component 2-D training data is persisted on the workers of an
    embedded ``LocalCluster`` (or of the scheduler at ``--scheduler-address``) and both
    methods are fitted from the same random start; the seeds run concurrently from driver
    threads. Prints, per seed, each method's test KL to the true mixture and the modes it
    found.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments of ``demo --grid``, with ``em_max_iter`` and ``chunk_rows``
        already set.

    Returns
    -------
    exit_code : int
        0 (failures raise, and :func:`dask_biglearn.cli.main` reports them).
    """
    import dask.array as da

    from ..datasets import make_grid25

    t0 = time.perf_counter()
    if args.scheduler_address:
        print(f"Connecting to the Dask scheduler at {args.scheduler_address}...", flush=True)
        args.scheduler = args.scheduler_address
    if args.dashboard:
        args.dashboard_address = args.dashboard
    with connect(args, log=lambda line: print(line, flush=True)):
        jobs = []
        for seed in args.seeds:
            X, _ = make_grid25(2000, random_state=10_000 + seed)
            X_test, _ = make_grid25(5000, random_state=20_000 + seed)
            X_train = da.from_array(X, chunks=(args.chunk_rows, 2)).persist()
            jobs.append((seed, X_train, X_test))
        print(f"Fitting plain EM and BigLearn-EM ({args.max_iter} outer iterations x 5 passes) "
              f"on seeds {list(args.seeds)}; data: 2000 x 2 in chunks of {args.chunk_rows} "
              f"rows.", flush=True)
        rows = _fit_all(jobs, args)
    elapsed = time.perf_counter() - t0
    header = f"{'seed':>4}  {'plain EM KL':>11} {'modes':>5}  {'BigLearn KL':>11} {'modes':>5}"
    print()
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['seed']:>4}  {r['em_kl']:>11.4f} {r['em_modes']:>5}  "
              f"{r['biglearn_kl']:>11.4f} {r['biglearn_modes']:>5}")
    em_all = sum(r["em_modes"] == 25 for r in rows)
    bl_all = sum(r["biglearn_modes"] == 25 for r in rows)
    print("-" * len(header))
    print(f"all 25 modes found: plain EM {em_all}/{len(rows)}, BigLearn-EM {bl_all}/{len(rows)}")
    print("(test KL(q || p) of the fitted mixture; a mode is found when a component of weight "
          "> 0.02 lies within 0.5 of it)")
    print(f"done in {elapsed:.0f} s")
    return 0
