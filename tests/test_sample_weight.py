"""sample_weight: weighted passes on every route, integer weights as repeated rows, zero
weights as dropped rows, the scalable mode, and the errors of bad weights."""

import warnings

import dask.array as da
import numpy as np
import pytest

from dask_biglearn import BigLearnGaussianMixture, GaussianMixture
from dask_biglearn.engines import DaskEngine, InProcessEngine
from dask_biglearn.fit import em_update
from dask_biglearn.model import MixtureParams
from dask_biglearn.projection import Projection
from dask_biglearn.testing import make_blobs
from dask_biglearn.validation import with_sample_weight

K = 4


@pytest.fixture(scope="module")
def weighted_data():
    X = make_blobs(seed=31, n_samples=500, n_features=3, n_components=K)[0]
    counts = np.random.default_rng(2).integers(0, 4, size=len(X))  # zeros drop rows
    return X, counts, np.repeat(X, counts, axis=0)


def _start(X, covariance_type):
    """Starting parameters (of the type's shapes) that both fits share."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = GaussianMixture(K, covariance_type=covariance_type, max_iter=1,
                                init_params="kmeans", random_state=1).fit(X)
    return {"weights_init": start.weights_, "means_init": start.means_,
            "precisions_init": start.precisions_}


def _assert_same_fit(a, b, tol=1e-8):
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=0,
                                   atol=tol * max(1.0, np.abs(getattr(b, name)).max()),
                                   err_msg=name)
    assert a.lower_bound_ == pytest.approx(b.lower_bound_, abs=tol)


FITS = {
    "em": lambda t, start: GaussianMixture(K, covariance_type=t, max_iter=25, tol=0.0,
                                           **start),
    "biglearn": lambda t, start: BigLearnGaussianMixture(
        K, covariance_type=t, n_init=1, max_iter=8, moves=(), random_state=3, **start),
}


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
@pytest.mark.parametrize("method", sorted(FITS))
def test_integer_weights_fit_the_data_with_rows_repeated(weighted_data, method,
                                                         covariance_type):
    """Weights 0-3: the fit of the rows repeated that many times (a zero drops a row), from
    the same start: NumPy weights, and Dask weights in chunks of their own."""
    X, counts, repeated = weighted_data
    start = _start(X, covariance_type)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = FITS[method](covariance_type, start).fit(repeated)
        weighted = FITS[method](covariance_type, start).fit(X, sample_weight=counts)
        lazy = FITS[method](covariance_type, start).fit(
            da.from_array(X, chunks=(130, -1)),
            sample_weight=da.from_array(counts.astype(float), chunks=77))
    _assert_same_fit(weighted, expected)
    _assert_same_fit(lazy, expected)


@pytest.mark.parametrize("actors", [False, True])
@pytest.mark.parametrize("kind", ["joint", "rotated_marginal"])
def test_weighted_passes_on_a_cluster_are_those_of_the_repeated_rows(client, weighted_data,
                                                                     actors, kind):
    """The tasks route and the actor route: one weighted EM update equals the update of the
    repeated rows, to 1e-10."""
    from dask_biglearn.testing import make_projection, random_params

    X, counts, repeated = weighted_data
    params = MixtureParams(*random_params(5, X, K))
    projection = Projection(kind, make_projection(kind, 3, seed=2))
    kwargs = {"covariance_floor": 1e-3, "weight_concentration": 0.0}
    with InProcessEngine(repeated) as engine:
        expected, expected_ll = em_update(engine, params, projection, **kwargs)
    augmented = with_sample_weight(da.from_array(X, chunks=(90, -1)), counts)
    with DaskEngine(augmented, actors=actors, weighted=True) as engine:
        assert engine.route == ("actors" if actors else "tasks")
        assert engine.n_features == 3
        got, ll = em_update(engine, params, projection, **kwargs)
    np.testing.assert_allclose(got.means, expected.means, atol=1e-10)
    np.testing.assert_allclose(got.covariances, expected.covariances, atol=1e-10)
    np.testing.assert_allclose(got.weights, expected.weights, atol=1e-12)
    assert ll == pytest.approx(expected_ll, abs=1e-10)


def test_the_scalable_mode_samples_rows_with_their_weights(weighted_data):
    """The sample carries its rows' weights: with one cluster's rows weighted zero, no
    component is left there, and the fit is the same on NumPy and Dask."""
    X, _, _ = weighted_data
    far = X[:, 0] > np.median(X[:, 0])
    weights = np.where(far, 0.0, 1.0)
    settings = {"n_init": 2, "max_iter": 5, "sample_size": 200, "random_state": 0}
    local = BigLearnGaussianMixture(2, **settings).fit(X, sample_weight=weights)
    lazy = BigLearnGaussianMixture(2, **settings).fit(da.from_array(X, chunks=(120, -1)),
                                                      sample_weight=weights)
    assert local.n_sample_passes_ > 0
    assert np.all(local.means_[:, 0] <= np.median(X[:, 0]) + 1e-9)
    _assert_same_fit(lazy, local, tol=1e-8)


BAD = {
    "negative": (lambda n: np.r_[-1.0, np.ones(n - 1)], "negative values"),
    "nan": (lambda n: np.r_[np.nan, np.ones(n - 1)], "NaN or infinity"),
    "inf": (lambda n: np.r_[np.inf, np.ones(n - 1)], "NaN or infinity"),
    "all zero": (lambda n: np.zeros(n), "zero for every row"),
    "too short": (lambda n: np.ones(n - 1), "one weight per row"),
    "2-D": (lambda n: np.ones((n, 1)), "one weight per row"),
    "subnormal": (lambda n: np.full(n, 5e-324), "below float64's normal range"),
    "complex": (lambda n: np.ones(n) + 1j, "real numbers"),
    "fewer positive rows than components": (lambda n: np.r_[np.ones(K - 1), np.zeros(n - K + 1)],
                                            f"positive on only {K - 1} of the"),
}


@pytest.mark.parametrize("lazy", [False, True])
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_weights_are_one_clear_error_and_nothing_fitted(weighted_data, case, lazy):
    X, _, _ = weighted_data
    weights, message = BAD[case]
    w = weights(len(X))
    data = X
    if lazy:
        data = da.from_array(X, chunks=(100, -1))
        w = da.from_array(w, chunks=-1)
    model = GaussianMixture(K)
    with pytest.raises(ValueError, match=message):
        model.fit(data, sample_weight=w)
    assert not hasattr(model, "means_")


@pytest.mark.parametrize("lazy", [False, True])
def test_scaling_the_weights_changes_nothing_even_near_float64_s_limits(weighted_data, lazy):
    """Only the weights' ratios matter: huge uniform weights fit as no weights (their sums
    combine without overflowing), on NumPy and on Dask."""
    X, _, _ = weighted_data
    data = da.from_array(X, chunks=(100, -1)) if lazy else X
    plain = GaussianMixture(K, random_state=0).fit(X)
    for scale in (1e-300, 1e300):
        weights = np.full(len(X), scale)
        w = da.from_array(weights, chunks=(70,)) if lazy else weights
        _assert_same_fit(GaussianMixture(K, random_state=0).fit(data, sample_weight=w), plain,
                         tol=1e-8)


@pytest.mark.parametrize("lazy", [False, True])
def test_boolean_weights_keep_the_rows_of_true(weighted_data, lazy):
    X, _, _ = weighted_data
    keep = X[:, 0] < np.median(X[:, 0])
    w = da.from_array(keep, chunks=(100,)) if lazy else keep
    data = da.from_array(X, chunks=(100, -1)) if lazy else X
    weighted = GaussianMixture(2, random_state=0).fit(data, sample_weight=w)
    _assert_same_fit(weighted, GaussianMixture(2, random_state=0).fit(X[keep]), tol=1e-8)


def test_weights_beyond_the_range_of_float32_data_are_refused(weighted_data):
    X, _, _ = weighted_data
    for weights in (np.r_[1e39, np.ones(len(X) - 1)], np.r_[1e-46, np.ones(len(X) - 1)]):
        with pytest.raises(ValueError, match="beyond what X's dtype float32 holds"):
            GaussianMixture(K).fit(X.astype(np.float32), sample_weight=weights)


@pytest.mark.parametrize("lazy", [False, True])
def test_the_scalable_sample_is_sized_by_the_rows_of_positive_weight(lazy):
    """With 5% of the rows weighted, a sample of 400 rows holds about 400 of them (not 20):
    the exploration on it finds the weighted fit's model."""
    X, _ = make_blobs(seed=7, n_samples=8000, n_features=2, n_components=3)
    weights = (np.random.default_rng(1).random(len(X)) < 0.05).astype(float)
    data = da.from_array(X, chunks=(1000, -1)) if lazy else X
    full = GaussianMixture(3, n_init=3, random_state=0).fit(X, sample_weight=weights)
    sampled = GaussianMixture(3, n_init=3, sample_size=400, random_state=0).fit(
        data, sample_weight=weights)
    assert sampled.n_sample_passes_ > 0
    assert sampled.lower_bound_ == pytest.approx(full.lower_bound_, abs=0.005)
    summaries = InProcessEngine(with_sample_weight(X, weights), weighted=True).summaries
    assert summaries.n_positive_rows == int(weights.sum())
    assert summaries.rows_holding(400) == pytest.approx(400 / weights.mean(), rel=1e-3)
    assert InProcessEngine(X).summaries.rows_holding(400) == 400


