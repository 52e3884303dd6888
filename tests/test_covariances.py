"""The type table, one entry per covariance type, against scikit-learn's own numerics.

As scikit-learn's ``test_suffstat_sk_*``, ``test_compute_log_det_cholesky`` and
``test_fitted_precision_covariance_concistency``: the same responsibilities give each type's
M-step, the typed covariances survive the round trip through full matrices, the precisions
and their Cholesky factors are scikit-learn's and invert the covariances, the parameter counts
and the draws of ``sample`` are scikit-learn's.
"""

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from sklearn.mixture._gaussian_mixture import (
    _compute_log_det_cholesky,
    _compute_precision_cholesky,
    _estimate_gaussian_covariances_full,
    _estimate_gaussian_parameters,
)

from dask_biglearn import algebra
from dask_biglearn.covariances import (
    COVARIANCE_TYPES,
    TYPE_TABLE,
    CholeskyError,
    type_entry,
)

N, K, D = 400, 3, 4
REG_COVAR = 1e-6


@pytest.fixture(scope="module")
def data():
    """Rows and random responsibilities (scikit-learn's ``RandomData`` habit)."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(N, D)) @ rng.normal(size=(D, D)) + rng.normal(scale=3, size=D)
    resp = rng.dirichlet(np.ones(K), size=N)
    return X, resp


def _sklearn_covariances(data, covariance_type):
    """scikit-learn's M-step covariances of the type, in its shape."""
    X, resp = data
    return _estimate_gaussian_parameters(X, resp, REG_COVAR, covariance_type)[2]


def _random_spd(rng, n, d):
    B = rng.normal(size=(n, d, d))
    return B @ np.swapaxes(B, 1, 2) + 0.5 * np.eye(d)


# ---- The table ------------------------------------------------------------------------------


def test_the_table_holds_scikit_learns_types_in_its_order():
    assert COVARIANCE_TYPES == ("full", "tied", "diag", "spherical")
    assert algebra.COVARIANCE_TYPES is COVARIANCE_TYPES
    for name, entry in TYPE_TABLE.items():
        assert entry.name == name
        assert type_entry(name) is entry
        assert repr(entry) == f"CovarianceType({name!r})"


def test_an_unknown_type_is_refused_with_the_valid_ones():
    with pytest.raises(ValueError, match="expected one of.*spherical"):
        type_entry("banana")


def test_the_diagonal_types_are_diag_and_spherical_and_only_full_constrains_nothing():
    assert [t for t in COVARIANCE_TYPES if TYPE_TABLE[t].diagonal] == ["diag", "spherical"]
    assert [t for t in COVARIANCE_TYPES if not TYPE_TABLE[t].constrains] == ["full"]


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_the_stored_shape_is_scikit_learns(data, covariance_type):
    entry = type_entry(covariance_type)
    covariances = _sklearn_covariances(data, covariance_type)
    assert entry.shape(K, D) == covariances.shape
    precisions_chol = _compute_precision_cholesky(covariances, covariance_type)
    assert entry.precisions_cholesky(covariances).shape == precisions_chol.shape


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("n_components, n_features", [(1, 1), (3, 4), (5, 2)])
def test_parameter_counts_are_scikit_learns(covariance_type, n_components, n_features):
    theirs = SkGaussianMixture(n_components, covariance_type=covariance_type)
    theirs.means_ = np.zeros((n_components, n_features))
    count = type_entry(covariance_type).n_parameters(n_components, n_features)
    assert isinstance(count, int)
    assert count + n_components * n_features + n_components - 1 == theirs._n_parameters()


