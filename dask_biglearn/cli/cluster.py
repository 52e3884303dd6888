"""Where a command computes: a running scheduler (address or scheduler file, with TLS if
asked) or an embedded ``LocalCluster``.

TLS asked for by the ``--tls-*`` options or by Dask's configuration
(``distributed.comm.require-encryption``, ``distributed.comm.tls.*``) requires encryption:
a ``tcp://`` or scheme-less address is refused, never spoken to in plain text. The embedded
cluster's dashboard listens on 127.0.0.1 unless ``--dashboard-address`` says otherwise, its
workers log nothing below CRITICAL (a failed task is the command's one error line) and ignore
SIGINT (Ctrl-C reaches the whole process group; the command, not each worker, handles it);
when Dask's configuration requires encryption, it speaks TLS with a temporary certificate of
its own.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading

from .options import MAX_WORKERS_PER_CORE, UsageError, path, positive_float, positive_int

#: Dask configuration keys that ask for TLS when set.
TLS_CONFIG_KEYS = ("distributed.comm.require-encryption", "distributed.comm.tls.ca-file",
                   "distributed.comm.tls.client.cert", "distributed.comm.tls.client.key")

#: Address schemes that encrypt.
TLS_SCHEMES = ("tls", "wss")


class SchedulerLostError(ConnectionError):
    """The scheduler went away during a command."""


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived during a command: raised in the main thread (by the command line's
    handler), it unwinds the command as Ctrl-C does."""


def add_cluster_options(parser, *, memory_limit_default="auto"):
    """Add the options that choose where a command computes to a subcommand's parser.

    A running scheduler (``--scheduler`` or ``--scheduler-file``, with ``--tls-*`` for a TLS
    one), else the Dask setting ``scheduler-address``, else an embedded ``LocalCluster``
    (``--n-workers``, ``--memory-limit``, ``--dashboard-address``).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser; the options go into a group of their own.
    memory_limit_default : str, default="auto"
        The default of ``--memory-limit``, the memory limit per embedded worker.
    """
    group = parser.add_argument_group(
        "cluster (default: the Dask setting scheduler-address, e.g. DASK_SCHEDULER_ADDRESS, "
        "else an embedded LocalCluster)")
    where = group.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", type=path,
                       help="a running Dask scheduler, e.g. tcp://host:8786 or tls://host:8786")
    where.add_argument("--scheduler-file", metavar="FILE", type=path,
                       help="the scheduler file a running scheduler wrote")
    group.add_argument("--n-workers", type=positive_int, default=2,
                       help=f"workers of the embedded LocalCluster (one thread each; at "
                            f"most {MAX_WORKERS_PER_CORE} per core)")
    group.add_argument("--memory-limit", default=memory_limit_default,
                       help="memory limit per embedded worker, e.g. 600MB")
    group.add_argument("--dashboard-address", default="127.0.0.1:0",
                       help="dashboard of the embedded cluster (default 127.0.0.1:0: this "
                            "machine only, a free port; :0 listens on every interface)")
    group.add_argument("--tls-ca-file", metavar="FILE", help="CA certificate (PEM)")
    group.add_argument("--tls-cert", metavar="FILE", help="this client's certificate (PEM)")
    group.add_argument("--tls-key", metavar="FILE", help="this client's private key (PEM)")
    group.add_argument("--connect-timeout", type=positive_float, default=30.0, metavar="SECONDS",
                       help="give up reaching the scheduler after this long")


def _forget_failed_default_client():
    """A Client that failed to connect has already made itself the process's default (Dask
    would then send later work to a scheduler that is not there): undo that."""
    try:
        from distributed.client import _del_global_client, _global_clients
    except ImportError:  # pragma: no cover - distributed's layout changed
        return
    for client in list(_global_clients.values()):
        if client.status != "running":
            _del_global_client(client)
            with contextlib.suppress(Exception):
                client.close(timeout=1)


