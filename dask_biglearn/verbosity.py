"""The ``verbose`` parameter: progress through the ``dask_biglearn`` logger, never print."""

from __future__ import annotations

import logging
from contextlib import contextmanager

logger = logging.getLogger("dask_biglearn")


@contextmanager
def verbosity(verbose):
    """Route progress to the ``dask_biglearn`` logger at INFO (verbose=1) or DEBUG (>= 2).

    A stderr handler is added for the duration when the logger has none; the logger's level
    (and handlers) are restored on exit.

    Parameters
    ----------
    verbose : int or bool
        The estimators' ``verbose``: 0 (or False) leaves the logger alone, 1 logs at INFO,
        2 or more at DEBUG.

    Yields
    ------
    None
        Control returns to the ``with`` block, with the logger so set.
    """
    if not verbose:
        yield
        return
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