# ---- Typed and full -------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_typed_covariances_survive_the_round_trip_through_full_matrices(data, covariance_type):
    entry = type_entry(covariance_type)
    typed = _sklearn_covariances(data, covariance_type)
    full = entry.to_full(typed, K, D)
    assert full.shape == (K, D, D)
    np.testing.assert_allclose(entry.from_full(full), typed, rtol=1e-15, atol=0)
    np.testing.assert_array_equal(entry.to_full(entry.from_full(full), K, D), full)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_full_matrices_are_the_ones_the_type_means(data, covariance_type):
    typed = _sklearn_covariances(data, covariance_type)
    expected = {
        "full": lambda: typed,
        "tied": lambda: np.stack([typed] * K),
        "diag": lambda: np.stack([np.diag(v) for v in typed]),
        "spherical": lambda: np.stack([v * np.eye(D) for v in typed]),
    }[covariance_type]()
    np.testing.assert_array_equal(type_entry(covariance_type).to_full(typed, K, D), expected)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_the_variances_and_matrices_a_file_check_reads_are_the_stored_ones(data,
                                                                           covariance_type):
    entry = type_entry(covariance_type)
    typed = _sklearn_covariances(data, covariance_type)
    full = entry.to_full(typed, K, D)
    np.testing.assert_array_equal(np.unique(entry.diagonals(typed)),
                                  np.unique(np.diagonal(full, axis1=1, axis2=2)))
    matrices = entry.matrices(typed)
    if entry.diagonal:
        assert matrices is None
    else:
        assert matrices.ndim == 3
        np.testing.assert_array_equal(np.broadcast_to(matrices, full.shape), full)


