"""Seeded test data and parameter states that several test modules share."""

from __future__ import annotations

import numpy as np

__all__ = ["make_blobs", "make_projection", "paper_biglearn", "random_params"]


def make_blobs(seed=0, n_samples=600, n_features=3, n_components=4, offset=0.0, spread=1.0):
    """Well-separated Gaussian blobs with random full covariances.

    Parameters
    ----------
    seed : int, default=0
    n_samples, n_features, n_components : int
    offset : float, default=0.0
        Added to every value (data far from the origin).
    spread : float, default=1.0
        Multiplies every value (data of another scale).

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    labels : ndarray of shape (n_samples,)
    """
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=6.0, size=(n_components, n_features))
    labels = rng.integers(n_components, size=n_samples)
    A = rng.normal(size=(n_components, n_features, n_features)) * 0.5 + np.eye(n_features)
    noise = np.einsum("nij,nj->ni", A[labels], rng.normal(size=(n_samples, n_features)))
    return offset + spread * (centers[labels] + noise), labels


def random_params(seed, X, n_components):
    """A plausible random state of the parameters (not near the optimum).

    Parameters
    ----------
    seed : int
    X : ndarray of shape (n_samples, n_features)
        The data the parameters describe (their scale and some of their rows).
    n_components : int

    Returns
    -------
    weights : ndarray of shape (n_components,)
    means : ndarray of shape (n_components, n_features)
    covariances : ndarray of shape (n_components, n_features, n_features)
    """
    rng = np.random.default_rng(seed)
    n, d = X.shape
    weights = rng.dirichlet(np.full(n_components, 5.0))
    means = X[rng.choice(n, n_components, replace=False)] + rng.normal(size=(n_components, d))
    B = rng.normal(size=(n_components, d, d))
    covs = B @ np.swapaxes(B, 1, 2) + np.eye(d) * X.var(axis=0).mean()
    return weights, means, covs


def make_projection(kind, d, seed=0):
    """A projection matrix of each matching kind, with ``m = D - 1`` rows.

    Parameters
    ----------
    kind : {"joint", "marginal", "rotated_marginal"}
    d : int
        The data's dimension.
    seed : int, default=0

    Returns
    -------
    ndarray of shape (d - 1, d) or None
        None for the joint matching (the identity).
    """
    from ..projection import haar_frame

    rng = np.random.default_rng(seed)
    if kind == "joint":
        return None
    if kind == "marginal":
        return np.eye(d)[np.sort(rng.choice(d, size=d - 1, replace=False))]
    return haar_frame(rng, d, d - 1)


def paper_biglearn(*args, **kwargs):
    """``BigLearnGaussianMixture`` with the paper's settings (``PAPER_SETTINGS``), which the
    given parameters override: for the tests about the paper's algorithm itself.

    Parameters
    ----------
    *args, **kwargs
        As :class:`~dask_biglearn.BigLearnGaussianMixture` takes them.

    Returns
    -------
    BigLearnGaussianMixture
    """
    from ..estimator import PAPER_SETTINGS, BigLearnGaussianMixture

    return BigLearnGaussianMixture(*args, **{**PAPER_SETTINGS, **kwargs})
