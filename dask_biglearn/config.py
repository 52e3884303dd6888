"""Configuration read on the driver: Dask configuration keys of our own.

Every key can be set in a Dask YAML file, with ``dask.config.set`` or as an environment
variable (``DASK_BIGLEARN__COMPILED=0``, ``DASK_BIGLEARN__PERSIST=false``, ...):

``biglearn.compiled``
    Whether passes run the numba twins of the element-wise kernels. Its default comes from
    the environment variable ``DASK_BIGLEARN_NUMBA`` (``0`` turns them off). It is read once
    per process; the value travels to the workers inside every
    :class:`~dask_biglearn.kernels.passes.PassSpec`, so driver and workers always run the same
    code.
``biglearn.driver-sample-bytes`` (default ``"auto"``)
    How big a row sample of the scalable mode may be and still be kept in the driver's
    memory; a bigger one stays on the workers, persisted. ``"auto"``: none on a
    ``distributed`` cluster (the workers hold the sample and explore on it with all their
    cores), 1 GiB on a local scheduler.
``biglearn.persist`` (default ``"auto"``)
    On a ``distributed`` cluster, whether an engine persists the data it reads: ``"auto"``
    when it takes at most half of the cluster's memory, ``True`` always, ``False`` never
    (out of core: every pass reads the source).
``biglearn.actors`` (default ``"auto"``)
    On a cluster, whether passes over persisted data run through one actor per worker
    (``"auto"``: for data up to ``biglearn.actor-pass-bytes``, 256 MiB), or through the
    scheduler as tasks (``False``).
``biglearn.float32-products`` (default ``False``)
    Whether the passes over float32 data form its features and run their matrix products in
    float32 (faster passes, half the memory traffic: ``benchmarks/README.md``; the statistics
    are still summed in float64). The products' rounding moves an update by about 1e-6 of the data's
    scale (``benchmarks/bench_pass.py``), and since each sub-block's sums are rounded in
    float32, a fit then depends on the chunking at that level: off by default, every pass
    runs in float64 and a seed gives the same fit whatever the chunking.
``split_every`` (Dask's own key)
    Fan-in of the tree reduction of the per-chunk statistics, when an estimator's or
    engine's ``split_every`` is None (default 8).
"""

from __future__ import annotations

import os
from functools import cache
from numbers import Integral

from .kernels._compiled import NUMBA_AVAILABLE

COMPILED_KEY = "biglearn.compiled"
DRIVER_SAMPLE_KEY = "biglearn.driver-sample-bytes"
PERSIST_KEY = "biglearn.persist"
ACTORS_KEY = "biglearn.actors"
ACTOR_PASS_BYTES_KEY = "biglearn.actor-pass-bytes"
FLOAT32_PRODUCTS_KEY = "biglearn.float32-products"

