"""Bad input and bad hyper-parameters get clear errors naming the problem."""

import dask.array as da
import numpy as np
import pytest

from dask_biglearn import BigLearnGaussianMixture, GaussianMixture

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

ESTIMATORS = [GaussianMixture, BigLearnGaussianMixture]
X_OK = np.random.default_rng(0).normal(size=(50, 3))


def _as(kind, X):
    return da.from_array(X, chunks=(20, -1)) if kind == "dask" else X


@pytest.fixture(params=["numpy", "dask"])
def kind(request):
    return request.param


@pytest.mark.parametrize("Est", ESTIMATORS)
@pytest.mark.parametrize("bad", [np.inf, -np.inf])
def test_inf_is_rejected(Est, kind, bad):
    """Infinity is an error (NaN is a missing value: tests/test_missing_inputs.py)."""
    X = X_OK.copy()
    X[7, 1] = bad
    with pytest.raises(ValueError, match="infinity"):
        Est(2, max_iter=2).fit(_as(kind, X))


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_not_2d_is_rejected(Est, kind):
    with pytest.raises(ValueError, match="2D|2-D"):
        Est(2).fit(_as(kind, X_OK[:, 0]) if kind == "numpy" else da.from_array(X_OK[:, 0]))


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_more_components_than_samples(Est, kind):
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        Est(60).fit(_as(kind, X_OK))


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_non_numeric_dtype(Est):
    with pytest.raises((TypeError, ValueError), match="dtype|convert|string|number"):
        Est(2).fit(np.array([["a", "b"], ["c", "d"], ["e", "f"]], dtype=object))
    with pytest.raises(TypeError, match="numeric dtype"):
        Est(2).fit(da.from_array(np.array([["a", "b"], ["c", "d"]])))
    with pytest.raises(TypeError, match="numeric dtype"):
        Est(2).fit(da.from_array(X_OK.astype(np.complex128)))


@pytest.mark.parametrize("Est", ESTIMATORS)
def test_wrong_number_of_features_at_predict(Est, kind):
    est = Est(2, max_iter=3, random_state=0).fit(X_OK)
    with pytest.raises(ValueError, match="3 features"):
        est.predict(_as(kind, X_OK[:, :2]))


def test_inf_at_predict_on_dask_raises_on_compute():
    est = GaussianMixture(2, max_iter=3, random_state=0).fit(X_OK)
    X = X_OK.copy()
    X[3, 0] = np.inf
    lazy = est.predict(da.from_array(X, chunks=(20, -1)))
    with pytest.raises(ValueError, match="infinity"):
        lazy.compute(scheduler="sync")


@pytest.mark.parametrize(
    "params, match",
    [
        ({"matching_probs": {"joint": 0.5, "marginal": 0.1}}, "matching_probs.*sum to 1"),
        ({"matching_probs": {"joint": 1.2, "marginal": -0.2}}, "matching_probs.*>= 0"),
        ({"matching_probs": {"joint": 0.5, "diagonal": 0.5}}, "matching_probs.*matching kinds"),
        ({"matching_probs": [0.4, 0.1, 0.5]}, "matching_probs.*a dict"),
        ({"marginal_size_beta": (0.0, 1.0)}, "marginal_size_beta.*> 0"),
        ({"marginal_size_beta": (5.0, -1.0)}, "marginal_size_beta.*> 0"),
        ({"marginal_size_beta": 5.0}, "marginal_size_beta.*pair"),
        ({"weight_concentration": -0.1}, "weight_concentration"),
        ({"n_inner_iter": 0}, "n_inner_iter"),
        ({"check_every": 0}, "check_every"),
        ({"max_iter": -1}, "max_iter"),
        ({"n_components": 0}, "n_components"),
        ({"covariance_floor": -1.0}, "covariance_floor"),
        ({"init_params": "kmeans+"}, "init_params"),
        ({"split_every": 1}, "split_every"),
        ({"means_init": np.zeros((3, 3))}, "means_init: The parameter .means. should have the shape of"),
        ({"weights_init": [0.5, 0.6]}, "weights_init"),
        ({"precisions_init": -np.broadcast_to(np.eye(3), (2, 3, 3))}, "positive-definite"),
        ({"tol": -1.0}, "tol"),
        ({"n_iter_no_change": 0}, "n_iter_no_change"),
        ({"refine_max_iter": -1}, "refine_max_iter"),
        ({"refine_tol": -1.0}, "refine_tol"),
        ({"n_init": 0}, "n_init"),
        ({"n_explore": 0}, "n_explore"),
        ({"callbacks": [1]}, "callbacks.*callables"),
    ],
)
def test_invalid_hyper_parameters(params, match):
    # scikit-learn's InvalidParameterError is both a ValueError and a TypeError.
    with pytest.raises((ValueError, TypeError), match=match):
        BigLearnGaussianMixture(**{"n_components": 2, "max_iter": 2, **params}).fit(X_OK)


@pytest.mark.parametrize("params, match", [({"tol": -1.0}, "tol"), ({"n_init": 0}, "n_init")])
def test_invalid_plain_em_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(2, **params).fit(X_OK)


def test_sample_needs_positive_count():
    est = GaussianMixture(2, max_iter=3, random_state=0).fit(X_OK)
    with pytest.raises(ValueError, match="n_samples"):
        est.sample(0)
