"""The ``verbose`` parameter: progress through the ``dask_biglearn`` logger, never print."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from contextvars import ContextVar

logger = logging.getLogger("dask_biglearn")

_INTERVAL = ContextVar("verbose_interval", default=1)


def log_interval() -> int:
    """Iterations between the per-iteration progress lines (``verbose_interval``).

    Returns
    -------
    int
        The interval the current :func:`verbosity` context set, 1 outside of one.
    """
    return _INTERVAL.get()


@contextmanager
def verbosity(verbose, interval: int = 1):
    """Route progress to the ``dask_biglearn`` logger at INFO (verbose=1) or DEBUG (>= 2).

    A stderr handler is added for the duration when the logger has none; the logger's level
    (and handlers) are restored on exit.

    Parameters
    ----------
    verbose : int or bool
        The estimators' ``verbose``: 0 (or False) leaves the logger alone, 1 logs at INFO,
        2 or more at DEBUG.
    interval : int, default=1
        The estimators' ``verbose_interval``: plain EM's per-iteration lines (DEBUG) are
        logged every this many iterations (:func:`log_interval`).

    Yields
    ------
    None
        Control returns to the ``with`` block, with the logger so set.
    """
    token = _INTERVAL.set(max(1, int(interval)))
    try:
        if not verbose:
            yield
            return
        with _logger_at(verbose):
            yield
    finally:
        _INTERVAL.reset(token)


@contextmanager
def _logger_at(verbose):
    """The ``dask_biglearn`` logger at INFO or DEBUG, with a stderr handler if it has none;
    restored on exit."""
    old_level = logger.level
    logger.setLevel(logging.INFO if verbose == 1 else logging.DEBUG)
    handler = None
    if not logger.hasHandlers():
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[dask_biglearn] %(message)s"))
        logger.addHandler(handler)
    try:
        yield
    finally:
        logger.setLevel(old_level)
        if handler is not None:
            logger.removeHandler(handler)
