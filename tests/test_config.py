"""One switch for the compiled kernels: the ``biglearn.compiled`` Dask configuration key,
defaulting to the ``DASK_BIGLEARN_NUMBA`` environment variable, read once per process on the
driver and carried to the workers inside every pass spec."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import dask_biglearn
from dask_biglearn.kernels._compiled import NUMBA_AVAILABLE

PROBE = (
    "import dask, numpy as np\n"
    "from dask_biglearn.config import compiled_kernels\n"
    "from dask_biglearn.engines import InProcessEngine\n"
    "first = compiled_kernels()\n"
    "dask.config.set({'biglearn.compiled': not first})\n"  # too late: read once
    "engine = InProcessEngine(np.random.default_rng(0).normal(size=(20, 2)))\n"
    "print(first, compiled_kernels(), engine.compiled)\n"
)


def _probe(**env):
    clean = {k: v for k, v in os.environ.items()
             if k not in ("DASK_BIGLEARN_NUMBA", "DASK_BIGLEARN__COMPILED")}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env},
                         capture_output=True, text=True, check=True, timeout=120)
    return out.stdout.split()


@pytest.mark.parametrize("env, expected", [
    ({}, NUMBA_AVAILABLE),
    ({"DASK_BIGLEARN_NUMBA": "0"}, False),
    ({"DASK_BIGLEARN__COMPILED": "False"}, False),
    ({"DASK_BIGLEARN_NUMBA": "0", "DASK_BIGLEARN__COMPILED": "True"}, NUMBA_AVAILABLE),
])
def test_the_switch_is_read_once_from_config_or_environment(env, expected):
    assert _probe(**env) == [str(expected)] * 3


def test_worker_side_code_reads_no_configuration():
    """The kernels take the choice from the spec: none of them looks at the environment."""
    for path in (Path(dask_biglearn.__file__).parent / "kernels").glob("*.py"):
        text = path.read_text()
        assert "os.environ" not in text and "dask.config" not in text, path


def test_the_driver_keeps_a_sample_only_off_a_cluster_unless_configured():
    import dask

    from dask_biglearn.config import DRIVER_SAMPLE_BYTES, driver_sample_bytes

    assert driver_sample_bytes(on_cluster=True) == 0
    assert driver_sample_bytes(on_cluster=False) == DRIVER_SAMPLE_BYTES
    with dask.config.set({"biglearn.driver-sample-bytes": "512 MiB"}):
        assert driver_sample_bytes(on_cluster=True) == driver_sample_bytes(False) == 2**29
    with dask.config.set({"biglearn.driver-sample-bytes": "AUTO"}):
        assert driver_sample_bytes(on_cluster=True) == 0
