"""The scalable mode: explore on a row sample, refine on the full data.

Exploration (starts, restarts, BigLearn-EM's matchings, the escape moves) needs many cheap
passes; precision needs a few exact ones. With ``sample_size`` set, an estimator reads the
data once to draw a row sample (rows chosen by their global index and the seed: the sample,
and so the fit, do not depend on the chunking or the number of workers), runs its whole
exploration on the sample (an engine of its own: :meth:`~dask_biglearn.engines.base.Engine.
sample_engine`, in this process or, on a cluster, persisted on the workers), and then makes
plain EM passes over the full data from the best explored model until ``refine_tol`` or
``refine_max_iter`` (:func:`dask_biglearn.fit.plan.conclude`).
"""

from __future__ import annotations

import math
from numbers import Integral, Real

from ..covariances import type_entry

#: ``sample_size="auto"``: this many sample rows per free parameter of a component, times the
#: number of components, at least :data:`MIN_AUTO_SAMPLE_ROWS`.
AUTO_ROWS_PER_PARAMETER = 40
MIN_AUTO_SAMPLE_ROWS = 20_000


def parameters_per_component(n_features: int, covariance_type: str = "full") -> int:
    """Count a component's free parameters: weight, mean, covariance.

    Parameters
    ----------
    n_features : int
        The data's dimension.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        A tied covariance counts as a full one (each component's rows estimate it too).

    Returns
    -------
    n_parameters : int
        ``1 + D`` and the covariance's parameters in a mixture of one component (the type
        table's count): ``1 + D + D (D + 1) / 2`` (full, tied), ``1 + 2 D`` (diag),
        ``2 + D`` (spherical).
    """
    return 1 + n_features + type_entry(covariance_type).n_parameters(1, n_features)


def auto_sample_rows(n_components: int, n_features: int,
                     covariance_type: str = "full") -> int:
    """Return the rows of ``sample_size="auto"``.

    ``AUTO_ROWS_PER_PARAMETER`` per parameter of a component, per component (so a component
    of average weight holds that many rows per parameter, and one of a quarter of the
    average weight still a quarter), at least ``MIN_AUTO_SAMPLE_ROWS``.

    Parameters
    ----------
    n_components : int
        Components of the mixture.
    n_features : int
        The data's dimension.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        Counts the parameters (:func:`parameters_per_component`).

    Returns
    -------
    n_rows : int
        The sample's rows (before capping at the data's rows).
    """
    return max(MIN_AUTO_SAMPLE_ROWS, AUTO_ROWS_PER_PARAMETER * n_components
               * parameters_per_component(n_features, covariance_type))


def sample_rows(sample_size, n_samples: int, n_components: int, n_features: int,
                covariance_type: str = "full"):
    """Return how many rows the sample of ``sample_size`` holds, or None for the full-data fit.

    Parameters
    ----------
    sample_size : None, "auto", int or float
        None (no sample), ``"auto"`` (:func:`auto_sample_rows`), a number of rows (an int
        >= 1) or a fraction of the rows (a float in (0, 1]).
    n_samples : int
        The data's rows.
    n_components : int
        Components of the mixture.
    n_features : int
        The data's dimension.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        The mixture's covariance type (``"auto"`` counts its parameters).

    Returns
    -------
    n_rows : int or None
        At least ``n_components`` rows, at most all of them; None when ``sample_size`` is
        None.

    Raises
    ------
    ValueError
        If ``sample_size`` is a string other than ``"auto"``, an int below 1 or a float
        outside (0, 1].
    TypeError
        If ``sample_size`` is of another type.
    """
    if sample_size is None:
        return None
    if isinstance(sample_size, str):
        if sample_size != "auto":
            raise ValueError(f"sample_size must be None, 'auto', a number of rows or a "
                             f"fraction in (0, 1], got {sample_size!r}.")
        rows = auto_sample_rows(n_components, n_features, covariance_type)
    elif isinstance(sample_size, Integral) and not isinstance(sample_size, bool):
        if sample_size < 1:
            raise ValueError(f"sample_size must be at least 1 row, got {sample_size}.")
        rows = int(sample_size)
    elif isinstance(sample_size, Real) and not isinstance(sample_size, bool):
        if not 0.0 < sample_size <= 1.0:
            raise ValueError(f"A fractional sample_size must be in (0, 1], got {sample_size}.")
        rows = math.ceil(sample_size * n_samples)
    else:
        raise TypeError(f"sample_size must be None, 'auto', a number of rows or a fraction "
                        f"in (0, 1], got {sample_size!r}.")
    return int(min(n_samples, max(rows, n_components)))

