"""Helpers of the command line's tests: run ``dask-biglearn`` in this process, read its
output, fingerprint what it left on disk."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["file_tree", "nonempty_lines", "run_cli"]


def nonempty_lines(text: str) -> list[str]:
    """The lines of ``text`` that hold more than white space.

    Parameters
    ----------
    text : str
        What a command printed.

    Returns
    -------
    lines : list of str
    """
    return [line for line in text.splitlines() if line.strip()]


def run_cli(argv, capsys):
    """Run ``dask_biglearn.cli.main`` in this process and read what it printed.

    Parameters
    ----------
    argv : sequence
        The command's arguments (each passed as a string).
    capsys : pytest.CaptureFixture
        pytest's ``capsys``.

    Returns
    -------
    exit_code : int
    stdout : str
    stderr : str
    """
    from ..cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def file_tree(folder) -> dict[str, str]:
    """Every file under ``folder`` with a digest of its bytes (what a command must leave
    unchanged).

    Parameters
    ----------
    folder : str or path-like

    Returns
    -------
    tree : dict of str to str
        Each file's path relative to ``folder``, to the SHA-256 of its bytes.
    """
    folder = Path(folder)
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}