def tls_configured() -> list[str]:
    """The keys of Dask's configuration that ask for TLS (:data:`TLS_CONFIG_KEYS` that are set).

    Returns
    -------
    keys : list of str
        ``distributed.comm.require-encryption`` if true, and those of
        ``distributed.comm.tls.ca-file``, ``distributed.comm.tls.client.cert`` and
        ``distributed.comm.tls.client.key`` that name a file.
    """
    import dask.config

    return [key for key in TLS_CONFIG_KEYS if dask.config.get(key, None)]


def security_of(args):
    """Build a ``distributed.Security`` from the ``--tls-*`` options, or from Dask's TLS
    configuration.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments, with ``tls_ca_file``, ``tls_cert`` and ``tls_key``.

    Returns
    -------
    security : distributed.Security or None
        Encryption required, with the given CA, certificate and key; else, when Dask's
        configuration asks for TLS (:func:`tls_configured`), encryption required with the
        configuration's files, as the options would; None when neither asks for TLS.

    Raises
    ------
    UsageError
        If some but not all of the three options are given.
    """
    given = [args.tls_ca_file, args.tls_cert, args.tls_key]
    if any(given) and not all(given):
        raise UsageError("--tls-ca-file, --tls-cert and --tls-key go together.")
    if not any(given) and not tls_configured():
        return None
    from distributed import Security

    if not any(given):  # the configuration's files, encryption required as with the options
        return Security(require_encryption=True)
    return Security(tls_ca_file=args.tls_ca_file, tls_client_cert=args.tls_cert,
                    tls_client_key=args.tls_key, require_encryption=True)


def _refuse_plain_text(address, args):
    """Raise if TLS is asked for and ``address`` would not encrypt (a scheme-less address
    takes Dask's ``distributed.comm.default-scheme``, ``tcp`` unless configured)."""
    import dask.config

    scheme, sep, where = str(address).partition("://")
    if not sep:
        scheme, where = dask.config.get("distributed.comm.default-scheme", "tcp"), str(address)
    if scheme in TLS_SCHEMES:
        return
    asked = ("--tls-ca-file/--tls-cert/--tls-key" if args.tls_ca_file
             else "Dask's configuration: " + ", ".join(tls_configured()))
    raise ConnectionError(f"cannot reach the Dask scheduler at {address}: TLS is asked for "
                          f"({asked}) but the address is not tls://, and plain text is "
                          f"refused (give tls://{where})")


def _embedded_security() -> dict:
    """The embedded cluster's ``security``: when Dask's configuration requires encryption
    (``distributed.comm.require-encryption``), TLS with a temporary certificate of its own
    (the cluster lives in this process and its children only), else nothing."""
    import dask.config

    if not dask.config.get("distributed.comm.require-encryption", None):
        return {}
    from distributed import Security

    try:
        return {"security": Security.temporary()}
    except ImportError:
        raise ConnectionError("Dask's configuration requires encryption "
                              "(distributed.comm.require-encryption), and the embedded "
                              "LocalCluster needs the package cryptography to encrypt: "
                              "install it, or give --scheduler tls://...") from None


def _check_scheduler_file(name) -> None:
    """Refuse a scheduler file that exists but is not one (JSON with the scheduler's
    ``address``); one that does not exist yet is waited for, as Dask does."""
    where = os.path.expanduser(name)
    if not os.path.exists(where):
        return
    try:
        with open(where, encoding="utf-8") as handle:
            address = json.load(handle).get("address")
    except (OSError, ValueError, AttributeError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not JSON with the scheduler's address"
        raise ConnectionError(f"cannot reach the Dask scheduler: --scheduler-file {name} is "
                              f"not a scheduler file ({reason}).") from None
    if not isinstance(address, str) or not address:
        raise ConnectionError(f"cannot reach the Dask scheduler: --scheduler-file {name} is "
                              f"not a scheduler file (it names no address).")


def _local_cluster(args):
    """Start the embedded ``LocalCluster``: its worker processes are started with SIGINT
    ignored (a disposition they inherit; a Ctrl-C while they start is lost) and log nothing
    below CRITICAL (ERROR with ``--verbose``)."""
    from distributed import LocalCluster
    from distributed.gc import disable_gc_diagnosis

    quiet = logging.ERROR if getattr(args, "verbose", False) else logging.CRITICAL
    security = _embedded_security()
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        cluster = LocalCluster(n_workers=args.n_workers, threads_per_worker=1, processes=True,
                               memory_limit=args.memory_limit,
                               dashboard_address=args.dashboard_address,
                               worker_dashboard_address=None, silence_logs=quiet,
                               **security)
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)
    # The scheduler runs in this process, and its GC diagnosis (a log of long collections)
    # runs Python code in every collection: a Ctrl-C or SIGTERM that lands there is
    # swallowed ("Exception ignored in ... _gc_callback") and the command runs on.
    disable_gc_diagnosis(force=True)
    return cluster


