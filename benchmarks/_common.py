"""Shared helpers for the benchmarks: timing, machine facts, tables and JSON output.

Every benchmark measures *ratios inside one run* (the machines are shared and noisy) and
writes a JSON file of this stable shape::

    {"benchmark": str, "version": 1, "created": ISO time, "machine": {...},
     "load_before": [1, 5, 15 min], "load_after": [...], "params": {...}, "rows": [{...}, ...],
     "summary": {...}}
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

SCHEMA_VERSION = 1


def positive_count(text):
    """An integer from ``"1e6"``, ``"100000"`` or ``"1_000"`` (argparse ``type``)."""
    value = float(text.replace("_", ""))
    if value != int(value) or value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(value)


def log(msg):
    """Print ``msg`` with the wall-clock time, flushed (progress of long runs)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def median_time(fn, repeats=5, warmup=1):
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` calls; also all times."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def gemm_peak_gflops(n=2048, repeats=5, dtype=np.float64):
    """Best achieved GFLOP/s of an ``n x n`` matrix product with the current BLAS threads."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((n, n)).astype(dtype)
    B = rng.standard_normal((n, n)).astype(dtype)
    A @ B
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        A @ B
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def machine_info():
    import dask
    import distributed
    import sklearn

    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "dask": dask.__version__,
        "distributed": distributed.__version__,
        "scikit-learn": sklearn.__version__,
    }
    from dask_biglearn.config import compiled_kernels
    from dask_biglearn.kernels._compiled import numba_version

    info["numba"] = numba_version()
    info["compiled_kernels"] = compiled_kernels()
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [
            {k: d.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
            for d in threadpool_info()
        ]
    except ImportError:  # pragma: no cover
        pass
    return info


def load_average():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return None


class Report:
    """Collects rows, prints a table and writes the JSON file."""

    def __init__(self, name, params):
        self.data = {
            "benchmark": name,
            "version": SCHEMA_VERSION,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "machine": machine_info(),
            "load_before": load_average(),
            "params": params,
            "rows": [],
            "summary": {},
        }

    def add(self, **row):
        self.data["rows"].append(row)
        return row

    def summary(self, **items):
        self.data["summary"].update(items)

    def write(self, path):
        self.data["load_after"] = load_average()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.data, indent=2, default=_jsonable) + "\n")
        return path


def _jsonable(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj)}")


def print_table(rows, columns, formats=None, file=None):
    """Print ``rows`` (dicts) as an aligned plain-text table of ``columns``."""
    formats = formats or {}

    def fmt(col, value):
        if value is None:
            return "-"
        f = formats.get(col)
        return format(value, f) if f else str(value)

    cells = [[fmt(c, r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c)
              for i, c in enumerate(columns)]
    line = "  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))
    print(line, file=file)
    print("-" * len(line), file=file)
    for row in cells:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)), file=file)


def make_problem(n_samples, n_features, n_components, seed=0, dtype=np.float64):
    """Data from a random mixture and a plausible parameter state to time passes with.

    Returns ``X, weights, means, covariances`` (the parameters are the true ones, perturbed).
    """
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(n_components, n_features))
    labels = rng.integers(n_components, size=n_samples)
    X = np.empty((n_samples, n_features), dtype=dtype)
    step = 1_000_000
    for start in range(0, n_samples, step):
        stop = min(n_samples, start + step)
        X[start:stop] = centers[labels[start:stop]] + rng.standard_normal((stop - start,
                                                                            n_features))
    weights = np.full(n_components, 1.0 / n_components)
    means = centers + 0.3 * rng.standard_normal(centers.shape)
    covariances = np.broadcast_to(1.2 * np.eye(n_features),
                                  (n_components, n_features, n_features)).copy()
    return X, weights, means, covariances


def run_jobs(run_one, jobs, n_jobs, report):
    """Run ``run_one(*job)`` for every job in ``n_jobs`` processes; yield each result's row
    (added to ``report``) as it completes, with its rank (1-based) among the completed.

    The caller logs its progress; a job that raises stops the run with its error.
    """
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(n_jobs) as pool:
        futures = [pool.submit(run_one, *job) for job in jobs]
        for i, future in enumerate(as_completed(futures), 1):
            yield i, report.add(**future.result())
