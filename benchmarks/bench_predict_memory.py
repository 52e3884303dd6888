"""Memory of scoring a fitted mixture: in process against scikit-learn, and on small workers.

Two parts (``--parts``), on a 12-component mixture of 16 float32 columns
(``datasets.random_mixture``, separation 3):

* ``in-process``: ``predict``, ``predict_proba`` and ``score_samples`` of a block of
  ``--rows`` rows (250k and 500k), by our ``GaussianMixture`` and by scikit-learn's with the
  same parameters, each in a fresh process: the peak of the memory NumPy allocates
  (``tracemalloc``) and the peak growth of the process's resident memory (``VmHWM`` after
  ``clear_refs``), both as multiples of the block, and the time.
* ``cluster``: the new user's run (review of 2026-12-07, task 2): a 1,000,000-row Zarr store in
  250k-row chunks on a ``LocalCluster`` of ``--n-workers`` single-threaded workers of
  ``--memory-limit``; ``BigLearnGaussianMixture(12, sample_size="auto", random_state=0)``
  fitted on it; then ``predict(X).to_zarr``, ``score_samples(X).to_zarr``, ``score(X)`` and
  ``predict_proba(X).to_zarr`` on the store's chunks and on ``rechunk((500_000, 16))``, after
  the same graph with a kernel that scores nothing (``read and write only``: what Zarr and
  Dask cost). For each: the time, each worker's resident memory before and its
  peak during the call, and whatever the scheduler recorded of paused, restarted or lost
  workers. The workers' memory is also taken at the start, after the fit, after
  ``gc.collect`` and after ``malloc_trim``, with the modules that explain it. The user's
  script imported the estimator and zarr at its top, and a ``LocalCluster``'s workers are
  spawned and import the main module: ``--worker-imports`` gives the workers those modules
  before anything runs (``--worker-imports`` with no module: workers as a bare script starts
  them).

Run ``python benchmarks/bench_predict_memory.py --help``; results go to ``--output`` (JSON).
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from _common import Report, log, positive_count, print_table
from distributed import WorkerPlugin

N_FEATURES = 16
N_COMPONENTS = 12
METHODS = ("predict", "predict_proba", "score_samples")


# ---- process memory ------------------------------------------------------------------------

def _status_mib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss():
    """Reset this process's peak resident memory (``VmHWM``) to its current one (Linux)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
    return _status_mib("VmRSS")


def peak_rss():
    """This process's peak resident memory since the last reset, MiB."""
    return _status_mib("VmHWM")


def rss():
    """This process's resident memory, MiB."""
    return _status_mib("VmRSS")


def rss_after_gc():
    import gc

    gc.collect()
    return rss()


def rss_after_trim():
    import ctypes

    ctypes.CDLL("libc.so.6").malloc_trim(0)
    return rss()


def loaded_modules():
    """What the worker has imported that weighs: numba (and its LLVM), scikit-learn, the
    package's kernels."""
    import sys

    return {name: name in sys.modules
            for name in ("numba", "llvmlite.binding", "sklearn", "scipy",
                         "dask_biglearn.kernels.features", "dask_biglearn.estimator")}


# ---- data and model ------------------------------------------------------------------------

def make_data(n_rows, seed=0):
    from dask_biglearn import datasets

    truth = datasets.random_mixture(N_FEATURES, N_COMPONENTS, separation=3.0, random_state=0)
    X, labels = datasets.sample_mixture(*truth, n_rows, random_state=seed)
    return X.astype(np.float32), labels


def fit_reference_model(path):
    """Our ``GaussianMixture`` fitted on 20000 rows, saved to ``path``."""
    from dask_biglearn import GaussianMixture

    X, _ = make_data(20_000, seed=1)
    GaussianMixture(N_COMPONENTS, random_state=0).fit(X).save(path)


def sklearn_twin(model):
    """scikit-learn's ``GaussianMixture`` with ``model``'s parameters."""
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    twin = SkGaussianMixture(model.n_components, covariance_type=model.covariance_type)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_",
                 "n_features_in_", "converged_", "n_iter_", "lower_bound_"):
        setattr(twin, name, getattr(model, name))
    return twin


