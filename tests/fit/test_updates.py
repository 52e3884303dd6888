"""One EM update, as properties over drawn data and parameters."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from dask_biglearn.engines import InProcessEngine
from dask_biglearn.fit import em_update
from dask_biglearn.model import MixtureParams
from dask_biglearn.projection import MatchingSchedule, Projection, haar_frame
from dask_biglearn.testing.strategies import arrays, mixture_params


def _params(X, params):
    w, m, c = params(X.shape[1])
    # Place the components where the data is, at its scale.
    scale = X.std(axis=0) + 1e-3
    return MixtureParams(w, X.mean(axis=0) + m * scale, c * np.outer(scale, scale))


@given(X=arrays(min_rows=5), params=mixture_params(), seed=st.integers(0, 2**16),
       compiled=st.booleans())
def test_a_rotated_marginal_that_keeps_every_coordinate_is_a_joint_update(X, params, seed,
                                                                          compiled):
    """Joint EM is equivariant under rotations: matching all D rotated coordinates is the
    joint update."""
    d = X.shape[1]
    start = _params(X, params)
    rotation = haar_frame(np.random.default_rng(seed), d, d)
    with InProcessEngine(X, compiled=compiled) as engine:
        joint, ll_joint = em_update(engine, start, Projection.identity(),
                                    covariance_floor=1e-6, weight_concentration=0.05)
        rotated, ll_rotated = em_update(engine, start, Projection("rotated_marginal", rotation),
                                        covariance_floor=1e-6, weight_concentration=0.05)
    scale = np.abs(joint.covariances).max()
    np.testing.assert_allclose(rotated.weights, joint.weights, rtol=0, atol=1e-9)
    np.testing.assert_allclose(rotated.means, joint.means, rtol=0,
                               atol=1e-8 * (np.abs(X).max() + np.sqrt(scale)))
    np.testing.assert_allclose(rotated.covariances, joint.covariances, rtol=0, atol=1e-8 * scale)
    assert abs(ll_rotated - ll_joint) <= 1e-8 * max(1.0, abs(ll_joint))


@given(X=arrays(min_rows=3), params=mixture_params(), seed=st.integers(0, 2**16),
       kind=st.sampled_from(["joint", "marginal", "rotated_marginal"]))
def test_valid_inputs_never_give_nan_or_inf(X, params, seed, kind):
    """Any data, any valid start, any matching: finite parameters, weights summing to 1 and
    covariances whose Cholesky succeeds."""
    d = X.shape[1]
    schedule = MatchingSchedule({kind: 1.0})
    projection = schedule.sample(np.random.default_rng(seed), d)
    params = _params(X, params)
    with InProcessEngine(X) as engine:
        for _ in range(3):
            params, ll = em_update(engine, params, projection, covariance_floor=1e-6,
                                   weight_concentration=0.0)
            assert np.isfinite(ll)
    for value in (params.weights, params.means, params.covariances):
        assert np.all(np.isfinite(value))
    assert abs(params.weights.sum() - 1.0) < 1e-12
    np.linalg.cholesky(params.covariances)
