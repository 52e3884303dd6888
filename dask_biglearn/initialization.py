"""Initial parameters, drawn on the driver from small summaries of the data.

Every initialisation needs only per-feature summaries of the data (min, max, variance: the
engine's summary pass) and, for ``"random_from_data"``, ``n_components`` rows fetched by
index. The random draws depend only on the generator, never on the chunking.
"""

from __future__ import annotations

import numpy as np

from .algebra import floor_eigenvalues, symmetrize
from .model import MixtureParams

INIT_METHODS = ("random", "random_from_data")


def random_params(rng, n_components, data_min, data_max) -> MixtureParams:
    """The paper's initialisation, in the units of min-max-scaled data.

    The reference code scales the data to [0, 1] and draws ``mu_k ~ N(0, I)`` with
    ``Sigma_k = I``. Here the same draw is mapped to the data's own units:
    ``mu_k = min + range * z_k`` with ``z_k ~ N(0, I)`` and ``Sigma_k = diag(range^2)``, so
    on [0, 1]-scaled data it *is* the reference initialisation, and at any other scale or
    offset it is the same starting point. The start is broad (covariances as wide as the
    data): EM then contracts the components onto the data. A constant feature gets range 1.
    """
    span = data_max - data_min
    span = np.where(span > 0, span, 1.0)
    z = rng.standard_normal((n_components, span.size))
    means = data_min + span * z
    covariances = np.broadcast_to(np.diag(span**2), (n_components, span.size, span.size)).copy()
    weights = np.full(n_components, 1.0 / n_components)
    return MixtureParams(weights, means, covariances)


def random_from_data_params(rng, n_components, n_samples, data_var, take_rows) -> MixtureParams:
    """Means at ``n_components`` distinct random rows; covariances ``diag(var)``; equal weights.

    ``take_rows(sorted_indices)`` returns those rows as a NumPy array.
    """
    idx = np.sort(rng.choice(n_samples, size=n_components, replace=False))
    means = np.asarray(take_rows(idx), dtype=np.float64)
    var = np.where(data_var > 0, data_var, 1.0)
    covariances = np.broadcast_to(np.diag(var), (n_components, var.size, var.size)).copy()
    weights = np.full(n_components, 1.0 / n_components)
    return MixtureParams(weights, means, covariances)


def initial_params(init_params, rng, n_components, summaries, take_rows) -> MixtureParams:
    """Draw the ``init_params`` start from ``rng``, given the engine's
    :class:`~dask_biglearn.engines.base.DataSummaries` and its ``take_rows``."""
    starts = {
        "random": lambda: random_params(rng, n_components, summaries.min, summaries.max),
        "random_from_data": lambda: random_from_data_params(
            rng, n_components, summaries.n_samples, summaries.var, take_rows),
    }
    return starts[init_params]()


def check_user_init(name, value, shape):
    """Validate one of ``weights_init`` / ``means_init`` / ``precisions_init``."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf.")
    return arr


def apply_user_init(params: MixtureParams, *, weights_init, means_init, precisions_init,
                    covariance_floor) -> MixtureParams:
    """Replace parts of ``params`` by user-supplied initial values (scikit-learn semantics)."""
    k, d = params.means.shape
    weights, means, covariances = params.weights, params.means, params.covariances
    if weights_init is not None:
        weights = check_user_init("weights_init", weights_init, (k,))
        if np.any(weights < 0) or abs(weights.sum() - 1.0) > 1e-6:
            raise ValueError("weights_init must be non-negative and sum to 1.")
        weights = weights / weights.sum()
    if means_init is not None:
        means = check_user_init("means_init", means_init, (k, d))
    if precisions_init is not None:
        prec = check_user_init("precisions_init", precisions_init, (k, d, d))
        if not np.allclose(prec, np.swapaxes(prec, 1, 2), rtol=1e-8, atol=1e-12):
            raise ValueError("precisions_init must be symmetric.")
        try:
            chol = np.linalg.cholesky(prec)
        except np.linalg.LinAlgError:
            raise ValueError("precisions_init must be positive definite.") from None
        eye = np.broadcast_to(np.eye(d), prec.shape)
        inv_chol = np.linalg.solve(chol, eye)  # L^{-1}; Sigma = L^{-T} L^{-1}
        covariances = symmetrize(np.swapaxes(inv_chol, 1, 2) @ inv_chol)
    covariances = floor_eigenvalues(covariances, covariance_floor)
    return MixtureParams(weights, means, covariances)
