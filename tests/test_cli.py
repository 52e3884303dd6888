"""The command line, end to end on its own LocalCluster."""

import numpy as np
import pytest

from dask_biglearn.cli import build_parser, main


def test_demo_runs_on_a_local_cluster(capsys):
    assert main(["demo", "--grid", "--seeds", "0", "--max-iter", "4", "--em-max-iter", "4"]) == 0
    out = capsys.readouterr().out
    assert "LocalCluster" in out
    assert "all 25 modes found: plain EM" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("0 "))
    em_kl, em_modes, _, bl_modes = row.split()[1:]
    assert float(em_kl) > 0 and 0 <= int(em_modes) <= 25 and 0 <= int(bl_modes) <= 25


def test_the_main_demo_writes_fits_out_of_core_predicts_and_compares(capsys):
    argv = ["demo", "--n-samples", "150000", "--n-features", "4", "--n-components", "6",
            "--chunk-rows", "30000", "--subsample", "5000", "--em-max-iter", "3"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Wrote" in out and "Predicted labels back to" in out
    ours = next(line for line in out.splitlines() if line.startswith("BigLearnGaussianMixture"))
    found, kl, passes = ours.split()[1], float(ours.split()[2]), int(ours.split()[3])
    assert found == "6/6" and kl < 0.01 and passes <= 30
    assert any(line.startswith("plain EM") for line in out.splitlines())
    assert any(line.startswith("scikit-learn") for line in out.splitlines())


def test_parser_requires_a_command():
    with pytest.raises(SystemExit):
        build_parser().parse_args([])


def test_demo_on_a_running_scheduler(local_cluster, capsys):
    argv = ["demo", "--grid", "--seeds", "1", "--max-iter", "3", "--em-max-iter", "3",
            "--scheduler-address", local_cluster.scheduler_address]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"Connecting to the Dask scheduler at {local_cluster.scheduler_address}" in out
    assert "all 25 modes found" in out


# ---- the batch commands, on the session's cluster ---------------------------------------------


def _run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def made(tmp_path_factory, local_cluster):
    root = tmp_path_factory.mktemp("cli")
    store = root / "data.zarr"
    assert main(["make-data", str(store), "--n-samples", "30000", "--n-features", "3",
                 "--n-components", "4", "--chunk-rows", "7000", "--seed", "3",
                 "--separation", "4", "--scheduler", local_cluster.scheduler_address]) == 0
    return root, store


def test_make_data_fit_predict_info_end_to_end(made, local_cluster, capsys):
    import json

    import zarr
    from sklearn.metrics import adjusted_rand_score

    root, store = made
    group = zarr.open_group(str(store), mode="r")
    assert group["X"].shape == (30000, 3) and group["X"].chunks == (7000, 3)
    assert group["means"].shape == (4, 3) and group["labels"].shape == (30000,)
    model, out = root / "model.dbl", root / "pred.zarr"
    sched = ["--scheduler", local_cluster.scheduler_address]
    code, stdout, _ = _run(["fit", str(store), "--n-components", "4", "--model", str(model),
                            "--sample-size", "5000", "--json", *sched], capsys)
    assert code == 0
    summary = json.loads(stdout)
    assert summary["n_components"] == 4 and summary["n_data_passes"] <= 30
    code, stdout, _ = _run(["predict", str(model), str(store), "--out", str(out),
                            "--log-likelihood", *sched], capsys)
    assert code == 0 and "labels, log_likelihood" in stdout
    labels = zarr.open_group(str(out), mode="r")["labels"][:]
    assert adjusted_rand_score(group["labels"][:], labels) > 0.99
    code, stdout, _ = _run(["info", str(model), "--json"], capsys)
    facts = json.loads(stdout)
    assert code == 0 and facts["n_components"] == 4 and facts["n_features"] == 3
    assert abs(facts["lower_bound"] - summary["lower_bound"]) < 1e-12


def _bad_cases(root, store, model):
    (root / "notamodel.dbl").write_bytes(b"\x80\x04pickle")
    return {
        "fit: no store": (["fit", str(root / "nope.zarr"), "--n-components", "2",
                           "--model", str(root / "o1.dbl")], 1, "no such store"),
        "fit: K > N": (["fit", str(store), "--n-components", "40000",
                        "--model", str(root / "o2.dbl")], 1, "larger than"),
        "fit: bad sample size": (["fit", str(store), "--n-components", "2", "--sample-size",
                                  "lots", "--model", str(root / "o3.dbl")], 2, "sample-size"),
        "fit: no scheduler there": (["fit", str(store), "--n-components", "2", "--model",
                                     str(root / "o4.dbl"), "--scheduler",
                                     "tcp://127.0.0.1:9", "--connect-timeout", "2"], 1,
                                    "cannot reach"),
        "predict: foreign model": (["predict", str(root / "notamodel.dbl"), str(store),
                                    "--out", str(root / "p1.zarr")], 1, "not a readable"),
        "predict: output exists": (["predict", str(model), str(store), "--out", str(model)],
                                   1, "exists"),
        "predict: output is the input": (["predict", str(model), str(store), "--out",
                                          str(store), "--overwrite"], 2, "input store"),
        "info: directory": (["info", str(store)], 1, "directory"),
        "info: foreign file": (["info", str(root / "notamodel.dbl")], 1, "not a readable"),
        "make-data: exists": (["make-data", str(store), "--n-samples", "10", "--n-features",
                               "2", "--n-components", "2"], 1, "exists"),
        "make-data: K > N": (["make-data", str(root / "m.zarr"), "--n-samples", "3",
                              "--n-features", "2", "--n-components", "5"], 1, "larger"),
        "fit: --n-workers 0": (["fit", str(store), "--n-components", "2", "--model",
                                str(root / "o5.dbl"), "--n-workers", "0", "--scheduler",
                                "tcp://127.0.0.1:9", "--connect-timeout", "2"], 2,
                               "--n-workers"),  # (without a scheduler, it used to hang)
        "fit: model exists": (["fit", str(store), "--n-components", "2", "--model",
                               str(model)], 1, "--overwrite"),
        "fit: checkpoint exists": (["fit", str(store), "--n-components", "2", "--model",
                                    str(root / "o6.dbl"), "--checkpoint", str(model)], 1,
                                   "--resume"),
        "fit: model is the checkpoint": (["fit", str(store), "--n-components", "2", "--model",
                                          str(root / "o7.dbl"), "--checkpoint",
                                          str(root / "o7.dbl")], 2, "the same file"),
        "fit: --resume, not a checkpoint": (["fit", str(store), "--n-components", "2",
                                             "--model", str(root / "o8.dbl"), "--checkpoint",
                                             str(root / "notamodel.dbl"), "--resume"], 1,
                                            "not a readable"),
        "fit: --resume, no --checkpoint": (["fit", str(store), "--n-components", "2",
                                            "--model", str(root / "o9.dbl"), "--resume"], 2,
                                           "--resume needs --checkpoint"),
        "fit: model is a directory": (["fit", str(store), "--n-components", "2", "--model",
                                       str(store)], 1, "is a directory"),
    }


BAD_CASE_NAMES = ["fit: no store", "fit: K > N", "fit: bad sample size",
                  "fit: no scheduler there", "predict: foreign model",
                  "predict: output exists", "predict: output is the input", "info: directory", "info: foreign file",
                  "make-data: exists", "make-data: K > N", "fit: --n-workers 0",
                  "fit: model exists", "fit: checkpoint exists", "fit: model is the checkpoint",
                  "fit: --resume, not a checkpoint", "fit: --resume, no --checkpoint",
                  "fit: model is a directory"]


@pytest.mark.parametrize("case", BAD_CASE_NAMES)
def test_bad_arguments_stores_and_files_exit_non_zero_with_one_line(made, local_cluster,
                                                                    capsys, case):
    root, store = made
    model = root / "good.dbl"
    if not model.exists():
        assert main(["fit", str(store), "--n-components", "2", "--method", "em",
                     "--model", str(model), "--quiet", "--scheduler",
                     local_cluster.scheduler_address]) == 0
    argv, want_code, match = _bad_cases(root, store, model)[case]
    before = sorted(p.name for p in root.iterdir())
    try:
        code = main(argv)
    except SystemExit as exit_info:  # argparse's errors
        code = exit_info.code
    err = capsys.readouterr().err
    assert code == want_code
    assert match in err
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1
    assert sorted(p.name for p in root.iterdir()) == before  # nothing written


def test_fit_starts_from_a_saved_model(made, local_cluster, capsys):
    """``fit --init-model``: the saved model is the fit's one start (plain EM with no
    iteration returns it), and a start that does not fit the fit is refused first."""
    from dask_biglearn import load

    root, store = made
    sched = ["--scheduler", local_cluster.scheduler_address]
    first, again = root / "first.dbl", root / "again.dbl"
    assert _run(["fit", str(store), "--n-components", "4", "--method", "em", "--init",
                 "kmeans", "--max-iter", "5", "--model", str(first), "--quiet", *sched],
                capsys)[0] == 0
    assert _run(["fit", str(store), "--n-components", "4", "--method", "em", "--max-iter",
                 "0", "--init-model", str(first), "--model", str(again), "--quiet", *sched],
                capsys)[0] == 0
    a, b = load(first), load(again)
    np.testing.assert_allclose(b.means_, a.means_, rtol=0, atol=1e-12)
    np.testing.assert_allclose(b.covariances_, a.covariances_, rtol=0, atol=1e-12)
    for argv, code, words in [
        (["--n-components", "3"], 2, "has 4 components"),
        (["--n-components", "4", "--n-init", "2"], 2, "leave out --n-init"),
    ]:
        got, _, err = _run(["fit", str(store), *argv, "--init-model", str(first),
                            "--model", str(root / "refused.dbl"), *sched], capsys)
        assert got == code and words in err, err
        assert not (root / "refused.dbl").exists()


# ---- info (the red team's cosmetic and leak items) ----------------------------------------------


def _fitted(covariance_type="full"):
    from dask_biglearn import GaussianMixture

    X = np.random.default_rng(0).normal(size=(200, 2))
    return GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)


def test_info_prints_a_huge_log_likelihood_compactly_and_the_covariance_type(tmp_path, capsys):
    """A lower bound of 1e308 used to print as 309 digits; the type showed in --json only."""
    model = _fitted("diag")
    model.lower_bound_ = 1e308
    model.save(tmp_path / "m.dbl")
    code, out, _ = _run(["info", str(tmp_path / "m.dbl")], capsys)
    assert code == 0
    assert "diag covariances" in out.splitlines()[0]
    assert "mean log-likelihood 1.000000e+308," in out and "0" * 20 not in out


def test_info_on_parameters_that_overflow_is_one_line_without_numpy_s_warnings(tmp_path,
                                                                              capsys):
    import warnings

    model = _fitted("spherical")
    model.covariances_ = np.array([1e-320, 1.0])
    model.save(tmp_path / "tiny.dbl")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, _, err = _run(["info", str(tmp_path / "tiny.dbl")], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "out of range" in err
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []
