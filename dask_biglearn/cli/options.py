"""The options the commands share, and the types of their values.

Every value is checked where argparse reads it: a value out of range is refused with exit code
2 and one line that names the option and says what it accepts
(``argument --seed: expected an integer from 0 to 4294967295, got '-1'``), never with the name
of a function of ours nor with scikit-learn's wording once the work has started. Options that
do not go together, and an embedded cluster that this machine cannot hold, are refused by
:func:`check_cluster_options` before any work, as a :class:`UsageError` (exit code 2 too).

This module imports only the standard library at import time: the command line imports it
before it can report a Ctrl-C in one line.
"""

from __future__ import annotations

import argparse
import math
import os

__all__ = ["MAX_WORKERS_PER_CORE", "OneLineParser", "UsageError", "add_overwrite_option",
           "add_store_options", "check_cluster_options", "covariance_types", "fraction",
           "key_value", "non_negative_float", "non_negative_int", "path", "positive_float",
           "positive_int", "sample_size", "say", "seed", "storage_options",
           "uses_embedded_cluster"]

#: Worker processes per core that an embedded ``LocalCluster`` may start: more only thrash
#: (each worker is a process of one thread), and a mistyped ``--n-workers 100000`` would
#: spend minutes starting workers.
MAX_WORKERS_PER_CORE = 4

#: The largest seed scikit-learn's ``random_state`` accepts.
MAX_SEED = 2**32 - 1


class UsageError(ValueError):
    """A command line that cannot be run as given (values or options that do not go
    together): :func:`dask_biglearn.cli.main` reports it as argparse reports a bad argument,
    with exit code 2, in one line."""


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, ``PROG: error: MESSAGE`` (exit code 2),
    as every other error of the command line is: the usage is what ``--help`` is for.

    Parameters
    ----------
    *args, **kwargs
        As :class:`argparse.ArgumentParser` takes them (its subcommands' parsers are of this
        class too).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)

    def error(self, message):
        """Print ``PROG: error: MESSAGE`` on stderr and exit with code 2.

        Parameters
        ----------
        message : str
            What argparse found wrong.
        """
        self.exit(2, f"{self.prog}: error: {message}\n")


# ---- types of values ---------------------------------------------------------------------------


def _integer(text: str) -> int | None:
    """``text`` as an integer (``1_000``, ``1e6`` and ``5.0`` included), or None."""
    cleaned = str(text).strip().replace("_", "")
    try:
        return int(cleaned)
    except ValueError:
        pass
    try:
        value = float(cleaned)
    except ValueError:
        return None
    if not math.isfinite(value) or value != int(value):
        return None
    return int(value)


