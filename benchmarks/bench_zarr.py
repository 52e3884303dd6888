"""Pass throughput from a Zarr store against the same data persisted on the workers.

Writes ``--n-samples x --n-features`` float64 rows (a K-component mixture) to a Zarr store
with ``--n-workers`` single-threaded workers, then times one EM pass (K components, the
joint matching) reading the store every pass (``persist=False``, out of core) and over the
same array persisted on the workers (tasks and, for small data, actors): the median of
``--repeats`` passes each, in rows per second. Run ``python benchmarks/bench_zarr.py --help``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import Report, log, positive_count, print_table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-samples", type=positive_count, default=4_000_000)
    parser.add_argument("--n-features", type=int, default=16)
    parser.add_argument("--n-components", type=int, default=25)
    parser.add_argument("--chunk-rows", type=positive_count, default=250_000)
    parser.add_argument("--n-workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="3GB")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", default="results/bench_zarr.json")
    args = parser.parse_args(argv)

    import dask.array as da
    from distributed import Client, LocalCluster

    from dask_biglearn import datasets
    from dask_biglearn.engines.dask import DaskEngine
    from dask_biglearn.fit import em_update
    from dask_biglearn.initialization import random_params
    from dask_biglearn.projection import Projection

    report = Report("bench_zarr", vars(args))
    truth = datasets.random_mixture(args.n_features, args.n_components, random_state=0)
    folder = Path(tempfile.mkdtemp(prefix="bench-zarr-"))
    rows = []
    try:
        with LocalCluster(n_workers=args.n_workers, threads_per_worker=1,
                          memory_limit=args.memory_limit, dashboard_address=None) as cluster, \
                Client(cluster):
            X, _ = datasets.lazy_mixture(*truth, args.n_samples, args.chunk_rows, seed=0)
            da.to_zarr(X, str(folder / "X.zarr"), mode="w")
            Xz = da.from_zarr(str(folder / "X.zarr"))
            for route, kwargs in [("zarr, every pass", {"persist": False}),
                                  ("persisted, tasks", {"actors": False}),
                                  ("persisted, actors", {"actors": True})]:
                with DaskEngine(Xz, **kwargs) as engine:
                    params = random_params(np.random.default_rng(0), args.n_components,
                                           engine.summaries.min, engine.summaries.max)
                    times = []
                    for _ in range(args.repeats + 1):
                        t0 = time.perf_counter()
                        em_update(engine, params, Projection.identity(),
                                  covariance_floor=1e-6, weight_concentration=0.0)
                        times.append(time.perf_counter() - t0)
                    seconds = float(np.median(times[1:]))
                    row = report.add(route=route, engine_route=engine.route,
                                     seconds_per_pass=seconds,
                                     rows_per_s=args.n_samples / seconds,
                                     gb=Xz.nbytes / 1e9)
                    rows.append(row)
                    log(f"{route:20s} {seconds:.2f} s per pass, "
                        f"{args.n_samples / seconds / 1e6:.1f} M rows/s")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    base = rows[0]["seconds_per_pass"]
    for row in rows:
        row["vs_zarr"] = base / row["seconds_per_pass"]
    report.summary(table=rows)
    print_table(rows, ["route", "engine_route", "seconds_per_pass", "rows_per_s", "vs_zarr"],
                {"seconds_per_pass": ".2f", "rows_per_s": ".3g", "vs_zarr": ".2f"})
    log(f"wrote {report.write(args.output)}")


if __name__ == "__main__":
    main()
