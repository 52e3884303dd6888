"""The per-chunk kernel and the driver algebra against the dense reference and direct formulas."""

import numpy as np
import pytest
from conftest import make_blobs, random_params

from dask_biglearn._compiled import compiled_enabled
from dask_biglearn.em import MixtureParams, em_update
from dask_biglearn.engine import InProcessEngine
from dask_biglearn.numerics import (
    chunk_stats,
    combine_stats,
    estep_coefficients,
    floor_eigenvalues,
    precision_cholesky,
    project_params,
    projected_features,
    quadratic_features,
    responsibilities_from_log_prob,
    weighted_log_prob,
)
from dask_biglearn.projection import Projection, haar_frame
from dask_biglearn.testing import reference_em_update, reference_floor

KINDS = ["joint", "marginal", "rotated_marginal"]


def make_projection(kind, d, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "joint":
        return None
    if kind == "marginal":
        return np.eye(d)[np.sort(rng.choice(d, size=d - 1, replace=False))]
    return haar_frame(rng, d, d - 1)


def assert_update_matches_reference(X, params, P, floor=1e-3, alpha=0.1, shift=None, tol=1e-10):
    w, m, c = params
    shift = X.mean(axis=0) if shift is None else shift
    engine = InProcessEngine(X, shift)
    new, ll = em_update(engine, MixtureParams(w, m, c), Projection("x", P),
                        covariance_floor=floor, weight_concentration=alpha)
    rw, rm, rc, rll = reference_em_update(X, w, m, c, P, covariance_floor=floor,
                                          weight_concentration=alpha, shrink_center=shift)
    spread = X.std(axis=0).max()  # errors are judged against the data's spread, not its offset
    np.testing.assert_allclose(new.weights, rw, rtol=0, atol=tol)
    np.testing.assert_allclose(new.means, rm, rtol=0, atol=tol * spread)
    np.testing.assert_allclose(new.covariances, rc, rtol=0, atol=tol * np.abs(rc).max())
    assert ll == pytest.approx(rll, abs=tol * max(1.0, abs(rll)))


@pytest.mark.parametrize("kind", KINDS)
def test_in_process_update_matches_dense_reference(kind, blobs):
    X, _ = blobs
    params = random_params(1, X, 4)
    assert_update_matches_reference(X, params, make_projection(kind, X.shape[1]))


@pytest.mark.parametrize("kind", KINDS)
def test_update_is_stable_far_from_origin(kind):
    """Large offset, small spread: shifted moments keep the update accurate.

    At offset 1e6 the data themselves carry only ~8 significant digits of their spread
    (1e-2), so the two-pass reference is itself good to ~1e-8 relative; raw moments about
    the origin would be off by O(1) here (cancellation ~ eps * (offset / spread)^2 = 1).
    """
    X, _ = make_blobs(seed=3, offset=1e6, spread=1e-2)
    w, m, c = random_params(2, X, 4)
    m = (m - 1e6) * 1e-2 + 1e6
    params = (w, m, c * 1e-4)
    assert_update_matches_reference(X, params, make_projection(kind, X.shape[1]), floor=1e-10,
                                    tol=1e-6)


def test_float32_input_accumulates_in_float64(blobs):
    X, _ = blobs
    X32 = X.astype(np.float32)
    params = random_params(1, X, 4)
    # The reference on the float32 values promoted to float64 is the exact answer.
    assert_update_matches_reference(X32, params, None)


def test_kernel_splits_into_sub_blocks_consistently(blobs):
    X, _ = blobs
    w, m, c = random_params(4, X, 4)
    theta = estep_coefficients(w, m, c, X.mean(axis=0))
    whole = chunk_stats(X, theta, X.mean(axis=0), None, block_rows=10_000)
    parts = combine_stats([
        chunk_stats(X[a : a + 77], theta, X.mean(axis=0), None, block_rows=16)
        for a in range(0, len(X), 77)
    ])
    for a, b in zip(whole, parts, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("kind", KINDS)
def test_estep_coefficients_reproduce_projected_log_density(kind, blobs):
    X, _ = blobs
    w, m, c = random_params(5, X, 4)
    P = make_projection(kind, X.shape[1])
    shift = X.mean(axis=0)
    my, cy = project_params(m, c, P)
    shift_y = shift if P is None else P @ shift
    theta = estep_coefficients(w, my, cy, shift_y)
    got = projected_features(X, shift, P).T @ theta
    Y = X if P is None else X @ P.T
    expected = weighted_log_prob(Y, w, my, precision_cholesky(cy))
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-9)


def test_quadratic_features_layout():
    X = np.array([[1.0, 2.0, 3.0]])
    F_t = quadratic_features(X, np.zeros(3))
    np.testing.assert_array_equal(F_t[:, 0], [1, 1, 2, 3, 1, 2, 3, 4, 6, 9])


def test_floor_eigenvalues_matches_reference_and_stays_symmetric():
    rng = np.random.default_rng(0)
    B = rng.normal(size=(6, 4, 4))
    covs = B @ np.swapaxes(B, 1, 2) - 0.5 * np.eye(4)  # some indefinite
    covs[0] = np.eye(4) * 3  # one already above the floor
    out = floor_eigenvalues(covs, 0.1)
    for a, c in zip(out, covs, strict=True):
        np.testing.assert_allclose(a, reference_floor(c, 0.1), atol=1e-12)
    np.testing.assert_array_equal(out, np.swapaxes(out, 1, 2))
    assert np.linalg.eigvalsh(out).min() >= 0.1 - 1e-12


def test_floor_eigenvalues_leaves_matrices_above_the_floor_alone():
    rng = np.random.default_rng(2)
    B = rng.normal(size=(5, 3, 6))
    covs = B @ np.swapaxes(B, 1, 2) + np.eye(3)
    np.testing.assert_array_equal(floor_eigenvalues(covs, 0.5), covs)
    mixed = covs.copy()
    mixed[2] = np.diag([1.0, 2.0, 1e-4])
    out = floor_eigenvalues(mixed, 0.5)
    np.testing.assert_array_equal(out[[0, 1, 3, 4]], covs[[0, 1, 3, 4]])
    np.testing.assert_allclose(out[2], np.diag([1.0, 2.0, 0.5]), atol=1e-14)


def test_precision_cholesky_inverts_covariances():
    rng = np.random.default_rng(1)
    B = rng.normal(size=(3, 5, 5))
    covs = B @ np.swapaxes(B, 1, 2) + np.eye(5)
    U = precision_cholesky(covs)
    np.testing.assert_allclose(U @ np.swapaxes(U, 1, 2) @ covs, np.broadcast_to(np.eye(5), covs.shape),
                               atol=1e-10)
    assert np.allclose(np.tril(U[0], -1), 0)


def test_marginal_update_changes_only_its_block(blobs):
    """With a coordinate subset, entries outside the subset's block are kept (before floor)."""
    X, _ = blobs
    w, m, c = random_params(6, X, 4)
    P = np.eye(3)[[0, 2]]
    engine = InProcessEngine(X, X.mean(axis=0))
    new, _ = em_update(engine, MixtureParams(w, m, c), Projection("marginal", P),
                       covariance_floor=1e-12, weight_concentration=0.0)
    np.testing.assert_allclose(new.means[:, 1], m[:, 1], atol=1e-12)
    # The floor may move an indefinite result; here all stay positive definite.
    np.testing.assert_allclose(new.covariances[:, 1, 1], c[:, 1, 1], atol=1e-9)


def test_starved_component_uses_the_divisor_floor(blobs):
    """A component far from all data gets N_k ~ 0: divisor 1e-5 N, mean pulled to the centre."""
    X, _ = blobs
    w, m, c = random_params(13, X, 4)
    m = m.copy()
    m[3] = X.mean(axis=0) + 1e3  # no point is anywhere near it
    assert_update_matches_reference(X, (w, m, c), None)
    engine = InProcessEngine(X, X.mean(axis=0))
    new, _ = em_update(engine, MixtureParams(w, m, c), Projection.identity(),
                       covariance_floor=1e-3, weight_concentration=0.1)
    np.testing.assert_allclose(new.means[3], X.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(new.covariances[3], 1e-3 * np.eye(3), atol=1e-12)


def test_marginal_update_that_breaks_definiteness_is_floored():
    """Keeping old cross-covariances next to a shrunk block can make Sigma indefinite."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 2)) * [1.0, 0.01]  # the 2nd coordinate is nearly constant
    w = np.array([1.0])
    m = np.zeros((1, 2))
    c = np.array([[[1.0, 0.9], [0.9, 1.0]]])  # strongly correlated start
    P = np.eye(2)[[1]]
    engine = InProcessEngine(X, X.mean(axis=0))
    new, _ = em_update(engine, MixtureParams(w, m, c), Projection("marginal", P),
                       covariance_floor=1e-3, weight_concentration=0.0)
    unfloored = c[0].copy()
    unfloored[1, 1] = X[:, 1].var()
    assert np.linalg.eigvalsh(unfloored).min() < 0  # the raw block replacement is indefinite
    assert np.linalg.eigvalsh(new.covariances[0]).min() >= 1e-3 - 1e-12
    np.testing.assert_array_equal(new.covariances[0], new.covariances[0].T)
    assert_update_matches_reference(X, (w, m, c), P, floor=1e-3, alpha=0.0)


def test_overflowing_data_gives_a_clear_error():
    from dask_biglearn import GaussianMixture

    X = np.random.default_rng(0).normal(size=(50, 2)) * 1e160
    with pytest.raises(FloatingPointError, match="Scale the data"):
        GaussianMixture(2, max_iter=3, random_state=0).fit(X)


# ---------------------------------------------------------------------------------------------
# The compiled kernels against the NumPy reference
# ---------------------------------------------------------------------------------------------

needs_numba = pytest.mark.skipif(not compiled_enabled(),
                                 reason="numba missing or DASK_BIGLEARN_NUMBA=0")


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


@needs_numba
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_compiled_softmax_reports_non_finite_input(bad):
    log_prob = np.zeros((3, 4))
    log_prob[:, 2] = bad  # a whole column: -inf everywhere has no finite maximum either
    _, ll = responsibilities_from_log_prob(log_prob, compiled=True)
    assert not np.isfinite(ll)


@needs_numba
@pytest.mark.parametrize("k,m", [(25, 1), (25, 2), (12, 16), (3, 40)])
@pytest.mark.parametrize("condition", [1.0, 1e6])
def test_compiled_estep_coefficients_match_numpy(k, m, condition):
    rng = np.random.default_rng(k * m)
    Q = np.linalg.qr(rng.normal(size=(k, m, m)))[0]
    eigvals = np.geomspace(1.0, 1.0 / condition, m) * rng.uniform(0.5, 2.0, size=(k, 1))
    covs = (Q * eigvals[:, None, :]) @ np.swapaxes(Q, 1, 2)
    means = rng.normal(size=(k, m)) * 3
    weights = rng.dirichlet(np.ones(k))
    weights[0] = 0.0  # a dead component: log weight clipped, not -inf
    shift = rng.normal(size=m)
    want = estep_coefficients(weights, means, covs, shift, compiled=False)
    got = estep_coefficients(weights, means, covs, shift, compiled=True)
    # Entries are judged against their component's largest coefficient.
    scale = np.abs(want).max(axis=0)
    np.testing.assert_allclose(got / scale, want / scale, rtol=0, atol=1e-10 * condition)
    assert np.all(np.isfinite(got))


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=needs_numba)])
def test_estep_coefficients_reject_an_indefinite_covariance(compiled):
    from dask_biglearn.numerics import CholeskyError

    covs = np.stack([np.eye(2), [[1.0, 2.0], [2.0, 1.0]]])
    with pytest.raises(CholeskyError, match="not positive definite"):
        estep_coefficients(np.full(2, 0.5), np.zeros((2, 2)), covs, np.zeros(2),
                           compiled=compiled)


@pytest.mark.parametrize("kind", KINDS)
def test_numpy_softmax_path_matches_reference(blobs, kind, monkeypatch):
    """``DASK_BIGLEARN_NUMBA=0`` selects the NumPy reference kernel; it meets the same bar."""
    monkeypatch.setenv("DASK_BIGLEARN_NUMBA", "0")
    assert not compiled_enabled()
    X, _ = blobs
    assert_update_matches_reference(X, random_params(5, X, 4), make_projection(kind, X.shape[1]))


def test_warm_up_reports_whether_compiled_kernels_run(monkeypatch):
    from dask_biglearn._compiled import warm_up

    assert warm_up() == compiled_enabled()
    monkeypatch.setenv("DASK_BIGLEARN_NUMBA", "0")
    assert warm_up() is False


def test_in_process_engine_reuses_projected_features_only_for_the_same_projection(blobs):
    """Repeated passes in one projection reuse its cached features; a new projection, or the
    same array changed in place, recomputes them. Each pass equals the uncached kernel."""
    X, _ = blobs
    shift = X.mean(axis=0)
    engine = InProcessEngine(X, shift, block_rows=128)  # several sub-blocks
    w, m, c = random_params(21, X, 4)
    P = make_projection("rotated_marginal", 3, seed=1)
    P2 = make_projection("marginal", 3, seed=2)

    def check(P):
        means_y, covs_y = project_params(m, c, P)
        theta = estep_coefficients(w, means_y, covs_y, P @ shift)
        got = engine.run_pass(theta, P)
        want = chunk_stats(X, theta, shift, P)
        np.testing.assert_allclose(got.second_moment, want.second_moment, rtol=1e-12)
        np.testing.assert_allclose(got.first_moment, want.first_moment, rtol=1e-12, atol=1e-9)
        assert got.log_lik_sum == pytest.approx(want.log_lik_sum, rel=1e-12)

    check(P)
    cached = engine._projected[1]
    check(P)
    assert engine._projected[1] is cached  # reused
    check(P2)  # another projection, narrower features
    check(P)
    P[0] *= -1  # changed in place: not the projection whose features are cached
    check(P)


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=needs_numba)])
def test_estep_coefficients_of_non_finite_covariances_are_not_finite(compiled):
    """Both paths leave non-finite parameters to the driver's finiteness check."""
    covs = np.stack([np.eye(2), np.full((2, 2), np.inf)])
    with np.errstate(all="ignore"):
        theta = estep_coefficients(np.full(2, 0.5), np.zeros((2, 2)), covs, np.zeros(2),
                                   compiled=compiled)
    assert not np.all(np.isfinite(theta))


def test_interrupted_projected_feature_refill_is_not_reused(blobs, monkeypatch):
    """If building the features of a new projection fails part way, the buffer is not
    passed off as the previous projection's features."""
    import dask_biglearn.engine as engine_module

    X, _ = blobs
    shift = X.mean(axis=0)
    engine = InProcessEngine(X, shift, block_rows=100)
    w, m, c = random_params(22, X, 4)
    P1 = make_projection("rotated_marginal", 3, seed=3)
    P2 = make_projection("rotated_marginal", 3, seed=4)

    def theta_for(P):
        means_y, covs_y = project_params(m, c, P)
        return estep_coefficients(w, means_y, covs_y, P @ shift)

    engine.run_pass(theta_for(P1), P1)
    calls = {"n": 0}
    real = engine_module.projected_features

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise MemoryError("interrupted")
        return real(*args, **kwargs)

    monkeypatch.setattr(engine_module, "projected_features", failing)
    with pytest.raises(MemoryError):
        engine.run_pass(theta_for(P2), P2)
    monkeypatch.setattr(engine_module, "projected_features", real)
    got = engine.run_pass(theta_for(P1), P1)
    want = chunk_stats(X, theta_for(P1), shift, P1)
    assert got.log_lik_sum == pytest.approx(want.log_lik_sum, rel=1e-12)


def test_projection_wider_than_the_data_is_not_cached(blobs):
    X, _ = blobs
    shift = X.mean(axis=0)
    engine = InProcessEngine(X, shift)
    P = np.vstack([np.eye(3), np.eye(3)[:1]])  # 4 rows over 3 features (a caller's own P)
    w, m, c = random_params(23, X, 4)
    means_y, covs_y = project_params(m, c + np.eye(3), P)
    covs_y = covs_y + np.eye(4)  # P P^T is singular; any valid covariance will do here
    theta = estep_coefficients(w, means_y, covs_y, P @ shift)
    got = engine.run_pass(theta, P)
    want = chunk_stats(X, theta, shift, P)
    assert got.log_lik_sum == pytest.approx(want.log_lik_sum, rel=1e-12)
    assert engine._projected is None
