"""Covariance types end to end: scikit-learn's parity, shapes and scoring, BigLearn-EM and
the scalable mode, the chunking, model files, checkpoints and the command line."""

import json
import warnings
import zipfile

import dask.array as da
import numpy as np
import pytest
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from dask_biglearn import BigLearnGaussianMixture, GaussianMixture, load
from dask_biglearn.algebra import COVARIANCE_TYPES, typed_shape
from dask_biglearn.cli import main
from dask_biglearn.io import ModelFileError
from dask_biglearn.testing import make_blobs

K, D = 5, 4


@pytest.fixture(scope="module")
def data():
    return make_blobs(seed=21, n_samples=1500, n_features=D, n_components=K)[0]


def _sklearn_start(X, covariance_type):
    """A rough start, as scikit-learn's own parameters of the type after one iteration."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = SkGaussianMixture(K, covariance_type=covariance_type, max_iter=1,
                                  random_state=3).fit(X)
    return {"weights_init": start.weights_, "means_init": start.means_,
            "precisions_init": start.precisions_}


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_plain_em_gives_scikit_learns_parameters_for_each_type(data, covariance_type):
    """From the same starting parameters, plain EM's parameters and scores are scikit-learn's
    (to 1e-6 asked; 1e-9 to 1e-13 seen), in scikit-learn's shapes."""
    X = data
    start = _sklearn_start(X, covariance_type)
    settings = {"covariance_type": covariance_type, "max_iter": 15, "tol": 0.0,
                "reg_covar": 1e-6, **start}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = SkGaussianMixture(K, **settings).fit(X)
        ours = GaussianMixture(K, covariance_floor=1e-12, **settings).fit(X)
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        assert getattr(ours, name).shape == getattr(theirs, name).shape, name
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-6,
                                   atol=1e-9, err_msg=name)
    assert ours.covariances_.shape == typed_shape(covariance_type, K, D)
    np.testing.assert_allclose(ours.score_samples(X), theirs.score_samples(X), rtol=1e-7)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-8)
    assert ours.bic(X) == pytest.approx(theirs.bic(X), rel=1e-7)
    assert ours.aic(X) == pytest.approx(theirs.aic(X), rel=1e-7)
    assert ours._n_parameters() == theirs._n_parameters()


@pytest.mark.parametrize("covariance_type", ["tied", "diag", "spherical"])
def test_biglearn_fits_each_type_the_same_on_numpy_and_any_chunking(data, covariance_type):
    """Starts, warm-up, matchings (rotated ones projected back onto the type), refinement
    and moves: the fit keeps the type, and its result does not depend on the chunking."""
    X = data
    settings = {"covariance_type": covariance_type, "n_init": 3, "max_iter": 20,
                "random_state": 5}
    local = BigLearnGaussianMixture(K, **settings).fit(X)
    chunked = BigLearnGaussianMixture(K, **settings).fit(da.from_array(X, chunks=(400, -1)))
    assert local.covariances_.shape == typed_shape(covariance_type, K, D)
    assert set(local.matchings_) >= {"rotated_marginal"} or local.best_iteration_ == 0
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(getattr(chunked, name), getattr(local, name), rtol=1e-8,
                                   atol=1e-10)
    assert np.isfinite(local.lower_bound_)
    assert local.score(X) == pytest.approx(local.lower_bound_, abs=1e-9)


@pytest.mark.parametrize("covariance_type", ["tied", "diag", "spherical"])
def test_the_scalable_mode_fits_each_type(data, covariance_type):
    model = BigLearnGaussianMixture(K, covariance_type=covariance_type, n_init=2, max_iter=10,
                                    sample_size=600, random_state=0).fit(data)
    assert model.covariances_.shape == typed_shape(covariance_type, K, D)
    assert model.n_sample_passes_ > 0 and np.isfinite(model.lower_bound_)


def test_a_diagonal_fit_beats_a_spherical_one_and_is_beaten_by_a_full_one(data):
    """The nested families: more freedom, higher training likelihood from the same
    starts (plain EM from k-means, five starts)."""
    lower = {t: GaussianMixture(K, covariance_type=t, init_params="kmeans", n_init=5,
                                random_state=0).fit(data).lower_bound_
             for t in ("spherical", "diag", "full")}
    assert lower["spherical"] < lower["diag"] < lower["full"]


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_precisions_init_of_the_wrong_shape_is_refused_with_the_shape(data, covariance_type):
    wrong = np.ones((K + 1, D))
    with pytest.raises(ValueError, match=r"precisions_init: The parameter '"
                       + covariance_type + r" precision' should have the shape of "
                       + str(typed_shape(covariance_type, K, D)).replace("(", r"\(")
                       .replace(")", r"\)")):
        GaussianMixture(K, covariance_type=covariance_type, precisions_init=wrong).fit(data)


