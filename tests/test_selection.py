"""GaussianMixtureSelection: the sweep over K (and covariance types) in one set of passes,
its table, its criteria, its held-out rows, and the best model."""

import warnings

import dask.array as da
import numpy as np
import pytest

from dask_biglearn import GaussianMixture, GaussianMixtureSelection
from dask_biglearn.datasets import random_mixture, sample_mixture
from dask_biglearn.exceptions import SelectionBoundaryWarning
from dask_biglearn.selection import heldout_mask


@pytest.fixture(scope="module")
def known():
    truth = random_mixture(3, 5, separation=4.0, random_state=2)
    X, labels = sample_mixture(*truth, 4000, random_state=3)
    return X, labels


def _em():
    return GaussianMixture(init_params="kmeans", n_init=2)


def test_bic_picks_the_true_number_of_components_and_says_so(known):
    X, _ = known
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sel = GaussianMixtureSelection(range(2, 9), estimator=_em(), random_state=0).fit(X)
    table = sel.cv_results_
    assert sel.best_params_ == {"n_components": 5, "covariance_type": "full"}
    assert list(table["param_n_components"]) == list(range(2, 9))
    assert table["rank"][sel.best_index_] == 1
    assert sel.best_index_ == int(np.argmin(table["bic"]))
    assert np.all(np.isnan(table["heldout_log_likelihood"]))  # nothing held out for BIC
    best = sel.best_estimator_
    assert best.n_components == 5 and best.bic(X) == pytest.approx(table["bic"][3], rel=1e-9)
    np.testing.assert_array_equal(sel.predict(X), best.predict(X))
    assert sel.score(X) == pytest.approx(best.score(X))
    # one set of passes: about those of the largest fit alone, not the sum of all seven
    alone = _em().set_params(n_components=8, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alone.fit(X)
    assert sel.n_data_passes_ <= 1.5 * alone.n_data_passes_ + 2


def test_held_out_rows_are_chosen_by_index_and_seed_and_scored(known):
    X, _ = known
    mask = heldout_mask(0, len(X), 7, 0.2)
    assert 0.15 < mask.mean() < 0.25
    np.testing.assert_array_equal(mask[1000:2000], heldout_mask(1000, 2000, 7, 0.2))
    settings = {"n_components": [3, 5, 7], "criterion": "heldout", "random_state": 1}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        local = GaussianMixtureSelection(estimator=_em(), **settings).fit(X)
        lazy = GaussianMixtureSelection(estimator=_em(), **settings).fit(
            da.from_array(X, chunks=(700, -1)))
    scores = local.cv_results_["heldout_log_likelihood"]
    assert np.all(np.isfinite(scores)) and local.best_index_ == int(np.argmax(scores))
    assert scores[0] < scores[1] - 0.1  # three components underfit five clusters
    np.testing.assert_allclose(lazy.cv_results_["heldout_log_likelihood"], scores, rtol=1e-9)
    np.testing.assert_allclose(lazy.best_estimator_.means_, local.best_estimator_.means_,
                               atol=1e-8)


def test_covariance_types_are_candidates_too(known):
    X, _ = known
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sel = GaussianMixtureSelection([4, 5], covariance_type=("spherical", "full"),
                                       criterion="aic", estimator=_em(),
                                       random_state=0).fit(X)
    assert list(sel.cv_results_["param_covariance_type"]) == ["spherical"] * 2 + ["full"] * 2
    assert sel.best_index_ == int(np.argmin(sel.cv_results_["aic"]))
    assert sel.best_estimator_.covariance_type == sel.best_params_["covariance_type"]


def test_the_default_biglearn_sweep_in_the_scalable_mode(known):
    from dask_biglearn import BigLearnGaussianMixture

    X, _ = known
    est = BigLearnGaussianMixture(sample_size=1500, n_init=2, max_iter=10)
    with pytest.warns(SelectionBoundaryWarning, match="largest candidate"):
        sel = GaussianMixtureSelection([3, 5], estimator=est, random_state=0).fit(X)
    assert sel.n_sample_passes_ > 0
    assert sel.best_params_["n_components"] == 5
    assert sel.n_data_passes_ < 60


@pytest.mark.parametrize("lazy", [False, True])
@pytest.mark.parametrize("n_rows, settings, message", [
    (4000, {"criterion": "heldout", "heldout_fraction": 0.0}, "holds out 0 of the 4000 rows"),
    (10, {"criterion": "heldout"}, "holds out 0 of the 10 rows"),
    (10, {"criterion": "bic", "heldout_fraction": 0.5}, "fewer than the largest candidate"),
])
def test_a_split_the_criterion_cannot_use_is_refused_before_any_pass(known, lazy, n_rows,
                                                                     settings, message):
    X = known[0][:n_rows]
    data = da.from_array(X, chunks=(1000, -1)) if lazy else X
    sel = GaussianMixtureSelection(range(2, 10), estimator=_em(), random_state=0, **settings)
    with pytest.raises(ValueError, match=message):
        sel.fit(data)
    assert not hasattr(sel, "best_estimator_")


def test_a_generator_of_candidates_is_refused_rather_than_used_up(known):
    with pytest.raises(ValueError, match="not a generator"):
        GaussianMixtureSelection(k for k in range(2, 5)).fit(known[0])


@pytest.mark.parametrize("bad, message", [
    ({"n_components": []}, "n_components"),
    ({"n_components": [0, 2]}, "n_components"),
    ({"covariance_type": ("full", "banded")}, "covariance_type"),
    ({"criterion": "icl"}, "criterion"),
    ({"estimator": object()}, "estimator"),
])
def test_bad_settings_are_refused(known, bad, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixtureSelection(**bad).fit(known[0])
