"""``dask-biglearn select``: the sweep from a Zarr store, on the session's cluster."""

import argparse
import json

import numpy as np
import pytest

from dask_biglearn import load
from dask_biglearn.cli import main
from dask_biglearn.cli.select import parse_components
from dask_biglearn.datasets import random_mixture, sample_mixture


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
