"""``dask-biglearn select``: the sweep from a Zarr store, on the session's cluster."""

import argparse
import json

import numpy as np
import pytest

from dask_biglearn import load
from dask_biglearn.cli import main
from dask_biglearn.cli.select import parse_components
from dask_biglearn.datasets import random_mixture, sample_mixture
from dask_biglearn.testing.cli import nonempty_lines as _lines


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    import zarr

    truth = random_mixture(3, 5, separation=4.0, random_state=2)
    X, _ = sample_mixture(*truth, 4000, random_state=3)
    path = tmp_path_factory.mktemp("select") / "x.zarr"
    zarr.open_group(str(path), mode="w").create_array("X", data=X, chunks=(1000, 3))
    return path


def test_select_prints_the_table_saves_the_best_and_draws_it(store, tmp_path, local_cluster,
                                                            capsys):
    model, plot = tmp_path / "best.dbl", tmp_path / "sel.png"
    code = main(["select", str(store), "--n-components", "3:7:2", "--covariance-type",
                 "full,spherical", "--method", "em", "--n-init", "3", "--model", str(model),
                 "--plot", str(plot), "--json", "--scheduler", local_cluster.scheduler_address])
    out = capsys.readouterr().out
    assert code == 0
    summary = json.loads(out)
    assert summary["best"]["n_components"] == 5
    assert [(r["n_components"], r["covariance_type"]) for r in summary["candidates"]] == [
        (3, "full"), (5, "full"), (7, "full"), (3, "spherical"), (5, "spherical"),
        (7, "spherical")]
    best = min(summary["candidates"], key=lambda r: r["bic"])
    assert best["rank"] == 1 and summary["best"] == {
        "n_components": best["n_components"], "covariance_type": best["covariance_type"]}
    fitted = load(model)
    assert fitted.n_components == 5
    assert fitted.covariance_type == summary["best"]["covariance_type"]
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:4] == b"\x89PNG"
    assert summary["n_data_passes"] < 40


def test_select_refuses_bad_candidates_in_one_line(store, tmp_path, local_cluster, capsys):
    for argv, message in [
        (["--n-components", "5:2"], "no candidate"),
        (["--n-components", "a:b"], "START:STOP"),
        (["--n-components", "3", "--covariance-type", "banded"], "--covariance-type"),
        (["--n-components", "4001"], "larger than the store's 4000 rows"),
    ]:
        try:
            code = main(["select", str(store), *argv, "--model", str(tmp_path / "m.dbl"),
                         "--scheduler", local_cluster.scheduler_address])
        except SystemExit as exc:  # argparse's own errors
            code = exc.code
        err = capsys.readouterr().err
        assert code != 0 and message in err and "Traceback" not in err
        assert not (tmp_path / "m.dbl").exists()


def test_parse_components():
    assert parse_components("5:50:5") == list(range(5, 51, 5))
    assert parse_components("2:4") == [2, 3, 4]
    assert parse_components("8,3,3") == [3, 8]
    with pytest.raises(argparse.ArgumentTypeError, match="START:STOP"):
        parse_components("1:2:0")
    assert np.all(np.diff(parse_components("1:30:7")) == 7)


# ---- the red team's select (L1, L2, P1, H2, heldout-fraction 0) -----------------------------


def _select(store, model, *extra):
    return ["select", str(store), "--n-components", "2:3", "--method", "em", "--model",
            str(model), *map(str, extra)]


@pytest.fixture
def no_work(monkeypatch):
    """Make any start of the sweep (connecting to a cluster) an error the test sees."""
    from dask_biglearn.cli import outputs

    def connect(*args, **kwargs):
        raise AssertionError("the sweep started before the outputs were checked")

    monkeypatch.setattr(outputs, "connect", connect)


