"""The pass kernel: sub-blocks, what leaves a block, the log-likelihood-only pass, and the
compiled softmax against the NumPy reference."""

import numpy as np
import pytest

from dask_biglearn.algebra import estep_coefficients, project_params
from dask_biglearn.kernels._compiled import NUMBA_AVAILABLE
from dask_biglearn.kernels.passes import (
    PassSpec,
    pass_stats,
    pass_stats_batch,
    responsibilities_from_log_prob,
)
from dask_biglearn.kernels.stats import combine_stats
from dask_biglearn.testing import make_projection, random_params
from dask_biglearn.testing.markers import needs_numba


def _spec(X, kind="joint", seed=4, moments=True, compiled=False):
    w, m, c = random_params(seed, X, 4)
    P = make_projection(kind, X.shape[1])
    shift = X.mean(axis=0)
    means_y, covs_y = project_params(m, c, P)
    shift_y = shift if P is None else P @ shift
    return PassSpec(estep_coefficients(w, means_y, covs_y, shift_y), shift, P, moments,
                    compiled)


def test_kernel_splits_into_sub_blocks_consistently(blobs):
    X, _ = blobs
    spec = _spec(X)
    whole = pass_stats([X], spec, block_rows=10_000)
    parts = combine_stats([pass_stats([X[a : a + 77]], spec, block_rows=16)
                           for a in range(0, len(X), 77)])
    several = pass_stats([X[:100], X[100:450], X[450:]], spec, block_rows=64)
    for got in (parts, several):
        np.testing.assert_allclose(got.resp_sum, whole.resp_sum, rtol=1e-12)
        np.testing.assert_allclose(got.first_moment, whole.first_moment, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(got.second_moment, whole.second_moment, rtol=1e-12)
        assert got.log_lik_sum == pytest.approx(whole.log_lik_sum, rel=1e-12)
        assert got.n_rows == whole.n_rows == len(X)


@pytest.mark.parametrize("kind, m", [("joint", 3), ("rotated_marginal", 2)])
def test_what_leaves_a_block_is_small(blobs, kind, m):
    """K (1 + m + m^2) + 2 numbers (the last two: log-likelihood and row count)."""
    X, _ = blobs
    stats = pass_stats([X], _spec(X, kind))
    sizes = [np.size(getattr(stats, f)) for f in
             ("resp_sum", "first_moment", "second_moment", "log_lik_sum", "n_rows")]
    assert sum(sizes) == 4 * (1 + m + m * m) + 2
    assert stats.second_moment.shape == (4, m, m)


def test_a_batch_equals_its_passes_one_by_one(blobs):
    """Passes through the same features share their products; the mixed batch keeps order."""
    X, _ = blobs
    specs = [_spec(X, seed=1), _spec(X, "rotated_marginal", seed=2), _spec(X, seed=3),
             _spec(X, seed=5, moments=False), _spec(X, seed=6), _spec(X, seed=7, moments=False)]
    batch = pass_stats_batch([X[:200], X[200:]], specs, block_rows=64)
    for spec, got in zip(specs, batch, strict=True):
        alone = pass_stats([X], spec)
        assert got.n_rows == alone.n_rows == len(X)
        assert got.log_lik_sum == pytest.approx(alone.log_lik_sum, rel=1e-12)
        np.testing.assert_allclose(got.resp_sum, alone.resp_sum, rtol=1e-12)
        np.testing.assert_allclose(got.second_moment, alone.second_moment, rtol=1e-12,
                                   atol=1e-9)


def test_log_likelihood_only_pass(blobs):
    X, _ = blobs
    full = pass_stats([X], _spec(X))
    ll_only = pass_stats([X], _spec(X, moments=False))
    assert ll_only.log_lik_sum == pytest.approx(full.log_lik_sum, rel=1e-13)
    assert ll_only.first_moment.shape == (4, 0) and ll_only.n_rows == len(X)


def test_empty_blocks_give_zero_statistics(blobs):
    X, _ = blobs
    stats = pass_stats([X[:0]], _spec(X))
    assert stats.n_rows == 0 and stats.log_lik_sum == 0.0
    assert stats.second_moment.shape == (4, 3, 3) and not stats.resp_sum.any()


@pytest.mark.parametrize("kind", ["joint", "rotated_marginal"])
@needs_numba
def test_compiled_pass_matches_numpy(blobs, kind):
    X, _ = blobs
    a = pass_stats([X], _spec(X, kind, compiled=False))
    b = pass_stats([X], _spec(X, kind, compiled=True))
    np.testing.assert_allclose(b.second_moment, a.second_moment, rtol=1e-12)
    assert b.log_lik_sum == pytest.approx(a.log_lik_sum, rel=1e-13)


@needs_numba
@pytest.mark.parametrize("shape", [(25, 1024), (12, 777), (1, 5), (3, 1)])
@pytest.mark.parametrize("scale", [0.1, 40.0, 1e4])
def test_compiled_softmax_matches_numpy(shape, scale):
    rng = np.random.default_rng(shape[1])
    log_prob = rng.normal(size=shape) * scale - 50.0
    resp_np, ll_np = responsibilities_from_log_prob(log_prob.copy(), compiled=False)
    resp_nb, ll_nb = responsibilities_from_log_prob(log_prob.copy(), compiled=True)
    np.testing.assert_allclose(resp_nb, resp_np, rtol=1e-13, atol=1e-300)
    assert ll_nb == pytest.approx(ll_np, rel=1e-13, abs=1e-12)
    np.testing.assert_allclose(resp_nb.sum(axis=0), 1.0, rtol=1e-14)


@needs_numba
def test_compiled_exp_is_accurate_over_the_clipped_range():
    """Two columns: one entry at 0 and one at x, so resp = exp(x) / (1 + exp(x))."""
    x = np.linspace(-100.0, 0.0, 200_001)
    log_prob = np.vstack([np.zeros_like(x), x])
    resp, _ = responsibilities_from_log_prob(log_prob, compiled=True)
    expected = np.exp(x) / (1.0 + np.exp(x))
    np.testing.assert_allclose(resp[1], expected, rtol=4e-16 * 8, atol=0)


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=needs_numba)])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_softmax_reports_non_finite_input(bad, compiled):
    log_prob = np.zeros((3, 4))
    log_prob[:, 2] = bad  # a whole column: -inf everywhere has no finite maximum either
    with np.errstate(all="ignore"):
        _, ll = responsibilities_from_log_prob(log_prob, compiled=compiled)
    assert not np.isfinite(ll)


def test_warm_up_reports_whether_compiled_kernels_exist():
    from dask_biglearn.kernels._compiled import warm_up

    assert warm_up() == NUMBA_AVAILABLE


def test_a_diagonal_pass_is_the_quadratic_pass_of_a_diagonal_model():
    """The diagonal features ``[1, y', y'^2]`` with their coefficients give the quadratic
    pass's log-likelihood and the diagonals of its second moments, at a fraction of the
    width, through the identity and through a coordinate subset, float64 and float32."""
    from dask_biglearn.algebra import (
        diagonal_estep_coefficients,
        diagonal_matrices,
        estep_coefficients,
    )
    from dask_biglearn.kernels.features import FeatureCache, n_diagonal_features

    rng = np.random.default_rng(4)
    X = rng.normal(size=(700, 5)) * [1, 2, 3, 0.5, 1] + 10.0
    shift = X.mean(axis=0)
    weights = rng.dirichlet(np.ones(3))
    means = X[:3] + rng.normal(size=(3, 5))
    variances = rng.uniform(0.5, 4.0, size=(3, 5))
    for P in (None, np.eye(5)[[0, 2, 3]]):
        index = slice(None) if P is None else [0, 2, 3]
        shift_y = shift if P is None else P @ shift
        m, v = means[:, index], variances[:, index]
        quadratic = pass_stats([X], PassSpec(estep_coefficients(weights, m, diagonal_matrices(v),
                                                                shift_y), shift, P))
        theta = diagonal_estep_coefficients(weights, m, v, shift_y)
        assert theta.shape == (n_diagonal_features(v.shape[1]), 3)
        spec = PassSpec(theta, shift, P, diagonal=True)
        cache = FeatureCache(X, shift, 128, 2**30)
        for got in (pass_stats([X], spec, block_rows=200), pass_stats([X], spec, cache=cache)):
            assert got.second_moment.shape == (3, v.shape[1])
            assert got.log_lik_sum == pytest.approx(quadratic.log_lik_sum, rel=1e-12)
            np.testing.assert_allclose(got.resp_sum, quadratic.resp_sum, rtol=1e-10)
            np.testing.assert_allclose(got.first_moment, quadratic.first_moment, rtol=1e-9,
                                       atol=1e-9)
            np.testing.assert_allclose(got.second_moment,
                                       np.diagonal(quadratic.second_moment, axis1=1, axis2=2),
                                       rtol=1e-10)
        narrow = pass_stats([X.astype(np.float32)],
                            PassSpec(theta, shift, P, float32=True, diagonal=True))
        assert narrow.log_lik_sum == pytest.approx(quadratic.log_lik_sum, rel=1e-5)