@contextlib.contextmanager
def connect(args, log=print):
    """Connect to the cluster ``args`` ask for, for the duration of a ``with`` block.

    A running scheduler (``--scheduler``, ``--scheduler-file`` or the Dask setting
    ``scheduler-address``, which the Dask operator sets in a DaskJob's pod), else an
    embedded ``LocalCluster`` of single-threaded worker processes (dashboard on 127.0.0.1 by
    default, workers that ignore SIGINT and log nothing below CRITICAL). TLS asked for by
    the ``--tls-*`` options or Dask's configuration requires encryption: a scheduler address
    that is not ``tls://`` is refused. The client, and any embedded cluster, are closed on
    exit.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments, with the options of :func:`add_cluster_options`.
    log : callable, default=print
        Called with one line saying where the command computes (scheduler or cluster, and
        dashboard).

    Yields
    ------
    client : distributed.Client
        The client of the chosen cluster.

    Raises
    ------
    ConnectionError
        If the scheduler cannot be reached, or TLS is asked for and its address is not
        ``tls://``.
    SchedulerLostError
        If the scheduler goes away during the block.
    """
    import dask.config
    from distributed import Client

    if not (args.scheduler or args.scheduler_file):
        # DASK_SCHEDULER_ADDRESS (the Dask operator sets it in a DaskJob's pod)
        args.scheduler = dask.config.get("scheduler-address", None)
    if args.scheduler or args.scheduler_file:
        security = security_of(args)
        extra = {} if security is None else {"security": security}
        if security is not None and args.scheduler:
            _refuse_plain_text(args.scheduler, args)
        if args.scheduler_file and not args.scheduler:
            _check_scheduler_file(args.scheduler_file)
        target = ({"address": args.scheduler} if args.scheduler
                  else {"scheduler_file": args.scheduler_file})
        try:
            client = Client(**target, timeout=args.connect_timeout, **extra)
        except (OSError, TimeoutError, TypeError, ValueError, AssertionError, KeyError) as exc:
            _forget_failed_default_client()
            where = args.scheduler or args.scheduler_file
            hint = (" (a TLS scheduler: give --tls-ca-file, --tls-cert and --tls-key)"
                    if str(where).startswith("tls://") and security is None else "")
            reason = str(exc).strip() or type(exc).__name__
            raise ConnectionError(f"cannot reach the Dask scheduler at {where}{hint}: "
                                  f"{reason}") from None
        with client:
            log(f"Scheduler {client.scheduler.address}; dashboard {client.dashboard_link}")
            try:
                yield client
            except Exception as exc:
                if client.status != "running":
                    where = args.scheduler or args.scheduler_file
                    raise SchedulerLostError(f"lost the Dask scheduler at {where} "
                                             f"({type(exc).__name__})") from None
                raise
        return
    security_of(args)  # --tls-* options that do not go together are refused here too
    with _local_cluster(args) as cluster, Client(cluster) as client:
        log(f"LocalCluster: {args.n_workers} workers x 1 thread, memory limit "
            f"{args.memory_limit}; dashboard {client.dashboard_link}")
        yield client
