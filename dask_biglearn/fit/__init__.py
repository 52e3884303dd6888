"""Driver loops: plain EM and BigLearn-EM over any engine. Nothing here imports Dask.

* :mod:`~dask_biglearn.fit.loop`: the one loop (several fits in lockstep), its settings,
  callbacks and the updates;
* :mod:`~dask_biglearn.fit.restarts`: independent starts, the best one kept.
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
from .restarts import best_state, refine, start_states

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
    "start_states",
]
