"""``dask-biglearn impute MODEL STORE --out OUT``: the completed store equals the Python
transform (conditional means, or the seeded draw), with the input's chunks and dtype; the
outputs are as safe as ``predict``'s (never inside or around the input, never an existing one
without ``--overwrite``, all or nothing, a full disk names ``--out``, SIGTERM leaves
nothing)."""

import json
import os
import resource
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import zarr

import dask_biglearn as db
from dask_biglearn.datasets import random_mixture, sample_mixture
from dask_biglearn.testing.cli import file_tree as _tree
from dask_biglearn.testing.cli import nonempty_lines as _lines
from dask_biglearn.testing.cli import run_cli as _run


def _holed(n_samples, seed, fraction=0.15):
    truth = random_mixture(3, 3, separation=3.0, random_state=1)
    X, _ = sample_mixture(*truth, n_samples, random_state=seed)
    X[np.random.default_rng(seed).random(X.shape) < fraction] = np.nan
    X[7] = np.nan  # a row with nothing observed
    return X


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A store of 3000 x 3 (15% missing) in chunks of 700 rows, and a model fitted to it."""
    root = tmp_path_factory.mktemp("cli_impute")
    X = _holed(3000, seed=2)
    zarr.open_group(str(root / "d.zarr"), mode="w").create_array("X", data=X, chunks=(700, 3))
    db.GaussianMixture(3, random_state=0).fit(X).save(root / "m.dbl")
    return root


@pytest.fixture
def sched(local_cluster):
    return ["--scheduler", local_cluster.scheduler_address]


def _python(folder, **kwargs):
    X = zarr.open_group(str(folder / "d.zarr"), mode="r")["X"][:]
    imputer = db.GaussianMixtureImputer.from_model(db.load(folder / "m.dbl"), **kwargs)
    return X, imputer.transform(X)


# ---- what it writes -----------------------------------------------------------------------------


def test_the_written_store_is_the_python_transform_in_the_input_chunks_and_dtype(
        folder, tmp_path, sched, capsys):
    out = tmp_path / "imputed.zarr"
    code, stdout, err = _run(["impute", folder / "m.dbl", folder / "d.zarr", "--out", out,
                              *sched], capsys)
    assert code == 0, err
    written = zarr.open_group(str(out), mode="r")["X"]
    assert written.chunks == (700, 3) and written.dtype == np.float64
    X, want = _python(folder)
    got = written[:]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    observed = ~np.isnan(X)
    assert np.array_equal(got[observed], X[observed]) and not np.isnan(got).any()
    n_missing, n_rows = int(np.isnan(X).sum()), int(np.isnan(X).any(axis=1).sum())
    assert _lines(stdout)[-1].startswith(
        f"Wrote {out}: X (3000, 3) float64 with {n_missing} missing values in {n_rows} rows "
        f"set to their conditional means, in ")
    attrs = zarr.open_group(str(out), mode="r").attrs["dask_biglearn_impute"]
    assert attrs["sample_posterior"] is False and attrs["model"] == str(folder / "m.dbl")


def test_a_float32_store_keeps_its_dtype_its_feature_chunks_and_its_array_name(
        folder, tmp_path, sched, capsys):
    X = _holed(1000, seed=3).astype(np.float32)
    store = tmp_path / "f32.zarr"
    zarr.open_group(str(store), mode="w").create_array("readings", data=X, chunks=(300, 2))
    out = tmp_path / "imputed.zarr"
    code, _, err = _run(["impute", folder / "m.dbl", store, "--array", "readings", "--out",
                         out, "--quiet", *sched], capsys)
    assert code == 0, err
    group = zarr.open_group(str(out), mode="r")
    assert list(group.array_keys()) == ["readings"]
    written = group["readings"]
    assert written.chunks == (300, 2) and written.dtype == np.float32
    imputer = db.GaussianMixtureImputer.from_model(db.load(folder / "m.dbl"))
    np.testing.assert_allclose(written[:], imputer.transform(X), rtol=1e-6)


def test_sample_posterior_writes_the_python_draw_of_its_seed(folder, tmp_path, sched,
                                                             capsys):
    out = tmp_path / "draw.zarr"
    code, stdout, err = _run(["impute", folder / "m.dbl", folder / "d.zarr", "--out", out,
                              "--sample-posterior", "--seed", "5", "--json", *sched], capsys)
    assert code == 0, err
    X, want = _python(folder, sample_posterior=True, random_state=5)
    got = zarr.open_group(str(out), mode="r")["X"][:]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    _, means = _python(folder)
    missing = np.isnan(X)
    assert not np.any(got[missing] == means[missing])
    [line] = _lines(stdout)
    summary = json.loads(line)
    assert summary["sample_posterior"] is True and summary["seed"] == 5
    assert summary["n_missing"] == int(missing.sum())
    assert summary["n_incomplete_rows"] == int(missing.any(axis=1).sum())
    assert summary["chunks"] == [700, 3] and summary["dtype"] == "float64"
    assert summary["out"] == str(out) and summary["array"] == "X"


def test_overwrite_replaces_an_existing_output_group(folder, tmp_path, sched, capsys):
    out = tmp_path / "imputed.zarr"
    zarr.open_group(str(out), mode="w").create_array("old", data=np.zeros(3))
    code, _, err = _run(["impute", folder / "m.dbl", folder / "d.zarr", "--out", out,
                         "--overwrite", "--quiet", *sched], capsys)
    assert code == 0, err
    assert list(zarr.open_group(str(out), mode="r").array_keys()) == ["X"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imputed.zarr"]


# ---- refusals: one line, an exit code, nothing written ------------------------------------------


def _refusals(folder, tmp_path):
    model, store = folder / "m.dbl", folder / "d.zarr"
    (tmp_path / "exists.zarr").mkdir()
    zarr.open_group(str(tmp_path / "exists.zarr"), mode="w")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("mine")
    (tmp_path / "foreign.dbl").write_bytes(b"\x80\x04pickle")
    wide = tmp_path / "wide.zarr"
    zarr.open_group(str(wide), mode="w").create_array("X", data=np.ones((10, 5)))
    return {
        "out is the input store": (["--out", store, "--overwrite"], 2,
                                   "--out names the input store"),
        "out inside the input store": (["--out", store / "X", "--overwrite"], 2,
                                       "lies inside the input store"),
        "out holds the input store": (["--out", folder, "--overwrite"], 2,
                                      "holds the input store"),
        "out exists": (["--out", tmp_path / "exists.zarr"], 1, "exists"),
        "out is not a Zarr group": (["--out", tmp_path / "plain", "--overwrite"], 1,
                                    "is not a Zarr group"),
        "seed without a draw": (["--out", tmp_path / "o.zarr", "--seed", "3"], 2,
                                "--seed seeds the draw of --sample-posterior"),
        "another number of features": ([wide, "--out", tmp_path / "o.zarr"], 1,
                                       "has 5 features; the model was fitted on 3"),
        "a file that is not a model": ([model, "--out", tmp_path / "o.zarr"], 1,
                                       "not a readable"),
    }


REFUSALS = ["out is the input store", "out inside the input store",
            "out holds the input store", "out exists", "out is not a Zarr group",
            "seed without a draw", "another number of features", "a file that is not a model"]


@pytest.mark.parametrize("case", REFUSALS)
def test_a_bad_output_or_argument_is_one_line_an_exit_code_and_nothing_written(
        folder, tmp_path, sched, capsys, case):
    extra, want_code, match = _refusals(folder, tmp_path)[case]
    model, store = folder / "m.dbl", folder / "d.zarr"
    if case == "another number of features":
        argv = ["impute", model, *extra]
    elif case == "a file that is not a model":
        argv = ["impute", tmp_path / "foreign.dbl", store, *extra[1:]]
    else:
        argv = ["impute", model, store, *extra]
    before, before_input = _tree(tmp_path), _tree(folder)
    code, _stdout, err = _run([*argv, *sched], capsys)
    assert code == want_code, err
    [line] = _lines(err)
    assert line.startswith("dask-biglearn impute: error: ") and match in line, line
    assert _tree(tmp_path) == before and _tree(folder) == before_input
    assert not (tmp_path / "o.zarr").exists()


# ---- failures half way: a full disk, SIGTERM ----------------------------------------------------


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A store of 300 000 x 3 (15% missing) in chunks of 10 000 rows, and the model."""
    root = tmp_path_factory.mktemp("cli_impute_big")
    X = np.tile(_holed(30_000, seed=4), (10, 1))
    zarr.open_group(str(root / "d.zarr"), mode="w").create_array("X", data=X,
                                                                  chunks=(10_000, 3))
    db.GaussianMixture(3, random_state=0).fit(X[:30_000]).save(root / "m.dbl")
    return root


