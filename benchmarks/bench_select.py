"""Choosing K: a sweep that shares every pass, against separate fits (issue 18).

Three parts (``--parts``):

* ``passes``: on a known mixture (``--passes-problem``: 12 components in 8-D, 20000 rows),
  ``GaussianMixtureSelection`` over 10 values of K around the truth, against the largest
  candidate fitted alone and against the 10 candidates fitted one after the other: full-data
  passes, bytes read and wall time, for the default ``BigLearnGaussianMixture``, its scalable
  mode (``sample_size="auto"``) and scikit-learn's default fit on our engine
  (``GaussianMixture(init_params="kmeans")``). Target: the sweep at most 1.5x the passes of
  the largest fit alone.
* ``bic``: does BIC select the true K? Known mixtures (``datasets.random_mixture``,
  separation 3) with 5, 12 and 30 components in 2, 8 and 16 dimensions, and the quality
  suite's well-separated ``d8-k25`` and ``paper-grid25`` grid, ten seeds each; the sweep
  covers 10 values of K around the truth with the default ``BigLearnGaussianMixture``.
  Target: the true K in at least 9 of 10 seeds; the picks are recorded where it is not.
* ``out-of-core``: a Zarr store larger than the memory of a ``LocalCluster``
  (``--ooc-workers`` workers of ``--ooc-memory``); a sweep over 5 values of K with the
  scalable mode, against the largest fit alone: wall time and passes. Target: within 2x.

Run ``python benchmarks/bench_select.py --help``; results go to ``--output`` (JSON).
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

#: name -> (n_features, n_components, n_samples)
BIC_PROBLEMS = {"d2-k5": (2, 5, 5000), "d8-k12": (8, 12, 20000), "d16-k30": (16, 30, 30000),
                "d8-k25": (8, 25, 10000), "paper-grid25": (2, 25, 2000)}


def _around(k, n=10):
    """``n`` consecutive candidates around ``k`` (from 1)."""
    start = max(1, k - n // 2 + 1)
    return list(range(start, start + n))


def _data(name, seed):
    from dask_biglearn import datasets

    if name == "paper-grid25":
        return datasets.make_grid25(2000, random_state=10_000 + seed)[0], 25
    d, k, n = BIC_PROBLEMS[name]
    separation = 2.0 if name == "d8-k25" else 3.0
    truth = datasets.random_mixture(d, k, separation=separation, random_state=seed)
    return datasets.sample_mixture(*truth, n, random_state=(seed, 1))[0], k


def _estimator(kind):
    from dask_biglearn import BigLearnGaussianMixture, GaussianMixture

    return {"biglearn": lambda: BigLearnGaussianMixture(),
            "biglearn-scalable": lambda: BigLearnGaussianMixture(sample_size="auto"),
            "em-kmeans": lambda: GaussianMixture(init_params="kmeans")}[kind]()


def part_passes(report, args):
    from dask_biglearn import GaussianMixtureSelection

    X, k = _data(args.passes_problem, 0)
    candidates = _around(k)
    rows = []
    for kind in ("em-kmeans", "biglearn", "biglearn-scalable"):
        _estimator(kind).set_params(n_components=2).fit(X[:2000])  # imports and JIT first
        t0 = time.perf_counter()
        sweep = GaussianMixtureSelection(candidates, estimator=_estimator(kind),
                                         random_state=0).fit(X)
        sweep_s = time.perf_counter() - t0
        alone = []
        for kk in candidates:
            t0 = time.perf_counter()
            model = _estimator(kind).set_params(n_components=kk, random_state=0).fit(X)
            alone.append((kk, model.n_data_passes_, model.n_sample_passes_,
                          time.perf_counter() - t0))
        largest = alone[-1]
        rows.append(report.add(
            part="passes", estimator=kind, problem=args.passes_problem,
            candidates=candidates, sweep_passes=sweep.n_data_passes_,
            sweep_sample_passes=sweep.n_sample_passes_, sweep_gb=sweep.bytes_read_ / 1e9,
            sweep_s=sweep_s, largest_passes=largest[1], largest_s=largest[3],
            separate_passes=sum(a[1] for a in alone), separate_s=sum(a[3] for a in alone),
            ratio_to_largest=sweep.n_data_passes_ / largest[1],
            selected=sweep.best_params_["n_components"]))
        log(f"  {kind}: sweep {sweep.n_data_passes_} passes {sweep_s:.1f}s; largest alone "
            f"{largest[1]} passes {largest[3]:.1f}s; separate {rows[-1]['separate_passes']} "
            f"passes {rows[-1]['separate_s']:.1f}s")
    print_table(rows, ["estimator", "sweep_passes", "largest_passes", "separate_passes",
                       "ratio_to_largest", "sweep_s", "largest_s", "separate_s", "selected"],
                {"ratio_to_largest": ".2f", "sweep_s": ".1f", "largest_s": ".1f",
                 "separate_s": ".1f"})
    return rows


def _one_bic(name, seed):
    from threadpoolctl import threadpool_limits

    from dask_biglearn import BigLearnGaussianMixture, GaussianMixtureSelection

    X, k = _data(name, seed)
    floor = 1e-5 if name == "paper-grid25" else 1e-6
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        sweep = GaussianMixtureSelection(_around(k), random_state=seed,
                                         estimator=BigLearnGaussianMixture(
                                             covariance_floor=floor)).fit(X)
    table = sweep.cv_results_
    return dict(part="bic", problem=name, seed=seed, true_k=k,
                selected=sweep.best_params_["n_components"],
                correct=sweep.best_params_["n_components"] == k,
                bic=[float(b) for b in table["bic"]],
                candidates=[int(c) for c in table["param_n_components"]],
                passes=sweep.n_data_passes_, seconds=time.perf_counter() - t0)


def part_bic(report, args):
    from _common import run_jobs

    jobs = [(name, seed) for name in args.bic_problems for seed in args.seeds]
    rows = [row for _, row in run_jobs(_one_bic, jobs, args.n_jobs, report)]
    summary = []
    for name in args.bic_problems:
        mine = [r for r in rows if r["problem"] == name]
        summary.append(dict(problem=name, true_k=mine[0]["true_k"],
                            correct=f"{sum(r['correct'] for r in mine)}/{len(mine)}",
                            picks=sorted(r["selected"] for r in mine if not r["correct"]),
                            median_passes=float(np.median([r["passes"] for r in mine])),
                            median_s=float(np.median([r["seconds"] for r in mine]))))
    print_table(summary, ["problem", "true_k", "correct", "picks", "median_passes",
                          "median_s"], {"median_passes": ".0f", "median_s": ".1f"})
    return summary


def part_out_of_core(report, args):
    import dask.array as da
    from distributed import Client, LocalCluster

    from dask_biglearn import BigLearnGaussianMixture, GaussianMixtureSelection, datasets

    d, k = args.ooc_features, args.ooc_components
    truth = datasets.random_mixture(d, k, separation=3.0, random_state=0)
    store_dir = Path(tempfile.mkdtemp(prefix="bench-select-"))
    cluster = LocalCluster(n_workers=args.ooc_workers, threads_per_worker=1,
                           memory_limit=args.ooc_memory, dashboard_address=None)
    try:
        with Client(cluster), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            X, _ = datasets.lazy_mixture(*truth, args.ooc_rows, args.ooc_chunk_rows, seed=0)
            da.to_zarr(X, str(store_dir / "x.zarr"), component="X", mode="w")
            X = da.from_zarr(str(store_dir / "x.zarr"), component="X")
            log(f"  store {X.nbytes / 1e9:.2f} GB, cluster memory {args.ooc_workers} x "
                f"{args.ooc_memory}")
            candidates = list(range(k - 2, k + 3))
            t0 = time.perf_counter()
            sweep = GaussianMixtureSelection(
                candidates, estimator=BigLearnGaussianMixture(sample_size="auto"),
                random_state=0).fit(X)
            sweep_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            largest = BigLearnGaussianMixture(max(candidates), sample_size="auto",
                                              random_state=0).fit(X)
            largest_s = time.perf_counter() - t0
    finally:
        cluster.close()
        shutil.rmtree(store_dir, ignore_errors=True)
    row = report.add(part="out-of-core", store_gb=X.nbytes / 1e9, candidates=candidates,
                     sweep_s=sweep_s, sweep_passes=sweep.n_data_passes_,
                     largest_s=largest_s, largest_passes=largest.n_data_passes_,
                     time_ratio=sweep_s / largest_s,
                     selected=sweep.best_params_["n_components"])
    print_table([row], ["store_gb", "sweep_s", "largest_s", "time_ratio", "sweep_passes",
                        "largest_passes", "selected"],
                {"store_gb": ".2f", "sweep_s": ".0f", "largest_s": ".0f",
                 "time_ratio": ".2f"})
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--parts", nargs="+", default=["passes", "bic", "out-of-core"],
                        choices=["passes", "bic", "out-of-core"])
    parser.add_argument("--passes-problem", default="d8-k12", choices=sorted(BIC_PROBLEMS))
    parser.add_argument("--bic-problems", nargs="+", default=list(BIC_PROBLEMS),
                        choices=sorted(BIC_PROBLEMS))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--ooc-rows", type=positive_count, default=12_000_000)
    parser.add_argument("--ooc-features", type=int, default=16)
    parser.add_argument("--ooc-components", type=int, default=10)
    parser.add_argument("--ooc-chunk-rows", type=positive_count, default=100_000)
    parser.add_argument("--ooc-workers", type=int, default=2)
    parser.add_argument("--ooc-memory", default="600MB")
    parser.add_argument("--output", default="results/bench_select.json")
    args = parser.parse_args(argv)
    report = Report("bench_select", vars(args))
    summary = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if "passes" in args.parts:
            log("passes: a sweep over 10 K against the largest fit alone")
            summary["passes"] = part_passes(report, args)
        if "bic" in args.parts:
            log("bic: the true K, 10 seeds per problem")
            summary["bic"] = part_bic(report, args)
        if "out-of-core" in args.parts:
            log("out-of-core: 5 K on a store larger than the cluster's memory")
            summary["out_of_core"] = part_out_of_core(report, args)
    report.summary(**summary)
    log(f"wrote {report.write(args.output)}")


if __name__ == "__main__":
    main()
