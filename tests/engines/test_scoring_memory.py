"""Scoring on small workers: after a fit on the cluster, ``predict(X).to_zarr``,
``predict_proba``, ``score_samples`` and ``score`` of 250k- and 500k-row chunks of 16 float32
columns run on two 500 MB workers with no worker paused, restarted or lost, and give what the
model gives in process.

The new user's case (review of 2026-12-07, measured in ``benchmarks/bench_predict_memory.py``):
workers that have run a fit hold the compiled kernels, and reading a chunk from Zarr (and
merging chunks, for the rechunked store) takes a few times the chunk; scoring a chunk as one
float64 block took several times more on top, which paused and restarted them at 250k rows and
killed them at 500k. The cluster is the test's own (the session's workers have no memory
limit); the store lives under ``tmp_path``.
"""

import warnings
from collections import Counter

import dask.array as da
import numpy as np
import pytest

from dask_biglearn import GaussianMixture

zarr = pytest.importorskip("zarr")

MEMORY_LIMIT = "500MB"
N_ROWS = 500_000
N_FEATURES = 16
N_COMPONENTS = 12


def memory_incidents(dask_scheduler):
    """Every worker the scheduler saw paused, restarted for memory, or lost."""
    found = []
    for topic, events in dask_scheduler.get_events().items():
        for _, msg in events:
            if not isinstance(msg, dict):
                continue
            if topic == "worker-restart-memory":
                found.append(("restarted", msg.get("worker")))
            elif msg.get("action") == "remove-worker":
                found.append(("removed", msg.get("worker", topic)))
            elif msg.get("action") == "worker-status-change" and msg.get("status") == "paused":
                found.append(("paused", topic))
    return found


@pytest.fixture(scope="module")
def fitted_on_small_workers(tmp_path_factory):
    """A store of 500k rows in 250k-row chunks, two 500 MB workers, and a model fitted there
    (which leaves the workers as a fit leaves them: the compiled kernels loaded)."""
    from distributed import Client, LocalCluster

    rng = np.random.default_rng(0)
    centres = rng.normal(scale=3.0, size=(N_COMPONENTS, N_FEATURES))
    X = (centres[rng.integers(N_COMPONENTS, size=N_ROWS)]
         + rng.standard_normal((N_ROWS, N_FEATURES))).astype(np.float32)
    store = tmp_path_factory.mktemp("scoring") / "X.zarr"
    zarr.create_array(store=str(store), shape=X.shape, chunks=(250_000, N_FEATURES),
                      dtype="float32")[:] = X
    with LocalCluster(n_workers=2, threads_per_worker=1, memory_limit=MEMORY_LIMIT,
                      dashboard_address=None, worker_dashboard_address=None) as cluster, \
            Client(cluster) as client:
        Xz = da.from_zarr(str(store))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # one iteration: not converged
            model = GaussianMixture(N_COMPONENTS, max_iter=1, init_params="random",
                                    random_state=0).fit(Xz)
        yield client, model, X, Xz, store.parent


@pytest.fixture(scope="module")
def in_process(fitted_on_small_workers):
    """What the model gives for the rows in this process."""
    _, model, X, _, _ = fitted_on_small_workers
    return {"predict": model.predict(X), "predict_proba": model.predict_proba(X),
            "score_samples": model.score_samples(X)}


@pytest.mark.parametrize("chunk_rows", [250_000, 500_000])
def test_scoring_chunks_of_250k_and_500k_rows_pauses_restarts_and_kills_no_worker(
        fitted_on_small_workers, in_process, chunk_rows):
    client, model, _, Xz, folder = fitted_on_small_workers
    workers = set(client.scheduler_info()["workers"])
    before = client.run_on_scheduler(memory_incidents)
    Xc = Xz if chunk_rows == 250_000 else Xz.rechunk((chunk_rows, N_FEATURES))
    out = folder / f"labels-{chunk_rows}.zarr"

    model.predict(Xc).to_zarr(str(out))
    results = {"predict": np.asarray(zarr.open_array(str(out)))}
    results["predict_proba"] = model.predict_proba(Xc).compute()
    results["score_samples"] = model.score_samples(Xc).compute()
    score = model.score(Xc)

    new = Counter(client.run_on_scheduler(memory_incidents)) - Counter(before)
    assert sorted(new.elements()) == []
    assert set(client.scheduler_info()["workers"]) == workers
    np.testing.assert_array_equal(results["predict"], in_process["predict"])
    for name in ("predict_proba", "score_samples"):
        np.testing.assert_allclose(results[name], in_process[name], rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(score, in_process["score_samples"].mean(), rtol=1e-12)
