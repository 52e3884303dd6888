"""Passes and scoring over rows with missing values, against the row-by-row oracle
(``dask_biglearn.testing.reference_em_update``) on every route and covariance type."""

import dask
import dask.array as da
import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from dask_biglearn.algebra import constrain_params
from dask_biglearn.covariances import type_entry
from dask_biglearn.engines import DaskEngine, InProcessEngine
from dask_biglearn.fit.loop import em_updates, mean_log_likelihoods
from dask_biglearn.kernels.features import n_quadratic_features
from dask_biglearn.kernels.missing import Completion, Gaussians, pass_holes
from dask_biglearn.kernels.scoring import proba_block, score_block
from dask_biglearn.model import MixtureParams
from dask_biglearn.projection import MATCHING_KINDS, Projection
from dask_biglearn.testing import (
    make_blobs,
    make_projection,
    random_params,
    reference_em_update,
    reference_log_likelihood,
)
from dask_biglearn.testing.markers import needs_numba

TYPES = ("full", "tied", "diag", "spherical")
FLOOR, ALPHA = 1e-6, 0.1


@pytest.fixture(scope="module")
def holed():
    """Blobs in 4-D with a quarter of the values missing, a row of nothing, and a run of rows
    that miss the same two coordinates (a block of a merged data set)."""
    X, _ = make_blobs(seed=3, n_samples=500, n_features=4, n_components=3)
    rng = np.random.default_rng(1)
    X[rng.random(X.shape) < 0.25] = np.nan
    X[7] = np.nan
    X[100:180, 1:3] = np.nan
    return X


def _params(X, covariance_type):
    w, m, c = random_params(2, np.nan_to_num(X), 3)
    return constrain_params(MixtureParams(w, m, c), covariance_type, FLOOR)


def _projection(kind, d):
    P = make_projection(kind, d, seed=5)
    return Projection.identity() if P is None else Projection(kind, P)


def _assert_matches_the_oracle(engine, X, params, projection, covariance_type, atol=1e-8):
    ((new, ll),) = em_updates(engine, [params], [projection], covariance_floor=FLOOR,
                              weight_concentration=ALPHA, covariance_type=covariance_type)
    want = reference_em_update(X, params.weights, params.means, params.covariances,
                               projection.matrix, covariance_floor=FLOOR,
                               weight_concentration=ALPHA,
                               shrink_center=engine.summaries.shift,
                               covariance_type=covariance_type)
    for got, expected in zip((new.weights, new.means, new.covariances), want[:3],
                             strict=True):
        np.testing.assert_allclose(got, expected, rtol=0, atol=atol)
    assert ll == pytest.approx(want[3], abs=atol)


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=needs_numba)])
@pytest.mark.parametrize("kind", MATCHING_KINDS)
@pytest.mark.parametrize("covariance_type", TYPES)
def test_an_update_over_incomplete_rows_is_the_oracle_s(holed, covariance_type, kind, compiled):
    params = _params(holed, covariance_type)
    with InProcessEngine(holed, compiled=compiled) as engine:
        _assert_matches_the_oracle(engine, holed, params, _projection(kind, 4), covariance_type)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_the_dask_route_gives_the_oracle_s_update_whatever_the_chunking(holed,
                                                                         covariance_type):
    params = _params(holed, covariance_type)
    with dask.config.set(scheduler="threads"):
        for chunks in (97, 500):
            with DaskEngine(da.from_array(holed, chunks=(chunks, -1))) as engine:
                for kind in MATCHING_KINDS:
                    _assert_matches_the_oracle(engine, holed, params, _projection(kind, 4),
                                               covariance_type)


@pytest.mark.parametrize("actors", [False, True], ids=["tasks", "actors"])
def test_a_cluster_s_tasks_and_actors_give_the_oracle_s_update(holed, client, actors):
    with DaskEngine(da.from_array(holed, chunks=(120, -1)), actors=actors) as engine:
        assert engine.route == ("actors" if actors else "tasks")
        for covariance_type in ("full", "diag"):
            params = _params(holed, covariance_type)
            for kind in MATCHING_KINDS:
                _assert_matches_the_oracle(engine, holed, params, _projection(kind, 4),
                                           covariance_type)


def test_the_joint_log_likelihood_is_that_of_the_observed_values(holed):
    params = _params(holed, "full")
    with InProcessEngine(holed) as engine:
        (ll,) = mean_log_likelihoods(engine, [params])
    assert ll == pytest.approx(reference_log_likelihood(holed, params.weights, params.means,
                                                        params.covariances), abs=1e-10)


