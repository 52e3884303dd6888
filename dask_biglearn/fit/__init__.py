"""The driver program: plain EM and BigLearn-EM over any engine. Nothing here imports Dask.

* :mod:`~dask_biglearn.fit.plan`: the fit program (a frozen plan in, one result out);
* :mod:`~dask_biglearn.fit.sweep`: several programs sharing every pass (choosing K);
* :mod:`~dask_biglearn.fit.loop`: the one loop (several fits in lockstep), its settings,
  callbacks and the updates;
* :mod:`~dask_biglearn.fit.restarts`: independent, nested starts, the best one kept;
* :mod:`~dask_biglearn.fit.moves`: split-merge and re-seeding moves, degenerate components;
* :mod:`~dask_biglearn.fit.scalable`: the scalable mode's row sample;
* :mod:`~dask_biglearn.fit.journal`: checkpoints;
* :mod:`~dask_biglearn.fit.stochastic`: mini-batch passes (a benchmark's baseline).
"""

from .loop import (
    FitSettings,
    em_update,
    em_updates,
    finish_fit,
    finish_fits,
    mean_log_likelihood,
    mean_log_likelihoods,
    run_fit,
    run_fits,
)
from .restarts import best_state, refine, start_generators, start_states

__all__ = [
    "FitSettings",
    "best_state",
    "em_update",
    "em_updates",
    "finish_fit",
    "finish_fits",
    "mean_log_likelihood",
    "mean_log_likelihoods",
    "refine",
    "run_fit",
    "run_fits",
    "start_generators",
    "start_states",
]