#: The default of ``biglearn.driver-sample-bytes``.
DRIVER_SAMPLE_BYTES = 2**30
#: The default of ``biglearn.actor-pass-bytes``: with ``biglearn.actors="auto"``, passes run
#: through actors when the persisted data takes at most this many bytes (there a pass is short
#: and the scheduler's round trips are a large part of it).
ACTOR_PASS_BYTES = 256 * 2**20
#: The fan-in of the tree reduction when neither the caller nor Dask's configuration says.
DEFAULT_SPLIT_EVERY = 8

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _flag(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE
    return bool(value)


@cache
def compiled_kernels() -> bool:
    """Whether the compiled kernels run in this process's fits.

    Returns
    -------
    compiled : bool
        True when numba is importable and neither ``biglearn.compiled`` nor
        ``DASK_BIGLEARN_NUMBA=0`` turned the compiled kernels off.
    """
    import dask.config

    default = os.environ.get("DASK_BIGLEARN_NUMBA", "1") != "0"
    return _flag(dask.config.get(COMPILED_KEY, default)) and NUMBA_AVAILABLE


def float32_products(dtype) -> bool:
    """Whether passes over data of ``dtype`` run their products in float32.

    Parameters
    ----------
    dtype : numpy.dtype
        The data's type.

    Returns
    -------
    float32 : bool
        True for float32 data when ``biglearn.float32-products`` is on (read at every
        engine's construction).
    """
    import dask.config
    import numpy as np

    return (np.dtype(dtype) == np.float32
            and _flag(dask.config.get(FLOAT32_PRODUCTS_KEY, False)))


def _bytes(key: str, default: int) -> int:
    import dask.config
    from dask.utils import parse_bytes

    value = dask.config.get(key, default)
    return int(parse_bytes(value) if isinstance(value, str) else value)


def driver_sample_bytes(on_cluster: bool) -> int:
    """The largest row sample of the scalable mode kept in the driver's memory.

    Read at every fit from ``biglearn.driver-sample-bytes`` (a number of bytes or a string
    such as ``"512 MiB"``, or ``"auto"``); a bigger sample stays on the workers, persisted.

    Parameters
    ----------
    on_cluster : bool
        Whether the data is on a ``distributed`` cluster, where ``"auto"`` keeps every
        sample on the workers.

    Returns
    -------
    n_bytes : int
    """
    import dask.config

    if str(dask.config.get(DRIVER_SAMPLE_KEY, "auto")).strip().lower() == "auto":
        return 0 if on_cluster else DRIVER_SAMPLE_BYTES
    return _bytes(DRIVER_SAMPLE_KEY, DRIVER_SAMPLE_BYTES)


def actor_pass_bytes() -> int:
    """The largest persisted data whose passes go through actors with ``actors="auto"``.

    Returns
    -------
    n_bytes : int
        ``biglearn.actor-pass-bytes`` (a number of bytes or a string such as ``"1 GiB"``).
    """
    return _bytes(ACTOR_PASS_BYTES_KEY, ACTOR_PASS_BYTES)


def _policy(key: str, value):
    """``"auto"``, True or False from an argument, else from the configuration key (where a
    string such as ``"false"`` from an environment variable counts too)."""
    from_config = value is None
    if from_config:
        import dask.config

        value = dask.config.get(key, "auto")
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "auto":
            return "auto"
        if from_config and (text in _TRUE or text in _FALSE):
            return text in _TRUE
    elif isinstance(value, bool):
        return value
    name = key.rpartition(".")[2]
    raise ValueError(f"{name} must be 'auto', True or False (Dask configuration key {key!r}), "
                     f"got {value!r}.")


def persist_policy(value=None):
    """Whether an engine persists the data on a cluster.

    Parameters
    ----------
    value : {"auto", True, False} or None, default=None
        The engine's argument; None reads ``biglearn.persist`` (default ``"auto"``).

    Returns
    -------
    policy : {"auto", True, False}
    """
    return _policy(PERSIST_KEY, value)


def actors_policy(value=None):
    """Whether passes over persisted data run through actors.

    Parameters
    ----------
    value : {"auto", True, False} or None, default=None
        The engine's argument; None reads ``biglearn.actors`` (default ``"auto"``).

    Returns
    -------
    policy : {"auto", True, False}
    """
    return _policy(ACTORS_KEY, value)


def split_every(value=None) -> int:
    """The fan-in of the tree reduction: the one place it is resolved and checked.

    Parameters
    ----------
    value : int or None, default=None
        An estimator's or engine's ``split_every``; None reads Dask's ``split_every``
        configuration key (a number, or a dict whose axis 0 entry counts), else 8.

    Returns
    -------
    split_every : int
        At least 2.
    """
    if value is None:
        import dask.config

        value = dask.config.get("split_every", None) or DEFAULT_SPLIT_EVERY
        if isinstance(value, dict):
            value = value.get(0, DEFAULT_SPLIT_EVERY)
    if not isinstance(value, Integral) or isinstance(value, bool) or value < 2:
        raise ValueError(f"split_every must be an integer >= 2, got {value!r}.")
    return int(value)
