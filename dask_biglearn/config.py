"""Configuration read on the driver, once per process.

``biglearn.compiled`` (a Dask configuration key, so it can be set in a Dask YAML file, with
``dask.config.set`` before the first fit, or as ``DASK_BIGLEARN__COMPILED``): whether passes
run the numba twins of the element-wise kernels. Its default comes from the environment
variable ``DASK_BIGLEARN_NUMBA`` (``0`` turns them off). It is read once per process; the
value travels to the workers inside every :class:`~dask_biglearn.kernels.passes.PassSpec`, so
driver and workers always run the same code.

``biglearn.driver-sample-bytes`` (default 1 GiB): how big a row sample of the scalable mode
may be and still be kept in the driver's memory (see :func:`driver_sample_bytes`).
"""

from __future__ import annotations

import os
from functools import cache

from .kernels._compiled import NUMBA_AVAILABLE

COMPILED_KEY = "biglearn.compiled"


@cache
def compiled_kernels() -> bool:
    """Whether the compiled kernels run in this process's fits (numba importable and not
    turned off by ``biglearn.compiled`` or ``DASK_BIGLEARN_NUMBA=0``)."""
    import dask.config

    default = os.environ.get("DASK_BIGLEARN_NUMBA", "1") != "0"
    value = dask.config.get(COMPILED_KEY, default)
    if isinstance(value, str):
        value = value.strip().lower() not in ("0", "false", "no", "off", "")
    return bool(value) and NUMBA_AVAILABLE


DRIVER_SAMPLE_KEY = "biglearn.driver-sample-bytes"
#: The default of ``biglearn.driver-sample-bytes``.
DRIVER_SAMPLE_BYTES = 2**30


def driver_sample_bytes() -> int:
    """``biglearn.driver-sample-bytes`` (read at every fit; a number of bytes or a string
    such as ``"512 MiB"``): the largest row sample of the scalable mode kept in the driver's
    memory; a bigger one stays on the workers, persisted."""
    import dask.config
    from dask.utils import parse_bytes

    value = dask.config.get(DRIVER_SAMPLE_KEY, DRIVER_SAMPLE_BYTES)
    return int(parse_bytes(value) if isinstance(value, str) else value)
