"""The Dask executor against the dense reference and the in-process engine.

Runs on a real ``distributed.LocalCluster`` with two worker processes and on Dask's threads.
"""

import dask
import dask.array as da
import numpy as np
import pytest
from conftest import make_blobs, random_params
from test_numerics import KINDS, make_projection

from dask_biglearn.em import MixtureParams, em_update
from dask_biglearn.engine import DaskEngine, InProcessEngine
from dask_biglearn.numerics import estep_coefficients
from dask_biglearn.projection import Projection
from dask_biglearn.testing import reference_em_update

CHUNKINGS = [600, 250, 97, (300, 1, 299)]


def dask_update(X, chunks, params, P, split_every=None, floor=1e-3, alpha=0.1):
    Xd = da.from_array(X, chunks=(chunks, -1))
    shift = X.mean(axis=0)
    engine = DaskEngine(Xd, shift, split_every=split_every)
    return em_update(engine, MixtureParams(*params), Projection("x", P),
                     covariance_floor=floor, weight_concentration=alpha), shift


def assert_matches_reference(X, params, P, got, shift, tol=1e-10):
    new, ll = got
    rw, rm, rc, rll = reference_em_update(X, *params, P, covariance_floor=1e-3,
                                          weight_concentration=0.1, shrink_center=shift)
    np.testing.assert_allclose(new.weights, rw, rtol=0, atol=tol)
    np.testing.assert_allclose(new.means, rm, rtol=0, atol=tol * np.abs(X).max())
    np.testing.assert_allclose(new.covariances, rc, rtol=0, atol=tol * np.abs(rc).max())
    assert ll == pytest.approx(rll, abs=tol * abs(rll))


@pytest.mark.parametrize("split_every", [2, None])
@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("kind", KINDS)
def test_distributed_update_matches_reference(client, blobs, kind, chunks, split_every):
    X, _ = blobs
    params = random_params(7, X, 4)
    P = make_projection(kind, X.shape[1], seed=11)
    got, shift = dask_update(X, chunks, params, P, split_every)
    assert_matches_reference(X, params, P, got, shift)


