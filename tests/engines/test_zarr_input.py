"""Out-of-core fits straight from a Zarr store on disk, on a real LocalCluster."""

import dask.array as da
import numpy as np
import pytest

from dask_biglearn.testing import make_blobs, paper_biglearn

zarr = pytest.importorskip("zarr")


def test_fit_from_zarr_store_matches_numpy(tmp_path, client):
    X, _ = make_blobs(seed=21, n_samples=900, n_features=3, n_components=4)
    store = tmp_path / "features.zarr"
    da.from_array(X.astype(np.float32), chunks=(200, 3)).to_zarr(str(store))
    Xz = da.from_zarr(str(store))
    assert Xz.dtype == np.float32 and Xz.numblocks == (5, 1)
    kw = dict(n_components=4, max_iter=10, check_every=5, covariance_floor=1e-4, random_state=5)
    from_store = paper_biglearn(**kw).fit(Xz)
    in_memory = paper_biglearn(**kw).fit(X.astype(np.float32))
    assert from_store.matchings_ == in_memory.matchings_
    np.testing.assert_allclose(from_store.means_, in_memory.means_, atol=1e-8)
    np.testing.assert_allclose(from_store.covariances_, in_memory.covariances_, atol=1e-8)
    labels = from_store.predict(Xz).compute()
    np.testing.assert_array_equal(labels, in_memory.predict(X.astype(np.float32)))
