"""The options of the command line (dask_biglearn.cli.options) and its entry point: every value
checked where it is read, in one line that names the option and says what it accepts (exit
code 2), never a function's name nor another library's wording once work has started; a
Ctrl-C from the first line of ``main`` is one line too."""

import argparse
import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import zarr

import dask_biglearn
from dask_biglearn.cli import COMMANDS, build_parser
from dask_biglearn.testing.cli import nonempty_lines as _lines
from dask_biglearn.testing.cli import run_cli as _run

CLI = Path(dask_biglearn.__file__).parent / "cli"


def _fit(tmp_path, *extra):
    return ["fit", tmp_path / "d.zarr", "--n-components", "2", "--model", tmp_path / "m.dbl",
            *extra]


BAD_VALUES = {
    # W4: nan wrote an all-NaN X with exit 0; inf failed deep inside numpy
    "--separation nan": (lambda t: ["make-data", t / "x.zarr", "--n-samples", "100",
                                    "--n-features", "2", "--n-components", "3",
                                    "--separation", "nan"],
                         "argument --separation: expected a finite number >= 0, got 'nan'"),
    "--separation -1": (lambda t: ["make-data", t / "x.zarr", "--n-samples", "100",
                                   "--n-features", "2", "--n-components", "3",
                                   "--separation", "-1"],
                        "argument --separation: expected a finite number >= 0, got '-1'"),
    "--separation inf": (lambda t: ["make-data", t / "x.zarr", "--n-samples", "100",
                                    "--n-features", "2", "--n-components", "3",
                                    "--separation", "inf"],
                         "argument --separation: expected a finite number >= 0, got 'inf'"),
    # argparse used to print "invalid _sample_size value: '2.5'"
    "--sample-size 2.5": (lambda t: _fit(t, "--sample-size", "2.5"),
                          ("argument --sample-size: expected auto, a number of rows (e.g. 5000) "
                          "or a fraction of the rows in (0, 1] (e.g. 0.01), got '2.5'")),
    "--checkpoint-every 0": (lambda t: _fit(t, "--checkpoint-every", "0"),
                             "argument --checkpoint-every: expected a positive integer, got 0"),
    # scikit-learn's wording, exit 1, once the store was opened
    "--seed -1": (lambda t: _fit(t, "--seed", "-1"),
                  "argument --seed: expected an integer from 0 to 4294967295, got '-1'"),
    "--heldout-fraction 1.5": (
        lambda t: ["select", t / "d.zarr", "--n-components", "2:3", "--model", t / "m.dbl",
                   "--heldout-fraction", "1.5"],
        ("argument --heldout-fraction: expected a fraction from 0 to 1 (1 excluded), got "
        "'1.5'")),
    # "could not convert string to float: '1-1.0'"
    "--connect-timeout -1": (lambda t: _fit(t, "--connect-timeout", "-1"),
                             ("argument --connect-timeout: expected a finite number > 0, got "
                             "'-1'")),
    # "error:  exists"
    "--out ''": (lambda t: ["predict", t / "m.dbl", t / "d.zarr", "--out", ""],
                 "argument --out: expected a path, got ''"),
    "--max-iter -3": (lambda t: _fit(t, "--max-iter", "-3"),
                      "argument --max-iter: expected an integer >= 0, got '-3'"),
    "--storage-option x": (lambda t: _fit(t, "--storage-option", "x"),
                           "argument --storage-option: expected KEY=VALUE, got 'x'"),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_a_bad_value_is_one_line_naming_the_option_and_what_it_accepts(tmp_path, capsys,
                                                                       case):
    argv, message = BAD_VALUES[case]
    argv = argv(tmp_path)
    code, out, err = _run(argv, capsys)
    assert code == 2 and out == ""
    assert _lines(err) == [f"dask-biglearn {argv[0]}: error: {message}"]
    assert list(tmp_path.iterdir()) == []


def test_no_argument_error_names_a_function_of_ours(tmp_path, capsys):
    for argv in (["fit", "s", "--n-components", "0", "--model", "m"],
                 ["fit", "s", "--n-components", "2", "--model", "m", "--sample-size", "lots"],
                 ["demo", "--n-samples", "0"], ["select", "s", "--n-components", "2:3",
                                                "--model", "m", "--covariance-type", "x"]):
        code, _, err = _run(argv, capsys)
        assert code == 2 and len(_lines(err)) == 1, err
        assert "invalid" not in err and "_" not in err.split("error: ")[1].split(":")[0], err


# ---- the cluster options, before any cluster starts (H1, H3, TLS) ----------------------------


def test_too_many_embedded_workers_are_refused_at_once(tmp_path, capsys):
    """``--n-workers 100000`` used to start workers for minutes, deaf to SIGTERM."""
    code, _, err = _run([*_fit(tmp_path), "--n-workers", "100000"], capsys)
    assert code == 2, err
    [line] = _lines(err)
    assert line.startswith("dask-biglearn fit: error: argument --n-workers: 100000 workers of "
                           "one thread for the embedded LocalCluster, on ")
    assert list(tmp_path.iterdir()) == []


def test_the_demo_refuses_no_workers_at_once(capsys):
    """``demo --n-workers 0`` used to wait for workers forever (and ``demo --grid`` too)."""
    for grid in ([], ["--grid"]):
        code, _, err = _run(["demo", *grid, "--n-workers", "0"], capsys)
        assert code == 2
        assert _lines(err) == [("dask-biglearn demo: error: argument --n-workers: expected a "
                               "positive integer, got 0")]


def test_tls_options_that_do_not_go_together_exit_2(tmp_path, capsys):
    (tmp_path / "ca.pem").write_text("not checked here")
    code, _, err = _run([*_fit(tmp_path), "--tls-ca-file", tmp_path / "ca.pem"], capsys)
    assert code == 2
    assert _lines(err) == [("dask-biglearn fit: error: --tls-ca-file, --tls-cert and --tls-key "
                           "go together.")]


def test_a_missing_tls_file_is_named(tmp_path, capsys):
    """It used to be ``[Errno 2] No such file or directory``, naming no file."""
    for name in ("ca.pem", "cert.pem"):
        (tmp_path / name).write_text("x")
    code, _, err = _run([*_fit(tmp_path), "--tls-ca-file", tmp_path / "ca.pem", "--tls-cert",
                         tmp_path / "cert.pem", "--tls-key", tmp_path / "key.pem"], capsys)
    assert code == 1
    assert _lines(err) == [(f"dask-biglearn fit: error: --tls-key {tmp_path / 'key.pem'}: no "
                           f"such file.")]


def test_a_file_that_is_not_a_scheduler_file_is_said_so(tmp_path, capsys):
    """``--scheduler-file /etc/hostname`` used to be ``error: AssertionError``."""
    zarr.open_group(str(tmp_path / "d.zarr"), mode="w").create_array(
        "X", data=np.random.default_rng(0).normal(size=(50, 2)), chunks=(25, 2))
    (tmp_path / "hostname").write_text("somehost\n")
    code, _, err = _run([*_fit(tmp_path), "--scheduler-file", tmp_path / "hostname"], capsys)
    assert code == 1
    assert _lines(err) == [(f"dask-biglearn fit: error: cannot reach the Dask scheduler: "
                           f"--scheduler-file {tmp_path / 'hostname'} is not a scheduler file "
                           f"(not JSON with the scheduler's address).")]
    assert not (tmp_path / "m.dbl").exists()


# ---- the entry point ---------------------------------------------------------------------------


def test_importing_the_command_line_imports_only_the_standard_library():
    """So that a Ctrl-C right after start comes when ``main`` already handles it: importing
    ``dask_biglearn.cli`` loads none of the package's dependencies, nor argparse or logging
    (they come with the parser, inside ``main``'s handlers)."""
    probe = ("import sys; before = set(sys.modules); import dask_biglearn.cli; "
             "print(sorted(m for m in set(sys.modules) - before if not m.startswith("
             "'dask_biglearn') and (m.split('.')[0] not in sys.stdlib_module_names "
             "or m in ('argparse', 'logging'))))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip() == "[]"


def test_ctrl_c_while_main_imports_is_one_line_and_exit_130(tmp_path):
    """A real SIGINT, sent to the process as ``main`` imports distributed (which it did
    outside its handler: a 34-line traceback)."""
    script = textwrap.dedent("""
        import os, signal, sys
        sent = []
        def interrupt_on_import(event, args):
            if event == "import" and args[0] == "distributed" and not sent:
                sent.append(True)
                os.kill(os.getpid(), signal.SIGINT)
        sys.addaudithook(interrupt_on_import)
        from dask_biglearn.cli import main
        sys.exit(main(["info", "nothing.dbl"]))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False, cwd=tmp_path)
    assert done.returncode == 130, done.stderr
    assert _lines(done.stderr) == ["dask-biglearn info: interrupted"]


def test_the_package_docstring_names_every_command():
    from dask_biglearn import cli

    subcommands = build_parser()._subparsers._group_actions[0].choices
    assert tuple(subcommands) == COMMANDS
    for command in COMMANDS:
        assert f"``{command}``" in cli.__doc__


def test_the_choices_are_the_package_s_constants():
    from dask_biglearn.algebra import COVARIANCE_TYPES
    from dask_biglearn.initialization import INIT_METHODS
    from dask_biglearn.selection import CRITERIA

    subcommands = build_parser()._subparsers._group_actions[0].choices
    choices = {(command, action.dest): action.choices for command in ("fit", "select")
               for action in subcommands[command]._actions if action.choices}
    assert tuple(choices["fit", "init"]) == tuple(INIT_METHODS)
    assert tuple(choices["fit", "covariance_type"]) == tuple(COVARIANCE_TYPES)
    assert tuple(choices["select", "criterion"]) == tuple(CRITERIA)


def test_no_command_module_borrows_another_s_private_names():
    """The commands share :mod:`options` and :mod:`outputs`, not each other's insides."""
    for path in sorted(CLI.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                private = [a.name for a in node.names
                           if a.name.startswith("_") and not a.name.endswith("__")]
                assert not private, f"{path.name} imports {private} from {node.module}"


def test_one_definition_of_one_line():
    definitions = [path.name for path in CLI.glob("*.py")
                   for node in ast.walk(ast.parse(path.read_text()))
                   if isinstance(node, ast.FunctionDef) and node.name.lstrip("_") == "one_line"]
    assert definitions == ["outputs.py"]


def test_the_types_refuse_what_is_not_a_value_of_theirs():
    from dask_biglearn.cli import options

    assert options.positive_int("1_000") == 1000 and options.positive_int("1e6") == 10**6
    assert options.sample_size("0.01") == 0.01 and options.sample_size("5000") == 5000
    assert options.sample_size("auto") == "auto" and options.seed("4294967295") == 2**32 - 1
    for kind, text in [(options.positive_int, "1e400"), (options.positive_int, "nan"),
                       (options.positive_int, "2.5"), (options.seed, "4294967296"),
                       (options.fraction, "1"), (options.non_negative_float, "-0.1"),
                       (options.positive_float, "0"), (options.path, " ")]:
        with pytest.raises(argparse.ArgumentTypeError):
            kind(text)


@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_the_grid_demo_honours_sigterm(tmp_path):
    """``demo --grid`` used to wait for every seed's fits to end (SIGKILL was needed)."""
    import signal
    import time

    job = subprocess.Popen(
        [sys.executable, "-m", "dask_biglearn", "demo", "--grid", "--seeds", "0", "1",
         "--max-iter", "100000", "--em-max-iter", "100000", "--n-workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        start_new_session=True)
    try:
        for line in job.stdout:  # the fits have started
            if line.startswith("Fitting plain EM"):
                break
        time.sleep(2.0)
        started = time.monotonic()
        os.kill(job.pid, signal.SIGTERM)
        _, err = job.communicate(timeout=120)
        seconds = time.monotonic() - started
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
    assert job.returncode == 143, err
    assert _lines(err) == ["dask-biglearn demo: terminated"], err
    assert seconds < 60
