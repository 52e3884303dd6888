"""Checks of arrays and hyper-parameters, with errors that name the problem.

Checks that need the data's values (NaN and infinity, the variance) belong to the engine's
summary pass; what is here needs only shapes, dtypes and the parameters themselves.
"""

from __future__ import annotations

from numbers import Integral, Real

import dask.array as da
import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import validate_data


def is_dask_array(X) -> bool:
    return isinstance(X, da.Array)


def check_dask_array(X, n_features=None) -> da.Array:
    """Shape and dtype checks of a Dask array that need no computation; returns it with one
    chunk along the features and known row chunks."""
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2-D array of shape (n_samples, n_features), got a {X.ndim}-D Dask "
            f"array of shape {X.shape}."
        )
    kind = X.dtype.kind
    if kind not in "fiub":
        raise TypeError(
            f"X must have a real numeric dtype, got {X.dtype}. Convert it with "
            "X.astype('float64') if its values are numbers."
        )
    if kind != "f":
        X = X.astype(np.float64)
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(
            f"X has {X.shape[1]} features, but the model was fitted with {n_features} features."
        )
    if X.numblocks[1] != 1:
        X = X.rechunk({1: -1})
    if any(np.isnan(c) for c in X.chunks[0]):
        X = X.compute_chunk_sizes()
    return X


def check_array(estimator, X, *, reset: bool):
    """Validate fit or predict input: ``(X, is_dask)``; NumPy input through scikit-learn's
    ``validate_data`` (which also sets or checks ``n_features_in_``)."""
    if is_dask_array(X):
        n_features = None if reset else estimator.n_features_in_
        X = check_dask_array(X, n_features)
        if reset:
            estimator.n_features_in_ = int(X.shape[1])
        return X, True
    X = validate_data(estimator, X, dtype=[np.float64, np.float32], reset=reset,
                      **({"ensure_min_samples": 2} if reset else {}))
    return X, False


def check_n_samples(n_samples, n_components):
    if n_samples < n_components:
        raise ValueError(
            f"Expected n_samples >= n_components but got n_components = "
            f"{n_components}, n_samples = {n_samples}."
        )


def check_int(name, value, low):
    if not isinstance(value, Integral) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")


def check_real(name, value, low, *, strict=False):
    ok = isinstance(value, Real) and not isinstance(value, bool) and np.isfinite(value)
    ok = ok and (value > low if strict else value >= low)
    if not ok:
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {low}, "
                         f"got {value!r}.")


def check_generator(random_state) -> np.random.Generator:
    """A ``numpy.random.Generator`` from scikit-learn's ``random_state`` conventions."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or isinstance(random_state, Integral):
        return np.random.default_rng(random_state)
    rs = check_random_state(random_state)
    return np.random.default_rng(rs.randint(0, 2**32 - 1, size=4))
