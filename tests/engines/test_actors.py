"""The actor route: one actor per worker, a pass without tasks, the fallback to tasks when a
worker is lost. Seen through the scheduler (its actors, the task stream)."""

import logging
import os
import time

import dask
import dask.array as da
import pytest
from cluster_checks import actor_workers, eventually, joint_spec, n_pass_tasks, pass_tasks
from distributed import Client, LocalCluster
from test_dask_graph import assert_matches_reference, engine_update

from dask_biglearn.engines import DaskEngine
from dask_biglearn.testing import make_projection, random_params


@pytest.mark.parametrize("actors", [True, False])
@pytest.mark.parametrize("kind", ["joint", "rotated_marginal"])
def test_passes_through_actors_or_tasks_match_the_reference(client, blobs, actors, kind):
    """A pass is one direct call to an actor per worker (no task), or one task per worker
    thread through the scheduler: the same statistics either way."""
    X, _ = blobs
    params = random_params(16, X, 4)
    P = make_projection(kind, 3)
    with DaskEngine(da.from_array(X, chunks=(70, -1)), actors=actors) as engine:
        assert len(actor_workers(client)) == (2 if actors else 0)  # one per worker
        got, tasks = pass_tasks(client, lambda: engine_update(engine, params, P))
        assert n_pass_tasks(tasks) == (0 if actors else 2)
        assert_matches_reference(X, params, P, got, engine.summaries.shift)
    assert eventually(lambda: actor_workers(client), []) == []


def test_actors_are_used_for_small_persisted_data_only(client, blobs):
    X, _ = blobs
    Xd = da.from_array(X, chunks=(100, -1))
    for kwargs, n_actors in [({}, 2), ({"persist": False}, 0),
                             ({"actor_pass_bytes": X.nbytes - 1}, 0)]:
        with DaskEngine(Xd, **kwargs):
            assert len(actor_workers(client)) == n_actors, kwargs
        assert eventually(lambda: actor_workers(client), []) == []
    with pytest.raises(ValueError, match="actors must be"):
        DaskEngine(Xd, actors="yes")


def test_actor_runs_the_groups_of_a_multithreaded_worker(blobs):
    """One worker with two threads: one actor, whose two groups together give the pass."""
    X, _ = blobs
    params = random_params(17, X, 4)
    P = make_projection("marginal", 3)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                      dashboard_address=":0", worker_dashboard_address=None) as cluster, \
            Client(cluster) as client, \
            DaskEngine(da.from_array(X, chunks=(50, -1)), split_every=64) as engine:
        assert len(actor_workers(client)) == 1
        got, tasks = pass_tasks(client, lambda: engine_update(engine, params, P))
        assert n_pass_tasks(tasks) == 0
        assert_matches_reference(X, params, P, got, engine.summaries.shift)
        _graph, keys = engine.stats_graph(joint_spec(engine, params))
        assert len(keys) == 2  # two groups, one per thread


def test_a_lost_worker_sends_passes_back_through_the_scheduler(blobs, caplog):
    """Killing the process of a worker that holds an actor: the next pass warns, runs as
    tasks (the scheduler recomputes the lost chunks) and still gives the right answer."""
    X, _ = blobs
    params = random_params(18, X, 4)
    # A call that races the news of the loss waits for the connect timeout: keep it short.
    with dask.config.set({"distributed.comm.timeouts.connect": "5s"}), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                         dashboard_address=":0", worker_dashboard_address=None) as cluster, \
            Client(cluster) as client, DaskEngine(da.from_array(X, chunks=(100, -1))) as engine:
        victim = actor_workers(client)[0]
        client.run(os._exit, 1, workers=[victim], on_error="ignore")  # dies mid-call
        deadline = time.monotonic() + 60
        while len(client.scheduler_info()["workers"]) > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        with caplog.at_level(logging.WARNING, logger="dask_biglearn"):
            got, tasks = pass_tasks(client, lambda: engine_update(engine, params, None))
        assert "passes go through the scheduler" in caplog.text
        assert n_pass_tasks(tasks) >= 1  # the pass ran as tasks
        assert_matches_reference(X, params, None, got, engine.summaries.shift)
        _, tasks = pass_tasks(client, lambda: engine_update(engine, params, None))
        assert n_pass_tasks(tasks) >= 1  # and so do the next ones


def test_persist_and_actors_are_dask_configuration_keys(client, blobs):
    """What a user can set without touching the engine: ``biglearn.persist`` and
    ``biglearn.actors`` (also as environment strings), seen on the scheduler."""
    X, _ = blobs
    Xd = da.from_array(X, chunks=(100, -1))
    cases = [({}, 2, True), ({"biglearn.actors": False}, 0, True),
             ({"biglearn.actors": "false"}, 0, True), ({"biglearn.persist": False}, 0, False),
             ({"biglearn.actor-pass-bytes": X.nbytes - 1}, 0, True)]
    for config, n_actors, persisted in cases:
        with dask.config.set(config), DaskEngine(Xd) as engine:
            assert len(actor_workers(client)) == n_actors, config
            assert engine.n_pass_tasks == (2 if persisted else 6), config
        assert eventually(lambda: actor_workers(client), []) == []
    with dask.config.set({"biglearn.persist": "sometimes"}), \
            pytest.raises(ValueError, match="biglearn.persist"):
        DaskEngine(Xd)
