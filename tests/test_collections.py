"""Lazy collections users bring: a Dask-backed xarray DataArray and a Dask DataFrame are fitted
and predicted through their Dask arrays (never computed into this process); predictions of a
DataArray keep its row coordinate; other lazy collections are refused with one line."""

import dask
import dask.array as da
import numpy as np
import pytest

from dask_biglearn import GaussianMixture
from dask_biglearn.testing import make_blobs

xarray = pytest.importorskip("xarray")
dd = pytest.importorskip("dask.dataframe")
pd = pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def data():
    X, _ = make_blobs(seed=3, n_samples=900)
    return X, da.from_array(X, chunks=(200, -1))


def _model():
    return GaussianMixture(3, init_params="kmeans", max_iter=20, random_state=0)


def test_a_dask_backed_data_array_is_fitted_lazily_and_keeps_its_rows(data):
    X, Xd = data
    times = pd.date_range("2026-01-01", periods=len(X), freq="min")
    arr = xarray.DataArray(Xd, dims=("time", "feature"), coords={"time": times})
    model = _model().fit(arr)
    reference = _model().fit(Xd)
    np.testing.assert_allclose(model.means_, reference.means_, rtol=0, atol=1e-10)
    assert model.n_data_passes_ == reference.n_data_passes_
    labels = model.predict(arr)
    assert isinstance(labels, xarray.DataArray) and isinstance(labels.data, da.Array)
    assert labels.dims == ("time",) and (labels["time"].values == times.values).all()
    np.testing.assert_array_equal(labels.values, reference.predict(X))
    proba = model.predict_proba(arr)
    assert proba.dims == ("time", "component") and isinstance(proba.data, da.Array)
    np.testing.assert_allclose(model.score(arr), reference.score(X), rtol=1e-12)


def test_a_dask_dataframe_is_fitted_through_its_dask_array(data):
    X, _ = data
    frame = dd.from_pandas(pd.DataFrame(X, columns=["a", "b", "c"]), npartitions=4)
    model = _model().fit(frame)
    reference = _model().fit(X)
    np.testing.assert_allclose(model.means_, reference.means_, rtol=0, atol=1e-8)
    assert isinstance(model.predict(frame), da.Array)


def test_other_lazy_collections_are_refused_with_one_line(data):
    import dask.bag as db

    X, Xd = data
    bag = db.from_sequence(list(X), npartitions=3)
    with pytest.raises(TypeError, match="lazy Dask collection \\(Bag\\)"):
        _model().fit(bag)
    dataset = xarray.Dataset({"x": (("row", "feature"), Xd)})
    with pytest.raises(TypeError, match="lazy Dask collection \\(Dataset\\)"):
        _model().fit(dataset)
    # A Delayed answers every attribute, to_dask_array too: refused by its type.
    with pytest.raises(TypeError, match="lazy Dask collection \\(Delayed"):
        _model().fit(dask.delayed(X))
