"""Quadratic features: layout, the compiled twin, and the in-process feature cache."""

import numpy as np
import pytest

import dask_biglearn.kernels.features as features_module
from dask_biglearn.algebra import estep_coefficients, project_params
from dask_biglearn.kernels.features import (
    FeatureCache,
    default_block_rows,
    n_quadratic_features,
    projected_features,
    quadratic_features,
)
from dask_biglearn.kernels.passes import PassSpec, pass_stats
from dask_biglearn.testing import make_projection, random_params
from dask_biglearn.testing.markers import needs_numba


def test_quadratic_features_layout():
    X = np.array([[1.0, 2.0, 3.0]])
    F_t = quadratic_features(X, np.zeros(3))
    np.testing.assert_array_equal(F_t[:, 0], [1, 1, 2, 3, 1, 2, 3, 4, 6, 9])
    assert F_t.shape == (n_quadratic_features(3), 1)


def test_projected_features_are_those_of_the_projected_rows(blobs):
    X, _ = blobs
    P = make_projection("rotated_marginal", 3, seed=2)
    shift = X.mean(axis=0)
    np.testing.assert_allclose(projected_features(X, shift, P),
                               quadratic_features((X - shift) @ P.T, np.zeros(2)), rtol=1e-13,
                               atol=1e-12)


@needs_numba
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("d", [1, 2, 7])
def test_compiled_features_match_numpy(dtype, order, d):
    rng = np.random.default_rng(d)
    X = np.asarray(rng.normal(size=(37, d)) * 10, dtype=dtype, order=order)
    shift = rng.normal(size=d)
    expected = quadratic_features(X, shift, compiled=False)
    np.testing.assert_array_equal(quadratic_features(X, shift, compiled=True), expected)


def test_block_rows_grow_for_narrow_features_and_shrink_for_wide_ones():
    assert default_block_rows(2) > default_block_rows(16) >= 1024
    assert default_block_rows(400) < 1024


def _spec(X, P, seed=21, shift=None):
    w, m, c = random_params(seed, X, 4)
    shift = X.mean(axis=0) if shift is None else shift
    means_y, covs_y = project_params(m, c, P)
    shift_y = shift if P is None else P @ shift
    return PassSpec(estep_coefficients(w, means_y, covs_y, shift_y), shift, P)


def _assert_same_stats(got, want):
    np.testing.assert_allclose(got.second_moment, want.second_moment, rtol=1e-12)
    np.testing.assert_allclose(got.first_moment, want.first_moment, rtol=1e-12, atol=1e-9)
    assert got.log_lik_sum == pytest.approx(want.log_lik_sum, rel=1e-12)
    assert got.n_rows == want.n_rows


def test_cache_reuses_projected_features_only_for_the_same_projection(blobs):
    """Repeated passes in one projection reuse its cached features; a new projection, or the
    same array changed in place, recomputes them. Each pass equals the uncached kernel."""
    X, _ = blobs
    shift = X.mean(axis=0)
    cache = FeatureCache(X, shift, block_rows=128, max_bytes=2**30)  # several sub-blocks
    P = make_projection("rotated_marginal", 3, seed=1)
    P2 = make_projection("marginal", 3, seed=2)

    def check(P):
        spec = _spec(X, P)
        _assert_same_stats(pass_stats([X], spec, 128, cache=cache), pass_stats([X], spec))

    check(P)
    cached = cache.features_of(shift, P)
    check(P)
    assert cache.features_of(shift, P) is cached  # reused
    check(P2)  # another projection, narrower features
    check(P)
    P[0] *= -1  # changed in place: not the projection whose features are cached
    check(P)
    assert cache.features_of(shift + 1.0, None) is None  # another centre is never served


def test_interrupted_projected_feature_refill_is_not_reused(blobs, monkeypatch):
    """If building the features of a new projection fails part way, the buffer is not
    passed off as the previous projection's features."""
    X, _ = blobs
    shift = X.mean(axis=0)
    cache = FeatureCache(X, shift, block_rows=100, max_bytes=2**30)
    P1 = make_projection("rotated_marginal", 3, seed=3)
    P2 = make_projection("rotated_marginal", 3, seed=4)
    pass_stats([X], _spec(X, P1), 100, cache=cache)
    calls = {"n": 0}
    real = features_module.projected_features

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise MemoryError("interrupted")
        return real(*args, **kwargs)

    monkeypatch.setattr(features_module, "projected_features", failing)
    with pytest.raises(MemoryError):
        pass_stats([X], _spec(X, P2), 100, cache=cache)
    monkeypatch.setattr(features_module, "projected_features", real)
    _assert_same_stats(pass_stats([X], _spec(X, P1), 100, cache=cache),
                       pass_stats([X], _spec(X, P1)))


def test_projection_wider_than_the_data_is_not_cached(blobs):
    X, _ = blobs
    shift = X.mean(axis=0)
    cache = FeatureCache(X, shift, block_rows=1024, max_bytes=2**30)
    P = np.vstack([np.eye(3), np.eye(3)[:1]])  # 4 rows over 3 features (a caller's own P)
    w, m, c = random_params(23, X, 4)
    means_y, covs_y = project_params(m, c + np.eye(3), P)
    covs_y = covs_y + np.eye(4)  # P P^T is singular; any valid covariance will do here
    spec = PassSpec(estep_coefficients(w, means_y, covs_y, P @ shift), shift, P)
    _assert_same_stats(pass_stats([X], spec, cache=cache), pass_stats([X], spec))
    assert cache.features_of(shift, P) is None


def test_cache_within_its_budget_only(blobs):
    X, _ = blobs
    shift = X.mean(axis=0)
    width_bytes = 8 * X.shape[0] * n_quadratic_features(3)
    small = FeatureCache(X, shift, 1024, max_bytes=width_bytes)  # room for the data's own
    assert small.features_of(shift, None) is not None
    assert small.features_of(shift, make_projection("marginal", 3)) is None
    none = FeatureCache(X, shift, 1024, max_bytes=width_bytes - 1)
    assert none.features_of(shift, None) is None
    spec = _spec(X, None)
    _assert_same_stats(pass_stats([X], spec, cache=none), pass_stats([X], spec))
