"""The dense reference on incomplete data (issue 24): exact EM for the observed values, held to
first principles (observed marginals, Gaussian conditioning, hand-computed moments, EM's
monotonicity), not to the library's kernels."""

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from dask_biglearn.testing import (
    make_blobs,
    make_projection,
    random_params,
    reference_conditional,
    reference_em_update,
    reference_log_likelihood,
)
from dask_biglearn.testing import reference as reference_module
from dask_biglearn.testing.reference import (
    _selects_coordinates,
    reference_constrain,
    reference_floor,
)

KINDS = ["joint", "marginal", "rotated_marginal"]
TYPES = ["full", "tied", "diag", "spherical"]


def incomplete_data(seed=0, n_samples=300, n_features=3, n_components=3, fraction=0.2):
    """Blobs and the same blobs with ``fraction`` of the values missing completely at random."""
    X, _ = make_blobs(seed, n_samples, n_features, n_components)
    X_missing = X.copy()
    X_missing[np.random.default_rng(seed + 100).random(X.shape) < fraction] = np.nan
    return X, X_missing


def typed_params(seed, X, n_components, covariance_type):
    """``random_params`` on complete data, with covariances of the type."""
    w, m, c = random_params(seed, X, n_components)
    if covariance_type == "tied":
        c = np.repeat(c.mean(axis=0)[None], n_components, axis=0)
    c = np.array([reference_constrain(ci, covariance_type, 1e-3) for ci in c])
    return w, m, c


def update(X, params, P=None, floor=1e-3, alpha=0.1, covariance_type="full"):
    return reference_em_update(X, *params, P, covariance_floor=floor, weight_concentration=alpha,
                               covariance_type=covariance_type)


def assert_updates_equal(a, b, rtol=1e-12, atol=1e-12):
    for u, v in zip(a[:3], b[:3], strict=True):
        np.testing.assert_allclose(u, v, rtol=rtol, atol=atol)
    assert a[3] == pytest.approx(b[3], rel=rtol, abs=atol)


def rotation_within(columns, n_features, angle=0.7):
    """A 2-row frame that rotates within ``columns`` (two of them): no row of the identity."""
    c, s = np.cos(angle), np.sin(angle)
    P = np.zeros((2, n_features))
    P[:, columns] = [[c, s], [-s, c]]
    return P


# ---- complete data: today's reference, unchanged ----


def todays_reference_em_update(X, weights, means, covariances, projection=None, *,
                               covariance_floor, weight_concentration, shrink_center=None,
                               covariance_type="full"):
    """A frozen copy of the complete-data reference before issue 24."""
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    P = np.eye(d) if projection is None else np.asarray(projection, dtype=np.float64)
    Y = X @ P.T
    k = len(weights)
    log_prob = np.empty((n, k))
    for j in range(k):
        mu_y = P @ means[j]
        cov_y = P @ covariances[j] @ P.T
        with np.errstate(divide="ignore"):
            log_w = np.log(weights[j])
        log_prob[:, j] = log_w + multivariate_normal(mu_y, cov_y).logpdf(Y).reshape(n)
    log_norm = logsumexp(log_prob, axis=1)
    resp = np.exp(log_prob - log_norm[:, None])
    nk = resp.sum(axis=0)
    divisor = np.maximum(nk, 1e-5 * n)
    center_y = np.zeros(len(P)) if shrink_center is None else P @ shrink_center
    new_weights = nk / n + weight_concentration
    new_weights /= new_weights.sum()
    new_means = np.empty_like(means)
    new_covs = np.empty_like(covariances)
    diagonal = covariance_type in ("diag", "spherical") and _selects_coordinates(P)
    covs_y = []
    for j in range(k):
        mu_y = (resp[:, j] @ Y + (divisor[j] - nk[j]) * center_y) / divisor[j]
        diff = Y - mu_y
        scatter = (resp[:, j, None] * diff).T @ diff
        new_means[j] = mu_y if projection is None else means[j] + P.T @ (mu_y - P @ means[j])
        covs_y.append(scatter / divisor[j])
    if covariance_type == "tied":
        pooled = sum(c * n for c, n in zip(covs_y, divisor, strict=True)) / divisor.sum()
        covs_y = [pooled] * k
    for j in range(k):
        cov_y = (np.diag(np.maximum(np.diag(covs_y[j]), covariance_floor)) if diagonal
                 else reference_floor(covs_y[j], covariance_floor))
        if projection is not None:
            cov_y = covariances[j] + P.T @ (cov_y - P @ covariances[j] @ P.T) @ P
        new_covs[j] = reference_constrain(cov_y, covariance_type, covariance_floor)
    return new_weights, new_means, new_covs, float(log_norm.mean())


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_complete_data_gives_todays_reference_bit_for_bit(kind, covariance_type, monkeypatch):
    X, _ = incomplete_data(n_features=4)
    w, m, c = typed_params(1, X, 3, covariance_type)
    w = np.array([0.0, *w[1:]]) / w[1:].sum()  # an empty component, too
    P = make_projection(kind, X.shape[1])

    def no_incomplete_path(*args, **kwargs):
        raise AssertionError("complete data took the incomplete-data path")

    monkeypatch.setattr(reference_module, "_incomplete_e_step", no_incomplete_path)
    kwargs = dict(covariance_floor=1e-3, weight_concentration=0.1, shrink_center=X.mean(axis=0),
                  covariance_type=covariance_type)
    new = reference_em_update(X, w, m, c, P, **kwargs)
    old = todays_reference_em_update(X, w, m, c, P, **kwargs)
    for a, b in zip(new, old, strict=True):
        assert np.array_equal(a, b)


