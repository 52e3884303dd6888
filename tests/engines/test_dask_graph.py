"""The Dask engine's pass graph against the dense reference and the in-process engine, on a
real LocalCluster (two worker processes) and on Dask's threads."""

import dask
import dask.array as da
import numpy as np
import pytest
from cluster_checks import eventually, joint_spec, n_pass_tasks, pass_tasks, scheduler_keys

from dask_biglearn.algebra import constrain_covariances
from dask_biglearn.engines import DaskEngine, InProcessEngine
from dask_biglearn.fit import em_update
from dask_biglearn.kernels.stats import combine_stat_lists
from dask_biglearn.model import MixtureParams
from dask_biglearn.projection import MATCHING_KINDS as KINDS
from dask_biglearn.projection import Projection
from dask_biglearn.testing import (
    make_projection,
    paper_biglearn,
    random_params,
    reference_em_update,
)

CHUNKINGS = [600, 250, 97, (300, 1, 299)]


def engine_update(engine, params, P, floor=1e-3, alpha=0.1, covariance_type="full"):
    return em_update(engine, MixtureParams(*params), Projection("x", P),
                     covariance_floor=floor, weight_concentration=alpha,
                     covariance_type=covariance_type)


def assert_matches_reference(X, params, P, got, shift, tol=1e-10, covariance_type="full"):
    new, ll = got
    rw, rm, rc, rll = reference_em_update(X, *params, P, covariance_floor=1e-3,
                                          weight_concentration=0.1, shrink_center=shift,
                                          covariance_type=covariance_type)
    np.testing.assert_allclose(new.weights, rw, rtol=0, atol=tol)
    np.testing.assert_allclose(new.means, rm, rtol=0, atol=tol * np.abs(X).max())
    np.testing.assert_allclose(new.covariances, rc, rtol=0, atol=tol * np.abs(rc).max())
    assert ll == pytest.approx(rll, abs=tol * abs(rll))


def dask_update(X, chunks, params, P, **engine_kwargs):
    with DaskEngine(da.from_array(X, chunks=(chunks, -1)), **engine_kwargs) as engine:
        return engine_update(engine, params, P), engine.summaries.shift


@pytest.mark.parametrize("split_every", [2, None])
@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("kind", KINDS)
def test_distributed_update_matches_reference(client, blobs, kind, chunks, split_every):
    X, _ = blobs
    params = random_params(7, X, 4)
    P = make_projection(kind, X.shape[1], seed=11)
    got, shift = dask_update(X, chunks, params, P, split_every=split_every)
    assert_matches_reference(X, params, P, got, shift)


@pytest.mark.parametrize("covariance_type", ["tied", "diag", "spherical"])
@pytest.mark.parametrize("kind", KINDS)
def test_distributed_update_of_each_covariance_type_matches_reference(client, blobs, kind,
                                                                      covariance_type):
    X, _ = blobs
    w, m, c = random_params(7, X, 4)
    params = (w, m, constrain_covariances(c, covariance_type, 1e-3, w))
    P = make_projection(kind, X.shape[1], seed=11)
    with DaskEngine(da.from_array(X, chunks=(97, -1))) as engine:
        got = engine_update(engine, params, P, covariance_type=covariance_type)
        shift = engine.summaries.shift
    assert_matches_reference(X, params, P, got, shift, covariance_type=covariance_type)


@pytest.mark.parametrize("kind", KINDS)
def test_float32_products_on_a_cluster_match_the_reference(client, blobs, kind):
    """``biglearn.float32-products`` reaches the workers in every spec: float32 chunks are
    passed in float32 there too, to 1e-5 of the float64 reference on the same values."""
    X, _ = blobs
    X32 = X.astype(np.float32)
    params = random_params(7, X, 4)
    P = make_projection(kind, X.shape[1], seed=11)
    with dask.config.set({"biglearn.float32-products": True}):
        got, shift = dask_update(X32, 97, params, P)
    assert_matches_reference(X32.astype(np.float64), params, P, got, shift, tol=1e-5)
    exact, shift = dask_update(X32, 97, params, P)  # off: float64, exact
    assert_matches_reference(X32.astype(np.float64), params, P, exact, shift)
    assert np.abs(got[0].covariances - exact[0].covariances).max() > 0  # it did differ