def measure_in_process(model_path, library, method, n_rows):
    """One measurement (run it in a fresh process: :func:`in_fresh_process`)."""
    import tracemalloc

    import dask_biglearn

    model = dask_biglearn.load(model_path)
    if library == "scikit-learn":
        model = sklearn_twin(model)
    X, _ = make_data(n_rows, seed=2)
    call = getattr(model, method)
    call(X[:1000])  # first-call costs aside
    before = reset_peak_rss()
    started = time.perf_counter()
    result = call(X)
    seconds = time.perf_counter() - started
    rss_growth = peak_rss() - before
    del result
    tracemalloc.start()
    result = call(X)
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    mib = 2**20
    return dict(rows=n_rows, library=library, method=method, seconds=seconds,
                block_mib=X.nbytes / mib, output_mib=result.nbytes / mib,
                traced_peak_mib=traced / mib, traced_peak_x_block=traced / X.nbytes,
                rss_growth_mib=rss_growth, rss_growth_x_block=rss_growth * mib / X.nbytes)


def in_fresh_process(fn, *args):
    """``fn(*args)`` in a process of its own (spawned: nothing inherited from this one)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def run_in_process(args, report, folder):
    model_path = folder / "model.dbl"
    fit_reference_model(model_path)
    jobs = [(str(model_path), library, method, rows) for rows in args.rows
            for method in METHODS for library in ("dask_biglearn", "scikit-learn")]
    rows = []
    for i, job in enumerate(jobs, 1):
        row = report.add(**in_fresh_process(measure_in_process, *job))
        rows.append(row)
        log(f"[{i}/{len(jobs)}] {row['rows']} rows, {row['library']:13s} {row['method']:13s} "
            f"traced {row['traced_peak_x_block']:.2f}x, RSS +{row['rss_growth_mib']:.0f} MiB "
            f"({row['rss_growth_x_block']:.2f}x), {row['seconds']:.2f} s")
    rows.sort(key=lambda r: (r["rows"], r["method"], r["library"]))
    print_table(rows, ["rows", "method", "library", "block_mib", "output_mib",
                       "traced_peak_x_block", "rss_growth_mib", "rss_growth_x_block",
                       "seconds"],
                {"block_mib": ".1f", "output_mib": ".1f", "traced_peak_x_block": ".2f",
                 "rss_growth_mib": ".0f", "rss_growth_x_block": ".2f", "seconds": ".2f"})
    return rows


# ---- the cluster run -----------------------------------------------------------------------

def memory_incidents(dask_scheduler):
    """Every worker the scheduler saw paused, restarted for memory, or lost."""
    found = []
    for topic, events in dask_scheduler.get_events().items():
        for _, msg in events:
            if not isinstance(msg, dict):
                continue
            if topic == "worker-restart-memory":
                found.append(("restarted", msg.get("worker")))
            elif msg.get("action") == "remove-worker" and topic != "all":
                found.append(("removed", msg.get("worker", topic)))
            elif (msg.get("action") == "worker-status-change"
                  and msg.get("status") == "paused"):
                found.append(("paused", topic))
    return sorted(found)


def score_on_cluster(model, method, X, out):
    """One of the measured calls: ``score(X)``, or a method's result written to ``out``."""
    if method == "score":
        return model.score(X)
    if method == "read and write only":
        X.map_blocks(no_labels, drop_axis=1, dtype=np.intp).to_zarr(str(out), overwrite=True)
    else:
        getattr(model, method)(X).to_zarr(str(out), overwrite=True)
    return None


def no_labels(block):
    """A label of 0 for every row: what reading and writing the chunks cost, without scoring."""
    return np.zeros(len(block), dtype=np.intp)


def _per_worker(client, fn):
    """``fn()`` on every worker that answers (a worker may be restarting), by port."""
    return {address.rsplit(":", 1)[-1]: round(value, 1)
            for address, value in client.run(fn, on_error="ignore").items()}


class ImportModules(WorkerPlugin):
    """A worker plugin: import ``modules`` in every worker, restarted ones included (as a
    spawned worker imports the modules its script imports at its top)."""

    def __init__(self, modules):
        self.modules = list(modules)

    def setup(self, worker):
        for module in self.modules:
            importlib.import_module(module)


