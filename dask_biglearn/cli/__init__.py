"""The command line, ``dask-biglearn``: thin commands, io -> estimator -> io.

``make-data``, ``fit``, ``predict``, ``info`` and ``demo``. Exit codes: 0 on success, 2 for bad
arguments (argparse's, and values or options that do not go together), 1 with one line on
stderr for anything else that stops a command (an unreadable store, a file that is not ours,
an output that exists or cannot be written, a scheduler that cannot be reached or is lost),
130 on Ctrl-C and 143 on SIGTERM (what Kubernetes, systemd and SLURM send to stop a job),
each with one line: both unwind the command as an error does, so temporary files and staged
outputs are removed and the last checkpoint is kept.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading

from .cluster import SchedulerLostError, Terminated
from .commands import UsageError, add_fit, add_info, add_make_data, add_predict
from .demo import add_demo
from .select import add_select

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Build the ``dask-biglearn`` argument parser with all its subcommands.

    Each subcommand sets ``func``, the function :func:`main` calls with the parsed
    arguments.

    Returns
    -------
    parser : argparse.ArgumentParser
        The parser of ``make-data``, ``fit``, ``select``, ``predict``, ``info`` and
        ``demo``.
    """
    parser = argparse.ArgumentParser(
        prog="dask-biglearn",
        description="Gaussian mixtures fitted with BigLearn-EM on Dask.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add_make_data(sub)
    add_fit(sub)
    add_select(sub)
    add_predict(sub)
    add_info(sub)
    add_demo(sub)
    return parser


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text


@contextlib.contextmanager
def _sigterm_raises_terminated():
    """While the block runs (in the main thread), the first SIGTERM raises
    :class:`~dask_biglearn.cli.cluster.Terminated`, a ``KeyboardInterrupt``, so the command
    unwinds through the same cleanup as on Ctrl-C; SIGTERMs that come during that cleanup are
    ignored (SIGKILL is the way to cut it short). The previous handler is restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised = []

    def terminate(signum, frame):
        if not raised:
            raised.append(signum)
            raise Terminated("terminated (SIGTERM)")

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv=None) -> int:
    """Run the ``dask-biglearn`` command line.

    Errors that stop a command are printed as one line on stderr that names the command,
    never as a traceback from deep inside (unless the ``dask_biglearn`` logger is at DEBUG,
    which re-raises them); a lost scheduler is named as such. SIGTERM during the command is
    handled as Ctrl-C is (the command unwinds, removing its temporary files and staged
    outputs and keeping the last checkpoint), with its own line and exit code.

    Parameters
    ----------
    argv : list of str, optional
        The arguments, without the program name; ``sys.argv[1:]`` if None.

    Returns
    -------
    exit_code : int
        0 on success, 1 when a command fails, 2 for arguments that cannot be run together,
        130 when interrupted (SIGINT, Ctrl-C), 143 when terminated (SIGTERM); argparse exits
        with 2 on bad arguments.
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
    name = f"dask-biglearn {args.command}"
    with _sigterm_raises_terminated():
        try:
            return args.func(args)
        except Terminated:
            print(f"{name}: terminated", file=sys.stderr, flush=True)
            return 143  # 128 + SIGTERM, what a shell reports for a process SIGTERM ended
        except KeyboardInterrupt:
            print(f"{name}: interrupted", file=sys.stderr, flush=True)
            return 130
        except UsageError as exc:
            print(f"{name}: error: {_one_line(exc)}", file=sys.stderr, flush=True)
            return 2
        except (SystemExit, GeneratorExit):
            raise
        except BaseException as exc:  # one line, never a traceback from deep inside
            # (BaseException: asyncio's CancelledError, which a cancelled Dask future
            # raises, is not an Exception.)
            from distributed.comm.core import CommClosedError

            lost = (isinstance(exc, CommClosedError) or "scheduler-connection-lost" in str(exc)
                    ) and not isinstance(exc, SchedulerLostError)
            kind = "lost the Dask scheduler: " if lost else ""
            print(f"{name}: error: {kind}{_one_line(exc)}", file=sys.stderr, flush=True)
            if logging.getLogger("dask_biglearn").isEnabledFor(logging.DEBUG):
                raise
            return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
