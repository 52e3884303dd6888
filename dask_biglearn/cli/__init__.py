"""The command line, ``dask-biglearn``: thin commands, io -> estimator -> io.

The commands:

- ``make-data``: write synthetic Gaussian-mixture data to a Zarr group;
- ``fit``: fit a mixture to a Zarr array and save the model (with checkpoints, ``--resume``
  and ``--init-model``);
- ``select``: choose the number of components (and covariance type) in one sweep, save the
  best model, draw the criterion against K;
- ``predict``: write a model's labels (log-likelihoods, responsibilities) for a Zarr array
  to a new Zarr group;
- ``impute``: write a Zarr array with its missing values (NaN) imputed under a model
  (conditional means, or one draw of a multiple imputation) to a new Zarr group;
- ``info``: describe a model file;
- ``demo``: the real job, in small, on a LocalCluster (``demo --grid``: the paper's 2-D
  simulation).

The commands live in :mod:`.commands`, :mod:`.select` and :mod:`.demo`; the options they share
and the types of their values in :mod:`.options`, the safety of their outputs in
:mod:`.outputs`, where they compute in :mod:`.cluster`.

Exit codes: 0 on success, 2 for bad arguments (a value out of range, options that do not go
together; one line), 1 with one line on stderr for anything else that stops a command (an
unreadable store, a file that is not ours, an output that exists or cannot be written, a
scheduler that cannot be reached or is lost), 130 on Ctrl-C and 143 on SIGTERM (what
Kubernetes, systemd and SLURM send to stop a job), each with one line: both unwind the command
as an error does, so temporary files and staged outputs are removed and the last checkpoint is
kept. This package imports only the standard library until :func:`main` runs, so a Ctrl-C
from the start is reported so too.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # at run time argparse comes with the parser, inside main's handlers
    import argparse

__all__ = ["COMMANDS", "build_parser", "main"]

#: The subcommands, in the order of ``--help``.
COMMANDS = ("make-data", "fit", "select", "predict", "impute", "info", "demo")


def build_parser() -> argparse.ArgumentParser:
    """Build the ``dask-biglearn`` argument parser with all its subcommands.

    Each subcommand sets ``func``, the function :func:`main` calls with the parsed
    arguments. Its errors are one line (:class:`~.options.OneLineParser`).

    Returns
    -------
    parser : argparse.ArgumentParser
        The parser of :data:`COMMANDS`.
    """
    from .commands import add_fit, add_impute, add_info, add_make_data, add_predict
    from .demo import add_demo
    from .options import OneLineParser
    from .select import add_select

    parser = OneLineParser(
        prog="dask-biglearn",
        description="Gaussian mixtures fitted with BigLearn-EM on Dask.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (add_make_data, add_fit, add_select, add_predict, add_impute, add_info,
                add_demo):
        add(sub)
    return parser


@contextlib.contextmanager
def _sigterm_raises_terminated(terminated):
    """While the block runs (in the main thread), the first SIGTERM raises ``terminated``
    (:class:`~dask_biglearn.cli.cluster.Terminated`, a ``KeyboardInterrupt``), so the command
    unwinds through the same cleanup as on Ctrl-C; SIGTERMs that come during that cleanup are
    ignored (SIGKILL is the way to cut it short). The previous handler is restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised = []

    def terminate(signum, frame):
        if not raised:
            raised.append(signum)
            raise terminated("terminated (SIGTERM)")

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _command_name(argv) -> str:
    """``dask-biglearn COMMAND`` when ``argv`` names one, else ``dask-biglearn``."""
    command = next((a for a in argv if not a.startswith("-")), None)
    return f"dask-biglearn {command}" if command in COMMANDS else "dask-biglearn"


def _run(argv) -> int:
    """Parse ``argv`` and run its command (argparse's exit, with its code, is returned)."""
    import logging

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0), a bad argument (2, one line said)
        return exc.code if isinstance(exc.code, int) else 0
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
    # An interrupted gather leaves a task that raised distributed's AllExit, which asyncio
    # reports when it is collected ("Task exception was never retrieved"), after our line.
    logging.getLogger("asyncio").addFilter(_without_all_exit)
    return args.func(args)


def _without_all_exit(record) -> bool:
    """A logging filter: False for asyncio's report of a task that raised ``AllExit`` (the
    client's gather, when an interrupt closed the client), True for any other record."""
    exc = record.exc_info[1] if record.exc_info else None
    return type(exc).__name__ != "AllExit"


def _lost_scheduler(exc) -> bool:
    """Whether ``exc`` says that the scheduler went away (and does not say so itself)."""
    from .cluster import SchedulerLostError

    if isinstance(exc, SchedulerLostError):
        return False
    try:
        from distributed.comm.core import CommClosedError
    except ImportError:  # pragma: no cover - without distributed nothing was lost
        return False
    return isinstance(exc, CommClosedError) or "scheduler-connection-lost" in str(exc)


def main(argv=None) -> int:
    """Run the ``dask-biglearn`` command line.

    Errors that stop a command are printed as one line on stderr that names the command,
    never as a traceback from deep inside (unless the ``dask_biglearn`` logger is at DEBUG,
    which re-raises them); a lost scheduler is named as such. SIGTERM during the command is
    handled as Ctrl-C is (the command unwinds, removing its temporary files and staged
    outputs and keeping the last checkpoint), with its own line and exit code; both are
    handled from the first line of this function, imports and parsing included.

    Parameters
    ----------
    argv : list of str, optional
        The arguments, without the program name; ``sys.argv[1:]`` if None.

    Returns
    -------
    exit_code : int
        0 on success, 1 when a command fails, 2 for bad arguments or arguments that cannot
        be run together, 130 when interrupted (SIGINT, Ctrl-C), 143 when terminated
        (SIGTERM).
    """
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    name = _command_name(argv)
    try:  # the command line's own modules: the standard library only (quick)
        from .cluster import Terminated
        from .options import UsageError
        from .outputs import one_line
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr, flush=True)
        return 130
    with _sigterm_raises_terminated(Terminated):
        try:
            return _run(argv)
        except Terminated:
            print(f"{name}: terminated", file=sys.stderr, flush=True)
            return 143  # 128 + SIGTERM, what a shell reports for a process SIGTERM ended
        except KeyboardInterrupt:
            print(f"{name}: interrupted", file=sys.stderr, flush=True)
            return 130
        except UsageError as exc:
            print(f"{name}: error: {one_line(exc)}", file=sys.stderr, flush=True)
            return 2
        except (SystemExit, GeneratorExit):
            raise
        except BaseException as exc:  # one line, never a traceback from deep inside
            # (BaseException: asyncio's CancelledError, which a cancelled Dask future
            # raises, is not an Exception.)
            kind = "lost the Dask scheduler: " if _lost_scheduler(exc) else ""
            print(f"{name}: error: {kind}{one_line(exc)}", file=sys.stderr, flush=True)
            import logging

            if logging.getLogger("dask_biglearn").isEnabledFor(logging.DEBUG):
                raise
            return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
