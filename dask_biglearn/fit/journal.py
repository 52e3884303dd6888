"""Checkpoints: a journal of every fit loop a fit runs, written to disk as it goes.

A fit is a fixed sequence of loops (:func:`~dask_biglearn.fit.loop.run_fits` calls: warm-up,
exploration, refinement, moves, full-data refinement), each deterministic given the data and
what came before. The journal numbers them in order and records each loop's
:class:`~dask_biglearn.model.FitState` list: every ``every`` iterations while it runs, and when
it ends. Resuming runs the fit again from the start with the same seed: a loop the journal
holds as complete hands back its recorded states without a pass over the data; the loop that
was running when the fit died continues from its last recorded states; the rest runs as
usual. The parameters are then exactly those of a fit that was never interrupted; what is
redone is the driver-side work between loops and the few passes outside loops (the summary
pass, row samples).

The file is one of ours (:mod:`dask_biglearn.io.files`: JSON and ``.npz``, never unpickled),
written atomically, and it names the fit it belongs to (estimator, hyper-parameters, data
shape and dtype, and a fingerprint of the data: its summary pass's row count, mean, variance,
minimum and maximum): resuming another fit, or the same fit on other data, is refused with one
line naming what differs.
"""

from __future__ import annotations

import contextvars
import logging
import warnings
from pathlib import Path

from ..model import FitState

logger = logging.getLogger(__name__)

_CURRENT = contextvars.ContextVar("dask_biglearn_journal", default=None)
CHECKPOINT_KIND = "checkpoint"
#: The identity's fingerprint of the data (its summary pass: rows, mean, variance, min, max).
DATA_KEY = "data"


def current_journal():
    """Return the journal of the fit running in this context.

    A :class:`Journal` is current inside its ``with`` block (a context variable, so each
    thread or task sees its own).

    Returns
    -------
    journal : Journal or None
        The current journal; None when no checkpointed fit is running.
    """
    return _CURRENT.get()


