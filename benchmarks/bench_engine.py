"""Engine overhead and scaling: one EM pass in-process, on Dask's threads and on a LocalCluster.

"One pass" is one full EM update in the joint space, as the fitting loops make it::

    em_update(engine, MixtureParams(w, m, c), Projection.identity(),
              covariance_floor=1e-6, weight_concentration=0.0)

that is the E-step coefficients on the driver, one pass over the data (E-step and sufficient
statistics, a tree reduction on Dask) and the M-step on the driver.  Times are driver to driver:
the median of ``--repeats`` calls after three untimed ones (the first passes after the data
is placed run slower), always from the same parameters.

Part ``overhead`` (main setting N=1e6, D=16, K=25, float64) measures in one run:

(a) ``InProcessEngine`` on the NumPy array inside ``threadpool_limits(1)``: the baseline
    (also, for information, with the BLAS's default thread count);
(b) ``DaskEngine`` on Dask's threaded scheduler, ``da.from_array`` of the in-memory array in 10
    chunks (BLAS limited to one thread per Dask thread);
(c) ``DaskEngine`` on ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`` with
    the data persisted on the workers, in 10 and 100 chunks;
(d) the same cluster reading a Zarr store (no compression, chunks of N/10 rows, all columns)
    written once to a temporary directory, with ``da.from_zarr`` and *not* persisted (the engine
    gets ``persist=False``).  The store was just written, so it is read from the OS page cache,
    not from the disk;
(e) a tiny pass: 1e4 rows, one chunk, persisted, on the cluster: ``engine.run_pass(theta,
    None)`` and ``em_update``, driver to driver.

The engine's default route on a cluster (``actors="auto"``) sends a pass over persisted data
of at most 256 MiB as one direct call to an actor on each worker; (c) at 10 chunks and (e)
are also measured with ``actors=False`` (one task per worker thread, through the scheduler).
The ``route`` column says which.

Targets (printed, not asserted): (c) <= 0.65 x (a) at 10 and at 100 chunks; (d) <= 1.5 x (c)
at 10 chunks; (e) ``run_pass`` <= 25 ms.

The nanny of a ``distributed`` worker sets ``MALLOC_TRIM_THRESHOLD_=65536`` in the worker's
environment (config ``distributed.nanny.pre-spawn-environ``).  Setting that variable at all also
turns off glibc's dynamic mmap threshold, so large temporaries are mmapped and unmapped at every
call.  ``--malloc-trim`` runs the cluster measurements with distributed's default (``default``),
with the variable set to a huge value (``off``) and/or with the variable not set at all
(``unset``: glibc's own behaviour); ``both`` is ``default,off`` and ``all`` all three.

Part ``scaling`` measures the per-pass time on the LocalCluster against N, K, D and the chunk
size, one factor at a time around a base (N=1e6, D=16, K=25, chunks of 1e5 rows).  Data that
fits in ``--memory-limit-gb`` (``N * D * 8`` bytes) is persisted on the workers; larger data is
read out of core from a Zarr store every pass (``persist=False``).  Data over ``--max-driver-gb`` is never held on
the driver: it is generated chunk by chunk straight into a Zarr store (and persisted from it if
it fits).  It writes a table, rows in the JSON file and a 4-panel PNG.

Run ``python benchmarks/bench_engine.py --help`` for the options.  The machines are shared and
noisy: compare ratios inside one run.  The script needs its ``__main__`` guard, since the
cluster's worker processes are spawned and re-import this module.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import math
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from _common import Report, log, make_problem, median_time, positive_count, print_table

# The worker processes re-import this module: keep the heavy imports inside the functions.

PASS_KW = dict(covariance_floor=1e-6, weight_concentration=0.0)
MALLOC_KEY = "MALLOC_TRIM_THRESHOLD_"
MALLOC_CONFIG_KEY = f"distributed.nanny.pre-spawn-environ.{MALLOC_KEY}"
#: ``off``: a trim threshold no heap top ever reaches (1 TiB).
MALLOC_OFF_VALUE = str(2**40)
MALLOC_MODES = ("default", "off", "unset")
TARGET_PERSISTED = 0.65
TARGET_ZARR = 1.5
TARGET_TINY_S = 0.025

TABLE_COLUMNS = ["setting", "malloc_trim", "n_samples", "n_chunks", "data_tasks", "route",
                 "ms_per_pass",
                 "vs_base", "vs_ref", "target", "ok"]
TABLE_FORMATS = {"ms_per_pass": ".1f", "vs_base": ".3f", "vs_ref": ".3f"}
SCALING_COLUMNS = ["factor", "n_samples", "n_features", "n_components", "chunk_rows", "n_chunks",
                   "data_tasks", "source", "ms_per_pass", "rows_per_s", "ns_per_row_comp"]
SCALING_FORMATS = {"ms_per_pass": ".1f", "rows_per_s": ".3g", "ns_per_row_comp": ".2f"}


# --------------------------------------------------------------------------------------------
# helpers


def _malloc_modes(text):
    aliases = {"both": ["default", "off"], "all": list(MALLOC_MODES)}
    modes = []
    for part in text.split(","):
        for mode in aliases.get(part.strip(), [part.strip()]):
            if mode not in MALLOC_MODES:
                raise argparse.ArgumentTypeError(
                    f"--malloc-trim: unknown mode {mode!r}; use {', '.join(MALLOC_MODES)}, "
                    "both or all (comma-separated)")
            if mode not in modes:
                modes.append(mode)
    return modes


def _params(w, m, c):
    from dask_biglearn.model import MixtureParams

    return MixtureParams(w, m, c)


def _em_pass(engine, params):
    """One EM update in the joint space: the unit of time of this benchmark."""
    from dask_biglearn.fit import em_update
    from dask_biglearn.projection import Projection

    return em_update(engine, params, Projection.identity(), **PASS_KW)


def _time_pass(engine, params, repeats, warmup=3):
    med, times = median_time(lambda: _em_pass(engine, params), repeats=repeats, warmup=warmup)
    return med, times


def _chunk_rows(n_samples, n_chunks):
    return max(1, math.ceil(n_samples / n_chunks))


@contextlib.contextmanager
def _cluster(mode):
    """A LocalCluster of 2 single-threaded worker processes and a Client (the default).

    ``mode`` chooses what the nannies put in ``MALLOC_TRIM_THRESHOLD_``.  The nanny writes its
    pre-spawn variables into this process's ``os.environ`` (and children inherit it), so they
    are restored on exit; otherwise a later ``unset`` cluster would still inherit 65536.
    """
    import dask
    from distributed import Client, LocalCluster

    config = {}
    if mode == "off":
        config[MALLOC_CONFIG_KEY] = MALLOC_OFF_VALUE
    elif mode == "unset":
        config[MALLOC_CONFIG_KEY] = None
    if mode != "default" and MALLOC_KEY in os.environ:
        warnings.warn(f"{MALLOC_KEY} is set in this environment ({os.environ[MALLOC_KEY]}) and "
                      f"overrides --malloc-trim {mode}", stacklevel=2)
    spawn_keys = set(dask.config.get("distributed.nanny.pre-spawn-environ")) | {"PYTHONHASHSEED"}
    saved = {k: os.environ.get(k) for k in spawn_keys}
    t0 = time.perf_counter()
    try:
        with dask.config.set(config), \
                LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                             dashboard_address=None, worker_dashboard_address=None) as cluster, \
                Client(cluster) as client:
            startup = time.perf_counter() - t0
            env = client.run(lambda: os.environ.get(MALLOC_KEY))
            info = {"malloc_trim": mode, "startup_s": startup,
                    "worker_malloc_trim_threshold": sorted({str(v) for v in env.values()})}
            log(f"cluster up in {startup:.1f}s, malloc_trim={mode}, workers see "
                 f"{MALLOC_KEY}={info['worker_malloc_trim_threshold']}")
            yield client, info
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _persist(client, X):
    """Persist a Dask array on the cluster and wait; also how many chunks each worker holds."""
    from distributed import wait

    Xp = X.persist()
    wait(Xp)
    who = client.who_has(Xp)
    per_worker = {}
    for holders in who.values():
        for w in holders:
            per_worker[w] = per_worker.get(w, 0) + 1
    return Xp, sorted(per_worker.values(), reverse=True)


def _from_array(X, chunk_rows):
    import dask.array as da

    return da.from_array(X, chunks=(chunk_rows, X.shape[1]))


def _dask_engine(X, persist="auto", actors="auto"):
    from dask_biglearn.engines import DaskEngine

    return DaskEngine(X, persist=persist, actors=actors)


def _engine_facts(engine):
    """Tasks per pass over the data (chunk tasks or per-worker groups), whether the engine
    holds persisted data (its own ``persist="auto"`` included) and the route of a pass
    (``actors``: one direct call per worker; ``tasks``: through the scheduler)."""
    from distributed import futures_of

    return {"data_tasks": engine.n_pass_tasks, "persisted": bool(futures_of(engine.X)),
            "route": engine.route}

def _free(client=None):
    gc.collect()
    if client is not None:
        # Let the scheduler forget released keys before the next configuration.
        time.sleep(0.2)
        client.run(gc.collect)


# --------------------------------------------------------------------------------------------
# part 1: overhead


def run_overhead(args, report):
    import dask
    import dask.array as da
    from threadpoolctl import threadpool_limits

    from dask_biglearn.algebra import estep_coefficients
    from dask_biglearn.engines import InProcessEngine
    from dask_biglearn.kernels.features import n_quadratic_features
    from dask_biglearn.kernels.passes import PassSpec

    n, d, k = args.n_samples, args.n_features, args.n_components
    log(f"overhead: generating N={n}, D={d}, K={k}")
    X, w, m, c = make_problem(n, d, k, seed=args.seed)
    params = _params(w, m, c)
    rows = []

    def add(setting, seconds, times, **extra):
        row = report.add(part="overhead", setting=setting, n_samples=extra.pop("n_samples", n),
                         n_features=d, n_components=k, seconds=seconds,
                         ms_per_pass=1e3 * seconds, times=times, **extra)
        rows.append(row)
        log(f"  {setting}{' ' + str(row.get('malloc_trim')) if row.get('malloc_trim') else ''}:"
             f" {1e3 * seconds:.1f} ms/pass")
        return row

    # (a) in-process: the baseline (BLAS limited to one thread), then the BLAS default
    engine = InProcessEngine(X)
    cached = engine.features_cached
    if cached:
        warnings.warn(
            f"N x {n_quadratic_features(d)} features fit the in-process feature cache: the "
            "baseline reuses them every pass while Dask recomputes them (use a larger "
            "--n-samples for the real comparison)", stacklevel=1)
    with threadpool_limits(1):
        base, times = _time_pass(engine, params, args.repeats)
    add("in-process 1 thread (baseline)", base, times, n_chunks=1, blas_threads=1,
        features_cached=cached, vs_base=1.0)
    t, times = _time_pass(engine, params, args.repeats)
    add("in-process BLAS default", t, times, n_chunks=1, blas_threads="default",
        features_cached=cached, vs_base=t / base)
    engine.close()
    del engine
    gc.collect()

    # (b) Dask's threaded scheduler, one BLAS thread per Dask thread
    Xd = _from_array(X, _chunk_rows(n, args.threads_chunks))
    with dask.config.set(scheduler="threads"), threadpool_limits(1):
        engine = _dask_engine(Xd)
        t, times = _time_pass(engine, params, args.repeats)
    add("dask threads", t, times, n_chunks=Xd.numblocks[0], blas_threads=1,
        data_tasks=_engine_facts(engine)["data_tasks"],
        threads=dask.config.get("num_workers", None) or os.cpu_count(), vs_base=t / base)
    engine.close()
    del engine, Xd
    gc.collect()

    # the Zarr store, written once on the threaded scheduler (before any cluster)
    tmp = Path(tempfile.mkdtemp(prefix="bench_engine_", dir=args.tmpdir))
    store = tmp / "overhead.zarr"
    zarr_rows = _chunk_rows(n, 10)
    t0 = time.perf_counter()
    with dask.config.set(scheduler="threads"):
        da.to_zarr(_from_array(X, zarr_rows), str(store), compressors=None)
    log(f"  wrote {store} ({n * d * 8 / 1e6:.0f} MB, chunks of {zarr_rows} rows, "
         f"uncompressed) in {time.perf_counter() - t0:.1f}s")

    # the tiny problem
    Xt, wt, mt, ct = make_problem(args.tiny_samples, d, k, seed=args.seed + 1)
    tiny_params = _params(wt, mt, ct)

    def tiny_spec(engine):
        shift = engine.summaries.shift
        return PassSpec(estep_coefficients(wt, mt, ct, shift, compiled=engine.compiled), shift,
                        compiled=engine.compiled)

    summary = {}
    try:
        for mode in args.malloc_trim:
            with _cluster(mode) as (client, info), threadpool_limits(1):
                report.data["params"].setdefault("clusters", []).append(info)
                # (c) persisted, 10 and 100 chunks
                persisted = {}
                for n_chunks in args.chunks:
                    Xp, per_worker = _persist(client, _from_array(X, _chunk_rows(n, n_chunks)))
                    engine = _dask_engine(Xp)
                    t, times = _time_pass(engine, params, args.repeats)
                    persisted[n_chunks] = t
                    add("cluster persisted", t, times, malloc_trim=mode, **_engine_facts(engine),
                        n_chunks=Xp.numblocks[0], chunks_per_worker=per_worker, vs_base=t / base,
                        target=f"<= {TARGET_PERSISTED} x base",
                        ok=bool(t <= TARGET_PERSISTED * base))
                    if n_chunks == 10 and engine._actors:
                        engine.close()
                        del engine
                        engine = _dask_engine(Xp, actors=False)
                        t, times = _time_pass(engine, params, args.repeats)
                        add("cluster persisted", t, times, malloc_trim=mode,
                            **_engine_facts(engine), n_chunks=Xp.numblocks[0],
                            chunks_per_worker=per_worker, vs_base=t / base)
                    engine.close()
                    del engine, Xp
                    _free(client)
                # (d) from the Zarr store, not persisted
                Xz = da.from_zarr(str(store))
                engine = _dask_engine(Xz, persist=False)
                facts = _engine_facts(engine)
                if facts["persisted"]:
                    warnings.warn("the engine persisted the Zarr data: not an out-of-core pass",
                                  stacklevel=1)
                t_zarr, times = _time_pass(engine, params, args.repeats)
                ref = persisted.get(10)
                add("cluster from Zarr", t_zarr, times, malloc_trim=mode, **facts,
                    n_chunks=Xz.numblocks[0], vs_base=t_zarr / base,
                    vs_ref=None if ref is None else t_zarr / ref,
                    ref="cluster persisted, 10 chunks",
                    target=f"<= {TARGET_ZARR} x persisted(10)",
                    ok=None if ref is None else bool(t_zarr <= TARGET_ZARR * ref))
                engine.close()
                del engine, Xz
                _free(client)
                # (e) tiny pass, one chunk, persisted
                Xtp, _ = _persist(client, _from_array(Xt, Xt.shape[0]))
                engine = _dask_engine(Xtp)
                spec = tiny_spec(engine)
                t_run, times = median_time(lambda e=engine, s=spec: e.run_pass(s),
                                           repeats=args.tiny_repeats, warmup=2)
                add("tiny run_pass", t_run, times, malloc_trim=mode, n_samples=Xt.shape[0],
                    **_engine_facts(engine),
                    n_chunks=1, target=f"<= {1e3 * TARGET_TINY_S:.0f} ms",
                    ok=bool(t_run <= TARGET_TINY_S))
                t_em, times = median_time(lambda e=engine: _em_pass(e, tiny_params),
                                          repeats=args.tiny_repeats, warmup=2)
                add("tiny em_update", t_em, times, malloc_trim=mode, n_samples=Xt.shape[0],
                    **_engine_facts(engine), n_chunks=1)
                engine.close()
                del engine
                # the same through the scheduler, for comparison
                engine = _dask_engine(Xtp, actors=False)
                t_tasks, times = median_time(lambda e=engine, s=spec: e.run_pass(s),
                                             repeats=args.tiny_repeats, warmup=2)
                add("tiny run_pass", t_tasks, times, malloc_trim=mode, n_samples=Xt.shape[0],
                    **_engine_facts(engine), n_chunks=1)
                engine.close()
                del engine, Xtp
                _free(client)
                summary[mode] = {
                    "baseline_s": base,
                    **{f"persisted_{nc}_ratio": persisted[nc] / base for nc in persisted},
                    "zarr_ratio_to_persisted_10": None if ref is None else t_zarr / ref,
                    "tiny_run_pass_ms": 1e3 * t_run,
                    "tiny_em_update_ms": 1e3 * t_em,
                    "tiny_run_pass_tasks_ms": 1e3 * t_tasks,
                    "targets_met": {
                        **{f"persisted_{nc}": bool(persisted[nc] <= TARGET_PERSISTED * base)
                           for nc in persisted},
                        "zarr": None if ref is None else bool(t_zarr <= TARGET_ZARR * ref),
                        "tiny": bool(t_run <= TARGET_TINY_S),
                    },
                }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    print(f"Overhead: one EM pass, N={n}, D={d}, K={k}, float64 (median of {args.repeats}; "
          f"tiny: {args.tiny_samples} rows, median of {args.tiny_repeats})")
    print_table(rows, TABLE_COLUMNS, TABLE_FORMATS)
    print()
    for mode, s in summary.items():
        checks = ", ".join(f"{name}: {'PASS' if ok else ('-' if ok is None else 'FAIL')}"
                           for name, ok in s["targets_met"].items())
        print(f"targets (malloc_trim={mode}): {checks}")
    report.summary(overhead=summary)


# --------------------------------------------------------------------------------------------
# part 2: scaling


def _problem_params(n_features, n_components, seed):
    """Starting parameters and the centres of the out-of-core data (as ``make_problem``)."""
    _, w, m, c = make_problem(n_components, n_features, n_components, seed=seed)
    rng = np.random.default_rng([seed, 1])
    start_means = m + 0.3 * rng.standard_normal(m.shape)
    return m, _params(w, start_means, c)


def _generate_to_zarr(path, n, d, k, chunk_rows, seed):
    """Mixture data written block by block into an uncompressed Zarr store, never whole in
    memory: rows from the K centres ``m`` plus standard normal noise, like ``make_problem``.
    Returns the starting parameters and the data mean."""
    import zarr

    centers, params = _problem_params(d, k, seed)
    z = zarr.create_array(store=str(path), shape=(n, d), chunks=(chunk_rows, d),
                          dtype="float64", compressors=None, overwrite=True)
    step = chunk_rows * max(1, 1_000_000 // chunk_rows)
    total = np.zeros(d)
    seeds = np.random.SeedSequence([seed, 2]).spawn(math.ceil(n / step))
    for ss, start in zip(seeds, range(0, n, step), strict=True):
        rng = np.random.default_rng(ss)
        stop = min(n, start + step)
        block = centers[rng.integers(k, size=stop - start)]
        block += rng.standard_normal(block.shape)
        total += block.sum(axis=0)
        z[start:stop] = block
    return params, total / n


def _scaling_configs(args):
    base = dict(n_samples=args.base_n, n_features=args.base_d, n_components=args.base_k,
                chunk_rows=args.base_chunk)
    factors = [("n_samples", args.scaling_n), ("n_components", args.scaling_k),
               ("n_features", args.scaling_d), ("chunk_rows", args.scaling_chunk)]
    configs = []  # (factor, config) with the shared base measured once
    for factor, values in factors:
        for v in values:
            configs.append((factor, {**base, factor: v}))
    return configs


def run_scaling(args, report):
    import dask
    import dask.array as da
    from threadpoolctl import threadpool_limits


    configs = _scaling_configs(args)
    measured = {}
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="bench_engine_", dir=args.tmpdir))
    mode = args.malloc_trim[0]
    try:
        with _cluster(mode) as (client, info), threadpool_limits(1):
            report.data["params"]["scaling_cluster"] = info
            for factor, cfg in configs:
                n, d, k = cfg["n_samples"], cfg["n_features"], cfg["n_components"]
                chunk_rows = min(cfg["chunk_rows"], n)
                key = (n, d, k, chunk_rows)
                if key not in measured:
                    nbytes = n * d * 8
                    in_memory = nbytes <= args.memory_limit_gb * 1e9
                    store = tmp / f"scaling_{n}_{d}_{k}_{chunk_rows}.zarr"
                    t0 = time.perf_counter()
                    if nbytes <= args.max_driver_gb * 1e9:
                        X, w, m, c = make_problem(n, d, k, seed=args.seed)
                        params = _params(w, m, c)
                        if in_memory:
                            Xd, _ = _persist(client, _from_array(X, chunk_rows))
                            source = "persisted"
                        else:
                            with dask.config.set(scheduler="threads"):
                                da.to_zarr(_from_array(X, chunk_rows), str(store),
                                           compressors=None)
                            Xd, source = da.from_zarr(str(store)), "zarr"
                        del X
                    else:
                        params, _ = _generate_to_zarr(store, n, d, k, chunk_rows, args.seed)
                        if in_memory:
                            Xd, _ = _persist(client, da.from_zarr(str(store)))
                            source = "persisted (generated via Zarr)"
                        else:
                            Xd, source = da.from_zarr(str(store)), "zarr"
                    setup = time.perf_counter() - t0
                    log(f"scaling N={n} D={d} K={k} chunk_rows={chunk_rows}: {source}, "
                         f"{nbytes / 1e6:.0f} MB, set up in {setup:.1f}s")
                    engine = _dask_engine(Xd, persist=False)
                    t, times = _time_pass(engine, params, args.scaling_repeats)
                    facts = _engine_facts(engine)
                    measured[key] = dict(**facts,
                        n_samples=n, n_features=d, n_components=k, chunk_rows=chunk_rows,
                        n_chunks=Xd.numblocks[0], source=source, out_of_core=not facts["persisted"],
                        nbytes=nbytes, setup_s=setup, seconds=t, ms_per_pass=1e3 * t,
                        times=times, rows_per_s=n / t, ns_per_row_comp=1e9 * t / (n * k))
                    log(f"  {1e3 * t:.1f} ms/pass")
                    engine.close()
                    del engine, Xd
                    _free(client)
                    shutil.rmtree(store, ignore_errors=True)
                row = report.add(part="scaling", factor=factor, malloc_trim=mode,
                                 **measured[key])
                rows.append(row)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    print(f"Scaling: one EM pass on the LocalCluster (2 x 1 thread, malloc_trim={mode}), "
          f"median of {args.scaling_repeats}; base N={args.base_n}, D={args.base_d}, "
          f"K={args.base_k}, chunk rows {args.base_chunk}")
    print_table(rows, SCALING_COLUMNS, SCALING_FORMATS)
    report.summary(scaling={"malloc_trim": mode, "n_configurations": len(measured)})
    if args.plot:
        path = plot_scaling(rows, args)
        log(f"wrote {path}")


def plot_scaling(rows, args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullLocator

    panels = [("n_samples", "N (rows)"), ("n_components", "K (components)"),
              ("n_features", "D (features)"), ("chunk_rows", "rows per chunk")]
    fig, axes = plt.subplots(2, 2, figsize=(10, 8))
    for ax, (factor, label) in zip(axes.flat, panels, strict=True):
        sel = sorted((r for r in rows if r["factor"] == factor), key=lambda r: r[factor])
        if not sel:
            ax.set_visible(False)
            continue
        x = np.array([r[factor] for r in sel], dtype=float)
        y = np.array([r["seconds"] for r in sel])
        ax.plot(x, y, "o-", color="C0", label="per pass")
        ooc = np.array([r["out_of_core"] for r in sel])
        if ooc.any():
            ax.plot(x[ooc], y[ooc], "s", color="C3", ms=9, mfc="none", label="out of core (Zarr)")
        if factor in ("n_samples", "n_components") and len(sel) > 1:
            ax.plot(x, y[0] * x / x[0], "--", color="grey", lw=1, label="linear from first")
        if factor == "n_features" and len(sel) > 1:
            ax.plot(x, y[0] * (x / x[0]) ** 2, "--", color="grey", lw=1,
                    label="quadratic from first")
        if factor == "chunk_rows":
            for xi, yi, r in zip(x, y, sel, strict=True):
                ax.annotate(f"{r['n_chunks']} chunk{'s' if r['n_chunks'] > 1 else ''}", (xi, yi), textcoords="offset points",
                            xytext=(4, 6), fontsize=8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(x, [f"{v:g}" for v in x])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlabel(label)
        ax.set_ylabel("seconds per pass")
        fixed = {f: sel[0][f] for f, _ in panels if f != factor}
        ax.set_title(f"vs {label}\n" + ", ".join(f"{f}={v:g}" for f, v in fixed.items()),
                     fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("One EM pass (E-step + statistics + M-step) on a LocalCluster, "
                 "2 workers x 1 thread", fontsize=11)
    fig.tight_layout()
    path = Path(args.plot)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Engine overhead (in-process, Dask threads, LocalCluster persisted / from "
                    "Zarr, tiny pass) and per-pass scaling against N, K, D and chunk size.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--part", choices=["overhead", "scaling", "all"], default="all")
    p.add_argument("--output", default="results/bench_engine.json", help="JSON report")
    p.add_argument("--plot", default="results/bench_engine.png",
                   help="PNG of the scaling part ('' for none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tmpdir", default=None, help="where the Zarr stores are written")
    p.add_argument("--malloc-trim", type=_malloc_modes, default=["default"],
                   help="cluster runs with MALLOC_TRIM_THRESHOLD_ from distributed (default), "
                        f"set to {MALLOC_OFF_VALUE} (off) or not set (unset); comma-separated, "
                        "'both' = default,off, 'all'. Scaling uses the first")
    g = p.add_argument_group("overhead")
    g.add_argument("--n-samples", type=positive_count, default=1_000_000)
    g.add_argument("--n-features", type=positive_count, default=16)
    g.add_argument("--n-components", type=positive_count, default=25)
    g.add_argument("--repeats", type=positive_count, default=5, help="timed passes (median)")
    g.add_argument("--chunks", type=positive_count, nargs="+", default=[10, 100],
                   help="chunk counts of the persisted cluster runs")
    g.add_argument("--threads-chunks", type=positive_count, default=10,
                   help="chunk count on the threaded scheduler")
    g.add_argument("--tiny-samples", type=positive_count, default=10_000)
    g.add_argument("--tiny-repeats", type=positive_count, default=30)
    g = p.add_argument_group("scaling")
    g.add_argument("--scaling-n", type=positive_count, nargs="+", default=[100_000, 1_000_000,
                                                                  10_000_000])
    g.add_argument("--scaling-k", type=positive_count, nargs="+", default=[5, 25, 100])
    g.add_argument("--scaling-d", type=positive_count, nargs="+", default=[2, 16, 64, 128])
    g.add_argument("--scaling-chunk", type=positive_count, nargs="+",
                   default=[10_000, 100_000, 1_000_000], help="rows per chunk")
    g.add_argument("--base-n", type=positive_count, default=1_000_000)
    g.add_argument("--base-d", type=positive_count, default=16)
    g.add_argument("--base-k", type=positive_count, default=25)
    g.add_argument("--base-chunk", type=positive_count, default=100_000)
    g.add_argument("--scaling-repeats", type=positive_count, default=3)
    g.add_argument("--memory-limit-gb", type=float, default=4.0,
                   help="data of more N*D*8 bytes is read out of core from Zarr every pass")
    g.add_argument("--max-driver-gb", type=float, default=0.5,
                   help="data of more N*D*8 bytes is generated chunk-wise into Zarr, never "
                        "held whole on the driver")
    args = p.parse_args(argv)
    if args.repeats < 5:
        p.error("--repeats must be >= 5")
    return args


def main(argv=None):
    args = parse_args(argv)
    params = dict(vars(args))
    params["pass"] = ("em_update(engine, MixtureParams(w, m, c), Projection.identity(), "
                      "covariance_floor=1e-6, weight_concentration=0.0)")
    params["env_" + MALLOC_KEY] = os.environ.get(MALLOC_KEY)
    report = Report("bench_engine", params)
    if args.part in ("overhead", "all"):
        run_overhead(args, report)
        report.write(args.output)
    if args.part in ("scaling", "all"):
        run_scaling(args, report)
    path = report.write(args.output)
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
