"""Stepwise EM over mini-batches: the same steps on every engine and chunking."""

import dask.array as da
import numpy as np
import pytest

from dask_biglearn import GaussianMixture, datasets
from dask_biglearn.engines.dask import DaskEngine
from dask_biglearn.engines.local import InProcessEngine
from dask_biglearn.fit import mean_log_likelihood
from dask_biglearn.fit.stochastic import StepwiseSettings, batch_ranges, stepwise_em
from dask_biglearn.initialization import kmeans_params


def test_batches_are_distinct_blocks_of_the_global_index():
    ranges = batch_ranges(np.random.default_rng(0), 10_500, 3_000, 1_000)
    assert len(ranges) == 3
    assert all(stop - start <= 1_000 and start % 1_000 == 0 for start, stop in ranges)
    assert len({start for start, _ in ranges}) == 3
    assert batch_ranges(np.random.default_rng(0), 500, 3_000, 1_000) == [(0, 500)]


@pytest.fixture(scope="module")
def problem():
    truth = datasets.random_mixture(3, 5, separation=3.0, random_state=8)
    X, _ = datasets.sample_mixture(*truth, 40_000, random_state=9)
    start = kmeans_params(np.random.default_rng(0), 5, X[:2000], 1e-6, lloyd_iterations=2)
    return X, truth, start


def test_stepwise_em_is_the_same_on_every_engine_and_chunking(problem):
    X, _, start = problem
    settings = StepwiseSettings(n_steps=12, batch_rows=4_000, block_rows=1_000)
    results = []
    for engine in [InProcessEngine(X), DaskEngine(da.from_array(X, chunks=(3_000, 3))),
                   DaskEngine(da.from_array(X, chunks=(17_000, 3)))]:
        with engine:
            results.append(stepwise_em(engine, start, settings, np.random.default_rng(1)))
            assert engine.rows_read == 12 * 4_000
    for other in results[1:]:
        np.testing.assert_allclose(other.means, results[0].means, rtol=0, atol=1e-10)
        np.testing.assert_allclose(other.covariances, results[0].covariances, rtol=0,
                                   atol=1e-10)


def test_stepwise_em_climbs_towards_the_full_data_fit(problem):
    X, _, start = problem
    engine = InProcessEngine(X)
    steps = []
    fitted = stepwise_em(engine, start, StepwiseSettings(n_steps=40, batch_rows=4_000,
                                                         block_rows=1_000),
                         np.random.default_rng(2), callback=lambda t, p: steps.append(t))
    assert steps == list(range(1, 41))
    full = GaussianMixture(5, means_init=start.means, weights_init=start.weights,
                           precisions_init=np.linalg.inv(start.covariances), tol=1e-9,
                           max_iter=500).fit(X)
    gap_start = full.lower_bound_ - mean_log_likelihood(engine, start)
    gap_fitted = full.lower_bound_ - mean_log_likelihood(engine, fitted)
    assert 0 <= gap_fitted < 0.1 * gap_start
    assert np.all(np.linalg.eigvalsh(fitted.covariances) > 0)
