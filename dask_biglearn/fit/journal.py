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
written atomically, and it names the fit it belongs to (:func:`fit_identity`: estimator,
hyper-parameters, data shape and dtype, and a fingerprint of the data: its summary pass's row
count, mean, variance, minimum and maximum): resuming another fit, or the same fit on other
data, is refused with one line naming what differs. A checkpoint that exists is never
overwritten by a fit that does not resume it. It also records the full-data passes the fit
has made so far (over every run that wrote it), so that a resumed fit counts them all, and
:func:`describe_checkpoint` says how far it has got.
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


def fit_identity(estimator: str, hyper_parameters: dict, shape, dtype, summaries,
                 start=None, weighted: bool = False) -> dict:
    """What names a fit in its checkpoint: resuming must find the same.

    Parameters
    ----------
    estimator : str
        The estimator's class name.
    hyper_parameters : dict
        Those that change what the fit computes (no run-time settings); arrays as float64.
    shape : tuple of int
        The data's ``(n_samples, n_features)`` (without a weight column).
    dtype : numpy.dtype or str
    summaries : DataSummaries
        The summary pass: its row count, mean, variance, minimum and maximum (and, with
        missing values, their counts) are the data's fingerprint, the same whatever the
        chunking.
    start : dict or None, default=None
        A warm start's model (``weights_init``, ``means_init``, ``precisions_init``).
    weighted : bool, default=False
        Whether the rows carry weights (they shape the fingerprint's mean and variance too).

    Returns
    -------
    identity : dict
        JSON-able; arrays are named by their hash.
    """
    from ..io.models import jsonable_parameters

    saved = dict(hyper_parameters)
    saved.pop("warm_start", None)  # what it changes is the start, named below when used
    # Left out at their defaults, as checkpoints written before these settings had them.
    if not saved.get("reg_covar", 0):
        saved.pop("reg_covar", None)
    if saved.get("covariance_type", "full") == "full":
        saved.pop("covariance_type", None)
    saved.update(start or {})
    params, _ = jsonable_parameters(saved, hash_arrays=True)
    fingerprint = {"n_samples": int(summaries.n_samples),
                   **{name: [float(v) for v in getattr(summaries, name)]
                      for name in ("shift", "var", "min", "max")}}
    # The counts of missing values are left out for complete data, so that checkpoints
    # written before NaN was allowed keep matching.
    if summaries.missing:
        fingerprint.update({name: int(getattr(summaries, name))
                            for name in ("n_missing", "n_incomplete", "n_empty", "n_nan")})
    identity = {"estimator": estimator, "hyper_parameters": params,
                "shape": [int(n) for n in shape], "dtype": str(dtype), DATA_KEY: fingerprint}
    if weighted:
        identity["sample_weight"] = True
    return identity


def check_not_overwritten(path) -> None:
    """Refuse to start a fit afresh over an existing checkpoint (as the command line does).

    Parameters
    ----------
    path : path-like

    Raises
    ------
    FileExistsError
        If ``path`` exists.
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(
            f"{path} exists (the checkpoint of an interrupted fit?): pass resume=True to "
            f"continue it (a fit with no checkpoint yet then starts afresh), or remove it, or "
            f"choose another checkpoint.")


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
        JSON-able description of the fit (:func:`fit_identity`); a resumed checkpoint must
        match it.
    resume : bool
        Read ``path`` (if it exists) and replay it; otherwise start afresh, and refuse to
        overwrite an existing ``path`` (:func:`check_not_overwritten`).
    passes : callable or None, default=None
        ``passes() -> int``: the full-data passes this run of the fit has made so far
        (written with every checkpoint, added to those of the runs before).
    """

    def __init__(self, path, every: int, identity: dict, resume: bool, passes=None):
        self.path, self.every, self.identity = Path(path), int(every), identity
        self.calls: list[dict] = []  # {"complete": bool, "states": [FitState, ...]}
        self.position = 0
        self.replayed = 0
        self._passes = passes or (lambda: 0)
        #: Full-data passes of the runs before this one (0 for a fit started afresh).
        self.passes_before = 0
        #: What the checkpoint held when this run resumed it (None: started afresh).
        self.resumed_from = None
        #: Whether the fit ended (the last write of a fit that was not interrupted).
        self.finished = False
        if not resume:
            check_not_overwritten(self.path)
        elif self.path.exists():
            self._load()

    # ---- the context ---------------------------------------------------------------------

    def __enter__(self):
        self._token = _CURRENT.set(self)
        return self

    def __exit__(self, exc_type, *exc):
        _CURRENT.reset(self._token)
        if exc_type is None:  # the fit ended: the file says so
            self.finished = True
            self.write()
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
        passes = self.passes_before + int(self._passes())
        write_document(self.path, CHECKPOINT_KIND,
                       {"identity": self.identity, "calls": calls, "n_data_passes": passes,
                        "finished": bool(self.finished)},
                       arrays)

    def _load(self) -> None:
        from ..io.files import read_archive

        meta, arrays = read_archive(self.path, CHECKPOINT_KIND)
        saved, current = meta.get("identity") or {}, self.identity
        unchecked = isinstance(saved, dict) and DATA_KEY not in saved and DATA_KEY in current
        if unchecked:  # written before checkpoints recorded a fingerprint of their data
            current = {k: v for k, v in current.items() if k != DATA_KEY}
        if saved != current:
            differ = _differences(saved, current)
            raise ValueError(f"Checkpoint {self.path} belongs to another fit ({', '.join(differ)} "
                             f"differ); remove it or choose another checkpoint.")
        if unchecked:
            warnings.warn(f"Checkpoint {self.path} was written by an earlier dask_biglearn, "
                          "which did not record its data: resuming without checking that the "
                          "data is the same.", UserWarning, stacklevel=2)
        self.calls = _recorded_loops(self.path, meta, arrays)
        self.passes_before = _recorded_passes(self.path, meta)
        self.resumed_from = _progress(self.calls, self.passes_before,
                                      bool(meta.get("finished", False)))
        logger.info("Resuming from checkpoint %s: %s", self.path,
                    describe_progress(self.resumed_from))


