"""Seconds per EM iteration: ``pyspark.ml.clustering.GaussianMixture`` against ours.

Same data (``make_problem(N, D, K, seed=0)``, float64), same K, two cores on each side:

* **ours**: ``DaskEngine`` on ``LocalCluster(n_workers=2, threads_per_worker=1,
  processes=True)`` with the data persisted on the workers in ``--chunks`` row chunks.  One
  iteration is one full joint EM update, driver to driver::

      em_update(DaskEngine(Xd), MixtureParams(w, m, c), Projection.identity(),
                covariance_floor=1e-6, weight_concentration=0.0)

  (E-step coefficients and M-step on the driver, one pass with a tree reduction on the
  cluster); the median of ``--repeats`` calls after ``--warmup`` untimed ones.
* **Spark**: ``GaussianMixture(k=K, tol=0.0, seed=...)`` in ``local[2]``.  It has no warm start
  and initialises itself from a sample of the data, so the time of one iteration is the slope
  between two fits with ``maxIter=a`` and ``maxIter=b`` (``--iters a b``)::

      seconds per iteration = (t_b - t_a) / (b - a)

  which removes the fixed costs of a fit (initialisation, the final ``transform`` of the
  summary).  ``tol=0.0`` keeps it from stopping early (its loop runs while the change of the
  log-likelihood is ``> tol``); the iterations each fit made (``summary.numIter``) are
  recorded and checked.  Each fit is timed once (``--spark-repeats``: the median of several),
  after one untimed ``maxIter=1`` fit that warms up the JVM.
  The data goes to Spark through a Parquet file written with pyarrow (one column per feature,
  no pandas; without pyarrow a CSV file with ``%.17g``, which round-trips float64 exactly),
  read back, ``repartition(--chunks)``, ``VectorAssembler`` into one vector column, then
  ``cache()`` and ``count()`` so that every timed fit reads the in-memory cached DataFrame.

The two systems run one after the other in this process: the cluster is closed before Spark
starts.  Target (printed, not asserted): Spark's seconds per iteration >= 8 x ours.

If pyspark cannot be imported or Spark cannot run, the reason is printed and written to the
JSON summary, and the script exits 0.  Needs the ``bench`` extra (``pip install -e .[bench]``)
and a Java runtime that the installed Spark supports (17 or newer for Spark 4).

The machines are shared and noisy: compare ratios inside one run.  The script needs its
``__main__`` guard, since the cluster's worker processes are spawned and re-import this module.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import Report, log, make_problem, median_time, positive_count, print_table

# The worker processes re-import this module: keep the heavy imports inside the functions.

PASS_KW = dict(covariance_floor=1e-6, weight_concentration=0.0)
TARGET_RATIO = 8.0
TABLE_COLUMNS = ["system", "s_per_iter", "spark_over_ours"]
TABLE_FORMATS = {"s_per_iter": ".4f", "spark_over_ours": ".2f"}


def java_version():
    """The first line of ``java -version`` (it prints on stderr), or why there is none."""
    java = shutil.which("java")
    if java is None:
        return None, "no 'java' on PATH"
    try:
        proc = subprocess.run([java, "-version"], check=False, capture_output=True, text=True,
                              timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"'java -version' failed: {exc}"
    lines = (proc.stderr or proc.stdout).strip().splitlines()
    return (lines[0] if lines else None), None


# --------------------------------------------------------------------------------------------
# ours



def time_ours(X, weights, means, covs, n_chunks, repeats, warmup):
    import dask.array as da
    from distributed import Client, LocalCluster, wait

    from dask_biglearn.engines import DaskEngine
    from dask_biglearn.fit import em_update
    from dask_biglearn.model import MixtureParams
    from dask_biglearn.projection import Projection

    n, d = X.shape
    params = MixtureParams(weights, means, covs)
    t0 = time.perf_counter()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster):
        Xd = da.from_array(X, chunks=(max(1, n // n_chunks), d)).persist()
        wait(Xd)
        log(f"ours: cluster up and data persisted in {time.perf_counter() - t0:.1f}s "
             f"({Xd.numblocks[0]} chunks)")
        engine = DaskEngine(Xd)
        med, times = median_time(
            lambda: em_update(engine, params, Projection.identity(), **PASS_KW),
            repeats=repeats, warmup=warmup)
        _, mean_ll = em_update(engine, params, Projection.identity(), **PASS_KW)
        n_blocks = int(Xd.numblocks[0])
    return dict(system="ours (Dask, 2 workers)", s_per_iter=med, times=times,
                n_chunks=n_blocks, mean_log_lik=float(mean_ll))


# --------------------------------------------------------------------------------------------
# Spark


class SparkUnavailable(RuntimeError):
    """Spark could not be imported or started; the message says why."""


def start_spark(driver_memory):
    try:
        import pyspark
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise SparkUnavailable(f"pyspark is not importable ({exc}); "
                               "install the bench extra: pip install -e .[bench]") from exc
    # Local mode only: no network beyond localhost.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    t0 = time.perf_counter()
    try:
        spark = (SparkSession.builder.master("local[2]")
                 .appName("dask_biglearn-bench_spark")
                 .config("spark.driver.memory", driver_memory)
                 .config("spark.driver.host", "127.0.0.1")
                 .config("spark.driver.bindAddress", "127.0.0.1")
                 .config("spark.ui.enabled", "false")
                 .config("spark.ui.showConsoleProgress", "false")
                 .getOrCreate())
        spark.sparkContext.setLogLevel("WARN")
        spark.range(10).count()
    except Exception as exc:  # any failure to start means "cannot run"
        raise SparkUnavailable(f"Spark failed to start: {type(exc).__name__}: {exc}") from exc
    startup = time.perf_counter() - t0
    jvm = spark.sparkContext._jvm
    info = {
        "pyspark": pyspark.__version__,
        "spark": spark.version,
        "java_runtime": str(jvm.java.lang.System.getProperty("java.runtime.version")),
        "java_vm": str(jvm.java.lang.System.getProperty("java.vm.name")),
        "jvm_max_heap_gib": round(jvm.java.lang.Runtime.getRuntime().maxMemory() / 2**30, 2),
        "startup_s": round(startup, 2),
    }
    for key, cls in (("jvm_blas", "dev.ludovic.netlib.blas.BLAS"),
                     ("jvm_lapack", "dev.ludovic.netlib.lapack.LAPACK")):
        try:  # which BLAS Spark's linear algebra uses (native only if libblas.so.3 loads)
            obj = getattr(jvm, cls).getInstance()
            info[key] = str(obj.getClass().getName())
        except Exception as exc:  # noqa: BLE001 - Spark without dev.ludovic.netlib
            info[key] = f"unknown ({type(exc).__name__})"
    return spark, info


def spark_dataframe(spark, X, n_partitions, tmpdir):
    """A cached DataFrame with one vector column ``features`` holding the rows of ``X``."""
    from pyspark.ml.feature import VectorAssembler
    from pyspark.sql.types import DoubleType, StructField, StructType

    n, d = X.shape
    names = [f"x{j}" for j in range(d)]
    t0 = time.perf_counter()
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = os.path.join(tmpdir, "data.parquet")
        table = pa.table({name: np.ascontiguousarray(X[:, j]) for j, name in enumerate(names)})
        pq.write_table(table, path, row_group_size=max(1, -(-n // n_partitions)))
        del table
        raw = spark.read.parquet(path)
        how = (f"pyarrow {pa.__version__} Parquet file (one float64 column per feature), "
               "spark.read.parquet")
    except ImportError:
        path = os.path.join(tmpdir, "data.csv")
        np.savetxt(path, X, fmt="%.17g", delimiter=",")
        schema = StructType([StructField(name, DoubleType(), False) for name in names])
        raw = spark.read.csv(path, schema=schema)
        how = "CSV file written with numpy.savetxt('%.17g') (no pyarrow), spark.read.csv"
    written = time.perf_counter() - t0
    assembler = VectorAssembler(inputCols=names, outputCol="features")
    df = assembler.transform(raw.repartition(n_partitions)).select("features")
    df.cache()
    rows = df.count()
    if rows != n:
        raise RuntimeError(f"Spark read {rows} rows, expected {n}")
    how += f", repartition({n_partitions}), VectorAssembler, cache() + count()"
    return df, how, written, time.perf_counter() - t0 - written


def time_spark_fit(df, k, max_iter, seed):
    from pyspark.ml.clustering import GaussianMixture

    gm = GaussianMixture(k=k, maxIter=max_iter, tol=0.0, seed=seed, featuresCol="features")
    t0 = time.perf_counter()
    model = gm.fit(df)
    elapsed = time.perf_counter() - t0
    summary = model.summary
    return elapsed, int(summary.numIter), float(summary.logLikelihood)


def time_spark(X, k, n_chunks, iters, seed, driver_memory, repeats):
    """Spark's seconds per iteration as the slope between two fits; raises SparkUnavailable."""
    a, b = iters
    spark, info = start_spark(driver_memory)
    log(f"spark: Spark {info['spark']} on Java {info['java_runtime']} started in "
         f"{info['startup_s']:.1f}s (JVM max heap {info['jvm_max_heap_gib']} GiB)")
    tmpdir = tempfile.mkdtemp(prefix="bench_spark_")
    try:
        df, how, write_s, cache_s = spark_dataframe(spark, X, n_chunks, tmpdir)
        log(f"spark: data written in {write_s:.1f}s, read and cached in {cache_s:.1f}s")
        t0 = time.perf_counter()
        time_spark_fit(df, k, 1, seed)
        warmup_s = time.perf_counter() - t0
        log(f"spark: warm-up fit (maxIter=1) {warmup_s:.1f}s")
        fits = {}
        for max_iter in (a, b):
            runs = [time_spark_fit(df, k, max_iter, seed) for _ in range(repeats)]
            times = [r[0] for r in runs]
            n_iter, log_lik = runs[-1][1], runs[-1][2]
            if n_iter != max_iter:
                raise RuntimeError(f"the fit with maxIter={max_iter} stopped after {n_iter} "
                                   "iterations; the slope would be wrong")
            fits[max_iter] = dict(seconds=statistics.median(times), times=times,
                                  num_iter=n_iter, log_likelihood=log_lik)
            log(f"spark: fit maxIter={max_iter}: {fits[max_iter]['seconds']:.2f}s "
                 f"(numIter={n_iter}, mean log-likelihood {log_lik / X.shape[0]:.4f})")
        df.unpersist()
    except SparkUnavailable:
        raise
    except Exception as exc:  # report why Spark could not run, do not crash
        raise SparkUnavailable(f"Spark failed while fitting: {type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
    finally:
        spark.stop()
        shutil.rmtree(tmpdir, ignore_errors=True)
    slope = (fits[b]["seconds"] - fits[a]["seconds"]) / (b - a)
    fixed = fits[a]["seconds"] - a * slope
    row = dict(system="Spark MLlib (local[2])", s_per_iter=slope,
               fixed_cost_s=fixed, fits={str(m): f for m, f in fits.items()},
               warmup_fit_s=warmup_s, data_write_s=write_s, data_cache_s=cache_s,
               n_partitions=n_chunks)
    return row, info, how


# --------------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Seconds per EM iteration of pyspark.ml GaussianMixture in local[2] "
                    "against ours on a 2-worker LocalCluster (target: Spark >= 8x slower).")
    parser.add_argument("--n-samples", type=positive_count, default=1_000_000, help="rows N")
    parser.add_argument("--n-features", type=positive_count, default=16, help="features D")
    parser.add_argument("--n-components", type=positive_count, default=25, help="components K")
    parser.add_argument("--chunks", type=positive_count, default=10,
                        help="row chunks of the Dask array and partitions of the Spark "
                             "DataFrame (default 10)")
    parser.add_argument("--iters", type=positive_count, nargs=2, default=[2, 7], metavar=("A", "B"),
                        help="maxIter of Spark's two timed fits; seconds per iteration = "
                             "(t_B - t_A) / (B - A) (default 2 7: a difference of 5)")
    parser.add_argument("--repeats", type=positive_count, default=5,
                        help="timed EM passes of ours, after the warm-up ones (default 5)")
    parser.add_argument("--warmup", type=positive_count, default=3,
                        help="untimed EM passes of ours first: the first passes after the data "
                             "is placed run slower (default 3)")
    parser.add_argument("--spark-repeats", type=positive_count, default=1,
                        help="timed fits of Spark per maxIter; the median is used (default 1)")
    parser.add_argument("--spark-driver-memory", default="8g",
                        help="spark.driver.memory (default 8g)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and of Spark")
    parser.add_argument("--output", default="results/bench_spark.json", help="JSON file")
    args = parser.parse_args(argv)
    if args.iters[1] <= args.iters[0]:
        parser.error("--iters A B needs B > A")
    return args


