"""Worker side: pure functions on one block of rows (NumPy and numba only).

Nothing here imports Dask, distributed or the driver's modules; a test holds this boundary.

* :mod:`~dask_biglearn.kernels.features`: quadratic features of ``P (x - shift)``, sub-blocks,
  scratch buffers and the in-process feature cache;
* :mod:`~dask_biglearn.kernels.passes`: :class:`~dask_biglearn.kernels.passes.PassSpec` and
  :func:`~dask_biglearn.kernels.passes.pass_stats_batch`, the one entry point of every pass
  (every route, in process, tasks or actors, calls it);
* :mod:`~dask_biglearn.kernels.sampling`: row samples by global row index and seed;
* :mod:`~dask_biglearn.kernels.stats`: the sufficient statistics a pass returns;
* :mod:`~dask_biglearn.kernels.summaries`: the data summaries of the summary pass;
* :mod:`~dask_biglearn.kernels.scoring`: per-block ``score_samples`` / ``predict_proba`` /
  ``predict``;
* :mod:`~dask_biglearn.kernels._compiled`: the numba twins of the element-wise steps.
"""
