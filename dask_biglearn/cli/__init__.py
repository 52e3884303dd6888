"""The command line, ``dask-biglearn``: thin commands, io -> estimator -> io.

``make-data``, ``fit``, ``predict``, ``info`` and ``demo``. Exit codes: 0 on success, 2 for bad
arguments (argparse's), 1 with one line on stderr for anything else that stops a command (an
unreadable store, a file that is not ours, a scheduler that cannot be reached or is lost).
"""

from __future__ import annotations

import argparse
import logging
import sys

from .cluster import SchedulerLostError
from .commands import add_fit, add_info, add_make_data, add_predict
from .demo import add_demo

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Build the ``dask-biglearn`` argument parser with all its subcommands.

    Each subcommand sets ``func``, the function :func:`main` calls with the parsed
    arguments.

    Returns
    -------
    parser : argparse.ArgumentParser
        The parser of ``make-data``, ``fit``, ``predict``, ``info`` and ``demo``.
    """
    parser = argparse.ArgumentParser(
        prog="dask-biglearn",
        description="Gaussian mixtures fitted with BigLearn-EM on Dask.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add_make_data(sub)
    add_fit(sub)
    add_predict(sub)
    add_info(sub)
    add_demo(sub)
    return parser


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text


def main(argv=None) -> int:
    """Run the ``dask-biglearn`` command line.

    Errors that stop a command are printed as one line on stderr, never as a traceback from
    deep inside (unless the ``dask_biglearn`` logger is at DEBUG, which re-raises them); a
    lost scheduler is named as such.

    Parameters
    ----------
    argv : list of str, optional
        The arguments, without the program name; ``sys.argv[1:]`` if None.

    Returns
    -------
    exit_code : int
        0 on success, 1 when a command fails, 130 when interrupted (argparse exits with 2 on
        bad arguments).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "verbose", False):
        logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s")
        logging.getLogger("dask_biglearn").setLevel(logging.INFO)
    if getattr(args, "quiet", False) or getattr(args, "json", False):
        logging.getLogger("dask_biglearn").addHandler(logging.NullHandler())  # one line only
    if not getattr(args, "verbose", False):
        # distributed logs a traceback when the scheduler goes away; our one line says it.
        # (Imported first: importing distributed sets its loggers' levels.)
        import distributed  # noqa: F401

        logging.getLogger("distributed.client").setLevel(logging.CRITICAL)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("dask-biglearn: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line, never a traceback from deep inside
        from distributed.comm.core import CommClosedError

        lost = (isinstance(exc, CommClosedError) or "scheduler-connection-lost" in str(exc)
                ) and not isinstance(exc, SchedulerLostError)
        kind = "lost the Dask scheduler: " if lost else ""
        print(f"dask-biglearn {args.command}: error: {kind}{_one_line(exc)}", file=sys.stderr)
        if logging.getLogger("dask_biglearn").isEnabledFor(logging.DEBUG):
            raise
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
