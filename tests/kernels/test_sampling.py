"""Row samples by global index and seed: the same rows whatever the blocks (properties)."""

import itertools

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from dask_biglearn.kernels.sampling import (
    combine_samples,
    in_index_order,
    row_keys,
    sample_blocks,
)
from dask_biglearn.testing.strategies import data_and_splits


def test_keys_depend_on_index_and_seed_only():
    np.testing.assert_array_equal(row_keys(5, 10, 3), row_keys(0, 10, 3)[5:])
    assert not np.array_equal(row_keys(0, 10, 3), row_keys(0, 10, 4))
    assert len(set(row_keys(0, 100_000, 1).tolist())) == 100_000  # a bijective mixer


@given(data=data_and_splits(), size=st.integers(0, 70), seed=st.integers(0, 2**63 - 1),
       order_seed=st.integers(0, 2**16))
def test_a_sample_does_not_depend_on_the_blocks(data, size, seed, order_seed):
    X, cuts = data
    whole = in_index_order(sample_blocks([X], [0], seed, size))
    bounds = [0, *cuts, len(X)]
    blocks = [X[a:b] for a, b in itertools.pairwise(bounds)]
    parts = [sample_blocks([b], [a], seed, size)
             for a, b in zip(bounds[:-1], blocks, strict=True)]
    rng = np.random.default_rng(order_seed)
    parts = [parts[i] for i in rng.permutation(len(parts))]
    half = rng.integers(1, len(parts) + 1)
    groups = [g for g in (parts[:half], parts[half:]) if g]  # disjoint rows, any grouping
    merged = combine_samples([combine_samples(g) for g in groups])
    np.testing.assert_array_equal(in_index_order(merged), whole)
    assert len(whole) == min(size, len(X))
    # They are rows of X, distinct, in index order.
    index = np.sort(merged.index)
    assert len(set(index.tolist())) == len(index)
    np.testing.assert_array_equal(whole, X[index])


def test_samples_are_uniform():
    """Each row is in a sample of 10 of 100 rows one time in ten."""
    counts = np.zeros(100)
    for seed in range(3000):
        counts[sample_blocks([np.arange(100.0)[:, None]], [0], seed, 10).index] += 1
    assert abs(counts.mean() / 3000 - 0.1) < 1e-12
    assert counts.min() > 240 and counts.max() < 360  # 300 +- 3.5 sigma


def test_candidates_below_the_threshold_give_the_same_sample_from_few_rows_per_block():
    from dask_biglearn.kernels.sampling import candidate_fraction, combine_samples, sample_blocks

    rng = np.random.default_rng(5)
    X = rng.normal(size=(200_000, 2))
    size, starts = 5_000, range(0, 200_000, 20_000)
    fraction = candidate_fraction(size, len(X))
    full = combine_samples([sample_blocks([X[s:s + 20_000]], [s], 3, size) for s in starts])
    parts = [sample_blocks([X[s:s + 20_000]], [s], 3, size, fraction) for s in starts]
    # each block sends about its share of the sample, not up to ``size`` rows
    assert all(len(p.keys) < 1.5 * size * 20_000 / len(X) for p in parts)
    limited = combine_samples(parts)
    np.testing.assert_array_equal(np.sort(limited.index), np.sort(full.index))
    assert candidate_fraction(10, 10) == 1.0


@given(data=data_and_splits(), size=st.integers(1, 70), seed=st.integers(0, 2**63 - 1))
def test_rows_up_to_the_threshold_are_the_sample(data, size, seed):
    """Blocks that keep their rows up to the sample's largest key, alone and with no
    combine, hold the sample's rows in index order."""
    from dask_biglearn.kernels.sampling import rows_up_to_key, sample_key_threshold

    X, cuts = data
    whole = in_index_order(sample_blocks([X], [0], seed, size))
    threshold = sample_key_threshold(len(X), seed, size)
    bounds = [0, *cuts, len(X)]
    kept = [rows_up_to_key(X[a:b], a, seed, threshold) for a, b in itertools.pairwise(bounds)]
    np.testing.assert_array_equal(np.concatenate(kept), whole)