@pytest.mark.parametrize("kind", KINDS)
def test_threaded_update_matches_in_process(blobs, kind):
    X, _ = blobs
    params = random_params(8, X, 4)
    P = make_projection(kind, X.shape[1], seed=12)
    with dask.config.set(scheduler="threads"):
        (new_d, ll_d), shift = dask_update(X, 97, params, P, split_every=3)
    new_i, ll_i = em_update(InProcessEngine(X, shift), MixtureParams(*params),
                            Projection("x", P), covariance_floor=1e-3,
                            weight_concentration=0.1)
    for a, b in zip((new_d.weights, new_d.means, new_d.covariances),
                    (new_i.weights, new_i.means, new_i.covariances), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    assert ll_d == pytest.approx(ll_i, rel=1e-13)


def _max_dependencies(graph):
    from dask.core import get_dependencies

    return max(len(get_dependencies(graph, k)) for k in graph)


@pytest.mark.parametrize("split_every", [2, 3, 8])
def test_tree_reduction_respects_split_every(blobs, split_every):
    X, _ = blobs
    Xd = da.from_array(X, chunks=(20, -1))  # 30 chunks
    w, m, c = random_params(9, X, 4)
    shift = X.mean(axis=0)
    engine = DaskEngine(Xd, shift, split_every=split_every)
    graph, keys = engine.stats_graph(estep_coefficients(w, m, c, shift), None)
    from dask_biglearn.numerics import combine_stats

    combines = [k for k, v in graph.items() if isinstance(v, tuple) and v[0] is combine_stats]
    assert combines, "the pass must reduce through combine tasks"
    assert max(len(graph[k][1]) for k in combines) <= split_every
    assert _max_dependencies(graph) <= max(split_every, 4)  # chunk: block + 3 parameters
    depth = max(int(k[0].rsplit("-", 1)[1]) for k in combines)
    # The last sum (of at most split_every partial results) is the driver's.
    assert depth == int(np.ceil(np.log(30) / np.log(split_every) - 1e-9)) - 1
    assert 2 <= len(keys) <= split_every
    assert set(keys) <= set(combines)
    # The partial results cover every chunk once: their sum is the whole pass.
    got = combine_stats(dask.get(graph, keys))
    want = InProcessEngine(X, shift).run_pass(estep_coefficients(w, m, c, shift), None)
    np.testing.assert_allclose(got.second_moment, want.second_moment, rtol=1e-12)
    assert got.log_lik_sum == pytest.approx(want.log_lik_sum, rel=1e-12)


@pytest.mark.parametrize("inline_bytes", [0, 2**20])
def test_parameters_travel_inline_or_as_keys(client, blobs, monkeypatch, inline_bytes):
    """Small parameters are written into the chunk tasks; large ones are keys of their own.
    Both routes give the reference update on the cluster."""
    import dask_biglearn.engine as engine_module

    monkeypatch.setattr(engine_module, "INLINE_PARAMETER_BYTES", inline_bytes)
    X, _ = blobs
    params = random_params(11, X, 4)
    P = make_projection("rotated_marginal", 3)
    got, shift = dask_update(X, 97, params, P)
    assert_matches_reference(X, params, P, got, shift)
    engine = DaskEngine(da.from_array(X, chunks=(97, -1)), shift)
    graph, _ = engine.stats_graph(estep_coefficients(*params, shift), None)
    parameter_keys = [k for k in graph if isinstance(k, str) and k.endswith("-theta")]
    assert len(parameter_keys) == (1 if inline_bytes == 0 else 0)


def test_chunk_results_are_small(blobs):
    """What leaves a chunk is K (1 + m + m^2) + 1 numbers, whatever its number of rows."""
    from dask_biglearn.numerics import chunk_stats

    X, _ = blobs
    w, m, c = random_params(10, X, 4)
    P = make_projection("rotated_marginal", 3)
    shift = X.mean(axis=0)
    theta = estep_coefficients(w, m @ P.T, P @ c @ P.T, P @ shift)
    stats = chunk_stats(X, theta, shift, P)
    n_numbers = sum(np.size(s) for s in stats)
    k, mdim = 4, 2
    assert n_numbers == k * (1 + mdim + mdim * mdim) + 1


def _rows_by_worker(client, engine):
    who_has = client.who_has([engine._data_graph[k] for k in engine._block_keys])
    rows_of = dict(zip(engine._block_keys, engine._block_rows, strict=True))
    assert sum(rows_of.values()) == engine.n_samples
    rows = {}
    for group in engine._groups:
        (worker,) = set.intersection(*(set(who_has[k]) for k in group))  # one holder
        rows[worker] = rows.get(worker, 0) + sum(rows_of[k] for k in group)
    return rows


def test_persisted_chunks_are_grouped_by_worker(client, blobs):
    """On a cluster a pass costs one task per worker thread, whatever the number of chunks."""
    X, _ = blobs
    Xd = da.from_array(X, chunks=(40, -1))  # 15 chunks, persisted by the engine
    engine = DaskEngine(Xd, X.mean(axis=0))
    assert len(engine._block_keys) == 15
    assert len(engine._groups) == 2  # two single-threaded workers
    assert sorted(len(g) for g in engine._groups) == [7, 8]
    # Chunks copied to balance the workers have string keys, the others tuple keys.
    grouped = [k for g in engine._groups for k in g]
    assert len(grouped) == len(set(grouped)) == 15
    assert set(grouped) == set(engine._block_keys)
    assert sorted(_rows_by_worker(client, engine).values()) == [280, 320]


def test_chunks_all_on_one_worker_are_spread(client, blobs):
    """Data persisted on one worker is copied until both hold half; the pass still matches
    the reference and the caller's array is intact."""
    X, _ = blobs
    workers = sorted(client.nthreads())
    Xp = client.persist(da.from_array(X, chunks=(60, -1)), workers=workers[:1])  # 10 chunks
    from distributed import futures_of, wait

    wait(Xp)
    assert set().union(*client.who_has(futures_of(Xp)).values()) == {workers[0]}
    params = random_params(12, X, 4)
    P = make_projection("rotated_marginal", 3)
    shift = X.mean(axis=0)
    engine = DaskEngine(Xp, shift)
    assert _rows_by_worker(client, engine) == {workers[0]: 300, workers[1]: 300}
    got = em_update(engine, MixtureParams(*params), Projection("x", P), covariance_floor=1e-3,
                    weight_concentration=0.1)
    assert_matches_reference(X, params, P, got, shift)
    np.testing.assert_array_equal(Xp.compute(), X)


@pytest.mark.parametrize("kind", ["joint", "rotated_marginal"])
def test_one_chunk_is_shared_by_both_workers(client, blobs, kind):
    """A single chunk is split so that each worker holds half of its rows; the pass still
    matches the reference and the caller's chunk is intact."""
    X, _ = blobs
    Xp = client.persist(da.from_array(X, chunks=(-1, -1)))
    from distributed import futures_of, wait

    wait(Xp)
    params = random_params(14, X, 4)
    P = make_projection(kind, 3)
    shift = X.mean(axis=0)
    engine = DaskEngine(Xp, shift)
    assert sorted(engine._block_rows) == [300, 300]
    assert sorted(_rows_by_worker(client, engine).values()) == [300, 300]
    got = em_update(engine, MixtureParams(*params), Projection("x", P), covariance_floor=1e-3,
                    weight_concentration=0.1)
    assert_matches_reference(X, params, P, got, shift)
    assert len(futures_of(Xp)) == 1
    np.testing.assert_array_equal(Xp.compute(), X)


def test_uneven_chunks_are_balanced_to_within_the_tolerance(client):
    """Chunks of 500, 60 and 40 rows: moving whole chunks cannot balance two workers; a split
    brings both within 10 % of 300 rows, and the statistics are those of all 600 rows."""
    from dask_biglearn.engine import BALANCE_TOLERANCE

    X, _ = make_blobs(seed=3, n_samples=600)
    Xp = client.persist(da.from_array(X, chunks=((500, 60, 40), (3,))))
    engine = DaskEngine(Xp, X.mean(axis=0))
    rows = _rows_by_worker(client, engine)
    assert len(rows) == 2
    assert all(abs(r - 300) <= BALANCE_TOLERANCE * 300 for r in rows.values())
    params = random_params(15, X, 4)
    got = em_update(engine, MixtureParams(*params), Projection.identity(),
                    covariance_floor=1e-3, weight_concentration=0.1)
    assert_matches_reference(X, params, None, got, X.mean(axis=0))


@pytest.mark.parametrize("actors", [True, False])
@pytest.mark.parametrize("kind", ["joint", "rotated_marginal"])
def test_passes_through_actors_or_tasks_match_the_reference(client, blobs, actors, kind):
    """A pass is one direct call to an actor per worker, or one task per worker thread
    through the scheduler: the same statistics either way."""
    X, _ = blobs
    params = random_params(16, X, 4)
    P = make_projection(kind, 3)
    shift = X.mean(axis=0)
    engine = DaskEngine(da.from_array(X, chunks=(70, -1)), shift, actors=actors)
    assert (engine._actors is not None) == actors
    if actors:
        assert len(engine._actors) == 2  # one per worker
    got = em_update(engine, MixtureParams(*params), Projection("x", P), covariance_floor=1e-3,
                    weight_concentration=0.1)
    assert_matches_reference(X, params, P, got, shift)
    assert engine._actors is not None or not actors  # no fallback happened


def test_actors_are_used_for_small_persisted_data_only(client, blobs, monkeypatch):
    import dask_biglearn.engine as engine_module

    X, _ = blobs
    Xd = da.from_array(X, chunks=(100, -1))
    assert DaskEngine(Xd, X.mean(axis=0))._actors is not None
    assert DaskEngine(Xd, X.mean(axis=0), persist=False)._actors is None  # not persisted
    monkeypatch.setattr(engine_module, "ACTOR_PASS_BYTES", X.nbytes - 1)
    assert DaskEngine(Xd, X.mean(axis=0))._actors is None
    with pytest.raises(ValueError, match="actors must be"):
        DaskEngine(Xd, X.mean(axis=0), actors="yes")


def test_actor_runs_the_groups_of_a_multithreaded_worker_on_threads(blobs):
    """One worker with two threads: one actor, two groups run side by side."""
    from distributed import Client, LocalCluster

    X, _ = blobs
    params = random_params(17, X, 4)
    P = make_projection("marginal", 3)
    shift = X.mean(axis=0)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                      dashboard_address=":0", worker_dashboard_address=None) as cluster, \
            Client(cluster):
        engine = DaskEngine(da.from_array(X, chunks=(50, -1)), shift)
        assert len(engine._actors) == 1 and len(engine._groups) == 2
        got = em_update(engine, MixtureParams(*params), Projection("x", P),
                        covariance_floor=1e-3, weight_concentration=0.1)
        assert engine._actors is not None
    assert_matches_reference(X, params, P, got, shift)


