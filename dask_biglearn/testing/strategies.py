"""Hypothesis strategies for the property tests (needs the ``test`` extra's hypothesis).

Arrays are drawn as a seed plus a shape, offset and scale and generated with NumPy, so
examples shrink towards small, few-chunk cases and every value is an ordinary float.
"""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import strategies as st


def random_mixture(n_components: int, n_features: int, seed: int):
    """Parameters of a random Gaussian mixture, drawn from ``seed``.

    Parameters
    ----------
    n_components : int
        Number of components.
    n_features : int
        Dimension.
    seed : int
        Seed of :func:`numpy.random.default_rng`.

    Returns
    -------
    weights : ndarray of shape (n_components,)
        Positive weights summing to 1.
    means : ndarray of shape (n_components, n_features)
        Means.
    covariances : ndarray of shape (n_components, n_features, n_features)
        Well-conditioned symmetric positive definite covariances.
    """
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(n_components, 2.0))
    means = rng.normal(scale=3.0, size=(n_components, n_features))
    B = rng.normal(size=(n_components, n_features, n_features))
    covariances = B @ np.swapaxes(B, 1, 2) / n_features + 0.5 * np.eye(n_features)
    return weights, means, covariances


@st.composite
def arrays(draw, min_rows=2, max_rows=60, max_features=4):
    """A float64 array of shape ``(n, d)``: Gaussian rows at some offset and scale.

    Parameters
    ----------
    min_rows : int, default=2
        Fewest rows ``n``.
    max_rows : int, default=60
        Most rows ``n``.
    max_features : int, default=4
        Most columns ``d``.

    Returns
    -------
    hypothesis.strategies.SearchStrategy
        Of ndarray of shape (n, d).
    """
    n = draw(st.integers(min_rows, max_rows))
    d = draw(st.integers(1, max_features))
    seed = draw(st.integers(0, 2**32 - 1))
    offset = draw(st.sampled_from([0.0, 1.0, -50.0, 1e3]))
    scale = draw(st.sampled_from([1.0, 0.1, 10.0]))
    rng = np.random.default_rng(seed)
    return offset + scale * rng.normal(size=(n, d)) * rng.uniform(0.5, 2.0, size=d)


@st.composite
def splits(draw, n_rows: int, max_splits: int = 6):
    """Sorted cut points in ``[0, n_rows]`` (empty pieces allowed): a row chunking.

    Parameters
    ----------
    n_rows : int
        Rows of the array to cut.
    max_splits : int, default=6
        Most cut points.

    Returns
    -------
    hypothesis.strategies.SearchStrategy
        Of sorted lists of int.
    """
    cuts = draw(st.lists(st.integers(0, n_rows), max_size=max_splits))
    return sorted(cuts)


@st.composite
def data_and_splits(draw, **array_kwargs):
    """``(X, cut points)``: an array and a way to cut it into row blocks.

    Parameters
    ----------
    **array_kwargs
        Passed to :func:`arrays`.

    Returns
    -------
    hypothesis.strategies.SearchStrategy
        Of pairs ``(X, cuts)``: an ndarray of shape (n, d) and sorted cut points in
        ``[0, n]``.
    """
    X = draw(arrays(**array_kwargs))
    return X, draw(splits(len(X)))


def chunks_of(cuts, n_rows):
    """Dask row chunks from cut points (empty chunks dropped).

    Parameters
    ----------
    cuts : list of int
        Sorted cut points in ``[0, n_rows]``.
    n_rows : int
        Rows of the array.

    Returns
    -------
    tuple of int
        The non-empty chunk sizes, summing to ``n_rows``.
    """
    bounds = [0, *cuts, n_rows]
    return tuple(b - a for a, b in itertools.pairwise(bounds) if b > a)


@st.composite
def mixture_params(draw, max_components: int = 4):
    """A function ``params(n_features) -> (weights, means, covariances)``.

    The number of components and the seed are drawn; the dimension is chosen by the caller
    (see :func:`random_mixture`).

    Parameters
    ----------
    max_components : int, default=4
        Most components.

    Returns
    -------
    hypothesis.strategies.SearchStrategy
        Of callables ``params(n_features)``.
    """
    k = draw(st.integers(1, max_components))
    seed = draw(st.integers(0, 2**32 - 1))
    return lambda n_features: random_mixture(k, n_features, seed)
