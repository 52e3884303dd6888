"""GaussianMixtureImputer (dask_biglearn.impute) and its kernels (dask_biglearn.kernels.impute):
conditional means against the row-by-row oracle, observed values untouched, NumPy = Dask =
xarray, draws with the conditional moments that do not depend on the chunking, K chosen
from the data, scikit-learn's checks."""

import warnings

import dask.array as da
import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.impute import SimpleImputer
from sklearn.utils.estimator_checks import parametrize_with_checks

from dask_biglearn import (
    BigLearnGaussianMixture,
    GaussianMixture,
    GaussianMixtureImputer,
    GaussianMixtureSelection,
)
from dask_biglearn.datasets import random_mixture, sample_mixture
from dask_biglearn.exceptions import DegenerateFitWarning, SelectionBoundaryWarning
from dask_biglearn.impute import default_n_components
from dask_biglearn.kernels.impute import impute_block, row_uniforms, uniforms_to_normals
from dask_biglearn.testing import make_blobs, reference_conditional

TYPES = ["full", "tied", "diag", "spherical"]


def _holes(X, fraction, seed):
    """``X`` with about ``fraction`` of its values missing completely at random, one row
    with nothing observed and one with everything."""
    rng = np.random.default_rng(seed)
    holed = np.array(X, dtype=np.float64)
    holed[rng.random(holed.shape) < fraction] = np.nan
    holed[3] = np.nan
    holed[4] = X[4]
    return holed


def _full_covariances(model):
    """The fitted covariances as ``(K, D, D)``, by hand from scikit-learn's shapes."""
    k, d = model.means_.shape
    c = model.covariances_
    return {"full": lambda: c, "tied": lambda: np.broadcast_to(c, (k, d, d)),
            "diag": lambda: np.stack([np.diag(v) for v in c]),
            "spherical": lambda: np.stack([np.eye(d) * v for v in c])}[model.covariance_type]()


def _reference(x, model):
    """The oracle of one row: responsibilities from SciPy's densities of its observed values,
    then each component's :func:`reference_conditional` (completed row and conditional
    covariance), mixed. Returns the responsibilities, the components' completions and
    conditional covariances, the conditional mean and the conditional covariance."""
    covariances = _full_covariances(model)
    observed = ~np.isnan(x)
    log_r = np.log(model.weights_).copy()
    if observed.any():
        log_r += [multivariate_normal(m[observed], s[np.ix_(observed, observed)]).logpdf(
            x[observed]) for m, s in zip(model.means_, covariances, strict=True)]
    r = np.exp(log_r - log_r.max())
    r /= r.sum()
    parts = [reference_conditional(x, m, s) for m, s in
             zip(model.means_, covariances, strict=True)]
    completed = np.array([p[0] for p in parts])
    conditional = np.array([p[1] for p in parts])
    mean = r @ completed
    second = np.einsum("k,kij->ij", r, conditional + np.einsum("ki,kj->kij", completed,
                                                               completed))
    return r, completed, conditional, mean, second - np.outer(mean, mean)


@pytest.fixture(scope="module")
def incomplete():
    X, _ = make_blobs(seed=1, n_samples=400, n_features=4, n_components=3)
    return _holes(X, 0.25, seed=2)


@pytest.fixture(scope="module")
def fitted(incomplete):
    """One imputer of 3 components per covariance type, fitted to the incomplete data."""
    return {t: GaussianMixtureImputer(3, covariance_type=t, random_state=0).fit(incomplete)
            for t in TYPES}


# ---- conditional means ------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", TYPES)
def test_conditional_means_are_the_oracle_completions_mixed_by_scipy_responsibilities(
        incomplete, fitted, covariance_type):
    imputer = fitted[covariance_type]
    got = imputer.transform(incomplete)
    want = np.array([_reference(x, imputer.estimator_)[3] for x in incomplete])
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    assert not np.isnan(got).any()


