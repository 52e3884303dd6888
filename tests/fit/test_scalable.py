"""The scalable mode: a row sample explores, the full data refines."""

import dask.array as da
import numpy as np
import pytest

from dask_biglearn import BigLearnGaussianMixture, GaussianMixture, datasets
from dask_biglearn.fit.scalable import (
    MIN_AUTO_SAMPLE_ROWS,
    auto_sample_rows,
    parameters_per_component,
    sample_rows,
)


def test_the_sample_size_rule():
    assert sample_rows(None, 10**6, 5, 3) is None
    assert parameters_per_component(3) == 1 + 3 + 6
    assert auto_sample_rows(2, 2) == MIN_AUTO_SAMPLE_ROWS
    assert auto_sample_rows(25, 16) == 40 * 25 * (1 + 16 + 136)
    assert sample_rows("auto", 10**7, 25, 16) == auto_sample_rows(25, 16)
    assert sample_rows("auto", 1000, 25, 16) == 1000  # never more than the data
    assert sample_rows(5000, 10**6, 5, 3) == 5000
    assert sample_rows(0.01, 10**6, 5, 3) == 10_000
    assert sample_rows(1.0, 777, 5, 3) == 777
    assert sample_rows(2, 10**6, 5, 3) == 5  # at least one row per component


@pytest.mark.parametrize("bad", ["most", 0, -3, 0.0, 1.5, True])
def test_bad_sample_sizes_are_refused_before_any_pass(bad):
    X = np.random.default_rng(0).normal(size=(100, 2))
    with pytest.raises((ValueError, TypeError), match="sample_size"):
        GaussianMixture(2, sample_size=bad).fit(X)


@pytest.fixture(scope="module")
def problem():
    truth = datasets.random_mixture(3, 6, separation=3.0, random_state=4)
    X, _ = datasets.sample_mixture(*truth, 60_000, random_state=5)
    return X, truth


@pytest.mark.parametrize("make", [
    lambda: GaussianMixture(6, init_params="kmeans", n_init=2, sample_size=3000,
                            refine_tol=1e-8, random_state=1),
    lambda: BigLearnGaussianMixture(6, max_iter=40, n_init=3, sample_size=3000,
                                    refine_tol=1e-8, random_state=1),
], ids=["em", "biglearn"])
def test_explores_on_the_sample_and_refines_on_all_rows_in_few_passes(problem, make):
    X, truth = problem
    model = make().fit(X)
    full = GaussianMixture(6, init_params="kmeans", n_init=2, tol=1e-8, max_iter=500,
                           random_state=1).fit(X)
    assert datasets.modes_found(*truth, model.weights_, model.means_) == 6
    assert model.lower_bound_ == pytest.approx(full.lower_bound_, abs=1e-6)
    assert model.n_sample_passes_ > 0
    # summary, sample, the refinement's EM passes and its last evaluation
    assert model.n_data_passes_ <= 2 + model.refine_max_iter + 1
    assert model.bytes_read_ == model.n_data_passes_ * X.nbytes


def test_the_scalable_fit_does_not_depend_on_the_chunking(problem):
    X, _ = problem
    make = lambda: BigLearnGaussianMixture(6, max_iter=30, n_init=2, sample_size=0.05,
                                           random_state=7)
    in_memory = make().fit(X)
    for chunks in [(7_000, 3), (25_000, 3)]:
        lazy = make().fit(da.from_array(X, chunks=chunks))
        np.testing.assert_allclose(lazy.means_, in_memory.means_, rtol=0, atol=1e-8)
        np.testing.assert_allclose(lazy.covariances_, in_memory.covariances_, rtol=0,
                                   atol=1e-8)
        assert lazy.n_data_passes_ == in_memory.n_data_passes_


def test_the_scalable_fit_on_a_local_cluster_is_the_in_memory_one(problem, client):
    X, _ = problem
    make = lambda: GaussianMixture(6, init_params="kmeans", sample_size=4000,
                                   random_state=3)
    in_memory = make().fit(X)
    on_cluster = make().fit(da.from_array(X, chunks=(9_000, 3)))
    np.testing.assert_allclose(on_cluster.means_, in_memory.means_, rtol=0, atol=1e-8)
    assert on_cluster.n_data_passes_ == in_memory.n_data_passes_


def test_a_sample_too_big_for_the_driver_stays_on_the_workers(problem, client):
    import dask

    from dask_biglearn.engines.dask import DaskEngine

    X, truth = problem
    lazy = da.from_array(X, chunks=(9_000, 3))
    with DaskEngine(lazy) as engine:
        a = np.asarray(engine.persisted_sample(3000, seed=11))
        on_driver = engine.take_sample(3000, seed=11)
    with DaskEngine(da.from_array(X, chunks=(20_000, 3))) as engine:
        b = np.asarray(engine.persisted_sample(3000, seed=11))
    np.testing.assert_array_equal(a, b)  # the same rows, whatever the chunking
    np.testing.assert_array_equal(a, on_driver)  # and the driver's sample, in index order
    with dask.config.set({"biglearn.driver-sample-bytes": 1000}):
        model = GaussianMixture(6, init_params="kmeans", n_init=2, sample_size=3000,
                                random_state=1).fit(lazy)
    assert datasets.modes_found(*truth, model.weights_, model.means_) == 6
    assert model.n_sample_passes_ > 0
    assert model.n_data_passes_ <= 2 + model.refine_max_iter + 1