def test_float32_data_takes_its_weights_in_float32(weighted_data):
    X, counts, repeated = weighted_data
    start = _start(X, "full")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = FITS["em"]("full", start).fit(repeated.astype(np.float32))
        weighted = FITS["em"]("full", start).fit(X.astype(np.float32), sample_weight=counts)
    _assert_same_fit(weighted, expected, tol=1e-6)


def test_the_command_line_weighs_rows_by_an_array_of_the_group(weighted_data, tmp_path,
                                                                local_cluster, capsys):
    import zarr

    from dask_biglearn import load
    from dask_biglearn.cli import main

    X, counts, _ = weighted_data
    store = tmp_path / "x.zarr"
    group = zarr.open_group(str(store), mode="w")
    group.create_array("X", data=X, chunks=(128, 3))
    group.create_array("w", data=counts.astype(float), chunks=(200,))
    sched = ["--scheduler", local_cluster.scheduler_address]
    model = tmp_path / "m.dbl"
    assert main(["fit", str(store), "--n-components", str(K), "--method", "em",
                 "--sample-weight", "w", "--model", str(model), "--quiet", *sched]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = GaussianMixture(K, random_state=0).fit(X, sample_weight=counts)
    _assert_same_fit(load(model), expected)
    capsys.readouterr()
    assert main(["fit", str(store), "--n-components", str(K), "--sample-weight", "X",
                 "--model", str(tmp_path / "bad.dbl"), *sched]) != 0
    assert "expected a 1-D array" in capsys.readouterr().err
    assert not (tmp_path / "bad.dbl").exists()
