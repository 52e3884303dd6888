"""Configuration read on the driver, once per process.

``biglearn.compiled`` (a Dask configuration key, so it can be set in a Dask YAML file, with
``dask.config.set`` before the first fit, or as ``DASK_BIGLEARN__COMPILED``): whether passes
run the numba twins of the element-wise kernels. Its default comes from the environment
variable ``DASK_BIGLEARN_NUMBA`` (``0`` turns them off). It is read once per process; the
value travels to the workers inside every :class:`~dask_biglearn.kernels.passes.PassSpec`, so
driver and workers always run the same code.
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