def test_a_negative_diagonal_precision_is_refused(data):
    with pytest.raises(ValueError, match="'diag precision' should be positive"):
        GaussianMixture(K, covariance_type="diag", precisions_init=-np.ones((K, D))).fit(data)


@pytest.mark.parametrize("covariance_type", ["tied", "diag", "spherical"])
def test_warm_start_continues_a_fit_of_the_type(data, covariance_type):
    model = GaussianMixture(K, covariance_type=covariance_type, init_params="kmeans",
                            max_iter=200, random_state=0).fit(data)
    before = model.lower_bound_
    model.set_params(warm_start=True).fit(data)
    assert model.lower_bound_ >= before - 1e-9 and model.n_iter_ <= 3


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_model_files_keep_the_type(data, covariance_type, tmp_path):
    model = GaussianMixture(K, covariance_type=covariance_type, init_params="kmeans",
                            random_state=0).fit(data)
    loaded = load(model.save(tmp_path / "m.dbl"))
    assert loaded.covariance_type == covariance_type
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(model, name))
    np.testing.assert_array_equal(loaded.score_samples(data), model.score_samples(data))


def _rewrite(path, out, change):
    """A copy of a model file with its JSON header changed (arrays kept)."""
    with zipfile.ZipFile(path) as z:
        members = {name: z.read(name) for name in z.namelist()}
    meta = json.loads(members["dask-biglearn.json"])
    change(meta)
    members["dask-biglearn.json"] = json.dumps(meta).encode()
    with zipfile.ZipFile(out, "w") as z:
        for name, body in members.items():
            z.writestr(name, body)
    return out


def test_a_format_2_file_without_a_type_loads_as_full(data, tmp_path):
    path = GaussianMixture(K, random_state=0).fit(data).save(tmp_path / "full.dbl")

    def as_format_2(meta):
        meta["format_version"] = 2
        del meta["hyper_parameters"]["covariance_type"]

    old = load(_rewrite(path, tmp_path / "old.dbl", as_format_2))
    assert old.covariance_type == "full" and old.covariances_.shape == (K, D, D)


def test_a_file_whose_covariances_are_not_of_its_type_is_refused(data, tmp_path):
    path = GaussianMixture(K, random_state=0).fit(data).save(tmp_path / "full.dbl")

    def claim_diag(meta):
        meta["hyper_parameters"]["covariance_type"] = "diag"

    with pytest.raises(ModelFileError, match=r"covariance_type='diag' make it \(5, 4\)"):
        load(_rewrite(path, tmp_path / "bad.dbl", claim_diag))

    def claim_other(meta):
        meta["hyper_parameters"]["covariance_type"] = "banded"

    with pytest.raises(ModelFileError, match="unknown covariance_type 'banded'"):
        load(_rewrite(path, tmp_path / "bad2.dbl", claim_other))


def test_a_checkpoint_of_another_covariance_type_is_refused(data, tmp_path):
    path = tmp_path / "c.ckpt"
    GaussianMixture(K, covariance_type="diag", checkpoint=path, random_state=0).fit(data)
    with pytest.raises(ValueError, match="another fit.*covariance_type"):
        GaussianMixture(K, checkpoint=path, resume=True, random_state=0).fit(data)
    resumed = GaussianMixture(K, covariance_type="diag", checkpoint=path, resume=True,
                              random_state=0).fit(data)
    assert resumed.covariances_.shape == (K, D)


def test_the_command_line_fits_a_type_and_starts_from_a_model_of_it(data, tmp_path, capsys,
                                                                    local_cluster):
    import zarr

    sched = ["--scheduler", local_cluster.scheduler_address]
    store = tmp_path / "x.zarr"
    zarr.open_group(str(store), mode="w").create_array("X", data=data, chunks=(500, D))
    model, again = tmp_path / "diag.dbl", tmp_path / "again.dbl"
    assert main(["fit", str(store), "--n-components", str(K), "--covariance-type", "diag",
                 "--method", "em", "--model", str(model), "--quiet", *sched]) == 0
    assert load(model).covariances_.shape == (K, D)
    assert main(["fit", str(store), "--n-components", str(K), "--init-model", str(model),
                 "--method", "em", "--model", str(again), "--quiet", *sched]) == 0
    assert load(again).covariance_type == "diag"
    capsys.readouterr()
    assert main(["fit", str(store), "--n-components", str(K), "--init-model", str(model),
                 "--covariance-type", "full", "--model", str(tmp_path / "x.dbl"),
                 *sched]) != 0
    assert "covariance_type 'diag'" in capsys.readouterr().err