def test_weighted_incomplete_rows_are_repeated_incomplete_rows(holed):
    counts = np.random.default_rng(4).integers(0, 3, size=len(holed))
    params = _params(holed, "full")
    from dask_biglearn.validation import with_sample_weight

    updates = []
    for engine in (InProcessEngine(with_sample_weight(holed, counts.astype(float)),
                                   weighted=True),
                   InProcessEngine(np.repeat(holed, counts, axis=0))):
        with engine:
            ((new, ll),) = em_updates(engine, [params], [Projection.identity()],
                                      covariance_floor=FLOOR, weight_concentration=0.0)
            updates.append((new, ll))
    (a, lla), (b, llb) = updates
    np.testing.assert_allclose(a.means, b.means, rtol=0, atol=1e-9)
    np.testing.assert_allclose(a.covariances, b.covariances, rtol=0, atol=1e-9)
    assert lla == pytest.approx(llb, abs=1e-10)


def test_complete_data_takes_the_complete_path():
    """No NaN: the engine has nothing missing and its passes carry no missing flag."""
    X, _ = make_blobs(seed=3, n_samples=200, n_features=3, n_components=2)
    from dask_biglearn.fit.loop import pass_spec

    with InProcessEngine(X) as engine:
        assert not engine.missing
        spec, _ = pass_spec(engine, _params(X, "full"), None, moments=True)
    assert not spec.missing


def test_a_rotated_pass_with_no_complete_row_changes_nothing():
    """Every row misses a coordinate of the rotation: no row takes part, the parameters stay
    as they were (and the pass's log-likelihood is NaN)."""
    X, _ = make_blobs(seed=3, n_samples=200, n_features=3, n_components=2)
    X[::2, 0] = np.nan
    X[1::2, 1] = np.nan
    params = _params(X, "full")
    P = Projection("rotated_marginal", np.array([[0.6, 0.8, 0.0], [-0.8, 0.6, 0.0]]))
    with InProcessEngine(X) as engine:
        ((new, ll),) = em_updates(engine, [params], [P], covariance_floor=FLOOR,
                                  weight_concentration=ALPHA)
    assert new is params and np.isnan(ll)


@needs_numba
@pytest.mark.parametrize("fraction", [0.2, 0.6])
def test_the_compiled_completion_is_the_numpy_reference_s(fraction):
    """Rows of rare patterns go through the compiled twin, runs of a pattern through matrix
    products: both equal the NumPy reference, pattern by pattern."""
    rng = np.random.default_rng(0)
    k, m, n = 5, 6, 300
    A = rng.normal(size=(k, m, m))
    model = Gaussians(np.linalg.inv(A @ np.swapaxes(A, 1, 2) + np.eye(m)),
                      rng.normal(size=(k, m)), False)
    nan = rng.random((n, m)) < fraction
    nan[:40] = False
    nan[:40, :2] = True  # a run of one pattern
    Y = np.where(nan, 0.0, rng.normal(size=(n, m)))
    holes = pass_holes(nan, None)
    compiled, reference = Completion(Y, holes, model, True), Completion(Y, holes, model)
    assert compiled._rows is not None and compiled._groups  # both routes were taken
    np.testing.assert_allclose(compiled.corrections, reference.corrections, rtol=0,
                               atol=1e-10)
    resp = rng.random((k, n))
    G = [np.zeros((k, n_quadratic_features(m))) for _ in range(2)]
    compiled.add_moments(G[0], resp)
    reference.add_moments(G[1], resp)
    np.testing.assert_allclose(G[0], G[1], rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_scoring_an_incomplete_row_is_scoring_its_observed_values(holed, covariance_type):
    """score_samples and predict_proba of rows with NaN, in sub-blocks, against SciPy's
    densities of the observed coordinates; a row of nothing scores 0 and gets the weights."""
    params = _params(holed, covariance_type)
    entry = type_entry(covariance_type)
    typed = entry.from_full(params.covariances)
    factors = entry.precisions_cholesky(typed)
    model = (params.weights, params.means, factors, covariance_type)
    want = []
    for x in holed:
        seen = ~np.isnan(x)
        if not seen.any():
            want.append(0.0)
            continue
        want.append(logsumexp([
            np.log(w) + multivariate_normal(mu[seen], cov[np.ix_(seen, seen)]).logpdf(x[seen])
            for w, mu, cov in zip(params.weights, params.means, params.covariances,
                                  strict=True)]))
    np.testing.assert_allclose(score_block(holed, *model, block_rows=64), want, rtol=0,
                               atol=1e-10)
    proba = proba_block(holed, *model, block_rows=64)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(proba[7], params.weights, atol=1e-12)
