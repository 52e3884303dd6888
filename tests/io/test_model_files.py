"""Model files: round trips, atomic writes, and one clear error for every bad file."""

import io
import json
import os
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dask_biglearn as db
from dask_biglearn.cli import main
from dask_biglearn.io import ModelFileError, read_model
from dask_biglearn.io.files import ARRAYS_NAME, META_NAME, write_archive


@pytest.fixture(scope="module")
def fitted():
    X = np.random.default_rng(0).normal(size=(400, 3))
    return X, {
        "biglearn": db.BigLearnGaussianMixture(3, max_iter=10, n_init=2, random_state=0,
                                               moves=("split-merge", "reseed")).fit(X),
        "em": db.GaussianMixture(2, init_params="kmeans", random_state=1).fit(X),
    }


@pytest.fixture(scope="module")
def model_bytes(fitted, tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "model.dbl"
    fitted[1]["biglearn"].save(path)
    return path.read_bytes()


@pytest.mark.parametrize("name", ["biglearn", "em"])
def test_a_saved_model_loads_back_equal(fitted, tmp_path, name):
    X, models = fitted
    model = models[name]
    path = model.save(tmp_path / "m.dbl")
    loaded = db.load(path)
    assert type(loaded) is type(model)
    assert loaded.get_params() == model.get_params()
    for attr in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_array_equal(getattr(loaded, attr), getattr(model, attr))
    for attr in ("lower_bound_", "lower_bounds_", "n_iter_", "converged_", "n_data_passes_",
                 "bytes_read_", "n_features_in_"):
        assert getattr(loaded, attr) == getattr(model, attr)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_allclose(loaded.score_samples(X), model.score_samples(X), rtol=1e-15)
    if name == "biglearn":
        assert loaded.matchings_ == model.matchings_


def test_saving_replaces_atomically_and_leaves_no_temporary_file(fitted, tmp_path):
    _, models = fitted
    path = tmp_path / "m.dbl"
    models["em"].save(path)
    models["biglearn"].save(path)
    assert type(db.load(path)).__name__ == "BigLearnGaussianMixture"
    assert os.listdir(tmp_path) == ["m.dbl"]


def test_a_failed_write_leaves_the_old_file(fitted, tmp_path):
    _, models = fitted
    path = tmp_path / "m.dbl"
    models["em"].save(path)
    before = path.read_bytes()
    with pytest.raises(ValueError):  # NaN is not JSON: fails after the temporary file opened
        write_archive(path, {"format": "dask-biglearn", "x": float("nan")}, {})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.dbl"]


def _rezip(model_bytes, meta=None, arrays=None, extra=None, drop=None):
    with zipfile.ZipFile(io.BytesIO(model_bytes)) as z:
        members = {n: z.read(n) for n in z.namelist()}
    if meta is not None:
        members[META_NAME] = meta(json.loads(members[META_NAME]))
        members[META_NAME] = json.dumps(members[META_NAME]).encode()
    if arrays is not None:
        with np.load(io.BytesIO(members[ARRAYS_NAME])) as npz:
            content = arrays({k: npz[k] for k in npz.files})
        buf = io.BytesIO()
        np.savez(buf, **content)
        members[ARRAYS_NAME] = buf.getvalue()
    if extra:
        members.update(extra)
    for name in drop or ():
        members.pop(name)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


def _with(d, **changes):
    return {**d, **changes}


BAD_FILES = {
    "empty": lambda b: b"",
    "not a zip": lambda b: b"hello, world",
    "truncated": lambda b: b[: len(b) // 2],
    "flipped bytes": lambda b: b[:200] + bytes(x ^ 0xFF for x in b[200:400]) + b[400:],
    "foreign member": lambda b: _rezip(b, extra={"evil.pkl": b"\x80\x04"}),
    "no arrays": lambda b: _rezip(b, drop=[ARRAYS_NAME]),
    "bad json": lambda b: _rezip(b, extra={META_NAME: b"{not json"}),
    "no format": lambda b: _rezip(b, meta=lambda m: _with(m, format="other")),
    "newer format": lambda b: _rezip(b, meta=lambda m: _with(m, format_version=99)),
    "checkpoint kind": lambda b: _rezip(b, meta=lambda m: _with(m, kind="checkpoint")),
    "unknown estimator": lambda b: _rezip(b, meta=lambda m: _with(m, estimator="os.system")),
    "unknown parameter": lambda b: _rezip(b, meta=lambda m: _with(
        m, hyper_parameters={**m["hyper_parameters"], "__class__": 1})),
    "bad parameter": lambda b: _rezip(b, meta=lambda m: _with(
        m, hyper_parameters={**m["hyper_parameters"], "n_components": -1})),
    "object array": lambda b: _rezip(b, arrays=lambda a: _with(
        a, weights=np.array([object()] * 3, dtype=object))),
    "NaN mean": lambda b: _rezip(b, arrays=lambda a: _with(a, means=a["means"] * np.nan)),
    "wrong shape": lambda b: _rezip(b, arrays=lambda a: _with(a, means=a["means"][:2])),
    "not SPD": lambda b: _rezip(b, arrays=lambda a: _with(a, covariances=-a["covariances"])),
    "weights not a distribution": lambda b: _rezip(b, arrays=lambda a: _with(
        a, weights=a["weights"] * 3)),
    "means scaled by 1e300": lambda b: _rezip(b, arrays=lambda a: _with(
        a, means=a["means"] * 1e300)),
    "covariances scaled by 1e305": lambda b: _rezip(b, arrays=lambda a: _with(
        a, covariances=a["covariances"] * 1e305)),
    "negative n_iter_": lambda b: _rezip(b, meta=lambda m: _with(
        m, fitted={**m["fitted"], "n_iter_": -5})),
    "negative bytes_read_": lambda b: _rezip(b, meta=lambda m: _with(
        m, fitted={**m["fitted"], "bytes_read_": -1})),
    "huge n_data_passes_": lambda b: _rezip(b, meta=lambda m: _with(
        m, fitted={**m["fitted"], "n_data_passes_": 2**64})),
    "zero n_features_in_": lambda b: _rezip(b, meta=lambda m: _with(
        m, fitted={**m["fitted"], "n_features_in_": 0})),
    "n_components disagrees": lambda b: _rezip(b, meta=lambda m: _with(
        m, hyper_parameters={**m["hyper_parameters"], "n_components": 2})),
    "n_features_in_ disagrees": lambda b: _rezip(b, meta=lambda m: _with(
        m, fitted={**m["fitted"], "n_features_in_": 4})),
    "undeclared array": lambda b: _rezip(b, arrays=lambda a: _with(a, extra=np.zeros(3))),
}

#: What ``read_model`` itself (below the estimators) says of a model out of range.
OUT_OF_RANGE = {
    "means scaled by 1e300": "parameters are out of range",
    "covariances scaled by 1e305": "parameters are out of range",
    "negative n_iter_": "'n_iter_' is -5, out of range",
    "negative bytes_read_": "'bytes_read_' is -1, out of range",
    "huge n_data_passes_": "'n_data_passes_' is 18446744073709551616, out of range",
    "zero n_features_in_": "n_features_in_ is 0, not a positive integer",
    "n_components disagrees": "but n_components=2, n_features=3 and",
    "n_features_in_ disagrees": "but n_components=3, n_features=4 and",
    "undeclared array": "undeclared array 'extra'",
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_every_bad_file_gets_one_clear_error(model_bytes, tmp_path, case):
    path = tmp_path / "bad.dbl"
    path.write_bytes(BAD_FILES[case](model_bytes))
    with pytest.raises(ModelFileError) as info:
        db.load(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message


@pytest.mark.parametrize("case", sorted(OUT_OF_RANGE))
def test_read_model_refuses_parameters_out_of_range(model_bytes, tmp_path, case):
    path = tmp_path / "bad.dbl"
    path.write_bytes(BAD_FILES[case](model_bytes))
    with pytest.raises(ModelFileError) as info:
        read_model(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    assert OUT_OF_RANGE[case] in message


def test_a_model_of_large_but_sane_scale_loads_and_scores_finite(fitted, tmp_path):
    """Data in units of 1e100: means near 1e100, covariances near 1e200 are in range."""
    X, _ = fitted
    model = db.GaussianMixture(2, init_params="kmeans", random_state=1).fit(X * 1e100)
    loaded = db.load(model.save(tmp_path / "large.dbl"))
    assert np.all(np.isfinite(loaded.score_samples(X * 1e100)))
    np.testing.assert_array_equal(loaded.predict(X * 1e100), model.predict(X * 1e100))


def test_missing_files_and_directories_are_named(tmp_path):
    for path in [tmp_path / "nope.dbl", tmp_path]:
        with pytest.raises(ModelFileError, match="no such file|directory"):
            db.load(path)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_files_raise_only_our_error(model_bytes, tmp_path, data):
    """Random truncations, byte flips, insertions and random bytes: load either succeeds
    (a flip in padding) or raises ModelFileError, nothing else, never hangs."""
    kind = data.draw(st.sampled_from(["truncate", "flip", "insert", "random"]))
    blob = bytearray(model_bytes)
    if kind == "truncate":
        blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
    elif kind == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            i = data.draw(st.integers(0, len(blob) - 1))
            blob[i] ^= data.draw(st.integers(1, 255))
    elif kind == "insert":
        i = data.draw(st.integers(0, len(blob)))
        blob[i:i] = data.draw(st.binary(min_size=1, max_size=64))
    else:
        blob = bytearray(data.draw(st.binary(max_size=4096)))
    path = tmp_path / "fuzz.dbl"
    path.write_bytes(bytes(blob))
    try:
        db.load(path)
    except ModelFileError:
        pass
    assert main(["info", str(path)]) in (0, 1)  # never a traceback: 0, or one error line