@pytest.mark.parametrize("kind", KINDS)
def test_threaded_update_matches_in_process(blobs, kind):
    X, _ = blobs
    params = random_params(8, X, 4)
    P = make_projection(kind, X.shape[1], seed=12)
    with dask.config.set(scheduler="threads"):
        (new_d, ll_d), shift = dask_update(X, 97, params, P, split_every=3)
    with InProcessEngine(X) as engine:
        np.testing.assert_array_equal(engine.summaries.shift, shift)
        new_i, ll_i = engine_update(engine, params, P)
    for a, b in zip((new_d.weights, new_d.means, new_d.covariances),
                    (new_i.weights, new_i.means, new_i.covariances), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    assert ll_d == pytest.approx(ll_i, rel=1e-13)


def test_summary_pass_matches_numpy(blobs):
    X, _ = blobs
    with dask.config.set(scheduler="threads"), \
            DaskEngine(da.from_array(X.astype(np.float32), chunks=(77, -1))) as engine, \
            InProcessEngine(X.astype(np.float32)) as local:
        for field in ("shift", "var", "min", "max"):
            np.testing.assert_array_equal(getattr(engine.summaries, field),
                                          getattr(local.summaries, field))
        assert engine.summaries.n_samples == 600


def _max_dependencies(graph):
    from dask.core import get_dependencies

    return max(len(get_dependencies(graph, k)) for k in graph)


@pytest.mark.parametrize("split_every", [2, 3, 8])
def test_tree_reduction_respects_split_every(blobs, split_every):
    X, _ = blobs
    params = random_params(9, X, 4)
    with dask.config.set(scheduler="threads"), \
            DaskEngine(da.from_array(X, chunks=(20, -1)), split_every=split_every) as engine:
        spec = joint_spec(engine, params)
        graph, keys = engine.stats_graph(spec)
        combines = [k for k, v in graph.items()
                    if isinstance(v, tuple) and v[0] is combine_stat_lists]
        assert combines, "the pass must reduce through combine tasks"
        assert max(len(graph[k][1]) for k in combines) <= split_every
        assert _max_dependencies(graph) <= max(split_every, 2)  # chunk: block (+ spec)
        depth = max(int(k[0].rsplit("-", 1)[1]) for k in combines)
        # The last sum (of at most split_every partial results) is the driver's.
        assert depth == int(np.ceil(np.log(30) / np.log(split_every) - 1e-9)) - 1
        assert 2 <= len(keys) <= split_every
        assert set(keys) <= set(combines)
        # The partial results cover every chunk once: their sum is the whole pass.
        (got,) = combine_stat_lists(dask.get(graph, keys))
        with InProcessEngine(X) as local:
            want = local.run_pass(spec)
    np.testing.assert_allclose(got.second_moment, want.second_moment, rtol=1e-12)
    assert got.log_lik_sum == pytest.approx(want.log_lik_sum, rel=1e-12)
    assert got.n_rows == 600


def test_only_statistics_reach_the_client(client):
    """The scheduler's view of a pass over 1.6 MB of data read from its source: no task
    reads more than ``split_every`` inputs, and what the client receives is a few hundred
    bytes a key."""
    from distributed import wait

    X = np.random.default_rng(0).normal(size=(50_000, 4))
    params = random_params(1, X, 3)
    with DaskEngine(da.from_array(X, chunks=(2000, -1)), split_every=4,
                    persist=False) as engine:
        graph, keys = engine.stats_graph(joint_spec(engine, params))
        futures = client.get(graph, keys, sync=False)
        wait(futures)

        def task_view(dask_scheduler, keys=tuple(f.key for f in futures)):
            tasks = dask_scheduler.tasks
            return (max(len(ts.dependencies) for ts in tasks.values()),
                    [tasks[k].nbytes for k in keys], len(tasks))

        max_inputs, result_bytes, n_tasks = client.run_on_scheduler(task_view)
        parts = client.gather(futures)
    assert max_inputs <= 4
    assert 2 <= len(futures) <= 4 and n_tasks > 25  # 25 chunks, their tasks and combines
    assert max(result_bytes) < 2000  # K (1 + m + m^2) + 2 numbers, whatever the rows
    assert sum(p[0].n_rows for p in parts) == 50_000


@pytest.mark.parametrize("inline_bytes", [0, 2**20])
def test_spec_travels_inline_or_as_a_key(client, blobs, inline_bytes):
    """A small spec is written into the chunk tasks, a large one is a key of its own. Both
    routes give the reference update on the cluster."""
    X, _ = blobs
    params = random_params(11, X, 4)
    P = make_projection("rotated_marginal", 3)
    got, shift = dask_update(X, 97, params, P, inline_spec_bytes=inline_bytes, actors=False)
    assert_matches_reference(X, params, P, got, shift)
    with DaskEngine(da.from_array(X, chunks=(97, -1)), inline_spec_bytes=inline_bytes) as engine:
        graph, _ = engine.stats_graph(joint_spec(engine, params))
    spec_keys = [k for k in graph if isinstance(k, str) and k.endswith("-spec")]
    assert len(spec_keys) == (1 if inline_bytes == 0 else 0)


def test_large_arrays_are_not_persisted_and_read_every_pass(client, blobs):
    """The out-of-core route: one task per chunk per pass, nothing kept on the cluster."""
    X, _ = blobs
    params = random_params(14, X, 4)
    P = make_projection("rotated_marginal", 3, seed=15)
    with DaskEngine(da.from_array(X, chunks=(100, -1)), persist=False) as engine:
        got, tasks = pass_tasks(client, lambda: engine_update(engine, params, P))
        # Nothing is kept: once the pass's results are released the scheduler holds no key.
        assert eventually(lambda: scheduler_keys(client), set()) == set()
        shift = engine.summaries.shift
    chunk_tasks = [k for k, _ in tasks if "-chunk" in str(k)]
    assert len(chunk_tasks) == 6 and n_pass_tasks(tasks) == 6  # 6 chunks <= split_every 8
    assert_matches_reference(X, params, P, got, shift)


def test_arrays_derived_from_persisted_data(client, blobs):
    """astype / slicing / arithmetic on a persisted array: its chunks are not the persisted
    ones; persisted or read from the workers' chunks, the pass is right."""
    X, _ = blobs
    base = da.from_array(np.round(X * 100).astype(np.int64), chunks=(100, -1)).persist()
    derived = base.astype(np.float64)[:550] / 100.0
    Xd = np.round(X * 100)[:550] / 100.0
    params = random_params(16, Xd, 4)
    for persist in ("auto", False):
        with DaskEngine(derived, persist=persist) as engine:
            got = engine_update(engine, params, None)
            assert_matches_reference(Xd, params, None, got, engine.summaries.shift)
    Xp = client.persist(da.from_array(X, chunks=(150, -1)))
    with DaskEngine(Xp * 2.0 - 1.0, persist=False) as engine:
        got, tasks = pass_tasks(client, lambda: engine_update(engine, params, None))
        assert_matches_reference(2.0 * X - 1.0, params, None, got, engine.summaries.shift)
    assert sum("-chunk" in str(k) for k, _ in tasks) == 4  # one task per chunk, no actors


def test_concurrent_fits_on_the_same_data_do_not_collide(client, blobs):
    from concurrent.futures import ThreadPoolExecutor


    X, _ = blobs
    Xd = da.from_array(X, chunks=(150, -1)).persist()

    def fit(seed):
        return paper_biglearn(4, max_iter=6, check_every=3, covariance_floor=1e-3,
                                       random_state=seed).fit(Xd)

    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(fit, [0, 1]))
    for seed, est in zip([0, 1], together, strict=True):
        alone = paper_biglearn(4, max_iter=6, check_every=3, covariance_floor=1e-3,
                                        random_state=seed).fit(X)
        np.testing.assert_allclose(est.means_, alone.means_, atol=1e-8)


def test_batched_passes_share_one_read_of_the_data(client, blobs):
    """Three passes in three projections (restarts advancing together): the statistics of
    each pass alone, for the tasks of a single pass."""
    X, _ = blobs
    params = random_params(20, X, 4)
    specs_of = []
    for seed, kind in enumerate(KINDS):
        P = make_projection(kind, 3, seed=seed)
        specs_of.append(P)
    with DaskEngine(da.from_array(X, chunks=(100, -1)), persist=False) as engine:
        from dask_biglearn.fit.loop import pass_spec

        specs = [pass_spec(engine, MixtureParams(*params), P, moments=True)[0] for P in specs_of]
        together, tasks = pass_tasks(client, lambda: engine.run_passes(specs))
        alone = [engine.run_pass(spec) for spec in specs]
    assert n_pass_tasks(tasks) == 6  # one task per chunk, as for one pass
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_allclose(a.second_moment, b.second_moment, rtol=1e-13)
        assert a.log_lik_sum == pytest.approx(b.log_lik_sum, rel=1e-13)
