"""deploy/: every manifest parses and runs only commands our command line (or Dask's) accepts;
the local scripts start real processes, which the test stops by process id."""

import ast
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from dask_biglearn.cli import build_parser, main

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def same_arithmetic_env():
    """A child driver that computes as this one does: the same kernels (this process's
    choice, read once, which an earlier test's configuration may have made)."""
    from dask_biglearn.config import compiled_kernels

    return {**os.environ, "DASK_BIGLEARN_NUMBA": "1" if compiled_kernels() else "0"}


def _commands(node):
    """Every list of strings under a ``command`` or ``args`` key."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("command", "args") and isinstance(value, list) and value and all(
                    isinstance(v, str) for v in value):
                yield value
            else:
                yield from _commands(value)
    elif isinstance(node, list):
        for item in node:
            yield from _commands(item)


def _check(argv):
    if argv[0] == "dask-biglearn":
        build_parser().parse_args(argv[1:])  # SystemExit on an unknown option
    elif argv[0] == "dask":
        from distributed.cli.dask_scheduler import main as scheduler
        from distributed.cli.dask_worker import main as worker

        command = {"scheduler": scheduler, "worker": worker}[argv[1]]
        command.make_context(f"dask {argv[1]}", list(argv[2:]))
    else:
        raise AssertionError(f"unexpected command {argv}")


MANIFESTS = sorted(p for p in DEPLOY.rglob("*.yaml"))


def test_there_is_a_manifest_per_target():
    names = {p.relative_to(DEPLOY).as_posix() for p in MANIFESTS}
    assert {"compose/docker-compose.yaml", "kubernetes/daskjob.yaml"} <= names
    assert (DEPLOY / "slurm" / "run_fit.py").exists()
    assert (DEPLOY / "local" / "start-cluster.sh").exists()


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_every_command_of_a_manifest_exists_with_its_options(path):
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    commands = [c for d in documents for c in _commands(d)]
    assert commands
    for argv in commands:
        _check(argv)
    if path.name == "daskjob.yaml":
        assert documents[0]["kind"] == "DaskJob"
        assert any(c[:2] == ["dask-biglearn", "fit"] for c in commands)


def test_the_slurm_driver_runs_a_fit_our_command_line_accepts():
    tree = ast.parse((DEPLOY / "slurm" / "run_fit.py").read_text())
    values = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in ("STORE", "MODEL", "N_JOBS"):
                values[name] = ast.literal_eval(node.value)
            elif name == "FIT_COMMAND":
                fit = [values.get(e.id) if isinstance(e, ast.Name) else ast.literal_eval(e)
                       for e in node.value.elts]
    _check([*fit, "--scheduler", "tcp://127.0.0.1:8786"])
    assert "dask_jobqueue" in (DEPLOY / "slurm" / "run_fit.py").read_text()
    sbatch = (DEPLOY / "slurm" / "run_fit.sbatch").read_text()
    assert "python deploy/slurm/run_fit.py" in sbatch


def _pids(folder):
    return {p.name: int(p.read_text()) for p in folder.glob("*.pid")}


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def local_processes(tmp_path):
    """``deploy/local/start-cluster.sh`` for real: a scheduler and two workers."""
    from distributed import Client

    folder = tmp_path / "cluster"
    subprocess.run([str(DEPLOY / "local" / "start-cluster.sh"), str(folder), "2", "2GiB"],
                   check=True, timeout=60)
    pids = _pids(folder)
    try:
        with Client(scheduler_file=str(folder / "scheduler.json"), timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        yield folder
    finally:
        subprocess.run([str(DEPLOY / "local" / "stop-cluster.sh"), str(folder)], timeout=60,
                       check=False)
        for pid in pids.values():  # stopped by process id, all of them
            deadline = time.monotonic() + 20
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
                pytest.fail(f"process {pid} outlived stop-cluster.sh")


def test_real_scheduler_and_workers_make_data_fit_predict_info(local_processes, tmp_path,
                                                               capsys):
    import zarr
    from sklearn.metrics import adjusted_rand_score

    sched = ["--scheduler-file", str(local_processes / "scheduler.json")]
    store, model, out = tmp_path / "d.zarr", tmp_path / "m.dbl", tmp_path / "p.zarr"
    assert main(["make-data", str(store), "--n-samples", "40000", "--n-features", "3",
                 "--n-components", "4", "--chunk-rows", "8000", "--separation", "4",
                 *sched]) == 0
    assert main(["fit", str(store), "--n-components", "4", "--sample-size", "5000",
                 "--model", str(model), "--quiet", *sched]) == 0
    assert main(["predict", str(model), str(store), "--out", str(out), *sched]) == 0
    assert main(["info", str(model)]) == 0
    assert "4 components in 3 dimensions" in capsys.readouterr().out
    truth = zarr.open_group(str(store), mode="r")["labels"][:]
    labels = zarr.open_group(str(out), mode="r")["labels"][:]
    assert adjusted_rand_score(truth, labels) > 0.99


def test_a_worker_killed_mid_fit_changes_nothing(local_processes, tmp_path):
    """SIGKILL one worker process during a fit of a Zarr store (the task route: every chunk
    is read from the store, so the scheduler recomputes what the worker held)."""
    import dask.array as da
    from distributed import Client

    from dask_biglearn import GaussianMixture, datasets

    truth = datasets.random_mixture(3, 4, separation=3.0, random_state=2)
    X, _ = datasets.lazy_mixture(*truth, 60_000, 6_000, seed=2)
    store = tmp_path / "s.zarr"
    with Client(scheduler_file=str(local_processes / "scheduler.json")) as client:
        da.to_zarr(X, str(store), component="X")
        Xz = da.from_zarr(str(store), component="X")
        make = lambda callbacks=(): GaussianMixture(4, init_params="kmeans", max_iter=8,
                                                    tol=0.0, random_state=0,
                                                    callbacks=list(callbacks))
        undisturbed = make().fit(Xz)
        worker_pids = client.run(os.getpid)
        victim = min(worker_pids)
        killed = []

        def kill_at_third_iteration(state, event):
            if event == "iteration" and state.iteration == 3 and not killed:
                os.kill(worker_pids[victim], signal.SIGKILL)
                killed.append(victim)

        disturbed = make([kill_at_third_iteration]).fit(Xz)
        assert killed and not _alive(worker_pids[victim])
        client.wait_for_workers(2, timeout=60)  # the nanny restarted it
    np.testing.assert_allclose(disturbed.means_, undisturbed.means_, rtol=0, atol=1e-8)
    np.testing.assert_allclose(disturbed.covariances_, undisturbed.covariances_, rtol=0,
                               atol=1e-8)
    assert disturbed.n_iter_ == undisturbed.n_iter_


def test_a_fit_job_killed_mid_fit_resumes_to_the_same_model(local_processes, tmp_path):
    """``dask-biglearn fit`` against real processes, SIGKILLed once its checkpoint exists,
    then started again with ``--resume``: the model equals an uninterrupted fit's."""
    import sys

    from dask_biglearn import load

    sched = ["--scheduler-file", str(local_processes / "scheduler.json")]
    store = tmp_path / "d.zarr"
    assert main(["make-data", str(store), "--n-samples", "20000", "--n-features", "2",
                 "--n-components", "6", "--chunk-rows", "5000", "--separation", "1.5",
                 "--quiet", *sched]) == 0
    # 20 passes an outer iteration: long enough to be killed some loops in (the default's
    # matchings stop after 20 outer iterations that do not beat the warm-up).
    fit = ["fit", str(store), "--n-components", "6", "--max-iter", "60", "--n-init", "3",
           "--n-inner-iter", "20", "--quiet", *sched]
    assert main([*fit, "--model", str(tmp_path / "whole.dbl")]) == 0
    checkpoint = tmp_path / "fit.ckpt"
    argv = [sys.executable, "-m", "dask_biglearn.cli", *fit, "--model",
            str(tmp_path / "resumed.dbl"), "--checkpoint", str(checkpoint),
            "--checkpoint-every", "1"]
    job = subprocess.Popen(argv, env=same_arithmetic_env())
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and job.poll() is None:
            if checkpoint.exists() and checkpoint.stat().st_size > 0:
                time.sleep(1.0)  # some loops in
                break
            time.sleep(0.05)
        assert job.poll() is None, "the fit ended before it could be killed"
        os.kill(job.pid, signal.SIGKILL)
        assert job.wait(timeout=30) == -signal.SIGKILL
    finally:
        if job.poll() is None:
            job.kill()
    assert not (tmp_path / "resumed.dbl").exists()
    assert main([*fit, "--model", str(tmp_path / "resumed.dbl"),
                 "--checkpoint", str(checkpoint), "--checkpoint-every", "1", "--resume"]) == 0
    whole, resumed = load(tmp_path / "whole.dbl"), load(tmp_path / "resumed.dbl")
    # Small data is persisted and summed per worker: where the scheduler put each chunk
    # changes the order of the sums, so two runs agree to rounding, not bit for bit (the
    # in-process resume of tests/fit/test_checkpoint.py is bit for bit).
    np.testing.assert_allclose(resumed.means_, whole.means_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(resumed.covariances_, whole.covariances_, rtol=0, atol=1e-10)
    # The resumed model counts the killed run's passes up to its last checkpoint too: the
    # whole fit's, and at most what was redone since (an outer iteration of 20 passes, the
    # summary pass and the row sample).
    assert whole.n_data_passes_ <= resumed.n_data_passes_ <= whole.n_data_passes_ + 20 + 2


def _start_cluster(folder):
    subprocess.run([str(DEPLOY / "local" / "start-cluster.sh"), str(folder), "2", "2GiB"],
                   check=True, timeout=60)
    from distributed import Client

    with Client(scheduler_file=str(folder / "scheduler.json"), timeout=30) as client:
        client.wait_for_workers(2, timeout=60)
    return _pids(folder)


def _stop_cluster(folder, pids):
    subprocess.run([str(DEPLOY / "local" / "stop-cluster.sh"), str(folder)], timeout=60,
                   check=False)
    for pid in pids.values():
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_lost_scheduler_ends_the_job_with_one_line_and_a_new_cluster_resumes_it(tmp_path):
    import sys

    from dask_biglearn import load

    first, second = tmp_path / "first", tmp_path / "second"
    store, checkpoint = tmp_path / "d.zarr", tmp_path / "fit.ckpt"
    fit = ["fit", str(store), "--n-components", "6", "--max-iter", "60", "--n-init", "3",
           "--quiet"]
    pids = _start_cluster(first)
    try:
        sched = ["--scheduler-file", str(first / "scheduler.json")]
        assert main(["make-data", str(store), "--n-samples", "20000", "--n-features", "2",
                     "--n-components", "6", "--chunk-rows", "5000", "--separation", "1.5",
                     "--quiet", *sched]) == 0
        assert main([*fit, *sched, "--model", str(tmp_path / "whole.dbl")]) == 0
        job = subprocess.Popen([sys.executable, "-m", "dask_biglearn.cli", *fit, *sched,
                                "--model", str(tmp_path / "m.dbl"), "--checkpoint",
                                str(checkpoint), "--checkpoint-every", "1",
                                "--connect-timeout", "5"],
                               stderr=subprocess.PIPE, text=True, env=same_arithmetic_env())
        deadline = time.monotonic() + 120
        while not checkpoint.exists() and time.monotonic() < deadline and job.poll() is None:
            time.sleep(0.05)
        time.sleep(0.5)
        assert job.poll() is None
        os.kill(pids["scheduler.pid"], signal.SIGKILL)
        killed_at = time.monotonic()
        try:
            _, err = job.communicate(timeout=90)
        finally:
            if job.poll() is None:
                job.kill()
        assert time.monotonic() - killed_at < 60  # the reconnection timeout, 5 s, and exit
        assert job.returncode == 1
        assert "lost the Dask scheduler" in err
        assert len([line for line in err.splitlines() if line.strip()]) == 1, err
        assert not (tmp_path / "m.dbl").exists()
    finally:
        _stop_cluster(first, pids)
    pids = _start_cluster(second)
    try:
        assert main([*fit, "--scheduler-file", str(second / "scheduler.json"), "--model",
                     str(tmp_path / "m.dbl"), "--checkpoint", str(checkpoint), "--resume"]) == 0
    finally:
        _stop_cluster(second, pids)
    np.testing.assert_allclose(load(tmp_path / "m.dbl").means_,
                               load(tmp_path / "whole.dbl").means_, rtol=0, atol=1e-10)


def test_a_worker_killed_mid_fit_on_the_actor_route_changes_nothing(local_processes):
    """Small persisted data: passes go to one actor per worker. SIGKILL one worker during
    the fit: the fit warns, goes on through the scheduler (which recomputes the lost
    chunks) and ends with the undisturbed fit's parameters."""
    import dask.array as da
    from distributed import Client

    from dask_biglearn import GaussianMixture, datasets

    truth = datasets.random_mixture(3, 4, separation=3.0, random_state=5)
    X, _ = datasets.sample_mixture(*truth, 20_000, random_state=6)
    make = lambda callbacks=(): GaussianMixture(4, init_params="kmeans", max_iter=8, tol=0.0,
                                                random_state=0, callbacks=list(callbacks))
    undisturbed = make().fit(X)
    with Client(scheduler_file=str(local_processes / "scheduler.json")) as client:
        lazy = da.from_array(X, chunks=(2_000, 3))
        worker_pids = client.run(os.getpid)
        victim = min(worker_pids)
        routes, killed = [], []

        def kill_at_third_iteration(state, event):
            if event == "iteration" and state.iteration == 3 and not killed:
                os.kill(worker_pids[victim], signal.SIGKILL)
                killed.append(victim)

        from dask_biglearn.engines import dask as dask_engine

        original = dask_engine.DaskEngine.run_passes

        def recording(self, specs):
            routes.append(self.route)
            return original(self, specs)

        dask_engine.DaskEngine.run_passes = recording
        try:
            disturbed = make([kill_at_third_iteration]).fit(lazy)
        finally:
            dask_engine.DaskEngine.run_passes = original
        assert killed and routes[0] == "actors" and routes[-1] == "tasks"
        client.wait_for_workers(2, timeout=60)
    np.testing.assert_allclose(disturbed.means_, undisturbed.means_, rtol=0, atol=1e-8)
    np.testing.assert_allclose(disturbed.covariances_, undisturbed.covariances_, rtol=0,
                               atol=1e-8)
