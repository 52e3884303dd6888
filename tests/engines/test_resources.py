"""Engines own what they place on a cluster and release it: after a fit (finished, stopped
or failed) the scheduler holds no key and no actor of it."""

import dask.array as da
import numpy as np
import pytest
from cluster_checks import actor_workers, eventually, scheduler_keys
from distributed import futures_of, wait

from dask_biglearn import BigLearnGaussianMixture, GaussianMixture
from dask_biglearn.engines import DaskEngine, InProcessEngine

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _fit(Est, X, **kwargs):
    return Est(3, max_iter=4, covariance_floor=1e-3, random_state=0, **kwargs).fit(X)


@pytest.mark.parametrize("Est", [GaussianMixture, BigLearnGaussianMixture])
def test_after_a_fit_nothing_of_it_is_left_on_the_cluster(client, blobs, Est):
    X, _ = blobs
    assert eventually(lambda: scheduler_keys(client), set()) == set()
    _fit(Est, da.from_array(X, chunks=(100, -1)))  # persisted by the engine, with actors
    assert eventually(lambda: scheduler_keys(client), set()) == set()
    assert actor_workers(client) == []


def test_a_caller_s_persisted_data_stays_and_only_it(client, blobs):
    X, _ = blobs
    Xp = client.persist(da.from_array(X, chunks=(-1, -1)))  # one chunk: split over workers
    wait(Xp)
    theirs = {f.key for f in futures_of(Xp)}
    _fit(BigLearnGaussianMixture, Xp)
    assert eventually(lambda: scheduler_keys(client), theirs) == theirs
    np.testing.assert_array_equal(Xp.compute(), X)


def test_a_failed_or_stopped_fit_releases_its_engine(client, blobs):
    X, _ = blobs
    Xd = da.from_array(X, chunks=(100, -1))

    def fail(state, event):
        if state.iteration == 2:
            raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        _fit(BigLearnGaussianMixture, Xd, callbacks=[fail])
    assert eventually(lambda: scheduler_keys(client), set()) == set()
    est = _fit(BigLearnGaussianMixture, Xd, callbacks=[lambda state, event: True])
    assert est.n_iter_ == 1
    assert eventually(lambda: scheduler_keys(client), set()) == set()


def test_engines_are_context_managers(client, blobs):
    X, _ = blobs
    with DaskEngine(da.from_array(X, chunks=(100, -1))) as engine:
        assert len(actor_workers(client)) == 2 and scheduler_keys(client)
    assert engine.X is None
    assert eventually(lambda: scheduler_keys(client), set()) == set()
    engine.close()  # closing twice is harmless
    with InProcessEngine(X) as local:
        assert local.summaries.n_samples == 600


def test_a_sample_engine_releases_the_sample_it_placed_on_the_workers(client, blobs):
    """Where the sample lives is the engine's choice (on a cluster the workers, unless
    ``biglearn.driver-sample-bytes`` lets the driver take it), and so is its release."""
    import dask

    X, _ = blobs
    with DaskEngine(da.from_array(X, chunks=(100, -1))) as engine:
        own = scheduler_keys(client)
        with dask.config.set({"biglearn.driver-sample-bytes": "1 MiB"}), \
                engine.sample_engine(200, seed=3) as on_sample:
            assert isinstance(on_sample, InProcessEngine)
            on_driver = on_sample.X.copy()
        with engine.sample_engine(200, seed=3) as on_sample:
            assert isinstance(on_sample, DaskEngine) and on_sample.n_samples == 200
            np.testing.assert_array_equal(on_sample.X.compute(), on_driver)  # the same rows
            placed = scheduler_keys(client) - own  # the sample, persisted on the workers
            assert placed
        assert eventually(lambda: scheduler_keys(client) & placed, set()) == set()
        assert own <= scheduler_keys(client)  # the engine's own data is still there
    assert eventually(lambda: scheduler_keys(client), set()) == set()