def _recorded_loops(path, meta, arrays) -> list[dict]:
    """The loops a checkpoint recorded: ``{"complete": bool, "states": [FitState, ...]}``."""
    from ..io.files import ModelFileError

    calls = []
    try:
        for i, entry in enumerate(meta["calls"]):
            states = []
            for j, values in enumerate(entry["states"]):
                prefix = f"call{i}/state{j}/"
                mine = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
                states.append(FitState.from_arrays_and_json(mine, values))
            calls.append({"complete": bool(entry["complete"]), "states": states})
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelFileError(f"{path}: a damaged checkpoint ({exc!r}).") from None
    return calls


def _recorded_passes(path, meta) -> int:
    """The full-data passes a checkpoint records (0 in checkpoints written before they
    were recorded)."""
    from numbers import Integral

    from ..io.files import ModelFileError

    passes = meta.get("n_data_passes", 0)
    if not isinstance(passes, Integral) or isinstance(passes, bool) or passes < 0:
        raise ModelFileError(f"{path}: a damaged checkpoint (n_data_passes {passes!r}).")
    return int(passes)


def _progress(calls, passes: int, finished: bool = False) -> dict:
    """How far a fit got: whether it ended, its loops, the last loop's phase and iteration,
    its passes."""
    if not calls:
        return {"finished": finished, "n_loops": 0, "phase": None, "iteration": 0,
                "complete": False, "n_data_passes": passes}
    last = calls[-1]
    return {"finished": finished, "n_loops": len(calls),
            "phase": last["states"][0].phase if last["states"] else None,
            "iteration": max((s.iteration for s in last["states"]), default=0),
            "complete": bool(last["complete"]), "n_data_passes": passes}


def describe_progress(progress: dict) -> str:
    """One line: how far a checkpointed fit got.

    Parameters
    ----------
    progress : dict
        :func:`describe_checkpoint`'s ``progress``.

    Returns
    -------
    str
    """
    passes = f"{progress['n_data_passes']} full-data passes"
    if progress.get("finished"):
        return f"the fit ended ({progress['n_loops']} loops, {passes})"
    if not progress["n_loops"]:
        return f"no loop recorded yet, {passes} so far"
    state = "complete" if progress["complete"] else f"at iteration {progress['iteration']}"
    return f"loop {progress['n_loops']} ({progress['phase']}) {state}, {passes} so far"


def describe_checkpoint(path) -> dict:
    """What a checkpoint file holds: the fit it belongs to and how far it got.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    description : dict
        JSON-able: ``estimator``, ``hyper_parameters``, ``shape``, ``dtype`` (the fit's
        identity, without the data's fingerprint), and ``progress``: ``n_loops`` (the fit
        loops recorded), the last loop's ``phase``, ``iteration`` and whether it is
        ``complete``, ``n_data_passes`` (full-data passes so far) and whether the fit
        ``finished`` (it ended: resuming it replays its loops in a few passes).

    Raises
    ------
    ModelFileError
        If the file is not a checkpoint we wrote, or is damaged.
    """
    from ..io.files import read_archive

    meta, arrays = read_archive(path, CHECKPOINT_KIND)
    identity = meta.get("identity") if isinstance(meta.get("identity"), dict) else {}
    calls = _recorded_loops(path, meta, arrays)
    return {"file": str(path),
            **{key: identity.get(key) for key in ("estimator", "hyper_parameters", "shape",
                                                  "dtype")},
            "progress": _progress(calls, _recorded_passes(path, meta),
                                  bool(meta.get("finished", False)))}


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
