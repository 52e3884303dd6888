"""Where the commands compute (dask_biglearn.cli.cluster), on real processes: the embedded
cluster's dashboard listens on loopback only; a failed worker task is one line on stderr;
Ctrl-C (SIGINT to the whole process group, as a terminal sends it) and SIGTERM end a command
with one line, no worker tracebacks, and no output or staging group left behind (the
command line turns SIGTERM into an interruption; the workers ignore SIGINT)."""

import argparse
import os
import signal
import subprocess
import sys
import time

import dask.array as da
import numpy as np
import pytest

import dask_biglearn as db
from dask_biglearn.cli.cluster import add_cluster_options, connect
from dask_biglearn.testing.cli import nonempty_lines as _lines


def _run(*argv, **kwargs):
    return subprocess.run([sys.executable, "-m", "dask_biglearn", *map(str, argv)],
                          check=False, capture_output=True, text=True, timeout=180, **kwargs)


def _interrupted(argv, sig, cwd, after=1.0):
    """Start a command in a session of its own, send ``sig`` to its whole process group
    ``after`` seconds once its embedded cluster is up, and return (exit code, stderr)."""
    job = subprocess.Popen([sys.executable, "-m", "dask_biglearn", *map(str, argv)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           cwd=cwd, start_new_session=True)
    try:
        for line in job.stdout:  # "LocalCluster: 2 workers ..." once the workers are up
            if line.startswith("LocalCluster"):
                break
        time.sleep(after)
        os.killpg(job.pid, sig)
        _, err = job.communicate(timeout=120)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait()
    return job.returncode, err


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """A model, a store with an infinity in one of its 10 chunks, and a larger clean store."""
    folder = tmp_path_factory.mktemp("cli_cluster")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, 3))
    model = db.GaussianMixture(2, random_state=0).fit(X[:4000])
    model.save(folder / "m.dbl")
    X[12_345, 1] = np.inf
    da.from_array(X, chunks=(2000, 3)).to_zarr(str(folder / "inf.zarr"), component="X")
    big = rng.normal(size=(400_000, 3))
    da.from_array(big, chunks=(10_000, 3)).to_zarr(str(folder / "big.zarr"), component="X")
    return folder


def test_the_embedded_dashboard_listens_on_loopback_only():
    parser = argparse.ArgumentParser()
    add_cluster_options(parser)
    args = parser.parse_args(["--n-workers", "1"])
    assert args.dashboard_address == "127.0.0.1:0"
    said = []
    with connect(args, log=said.append) as client:
        scheduler = client.cluster.scheduler
        bound = [sock.getsockname()[0] for sock in scheduler.http_server._sockets.values()]
        link = client.dashboard_link
    assert bound and set(bound) == {"127.0.0.1"}, bound
    assert link.startswith("http://127.0.0.1:") and link in said[0]


def test_a_failed_worker_task_is_one_line_and_leaves_nothing(stores, tmp_path):
    done = _run("predict", stores / "m.dbl", stores / "inf.zarr", "--out",
                tmp_path / "p.zarr", "--log-likelihood", "--responsibilities")
    assert done.returncode == 1
    [line] = _lines(done.stderr)
    assert line.startswith("dask-biglearn predict: error: ") and "infinity" in line
    time.sleep(1.0)
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_during_a_fit_is_one_line_without_tracebacks(stores, tmp_path):
    code, err = _interrupted(["fit", stores / "big.zarr", "--n-components", "4", "--model",
                              tmp_path / "m.dbl", "--max-iter", "100000"], signal.SIGINT,
                             tmp_path, after=2.0)
    assert code == 130, err
    assert len(_lines(err)) <= 2 and "Traceback" not in err, err
    assert "interrupted" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_predict_leaves_nothing(stores, tmp_path, sig):
    out = tmp_path / "p.zarr"
    code, err = _interrupted(["predict", stores / "m.dbl", stores / "big.zarr", "--out", out,
                              "--log-likelihood", "--responsibilities"], sig, tmp_path)
    assert "Traceback" not in err and len(_lines(err)) <= 2, err
    time.sleep(1.0)
    if code == 0:  # finished before the signal came: whole
        assert [p.name for p in tmp_path.iterdir()] == ["p.zarr"]
    else:  # 130 "interrupted", or 143 "terminated"
        assert (code, sig) in [(130, signal.SIGINT), (143, signal.SIGTERM)], (code, err)
        assert "interrupted" in err or "terminated" in err, err
        assert list(tmp_path.iterdir()) == []


def test_the_embedded_cluster_leaves_no_python_code_in_this_process_collections():
    """A signal that lands in a gc callback is swallowed ("Exception ignored"): the embedded
    scheduler's GC diagnosis is turned off, so Ctrl-C and SIGTERM always reach the command."""
    import gc

    from dask_biglearn.cli.cluster import _local_cluster

    args = argparse.Namespace(n_workers=1, memory_limit="400MB", dashboard_address=None,
                              verbose=False)
    with _local_cluster(args) as cluster:
        assert len(cluster.workers) == 1
        assert not any("GCDiagnosis" in getattr(cb, "__qualname__", "") for cb in gc.callbacks)


def test_the_embedded_cluster_encrypts_when_dask_s_configuration_requires_it():
    """``DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION=True`` used to stop the embedded cluster
    with "Cluster failed to start": it now speaks TLS with a certificate of its own."""
    import dask.config

    parser = argparse.ArgumentParser()
    add_cluster_options(parser)
    args = parser.parse_args(["--n-workers", "1"])
    with dask.config.set({"distributed.comm.require-encryption": True}), \
            connect(args, log=lambda line: None) as client:
        assert client.scheduler.address.startswith("tls://")
        assert client.submit(sum, [1, 2]).result() == 3