def _refused_cases(tmp_path):
    (tmp_path / "bic.png").write_bytes(b"keep")
    return {
        # L1: the plot used to overwrite the model, exit 0
        "--model and --plot the same file": (
            ["--plot", tmp_path / "m.dbl"], 2,
            f"--model and --plot name the same file ({tmp_path / 'm.dbl'})."),
        # L2: matplotlib used to write bic.png over the user's file
        "--plot without an extension": (
            ["--plot", tmp_path / "bic"], 2, (f"--plot {tmp_path / 'bic'}: name the file with "
                                             f"its format's extension (e.g. "
                                             f"{tmp_path / 'bic'}.png); one of ")),
        # P1: used to be found after the sweep, with the model already written
        "--plot in a format matplotlib lacks": (
            ["--plot", tmp_path / "out.xyz"], 2, "matplotlib does not write .xyz files"),
        "--heldout-fraction 0 with --criterion heldout": (
            ["--criterion", "heldout", "--heldout-fraction", "0"], 2,
            "--criterion heldout needs held-out rows"),
    }


REFUSED = ["--model and --plot the same file", "--plot without an extension",
           "--plot in a format matplotlib lacks", "--heldout-fraction 0 with --criterion heldout"]


@pytest.mark.parametrize("case", REFUSED)
def test_select_refuses_outputs_and_options_that_cannot_work_before_the_sweep(
        store, tmp_path, local_cluster, capsys, no_work, case):
    argv, want, words = _refused_cases(tmp_path)[case]
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main([*_select(store, tmp_path / "m.dbl", *argv),
                 "--scheduler", local_cluster.scheduler_address])
    err = capsys.readouterr().err
    assert code == want, err
    [line] = _lines(err)
    assert line.startswith("dask-biglearn select: error: ") and words in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "bic.png").read_bytes() == b"keep"


def test_select_creates_the_plot_s_folders_and_writes_the_format_its_name_says(
        store, tmp_path, local_cluster, capsys):
    """``--plot plots/sub/x.pdf`` used to fail after the sweep (savefig creates no folder),
    leaving the model behind."""
    plot = tmp_path / "plots" / "sub" / "x.pdf"
    code = main([*_select(store, tmp_path / "m.dbl", "--plot", plot, "--quiet"),
                 "--scheduler", local_cluster.scheduler_address])
    err = capsys.readouterr().err
    assert code == 0, err
    assert plot.read_bytes()[:5] == b"%PDF-" and load(tmp_path / "m.dbl").n_components in (2, 3)
    assert sorted(p.name for p in plot.parent.iterdir()) == ["x.pdf"]  # no temporary file


def test_select_writes_the_model_and_the_plot_both_or_neither(store, tmp_path, local_cluster):
    """A disk that fills while the plot is drawn: no model either, and the line names the
    plot (it used to leave the model and say "cannot write the outputs")."""
    import resource
    import subprocess
    import sys

    def small_files_only():
        resource.setrlimit(resource.RLIMIT_FSIZE, (12_000, 12_000))  # a model, not a PNG

    plot = tmp_path / "sel.png"
    done = subprocess.run(
        [sys.executable, "-m", "dask_biglearn",
         *_select(store, tmp_path / "m.dbl", "--plot", plot, "--quiet"),
         "--scheduler", local_cluster.scheduler_address], capture_output=True, text=True,
        timeout=300, check=False, preexec_fn=small_files_only)
    assert done.returncode == 1, done.stderr
    assert _lines(done.stderr) == [(f"dask-biglearn select: error: {plot}: cannot write the "
                                   f"plot (File too large).")]
    assert list(tmp_path.iterdir()) == []


def test_a_huge_range_of_candidates_is_refused_without_being_built(store, tmp_path,
                                                                  local_cluster, capsys):
    """``1:1000000000000`` used to be built as a list (a MemoryError traceback, or 80 GB)."""
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(argparse.ArgumentTypeError, match="at most 1000"):
            parse_components("1:1000000000000")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000
    code = main(["select", str(store), "--n-components", "1:1000000000000", "--model",
                 str(tmp_path / "m.dbl"), "--scheduler", local_cluster.scheduler_address])
    err = capsys.readouterr().err
    assert code == 2 and len(_lines(err)) == 1 and "at most 1000" in err, err
    assert list(tmp_path.iterdir()) == []


def test_candidates_below_one_component_are_named_as_such():
    with pytest.raises(argparse.ArgumentTypeError, match="at least 1 component, got 0"):
        parse_components("0:5")
    with pytest.raises(argparse.ArgumentTypeError, match="at least 1 component, got -2"):
        parse_components("3,-2")