def test_the_kernel_matches_the_oracle_in_any_sub_block_size(incomplete, fitted):
    model = fitted["full"].estimator_
    args = (model.weights_, model.means_, model.precisions_cholesky_, "full")
    want = np.array([_reference(x, model)[3] for x in incomplete])
    for block_rows in (1, 7, 64, 10_000):
        np.testing.assert_allclose(impute_block(incomplete, *args, block_rows=block_rows),
                                   want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("sample_posterior", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_observed_values_come_back_unchanged_in_the_input_dtype(incomplete, fitted,
                                                                sample_posterior, dtype):
    X = incomplete.astype(dtype)
    imputer = GaussianMixtureImputer.from_model(fitted["full"].estimator_,
                                                sample_posterior=sample_posterior,
                                                random_state=3)
    got = imputer.transform(X)
    observed = ~np.isnan(X)
    assert got.dtype == dtype and got.shape == X.shape
    assert np.array_equal(got[observed], X[observed])
    assert np.isfinite(got).all()
    assert np.shares_memory(got, X) is False


def test_a_row_with_nothing_observed_gets_the_mixture_mean(incomplete, fitted):
    for imputer in fitted.values():
        model = imputer.estimator_
        got = imputer.transform(np.full((2, 4), np.nan))
        np.testing.assert_allclose(got, np.tile(model.weights_ @ model.means_, (2, 1)),
                                   rtol=1e-12)


def test_complete_rows_are_returned_as_they_are(fitted):
    X = np.arange(12.0).reshape(3, 4)
    assert np.array_equal(fitted["full"].transform(X), X)


# ---- containers: NumPy = Dask = xarray = Dask DataFrame ------------------------------------------


@pytest.mark.parametrize("chunks", [1000, 97, 25, (3, 150, 247)])
@pytest.mark.parametrize("sample_posterior", [False, True])
def test_dask_input_gives_a_lazy_dask_array_equal_to_numpy_for_any_chunking(
        incomplete, fitted, chunks, sample_posterior):
    imputer = GaussianMixtureImputer.from_model(fitted["full"].estimator_,
                                                sample_posterior=sample_posterior,
                                                random_state=11)
    X = da.from_array(incomplete, chunks=(chunks, 4))
    got = imputer.transform(X)
    assert isinstance(got, da.Array)
    assert got.chunks == X.chunks and got.dtype == X.dtype
    np.testing.assert_allclose(got.compute(), imputer.transform(incomplete), rtol=1e-12,
                               atol=1e-12)


def test_dask_float32_stays_float32_and_its_feature_chunks_are_joined(incomplete, fitted):
    X = da.from_array(incomplete.astype(np.float32), chunks=(100, 2))
    got = fitted["diag"].transform(X)
    assert got.dtype == np.float32 and got.chunks == ((100,) * 4, (4,))
    np.testing.assert_allclose(got.compute(),
                               fitted["diag"].transform(incomplete.astype(np.float32)),
                               rtol=1e-6)


@pytest.mark.parametrize("backend", ["numpy", "dask"])
def test_a_data_array_gives_a_data_array_with_the_same_dims_coords_name_and_attrs(
        incomplete, fitted, backend):
    xarray = pytest.importorskip("xarray")
    data = incomplete if backend == "numpy" else da.from_array(incomplete, chunks=(90, 4))
    given = xarray.DataArray(data, dims=("time", "sensor"),
                             coords={"time": np.arange(400) * 10,
                                     "sensor": ["a", "b", "c", "d"]},
                             name="readings", attrs={"units": "K"})
    got = fitted["tied"].transform(given)
    assert isinstance(got, xarray.DataArray)
    assert got.dims == given.dims and got.name == "readings" and got.attrs == {"units": "K"}
    assert got["time"].equals(given["time"]) and got["sensor"].equals(given["sensor"])
    assert isinstance(got.data, da.Array) == (backend == "dask")
    np.testing.assert_allclose(np.asarray(got.values), fitted["tied"].transform(incomplete),
                               rtol=1e-12)


def test_a_dask_dataframe_gives_a_dask_dataframe_with_its_columns_and_index(incomplete,
                                                                            fitted):
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    frame = pd.DataFrame(incomplete, columns=list("wxyz"), index=np.arange(400) + 1000)
    got = fitted["full"].transform(dd.from_pandas(frame, npartitions=3))
    assert isinstance(got, dd.DataFrame) and got.npartitions == 3
    computed = got.compute()
    assert list(computed.columns) == list("wxyz")
    assert computed.index.equals(frame.index)
    np.testing.assert_allclose(computed.to_numpy(), fitted["full"].transform(incomplete),
                               rtol=1e-12)


def test_a_pandas_dataframe_keeps_its_names_with_set_output(incomplete):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(incomplete, columns=list("wxyz"))
    imputer = GaussianMixtureImputer(2, random_state=0).set_output(transform="pandas")
    got = imputer.fit_transform(frame)
    assert isinstance(got, pd.DataFrame) and list(got.columns) == list("wxyz")
    assert list(imputer.feature_names_in_) == list("wxyz")
    assert not got.isna().any().any()


def test_dask_chunks_are_imputed_on_the_workers_of_a_cluster(client, incomplete, fitted):
    imputer = GaussianMixtureImputer.from_model(fitted["full"].estimator_,
                                                sample_posterior=True, random_state=5)
    from distributed import get_task_stream

    X = da.from_array(incomplete, chunks=(60, 4))
    with get_task_stream(client) as stream:
        got = imputer.transform(X).compute()  # the client is the default scheduler
    np.testing.assert_allclose(got, imputer.transform(incomplete), rtol=1e-12, atol=1e-12)
    ran = [task for task in stream.data if "impute_chunk" in str(task["key"])]
    assert {task["key"][1] for task in ran} == set(range(7))  # every chunk, as a task
    assert {task["worker"] for task in ran} <= set(client.scheduler_info()["workers"])


def test_infinity_is_refused_in_numpy_and_in_a_dask_chunk(incomplete, fitted):
    X = incomplete.copy()
    X[250, 2] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        fitted["full"].transform(X)
    with pytest.raises(ValueError, match="infinity"):
        fitted["full"].transform(da.from_array(X, chunks=(100, 4))).compute()


# ---- draws ------------------------------------------------------------------------------------


def test_row_uniforms_depend_on_the_row_and_seed_only_and_normals_are_standard():
    whole = row_uniforms(np.arange(50_000), seed=7, n_uniforms=4)
    part = row_uniforms(np.array([49_999, 3, 20_000]), seed=7, n_uniforms=4)
    assert np.array_equal(part, whole[[49_999, 3, 20_000]])
    assert not np.array_equal(whole, row_uniforms(np.arange(50_000), seed=8, n_uniforms=4))
    assert whole.min() > 0 and whole.max() < 1
    assert abs(whole.mean() - 0.5) < 0.005
    normals = uniforms_to_normals(whole)
    assert abs(normals.mean()) < 0.02 and abs(normals.std() - 1) < 0.02
    assert abs(np.corrcoef(normals.T)[0, 1]) < 0.02


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_draws_have_the_conditional_mean_and_covariance_on_average(covariance_type):
    """An ambiguous row (both components likely given its one observed value), drawn 40 000
    times (each copy a row of its own index): the draws' mean and covariance are the
    mixture's conditional ones (within a few standard errors)."""
    rng = np.random.default_rng(0)
    means = np.array([[0.0, 0.0, 0.0], [1.0, 3.0, -2.0]])
    A = rng.normal(size=(2, 3, 3))
    X = np.concatenate([m + rng.normal(size=(500, 3)) @ a for m, a in zip(means, A,
                                                                         strict=True)])
    model = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    x = np.array([model.means_[:, 0].mean(), np.nan, np.nan])
    r, _, _, mean, covariance = _reference(x, model)
    assert 0.05 < r[0] < 0.95  # the component drawn matters
    n = 40_000
    imputer = GaussianMixtureImputer.from_model(model, sample_posterior=True, random_state=1)
    draws = imputer.transform(np.tile(x, (n, 1)))
    assert np.all(draws[:, 0] == x[0])
    sd = np.sqrt(np.diag(covariance)[1:] / n)
    assert np.all(np.abs(draws[:, 1:].mean(axis=0) - mean[1:]) < 5 * sd)
    np.testing.assert_allclose(np.cov(draws[:, 1:].T), covariance[1:, 1:],
                               atol=0.04 * np.abs(covariance).max())


def test_draws_are_reproducible_and_differ_between_seeds(incomplete, fitted):
    model = fitted["full"].estimator_

    def draw(seed):
        return GaussianMixtureImputer.from_model(model, sample_posterior=True,
                                                 random_state=seed).transform(incomplete)

    missing = np.isnan(incomplete)
    assert np.array_equal(draw(4), draw(4))
    assert not np.any(draw(4)[missing] == draw(5)[missing])
    means = fitted["full"].transform(incomplete)
    assert not np.any(draw(4)[missing] == means[missing])


def test_a_generator_random_state_draws_afresh_at_every_transform(incomplete, fitted):
    imputer = GaussianMixtureImputer.from_model(fitted["full"].estimator_,
                                                sample_posterior=True,
                                                random_state=np.random.default_rng(0))
    first, second = imputer.transform(incomplete), imputer.transform(incomplete)
    assert not np.array_equal(first, second)
    again = GaussianMixtureImputer.from_model(fitted["full"].estimator_,
                                              sample_posterior=True,
                                              random_state=np.random.default_rng(0))
    assert np.array_equal(again.transform(incomplete), first)


# ---- choosing K, building over a model --------------------------------------------------------


def test_the_default_chooses_the_true_number_of_components_on_a_clear_mixture():
    truth = random_mixture(3, 3, separation=4.0, random_state=3)
    X, _ = sample_mixture(*truth, 900, random_state=4)
    X = _holes(X, 0.1, seed=5)
    imputer = GaussianMixtureImputer(random_state=0).fit(X)
    assert imputer.n_components_ == 3
    assert isinstance(imputer.selection_, GaussianMixtureSelection)
    assert list(imputer.selection_.cv_results_["param_n_components"]) == list(range(1, 11))
    assert imputer.estimator_ is imputer.selection_.best_estimator_
    assert isinstance(imputer.estimator_, GaussianMixture)
    assert imputer.estimator_.n_init == 3
    assert imputer.missing_fraction_ == pytest.approx(np.isnan(X).mean())
    assert imputer.n_features_in_ == 3


def test_default_candidates_stop_where_the_rows_cannot_pay_for_the_parameters():
    assert default_n_components(10_000, 3) == list(range(1, 11))
    # A full mixture of K components in 3-D has 10 K - 1 free parameters.
    assert default_n_components(29, 3) == [1, 2, 3]
    assert default_n_components(28, 3) == [1, 2]
    assert default_n_components(5, 3) == [1]
    # Tied covariances cost 4 K + 5: more candidates for the same rows; the dearest type caps.
    assert default_n_components(30, 3, "tied") == [1, 2, 3, 4, 5, 6]
    assert default_n_components(30, 3, ("tied", "full")) == [1, 2, 3]


def test_a_capped_default_range_does_not_ask_to_widen_it():
    X, _ = make_blobs(seed=2, n_samples=40, n_features=2, n_components=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SelectionBoundaryWarning)
        imputer = GaussianMixtureImputer(random_state=0).fit(_holes(X, 0.1, seed=1))
    assert len(imputer.selection_.cv_results_["bic"]) == 6  # 6 K - 1 <= 40 (full, 2-D)


def test_an_int_fits_once_and_candidates_or_types_sweep(incomplete):
    one = GaussianMixtureImputer(2, random_state=0).fit(incomplete)
    assert one.selection_ is None and one.n_components_ == 2
    swept = GaussianMixtureImputer([2, 3, 4], covariance_type=("full", "diag"),
                                   random_state=0).fit(incomplete)
    assert len(swept.selection_.cv_results_["params"]) == 6
    assert swept.selection_.best_params_ == {"n_components": 3, "covariance_type": "full"}
    assert swept.estimator_ is swept.selection_.best_estimator_ and swept.n_components_ == 3


def test_the_estimator_template_is_cloned_and_seeded_by_the_imputer(incomplete):
    template = BigLearnGaussianMixture(max_iter=3, n_init=2, random_state=99)
    imputer = GaussianMixtureImputer(2, estimator=template, random_state=0).fit(incomplete)
    assert isinstance(imputer.estimator_, BigLearnGaussianMixture)
    assert imputer.estimator_ is not template and not hasattr(template, "means_")
    assert imputer.estimator_.random_state == 0 and imputer.estimator_.n_init == 2
    again = GaussianMixtureImputer(2, estimator=template, random_state=0).fit(incomplete)
    np.testing.assert_array_equal(again.estimator_.means_, imputer.estimator_.means_)


def test_from_model_imputes_under_the_given_mixture_without_fitting(incomplete, fitted):
    model = fitted["spherical"].estimator_
    imputer = GaussianMixtureImputer.from_model(model)
    assert imputer.estimator_ is model and imputer.selection_ is None
    assert imputer.n_components_ == 3 and imputer.get_params()["covariance_type"] == "spherical"
    np.testing.assert_array_equal(imputer.transform(incomplete),
                                  fitted["spherical"].transform(incomplete))
    selection = GaussianMixtureSelection([2, 3, 4], estimator=GaussianMixture(n_init=3),
                                         random_state=0).fit(incomplete)
    over = GaussianMixtureImputer.from_model(selection)
    assert over.estimator_ is selection.best_estimator_ and over.selection_ is selection


def test_from_model_refuses_an_unfitted_or_foreign_model():
    with pytest.raises(NotFittedError):
        GaussianMixtureImputer.from_model(GaussianMixture(2))
    with pytest.raises(TypeError, match="GaussianMixture"):
        GaussianMixtureImputer.from_model(SimpleImputer())


def test_bad_hyper_parameters_are_refused_at_fit_naming_them(incomplete):
    for params, name in [({"n_components": 0}, "n_components"),
                         ({"n_components": "three"}, "n_components"),
                         ({"covariance_type": "round"}, "covariance_type"),
                         ({"estimator": SimpleImputer()}, "estimator"),
                         ({"criterion": "luck"}, "criterion")]:
        with pytest.raises(ValueError, match=name):
            GaussianMixtureImputer(**params).fit(incomplete)


# ---- does it impute well? ---------------------------------------------------------------------


def test_it_beats_the_column_mean_on_a_correlated_mixture_with_20_percent_missing():
    truth = random_mixture(5, 4, separation=1.0, anisotropy=10.0, random_state=0)
    X, _ = sample_mixture(*truth, 3000, random_state=1)
    missing = np.random.default_rng(2).random(X.shape) < 0.2
    holed = np.where(missing, np.nan, X)

    def rmse(Z):
        return np.sqrt(np.mean((Z[missing] - X[missing]) ** 2))

    ours = rmse(GaussianMixtureImputer(random_state=0).fit_transform(holed))
    baseline = rmse(SimpleImputer(strategy="mean").fit_transform(holed))
    assert ours < 0.85 * baseline, (ours, baseline)


# ---- scikit-learn's checks --------------------------------------------------------------------


@parametrize_with_checks(
    [
        GaussianMixtureImputer(estimator=GaussianMixture(max_iter=20)),
        GaussianMixtureImputer(2, estimator=GaussianMixture(max_iter=20),
                               sample_posterior=True),
    ],
)
def test_sklearn_compatible_transformer(estimator, check):
    with warnings.catch_warnings():
        # Tiny random data: fits that stop early or end on the floor are expected.
        for category in (ConvergenceWarning, DegenerateFitWarning, SelectionBoundaryWarning):
            warnings.simplefilter("ignore", category)
        check(estimator)
