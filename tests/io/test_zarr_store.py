"""Zarr in and out, on real stores on disk."""

import dask.array as da
import numpy as np
import pytest
import zarr

import dask_biglearn as db
from dask_biglearn.io.zarr_store import StoreError, open_zarr_array, write_predictions


@pytest.fixture
def store(tmp_path):
    X = np.random.default_rng(0).normal(size=(3000, 3))
    path = tmp_path / "in.zarr"
    da.from_array(X, chunks=(700, 3)).to_zarr(str(path), component="X")
    return X, path


def test_a_group_s_array_opens_lazily_chunked_by_rows(store, tmp_path):
    X, path = store
    Xz = open_zarr_array(path)
    assert Xz.shape == X.shape and Xz.chunks[0][0] == 700 and Xz.numblocks[1] == 1
    np.testing.assert_array_equal(Xz.compute(), X)
    # a bare array, and one chunked by columns too
    bare = tmp_path / "bare.zarr"
    zarr.create_array(str(bare), shape=X.shape, chunks=(1000, 1), dtype="f4")[:] = X
    Xb = open_zarr_array(bare)
    assert Xb.numblocks == (3, 1) and Xb.dtype == np.float32
    # an fsspec URL
    np.testing.assert_array_equal(open_zarr_array(f"file://{path}").compute(), X)


def _make(tmp_path, name, **kw):
    path = tmp_path / name
    zarr.create_array(str(path), **kw)
    return path


def _group(path):
    zarr.open_group(str(path), mode="w")
    return path


def _pickled(path):
    import numcodecs

    zarr.create_array(str(path), shape=(10, 2), dtype="f8", zarr_format=2,
                      filters=[numcodecs.Pickle()])[:] = np.ones((10, 2))
    return path


BAD_STORES = {
    "pickle codec": lambda t: (_pickled(t / "p.zarr"), None, "unpickle"),
    "missing": lambda t: (t / "nope.zarr", None, "no such store"),
    "not zarr": lambda t: ((t / "plain").mkdir() or t / "plain", None, "not a readable"),
    "1-D": lambda t: (_make(t, "a.zarr", shape=(10,), dtype="f8"), None, "2-D"),
    "3-D": lambda t: (_make(t, "b.zarr", shape=(2, 2, 2), dtype="f8"), None, "2-D"),
    "strings": lambda t: (_make(t, "c.zarr", shape=(4, 2), dtype="U3"), None, "numeric"),
    "bool": lambda t: (_make(t, "d.zarr", shape=(4, 2), dtype="bool"), None, "numeric"),
    "empty": lambda t: (_make(t, "e.zarr", shape=(0, 2), dtype="f8"), None, "empty"),
    "no such array": lambda t: (_group(t / "g.zarr"), "X", "no array"),
}


@pytest.mark.parametrize("case", sorted(BAD_STORES))
def test_bad_stores_get_one_clear_error(tmp_path, case):
    path, array, match = BAD_STORES[case](tmp_path)
    with pytest.raises(StoreError, match=match) as info:
        open_zarr_array(path, array)
    assert "\n" not in str(info.value)


def test_predictions_are_written_chunk_by_chunk_and_atomically(store, tmp_path, client):
    X, path = store
    Xz = open_zarr_array(path)
    model = db.GaussianMixture(3, init_params="kmeans", random_state=0).fit(X)
    out = tmp_path / "pred.zarr"
    assert write_predictions(model, Xz, out, log_likelihood=True, responsibilities=True) == [
        "labels", "log_likelihood", "responsibilities"]
    group = zarr.open_group(str(out), mode="r")
    np.testing.assert_array_equal(group["labels"][:], model.predict(X))
    np.testing.assert_allclose(group["log_likelihood"][:], model.score_samples(X), rtol=1e-12)
    np.testing.assert_allclose(group["responsibilities"][:], model.predict_proba(X),
                               atol=1e-12)
    assert group["labels"].chunks == (700,)
    with pytest.raises(StoreError, match="exists"):
        write_predictions(model, Xz, out)
    # a write that fails leaves nothing behind
    bad = da.from_array(np.full((10, 3), np.nan), chunks=5)
    with pytest.raises(ValueError, match="NaN"):
        write_predictions(model, bad, tmp_path / "failed.zarr")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.zarr", "pred.zarr"]
