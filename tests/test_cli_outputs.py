"""The outputs of the command line (dask_biglearn.cli.outputs): never the input store, inside
it or around it; ``--overwrite`` replaces only what it says; every output checked before any
work and written all or nothing; a failed write names the output."""

import resource
import subprocess
import sys

import numpy as np
import pytest
import zarr

import dask_biglearn as db
from dask_biglearn.datasets import random_mixture, sample_mixture
from dask_biglearn.testing.cli import file_tree as _tree
from dask_biglearn.testing.cli import nonempty_lines as _lines
from dask_biglearn.testing.cli import run_cli as _run


def _store(path, X):
    zarr.open_group(str(path), mode="w").create_array("X", data=X, chunks=(1000, 3))
    return path


@pytest.fixture(scope="module")
def data():
    truth = random_mixture(3, 3, separation=4.0, random_state=1)
    X, _ = sample_mixture(*truth, 3000, random_state=2)
    return X, db.GaussianMixture(3, random_state=0).fit(X)


@pytest.fixture
def store(tmp_path, data):
    """A store of 3000 x 3 and a model of it, in a folder of their own."""
    X, model = data
    model.save(tmp_path / "m.dbl")
    return _store(tmp_path / "d.zarr", X)


@pytest.fixture
def sched(local_cluster):
    return ["--scheduler", local_cluster.scheduler_address]


@pytest.fixture
def no_work(monkeypatch):
    """Make any start of work (connecting to a cluster) an error the test sees."""
    from dask_biglearn.cli import commands, outputs

    def connect(*args, **kwargs):
        raise AssertionError("work started before the outputs were checked")

    monkeypatch.setattr(commands, "connect", connect)
    monkeypatch.setattr(outputs, "connect", connect)


# ---- never inside or around the input store (W1, L4) ----------------------------------------


def test_predict_refuses_an_out_inside_the_input_store_even_with_overwrite(store, sched,
                                                                           capsys, no_work):
    """``--out d.zarr/X --overwrite`` used to move the input's array aside and write
    predictions of zeros, exit 0."""
    before = _tree(store)
    code, _, err = _run(["predict", store.parent / "m.dbl", store, "--out", store / "X",
                         "--overwrite", *sched], capsys)
    assert code == 2, err
    assert _lines(err) == [(f"dask-biglearn predict: error: --out {store / 'X'} lies inside "
                           f"the input store {store}: choose an output outside it.")]
    assert _tree(store) == before


def test_predict_refuses_an_out_that_holds_the_input_store(tmp_path, data, sched, capsys,
                                                           no_work):
    X, model = data
    model.save(tmp_path / "m.dbl")
    outer = tmp_path / "outer.zarr"
    zarr.open_group(str(outer), mode="w")
    inner = _store(outer / "inner", X)
    before = _tree(outer)
    code, _, err = _run(["predict", tmp_path / "m.dbl", inner, "--out", outer, "--overwrite",
                         *sched], capsys)
    assert code == 2 and len(_lines(err)) == 1 and "holds the input store" in err, err
    assert _tree(outer) == before


def test_overwrite_replaces_a_zarr_group_never_a_zarr_array(tmp_path, store, sched, capsys,
                                                          no_work):
    """An array's ``zarr.json`` used to pass for a group's."""
    array = tmp_path / "array.zarr"
    zarr.create_array(str(array), data=np.arange(10.0), chunks=(5,))
    before = _tree(array)
    code, _, err = _run(["predict", tmp_path / "m.dbl", store, "--out", array, "--overwrite",
                         *sched], capsys)
    assert code == 1 and len(_lines(err)) == 1 and "is not a Zarr group" in err, err
    assert _tree(array) == before


@pytest.mark.parametrize("option,inside", [("--model", "X/zarr.json"),
                                           ("--checkpoint", "fit.ckpt")])
