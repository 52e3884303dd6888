"""Record checkpoints written mid-fit, to hold refactors to "a checkpoint written before the
change still resumes after it".

Run from the repository root: ``python tests/data/make_old_checkpoints.py --overwrite``. For
each mode in :data:`MODES` it runs the fit in a child process that SIGKILLs itself after
``KILL_AFTER`` iterations (a checkpoint every 2), keeps the checkpoint as
``tests/data/checkpoint-<mode>.ckpt``, and records the parameters of the same fit run to the
end, uninterrupted, in ``tests/data/checkpoint_results.npz``. ``tests/fit/test_checkpoint.py``
resumes each file with the code of the day and compares at 1e-10. The files were first
written on main at 90d55af, before the fit program left the estimator (issue 14). The modes
pin the defaults of that day that have changed since (``init_params``,
``n_iter_no_change``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
RESULTS = HERE / "checkpoint_results.npz"
KILL_AFTER = 25

#: Each mode's estimator, as an expression (``X`` is :func:`data`).
MODES = {
    "biglearn-restarts": ("BigLearnGaussianMixture(5, max_iter=80, n_init=4, "
                          "init_params='kmeans', n_iter_no_change=100, "
                          "random_state=3)"),
    "biglearn-scalable": ("BigLearnGaussianMixture(5, max_iter=60, n_init=3, sample_size=1500,"
                          " init_params='kmeans', n_iter_no_change=100, "
                          "random_state=3)"),
    "em-restarts": "GaussianMixture(5, init_params='kmeans', n_init=4, tol=1e-8, "
                   "max_iter=300, random_state=3)",
}

SETUP = """
from dask_biglearn import BigLearnGaussianMixture, GaussianMixture, datasets
truth = datasets.random_mixture(2, 5, separation=1.5, random_state=1)
X = datasets.sample_mixture(*truth, 4000, random_state=2)[0]
"""


def checkpoint_path(mode: str) -> Path:
    return HERE / f"checkpoint-{mode}.ckpt"


def one_thread_env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1"}


def _write_killed(mode: str) -> None:
    path = checkpoint_path(mode)
    path.unlink(missing_ok=True)
    script = SETUP + textwrap.dedent(f"""
        import os, signal
        seen = [0]
        def die(state, event):
            if event == "iteration":
                seen[0] += 1
                if seen[0] == {KILL_AFTER}:
                    os.kill(os.getpid(), signal.SIGKILL)
        model = {MODES[mode]}
        model.set_params(checkpoint={str(path)!r}, checkpoint_every=2, callbacks=[die])
        model.fit(X)
    """)
    done = subprocess.run([sys.executable, "-c", script], env=one_thread_env(), check=False)
    assert done.returncode == -signal.SIGKILL and path.exists(), mode


def _uninterrupted(mode: str) -> dict[str, np.ndarray]:
    script = SETUP + textwrap.dedent(f"""
        import sys
        import numpy as np
        model = {MODES[mode]}.fit(X)
        np.savez(sys.stdout.buffer, weights=model.weights_, means=model.means_,
                 covariances=model.covariances_, lower_bound=model.lower_bound_)
    """)
    import io

    done = subprocess.run([sys.executable, "-c", script], env=one_thread_env(), check=True,
                          capture_output=True)
    with np.load(io.BytesIO(done.stdout), allow_pickle=False) as npz:
        return {f"{mode}/{name}": npz[name] for name in npz.files}


def main() -> None:
    if "--overwrite" not in sys.argv and RESULTS.exists():
        sys.exit(f"{RESULTS} exists; pass --overwrite to record it again.")
    results = {}
    for mode in MODES:
        _write_killed(mode)
        results.update(_uninterrupted(mode))
    np.savez(RESULTS, **results)
    print(f"wrote {RESULTS} and {len(MODES)} checkpoints")


if __name__ == "__main__":
    main()