class Journal:
    """The checkpoint of one fit (see the module docstring).

    Used as a context manager: inside ``with journal:`` it is the :func:`current_journal`,
    which :func:`~dask_biglearn.fit.loop.run_fits` records its loops in.

    Parameters
    ----------
    path : path-like
        The checkpoint file.
    every : int
        Iterations of a loop between writes (and a write when each loop ends).
    identity : dict
        JSON-able description of the fit; a resumed checkpoint must match it.
    resume : bool
        Read ``path`` (if it exists) and replay it; otherwise start afresh.
    """

    def __init__(self, path, every: int, identity: dict, resume: bool):
        self.path, self.every, self.identity = Path(path), int(every), identity
        self.calls: list[dict] = []  # {"complete": bool, "states": [FitState, ...]}
        self.position = 0
        self.replayed = 0
        if resume and self.path.exists():
            self._load()

    # ---- the context ---------------------------------------------------------------------

    def __enter__(self):
        self._token = _CURRENT.set(self)
        return self

    def __exit__(self, *exc):
        _CURRENT.reset(self._token)
        return False

    # ---- what run_fits calls ----------------------------------------------------------------

    def begin(self, states) -> tuple[int, bool]:
        """Number the next loop and restore its recorded states into ``states``.

        Parameters
        ----------
        states : list of FitState
            The loop's states, updated in place with those the journal recorded for it (if
            it holds any).

        Returns
        -------
        index : int
            The loop's number in the fit.
        complete : bool
            Whether the journal holds the loop as complete: complete loops are not run
            again.

        Raises
        ------
        ValueError
            If the recorded loop had another number of fits.
        """
        index = self.position
        self.position += 1
        if index >= len(self.calls):
            return index, False
        entry = self.calls[index]
        if len(entry["states"]) != len(states):
            raise ValueError(f"Checkpoint {self.path} does not match this fit (loop {index} "
                             f"had {len(entry['states'])} fits, now {len(states)}).")
        for state, saved in zip(states, entry["states"], strict=True):
            state.__dict__.update(_copy(saved).__dict__)
        self.replayed += 1
        logger.info("Checkpoint: loop %d %s at iteration %d", index,
                    "replayed" if entry["complete"] else "resumed",
                    max(s.iteration for s in states))
        return index, bool(entry["complete"])

    def progress(self, index: int, states, force: bool = False) -> None:
        """Record loop ``index`` in progress; written every ``every`` iterations.

        Parameters
        ----------
        index : int
            The loop's number, from :meth:`begin`.
        states : list of FitState
            The loop's states after its latest iteration.
        force : bool, default=False
            Write now, whatever the iteration (a callback stopped the fit).
        """
        iteration = max(s.iteration for s in states)
        if force or iteration % self.every == 0:
            self._set(index, states, complete=False)
            self.write()

    def complete(self, index: int, states) -> None:
        """Record loop ``index`` as complete and write the file.

        Parameters
        ----------
        index : int
            The loop's number, from :meth:`begin`.
        states : list of FitState
            The loop's final states.
        """
        self._set(index, states, complete=True)
        self.write()

    # ---- the file ----------------------------------------------------------------------------

    def _set(self, index, states, complete):
        del self.calls[index:]
        self.calls.append({"complete": complete, "states": [_copy(s) for s in states]})

    def write(self) -> None:
        """Write every loop's recorded states to the file, atomically."""
        from ..io.files import write_document

        arrays, calls = {}, []
        for i, entry in enumerate(self.calls):
            values = []
            for j, state in enumerate(entry["states"]):
                state_arrays, state_values = state.as_arrays_and_json()
                arrays.update({f"call{i}/state{j}/{k}": v for k, v in state_arrays.items()})
                values.append(state_values)
            calls.append({"complete": entry["complete"], "states": values})
        write_document(self.path, CHECKPOINT_KIND, {"identity": self.identity, "calls": calls},
                       arrays)

    def _load(self) -> None:
        from ..io.files import ModelFileError, read_archive

        meta, arrays = read_archive(self.path, CHECKPOINT_KIND)
        saved, current = meta.get("identity") or {}, self.identity
        unchecked = isinstance(saved, dict) and DATA_KEY not in saved and DATA_KEY in current
        if unchecked:  # written before checkpoints recorded a fingerprint of their data
            current = {k: v for k, v in current.items() if k != DATA_KEY}
        if saved != current:
            differ = _differences(saved, current)
            raise ValueError(f"Checkpoint {self.path} belongs to another fit ({', '.join(differ)} "
                             f"differ); remove it or fit without resume.")
        if unchecked:
            warnings.warn(f"Checkpoint {self.path} was written by an earlier dask_biglearn, "
                          "which did not record its data: resuming without checking that the "
                          "data is the same.", UserWarning, stacklevel=2)
        try:
            for i, entry in enumerate(meta["calls"]):
                states = []
                for j, values in enumerate(entry["states"]):
                    prefix = f"call{i}/state{j}/"
                    mine = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
                    states.append(FitState.from_arrays_and_json(mine, values))
                self.calls.append({"complete": bool(entry["complete"]), "states": states})
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelFileError(f"{self.path}: a damaged checkpoint ({exc!r}).") from None


def _differences(saved, current) -> list[str]:
    """The keys (hyper-parameters by name) whose values differ."""
    saved = saved if isinstance(saved, dict) else {}
    if not isinstance(saved.get("hyper_parameters"), dict):
        saved = {**saved, "hyper_parameters": {}}
    saved = {**saved, **saved["hyper_parameters"]}
    current = {**current, **(current.get("hyper_parameters") or {})}
    return sorted(k for k in set(saved) | set(current)
                  if k != "hyper_parameters" and saved.get(k) != current.get(k))


def _copy(state: FitState) -> FitState:
    """A copy that later iterations of the live state cannot change (its generator too)."""
    arrays, values = state.as_arrays_and_json()
    return FitState.from_arrays_and_json(arrays, values)
