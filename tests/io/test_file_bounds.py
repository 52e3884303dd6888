"""What reading a file may allocate: bounded by the shapes it declares (format 2), by the size
of its members on disk (every format), and checked before anything is inflated. Every file
here is a real model file, rewritten member by member."""

import io
import json
import os
import subprocess
import sys
import textwrap
import tracemalloc
import zipfile

import numpy as np
import pytest
from numpy.lib import format as npy_format

import dask_biglearn as db
from dask_biglearn.io import FORMAT_VERSION, ModelFileError, read_model
from dask_biglearn.io import files as files_module
from dask_biglearn.io.files import ARRAYS_NAME, META_NAME, read_archive, write_document

MiB = 2**20


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    X = np.random.default_rng(0).normal(size=(300, 3))
    path = tmp_path_factory.mktemp("bounds") / "model.dbl"
    db.GaussianMixture(2, init_params="kmeans", random_state=0).fit(X).save(path)
    with zipfile.ZipFile(path) as z:
        meta = json.loads(z.read(META_NAME))
        with np.load(io.BytesIO(z.read(ARRAYS_NAME))) as npz:
            arrays = {name: npz[name] for name in npz.files}
    return path, meta, arrays


def _npy(array=None, *, shape=None, data=None, descr="<f8"):
    """A ``.npy`` member: an array's, or a header declaring ``shape`` over raw ``data``."""
    out = io.BytesIO()
    if array is not None:
        npy_format.write_array(out, np.asarray(array), allow_pickle=False)
        return out.getvalue()
    npy_format.write_array_header_1_0(out, {"descr": descr, "fortran_order": False,
                                            "shape": tuple(shape)})
    return out.getvalue() + data