def test_a_lost_worker_sends_passes_back_through_the_scheduler(blobs, caplog):
    """Killing the process of a worker that holds an actor: the next pass warns, runs as
    tasks (the scheduler recomputes the lost chunks) and still gives the right answer."""
    import logging
    import os
    import time

    from distributed import Client, LocalCluster

    X, _ = blobs
    params = random_params(18, X, 4)
    shift = X.mean(axis=0)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0", worker_dashboard_address=None) as cluster, \
            Client(cluster) as client:
        engine = DaskEngine(da.from_array(X, chunks=(100, -1)), shift)
        victim = engine._actors[0][0]._address
        client.run(os._exit, 1, workers=[victim], on_error="ignore")  # dies mid-call
        # Once the scheduler has told the client, the engine sees the lost actor before it
        # calls it (a call racing the news waits for distributed's connect timeout instead).
        deadline = time.monotonic() + 60
        while engine._actors[0][1].status == "finished" and time.monotonic() < deadline:
            time.sleep(0.05)
        with caplog.at_level(logging.WARNING, logger="dask_biglearn.engine"):
            got = em_update(engine, MixtureParams(*params), Projection.identity(),
                            covariance_floor=1e-3, weight_concentration=0.1)
        assert engine._actors is None
        assert "passes go through the scheduler" in caplog.text
    assert_matches_reference(X, params, None, got, shift)


