"""Sufficient statistics and data summaries add up: any order, any grouping (properties)."""

import itertools

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from dask_biglearn.algebra import estep_coefficients
from dask_biglearn.kernels.passes import PassSpec, pass_stats
from dask_biglearn.kernels.stats import combine_stats
from dask_biglearn.kernels.summaries import combine_summaries, summarize_blocks
from dask_biglearn.testing.strategies import data_and_splits, mixture_params


def _regroup(parts, order, cuts):
    """Parts permuted by ``order``, then summed in consecutive groups at ``cuts``."""
    permuted = [parts[i] for i in order]
    bounds = [0, *sorted(set(cuts)), len(permuted)]
    return [permuted[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@given(data=data_and_splits(), params=mixture_params(), seed=st.integers(0, 2**16))
def test_statistics_of_a_concatenation_are_the_combination_of_its_parts(data, params, seed):
    X, splits = data
    weights, means, covs = params(X.shape[1])
    shift = X.mean(axis=0)
    spec = PassSpec(estep_coefficients(weights, means, covs, shift), shift)
    whole = pass_stats([X], spec)
    parts = [pass_stats([block], spec, block_rows=7) for block in np.split(X, splits)]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(parts))
    cuts = rng.integers(0, len(parts) + 1, size=rng.integers(0, 4))
    grouped = combine_stats([combine_stats(g) for g in _regroup(parts, order, cuts)])
    scale = max(1.0, np.abs(whole.second_moment).max())
    assert grouped.n_rows == whole.n_rows == len(X)
    np.testing.assert_allclose(grouped.resp_sum, whole.resp_sum, rtol=0, atol=1e-9 * len(X))
    np.testing.assert_allclose(grouped.second_moment, whole.second_moment, rtol=0,
                               atol=1e-10 * scale)
    assert abs(grouped.log_lik_sum - whole.log_lik_sum) <= 1e-9 * max(1, abs(whole.log_lik_sum))


@given(data=data_and_splits(), seed=st.integers(0, 2**16))
def test_summaries_of_a_concatenation_are_the_combination_of_its_parts(data, seed):
    X, splits = data
    whole = summarize_blocks([X])
    parts = [summarize_blocks([block], block_rows=5) for block in np.split(X, splits)]
    rng = np.random.default_rng(seed)
    grouped = combine_summaries([combine_summaries(g) for g in _regroup(
        parts, rng.permutation(len(parts)), rng.integers(0, len(parts) + 1, size=2))])
    assert grouped.n_rows == len(X) and grouped.finite
    np.testing.assert_array_equal(grouped.min, X.min(axis=0))
    np.testing.assert_array_equal(grouped.max, X.max(axis=0))
    spread = max(1.0, np.abs(X).max())
    np.testing.assert_allclose(grouped.mean, X.mean(axis=0), rtol=0, atol=1e-12 * spread)
    np.testing.assert_allclose(grouped.m2 / len(X), X.var(axis=0), rtol=1e-9,
                               atol=1e-12 * spread**2)
    np.testing.assert_allclose(whole.m2, grouped.m2, rtol=1e-9, atol=1e-12 * spread**2)


def test_summary_sees_infinite_values_and_takes_nan_as_missing():
    X = np.ones((10, 2))
    X[3, 1] = np.inf
    assert not summarize_blocks([X[:5], X[5:]]).finite
    assert not combine_summaries([summarize_blocks([X[:2]]), summarize_blocks([X[2:]])]).finite
    X[3, 1] = np.nan
    summary = combine_summaries([summarize_blocks([X[:2]]), summarize_blocks([X[2:]])])
    assert summary.finite and summary.n_missing == 1
    np.testing.assert_array_equal(summary.feature_weights, [10.0, 9.0])
