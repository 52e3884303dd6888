"""Scoring kernels: the values of every covariance type whatever the sub-block size, and the
memory of scoring a block (its output and a few sub-blocks, never a float64 copy of it)."""

import tracemalloc

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from dask_biglearn.algebra import (
    COVARIANCE_TYPES,
    full_covariances,
    typed_covariances,
    typed_precisions_cholesky,
)
from dask_biglearn.kernels.scoring import (
    checked_block,
    predict_block,
    proba_block,
    score_block,
    score_sum_block,
    weighted_log_prob,
)

KERNELS = [weighted_log_prob, score_block, proba_block, predict_block]


def typed_model(covariance_type, n_components=5, n_features=4, seed=0, offset=50.0):
    """Weights, means (far from 0) and precision factors of a random mixture of a type."""
    rng = np.random.default_rng(seed)
    B = rng.normal(size=(n_components, n_features, n_features))
    covs = B @ np.swapaxes(B, 1, 2) + np.eye(n_features)
    typed = typed_covariances(_constrain(covs, covariance_type), covariance_type)
    means = offset + 3.0 * rng.normal(size=(n_components, n_features))
    return (rng.dirichlet(np.ones(n_components)), means,
            typed_precisions_cholesky(typed, covariance_type), covariance_type, typed)


def _constrain(covs, covariance_type):
    if covariance_type == "tied":
        return np.broadcast_to(covs.mean(axis=0), covs.shape).copy()
    if covariance_type == "diag":
        return np.stack([np.diag(np.diag(c)) for c in covs])
    if covariance_type == "spherical":
        return np.stack([np.eye(len(c)) * np.diag(c).mean() for c in covs])
    return covs


def rows(n, model, seed=1, dtype=np.float64):
    means = model[1]
    rng = np.random.default_rng(seed)
    return (means[rng.integers(len(means), size=n)] + 2.0 * rng.normal(size=(n, means.shape[1]))
            ).astype(dtype)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_the_kernels_give_the_log_densities_of_a_dense_reference(covariance_type):
    weights, means, _, _, typed = model = typed_model(covariance_type)
    X = rows(301, model)
    covs = full_covariances(typed, covariance_type, *means.shape)
    expected = np.column_stack([np.log(w) + multivariate_normal(m, c).logpdf(X)
                                for w, m, c in zip(weights, means, covs, strict=True)])
    got = weighted_log_prob(X, *model[:4], block_rows=64)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    np.testing.assert_allclose(score_block(X, *model[:4], block_rows=64),
                               logsumexp(expected, axis=1), rtol=1e-10)
    np.testing.assert_allclose(proba_block(X, *model[:4], block_rows=64),
                               np.exp(expected - logsumexp(expected, axis=1)[:, None]),
                               rtol=1e-9, atol=1e-300)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("kernel", KERNELS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("block_rows", [1, 7, 64])
def test_a_kernel_gives_what_one_sub_block_of_the_whole_block_gives(kernel, covariance_type,
                                                                    block_rows):
    """One sub-block of all the rows is the unblocked computation the kernels did before
    they worked in sub-blocks: any sub-block size gives its values, to rounding."""
    model = typed_model(covariance_type)[:4]
    X = rows(301, model)
    whole = kernel(X, *model, block_rows=len(X))
    blocked = kernel(X, *model, block_rows=block_rows)
    if kernel is predict_block:
        np.testing.assert_array_equal(blocked, whole)
    else:
        np.testing.assert_allclose(blocked, whole, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda f: f.__name__)
def test_float32_rows_score_as_their_float64_copy(kernel):
    model = typed_model("full")[:4]
    X = rows(200, model, dtype=np.float32)
    np.testing.assert_array_equal(kernel(X, *model, block_rows=32),
                                  kernel(X.astype(np.float64), *model, block_rows=32))


def test_the_sum_of_a_block_s_scores_is_the_sum_of_score_block():
    model = typed_model("diag")[:4]
    X = rows(1000, model)
    total = score_sum_block(X, *model, block_rows=96)
    assert total.shape == (1,) and total.dtype == np.float64
    np.testing.assert_allclose(total[0], score_block(X, *model).sum(), rtol=1e-13)
    assert score_sum_block(X[:0], *model, block_rows=96)[0] == 0.0


def test_an_empty_block_gives_empty_results():
    model = typed_model("full")[:4]
    X = rows(0, model)
    assert score_block(X, *model).shape == (0,)
    assert proba_block(X, *model).shape == (0, 5)
    assert predict_block(X, *model).shape == (0,)


def test_checked_block_finds_an_infinity_in_the_last_sub_block_and_passes_on_the_sub_block_size():
    model = typed_model("full")[:4]
    X = rows(100, model)
    seen = []

    def kernel(block, *args, block_rows):
        seen.append(block_rows)
        return score_block(block, *args, block_rows=block_rows)

    np.testing.assert_array_equal(checked_block(X, kernel, *model, block_rows=30),
                                  score_block(X, *model))
    assert seen == [30]
    X[-1, 2] = np.nan  # a missing value: scored through the row's observed coordinates
    assert np.isfinite(checked_block(X, kernel, *model, block_rows=30)).all()
    X[-1, 2] = np.inf
    with pytest.raises(ValueError, match="contains infinity"):
        checked_block(X, kernel, *model, block_rows=30)


def _peak_bytes(fn):
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("kernel", [score_block, proba_block, predict_block, score_sum_block],
                         ids=lambda f: f.__name__)
def test_scoring_a_250k_row_block_holds_its_output_and_little_more(kernel):
    """The new user's chunk: 250k rows of 16 float32 columns, 12 components. The kernels
    used to hold float64 copies of the block and ``n_rows x n_components`` temporaries;
    now a task holds at most about three times its chunk, of which all but a few sub-blocks
    is the output itself (for ``score``'s per-chunk sum, not even the rows' scores)."""
    model = typed_model("full", n_components=12, n_features=16, offset=0.0)[:4]
    X = rows(250_000, model, dtype=np.float32)
    checked_block(X[:10], kernel, *model, block_rows=1024)  # first-call allocations aside
    result, peak = _peak_bytes(lambda: checked_block(X, kernel, *model, block_rows=1024))
    assert peak <= 3 * X.nbytes
    assert peak - result.nbytes <= X.nbytes / 16


def test_scoring_a_block_with_a_given_sub_block_size_loads_no_compiled_kernel():
    """A worker that only scores (the estimators pass the sub-block size) never imports
    numba, whose import and compiled kernels would take a large share of a small worker."""
    import subprocess
    import sys

    probe = ("import sys, numpy as np; from dask_biglearn.kernels import scoring; "
             "X = np.ones((10, 2)); args = (np.ones(1), np.zeros((1, 2)), np.eye(2)[None]); "
             "scoring.checked_block(X, scoring.proba_block, *args, block_rows=4); "
             "scoring.checked_block(X, scoring.score_sum_block, *args, block_rows=4); "
             "print('numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "False"
