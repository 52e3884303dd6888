"""Fits of a Zarr store larger than the cluster's memory: quality against full-data passes.

A Gaussian mixture (``--n-components`` components in ``--n-features`` dimensions, our own
generator, separation 2: plain EM from a random start gets stuck on it) is written chunk by
chunk to a Zarr store by the workers of a ``LocalCluster`` whose memory (``--n-workers``
times ``--memory-limit``) is smaller than the store, and fitted out of core by:

* ``scalable``: ``BigLearnGaussianMixture(K, sample_size="auto")``, the scalable mode with the
  default exploration (k-means starts, matchings, moves) on the sample;
* ``scalable-em``: ``GaussianMixture(K, init_params="kmeans", n_init=10, sample_size="auto")``;
* ``stochastic``: stepwise EM (:mod:`dask_biglearn.fit.stochastic`) from a k-means start on a
  sample, mini-batches of ``--batch-chunks`` random chunks, ``--stochastic-passes`` passes;
* ``biglearn-capped``: full-data BigLearn-EM with the paper's settings, capped at
  ``--capped-iter`` outer iterations (5 passes each);
* ``em-kmeans``: full-data plain EM from one k-means start (``max_iter=--em-iter``);
* ``sklearn-subsample``: what users do today: scikit-learn's ``GaussianMixture`` (k-means
  start, ``n_init=10``) on a uniform subsample of ``--subsample`` rows gathered to the driver.

Reported per fit: test KL to the true mixture (on held-out rows), modes found, full-data
passes, bytes read, wall time, CPU seconds of the driver and of each worker (and, for the
scalable modes, during the exploration on the sample alone); a PNG of test KL against full-data passes. Run
``python benchmarks/bench_scale.py --help``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from _common import Report, log, positive_count, print_table

METHODS = ["scalable", "scalable-em", "stochastic", "biglearn-capped", "em-kmeans",
           "sklearn-subsample"]


def write_store(client, path, truth, n_samples, chunk_rows, seed):
    import dask.array as da

    from dask_biglearn.datasets import lazy_mixture

    X, _ = lazy_mixture(*truth, n_samples, chunk_rows, seed=seed)
    t0 = time.perf_counter()
    da.to_zarr(X, str(path), component="X", mode="w")
    return time.perf_counter() - t0


class Curve:
    """Test KL after each full-data refinement pass (a callback of the estimators)."""

    def __init__(self, kl_of, first_pass):
        self.kl_of, self.points, self.first_pass = kl_of, [], first_pass

    def __call__(self, state, event):
        if state.phase == "refine-full" and event == "iteration":
            self.points.append((self.first_pass + state.iteration, self.kl_of(state.params)))


class ExplorationCpu:
    """CPU seconds of each worker and of the driver during the exploration on the sample:
    from the first warm-up event to the first full-data refinement event (a callback)."""

    def __init__(self, client):
        self.client, self.marks = client, {}

    def __call__(self, state, event):
        name = {"warm-up": "start", "refine-full": "stop"}.get(state.phase)
        if name and name not in self.marks:
            self.marks[name] = (self.client.run(time.process_time), time.process_time(),
                                time.perf_counter())

    def result(self):
        """``{"explore_s", "explore_driver_cpu_s", "explore_worker_cpu_s": [...]}`` or {}."""
        if len(self.marks) < 2:
            return {}
        (w0, d0, t0), (w1, d1, t1) = self.marks["start"], self.marks["stop"]
        return {"explore_s": t1 - t0, "explore_driver_cpu_s": d1 - d0,
                "explore_worker_cpu_s": [w1[w] - w0[w] for w in sorted(w0)]}


def fit_one(method, X, truth, k, seed, args, kl_of, cpu=None):
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    from dask_biglearn import PAPER_SETTINGS, BigLearnGaussianMixture, GaussianMixture
    from dask_biglearn.engines.dask import DaskEngine
    from dask_biglearn.fit.stochastic import StepwiseSettings, stepwise_em
    from dask_biglearn.initialization import init_sample, kmeans_params

    n = X.shape[0]
    curve = Curve(kl_of, first_pass=2)  # the summary pass and the sample
    if method in ("scalable", "scalable-em"):
        callbacks = [curve] if cpu is None else [curve, cpu]
        model = (BigLearnGaussianMixture(k, sample_size="auto", random_state=seed,
                                         callbacks=callbacks)
                 if method == "scalable" else
                 GaussianMixture(k, init_params="kmeans", n_init=10, sample_size="auto",
                                 random_state=seed, callbacks=callbacks))
        model.fit(X)
        return ((model.weights_, model.means_, model.covariances_), model.n_data_passes_,
                model.bytes_read_, curve.points)
    if method == "biglearn-capped":
        model = BigLearnGaussianMixture(k, **{**PAPER_SETTINGS, "max_iter": args.capped_iter,
                                              "check_every": args.capped_iter},
                                        random_state=seed).fit(X)
        return ((model.weights_, model.means_, model.covariances_), model.n_data_passes_,
                model.bytes_read_, [(model.n_data_passes_, kl_of(model))])
    if method == "em-kmeans":
        curve.first_pass = 2
        model = GaussianMixture(k, init_params="kmeans", max_iter=args.em_iter, tol=1e-6,
                                random_state=seed).fit(X)
        return ((model.weights_, model.means_, model.covariances_), model.n_data_passes_,
                model.bytes_read_, [(model.n_data_passes_, kl_of(model))])
    if method == "stochastic":
        rng = np.random.default_rng(seed)
        with DaskEngine(X) as engine:
            sample = init_sample("kmeans", rng, k, engine)
            params = kmeans_params(rng, k, sample, 1e-6, lloyd_iterations=20)
            chunk = int(X.chunks[0][0])
            steps = int(args.stochastic_passes * n / (args.batch_chunks * chunk))
            points = []
            settings = StepwiseSettings(n_steps=steps, batch_rows=args.batch_chunks * chunk,
                                        block_rows=chunk)

            def record(step, p):
                if step % max(1, steps // 20) == 0 or step == steps:
                    points.append((engine.n_data_passes + engine.rows_read / n, kl_of(p)))

            params = stepwise_em(engine, params, settings, rng, callback=record)
            passes = engine.n_data_passes + engine.rows_read / n
        return ((params.weights, params.means, params.covariances), passes,
                int(passes * X.nbytes), points)
    if method == "sklearn-subsample":
        from dask_biglearn.engines.dask import DaskEngine

        with DaskEngine(X) as engine:
            rows = engine.take_sample(args.subsample, seed)
            passes = engine.n_data_passes
        model = SkGaussianMixture(k, n_init=10, max_iter=1000, random_state=seed).fit(rows)
        return ((model.weights_, model.means_, model.covariances_), passes,
                int(passes * X.nbytes), [(passes, kl_of(model))])
    raise ValueError(method)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--n-samples", type=positive_count, default=10**7)
    parser.add_argument("--n-features", type=int, default=16)
    parser.add_argument("--n-components", type=int, default=25)
    parser.add_argument("--chunk-rows", type=positive_count, default=250_000)
    parser.add_argument("--n-workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="600MB")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=METHODS)
    parser.add_argument("--capped-iter", type=int, default=10)
    parser.add_argument("--em-iter", type=int, default=30)
    parser.add_argument("--stochastic-passes", type=float, default=10.0)
    parser.add_argument("--batch-chunks", type=int, default=4)
    parser.add_argument("--subsample", type=positive_count, default=200_000)
    parser.add_argument("--n-test", type=positive_count, default=20_000)
    parser.add_argument("--store-dir", default=None, help="default: a temporary directory")
    parser.add_argument("--output", default="results/bench_scale.json")
    args = parser.parse_args(argv)

    import dask
    import dask.array as da
    from distributed import Client, LocalCluster

    from dask_biglearn import datasets

    report = Report("bench_scale", vars(args))
    store_dir = Path(args.store_dir or tempfile.mkdtemp(prefix="bench-scale-"))
    rows, curves = [], {}
    cluster = LocalCluster(n_workers=args.n_workers, threads_per_worker=1,
                           memory_limit=args.memory_limit, dashboard_address=None)
    try:
        with Client(cluster) as client, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for seed in args.seeds:
                k, d = args.n_components, args.n_features
                truth = datasets.random_mixture(d, k, separation=2.0, random_state=seed)
                X_test, _ = datasets.sample_mixture(*truth, args.n_test,
                                                    random_state=(seed, 2))
                log_q = datasets.mixture_log_density(X_test, *truth)

                def kl_of(model, truth=truth, X_test=X_test, log_q=log_q):
                    w, m, c = ((model.weights_, model.means_, model.covariances_)
                               if hasattr(model, "means_") else
                               (model.weights, model.means, model.covariances))
                    return float(np.mean(log_q - datasets.mixture_log_density(X_test, w, m, c)))

                path = store_dir / f"seed{seed}.zarr"
                write_s = write_store(client, path, truth, args.n_samples, args.chunk_rows,
                                      seed)
                X = da.from_zarr(str(path), component="X")
                log(f"seed {seed}: wrote {X.nbytes / 1e9:.2f} GB in {write_s:.0f}s "
                    f"({len(X.chunks[0])} chunks)")
                for method in args.methods:
                    removed_before = _removed_workers(client)
                    cpu = ExplorationCpu(client)
                    workers_cpu, driver_cpu = client.run(time.process_time), time.process_time()
                    t0 = time.perf_counter()
                    with dask.config.set({"distributed.scheduler.worker-saturation": 1.0}):
                        (w, m, c), passes, nbytes, points = fit_one(method, X, truth, k, seed,
                                                                    args, kl_of, cpu)
                    seconds = time.perf_counter() - t0
                    driver_cpu = time.process_time() - driver_cpu
                    workers_cpu = {w: t - workers_cpu.get(w, 0.0)
                                   for w, t in client.run(time.process_time).items()}
                    found = datasets.modes_found(*truth, w, m)
                    kl = float(np.mean(log_q - datasets.mixture_log_density(X_test, w, m, c)))
                    row = report.add(seed=seed, method=method, kl=kl, modes=found,
                                     all_modes=found == k, passes=float(passes),
                                     gb_read=nbytes / 1e9, seconds=seconds,
                                     worker_restarts=_removed_workers(client) - removed_before,
                                     driver_cpu_s=driver_cpu,
                                     worker_cpu_s=[workers_cpu[w] for w in sorted(workers_cpu)],
                                     **cpu.result(), curve=points)
                    rows.append(row)
                    curves.setdefault(method, []).append(points)
                    explore = cpu.result()
                    log(f"  {method:18s} KL {kl:.4f}  modes {found}/{k}  passes {passes:.1f} "
                        f" {nbytes / 1e9:.1f} GB  {seconds:.0f}s  CPU s: driver "
                        f"{driver_cpu:.0f}, workers "
                        f"{[round(workers_cpu[w]) for w in sorted(workers_cpu)]}"
                        + (f"; exploration {explore['explore_s']:.0f}s wall, driver "
                           f"{explore['explore_driver_cpu_s']:.0f}, workers "
                           f"{[round(t) for t in explore['explore_worker_cpu_s']]}"
                           if explore else ""))
                shutil.rmtree(path, ignore_errors=True)
    finally:
        cluster.close()
        if args.store_dir is None:
            shutil.rmtree(store_dir, ignore_errors=True)
    summary = _summarise(rows, args)
    report.summary(table=summary, store_gb=args.n_samples * args.n_features * 8 / 1e9)
    print_table(summary, ["method", "seeds", "all_modes", "median_kl", "max_kl",
                          "median_passes", "median_gb", "median_s", "worker_restarts"],
                {"median_kl": ".4f", "max_kl": ".4f", "median_passes": ".1f",
                 "median_gb": ".1f", "median_s": ".0f"})
    path = report.write(args.output)
    png = Path(args.output).with_suffix(".png")
    _plot(curves, png, args)
    log(f"wrote {path} and {png}")


def _removed_workers(client):
    """How many times the scheduler has removed a worker (a restart shows as one)."""
    def count(dask_scheduler):
        return sum(1 for _, msg in dask_scheduler.get_events("all")
                   if isinstance(msg, dict) and msg.get("action") == "remove-worker")
    return client.run_on_scheduler(count)


def _summarise(rows, args):
    out = []
    for method in args.methods:
        mine = [r for r in rows if r["method"] == method]
        if not mine:
            continue
        out.append(dict(method=method, seeds=len(mine),
                        all_modes=f"{sum(r['all_modes'] for r in mine)}/{len(mine)}",
                        median_kl=float(np.median([r["kl"] for r in mine])),
                        max_kl=float(np.max([r["kl"] for r in mine])),
                        median_passes=float(np.median([r["passes"] for r in mine])),
                        median_gb=float(np.median([r["gb_read"] for r in mine])),
                        median_s=float(np.median([r["seconds"] for r in mine])),
                        worker_restarts=int(sum(r["worker_restarts"] for r in mine))))
    return out


def _plot(curves, path, args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (method, runs) in enumerate(curves.items()):
        for j, points in enumerate(runs):
            if not points:
                continue
            x, y = zip(*points, strict=True)
            ax.plot(x, np.maximum(y, 1e-5), "o-" if len(x) > 1 else "o", color=f"C{i}",
                    alpha=0.7, ms=3, label=method if j == 0 else None)
    ax.set_xlabel("full-data passes")
    ax.set_ylabel("test KL to the true mixture")
    ax.set_yscale("log")
    ax.set_title(f"{args.n_samples:.0e} x {args.n_features}, K={args.n_components}, "
                 f"{args.n_workers} workers x {args.memory_limit}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