def _write(path, meta, npy_members, *, pad=None, compression=zipfile.ZIP_DEFLATED):
    """Write a file of ``meta`` and the ``.npy`` members (by array name), streamed, with
    ``pad = (name, n_bytes)``: one more array member of that many zero bytes (its header
    saying so), never held in memory."""
    with zipfile.ZipFile(path, "w", compression=compression) as outer:
        outer.writestr(META_NAME, json.dumps(meta).encode())
        with (outer.open(ARRAYS_NAME, "w", force_zip64=True) as member,
              zipfile.ZipFile(member, "w") as npz):  # stored, as numpy.savez writes
            for name, data in npy_members.items():
                npz.writestr(f"{name}.npy", data)
            if pad is not None:
                name, n_bytes = pad
                with npz.open(f"{name}.npy", "w", force_zip64=True) as fh:
                    fh.write(_npy(shape=(n_bytes // 8,), data=b""))
                    chunk = bytes(MiB)
                    for start in range(0, n_bytes, MiB):
                        fh.write(chunk[: min(MiB, n_bytes - start)])
    return path


def _members(arrays):
    return {name: _npy(a) for name, a in arrays.items()}


def _peak_while_loading(path):
    """The load's error, and the most memory Python and NumPy held while it ran."""
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError) as info:
            db.load(path)
        return info.value, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _one_line_naming(error, path):
    message = str(error)
    return str(path) in message and "\n" not in message


def test_a_file_declares_the_shapes_of_its_arrays(model_file):
    path, meta, arrays = model_file
    assert FORMAT_VERSION == 3 and meta["format_version"] == 3
    assert meta["arrays"] == {name: list(a.shape) for name, a in arrays.items()}
    loaded = db.load(path)
    assert loaded.means_.shape == tuple(meta["arrays"]["means"])


def test_a_model_file_written_in_format_1_still_loads(model_file, tmp_path):
    """Format 1 (before 0.2) declared no shapes."""
    path, meta, arrays = model_file
    old = {k: v for k, v in meta.items() if k != "arrays"} | {"format_version": 1}
    old_path = _write(tmp_path / "old.dbl", old, _members(arrays))
    loaded, current = db.load(old_path), db.load(path)
    for attr in ("weights_", "means_", "covariances_", "lower_bounds_"):
        np.testing.assert_array_equal(getattr(loaded, attr), getattr(current, attr))
    assert read_archive(old_path, "model")[0]["format_version"] == 1


@pytest.mark.parametrize("version", [1, 2])
def test_a_npy_header_claiming_a_huge_array_is_refused_unallocated(model_file, tmp_path,
                                                                  version):
    """The means' header claims 2 GiB over 48 bytes of data: refused from the header, and
    nothing near that size is allocated (NumPy's reader allocates the claimed shape)."""
    _, meta, arrays = model_file
    members = _members(arrays)
    members["means"] = _npy(shape=(2**28,), data=arrays["means"].tobytes())
    if version == 1:
        meta = {k: v for k, v in meta.items() if k != "arrays"} | {"format_version": 1}
    bad = _write(tmp_path / "huge-header.dbl", meta, members)
    error, peak = _peak_while_loading(bad)
    assert peak < 4 * MiB
    assert _one_line_naming(error, bad)
    assert "means" in str(error)


def test_an_arrays_member_beyond_the_declared_shapes_is_refused_uninflated(model_file,
                                                                          tmp_path):
    """An undeclared 8 MiB array inside the arrays member: the member is larger than the
    declared shapes need, refused before it is inflated."""
    _, meta, arrays = model_file
    bad = _write(tmp_path / "padded.dbl", meta, _members(arrays), pad=("pad", 8 * MiB))
    error, peak = _peak_while_loading(bad)
    assert _one_line_naming(error, bad)
    assert "more than such a file holds" in str(error)
    assert peak < 4 * MiB


def test_a_zip_bomb_in_a_format_1_file_is_refused_uninflated(model_file, tmp_path):
    """Format 1 declares no shapes: a 128 MiB array of zeros (deflated to about 130 kB) is
    refused for inflating far beyond what float parameters compress to."""
    _, meta, arrays = model_file
    old = {k: v for k, v in meta.items() if k != "arrays"} | {"format_version": 1}
    members = _members(arrays)
    del members["lower_bounds"]
    bad = _write(tmp_path / "bomb.dbl", old, members, pad=("lower_bounds", 128 * MiB))
    assert os.path.getsize(bad) < MiB
    error, peak = _peak_while_loading(bad)
    assert _one_line_naming(error, bad)
    assert "would inflate" in str(error)
    assert peak < 4 * MiB


def test_a_json_document_that_inflates_too_much_is_refused(model_file, tmp_path):
    _, meta, arrays = model_file
    padded = meta | {"padding": " " * (8 * MiB)}
    bad = _write(tmp_path / "meta-bomb.dbl", padded, _members(arrays))
    error, peak = _peak_while_loading(bad)
    assert _one_line_naming(error, bad)
    assert META_NAME in str(error)
    assert peak < 4 * MiB


def test_info_on_a_zip_bomb_stays_small(model_file, tmp_path):
    """The issue's case: ``dask-biglearn info`` on a small crafted file, resident memory
    measured in a child process."""
    _, meta, arrays = model_file
    old = {k: v for k, v in meta.items() if k != "arrays"} | {"format_version": 1}
    members = _members(arrays)
    del members["lower_bounds"]
    bad = _write(tmp_path / "bomb.dbl", old, members, pad=("lower_bounds", 256 * MiB))
    script = textwrap.dedent(f"""
        import resource
        from dask_biglearn.cli import main
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        code = main(["info", {str(bad)!r}])
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(code, (after - before) // 1024)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)
    code, grown_mib = map(int, done.stdout.split()[-2:])
    assert code == 1, done.stdout + done.stderr
    assert grown_mib < 32, done.stdout + done.stderr
    assert str(bad) in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_stored_member_larger_than_the_file_is_refused(model_file, tmp_path):
    """A central directory may claim any compressed size: one that runs past the end of
    the file cannot make the inflation ratio look small."""
    path = model_file[0]
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        claimed = (z.getinfo(ARRAYS_NAME).compress_size * 1000).to_bytes(4, "little")
    # The arrays member's central directory entry: its compressed size is at bytes 20-24.
    entry = data.index(b"PK\x01\x02", data.index(b"PK\x01\x02") + 4)
    assert data[entry + 46:].startswith(ARRAYS_NAME.encode())
    data[entry + 20:entry + 24] = claimed
    bad = tmp_path / "liar.dbl"
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelFileError) as error:
        db.load(bad)
    assert _one_line_naming(error.value, bad)


def test_a_header_without_declared_shapes_is_refused_in_format_2(model_file, tmp_path):
    _, meta, arrays = model_file
    bad = _write(tmp_path / "undeclared.dbl", {k: v for k, v in meta.items() if k != "arrays"},
                 _members(arrays))
    with pytest.raises(ModelFileError, match="does not declare the arrays' shapes"):
        db.load(bad)


@pytest.mark.parametrize("declared", [{"means": [2, 2]}, {"means": [2, -3]},
                                      {"means": "big"}, {"extra": [1]}])
def test_arrays_must_be_exactly_as_declared(model_file, tmp_path, declared):
    _, meta, arrays = model_file
    bad = _write(tmp_path / "declared.dbl", meta | {"arrays": meta["arrays"] | declared},
                 _members(arrays))
    with pytest.raises(ModelFileError) as error:
        db.load(bad)
    assert _one_line_naming(error.value, bad)


def test_declared_shapes_that_disagree_with_the_parameters_are_refused_unread(model_file,
                                                                             tmp_path):
    """K = n_components and D = n_features_in_ fix every parameter's shape: a file whose
    declared shapes say otherwise is refused before its arrays member is inflated, even
    when its arrays match what it declares."""
    _, meta, arrays = model_file
    k, d = arrays["means"].shape
    bigger = {name: np.zeros((k, d + 1) if name == "means" else (k, d + 1, d + 1))
              for name in ("means", "covariances")}
    changed = arrays | bigger
    bad = _write(tmp_path / "wider.dbl",
                 meta | {"arrays": {n: list(a.shape) for n, a in changed.items()}},
                 _members(changed))
    with pytest.raises(ModelFileError, match=f"n_components={k}, n_features={d} and "):
        read_model(bad)


def test_a_writer_stores_a_member_that_would_inflate_beyond_what_readers_accept(
        tmp_path, monkeypatch):
    monkeypatch.setattr(files_module, "ARRAYS_INFLATE_FLOOR", 4096)
    path = write_document(tmp_path / "zeros.ckpt", "checkpoint", {},
                          {"zeros": np.zeros(100_000), "ones": np.ones(3)})
    with zipfile.ZipFile(path) as z:
        assert z.getinfo(ARRAYS_NAME).compress_type == zipfile.ZIP_STORED
        assert z.getinfo(META_NAME).compress_type == zipfile.ZIP_DEFLATED
    meta, arrays = read_archive(path, "checkpoint")
    assert meta["arrays"] == {"zeros": [100_000], "ones": [3]}
    np.testing.assert_array_equal(arrays["zeros"], np.zeros(100_000))


def test_a_big_real_model_is_within_the_bounds(tmp_path):
    """Real float parameters deflate by far less than the ratio a reader accepts."""
    rng = np.random.default_rng(1)
    d, k = 60, 40
    B = rng.normal(size=(k, d, d))
    arrays = {"weights": np.full(k, 1 / k), "means": rng.normal(size=(k, d)),
              "covariances": B @ np.swapaxes(B, 1, 2) + np.eye(d), "lower_bounds": np.zeros(5)}
    path = write_document(tmp_path / "big.ckpt", "checkpoint", {}, arrays)
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(ARRAYS_NAME)
    assert info.file_size < 4 * info.compress_size
    _, back = read_archive(path, "checkpoint")
    np.testing.assert_array_equal(back["covariances"], arrays["covariances"])
