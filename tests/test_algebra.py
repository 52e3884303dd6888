"""Driver algebra: E-step coefficients, eigenvalue floor, factors (and the compiled twin), the
M-step and the map back of each covariance type."""

import numpy as np
import pytest
from sklearn.mixture._gaussian_mixture import _estimate_gaussian_parameters

from dask_biglearn.algebra import (
    COVARIANCE_TYPES,
    CholeskyError,
    constrain_params,
    estep_coefficients,
    floor_eigenvalues,
    is_diagonal_type,
    map_back,
    precision_cholesky,
    project_params,
    projected_m_step,
    selected_coordinates,
    smoothed_weights,
    typed_covariances,
)
from dask_biglearn.covariances import type_entry
from dask_biglearn.kernels.features import projected_features
from dask_biglearn.kernels.scoring import weighted_log_prob
from dask_biglearn.kernels.stats import SuffStats
from dask_biglearn.model import MixtureParams
from dask_biglearn.projection import MATCHING_KINDS as KINDS
from dask_biglearn.testing import make_projection, random_params, reference_floor
from dask_biglearn.testing.markers import needs_numba


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=needs_numba)])
@pytest.mark.parametrize("kind", KINDS)
def test_estep_coefficients_reproduce_projected_log_density(kind, blobs, compiled):
    X, _ = blobs
    w, m, c = random_params(5, X, 4)
    P = make_projection(kind, X.shape[1])
    shift = X.mean(axis=0)
    my, cy = project_params(m, c, P)
    shift_y = shift if P is None else P @ shift
    theta = estep_coefficients(w, my, cy, shift_y, compiled=compiled)
    got = projected_features(X, shift, P).T @ theta
    Y = X if P is None else X @ P.T
    expected = weighted_log_prob(Y, w, my, precision_cholesky(cy))
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-9)


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
    np.testing.assert_allclose(U @ np.swapaxes(U, 1, 2) @ covs,
                               np.broadcast_to(np.eye(5), covs.shape), atol=1e-10)
    assert np.allclose(np.tril(U[0], -1), 0)


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
    covs = np.stack([np.eye(2), [[1.0, 2.0], [2.0, 1.0]]])
    with pytest.raises(CholeskyError, match="not positive definite"):
        estep_coefficients(np.full(2, 0.5), np.zeros((2, 2)), covs, np.zeros(2),
                           compiled=compiled)


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=needs_numba)])
def test_estep_coefficients_of_non_finite_covariances_are_not_finite(compiled):
    """Both paths leave non-finite parameters to the driver's finiteness check."""
    covs = np.stack([np.eye(2), np.full((2, 2), np.inf)])
    with np.errstate(all="ignore"):
        theta = estep_coefficients(np.full(2, 0.5), np.zeros((2, 2)), covs, np.zeros(2),
                                   compiled=compiled)
    assert not np.all(np.isfinite(theta))


# ---- M-step and map back, per covariance type -----------------------------------------------


def _shifted_stats(X, resp, shift, diagonal):
    """The statistics of a pass with responsibilities ``resp``, as the kernels compute them
    (a diagonal pass keeps only the diagonals of the second moments)."""
    Xs = X - shift
    second = (np.einsum("nk,ni->ki", resp, Xs**2) if diagonal
              else np.einsum("nk,ni,nj->kij", resp, Xs, Xs))
    return SuffStats(resp.sum(axis=0), resp.T @ Xs, second, 0.0, len(X))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_the_m_step_and_joint_update_give_scikit_learns_parameters_of_each_type(
        covariance_type):
    """From the same responsibilities, on data far from the origin (shifted moments)."""
    rng = np.random.default_rng(8)
    X = rng.normal(size=(500, 4)) @ rng.normal(size=(4, 4)) + 50.0
    resp = rng.dirichlet(np.ones(3), size=500)
    shift = X.mean(axis=0)
    stats = _shifted_stats(X, resp, shift, is_diagonal_type(covariance_type))
    means_y, covs_y = projected_m_step(stats, shift, 1e-12, 1e-6, covariance_type)
    weights = smoothed_weights(stats.resp_sum, stats.n_rows, 0.0)
    means, covs = map_back(None, None, means_y, covs_y, None, 1e-12, covariance_type, weights)
    _, sk_means, sk_covs = _estimate_gaussian_parameters(X, resp, 1e-6, covariance_type)
    np.testing.assert_allclose(means, sk_means, rtol=1e-12)
    np.testing.assert_allclose(typed_covariances(covs, covariance_type), sk_covs, rtol=1e-9,
                               atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_a_projected_update_keeps_the_covariances_of_the_type(blobs, kind, covariance_type):
    X, _ = blobs
    d = X.shape[1]
    entry = type_entry(covariance_type)
    w, m, c = random_params(6, X, 4)
    c = entry.project(c, 1e-3, w)
    P = make_projection(kind, d)
    Y = X if P is None else X @ P.T
    resp = np.random.default_rng(1).dirichlet(np.ones(4), size=len(X))
    diagonal = entry.diagonal and (P is None or kind == "marginal")
    stats = _shifted_stats(Y, resp, Y.mean(axis=0), diagonal)
    means_y, covs_y = projected_m_step(stats, Y.mean(axis=0), 1e-3, 0.0, covariance_type)
    _, covs = map_back(m, c, means_y, covs_y, P, 1e-3, covariance_type, w)
    np.testing.assert_array_equal(entry.to_full(entry.from_full(covs), 4, d), covs)
    assert np.linalg.eigvalsh(covs).min() >= 1e-3 - 1e-12
    if covariance_type == "diag" and kind == "marginal":  # the unmatched variances are kept
        kept = np.setdiff1d(np.arange(d), selected_coordinates(P))
        np.testing.assert_array_equal(np.diagonal(covs, axis1=1, axis2=2)[:, kept],
                                      np.diagonal(c, axis1=1, axis2=2)[:, kept])


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_constrain_params_projects_a_start_onto_every_type_but_full(blobs, covariance_type):
    X, _ = blobs
    params = MixtureParams(*random_params(2, X, 3))
    constrained = constrain_params(params, covariance_type, 1e-3)
    if covariance_type == "full":
        assert constrained is params
    else:
        np.testing.assert_array_equal(
            constrained.covariances,
            type_entry(covariance_type).project(params.covariances, 1e-3, params.weights))
        np.testing.assert_array_equal(constrained.means, params.means)