def test_complete_data_update_is_the_textbook_em_step():
    X, _ = incomplete_data()
    w, m, c = random_params(2, X, 3)
    new_w, new_m, new_c, ll = update(X, (w, m, c), floor=1e-12, alpha=0.0)
    dens = np.column_stack([wk * multivariate_normal(mk, ck).pdf(X)
                            for wk, mk, ck in zip(w, m, c, strict=True)])
    resp = dens / dens.sum(axis=1, keepdims=True)
    nk = resp.sum(axis=0)
    means = resp.T @ X / nk[:, None]
    for j in range(3):
        second = (resp[:, j, None] * X).T @ X / nk[j]
        np.testing.assert_allclose(new_c[j], second - np.outer(means[j], means[j]), rtol=1e-9)
    np.testing.assert_allclose(new_w, nk / len(X), rtol=1e-12)
    np.testing.assert_allclose(new_m, means, rtol=1e-12)
    assert ll == pytest.approx(np.log(dens.sum(axis=1)).mean(), rel=1e-12)


# ---- log-densities of incomplete rows ----


def test_log_density_of_an_incomplete_row_is_its_observed_marginal():
    X, _ = incomplete_data(n_features=4)
    w, m, c = random_params(3, X, 2)
    x = np.array([0.5, np.nan, -1.0, np.nan])
    o = ~np.isnan(x)
    # One component: exactly the marginal of the observed coordinates.
    by_hand = multivariate_normal(m[0][o], c[0][np.ix_(o, o)]).logpdf(x[o])
    assert reference_log_likelihood(x[None], [1.0], m[:1], c[:1]) == pytest.approx(by_hand,
                                                                                   rel=1e-12)
    # A mixture: the log of the weighted observed marginals; the pass reports the same.
    by_hand = np.log(sum(wk * multivariate_normal(mk[o], ck[np.ix_(o, o)]).pdf(x[o])
                         for wk, mk, ck in zip(w, m, c, strict=True)))
    assert reference_log_likelihood(x[None], w, m, c) == pytest.approx(by_hand, rel=1e-12)
    assert update(x[None], (w, m, c))[3] == pytest.approx(by_hand, rel=1e-12)