def _limited_file_size(limit):
    """A ``preexec_fn`` for a process (and its children) that cannot write files larger than
    ``limit`` bytes: a disk that fills up, as writes see it (EFBIG)."""

    def limit_writes():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return limit_writes


@pytest.mark.skipif(not hasattr(resource, "RLIMIT_FSIZE"), reason="needs RLIMIT_FSIZE")
def test_a_full_disk_names_the_output_and_leaves_nothing(big, tmp_path):
    out = tmp_path / "imputed.zarr"
    done = subprocess.run(
        [sys.executable, "-m", "dask_biglearn", "impute", str(big / "m.dbl"),
         str(big / "d.zarr"), "--out", str(out), "--quiet", "--n-workers", "1"],
        capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path,
        preexec_fn=_limited_file_size(16_000))
    assert done.returncode == 1, done.stderr
    assert _lines(done.stderr) == [(f"dask-biglearn impute: error: {out}: cannot write "
                                    f"(File too large).")]
    assert list(tmp_path.iterdir()) == []


def test_sigterm_during_the_write_exits_143_and_leaves_nothing(big, tmp_path):
    out = tmp_path / "imputed.zarr"
    job = subprocess.Popen(
        [sys.executable, "-m", "dask_biglearn", "impute", str(big / "m.dbl"),
         str(big / "d.zarr"), "--out", str(out), "--sample-posterior", "--n-workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while (not any(p.name.startswith(".imputed.zarr.") and p.name.endswith(".tmp")
                       for p in tmp_path.iterdir())
               and job.poll() is None and time.monotonic() < deadline):
            time.sleep(0.01)  # until the staging group exists: the write has begun
        os.kill(job.pid, signal.SIGTERM)
        _, err = job.communicate(timeout=120)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
    if job.returncode == 0:  # finished before the signal came: whole
        assert [p.name for p in tmp_path.iterdir()] == ["imputed.zarr"]
        assert zarr.open_group(str(out), mode="r")["X"].shape == (300_000, 3)
        pytest.skip("the write ended before SIGTERM came")
    assert job.returncode == 143, err
    assert _lines(err) == ["dask-biglearn impute: terminated"], err
    time.sleep(0.5)
    assert list(tmp_path.iterdir()) == []
