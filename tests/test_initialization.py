"""Starting points: random, from the data, k-means++ seeds and k-means on a row sample."""

import warnings

import dask
import dask.array as da
import numpy as np
import pytest
from sklearn.cluster import kmeans_plusplus

from dask_biglearn import BigLearnGaussianMixture, GaussianMixture
from dask_biglearn.engines import DaskEngine, InProcessEngine
from dask_biglearn.initialization import cell_params, initial_params, kmeans_params


@pytest.fixture(scope="module")
def easy():
    """Five round, well-separated clusters in 3-D."""
    rng = np.random.default_rng(1)
    centers = 8.0 * np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]])
    labels = rng.integers(5, size=3000)
    return centers[labels] + rng.normal(size=(3000, 3)), labels


def _init_only(X, init, seed=0, Est=GaussianMixture):
    """The start itself: no iteration (and, for BigLearn-EM, no refinement)."""
    extra = {"refine_max_iter": 0} if Est is BigLearnGaussianMixture else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Est(5, max_iter=0, init_params=init, random_state=seed, **extra).fit(X)


def test_kmeans_plus_plus_seeds_are_scikit_learn_s(easy):
    """On data smaller than the sample budget the seeds are ``kmeans_plusplus``'s, drawn
    with the seed the fit's generator gives."""
    X, _ = easy
    rng = np.random.default_rng(3)
    with InProcessEngine(X) as engine:
        params = initial_params("k-means++", rng, 5, engine, 1e-6)
    replay = np.random.default_rng(3)
    replay.integers(2**63 - 1)  # the sample's seed (the sample is all of X here)
    seeds, _ = kmeans_plusplus(X, 5, random_state=int(replay.integers(2**31 - 1)))
    np.testing.assert_array_equal(params.means, seeds)
    assert _init_only(X, "k-means++").means_.shape == (5, 3)


def test_kmeans_start_finds_the_clusters_of_easy_data(easy):
    X, labels = easy
    est = _init_only(X, "kmeans")
    centers = np.array([X[labels == j].mean(axis=0) for j in range(5)])
    dist = np.linalg.norm(centers[:, None] - est.means_[None], axis=2)
    assert dist.min(axis=1).max() < 0.3  # every true centre has a mean next to it
    assert abs(est.weights_.sum() - 1) < 1e-12
    np.linalg.cholesky(est.covariances_)
    fitted = GaussianMixture(5, init_params="kmeans", random_state=0).fit(X)
    assert fitted.converged_ and fitted.n_iter_ < 20


def test_cells_too_small_for_a_covariance_get_the_pooled_one():
    rng = np.random.default_rng(0)
    sample = np.vstack([rng.normal(size=(50, 2)), [[10.0, 10.0]]])
    labels = np.r_[np.zeros(50, int), 1]
    params = cell_params(sample, labels, np.array([[0.0, 0.0], [10.0, 10.0]]), 1e-6)
    centred = sample[:50] - sample[:50].mean(axis=0)
    np.testing.assert_allclose(params.covariances[1], centred.T @ centred / 51)  # pooled
    np.testing.assert_allclose(params.covariances[0], centred.T @ centred / 50)  # its own
    np.testing.assert_allclose(params.weights, [50 / 51, 1 / 51])


@pytest.mark.parametrize("init", ["k-means++", "kmeans"])
def test_kmeans_starts_on_a_sample_do_not_depend_on_the_chunking(client, easy, init):
    """On a sample smaller than the data (rows by global index and seed), a Dask array on
    the cluster, in any chunking, starts where the NumPy array does."""
    X, _ = easy
    rng = np.random.default_rng(5)
    seed = int(rng.integers(2**63 - 1))
    with InProcessEngine(X) as engine:
        sample = engine.take_sample(500, seed)
        want = kmeans_params(np.random.default_rng(9), 5, sample, 1e-6, 3)
    for chunks in (3000, 317):
        with DaskEngine(da.from_array(X, chunks=(chunks, -1))) as engine:
            got_sample = engine.take_sample(500, seed)
        np.testing.assert_array_equal(got_sample, sample)
        got = kmeans_params(np.random.default_rng(9), 5, got_sample, 1e-6, 3)
        np.testing.assert_array_equal(got.means, want.means)
    with dask.config.set(scheduler="threads"):
        lazy = _init_only(da.from_array(X, chunks=(700, -1)), init, Est=BigLearnGaussianMixture)
    np.testing.assert_allclose(lazy.means_, _init_only(X, init, Est=BigLearnGaussianMixture)
                               .means_, rtol=0, atol=1e-12)


@pytest.mark.parametrize("n_features, whiten", [(2, False), (10, False), (10, True)])
def test_the_pursuit_start_finds_parallel_cigars_where_kmeans_cuts_them(n_features, whiten):
    """Parallel cigars (scikit-learn #34842): Euclidean k-means cuts the long axis; k-means in
    the multimodal independent directions finds the clusters, whitened or not."""
    import warnings

    from sklearn.metrics import adjusted_rand_score

    from dask_biglearn import GaussianMixture, datasets

    truth = datasets.parallel_cigars(n_features, 3, whiten=whiten, random_state=0)
    X, y = datasets.sample_mixture(*truth, 3000, random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kmeans = GaussianMixture(3, init_params="kmeans", n_init=3, random_state=0).fit(X)
        pursuit = GaussianMixture(3, init_params="kmeans-pursuit", n_init=3,
                                  random_state=0).fit(X)
    assert adjusted_rand_score(y, pursuit.predict(X)) > 0.95
    if not whiten:
        assert adjusted_rand_score(y, kmeans.predict(X)) < 0.5
    assert pursuit.lower_bound_ > kmeans.lower_bound_ - 1e-9


def test_parallel_cigars_whitened_have_identity_covariance():
    from dask_biglearn import datasets

    w, m, c = datasets.parallel_cigars(6, 4, whiten=True, random_state=3)
    centre = w @ m
    total = np.einsum("k,kij->ij", w, c) + np.einsum("k,ki,kj->ij", w, m - centre, m - centre)
    np.testing.assert_allclose(centre, 0, atol=1e-12)
    np.testing.assert_allclose(total, np.eye(6), atol=1e-10)
