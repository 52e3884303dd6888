"""Batch jobs that never lie (issue 15): the command line refuses what it cannot do before it
starts (a bad --n-workers, outputs that exist or cannot be written, a checkpoint that would be
lost), says in one line what stopped it (naming the command, and the store it computed on),
handles SIGTERM as Ctrl-C with its own exit code, and says when a fit is degenerate."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
from test_cli import _run

import dask_biglearn as db
from dask_biglearn.cli import main
from dask_biglearn.testing.cli import nonempty_lines as _lines


def _listing(folder):
    return sorted(p.name for p in Path(folder).iterdir())


@pytest.fixture(scope="module")
def made(tmp_path_factory, local_cluster):
    """A store that a BigLearn fit takes some seconds on, a model of it, a store with an
    infinity and a store with no spread."""
    root = tmp_path_factory.mktemp("cli_batch")
    store = root / "data.zarr"
    assert main(["make-data", str(store), "--n-samples", "6000", "--n-features", "3",
                 "--n-components", "16", "--chunk-rows", "1000", "--separation", "0.5",
                 "--quiet", "--scheduler", local_cluster.scheduler_address]) == 0
    rng = np.random.default_rng(0)
    model = db.GaussianMixture(2, random_state=0).fit(rng.normal(size=(2000, 3)))
    model.save(root / "model.dbl")
    X = rng.normal(size=(3000, 3))
    X[1234, 1] = np.inf
    da.from_array(X, chunks=(1000, 3)).to_zarr(str(root / "inf.zarr"), component="X")
    da.full((3000, 2), 5.0, chunks=(1000, 2)).to_zarr(str(root / "flat.zarr"), component="X")
    return root, store


@pytest.fixture
def sched(local_cluster):
    return ["--scheduler", local_cluster.scheduler_address]


def _fit(store, model, *extra):
    return ["fit", str(store), "--n-components", "2", "--method", "em", "--max-iter", "20",
            "--model", str(model), "--quiet", *map(str, extra)]


# ---- 4. --n-workers below 1 ---------------------------------------------------------------------


@pytest.mark.parametrize("command,n_workers", [("fit", "0"), ("predict", "-1"),
                                               ("make-data", "0")])
def test_n_workers_below_one_is_refused_at_once(made, tmp_path, command, n_workers):
    """It used to start a cluster without workers and wait for them forever."""
    root, store = made
    argv = {"fit": _fit(store, tmp_path / "m.dbl"),
            "predict": ["predict", root / "model.dbl", store, "--out", tmp_path / "p.zarr"],
            "make-data": ["make-data", tmp_path / "d.zarr", "--n-samples", "100",
                          "--n-features", "2", "--n-components", "2"]}[command]
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "dask_biglearn", *map(str, argv),
                           "--n-workers", n_workers], capture_output=True, text=True,
                          timeout=90, check=False)
    assert done.returncode == 2, done.stderr
    assert _lines(done.stderr) == [(f"dask-biglearn {command}: error: argument --n-workers: "
                                    f"expected a positive integer, got {n_workers}")]
    assert time.monotonic() - started < 60
    assert _listing(tmp_path) == []


def test_n_workers_below_one_is_refused_with_a_scheduler_too(made, tmp_path, sched, capsys):
    _, store = made
    code, _, err = _run([*_fit(store, tmp_path / "m.dbl"), "--n-workers", "0", *sched],
                        capsys)
    assert code == 2 and "--n-workers" in err and len(_lines(err)) == 1


# ---- 5. SIGTERM -----------------------------------------------------------------------------------


def test_sigterm_during_a_fit_exits_143_removes_temporaries_and_keeps_the_checkpoint(
        made, tmp_path, sched, capsys):
    """A real ``python -m dask_biglearn fit`` on its own LocalCluster, SIGTERMed by process
    id once its checkpoint exists: exit code 143, one line, no temporary file, no model, and
    the checkpoint resumes."""
    from dask_biglearn.io.files import read_archive

    _, store = made
    model, checkpoint = tmp_path / "m.dbl", tmp_path / "fit.ckpt"
    fit = ["fit", str(store), "--n-components", "16", "--n-init", "4", "--max-iter", "100000",
           "--seed", "1", "--model", str(model), "--checkpoint", str(checkpoint),
           "--checkpoint-every", "1", "--quiet"]
    job = subprocess.Popen([sys.executable, "-m", "dask_biglearn", *fit, "--n-workers", "1"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           cwd=tmp_path, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not checkpoint.exists() and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # a few checkpoints in
        assert job.poll() is None, "the fit ended before it could be terminated"
        os.kill(job.pid, signal.SIGTERM)
        _, err = job.communicate(timeout=120)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
    assert job.returncode == 143, err
    assert _lines(err) == ["dask-biglearn fit: terminated"], err
    assert _listing(tmp_path) == ["fit.ckpt"]  # no model, no .tmp, no leftovers
    read_archive(checkpoint, "checkpoint")  # whole and ours
    code, out, _ = _run(["info", str(checkpoint)], capsys)  # how far it got
    assert code == 0 and "checkpoint of a BigLearnGaussianMixture fit, 16 components" in out
    assert "at iteration" in out or "complete" in out
    code, _, err = _run([*fit, "--resume", *sched], capsys)
    assert code == 0, err
    assert db.load(model).n_components == 16


def test_one_command_a_requeued_job_can_repeat(made, tmp_path, sched, capsys):
    """``fit --checkpoint C --resume --overwrite``: with no checkpoint it starts afresh and
    says so; run again (the job requeued after it ended) it resumes the ended fit, says
    from where, and saves the same model; ``info`` reads the checkpoint."""
    import json

    _, store = made
    model, checkpoint = tmp_path / "m.dbl", tmp_path / "fit.ckpt"
    job = ["fit", str(store), "--n-components", "3", "--method", "em", "--max-iter", "15",
           "--model", str(model), "--checkpoint", str(checkpoint), "--resume", "--overwrite",
           *sched]
    code, out, err = _run(job, capsys)
    assert code == 0, err
    assert f"No checkpoint at {checkpoint} yet: starting afresh" in out
    first = db.load(model)
    code, out, err = _run([*job, "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["resumed_from"]["finished"]
    np.testing.assert_array_equal(db.load(model).means_, first.means_)
    assert summary["n_data_passes"] > first.n_data_passes_  # both runs' passes counted
    code, out, _ = _run(["info", str(checkpoint), "--json"], capsys)
    described = json.loads(out)
    assert code == 0 and described["kind"] == "checkpoint"
    assert described["progress"]["finished"] and described["estimator"] == "GaussianMixture"


def test_sigterm_while_the_model_is_written_leaves_no_temporary_file(made, tmp_path, sched,
                                                                      capsys, monkeypatch):
    """Outside the cluster's block too (the model is saved after it): the atomic writer's
    temporary file is removed, the command ends with 143 and one line, and the handler that
    was there before is back."""
    _, store = made

    class NotOurs(Exception):
        pass

    def before(signum, frame):  # what SIGTERM did before main: main must restore it
        raise NotOurs("main did not handle SIGTERM")

    real_fsync = os.fsync

    def fsync_then_sigterm(fd):
        real_fsync(fd)
        if not os.readlink(f"/proc/self/fd/{fd}").endswith(".probe"):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1.0)  # the handler runs here

    previous = signal.signal(signal.SIGTERM, before)
    try:
        monkeypatch.setattr(os, "fsync", fsync_then_sigterm)
        code, _, err = _run([*_fit(store, tmp_path / "m.dbl"), *sched], capsys)
        monkeypatch.undo()
        assert signal.getsignal(signal.SIGTERM) is before
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert code == 143, err
    assert _lines(err) == ["dask-biglearn fit: terminated"]
    assert _listing(tmp_path) == []


def test_ctrl_c_keeps_130_and_names_the_command(made, tmp_path, capsys, monkeypatch):
    from dask_biglearn.io import zarr_store

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(zarr_store, "open_zarr_array", interrupted)
    code, _, err = _run(_fit(made[1], tmp_path / "m.dbl"), capsys)
    assert code == 130 and _lines(err) == ["dask-biglearn fit: interrupted"]


# ---- 6. outputs checked before any work -------------------------------------------------------


def _no_work(monkeypatch):
    """Make any start of work (connecting to a cluster) an error the test sees."""
    from dask_biglearn.cli import commands, outputs

    def connect(*args, **kwargs):
        raise AssertionError("work started before the outputs were checked")

    monkeypatch.setattr(commands, "connect", connect)  # make-data, predict
    monkeypatch.setattr(outputs, "connect", connect)  # fit, select (outputs.run_fit)


def _unwritable_cases(root, store, tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "adir").mkdir()
    nowhere = Path("/sys/dask-biglearn-test")  # /sys: nothing can be created there, even by root
    model = root / "model.dbl"
    return {
        "model in a folder that cannot be written": (
            _fit(store, nowhere / "m.dbl"), nowhere / "m.dbl", "cannot write"),
        "model is a directory": (_fit(store, tmp_path / "adir"), tmp_path / "adir",
                                 "is a directory"),
        "model under a file": (_fit(store, tmp_path / "afile" / "m.dbl"),
                               tmp_path / "afile" / "m.dbl", "not a directory"),
        "checkpoint in a folder that cannot be written": (
            _fit(store, tmp_path / "m.dbl", "--checkpoint", nowhere / "c.ckpt"),
            nowhere / "c.ckpt", "cannot write"),
        "checkpoint is a directory": (
            _fit(store, tmp_path / "m.dbl", "--checkpoint", tmp_path / "adir"),
            tmp_path / "adir", "is a directory"),
        "predictions in a folder that cannot be written": (
            ["predict", str(model), str(store), "--out", str(nowhere / "p.zarr")],
            nowhere / "p.zarr", "cannot write"),
        "predictions under a file": (
            ["predict", str(model), str(store), "--out", str(tmp_path / "afile" / "p.zarr")],
            tmp_path / "afile" / "p.zarr", "not a directory"),
        "make-data in a folder that cannot be written": (
            ["make-data", str(nowhere / "d.zarr"), "--n-samples", "100", "--n-features", "2",
             "--n-components", "2"], nowhere / "d.zarr", "cannot write"),
    }


UNWRITABLE = ["model in a folder that cannot be written", "model is a directory",
              "model under a file", "checkpoint in a folder that cannot be written",
              "checkpoint is a directory", "predictions in a folder that cannot be written",
              "predictions under a file", "make-data in a folder that cannot be written"]


@pytest.mark.skipif(not os.path.isdir("/sys"), reason="needs Linux's /sys")
@pytest.mark.parametrize("case", UNWRITABLE)
def test_outputs_that_cannot_be_written_are_refused_before_any_work(made, tmp_path, capsys,
                                                                   monkeypatch, case):
    root, store = made
    argv, path, match = _unwritable_cases(root, store, tmp_path)[case]
    before = _listing(tmp_path)
    _no_work(monkeypatch)
    code, _, err = _run(argv, capsys)
    assert code == 1, err
    assert len(_lines(err)) == 1 and match in err and str(path) in err, err
    assert ".tmp" not in err and ".probe" not in err
    assert _listing(tmp_path) == before


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root writes in a read-only folder")
def test_a_read_only_folder_is_refused_before_the_fit(made, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        _no_work(monkeypatch)
        code, _, err = _run(_fit(made[1], folder / "m.dbl"), capsys)
    finally:
        folder.chmod(0o755)
    assert code == 1 and "cannot write" in err and str(folder / "m.dbl") in err, err
    assert _listing(folder) == []


@pytest.mark.parametrize("full", ["model", "checkpoint"])
def test_an_output_that_cannot_be_written_during_the_fit_is_named_not_its_temporary_file(
        made, tmp_path, sched, capsys, monkeypatch, full):
    """A disk that fills up during the fit: the line names the model (saved after the fit)
    or the checkpoint (written during it), not the temporary file that failed."""
    import tempfile

    real_mkstemp = tempfile.mkstemp
    model, checkpoint = tmp_path / "m.dbl", tmp_path / "fit.ckpt"
    failing = {"model": model, "checkpoint": checkpoint}[full]

    def no_space(*args, **kwargs):
        if kwargs.get("suffix") == ".tmp" and kwargs.get("prefix") == f".{failing.name}.":
            name = os.path.join(kwargs["dir"], f"{kwargs['prefix']}xyz.tmp")
            raise OSError(28, "No space left on device", name)
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", no_space)
    code, _, err = _run([*_fit(made[1], model, "--checkpoint", checkpoint), *sched], capsys)
    assert code == 1
    what = "cannot write the model" if full == "model" else "cannot write"
    assert _lines(err) == [(f"dask-biglearn fit: error: {failing}: {what} "
                            f"(No space left on device).")]


# ---- 7. no silent overwrites --------------------------------------------------------------------


def test_fit_refuses_an_existing_model_unless_overwrite(made, tmp_path, sched, capsys):
    model = tmp_path / "m.dbl"
    model.write_bytes(b"precious")
    code, _, err = _run([*_fit(made[1], model), *sched], capsys)
    assert code == 1 and "exists" in err and "--overwrite" in err and len(_lines(err)) == 1
    assert model.read_bytes() == b"precious"
    code, _, err = _run([*_fit(made[1], model), "--overwrite", *sched], capsys)
    assert code == 0, err
    assert db.load(model).n_components == 2
    assert _listing(tmp_path) == ["m.dbl"]


def test_a_checkpoint_is_not_overwritten_without_resume(made, tmp_path, sched, capsys):
    checkpoint = tmp_path / "fit.ckpt"
    code, _, err = _run([*_fit(made[1], tmp_path / "a.dbl", "--checkpoint", checkpoint),
                         *sched], capsys)
    assert code == 0, err
    saved = checkpoint.read_bytes()
    code, _, err = _run([*_fit(made[1], tmp_path / "b.dbl", "--checkpoint", checkpoint,
                               "--seed", "5"), *sched], capsys)
    assert code == 1 and "--resume" in err and str(checkpoint) in err and len(_lines(err)) == 1
    assert checkpoint.read_bytes() == saved and not (tmp_path / "b.dbl").exists()
    notes = tmp_path / "notes.txt"  # any file
    notes.write_text("mine")
    code, _, err = _run([*_fit(made[1], tmp_path / "b.dbl", "--checkpoint", notes), *sched],
                        capsys)
    assert code == 1 and "exists" in err and notes.read_text() == "mine"
    code, _, err = _run([*_fit(made[1], tmp_path / "b.dbl", "--checkpoint", checkpoint,
                               "--seed", "5", "--overwrite"), *sched], capsys)
    assert code == 0, err
    assert checkpoint.read_bytes() != saved


def test_a_fit_that_fails_before_its_first_checkpoint_puts_the_old_one_back(made, tmp_path,
                                                                             sched, capsys):
    """``--overwrite`` moves the old checkpoint aside (the estimator never overwrites one):
    a fit that fails before it writes its own leaves the old one where it was."""
    checkpoint = tmp_path / "fit.ckpt"
    assert _run([*_fit(made[1], tmp_path / "a.dbl", "--checkpoint", checkpoint), *sched],
                capsys)[0] == 0
    saved = checkpoint.read_bytes()
    code, _, err = _run([*_fit(made[0] / "inf.zarr", tmp_path / "b.dbl", "--checkpoint",
                               checkpoint, "--overwrite"), *sched], capsys)
    assert code == 1 and "infinity" in err, err
    assert checkpoint.read_bytes() == saved
    assert _listing(tmp_path) == ["a.dbl", "fit.ckpt"]


def test_model_and_checkpoint_naming_the_same_file_is_an_error(made, tmp_path, sched, capsys):
    same = tmp_path / "x.dbl"
    code, _, err = _run([*_fit(made[1], same, "--checkpoint", tmp_path / "." / "x.dbl"),
                         *sched], capsys)
    assert code == 2 and "the same file" in err and len(_lines(err)) == 1
    assert _listing(tmp_path) == []


def test_resume_needs_a_checkpoint_option_and_a_checkpoint_of_ours(made, tmp_path, sched,
                                                                   capsys):
    """--resume without --checkpoint, or over a file that is not a checkpoint, is one line
    before any work (with no file at all it starts afresh: the requeue test above)."""
    code, _, err = _run([*_fit(made[1], tmp_path / "m.dbl", "--resume"), *sched], capsys)
    assert code == 2 and "--resume needs --checkpoint" in err
    (tmp_path / "not.ckpt").write_text("not a checkpoint")
    code, _, err = _run([*_fit(made[1], tmp_path / "m.dbl", "--checkpoint",
                               tmp_path / "not.ckpt", "--resume"), *sched], capsys)
    assert code == 1 and "not a readable dask_biglearn file" in err
    assert _listing(tmp_path) == ["not.ckpt"]


def test_predict_and_make_data_replace_only_with_overwrite(made, tmp_path, sched, capsys):
    import zarr

    root, store = made
    out = tmp_path / "p.zarr"
    predict = ["predict", str(root / "model.dbl"), str(store), "--out", str(out), "--quiet",
               *sched]
    assert _run([*predict, "--log-likelihood"], capsys)[0] == 0
    code, _, err = _run(predict, capsys)
    assert code == 1 and "exists" in err and "--overwrite" in err
    assert "log_likelihood" in zarr.open_group(str(out), mode="r")
    code, _, err = _run([*predict, "--overwrite"], capsys)
    assert code == 0, err
    assert "log_likelihood" not in zarr.open_group(str(out), mode="r")  # the new one
    made_data = ["make-data", str(out), "--n-samples", "200", "--n-features", "2",
                 "--n-components", "2", "--quiet", *sched]
    assert _run(made_data, capsys)[0] == 1
    code, _, err = _run([*made_data, "--overwrite"], capsys)
    assert code == 0, err
    assert zarr.open_group(str(out), mode="r")["X"].shape == (200, 2)
    assert _listing(tmp_path) == ["p.zarr"]  # nothing put aside is left


def test_overwrite_never_removes_what_is_not_a_zarr_group_nor_the_input(made, tmp_path, sched,
                                                                         capsys):
    root, store = made
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years")
    predict = ["predict", str(root / "model.dbl"), str(store), "--quiet", "--overwrite", *sched]
    code, _, err = _run([*predict, "--out", str(folder)], capsys)
    assert code == 1 and "not a Zarr group" in err
    assert (folder / "thesis.tex").read_text() == "years"
    code, _, err = _run([*predict, "--out", str(store)], capsys)
    assert code == 2 and "input store" in err
    assert store.exists() and (store / "X").exists()


def test_a_failed_overwrite_puts_the_old_output_back(made, tmp_path, sched, capsys):
    import zarr

    root, store = made
    out = tmp_path / "p.zarr"
    model = ["predict", str(root / "model.dbl")]
    assert _run([*model, str(store), "--out", str(out), "--quiet", *sched], capsys)[0] == 0
    before = zarr.open_group(str(out), mode="r")["labels"][:]
    code, _, err = _run([*model, str(root / "inf.zarr"), "--out", str(out), "--overwrite",
                         "--quiet", *sched], capsys)
    assert code == 1 and "infinity" in err, err
    np.testing.assert_array_equal(zarr.open_group(str(out), mode="r")["labels"][:], before)
    assert _listing(tmp_path) == ["p.zarr"]


# ---- 9. degenerate fits and fits that did not converge are said --------------------------------


def test_a_degenerate_fit_says_so_in_one_line_and_exits_0(made, tmp_path, sched, capsys):
    root, _ = made
    flat = root / "flat.zarr"
    code, out, err = _run([*_fit(flat, tmp_path / "m.dbl"), *sched], capsys)
    assert code == 0 and out == ""
    lines = _lines(err)
    assert lines and all(line.startswith("dask-biglearn fit: warning: ") for line in lines)
    assert any("no spread" in line for line in lines), err
    assert len(lines) == len(set(lines))
    code, out, err = _run([*_fit(flat, tmp_path / "j.dbl"), "--json", *sched], capsys)
    summary = json.loads(out)
    assert code == 0 and err == ""
    assert any("no spread" in note for note in summary["warnings"])
    assert all("\n" not in note for note in summary["warnings"])


def test_a_fit_that_did_not_converge_says_so(made, tmp_path, sched, capsys):
    argv = ["fit", str(made[1]), "--n-components", "3", "--method", "em", "--max-iter", "1",
            "--model", str(tmp_path / "m.dbl"), *sched]
    code, out, err = _run(argv, capsys)
    assert code == 0 and "Saved" in out
    assert _lines(err) == [("dask-biglearn fit: warning: Best performing initialization did "
                            "not converge. Try different init parameters, or increase "
                            "max_iter, tol, or check for degenerate data (EM ran max_iter=1 "
                            "iterations, tol=0.001).")]
    code, out, err = _run([*argv[:-3], str(tmp_path / "j.dbl"), "--json", *sched], capsys)
    assert code == 0 and err == ""
    assert ["did not converge" in note for note in json.loads(out)["warnings"]] == [True]
    code, out, err = _run([*_fit(made[1], tmp_path / "c.dbl", "--max-iter", "200"), *sched],
                          capsys)
    assert code == 0 and out == "" and err == ""  # a fit that converged says nothing


# ---- 3. one line, naming the command and the store ---------------------------------------------


@pytest.mark.parametrize("command", ["fit", "predict"])
def test_an_error_computing_on_a_store_names_the_store(made, tmp_path, sched, capsys,
                                                       command):
    root, _ = made
    inf = root / "inf.zarr"
    argv = {"fit": _fit(inf, tmp_path / "m.dbl"),
            "predict": ["predict", str(root / "model.dbl"), str(inf), "--out",
                        str(tmp_path / "p.zarr")]}[command]
    code, _, err = _run([*argv, *sched], capsys)
    assert code == 1
    [line] = _lines(err)
    assert line.startswith(f"dask-biglearn {command}: error: {inf}: ") and "infinity" in line
    time.sleep(0.5)
    assert _listing(tmp_path) == []


@pytest.mark.parametrize("raised,line", [
    (asyncio.CancelledError(), "CancelledError"),
    (RuntimeError("first line\n  second\nthird"), "first line"),
], ids=["CancelledError", "multi-line"])
def test_any_exception_is_one_line_naming_the_command(made, tmp_path, capsys, monkeypatch,
                                                      raised, line):
    from dask_biglearn.io import zarr_store

    def fails(*args, **kwargs):
        raise raised

    monkeypatch.setattr(zarr_store, "open_zarr_array", fails)
    code, _, err = _run(_fit(made[1], tmp_path / "m.dbl"), capsys)
    assert code == 1 and _lines(err) == [f"dask-biglearn fit: error: {line}"]


# ---- 8. a store still being written -------------------------------------------------------------


def test_a_store_with_a_missing_chunk_is_refused_unless_asked(made, tmp_path, sched, capsys):
    import shutil

    _, store = made
    partial = tmp_path / "partial.zarr"
    shutil.copytree(store, partial)
    for chunk in (partial / "X" / "c").rglob("*"):
        if chunk.is_file() and chunk.parent.name == "2":  # row chunk 2 not written yet
            chunk.unlink()
    code, _, err = _run([*_fit(partial, tmp_path / "m.dbl"), *sched], capsys)
    assert code == 1 and len(_lines(err)) == 1, err
    assert "partial.zarr" in err and "chunk (2, 0)" in err and "missing" in err
    assert not (tmp_path / "m.dbl").exists()
    code, _, err = _run([*_fit(partial, tmp_path / "m.dbl"), "--allow-missing-chunks", *sched],
                        capsys)
    assert code == 0, err


def test_every_start_of_the_estimators_is_a_choice_of_fit(made, tmp_path, sched, capsys):
    from dask_biglearn.initialization import INIT_METHODS

    _, store = made
    parser_choices = None
    from dask_biglearn.cli import build_parser

    for action in build_parser()._subparsers._group_actions[0].choices["fit"]._actions:
        if action.dest == "init":
            parser_choices = set(action.choices)
    assert parser_choices == set(INIT_METHODS)
    code, _, err = _run([*_fit(store, tmp_path / "m.dbl", "--init", "kmeans-pursuit",
                               "--n-init", "2"), *sched], capsys)
    assert code == 0, err
    assert db.load(tmp_path / "m.dbl").init_params == "kmeans-pursuit"


# ---- the red team's data errors (M1, chunks named, make-data's warning) ----------------------


def test_all_zero_sample_weights_say_so_not_that_a_chunk_is_missing(made, tmp_path, sched,
                                                                     capsys):
    """Zarr stores no chunk of an all-zero array: that used to read as ``chunk (0,) of array
    'w' is missing``."""
    import zarr

    X = np.random.default_rng(0).normal(size=(2000, 2))
    store = tmp_path / "z.zarr"
    group = zarr.open_group(str(store), mode="w")
    group.create_array("X", data=X, chunks=(500, 2))
    group.create_array("w", data=np.zeros(2000), chunks=(500,))
    for allow in ([], ["--allow-missing-chunks"]):
        code, _, err = _run([*_fit(store, tmp_path / "m.dbl", "--sample-weight", "w", *allow),
                             *sched], capsys)
        assert code == 1
        assert _lines(err) == [(f"dask-biglearn fit: error: {store}: --sample-weight w: all "
                                f"weights zero (the array stores no chunk, so every weight "
                                f"reads as its fill value 0): nothing to fit.")]
        assert not (tmp_path / "m.dbl").exists()


@pytest.mark.parametrize("command", ["fit", "predict"])
def test_an_infinity_in_the_data_names_its_chunk(made, tmp_path, sched, capsys, command):
    root, _ = made
    inf = root / "inf.zarr"  # an infinity in row 1234, chunks of 1000 rows
    argv = {"fit": _fit(inf, tmp_path / "m.dbl"),
            "predict": ["predict", str(root / "model.dbl"), str(inf), "--out",
                        str(tmp_path / "p.zarr")]}[command]
    code, _, err = _run([*argv, *sched], capsys)
    assert code == 1
    [line] = _lines(err)
    assert line == (f"dask-biglearn {command}: error: {inf}: chunk (1, 0) of array 'X' (rows "
                    f"1000 to 1999) holds infinity."), line


def test_a_chunk_that_cannot_be_read_is_named(made, tmp_path, sched, capsys):
    import shutil

    _, store = made
    broken = tmp_path / "broken.zarr"
    shutil.copytree(store, broken)
    chunk = broken / "X" / "c" / "4" / "0"
    chunk.write_bytes(chunk.read_bytes()[:50])  # cut short
    code, _, err = _run([*_fit(broken, tmp_path / "m.dbl"), *sched], capsys)
    assert code == 1
    [line] = _lines(err)
    assert line.startswith(f"dask-biglearn fit: error: {broken}: chunk (4, 0) of array 'X' "
                           f"(rows 4000 to 4999) cannot be read: "), line
    assert line.count("cannot be read") == 1 and line.endswith("."), line
    assert not (tmp_path / "m.dbl").exists()


def test_make_data_says_nothing_of_the_graph_it_sends(tmp_path, sched, capsys):
    """distributed's "Sending large graph" warning (the true parameters travel in the graph)
    used to reach stderr."""
    import warnings

    import dask.config

    with dask.config.set({"distributed.admin.large-graph-warning-threshold": "1B"}), \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, _, err = _run(["make-data", str(tmp_path / "d.zarr"), "--n-samples", "100",
                             "--n-features", "3", "--n-components", "2", "--quiet", *sched],
                            capsys)
    assert code == 0 and err == ""
    assert not [w for w in caught if "Sending large graph" in str(w.message)]