def main(argv=None):
    args = parse_args(argv)
    n, d, k = args.n_samples, args.n_features, args.n_components
    a, b = args.iters
    java_line, java_error = java_version()
    params = dict(n_samples=n, n_features=d, n_components=k, dtype="float64",
                  chunks=args.chunks, iters=[a, b], repeats=args.repeats,
                  spark_repeats=args.spark_repeats, seed=args.seed,
                  spark_master="local[2]", spark_driver_memory=args.spark_driver_memory,
                  java=java_line or java_error,
                  ours_setup="LocalCluster(n_workers=2, threads_per_worker=1, processes=True), "
                             f"da.from_array(X, chunks=(N // {args.chunks}, D)).persist()",
                  ours_per_iteration=f"median of {args.repeats} em_update calls (joint, "
                                     f"covariance_floor=1e-6) after {args.warmup} untimed ones, "
                                     "driver to driver",
                  spark_per_iteration=(
                      f"(t(maxIter={b}) - t(maxIter={a})) / {b - a}: GaussianMixture(k={k}, "
                      f"tol=0.0, seed={args.seed}) fits on the cached DataFrame, each timed "
                      f"{args.spark_repeats}x (median) after one untimed maxIter=1 fit"),
                  target=f"Spark s/iter >= {TARGET_RATIO:g} x ours")
    report = Report("spark", params)
    log(f"N={n}, D={d}, K={k}, {args.chunks} chunks; Spark fits maxIter={a} and {b}")

    t0 = time.perf_counter()
    X, weights, means, covs = make_problem(n, d, k, seed=args.seed)
    log(f"data made in {time.perf_counter() - t0:.1f}s ({X.nbytes / 2**20:.0f} MiB)")

    ours = time_ours(X, weights, means, covs, args.chunks, args.repeats, args.warmup)
    log(f"ours: {ours['s_per_iter']:.4f}s per iteration "
         f"({', '.join(f'{t:.4f}' for t in ours['times'])})")
    ours["spark_over_ours"] = 1.0

    spark_row, reason = None, None
    try:
        spark_row, info, how = time_spark(X, k, args.chunks, (a, b), args.seed,
                                          args.spark_driver_memory, args.spark_repeats)
        params.update(spark_version=info["spark"], pyspark_version=info["pyspark"],
                      java_runtime=info["java_runtime"], java_vm=info["java_vm"],
                      spark_jvm_max_heap_gib=info["jvm_max_heap_gib"],
                      spark_startup_s=info["startup_s"], spark_jvm_blas=info["jvm_blas"],
                      spark_jvm_lapack=info["jvm_lapack"], spark_data_path=how)
    except SparkUnavailable as exc:
        reason = str(exc)
        log(f"spark: cannot run: {reason}")

    rows = [report.add(**ours)]
    if spark_row is not None:
        spark_row["spark_over_ours"] = spark_row["s_per_iter"] / ours["s_per_iter"]
        rows.append(report.add(**spark_row))
    print()
    print_table(rows, TABLE_COLUMNS, TABLE_FORMATS)
    print()

    if spark_row is None:
        report.summary(ours_s_per_iter=ours["s_per_iter"], spark_available=False,
                       spark_reason=reason, ratio_spark_over_ours=None, target=TARGET_RATIO,
                       target_met=None)
        print(f"Spark could not run: {reason}")
    else:
        ratio = spark_row["spark_over_ours"]
        valid = spark_row["s_per_iter"] > 0
        met = bool(ratio >= TARGET_RATIO) if valid else None
        report.summary(ours_s_per_iter=ours["s_per_iter"],
                       spark_s_per_iter=spark_row["s_per_iter"], spark_available=True,
                       ratio_spark_over_ours=ratio if valid else None, target=TARGET_RATIO,
                       target_met=met,
                       note=None if valid else "Spark's slope is not positive: its fits are "
                                               "too short or too noisy at this size")
        if not valid:
            print("Spark's slope is not positive: its fits are too short or too noisy at this "
                  "size (raise --iters B or --n-samples); no ratio")
        else:
            print(f"Spark / ours per iteration: {ratio:.2f}x (target >= {TARGET_RATIO:g}x): "
                  f"{'met' if met else 'NOT met'}")
    path = report.write(args.output)
    print(f"wrote {Path(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
