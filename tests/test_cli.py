"""The command line, end to end on its own LocalCluster."""

import pytest

from dask_biglearn.cli import build_parser, main


def test_demo_runs_on_a_local_cluster(capsys):
    assert main(["demo", "--seeds", "0", "--max-iter", "4", "--em-max-iter", "4"]) == 0
    out = capsys.readouterr().out
    assert "LocalCluster" in out
    assert "all 25 modes found: plain EM" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("0 "))
    em_kl, em_modes, _, bl_modes = row.split()[1:]
    assert float(em_kl) > 0 and 0 <= int(em_modes) <= 25 and 0 <= int(bl_modes) <= 25


def test_parser_requires_a_command():
    with pytest.raises(SystemExit):
        build_parser().parse_args([])


def test_demo_on_a_running_scheduler(local_cluster, capsys):
    argv = ["demo", "--seeds", "1", "--max-iter", "3", "--em-max-iter", "3",
            "--scheduler-address", local_cluster.scheduler_address]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"Connecting to the Dask scheduler at {local_cluster.scheduler_address}" in out
    assert "all 25 modes found" in out