def _number(text: str) -> float | None:
    """``text`` as a finite float, or None."""
    try:
        value = float(str(text).strip().replace("_", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def positive_int(text: str) -> int:
    """An integer of at least 1 (``1_000`` and ``1e6`` are read as integers).

    Parameters
    ----------
    text : str
        The option's value.

    Returns
    -------
    int
    """
    value = _integer(text)
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """An integer of at least 0 (e.g. ``--max-iter 0``: the start only).

    Parameters
    ----------
    text : str
        The option's value.

    Returns
    -------
    int
    """
    value = _integer(text)
    if value is None or value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def seed(text: str) -> int:
    """A seed: an integer from 0 to 2**32 - 1, what ``random_state`` accepts.

    Parameters
    ----------
    text : str
        The option's value.

    Returns
    -------
    int
    """
    value = _integer(text)
    if value is None or not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to {MAX_SEED}, got "
                                         f"{text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number above 0 (a time, a floor).

    Parameters
    ----------
    text : str
        The option's value.

    Returns
    -------
    float
    """
    value = _number(text)
    if value is None or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number of at least 0 (NaN and infinity are refused).

    Parameters
    ----------
    text : str
        The option's value.

    Returns
    -------
    float
    """
    value = _number(text)
    if value is None or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def fraction(text: str) -> float:
    """A fraction from 0 (included) to 1 (excluded), e.g. of rows held out.

    Parameters
    ----------
    text : str
        The option's value.

    Returns
    -------
    float
    """
    value = _number(text)
    if value is None or not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction from 0 to 1 (1 excluded), got "
                                         f"{text!r}")
    return value


def sample_size(text: str) -> str | int | float:
    """The scalable mode's sample: ``auto``, a number of rows, or a fraction of the rows
    written with a point (``0.01``, ``1.0``).

    Parameters
    ----------
    text : str
        The option's value.

    Returns
    -------
    "auto", int or float
    """
    if text == "auto":
        return "auto"
    value = _number(text)
    if value is not None and 0 < value <= 1 and "." in text:
        return value
    rows = _integer(text)
    if rows is None or rows < 1:
        raise argparse.ArgumentTypeError(f"expected auto, a number of rows (e.g. 5000) or a "
                                         f"fraction of the rows in (0, 1] (e.g. 0.01), got "
                                         f"{text!r}")
    return rows


def path(text: str) -> str:
    """A path (or an fsspec URL): any text but the empty one.

    Parameters
    ----------
    text : str
        The option's value.

    Returns
    -------
    str
    """
    if not str(text).strip():
        raise argparse.ArgumentTypeError(f"expected a path, got {text!r}")
    return text


def key_value(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` (an fsspec storage option).

    Parameters
    ----------
    text : str
        The option's value.

    Returns
    -------
    tuple of (str, str)
    """
    key, sep, value = str(text).partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def covariance_types(text: str) -> tuple[str, ...]:
    """A comma list of covariance types (each of
    :data:`dask_biglearn.algebra.COVARIANCE_TYPES`), without repeats.

    Parameters
    ----------
    text : str
        The option's value.

    Returns
    -------
    tuple of str
    """
    from ..algebra import COVARIANCE_TYPES

    types = tuple(t.strip() for t in str(text).split(",") if t.strip())
    if not types or any(t not in COVARIANCE_TYPES for t in types):
        raise argparse.ArgumentTypeError(f"expected a comma list of {', '.join(COVARIANCE_TYPES)}"
                                         f", got {text!r}")
    return tuple(dict.fromkeys(types))


# ---- options several commands take -------------------------------------------------------------


def add_store_options(parser):
    """Add the input store, ``--array``, ``--storage-option`` and ``--allow-missing-chunks``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        A subcommand's parser.
    """
    parser.add_argument("store", metavar="STORE", type=path,
                        help="Zarr store (path or fsspec URL)")
    parser.add_argument("--array", default=None, help="the array inside a group (default X)")
    parser.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE",
                        type=key_value, help="an fsspec storage option (repeatable)")
    parser.add_argument("--allow-missing-chunks", action="store_true",
                        help="read the chunks missing from the store as its fill value. A "
                             "chunk is missing when the store is incomplete (still being "
                             "written), or when its writer left out chunks equal to the fill "
                             "value (Zarr's write_empty_chunks=False); give it only for a "
                             "store known to be complete")


def add_overwrite_option(parser, what):
    """Add ``--overwrite``, which replaces ``what`` if it exists.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        A subcommand's parser.
    what : str
        The outputs it replaces, for the help.
    """
    parser.add_argument("--overwrite", action="store_true",
                        help=f"replace {what} if it exists (refused otherwise)")


def storage_options(items) -> dict | None:
    """The fsspec storage options of ``--storage-option`` (None when none is given).

    Parameters
    ----------
    items : list of tuple of (str, str)
        The parsed ``KEY=VALUE`` pairs.

    Returns
    -------
    dict or None
    """
    return dict(items) or None


def say(args):
    """The function that prints a command's progress lines: ``print`` (flushed), or nothing
    with ``--quiet`` or ``--json``.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments.

    Returns
    -------
    callable
    """
    quiet = getattr(args, "quiet", False) or getattr(args, "json", False)
    return (lambda *a, **k: None) if quiet else (lambda *a, **k: print(*a, **k, flush=True))


# ---- the cluster options, checked before any work ----------------------------------------------


def _cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # pragma: no cover - not Linux


def uses_embedded_cluster(args) -> bool:
    """Whether the command will start its own ``LocalCluster`` (no running scheduler named by
    an option or by Dask's setting ``scheduler-address``).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments, with the cluster options.

    Returns
    -------
    bool
    """
    import dask.config

    named = (getattr(args, "scheduler", None), getattr(args, "scheduler_file", None),
             getattr(args, "scheduler_address", None))
    return not any(named) and not dask.config.get("scheduler-address", None)


def check_cluster_options(args) -> None:
    """Refuse cluster options that cannot work, before any cluster starts or any work is done.

    ``--n-workers`` (at least 1, argparse checks it) may not exceed
    :data:`MAX_WORKERS_PER_CORE` per core of this machine for an embedded cluster (a typo
    would start workers for minutes); ``--tls-ca-file``, ``--tls-cert`` and ``--tls-key`` go
    together and must name files that exist.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments, with the cluster options.

    Raises
    ------
    UsageError
        For options that do not go together, or too many embedded workers.
    FileNotFoundError
        For a ``--tls-*`` file that does not exist (one line naming the option and the file).
    """
    n_workers = getattr(args, "n_workers", None)
    cap = MAX_WORKERS_PER_CORE * _cores()
    if n_workers is not None and n_workers > cap and uses_embedded_cluster(args):
        raise UsageError(f"argument --n-workers: {n_workers} workers of one thread for the "
                         f"embedded LocalCluster, on {_cores()} cores: at most {cap} "
                         f"({MAX_WORKERS_PER_CORE} per core); give fewer, or a --scheduler.")
    given = {"--tls-ca-file": getattr(args, "tls_ca_file", None),
             "--tls-cert": getattr(args, "tls_cert", None),
             "--tls-key": getattr(args, "tls_key", None)}
    if any(given.values()) and not all(given.values()):
        raise UsageError("--tls-ca-file, --tls-cert and --tls-key go together.")
    for option, name in given.items():
        if name and not os.path.isfile(os.path.expanduser(name)):
            raise FileNotFoundError(f"{option} {name}: no such file.")
