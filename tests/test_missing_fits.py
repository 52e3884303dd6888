"""Fits of data with missing values: every estimator, input kind and option, held to the
row-by-row oracle where an exact answer exists."""

import warnings

import dask
import dask.array as da
import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from dask_biglearn import (
    BigLearnGaussianMixture,
    GaussianMixture,
    GaussianMixtureSelection,
    datasets,
)
from dask_biglearn.testing import reference_em_update, reference_log_likelihood


@pytest.fixture(scope="module")
def holed():
    """Four clear clusters in 3-D, 30 % of the values missing completely at random."""
    truth = datasets.random_mixture(3, 4, separation=4.0, random_state=5)
    X, labels = datasets.sample_mixture(*truth, 2000, random_state=6)
    Xm = X.copy()
    Xm[np.random.default_rng(7).random(X.shape) < 0.3] = np.nan
    return Xm, labels, truth


def _quiet(model, X, **fit_params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, **fit_params)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_plain_em_on_incomplete_data_is_the_oracle_s_em(holed, covariance_type):
    """Five plain EM iterations from a given start equal five of the oracle's updates."""
    X = holed[0][:400]
    start = _quiet(GaussianMixture(3, covariance_type=covariance_type, max_iter=1,
                                   random_state=0), X)
    params = {"weights_init": start.weights_, "means_init": start.means_,
              "precisions_init": start.precisions_}
    ours = _quiet(GaussianMixture(3, covariance_type=covariance_type, max_iter=5, tol=0.0,
                                  covariance_floor=1e-9, **params), X)
    from dask_biglearn.engines import InProcessEngine

    shift = InProcessEngine(X).summaries.shift
    w, m, c = start.weights_, start.means_, _full(start)
    for _ in range(5):
        w, m, c, _ = reference_em_update(X, w, m, c, covariance_floor=1e-9,
                                         weight_concentration=0.0, shrink_center=shift,
                                         covariance_type=covariance_type)
    np.testing.assert_allclose(ours.means_, m, rtol=0, atol=1e-8)
    np.testing.assert_allclose(_full(ours), c, rtol=0, atol=1e-8)
    assert ours.lower_bound_ == pytest.approx(reference_log_likelihood(X, w, m, c), abs=1e-8)


def _full(model):
    from dask_biglearn.covariances import type_entry

    k, d = model.means_.shape
    return type_entry(model.covariance_type).to_full(model.covariances_, k, d)


def test_biglearn_finds_every_cluster_with_30_percent_missing(holed):
    X, labels, truth = holed
    model = BigLearnGaussianMixture(4, random_state=0).fit(X)
    assert datasets.count_modes_found(truth[1], model.means_, model.weights_) == 4
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(labels, model.predict(X)) > 0.8
    assert model.missing_fraction_ == pytest.approx(np.isnan(X).mean())
    assert model.lower_bound_ == pytest.approx(reference_log_likelihood(
        X, model.weights_, model.means_, model.covariances_), abs=1e-8)


def test_dask_input_of_any_chunking_gives_the_numpy_fit(holed):
    X = holed[0]
    want = _quiet(GaussianMixture(4, n_init=2, random_state=1), X)
    with dask.config.set(scheduler="threads"):
        for chunks in (300, 2000):
            got = _quiet(GaussianMixture(4, n_init=2, random_state=1),
                         da.from_array(X, chunks=(chunks, -1)))
            np.testing.assert_allclose(got.means_, want.means_, rtol=0, atol=1e-9)
            scores = got.score_samples(da.from_array(X, chunks=(chunks, -1))).compute()
            np.testing.assert_allclose(scores, want.score_samples(X), rtol=0, atol=1e-10)


def test_xarray_and_dask_dataframe_input_stay_lazy_with_their_holes(holed):
    xr = pytest.importorskip("xarray")
    dd = pytest.importorskip("dask.dataframe")
    import pandas as pd

    X = holed[0]
    want = _quiet(GaussianMixture(4, random_state=1), X)
    array = xr.DataArray(da.from_array(X, chunks=(500, -1)), dims=("row", "feature"))
    frame = dd.from_pandas(pd.DataFrame(X), npartitions=4)
    with dask.config.set(scheduler="threads"):
        for data in (array, frame):
            model = _quiet(GaussianMixture(4, random_state=1), data)
            np.testing.assert_allclose(model.means_, want.means_, rtol=0, atol=1e-9)
        labels = model.predict(array)
        assert isinstance(labels, xr.DataArray)
        np.testing.assert_array_equal(labels.values, want.predict(X))


def test_integer_weights_on_incomplete_rows_are_repeated_rows(holed):
    X = holed[0][:600]
    counts = np.random.default_rng(3).integers(0, 3, size=len(X))
    start = _quiet(GaussianMixture(3, max_iter=1, random_state=0), X)
    params = {"weights_init": start.weights_, "means_init": start.means_,
              "precisions_init": start.precisions_, "max_iter": 10, "tol": 0.0}
    weighted = _quiet(GaussianMixture(3, **params), X, sample_weight=counts)
    repeated = _quiet(GaussianMixture(3, **params), np.repeat(X, counts, axis=0))
    np.testing.assert_allclose(weighted.means_, repeated.means_, rtol=0, atol=1e-8)
    np.testing.assert_allclose(weighted.covariances_, repeated.covariances_, rtol=0,
                               atol=1e-8)


def test_a_warm_start_on_incomplete_data_continues_the_fit(holed):
    X = holed[0]
    warm = GaussianMixture(4, max_iter=3, tol=0.0, warm_start=True, random_state=0)
    for _ in range(3):
        _quiet(warm, X)
    whole = _quiet(GaussianMixture(4, max_iter=9, tol=0.0, random_state=0), X)
    np.testing.assert_allclose(warm.means_, whole.means_, rtol=0, atol=1e-8)


def test_the_scalable_mode_on_incomplete_data_reaches_the_full_fit(holed):
    X = holed[0]
    full = BigLearnGaussianMixture(4, n_init=3, random_state=0).fit(X)
    sampled = BigLearnGaussianMixture(4, n_init=3, sample_size=600, random_state=0).fit(X)
    assert sampled.n_sample_passes_ > 0
    assert sampled.lower_bound_ == pytest.approx(full.lower_bound_, abs=0.01)


def test_the_selection_chooses_k_on_incomplete_data(holed):
    X = holed[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sel = GaussianMixtureSelection(range(2, 7), estimator=GaussianMixture(n_init=10),
                                       random_state=0).fit(X)
    assert sel.best_params_["n_components"] == 4
    assert sel.best_estimator_.missing_fraction_ > 0.25


@pytest.mark.parametrize("covariance_type", ["tied", "diag", "spherical"])
def test_every_covariance_type_fits_incomplete_data(holed, covariance_type):
    X = holed[0]
    model = BigLearnGaussianMixture(4, covariance_type=covariance_type, n_init=3,
                                    random_state=0).fit(X)
    assert np.all(np.isfinite(model.covariances_)) and np.all(np.isfinite(model.means_))
    assert np.isfinite(model.score(X)) and len(model.predict(X)) == len(X)
