"""The in-process engine: EM updates against the dense reference, its summary pass, and
its resources."""

import numpy as np
import pytest

from dask_biglearn.algebra import constrain_covariances
from dask_biglearn.engines import InProcessEngine
from dask_biglearn.engines.base import order_free
from dask_biglearn.fit import em_update
from dask_biglearn.model import MixtureParams
from dask_biglearn.projection import MATCHING_KINDS as KINDS
from dask_biglearn.projection import Projection
from dask_biglearn.testing import make_blobs, make_projection, random_params, reference_em_update


def assert_update_matches_reference(X, params, P, floor=1e-3, alpha=0.1, tol=1e-10,
                                    compiled=None, covariance_type="full"):
    w, m, c = params
    with InProcessEngine(X, compiled=compiled) as engine:
        new, ll = em_update(engine, MixtureParams(w, m, c), Projection("x", P),
                            covariance_floor=floor, weight_concentration=alpha,
                            covariance_type=covariance_type)
        shift = engine.summaries.shift
    rw, rm, rc, rll = reference_em_update(X, w, m, c, P, covariance_floor=floor,
                                          weight_concentration=alpha, shrink_center=shift,
                                          covariance_type=covariance_type)
    spread = X.std(axis=0).max()  # errors are judged against the data's spread, not its offset
    np.testing.assert_allclose(new.weights, rw, rtol=0, atol=tol)
    np.testing.assert_allclose(new.means, rm, rtol=0, atol=tol * spread)
    np.testing.assert_allclose(new.covariances, rc, rtol=0, atol=tol * np.abs(rc).max())
    assert ll == pytest.approx(rll, abs=tol * max(1.0, abs(rll)))
    return new


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_in_process_update_matches_dense_reference(kind, blobs, compiled):
    X, _ = blobs
    params = random_params(1, X, 4)
    assert_update_matches_reference(X, params, make_projection(kind, X.shape[1]),
                                    compiled=compiled)


@pytest.mark.parametrize("covariance_type", ["tied", "diag", "spherical"])
@pytest.mark.parametrize("kind", KINDS)
def test_update_of_each_covariance_type_matches_dense_reference(kind, covariance_type, blobs):
    """Each type's update (its own kernel for diagonal passes, the pooled M-step for tied,
    the projection onto the type after a rotated matching) is the reference's."""
    X, _ = blobs
    w, m, c = random_params(1, X, 4)
    c = constrain_covariances(c, covariance_type, 1e-3, w)
    new = assert_update_matches_reference(X, (w, m, c), make_projection(kind, X.shape[1]),
                                          covariance_type=covariance_type)
    assert np.array_equal(constrain_covariances(new.covariances, covariance_type, 1e-3,
                                                new.weights), new.covariances)


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
    assert_update_matches_reference(X, (w, m, c * 1e-4), make_projection(kind, X.shape[1]),
                                    floor=1e-10, tol=1e-6)


def test_float32_input_accumulates_in_float64(blobs):
    X, _ = blobs
    # By default every pass runs in float64: the reference on the float32 values promoted
    # to float64 is the exact answer.
    assert_update_matches_reference(X.astype(np.float32), random_params(1, X, 4), None)


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_float32_products_of_float32_data_are_accurate(blobs, kind, compiled):
    """``biglearn.float32-products``: features and products in float32, statistics summed
    in float64. The update is the float64 one to 1e-5 of the data's scale (measured: 3e-8
    on the means, a few 1e-6 on the covariances)."""
    import dask

    X, _ = blobs
    with dask.config.set({"biglearn.float32-products": True}):
        with InProcessEngine(X.astype(np.float32)) as engine, InProcessEngine(X) as wide:
            assert engine.float32_products and not wide.float32_products
        assert_update_matches_reference(X.astype(np.float32), random_params(1, X, 4),
                                        make_projection(kind, X.shape[1]), tol=1e-5,
                                        compiled=compiled)


def test_marginal_update_changes_only_its_block(blobs):
    """With a coordinate subset, entries outside the subset's block are kept (before floor)."""
    X, _ = blobs
    w, m, c = random_params(6, X, 4)
    new = assert_update_matches_reference(X, (w, m, c), np.eye(3)[[0, 2]], floor=1e-12,
                                          alpha=0.0)
    np.testing.assert_allclose(new.means[:, 1], m[:, 1], atol=1e-12)
    # The floor may move an indefinite result; here all stay positive definite.
    np.testing.assert_allclose(new.covariances[:, 1, 1], c[:, 1, 1], atol=1e-9)


def test_starved_component_uses_the_divisor_floor(blobs):
    """A component far from all data gets N_k ~ 0: divisor 1e-5 N, mean pulled to the centre."""
    X, _ = blobs
    w, m, c = random_params(13, X, 4)
    m = m.copy()
    m[3] = X.mean(axis=0) + 1e3  # no point is anywhere near it
    new = assert_update_matches_reference(X, (w, m, c), None)
    np.testing.assert_allclose(new.means[3], X.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(new.covariances[3], 1e-3 * np.eye(3), atol=1e-12)


def test_marginal_update_that_breaks_definiteness_is_floored():
    """Keeping old cross-covariances next to a shrunk block can make Sigma indefinite."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 2)) * [1.0, 0.01]  # the 2nd coordinate is nearly constant
    w, m = np.array([1.0]), np.zeros((1, 2))
    c = np.array([[[1.0, 0.9], [0.9, 1.0]]])  # strongly correlated start
    P = np.eye(2)[[1]]
    new = assert_update_matches_reference(X, (w, m, c), P, floor=1e-3, alpha=0.0)
    unfloored = c[0].copy()
    unfloored[1, 1] = X[:, 1].var()
    assert np.linalg.eigvalsh(unfloored).min() < 0  # the raw block replacement is indefinite
    assert np.linalg.eigvalsh(new.covariances[0]).min() >= 1e-3 - 1e-12
    np.testing.assert_array_equal(new.covariances[0], new.covariances[0].T)


def test_summary_pass(blobs):
    X, _ = blobs
    with InProcessEngine(X) as engine:
        s = engine.summaries
        assert (engine.n_samples, engine.n_features) == (600, 3) == (s.n_samples, 3)
        np.testing.assert_array_equal(s.min, X.min(axis=0))
        np.testing.assert_array_equal(s.max, X.max(axis=0))
        mean, var = order_free(X.mean(axis=0), X.var(axis=0))
        np.testing.assert_allclose(s.shift, mean, rtol=1e-12)
        np.testing.assert_allclose(s.var, var, rtol=1e-9)
        np.testing.assert_array_equal(engine.take_rows([3, 7]), X[[3, 7]])


def test_order_free_summaries_do_not_depend_on_the_summation_order(blobs):
    X, _ = blobs
    a = order_free(X.mean(axis=0), X.var(axis=0))
    b = order_free(X[::-1].sum(axis=0) / len(X), ((X - X.mean(axis=0)) ** 2)[::-1].mean(axis=0))
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)


def test_unusable_data_gets_a_clear_error():
    X = np.random.default_rng(0).normal(size=(50, 2)) * 1e160
    with pytest.raises(FloatingPointError, match="Scale the data"):
        InProcessEngine(X)
    X = np.ones((5, 2))
    X[1, 1] = np.inf
    with pytest.raises(ValueError, match="contains infinity"):
        InProcessEngine(X)