def run_cluster(args, report, folder):
    import dask.array as da
    import zarr
    from distributed import Client, KilledWorker, LocalCluster

    from dask_biglearn import BigLearnGaussianMixture

    X_np, _ = make_data(args.cluster_rows, seed=0)
    store = folder / "data.zarr"
    z = zarr.create_array(store=str(store), shape=X_np.shape, chunks=(250_000, N_FEATURES),
                          dtype="float32")
    z[:] = X_np
    rows, memory = [], {}
    with LocalCluster(n_workers=args.n_workers, threads_per_worker=1,
                      memory_limit=args.memory_limit, dashboard_address=None,
                      worker_dashboard_address=None) as cluster, Client(cluster) as client:
        memory["start"] = _per_worker(client, rss)
        client.register_plugin(ImportModules(args.worker_imports), name="script-imports")
        memory["after the script's imports"] = _per_worker(client, rss)
        started = time.perf_counter()
        X = da.from_zarr(str(store))
        model = BigLearnGaussianMixture(N_COMPONENTS, sample_size="auto", random_state=0).fit(X)
        fit_seconds = time.perf_counter() - started
        time.sleep(1.0)  # the engine's release of the persisted data is asynchronous
        memory["after fit"] = _per_worker(client, rss)
        memory["after gc.collect"] = _per_worker(client, rss_after_gc)
        memory["after malloc_trim"] = _per_worker(client, rss_after_trim)
        modules = next(iter(client.run(loaded_modules).values()))
        log(f"fit {fit_seconds:.1f} s, {model.n_data_passes_} passes; worker memory "
            f"{memory}; loaded {modules}")
        expected = {"predict": model.predict(X_np), "score": model.score(X_np)}
        lost = False
        pool = ThreadPoolExecutor(1)  # a call that hangs (workers dying) is left behind
        for chunk_rows in (250_000, 500_000):
            Xc = X if chunk_rows == 250_000 else X.rechunk((chunk_rows, N_FEATURES))
            for method in ("read and write only", "predict", "score_samples", "score",
                           "predict_proba"):
                if not lost:
                    try:
                        client.wait_for_workers(args.n_workers, timeout=60)
                    except TimeoutError:  # the cluster did not recover from a lost worker
                        lost = True
                if lost:
                    log(f"{chunk_rows} rows/chunk {method}: not run, the cluster is broken")
                    rows.append(report.add(chunk_rows=chunk_rows, method=method,
                                           error="not run: the cluster is broken"))
                    continue
                incidents = client.run_on_scheduler(memory_incidents)
                before = _per_worker(client, reset_peak_rss)
                out = folder / f"{method}-{chunk_rows}.zarr"
                started = time.perf_counter()
                error = value = None
                call = pool.submit(score_on_cluster, model, method, Xc, out)
                try:
                    value = call.result(timeout=args.call_timeout)
                except (KilledWorker, OSError, TimeoutError) as exc:  # a result here
                    error = f"{type(exc).__name__}: {str(exc)[:120]}"
                    lost = lost or not call.done()  # still stuck: the cluster is not usable
                seconds = time.perf_counter() - started
                peak = _per_worker(client, peak_rss)
                new = sorted((Counter(client.run_on_scheduler(memory_incidents))
                              - Counter(incidents)).elements())
                equal = None
                if error is None and method == "predict":
                    equal = bool(np.array_equal(np.asarray(zarr.open_array(str(out))),
                                                expected["predict"]))
                elif error is None and method == "score":
                    equal = bool(abs(value - expected["score"]) <= 1e-12 * abs(value))
                row = report.add(chunk_rows=chunk_rows, method=method, seconds=seconds,
                                 rss_before_mib=before, peak_rss_mib=peak,
                                 max_peak_mib=max(peak.values(), default=None),
                                 incidents=new, error=error, equals_in_process=equal)
                rows.append(row)
                log(f"{chunk_rows} rows/chunk {method:14s} {seconds:5.1f} s, peak {peak} "
                    f"MiB, incidents {new or 'none'}{', ' + error if error else ''}")
        pool.shutdown(wait=False, cancel_futures=True)
    report.summary(worker_memory=memory, worker_modules=modules, fit_seconds=fit_seconds,
                   fit_passes=model.n_data_passes_)
    print_table(rows, ["chunk_rows", "method", "seconds", "max_peak_mib", "incidents",
                       "error", "equals_in_process"], {"seconds": ".1f", "max_peak_mib": ".0f"})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", default=["in-process", "cluster"],
                        choices=["in-process", "cluster"])
    parser.add_argument("--rows", nargs="+", type=positive_count, default=[250_000, 500_000])
    parser.add_argument("--cluster-rows", type=positive_count, default=1_000_000)
    parser.add_argument("--n-workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="500MB")
    parser.add_argument("--call-timeout", type=float, default=180.0,
                        help="seconds after which a call on the cluster counts as hung")
    parser.add_argument("--worker-imports", nargs="*",
                        default=["dask_biglearn.estimator", "dask.array", "zarr"])
    parser.add_argument("--output", default="results/bench_predict_memory.json")
    args = parser.parse_args(argv)

    import dask_biglearn

    report = Report("bench_predict_memory", {**vars(args), "package": dask_biglearn.__file__})
    folder = Path(tempfile.mkdtemp(prefix="bench-predict-memory-"))
    try:
        if "in-process" in args.parts:
            report.summary(in_process=run_in_process(args, report, folder))
        if "cluster" in args.parts:
            report.summary(cluster=run_cluster(args, report, folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    path = report.write(args.output)
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
