"""Modest workers: two 600 MiB workers fit a Zarr store five times their total memory.

The store (uncompressed float64, so that reading it costs little CPU: what matters for the
workers is the size of the array they decompress, which here is also the file's) is written
chunk by chunk by the workers and removed at the end. The cluster is the test's own: the
session's workers have no memory limit.
"""

import shutil
import time

import dask.array as da
import numpy as np
import pytest

from dask_biglearn import GaussianMixture

zarr = pytest.importorskip("zarr")

MEMORY_LIMIT = 600 * 2**20
N_WORKERS = 2
N_FEATURES = 2
CHUNK_ROWS = 1_000_000  # 16 MB per chunk
STORE_FACTOR = 5


def _block(block_id, seed=0):
    """Rows of chunk ``block_id``: two clusters (30 % and 70 %), seeded by the chunk."""
    rng = np.random.default_rng((seed, block_id[0]))
    centre = np.where(rng.random(CHUNK_ROWS) < 0.3, -2.0, 2.0)[:, None]
    return centre + rng.standard_normal((CHUNK_ROWS, N_FEATURES))


def write_store(path, n_chunks):
    X = da.map_blocks(lambda block_id=None: _block(block_id), dtype=np.float64,
                      chunks=((CHUNK_ROWS,) * n_chunks, (N_FEATURES,)))
    X.to_zarr(str(path), component="X", mode="w", compressors=None)
    return da.from_zarr(str(path), component="X")


def removed_workers(dask_scheduler):
    """The scheduler's record of workers it lost (a restarted worker is one)."""
    return [msg for _, msg in dask_scheduler.get_events("all")
            if isinstance(msg, dict) and msg.get("action") == "remove-worker"]


@pytest.mark.filterwarnings("ignore:Best performing initialization did not converge")
def test_two_600mib_workers_fit_a_store_five_times_their_memory(tmp_path):
    from distributed import Client, LocalCluster

    store = tmp_path / "big.zarr"
    n_chunks = -(-STORE_FACTOR * N_WORKERS * MEMORY_LIMIT // (CHUNK_ROWS * N_FEATURES * 8))
    make = lambda: GaussianMixture(2, max_iter=1, tol=0.0, init_params="random",
                                   random_state=0)
    try:
        with LocalCluster(n_workers=N_WORKERS, threads_per_worker=1,
                          memory_limit=MEMORY_LIMIT, dashboard_address=None,
                          worker_dashboard_address=None) as cluster, Client(cluster) as client:
            Xz = write_store(store, n_chunks)
            assert Xz.nbytes >= STORE_FACTOR * N_WORKERS * MEMORY_LIMIT
            workers_before = set(client.scheduler_info()["workers"])
            started = time.perf_counter()
            model = make().fit(Xz)
            seconds = time.perf_counter() - started
            assert set(client.scheduler_info()["workers"]) == workers_before
            assert client.run_on_scheduler(removed_workers) == []
        assert model.n_data_passes_ == 1 + 1 + 1  # summaries, one EM pass, the evaluation
        X = np.empty(Xz.shape)
        da.store(Xz, X, lock=False, scheduler="threads")
        in_memory = make().fit(X)
        del X
    finally:
        shutil.rmtree(store, ignore_errors=True)
    np.testing.assert_allclose(model.means_, in_memory.means_, rtol=0, atol=1e-8)
    np.testing.assert_allclose(model.covariances_, in_memory.covariances_, rtol=0, atol=1e-8)
    np.testing.assert_allclose(model.weights_, in_memory.weights_, rtol=0, atol=1e-8)
    print(f"out of core: {Xz.nbytes / 2**30:.1f} GiB on {N_WORKERS} x "
          f"{MEMORY_LIMIT / 2**20:.0f} MiB workers, {model.n_data_passes_} passes in "
          f"{seconds:.0f} s")