def test_mean_log_likelihood_of_incomplete_data_by_hand():
    _, X = incomplete_data(n_samples=40, n_features=3)
    X[5] = np.nan
    w, m, c = random_params(4, incomplete_data(n_samples=40)[0], 3)
    rows = []
    for x in X:
        o = ~np.isnan(x)
        if o.any():
            rows.append(np.log(sum(wk * multivariate_normal(mk[o], ck[np.ix_(o, o)]).pdf(x[o])
                                   for wk, mk, ck in zip(w, m, c, strict=True))))
    assert len(rows) == len(X) - 1
    assert reference_log_likelihood(X, w, m, c) == pytest.approx(np.mean(rows), rel=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_pass_log_likelihood_is_over_the_observed_selected_coordinates(kind):
    _, X = incomplete_data(n_samples=40, n_features=4)
    w, m, c = random_params(5, incomplete_data(n_samples=40, n_features=4)[0], 2)
    P = make_projection(kind, 4)
    rows = []
    for x in X:
        if kind == "rotated_marginal":  # T is every column: only complete rows take part
            if np.isnan(x).any():
                continue
            y, o = P @ x, np.ones(len(P), dtype=bool)
            mus, covs = [P @ mk for mk in m], [P @ ck @ P.T for ck in c]
        else:
            T = np.arange(4) if P is None else np.argmax(P, axis=1)
            y = x[T]
            o = ~np.isnan(y)
            mus, covs = [mk[T] for mk in m], [ck[np.ix_(T, T)] for ck in c]
        if o.any():
            rows.append(np.log(sum(wk * multivariate_normal(mk[o], ck[np.ix_(o, o)]).pdf(y[o])
                                   for wk, mk, ck in zip(w, mus, covs, strict=True))))
    assert update(X, (w, m, c), P)[3] == pytest.approx(np.mean(rows), rel=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_a_row_of_all_nan_is_left_out(kind):
    """It adds nothing to the statistics nor the log-likelihood, and does not count in ``n``
    (the weights, smoothed with ``alpha > 0``, would show it)."""
    X_complete, X = incomplete_data(n_features=4)
    params = random_params(1, X_complete, 3)
    with_row = np.vstack([X[:100], np.full(4, np.nan), X[100:]])
    P = make_projection(kind, 4)
    assert_updates_equal(update(with_row, params, P, alpha=0.5), update(X, params, P, alpha=0.5))
    assert reference_log_likelihood(with_row, *params) == pytest.approx(
        reference_log_likelihood(X, *params), rel=1e-13)
    # On complete data, the extra row sends the pass through the incomplete-data path.
    with_row = np.vstack([X_complete, np.full(4, np.nan)])
    assert_updates_equal(update(with_row, params, P, alpha=0.5),
                         update(X_complete, params, P, alpha=0.5), rtol=1e-10, atol=1e-12)
    assert reference_log_likelihood(with_row, *params) == pytest.approx(
        reference_log_likelihood(X_complete, *params), rel=1e-12)


def test_no_row_taking_part_raises():
    X_complete, X = incomplete_data()
    params = random_params(1, X_complete, 3)
    X[:, 1] = np.nan
    with pytest.raises(ValueError, match="no row"):
        update(X, params, np.eye(3)[[1]])
    with pytest.raises(ValueError, match="no row"):
        reference_log_likelihood(np.full((2, 3), np.nan), *params)


# ---- completion and statistics ----


def test_conditional_is_gaussian_conditioning():
    """Checked through the precision ``Lambda = S^-1``: ``Cov[x_M | x_O] = Lambda_MM^-1`` and
    ``E[x_M | x_O] = mu_M - Lambda_MM^-1 Lambda_MO (x_O - mu_O)``."""
    rng = np.random.default_rng(0)
    B = rng.normal(size=(5, 5))
    S = B @ B.T + np.eye(5)
    mu = rng.normal(size=5)
    x = np.array([1.0, np.nan, -2.0, np.nan, np.nan])
    mis = np.isnan(x)
    obs = ~mis
    completed, C = reference_conditional(x, mu, S)
    L = np.linalg.inv(S)
    C_mm = np.linalg.inv(L[np.ix_(mis, mis)])
    np.testing.assert_allclose(C[np.ix_(mis, mis)], C_mm, rtol=1e-10)
    assert not C[obs].any() and not C[:, obs].any()
    np.testing.assert_array_equal(completed[obs], x[obs])
    np.testing.assert_allclose(completed[mis],
                               mu[mis] - C_mm @ L[np.ix_(mis, obs)] @ (x[obs] - mu[obs]),
                               rtol=1e-10)
    assert np.array_equal(C, C.T)
    # Nothing missing: the row and no uncertainty; nothing observed: the prior.
    full = np.arange(5.0)
    completed, C = reference_conditional(full, mu, S)
    assert np.array_equal(completed, full) and not C.any()
    completed, C = reference_conditional(np.full(5, np.nan), mu, S)
    np.testing.assert_allclose(completed, mu)
    np.testing.assert_allclose(C, S)


def test_update_of_one_row_is_its_completed_moments():
    """One component, one row: the new mean is the completed row and the new covariance the
    conditional covariance (whose zero eigenvalues the floor raises to the floor)."""
    rng = np.random.default_rng(1)
    B = rng.normal(size=(4, 4))
    S = B @ B.T + np.eye(4)
    mu = rng.normal(size=4)
    x = np.array([np.nan, 0.3, np.nan, 2.0])
    mis = np.isnan(x)
    obs = ~mis
    xhat = x.copy()
    xhat[mis] = mu[mis] + S[np.ix_(mis, obs)] @ np.linalg.inv(S[np.ix_(obs, obs)]) @ (
        x[obs] - mu[obs])
    C = np.zeros((4, 4))
    C[np.ix_(mis, mis)] = S[np.ix_(mis, mis)] - S[np.ix_(mis, obs)] @ np.linalg.inv(
        S[np.ix_(obs, obs)]) @ S[np.ix_(obs, mis)]
    floor = 1e-9
    w, m, c, ll = update(x[None], (np.ones(1), mu[None], S[None]), floor=floor, alpha=0.0)
    np.testing.assert_allclose(w, [1.0])
    np.testing.assert_allclose(m[0], xhat, rtol=1e-12)
    np.testing.assert_allclose(c[0], C + floor * np.diag(obs), rtol=1e-10, atol=1e-12)
    assert ll == pytest.approx(multivariate_normal(mu[obs], S[np.ix_(obs, obs)]).logpdf(x[obs]))


def test_statistics_are_the_expected_completed_moments_by_hand():
    """Two components, complete and incomplete rows: ``N_k``, ``S1_k``, ``S2_k`` summed row by
    row from the observed-marginal responsibilities and each component's completion, then the
    one-pass M-step ``S2 / N - mean mean^T`` (the reference computes it two-pass)."""
    X_complete, X = incomplete_data(n_samples=30, n_features=4, fraction=0.3)
    w, m, c = random_params(6, X_complete, 2)
    nk, s1, s2 = np.zeros(2), np.zeros((2, 4)), np.zeros((2, 4, 4))
    for x in X:
        o = ~np.isnan(x)
        if not o.any():
            continue
        dens = np.array([wk * multivariate_normal(mk[o], ck[np.ix_(o, o)]).pdf(x[o])
                         for wk, mk, ck in zip(w, m, c, strict=True)])
        resp = dens / dens.sum()
        for j in range(2):
            mis = ~o
            xhat = x.copy()
            K = c[j][np.ix_(mis, o)] @ np.linalg.inv(c[j][np.ix_(o, o)])
            xhat[mis] = m[j][mis] + K @ (x[o] - m[j][o])
            C = np.zeros((4, 4))
            C[np.ix_(mis, mis)] = c[j][np.ix_(mis, mis)] - K @ c[j][np.ix_(o, mis)]
            nk[j] += resp[j]
            s1[j] += resp[j] * xhat
            s2[j] += resp[j] * (np.outer(xhat, xhat) + C)
    n = len(X)
    new_w, new_m, new_c, _ = update(X, (w, m, c), floor=1e-12, alpha=0.0)
    np.testing.assert_allclose(new_w, nk / n, rtol=1e-12)
    means = s1 / nk[:, None]
    np.testing.assert_allclose(new_m, means, rtol=1e-10)
    np.testing.assert_allclose(new_c, s2 / nk[:, None, None]
                               - np.einsum("ka,kb->kab", means, means), rtol=1e-8, atol=1e-10)


# ---- projected passes ----


@pytest.mark.parametrize("covariance_type", TYPES)
def test_marginal_update_never_reads_outside_its_subset(covariance_type):
    X_complete, X = incomplete_data(n_features=4)
    params = typed_params(1, X_complete, 3, covariance_type)
    T = [0, 2]
    P = np.eye(4)[T]
    filled = X.copy()
    outside = np.isnan(filled) & ~np.isin(np.arange(4), T)
    filled[outside] = np.random.default_rng(0).normal(scale=100.0, size=outside.sum())
    assert np.isnan(filled).any()  # NaN inside T stays
    assert_updates_equal(update(X, params, P, covariance_type=covariance_type),
                         update(filled, params, P, covariance_type=covariance_type))
    # With NaN only outside T the pass is a complete-data pass.
    only_outside = X_complete.copy()
    only_outside[outside] = np.nan
    assert_updates_equal(update(only_outside, params, P, covariance_type=covariance_type),
                         update(np.where(outside, 7.0, X_complete), params, P,
                                covariance_type=covariance_type))


@pytest.mark.parametrize("covariance_type", TYPES)
def test_rotated_update_leaves_out_the_rows_with_nan_in_its_subset(covariance_type):
    X_complete, X = incomplete_data(n_features=4)
    params = typed_params(1, X_complete, 3, covariance_type)
    # A frame over every coordinate: only the complete rows take part.
    P = make_projection("rotated_marginal", 4)
    complete = ~np.isnan(X).any(axis=1)
    assert 0 < complete.sum() < len(X)
    assert_updates_equal(update(X, params, P, covariance_type=covariance_type),
                         update(X[complete], params, P, covariance_type=covariance_type))
    # A rotation within T = {1, 3}: the rows observed on T, whatever they miss elsewhere.
    T = [1, 3]
    P = rotation_within(T, 4)
    kept = ~np.isnan(X[:, T]).any(axis=1)
    assert np.isnan(X[kept]).any() and not kept.all()
    filled = np.where(np.isnan(X), -3.0, X)[kept]
    assert_updates_equal(update(X, params, P, covariance_type=covariance_type),
                         update(filled, params, P, covariance_type=covariance_type))


# ---- EM's invariants on incomplete data ----


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_em_never_decreases_the_observed_data_log_likelihood(covariance_type):
    X_complete, X = incomplete_data(seed=3, n_samples=300, n_features=3, n_components=3)
    assert 0.15 < np.isnan(X).mean() < 0.25
    w, m, c = typed_params(7, X_complete, 3, covariance_type)
    lls = []
    for _ in range(30):
        w, m, c, ll = reference_em_update(X, w, m, c, covariance_floor=1e-10,
                                          weight_concentration=0.0,
                                          covariance_type=covariance_type)
        lls.append(ll)
    lls.append(reference_log_likelihood(X, w, m, c))
    steps = np.diff(lls)
    assert np.all(steps >= -1e-10 * np.abs(lls[1:])), steps.min()
    assert lls[-1] > lls[0] + 0.1  # it moved


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("covariance_type", TYPES)
def test_every_covariance_type_gives_valid_parameters(covariance_type, kind):
    X_complete, X = incomplete_data(n_samples=120, n_features=4)
    params = typed_params(2, X_complete, 3, covariance_type)
    w, m, c, ll = update(X, params, make_projection(kind, 4), covariance_type=covariance_type)
    assert np.isfinite(ll) and np.isfinite(m).all() and np.isfinite(c).all()
    assert w.sum() == pytest.approx(1.0) and (w > 0).all()
    assert np.array_equal(c, np.swapaxes(c, 1, 2))
    assert (np.linalg.eigvalsh(c) >= 1e-3 * (1 - 1e-9)).all()
    if covariance_type == "tied":
        assert np.allclose(c, c[0], rtol=1e-12, atol=0)
    if covariance_type in ("diag", "spherical"):
        assert np.array_equal(c, np.array([np.diag(np.diag(ci)) for ci in c]))
    if covariance_type == "spherical":
        assert all(np.all(np.diag(ci) == ci[0, 0]) for ci in c)


def test_biglearn_loop_runs_on_incomplete_data():
    from dask_biglearn.projection import MatchingSchedule
    from dask_biglearn.testing import reference_biglearn_em

    X_complete, X = incomplete_data(n_samples=150, n_features=4)
    schedule = MatchingSchedule({"joint": 0.4, "marginal": 0.1, "rotated_marginal": 0.5})
    (w, m, c), ll, kinds = reference_biglearn_em(
        X, *random_params(1, X_complete, 3), schedule=schedule, rng=np.random.default_rng(0),
        max_iter=6, n_inner_iter=2, check_every=2, covariance_floor=1e-3,
        weight_concentration=0.1)
    assert len(kinds) == 6 and np.isfinite(ll)
    assert ll == pytest.approx(reference_log_likelihood(X, w, m, c), rel=1e-12)
    assert np.isfinite(m).all() and (np.linalg.eigvalsh(c) > 0).all()