def test_fit_refuses_a_model_or_checkpoint_inside_the_input_store(store, sched, capsys,
                                                                  no_work, option, inside):
    """``--model d.zarr/X/zarr.json --overwrite`` used to replace the array's metadata with
    the model, exit 0."""
    before = _tree(store)
    outputs = {"--model": store.parent / "m2.dbl", option: store / inside}
    argv = ["fit", store, "--n-components", "2", "--method", "em", "--overwrite", *sched]
    for name, value in outputs.items():
        argv += [name, value]
    code, _, err = _run(argv, capsys)
    assert code == 2, err
    assert _lines(err) == [(f"dask-biglearn fit: error: {option} {store / inside} lies inside "
                           f"the input store {store}: choose an output outside it.")]
    assert _tree(store) == before and not (store.parent / "m2.dbl").exists()


# ---- predict on a full disk names --out (M4) --------------------------------------------------


def _limited_file_size(limit):
    """A ``preexec_fn`` for a process (and its children) that cannot write files larger than
    ``limit`` bytes: a disk that fills up, as writes see it (EFBIG)."""

    def limit_writes():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return limit_writes


@pytest.mark.skipif(not hasattr(resource, "RLIMIT_FSIZE"), reason="needs RLIMIT_FSIZE")
def test_predict_on_a_full_disk_names_the_output_and_leaves_nothing(tmp_path, data):
    """The workers of the embedded cluster write the chunks; a write that fails for lack of
    room used to be reported as an error of the input store."""
    X, model = data
    model.save(tmp_path / "m.dbl")
    big = np.tile(X, (20, 1))  # 60 000 rows: the responsibilities' chunks are ~24 kB each
    zarr.open_group(str(tmp_path / "d.zarr"), mode="w").create_array(
        "X", data=big, chunks=(10_000, 3))
    out = tmp_path / "p.zarr"
    done = subprocess.run(
        [sys.executable, "-m", "dask_biglearn", "predict", str(tmp_path / "m.dbl"),
         str(tmp_path / "d.zarr"), "--out", str(out), "--responsibilities", "--quiet",
         "--n-workers", "1"], capture_output=True, text=True, timeout=300, check=False,
        preexec_fn=_limited_file_size(16_000))
    assert done.returncode == 1, done.stderr
    assert _lines(done.stderr) == [(f"dask-biglearn predict: error: {out}: cannot write "
                                   f"(File too large).")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.zarr", "m.dbl"]


# ---- the demo's work folder (L3) --------------------------------------------------------------


@pytest.mark.parametrize("existing", ["data.zarr", "predictions.zarr"])
def test_the_demo_refuses_an_existing_output_before_writing_anything(tmp_path, data, capsys,
                                                                     existing):
    """It used to replace ``data.zarr`` and only then refuse ``predictions.zarr``."""
    workdir = tmp_path / "proj"
    workdir.mkdir()
    _store(workdir / existing, data[0])
    before = _tree(workdir)
    code, _, err = _run(["demo", "--workdir", workdir, "--n-samples", "2000", "--n-features",
                         "2", "--n-components", "2", "--chunk-rows", "1000", "--n-workers",
                         "1"], capsys)
    assert code == 1, err
    assert _lines(err) == [(f"dask-biglearn demo: error: {workdir / existing} exists: the demo "
                           f"replaces nothing; remove it or choose another --workdir.")]
    assert _tree(workdir) == before and [p.name for p in workdir.iterdir()] == [existing]


def test_the_demo_writes_its_work_folder_whole_and_names_the_rows_it_compared_on(
        tmp_path, sched, capsys):
    workdir = tmp_path / "proj"
    code, out, err = _run(["demo", "--workdir", workdir, "--n-samples", "3000",
                           "--n-features", "2", "--n-components", "2", "--chunk-rows", "1000",
                           "--subsample", "100000", "--em-max-iter", "2", *sched], capsys)
    assert code == 0, err
    assert "scikit-learn n_init=10 on 3000 rows" in out  # not "on 100000 rows"
    assert sorted(p.name for p in workdir.iterdir()) == ["data.zarr", "predictions.zarr"]
    assert zarr.open_group(str(workdir / "data.zarr"), mode="r")["X"].shape == (3000, 2)
