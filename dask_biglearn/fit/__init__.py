"""Driver loops: plain EM and BigLearn-EM over any engine. Nothing here imports Dask.

* :mod:`~dask_biglearn.fit.loop`: the one loop, its settings, callbacks and the updates;
* :mod:`~dask_biglearn.fit.restarts`: independent starts, the best one kept.
"""

from .loop import FitSettings, em_update, mean_log_likelihood, run_fit
from .restarts import run_restarts

__all__ = ["FitSettings", "em_update", "mean_log_likelihood", "run_fit", "run_restarts"]
