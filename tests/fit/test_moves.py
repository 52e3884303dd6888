"""The escape moves: their closed forms, their rankings and the round that keeps only what helps."""

import numpy as np
import pytest

from dask_biglearn import BigLearnGaussianMixture
from dask_biglearn.datasets import mixture_log_density, modes_found
from dask_biglearn.engines.local import InProcessEngine
from dask_biglearn.fit import FitSettings, mean_log_likelihood
from dask_biglearn.fit import moves as mv
from dask_biglearn.model import FitState, MixtureParams


def _mixture_moments(weights, means, covs):
    w = np.asarray(weights) / np.sum(weights)
    mean = w @ means
    second = sum(wk * (c + np.outer(m, m)) for wk, m, c in zip(w, means, covs, strict=True))
    return mean, second - np.outer(mean, mean)


def _random_spd(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.5 * np.eye(d)


def test_merge_matches_the_pair_s_first_and_second_moments():
    rng = np.random.default_rng(0)
    d = 3
    params = MixtureParams(np.array([0.2, 0.5, 0.3]), rng.normal(size=(3, d)),
                           np.stack([_random_spd(rng, d) for _ in range(3)]))
    weight, mean, cov = mv.merged(params, 0, 2)
    want_mean, want_cov = _mixture_moments(params.weights[[0, 2]], params.means[[0, 2]],
                                           params.covariances[[0, 2]])
    assert weight == pytest.approx(0.5)
    np.testing.assert_allclose(mean, want_mean, atol=1e-12)
    np.testing.assert_allclose(cov, want_cov, atol=1e-12)


def test_split_keeps_the_moments_and_separates_along_the_principal_axis():
    rng = np.random.default_rng(1)
    cov = _random_spd(rng, 4)
    mean = rng.normal(size=4)
    (w1, m1, c1), (w2, m2, c2) = mv.split(0.4, mean, cov, floor=1e-9)
    got_mean, got_cov = _mixture_moments([w1, w2], [m1, m2], [c1, c2])
    assert w1 + w2 == pytest.approx(0.4)
    np.testing.assert_allclose(got_mean, mean, atol=1e-12)
    np.testing.assert_allclose(got_cov, cov, atol=1e-10)
    axis = np.linalg.eigh(cov)[1][:, -1]
    step = (m1 - m2) / np.linalg.norm(m1 - m2)
    assert abs(step @ axis) == pytest.approx(1.0)
    assert np.all(np.linalg.eigvalsh(c1) > 0)


def _bad_optimum(rng, n_per_cluster=400):
    """Three clusters on a line and one apart; the model puts two components on the lone
    cluster and one over two of the others."""
    centres = np.array([[0.0, 0.0], [6.0, 0.0], [12.0, 0.0], [0.0, 12.0]])
    X = np.concatenate([c + rng.normal(size=(n_per_cluster, 2)) for c in centres])
    means = np.array([[-0.3, 12.0], [0.3, 12.0], [0.0, 0.0], [9.0, 0.0]])
    covs = np.array([np.eye(2) * 0.7, np.eye(2) * 0.7, np.eye(2), np.diag([10.0, 1.0])])
    params = MixtureParams(np.array([0.125, 0.125, 0.25, 0.5]), means, covs)
    truth = (np.full(4, 0.25), centres, np.stack([np.eye(2)] * 4))
    return X, params, truth


def test_rankings_point_at_the_redundant_pair_and_the_component_that_spans_two_clusters():
    X, params, _ = _bad_optimum(np.random.default_rng(2))
    resp, log_density, _ = mv.responsibilities(X, params)
    assert mv.ranked_pairs(mv.merge_scores(resp))[0] == (0, 1)
    assert int(np.argmax(mv.split_scores(resp, log_density, X.shape[1]))) == 3


def test_a_round_of_split_merge_leaves_the_bad_optimum_and_reaches_every_cluster():
    X, params, truth = _bad_optimum(np.random.default_rng(3))
    engine = InProcessEngine(X)
    em = FitSettings.plain_em(max_iter=100, tol=1e-8, covariance_floor=1e-6)
    start = FitState(params, np.random.default_rng(0))
    start.best_params, start.best_lower_bound = params, mean_log_likelihood(engine, params)
    start.finished = True
    moved, kept = mv.improve_by_moves(engine, start, X, mv.MoveSettings(), em)
    assert kept >= 1
    assert moved.best_lower_bound > start.best_lower_bound + 0.1
    assert modes_found(*truth, moved.best_params.weights, moved.best_params.means) == 4
    assert moved.best_lower_bound == pytest.approx(
        mixture_log_density(X, moved.best_params.weights, moved.best_params.means,
                            moved.best_params.covariances).mean(), rel=1e-10)


def test_moves_never_return_a_worse_model():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(600, 2))  # one Gaussian: nothing to gain
    engine = InProcessEngine(X)
    em = FitSettings.plain_em(max_iter=50, tol=1e-6, covariance_floor=1e-6)
    params = MixtureParams(np.array([0.5, 0.5]), np.array([[-0.8, 0.0], [0.8, 0.0]]),
                           np.stack([np.eye(2) * 0.6] * 2))
    state = FitState(params, np.random.default_rng(0))
    state.best_params, state.best_lower_bound = params, mean_log_likelihood(engine, params)
    for kinds in [("split-merge",), ("reseed",), ("split-merge", "reseed")]:
        moved, _ = mv.improve_by_moves(engine, state, X, mv.MoveSettings(kinds=kinds), em)
        assert moved.best_lower_bound >= state.best_lower_bound


def test_unknown_moves_are_refused():
    with pytest.raises(ValueError, match="Unknown move"):
        mv.MoveSettings(kinds=("teleport",))
    X = np.random.default_rng(0).normal(size=(50, 2))
    for bad in ["split-merge", ("teleport",)]:
        with pytest.raises(ValueError, match="moves.*must be a sequence of moves"):
            BigLearnGaussianMixture(2, moves=bad).fit(X)


def test_the_estimator_reports_its_moves_and_they_only_raise_the_fit():
    X, _, _ = _bad_optimum(np.random.default_rng(5), n_per_cluster=300)
    common = dict(max_iter=0, n_init=1, random_state=0, init_params="random")
    without = BigLearnGaussianMixture(4, moves=(), **common).fit(X)
    with_moves = BigLearnGaussianMixture(4, **common).fit(X)
    assert without.n_moves_ == 0
    assert with_moves.lower_bound_ >= without.lower_bound_
    assert with_moves.n_data_passes_ > without.n_data_passes_