def test_array_derived_from_persisted_data_is_not_persisted_but_read(client, blobs):
    """``persist=False`` on an array computed from persisted chunks: one task per chunk,
    no actors, computed from the chunks on the workers, and the pass is right."""
    X, _ = blobs
    Xp = client.persist(da.from_array(X, chunks=(150, -1)))
    Xd = Xp * 2.0 - 1.0
    shift = (2.0 * X - 1.0).mean(axis=0)
    engine = DaskEngine(Xd, shift, persist=False)
    assert engine._actors is None and len(engine._groups) == 4
    params = random_params(19, 2.0 * X - 1.0, 4)
    got = em_update(engine, MixtureParams(*params), Projection.identity(),
                    covariance_floor=1e-3, weight_concentration=0.1)
    assert_matches_reference(2.0 * X - 1.0, params, None, got, shift)


def test_large_arrays_are_not_persisted(client, blobs):
    X, _ = blobs
    Xd = da.from_array(X, chunks=(100, -1))
    engine = DaskEngine(Xd, X.mean(axis=0), persist=False)
    assert len(engine._groups) == 6  # one task per chunk, read from the source each pass
    from distributed import futures_of

    assert not futures_of(engine.X)


def test_unpersisted_pass_on_the_cluster_matches_reference(client, blobs):
    """The out-of-core path: every pass reads the chunks from their source."""
    X, _ = blobs
    params = random_params(14, X, 4)
    P = make_projection("rotated_marginal", 3, seed=15)
    shift = X.mean(axis=0)
    engine = DaskEngine(da.from_array(X, chunks=(70, -1)), shift, persist=False)
    got = em_update(engine, MixtureParams(*params), Projection("x", P),
                    covariance_floor=1e-3, weight_concentration=0.1)
    assert_matches_reference(X, params, P, got, shift)


def test_arrays_derived_from_persisted_data(client, blobs):
    """astype / slicing of a persisted array: its chunks are not the persisted ones."""
    X, _ = blobs
    base = da.from_array(np.round(X * 100).astype(np.int64), chunks=(100, -1)).persist()
    derived = base.astype(np.float64)[:550] / 100.0
    Xd = np.round(X * 100)[:550] / 100.0
    params = random_params(16, Xd, 4)
    shift = Xd.mean(axis=0)
    for persist in ("auto", False):
        engine = DaskEngine(derived, shift, persist=persist)
        got = em_update(engine, MixtureParams(*params), Projection.identity(),
                        covariance_floor=1e-3, weight_concentration=0.1)
        assert_matches_reference(Xd, params, None, got, shift)


def test_concurrent_fits_on_the_same_data_do_not_collide(client, blobs):
    from concurrent.futures import ThreadPoolExecutor

    from dask_biglearn import BigLearnGaussianMixture

    X, _ = blobs
    Xd = da.from_array(X, chunks=(150, -1)).persist()

    def fit(seed):
        return BigLearnGaussianMixture(4, max_iter=6, check_every=3, covariance_floor=1e-3,
                                       random_state=seed).fit(Xd)

    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(fit, [0, 1]))
    for seed, est in zip([0, 1], together, strict=True):
        alone = BigLearnGaussianMixture(4, max_iter=6, check_every=3, covariance_floor=1e-3,
                                        random_state=seed).fit(X)
        np.testing.assert_allclose(est.means_, alone.means_, atol=1e-8)
