"""Placement on a cluster: chunks grouped by worker and balanced over the workers, seen
through the scheduler (task streams and the statistics each task returned)."""

import dask.array as da
import numpy as np
from cluster_checks import n_pass_tasks, pass_tasks, rows_by_worker
from distributed import futures_of, wait
from test_dask_graph import assert_matches_reference, engine_update

from dask_biglearn.engines import DaskEngine
from dask_biglearn.engines.placement import BALANCE_TOLERANCE
from dask_biglearn.testing import make_blobs, make_projection, random_params


def test_persisted_chunks_are_grouped_by_worker(client, blobs):
    """On a cluster a pass costs one task per worker thread, whatever the number of chunks."""
    X, _ = blobs
    params = random_params(3, X, 4)
    Xd = da.from_array(X, chunks=(40, -1))  # 15 chunks, persisted by the engine
    with DaskEngine(Xd, split_every=64, actors=False) as engine:
        rows = rows_by_worker(client, engine, params)
        _, tasks = pass_tasks(client, lambda: engine_update(engine, params, None))
    assert sorted(rows.values()) == [280, 320]  # 7 and 8 chunks of 40 rows
    assert n_pass_tasks(tasks) == 2 and len({w for _, w in tasks}) == 2


def test_chunks_all_on_one_worker_are_spread(client, blobs):
    """Data persisted on one worker is copied until both hold half; the pass still matches
    the reference and the caller's array is intact."""
    X, _ = blobs
    workers = sorted(client.nthreads())
    Xp = client.persist(da.from_array(X, chunks=(60, -1)), workers=workers[:1])  # 10 chunks
    wait(Xp)
    assert set().union(*client.who_has(futures_of(Xp)).values()) == {workers[0]}
    params = random_params(12, X, 4)
    P = make_projection("rotated_marginal", 3)
    with DaskEngine(Xp, split_every=64, actors=False) as engine:
        assert rows_by_worker(client, engine, params) == {workers[0]: 300, workers[1]: 300}
        got = engine_update(engine, params, P)
        assert_matches_reference(X, params, P, got, engine.summaries.shift)
    np.testing.assert_array_equal(Xp.compute(), X)


def test_one_chunk_is_shared_by_both_workers(client, blobs):
    """A single chunk is split so that each worker holds half of its rows; the pass still
    matches the reference and the caller's chunk is intact."""
    X, _ = blobs
    Xp = client.persist(da.from_array(X, chunks=(-1, -1)))
    wait(Xp)
    params = random_params(14, X, 4)
    for kind in ("joint", "rotated_marginal"):
        P = make_projection(kind, 3)
        with DaskEngine(Xp, split_every=64, actors=False) as engine:
            assert sorted(rows_by_worker(client, engine, params).values()) == [300, 300]
            got = engine_update(engine, params, P)
            assert_matches_reference(X, params, P, got, engine.summaries.shift)
    assert len(futures_of(Xp)) == 1
    np.testing.assert_array_equal(Xp.compute(), X)


def test_uneven_chunks_are_balanced_to_within_the_tolerance(client):
    """Chunks of 500, 60 and 40 rows: moving whole chunks cannot balance two workers; a split
    brings both within 10 % of 300 rows, and the statistics are those of all 600 rows."""
    X, _ = make_blobs(seed=3, n_samples=600)
    Xp = client.persist(da.from_array(X, chunks=((500, 60, 40), (3,))))
    params = random_params(15, X, 4)
    with DaskEngine(Xp, split_every=64, actors=False) as engine:
        rows = rows_by_worker(client, engine, params)
        got = engine_update(engine, params, None)
        assert_matches_reference(X, params, None, got, engine.summaries.shift)
    assert len(rows) == 2
    assert all(abs(r - 300) <= BALANCE_TOLERANCE * 300 for r in rows.values())
