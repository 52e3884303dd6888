"""Modest workers: two 600 MB workers fit a Zarr store five times their total memory.

The store holds 6.4 GB of float32 values (rounded to a coarse grid, so that it takes little
disk and decompresses fast: what the workers hold in memory is the array's size, not the
file's). Its own cluster: the session's workers have no memory limit.
"""

import time

import dask.array as da
import numpy as np
import pytest

from dask_biglearn import GaussianMixture

zarr = pytest.importorskip("zarr")

MEMORY_LIMIT = 600 * 2**20
N_WORKERS = 2
N_FEATURES = 2
CHUNK_ROWS = 4_000_000  # 32 MB of float32 per chunk


def _block(block_id, seed=0):
    """Rows of chunk ``block_id``: two clusters, on a grid of step 1/8 (compressible)."""
    rng = np.random.default_rng((seed, block_id[0]))
    centre = np.where(rng.random(CHUNK_ROWS) < 0.3, -2.0, 2.0)[:, None]
    values = centre + rng.standard_normal((CHUNK_ROWS, N_FEATURES))
    return (np.round(values * 8) / 8).astype(np.float32)


def _write_store(path, n_chunks):
    X = da.map_blocks(lambda block_id=None: _block(block_id), dtype=np.float32,
                      chunks=((CHUNK_ROWS,) * n_chunks, (N_FEATURES,)))
    X.to_zarr(str(path), component="X", overwrite=True)
    return da.from_zarr(str(path), component="X")


def _removed_workers(dask_scheduler):
    return [msg for _, msg in dask_scheduler.get_events("all")
            if isinstance(msg, dict) and msg.get("action") == "remove-worker"]


def test_two_600mb_workers_fit_a_store_five_times_their_memory(tmp_path):
    from distributed import Client, LocalCluster

    n_chunks = -(-5 * N_WORKERS * MEMORY_LIMIT // (CHUNK_ROWS * N_FEATURES * 4))
    with LocalCluster(n_workers=N_WORKERS, threads_per_worker=1, memory_limit=MEMORY_LIMIT,
                      dashboard_address=None, worker_dashboard_address=None) as cluster, \
            Client(cluster) as client:
        Xz = _write_store(tmp_path / "big.zarr", n_chunks)
        assert Xz.nbytes >= 5 * N_WORKERS * MEMORY_LIMIT
        workers_before = set(client.scheduler_info()["workers"])
        started = time.perf_counter()
        model = GaussianMixture(2, max_iter=2, tol=0.0, random_state=0).fit(Xz)
        seconds = time.perf_counter() - started
        assert set(client.scheduler_info()["workers"]) == workers_before
        assert client.run_on_scheduler(_removed_workers) == []
        X = Xz.compute(scheduler="threads")
    assert model.n_data_passes_ == 1 + 2 + 1  # summaries, two EM passes, the evaluation
    in_memory = GaussianMixture(2, max_iter=2, tol=0.0, random_state=0).fit(X)
    np.testing.assert_allclose(model.means_, in_memory.means_, rtol=0, atol=1e-8)
    np.testing.assert_allclose(model.covariances_, in_memory.covariances_, rtol=0, atol=1e-8)
    np.testing.assert_allclose(model.weights_, in_memory.weights_, rtol=0, atol=1e-8)
    print(f"out of core: {Xz.nbytes / 1e9:.1f} GB on {N_WORKERS} x {MEMORY_LIMIT / 2**20:.0f} "
          f"MiB workers, {seconds:.0f} s for {model.n_data_passes_} passes")
