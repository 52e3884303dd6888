"""The values a fit passes around: mixture parameters, sufficient statistics, and the state of
a fit (everything needed to continue it).

All of it is plain data (NumPy arrays, numbers, strings), with no Dask and no engine inside:
:meth:`FitState.as_arrays_and_json` turns a state into named arrays and JSON-able values, and
:meth:`FitState.from_arrays_and_json` rebuilds it, which is what a checkpoint file holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .kernels.stats import SuffStats

__all__ = ["FitState", "MixtureParams", "SuffStats"]


@dataclass(frozen=True)
class MixtureParams:
    """Full-space parameters of a Gaussian mixture with full covariances.

    Parameters
    ----------
    weights : ndarray of shape (n_components,)
        Mixture weights, summing to 1.
    means : ndarray of shape (n_components, n_features)
        Component means.
    covariances : ndarray of shape (n_components, n_features, n_features)
        Component covariances.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray

    def as_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """The parameters as named arrays (what a checkpoint file holds).

        Parameters
        ----------
        prefix : str
            Prepended to the names ``"weights"``, ``"means"`` and ``"covariances"``.

        Returns
        -------
        dict of str to ndarray
            The three arrays by prefixed name.
        """
        return {f"{prefix}weights": self.weights, f"{prefix}means": self.means,
                f"{prefix}covariances": self.covariances}

    @classmethod
    def from_arrays(cls, arrays, prefix: str) -> MixtureParams:
        """Rebuild parameters from :meth:`as_arrays`'s output.

        Parameters
        ----------
        arrays : Mapping of str to array-like
            Arrays by name, holding the three prefixed names.
        prefix : str
            The prefix given to :meth:`as_arrays`.

        Returns
        -------
        MixtureParams
            The parameters, as float64 copies.
        """
        return cls(*(np.array(arrays[f"{prefix}{name}"], dtype=np.float64)
                     for name in ("weights", "means", "covariances")))


@dataclass
class FitState:
    """Where a fit stands: enough to continue it exactly as if it had never stopped.

    The fit loop (:func:`dask_biglearn.fit.loop.run_fit`) updates it in place.

    Parameters
    ----------
    params : MixtureParams
        The parameters after the last completed iteration.
    rng : numpy.random.Generator
        The driver's generator, in the state the next iteration draws from.
    iteration : int, default=0
        Iterations (outer iterations for BigLearn-EM) completed.
    lower_bounds : list of float, default=[]
        The history of checked mean log-likelihoods.
    matchings : list of str, default=[]
        The matching of each completed iteration.
    best_params : MixtureParams or None, default=None
        The model the fit returns so far (BigLearn-EM: the best checked one; plain EM: set
        when the fit finishes).
    best_lower_bound : float, default=-inf
        The mean joint log-likelihood of ``best_params``.
    best_iteration : int, default=0
        The iteration of ``best_params``.
    converged : bool, default=False
        Whether the fit's convergence test held at its last check.
    finished : bool, default=False
        Whether the fit has ended (so ``best_*`` is its result).
    restart : int, default=0
        Which of the fit's independent starts this is (0 for a single start).
    phase : {"warm-up", "explore", "refine", "move", "refine-full"}, default="explore"
        The fit's phase: plain EM from a start before the matchings, the main loop, the
        plain-EM refinement of its result, the escape moves, or (scalable mode) the plain-EM
        refinement over the full data of the model explored on the sample.
    """

    params: MixtureParams
    rng: np.random.Generator
    iteration: int = 0
    lower_bounds: list = field(default_factory=list)
    matchings: list = field(default_factory=list)
    best_params: MixtureParams | None = None
    best_lower_bound: float = -math.inf
    best_iteration: int = 0
    converged: bool = False
    finished: bool = False
    restart: int = 0
    phase: str = "explore"

    def as_arrays_and_json(self) -> tuple[dict[str, np.ndarray], dict]:
        """The state as float arrays by name and JSON-able values (no pickle).

        Returns
        -------
        arrays : dict of str to ndarray
            The parameters (``"params/..."``), the best ones if any (``"best/..."``) and
            ``"lower_bounds"``.
        values : dict
            Everything else, JSON-able: the generator's state, counters, flags and phase.
        """
        arrays = self.params.as_arrays("params/")
        arrays["lower_bounds"] = np.asarray(self.lower_bounds, dtype=np.float64)
        if self.best_params is not None:
            arrays.update(self.best_params.as_arrays("best/"))
        values = {
            "rng": _jsonable(self.rng.bit_generator.state),
            "iteration": int(self.iteration),
            "matchings": [str(m) for m in self.matchings],
            "best_lower_bound": (None if math.isinf(self.best_lower_bound)
                                 else float(self.best_lower_bound)),
            "best_iteration": int(self.best_iteration),
            "has_best": self.best_params is not None,
            "converged": bool(self.converged),
            "finished": bool(self.finished),
            "restart": int(self.restart),
            "phase": str(self.phase),
        }
        return arrays, values

    @classmethod
    def from_arrays_and_json(cls, arrays, values) -> FitState:
        """Rebuild a state from :meth:`as_arrays_and_json`'s output.

        Parameters
        ----------
        arrays : Mapping of str to array-like
            The named arrays.
        values : dict
            The JSON-able values.

        Returns
        -------
        FitState
            The state, its generator restored to where it stood.
        """
        rng_state = _from_jsonable(values["rng"])
        bit_generator = getattr(np.random, rng_state["bit_generator"])()
        bit_generator.state = rng_state
        best = values["best_lower_bound"]
        return cls(
            params=MixtureParams.from_arrays(arrays, "params/"),
            rng=np.random.Generator(bit_generator),
            iteration=int(values["iteration"]),
            lower_bounds=[float(v) for v in np.asarray(arrays["lower_bounds"])],
            matchings=[str(m) for m in values["matchings"]],
            best_params=(MixtureParams.from_arrays(arrays, "best/") if values["has_best"]
                         else None),
            best_lower_bound=-math.inf if best is None else float(best),
            best_iteration=int(values["best_iteration"]),
            converged=bool(values["converged"]),
            finished=bool(values["finished"]),
            restart=int(values.get("restart", 0)),
            phase=str(values.get("phase", "explore")),
        )


def _jsonable(value):
    """Bit-generator states hold ints, strings and (for some generators) integer arrays."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, np.integer):
        return int(value)
    return value


def _from_jsonable(value):
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.asarray(value["__ndarray__"], dtype=value["dtype"])
        return {k: _from_jsonable(v) for k, v in value.items()}
    return value
