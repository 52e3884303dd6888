"""Data with holes (NaN marks a missing value): everything around the kernels.

The summary pass over observed values and its counts, the checks (infinity, columns and rows
with no observed value, weights that are never missing), the rows the starts work on, the
fitted attributes and their log line, and the command line's fields. Whether the fit itself
is exact EM on the incomplete data is the kernels' tests' business.
"""

import json
import logging

import dask
import dask.array as da
import numpy as np
import pytest

import dask_biglearn as db
from dask_biglearn.engines import DaskEngine, InProcessEngine
from dask_biglearn.engines.base import order_free
from dask_biglearn.fit.sweep import _SharedEngine
from dask_biglearn.initialization import (
    COMPLETE_ROWS_AT_LEAST,
    COMPLETE_ROWS_PER_COMPONENT,
    completed,
    init_sample,
    initial_params,
    start_rows,
)
from dask_biglearn.kernels.summaries import combine_summaries, summarize_blocks
from dask_biglearn.validation import with_sample_weight

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

ESTIMATORS = [db.GaussianMixture, db.BigLearnGaussianMixture]
FAST = {"GaussianMixture": {"max_iter": 5},
        "BigLearnGaussianMixture": {"max_iter": 4, "n_init": 2, "check_every": 2,
                                    "refine_max_iter": 3, "moves": ()}}


def _fast(Est, n_components=2, **params):
    return Est(n_components, random_state=0, **{**FAST[Est.__name__], **params})


