"""Where rows live and how a pass runs over them.

* :class:`~dask_biglearn.engines.local.InProcessEngine`: NumPy data, a plain loop;
* :class:`~dask_biglearn.engines.dask.DaskEngine`: a Dask array, a task graph per pass with a
  tree reduction, on any Dask scheduler; on a ``distributed`` cluster with the placement of
  :mod:`~dask_biglearn.engines.placement` and the actors of :mod:`~dask_biglearn.engines.actors`.

Both follow the protocol of :mod:`dask_biglearn.engines.base`.
"""

from __future__ import annotations

from .base import DataSummaries, Engine, PassSpec
from .dask import DaskEngine
from .local import InProcessEngine

__all__ = ["DaskEngine", "DataSummaries", "Engine", "InProcessEngine", "PassSpec", "make_engine"]


def make_engine(X, *, split_every=None, weighted=False, parent=None) -> Engine:
    """The engine for validated data: in-process for NumPy, :class:`DaskEngine` for Dask.

    Parameters
    ----------
    X : ndarray or dask.array.Array of shape (n_samples, n_features)
        Validated data (:func:`dask_biglearn.validation.check_array`).
    split_every : int, optional
        Fan-in of the Dask engine's tree reduction.
    weighted : bool, default=False
        The last column of ``X`` is the rows' weights
        (:func:`dask_biglearn.validation.with_sample_weight`).
    parent : DataSummaries, optional
        The summaries of the data whose rows these are (held-out rows, a sample): a feature
        with no observed value among them takes its summaries from them.

    Returns
    -------
    engine : Engine
        Use it as a context manager: it releases what it placed when the context ends.
    """
    import dask.array as da

    if isinstance(X, da.Array):
        return DaskEngine(X, split_every=split_every, weighted=weighted, parent=parent)
    return InProcessEngine(X, weighted=weighted, parent=parent)