# ---- Precisions and their Cholesky factors --------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_precision_cholesky_factors_are_scikit_learns(data, covariance_type):
    typed = _sklearn_covariances(data, covariance_type)
    np.testing.assert_allclose(type_entry(covariance_type).precisions_cholesky(typed),
                               _compute_precision_cholesky(typed, covariance_type),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_precisions_invert_the_covariances(data, covariance_type):
    entry = type_entry(covariance_type)
    typed = _sklearn_covariances(data, covariance_type)
    precisions = entry.precisions(entry.precisions_cholesky(typed))
    assert precisions.shape == typed.shape
    full_precisions = entry.to_full(precisions, K, D)
    full_covariances = entry.to_full(typed, K, D)
    np.testing.assert_allclose(full_precisions, np.linalg.inv(full_covariances), rtol=1e-10)
    np.testing.assert_allclose(full_precisions @ full_covariances,
                               np.broadcast_to(np.eye(D), (K, D, D)), atol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_the_factors_as_full_matrices_are_upper_cholesky_factors_of_the_precisions(
        data, covariance_type):
    """``to_full`` of the typed factors gives ``U_k`` with ``U_k U_k^T = Sigma_k^{-1}``, and
    their log-determinants are scikit-learn's ``_compute_log_det_cholesky``."""
    entry = type_entry(covariance_type)
    typed = _sklearn_covariances(data, covariance_type)
    chol = entry.precisions_cholesky(typed)
    factors = entry.to_full(chol, K, D)
    full_covariances = entry.to_full(typed, K, D)
    np.testing.assert_allclose(np.tril(factors, -1), 0, atol=1e-14)
    np.testing.assert_allclose(factors @ np.swapaxes(factors, 1, 2),
                               np.linalg.inv(full_covariances), rtol=1e-10)
    log_det = np.log(np.diagonal(factors, axis1=1, axis2=2)).sum(axis=1)
    theirs = _compute_log_det_cholesky(chol, covariance_type, D)
    np.testing.assert_allclose(log_det, np.broadcast_to(theirs, (K,)), rtol=1e-12)
    np.testing.assert_allclose(log_det, -0.5 * np.linalg.slogdet(full_covariances)[1],
                               rtol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_a_covariance_that_is_not_positive_definite_has_no_factor(covariance_type):
    entry = type_entry(covariance_type)
    full = np.broadcast_to(np.eye(D), (K, D, D)).copy()
    full[-1] = -np.eye(D)
    typed = entry.from_full(full if covariance_type != "tied" else -full)
    with pytest.raises(CholeskyError, match="Increase covariance_floor"):
        entry.precisions_cholesky(typed)


# ---- The M-step and the projection onto the type --------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_the_m_step_of_each_type_is_scikit_learns_from_the_same_responsibilities(
        data, covariance_type):
    """The per-component full M-step, pooled and projected onto the type, is scikit-learn's
    M-step of the type (its ``_estimate_gaussian_covariances_*``)."""
    X, resp = data
    entry = type_entry(covariance_type)
    nk, means, _ = _estimate_gaussian_parameters(X, resp, REG_COVAR, "full")
    full = _estimate_gaussian_covariances_full(resp, X, nk, means, REG_COVAR)
    typed = entry.from_full(entry.project(entry.pool(full, nk), 1e-12, nk))
    np.testing.assert_allclose(typed, _sklearn_covariances(data, covariance_type),
                               rtol=1e-10, atol=1e-12)


def test_only_the_tied_m_step_pools_the_scatter(data):
    X, resp = data
    nk, means, _ = _estimate_gaussian_parameters(X, resp, 0.0, "full")
    full = _estimate_gaussian_covariances_full(resp, X, nk, means, 0.0)
    for covariance_type in ("full", "diag", "spherical"):
        assert type_entry(covariance_type).pool(full, nk) is full
    pooled = type_entry("tied").pool(full, nk)
    np.testing.assert_array_equal(pooled, np.broadcast_to(pooled[0], full.shape))
    np.testing.assert_allclose(pooled[0], _sklearn_covariances(data, "tied") - REG_COVAR
                               * np.eye(D), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_the_projection_onto_each_type_is_the_nearest_matrix_of_the_type(covariance_type):
    """Nearest in the weighted Frobenius norm ``sum_k w_k |S_k - T_k|^2`` among matrices of
    the type (for tied: one shared ``T``); of the type; unchanged when projected again."""
    rng = np.random.default_rng(3)
    entry = type_entry(covariance_type)
    S = _random_spd(rng, K, D)
    weights = rng.dirichlet(np.ones(K))
    projected = entry.project(S, 1e-12, weights)
    np.testing.assert_array_equal(entry.to_full(entry.from_full(projected), K, D), projected)
    np.testing.assert_allclose(entry.project(projected, 1e-12, weights), projected, rtol=1e-14)

    def distance(T):
        return np.einsum("k,k->", weights, ((S - T) ** 2).sum(axis=(1, 2)))

    typed = entry.from_full(projected)
    for _ in range(20):
        step = 0.05 * entry.from_full(_random_spd(rng, K, D) - _random_spd(rng, K, D))
        assert distance(entry.to_full(typed + step, K, D)) > distance(projected)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_the_projection_floors_every_types_eigenvalues(covariance_type):
    rng = np.random.default_rng(4)
    S = _random_spd(rng, K, D)
    S[0] = np.diag([1e-6, 2.0, 3.0, 4.0])
    projected = type_entry(covariance_type).project(S, 0.1, None)
    assert np.linalg.eigvalsh(projected).min() >= 0.1 - 1e-12
    np.testing.assert_array_equal(projected, np.swapaxes(projected, 1, 2))


def test_the_full_projection_leaves_a_matrix_above_the_floor_alone():
    S = _random_spd(np.random.default_rng(5), K, D)
    np.testing.assert_array_equal(type_entry("full").project(S, 1e-3, None), S)


# ---- Draws ----------------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_draws_are_scikit_learns_from_the_same_generator(data, covariance_type):
    X, resp = data
    weights = resp.mean(axis=0)
    _, means, typed = _estimate_gaussian_parameters(X, resp, REG_COVAR, covariance_type)
    theirs = SkGaussianMixture(K, covariance_type=covariance_type, random_state=11)
    theirs.weights_, theirs.means_, theirs.covariances_ = weights, means, typed
    expected, _ = theirs.sample(300)
    rng = np.random.RandomState(11)
    counts = rng.multinomial(300, weights)
    drawn = type_entry(covariance_type).draw(rng, means, typed, counts)
    np.testing.assert_array_equal(drawn, expected)