def _holey(n=600, d=4, fraction=0.2, n_empty=7, seed=0):
    """Two clusters at different offsets and scales, ``fraction`` of the values missing and
    ``n_empty`` rows with no observed value."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * np.geomspace(0.1, 100, d) + np.linspace(-50, 1e3, d)
    X[n // 2:] += 3 * np.geomspace(0.1, 100, d)
    X[rng.random(X.shape) < fraction] = np.nan
    X[rng.choice(n, n_empty, replace=False)] = np.nan
    return X


def _expected(X, weights=None):
    """Per column over its observed values (of positive weight, for min and max): NumPy's
    nanmean, nanvar, nanmin and nanmax, or their weighted versions."""
    if weights is None:
        return (np.nanmean(X, axis=0), np.nanvar(X, axis=0), np.nanmin(X, axis=0),
                np.nanmax(X, axis=0))
    observed = ~np.isnan(X)
    filled = np.where(observed, X, 0.0)
    total = weights @ observed
    mean = weights @ filled / total
    var = weights @ np.where(observed, X - mean, 0.0) ** 2 / total
    kept = np.where(weights[:, None] > 0, X, np.nan)
    return mean, var, np.nanmin(kept, axis=0), np.nanmax(kept, axis=0)


def _counts(X, weights=None):
    rows = X if weights is None else X[weights > 0]
    nan = np.isnan(rows)
    return int(nan.sum()), int(nan.any(axis=1).sum()), int(nan.all(axis=1).sum())


def _weights(n, seed=1):
    weights = np.random.default_rng(seed).uniform(0.5, 3.0, size=n)
    weights[::9] = 0.0
    return weights


# ---- the summary pass ---------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("splits, block_rows", [((), 65536), ((1, 250, 251), 7),
                                                ((100, 200, 300, 400, 500), 33)])
def test_the_summary_kernel_is_over_each_columns_observed_values(weighted, splits,
                                                                 block_rows):
    X = _holey()
    weights = _weights(len(X)) if weighted else None
    data = with_sample_weight(X, weights) if weighted else X
    parts = [summarize_blocks([block], block_rows, weighted)
             for block in np.split(data, list(splits))]
    summary = combine_summaries(parts[::-1])
    mean, var, low, high = _expected(X, weights)
    scale = np.abs(mean) + np.sqrt(var)
    assert np.all(np.abs(summary.mean - mean) <= 1e-12 * scale), summary.mean - mean
    np.testing.assert_allclose(summary.m2 / summary.feature_weights, var, rtol=1e-12)
    np.testing.assert_array_equal(summary.min, low)
    np.testing.assert_array_equal(summary.max, high)
    assert (summary.n_missing, summary.n_incomplete, summary.n_empty) == _counts(X, weights)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_numpy_and_dask_engines_summarise_the_observed_values_alike(weighted):
    X = _holey()
    weights = _weights(len(X)) if weighted else None
    data = with_sample_weight(X, weights) if weighted else X
    local = InProcessEngine(data, weighted=weighted).summaries
    mean, var, low, high = _expected(X, weights)
    shift, rounded_var = order_free(mean, var)
    np.testing.assert_allclose(local.shift, shift, rtol=1e-12)
    np.testing.assert_allclose(local.var, rounded_var, rtol=1e-12)
    np.testing.assert_array_equal(local.min, low)
    np.testing.assert_array_equal(local.max, high)
    with dask.config.set(scheduler="threads"):
        for chunks in (600, 100, (1, 299, 300), 37):
            Xd = with_sample_weight(da.from_array(X, chunks=(chunks, -1)), weights) \
                if weighted else da.from_array(X, chunks=(chunks, -1))
            with DaskEngine(Xd, weighted=weighted, split_every=3) as engine:
                lazy = engine.summaries
            for name in ("shift", "var", "min", "max"):
                np.testing.assert_allclose(getattr(lazy, name), getattr(local, name),
                                           rtol=1e-12, atol=0, err_msg=f"{name}, {chunks}")
            assert (lazy.n_missing, lazy.n_incomplete, lazy.n_empty) == (
                local.n_missing, local.n_incomplete, local.n_empty) == _counts(X, weights)
            assert lazy.n_positive_rows == local.n_positive_rows


def test_the_summary_counts_missing_values_incomplete_rows_and_empty_rows():
    X = np.arange(24, dtype=float).reshape(6, 4)
    X[0, 1] = X[2, 0] = X[2, 3] = np.nan
    X[4] = np.nan
    summaries = InProcessEngine(X).summaries
    assert (summaries.n_missing, summaries.n_incomplete, summaries.n_empty) == (7, 3, 1)
    assert summaries.missing
    assert summaries.n_positive_rows == 5  # the empty row takes no part in a fit
    assert summaries.n_counted_rows == 6
    assert summaries.missing_fraction == 7 / 24
    assert summaries.rows_holding(3) == 4  # ceil(3 * 6 / 5): about 3 rows that count
    assert InProcessEngine(X).missing
    weights = np.array([1.0, 1.0, 0.0, 1.0, 1.0, 1.0])  # row 2 weighs nothing
    weighted = InProcessEngine(with_sample_weight(X, weights), weighted=True).summaries
    assert (weighted.n_missing, weighted.n_incomplete, weighted.n_empty) == (5, 2, 1)
    assert weighted.n_positive_rows == 4 and weighted.missing_fraction == 5 / 20
    Y = np.arange(24, dtype=float).reshape(6, 4)
    Y[2, 1] = np.nan  # in a row of zero weight: no training value is missing, but a pass
    weighted = InProcessEngine(with_sample_weight(Y, weights), weighted=True)  # meets a NaN
    assert weighted.summaries.n_missing == 0 and weighted.summaries.missing_fraction == 0.0
    assert weighted.missing


def test_complete_data_takes_the_path_it_always_took():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 3)) * [1, 1e3, 1e-3] + [5, -7, 1e4]
    summary = summarize_blocks([X[:100], X[100:]], block_rows=64)
    assert summary.feature_weight is None and summary.n_missing == 0
    one = summarize_blocks([X[:64]])
    mean = X[:64].mean(axis=0)
    np.testing.assert_array_equal(one.mean, mean)  # the same arithmetic, bit for bit
    np.testing.assert_array_equal(one.m2, ((X[:64] - mean) ** 2).sum(axis=0))
    summaries = InProcessEngine(X).summaries
    assert not summaries.missing and summaries.missing_fraction == 0.0
    assert (summaries.n_missing, summaries.n_incomplete, summaries.n_empty) == (0, 0, 0)
    assert not InProcessEngine(X).missing


def test_a_sample_engine_takes_the_datas_summaries_of_a_column_it_does_not_observe():
    X = _holey(n=400, fraction=0.0, n_empty=0)
    X[1:, 2] = np.nan  # only row 0 observes column 2
    with InProcessEngine(X) as engine, engine.sample_engine(50, seed=4) as on_sample:
        assert np.isnan(on_sample.X[:, 2]).all()  # row 0 is not in the sample
        assert on_sample.summaries.shift[2] == engine.summaries.shift[2]
        assert on_sample.summaries.min[2] == engine.summaries.min[2] == X[0, 2]
        assert np.all(np.isfinite(on_sample.summaries.var))


# ---- what is refused ----------------------------------------------------------------------


def _as(kind, X, chunks=50):
    return da.from_array(X, chunks=(chunks, -1)) if kind == "dask" else X


@pytest.fixture(params=["numpy", "dask"])
def kind(request):
    return request.param


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_a_column_with_no_observed_value_is_refused_naming_it(Est, kind):
    X = _holey(n=200)
    X[:, 3] = np.nan
    with pytest.raises(ValueError, match=r"^column 3 of X has no observed value") as info:
        _fast(Est).fit(_as(kind, X))
    assert "\n" not in str(info.value)
    X[:, 1] = np.nan
    with pytest.raises(ValueError, match=r"^columns 1, 3 of X have no observed value"):
        _fast(Est).fit(_as(kind, X))


def test_data_whose_every_row_is_empty_is_refused():
    X = np.full((40, 2), np.nan)
    with pytest.raises(ValueError, match="Every row of X has no observed value"):
        DaskEngine(da.from_array(X, chunks=(10, -1)))
    Y = _holey(n=40, fraction=0.0, n_empty=0)
    Y[::2] = np.nan  # the rows of positive weight are those with nothing observed
    weights = np.tile([1.0, 0.0], 20)
    with pytest.raises(ValueError, match="Every row of positive sample_weight has no observed"):
        db.GaussianMixture(2).fit(Y, sample_weight=weights)


def test_fewer_rows_with_an_observed_value_than_components_is_refused():
    X = _holey(n=40, fraction=0.0, n_empty=0)
    X[5:] = np.nan  # every column observed, in 5 rows of 40
    with pytest.raises(ValueError, match="only 5 of the 40 rows have an observed value"):
        db.GaussianMixture(6).fit(X)


@pytest.mark.parametrize("Est", ESTIMATORS)
@pytest.mark.parametrize("bad", [np.inf, -np.inf])
def test_infinity_is_refused_at_fit_in_one_line(Est, kind, bad):
    X = _holey(n=200)
    X[7, 1] = bad
    with pytest.raises(ValueError, match="contains infinity") as info:
        _fast(Est).fit(_as(kind, X))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score_samples", "score"])
def test_infinity_is_refused_at_predict_and_score_in_one_line(kind, method):
    model = db.GaussianMixture(2, random_state=0, max_iter=5).fit(_holey(n=200))
    X = _holey(n=100, seed=1)
    X[17, 2] = np.inf
    with pytest.raises(ValueError, match="infinity") as info:
        result = getattr(model, method)(_as(kind, X))
        if kind == "dask" and method != "score":
            result.compute(scheduler="sync")
    assert "\n" not in str(info.value)


def test_a_nan_weight_is_refused_the_weights_are_never_missing(kind):
    X = _holey(n=200)
    weights = np.ones(len(X))
    weights[11] = np.nan
    given = da.from_array(weights, chunks=50) if kind == "dask" else weights
    with pytest.raises(ValueError, match="sample_weight contains NaN or infinity"):
        db.GaussianMixture(2, max_iter=3).fit(_as(kind, X), sample_weight=given)


def test_numpy_input_with_nan_passes_validation_where_dask_input_is_not_computed():
    model = db.GaussianMixture(2, random_state=0, max_iter=5).fit(_holey(n=200))
    X = _holey(n=100, seed=2)
    lazy = da.from_array(X, chunks=(25, -1))
    labels = model.predict(lazy)
    assert isinstance(labels, da.Array)  # nothing computed yet
    assert model.predict(X).shape == (100,)


# ---- the rows the starts work on ----------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_the_starts_sample_is_its_complete_rows_when_there_are_enough(weighted):
    X = _holey(n=4000, fraction=0.1, n_empty=40)
    data = with_sample_weight(X, _weights(len(X))) if weighted else X
    with InProcessEngine(data, weighted=weighted) as engine:
        sample = init_sample("kmeans", np.random.default_rng(0), 3, engine)
    kept = X if not weighted else X[_weights(len(X)) > 0]
    complete = kept[~np.isnan(kept).any(axis=1)]
    assert len(complete) >= max(COMPLETE_ROWS_PER_COMPONENT * 3, COMPLETE_ROWS_AT_LEAST)
    np.testing.assert_array_equal(sample, complete)  # all rows of data this small


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_else_every_row_but_the_empty_ones_with_its_holes_filled_by_k_pod(weighted):
    X = _holey(n=500, fraction=0.3, n_empty=40)
    data = with_sample_weight(X, _weights(len(X))) if weighted else X
    k = 10  # more than the complete rows can seed: COMPLETE_ROWS_PER_COMPONENT each
    with InProcessEngine(data, weighted=weighted) as engine:
        sample = init_sample("kmeans", np.random.default_rng(0), k, engine)
    kept = X if not weighted else X[_weights(len(X)) > 0]
    kept = kept[~np.isnan(kept).all(axis=1)]
    assert (~np.isnan(kept).any(axis=1)).sum() < COMPLETE_ROWS_PER_COMPONENT * k
    assert not np.isnan(sample).any() and len(sample) == len(kept)
    observed = ~np.isnan(kept)
    np.testing.assert_array_equal(sample[observed], kept[observed])


def test_k_pod_fills_a_hole_from_its_cluster_where_a_column_mean_falls_between():
    rng = np.random.default_rng(3)
    centres = np.array([[-10.0, -10.0], [10.0, 10.0]])
    truth = centres[rng.integers(2, size=400)] + rng.normal(size=(400, 2))
    X = truth.copy()
    holes = np.zeros(X.shape, dtype=bool)
    holes[::4, 1] = True  # a quarter of the rows miss column 1; column 0 says the cluster
    X[holes] = np.nan
    shift = np.nanmean(X, axis=0)
    by_means = completed(X, shift)
    by_kpod = completed(X, shift, n_components=20, seed=0)  # too few complete rows for 20
    assert np.abs(by_means[holes] - truth[holes]).mean() > 8  # between the clusters
    assert np.abs(by_kpod[holes] - truth[holes]).mean() < 2  # in its own
    assert not np.isnan(completed(X, shift, n_components=2)).any()  # 300 complete: too few


def test_every_start_is_drawn_from_rows_without_nan():
    X = _holey(n=300, fraction=0.3, n_empty=250)  # most rows are empty
    with InProcessEngine(X) as engine:
        for kind in ("random", "random_from_data", "k-means++", "kmeans", "kmeans-pursuit"):
            params = initial_params(kind, np.random.default_rng(1), 4, engine, 1e-6)
            assert np.all(np.isfinite(params.means)), kind
            assert np.all(np.isfinite(params.covariances)), kind
        means = initial_params("random_from_data", np.random.default_rng(1), 4, engine,
                               1e-6).means
    assert len(np.unique(means, axis=0)) == 4  # distinct rows, none of them empty


def test_the_sweeps_shared_engine_says_whether_data_is_missing_and_its_rows_are_complete():
    X = _holey(n=200)
    with InProcessEngine(X) as engine:
        shared = _SharedEngine(engine, shared=None)
        assert shared.missing is True
        rows = start_rows(engine.take_sample(200, 0), shared)
    assert not np.isnan(rows).any() and len(rows) == 200 - 7


# ---- what a fit reports -------------------------------------------------------------------


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_a_fit_reports_the_missing_values_and_logs_one_line(Est, kind, caplog, tmp_path):
    X = _holey(n=400, fraction=0.1, n_empty=3)
    n_missing, n_incomplete, n_empty = _counts(X)
    with caplog.at_level(logging.INFO, logger="dask_biglearn"):
        model = _fast(Est, verbose=1).fit(_as(kind, X))
    assert model.missing_fraction_ == n_missing / X.size
    assert (model.n_incomplete_rows_, model.n_empty_rows_) == (n_incomplete, n_empty)
    assert isinstance(model.n_incomplete_rows_, int)
    said = [m for m in caplog.messages if "values missing" in m]
    assert said == [(f"{100 * n_missing / X.size:.3g}% of the values missing, in "
                     f"{n_incomplete} of 400 rows; 3 rows with no observed value are "
                     f"ignored.")]
    loaded = db.load(model.save(tmp_path / "m.dbl"))
    assert (loaded.missing_fraction_, loaded.n_incomplete_rows_, loaded.n_empty_rows_) == (
        model.missing_fraction_, n_incomplete, n_empty)


def test_a_fit_of_complete_data_reports_nothing_missing(caplog):
    X = _holey(n=200, fraction=0.0, n_empty=0)
    with caplog.at_level(logging.INFO, logger="dask_biglearn"):
        model = db.GaussianMixture(2, random_state=0, max_iter=5, verbose=1).fit(X)
    assert (model.missing_fraction_, model.n_incomplete_rows_, model.n_empty_rows_) == (
        0.0, 0, 0)
    assert not [m for m in caplog.messages if "missing" in m]


@pytest.mark.filterwarnings("ignore::dask_biglearn.exceptions.SelectionBoundaryWarning")
def test_the_selections_best_estimator_reports_the_training_rows_missing_values():
    X = _holey(n=400, fraction=0.1, n_empty=3)
    selection = db.GaussianMixtureSelection(
        [1, 2], estimator=db.GaussianMixture(max_iter=5), random_state=0).fit(X)
    best = selection.best_estimator_
    n_missing, n_incomplete, n_empty = _counts(X)
    assert best.missing_fraction_ == n_missing / X.size
    assert (best.n_incomplete_rows_, best.n_empty_rows_) == (n_incomplete, n_empty)
    assert np.all(np.isfinite(selection.cv_results_["bic"]))


def test_the_estimators_declare_that_they_take_nan():
    from sklearn.utils import get_tags

    for estimator in (db.GaussianMixture(), db.BigLearnGaussianMixture(),
                      db.GaussianMixtureSelection()):
        assert get_tags(estimator).input_tags.allow_nan


# ---- the command line ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def holey_store(tmp_path_factory):
    X = _holey(n=1200, d=3, fraction=0.1, n_empty=5, seed=4)
    X[1100, 0] = np.nan
    path = tmp_path_factory.mktemp("holes") / "x.zarr"
    da.from_array(X, chunks=(300, 3)).to_zarr(str(path), component="X")
    return X, path


def test_fit_and_select_json_summaries_carry_the_missing_values(holey_store, tmp_path,
                                                                local_cluster, capsys):
    from dask_biglearn.cli import main

    X, store = holey_store
    n_missing, n_incomplete, n_empty = _counts(X)
    sched = ["--scheduler", local_cluster.scheduler_address]
    code = main(["fit", str(store), "--n-components", "2", "--method", "em", "--max-iter",
                 "5", "--model", str(tmp_path / "m.dbl"), "--json", *sched])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads(out)
    assert summary["missing_fraction"] == n_missing / X.size
    assert (summary["n_incomplete_rows"], summary["n_empty_rows"]) == (n_incomplete, n_empty)
    code = main(["select", str(store), "--n-components", "1:2", "--method", "em", "--n-init",
                 "1", "--model", str(tmp_path / "s.dbl"), "--json", *sched])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads(out)
    assert summary["missing_fraction"] == n_missing / X.size
    assert summary["n_incomplete_rows"] == n_incomplete


def test_the_text_summaries_say_what_is_missing_first(holey_store, tmp_path, local_cluster,
                                                      capsys):
    from dask_biglearn.cli import main

    X, store = holey_store
    n_missing, n_incomplete, n_empty = _counts(X)
    said = (f"{100 * n_missing / X.size:.3g}% of the values missing, in {n_incomplete} of "
            f"1200 rows; {n_empty} rows with no observed value are ignored")
    sched = ["--scheduler", local_cluster.scheduler_address]
    assert main(["fit", str(store), "--n-components", "2", "--method", "em", "--max-iter",
                 "5", "--model", str(tmp_path / "m.dbl"), *sched]) == 0
    closing = capsys.readouterr().out.splitlines()[-1]
    assert closing.startswith(f"Saved {tmp_path / 'm.dbl'} ({said}): mean log-likelihood")
    assert main(["select", str(store), "--n-components", "1:2", "--method", "em", "--n-init",
                 "1", "--model", str(tmp_path / "s.dbl"), "--quiet", *sched]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"{said}."
    assert main(["predict", str(tmp_path / "m.dbl"), str(store), "--out",
                 str(tmp_path / "p.zarr"), "--quiet", *sched]) == 0


def test_nan_in_rows_of_zero_weight_leaves_the_fit_of_the_other_rows():
    X = _holey(n=300, fraction=0.0, n_empty=0)
    weights = np.ones(len(X))
    weights[::10] = 0.0
    X[::10, 1] = np.nan  # every missing value is in a row that weighs nothing
    weighted = db.GaussianMixture(2, random_state=0, max_iter=20).fit(X, sample_weight=weights)
    alone = db.GaussianMixture(2, random_state=0, max_iter=20).fit(X[weights > 0])
    assert weighted.missing_fraction_ == 0.0
    np.testing.assert_allclose(weighted.means_, alone.means_, rtol=1e-8)
    np.testing.assert_allclose(weighted.lower_bound_, alone.lower_bound_, rtol=1e-10)
