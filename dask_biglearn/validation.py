"""Checks of arrays and hyper-parameters, with errors that name the problem.

NaN in ``X`` marks a missing value; infinity is an error. Checks that need the values of
Dask data (infinity, columns with no observed value, the variance) belong to the engine's
summary pass; what is here needs only shapes, dtypes and the parameters themselves, and
NumPy data's values, which are in this process already.
Hyper-parameters are declared, as scikit-learn declares them: each estimator's
``_parameter_constraints`` lists the constraints of every parameter (scikit-learn's
:class:`~sklearn.utils._param_validation.Interval` and ``StrOptions``, and :class:`Satisfies`
for composite values), checked at ``fit`` by ``BaseEstimator._validate_params`` with no side
effect. The feature-axis rechunk of Dask input happens here and nowhere else.
"""

from __future__ import annotations

from numbers import Integral

import dask.array as da
import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Options
from sklearn.utils.validation import validate_data

from .kernels.summaries import unobserved_message


class Satisfies(Options):
    """A declared constraint on a composite value: satisfied when ``check(value)`` passes.

    Parameters
    ----------
    check : callable
        ``check(value)`` raises ``ValueError`` or ``TypeError`` for a bad value.
    description : str
        What a good value is, for the error message ("must be <description>").
    """

    def __init__(self, check, description: str):
        super().__init__(object, set())
        self.check, self.description = check, description

    def is_satisfied_by(self, val) -> bool:
        """Whether ``val`` passes the check.

        Parameters
        ----------
        val : object

        Returns
        -------
        satisfied : bool
        """
        try:
            self.check(val)
        except (ValueError, TypeError):
            return False
        return True

    def __str__(self):
        return self.description


def check_subset(value, allowed) -> None:
    """Check that ``value`` is a sequence (not a string) of names among ``allowed``.

    Parameters
    ----------
    value : object
    allowed : sequence of str
    """
    if isinstance(value, str) or not set(value) <= set(allowed):
        raise ValueError(f"expected a sequence of {tuple(allowed)}, got {value!r}")


def check_callbacks(value) -> None:
    """Check that ``value`` is a sequence of callables.

    Parameters
    ----------
    value : object
    """
    if isinstance(value, str) or not all(callable(c) for c in value):
        raise TypeError(f"expected callables, got {value!r}")


def is_dask_array(X) -> bool:
    """Whether ``X`` is a Dask array.

    Parameters
    ----------
    X : object

    Returns
    -------
    is_dask : bool
    """
    return isinstance(X, da.Array)


def check_dask_array(X, n_features=None) -> da.Array:
    """Shape and dtype checks of a Dask array that need no computation.

    Parameters
    ----------
    X : dask.array.Array
    n_features : int, optional
        The features the model was fitted with (at predict time).

    Returns
    -------
    X : dask.array.Array of shape (n_samples, n_features)
        Float, in one chunk along the features (the one place this rechunk happens), with
        known row chunks.
    """
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


def is_data_array(X) -> bool:
    """Whether ``X`` is an xarray ``DataArray`` (recognised without importing xarray).

    Parameters
    ----------
    X : object

    Returns
    -------
    is_data_array : bool
    """
    kind = type(X)
    return kind.__name__ == "DataArray" and kind.__module__.startswith("xarray")


def lazy_as_array(X):
    """The Dask array behind a lazy collection, so that it is never computed here.

    A Dask-backed xarray ``DataArray`` gives its ``.data``; a Dask DataFrame its
    ``to_dask_array(lengths=True)`` (one pass over its partitions counts their rows). Any
    other lazy Dask collection is refused: turning it into a NumPy array would pull the
    whole of it into this process.

    Parameters
    ----------
    X : object

    Returns
    -------
    X : object
        A ``dask.array.Array`` for those collections, else ``X`` itself.
    """
    if is_dask_array(X):
        return X
    if is_data_array(X):
        return X.data if is_dask_array(X.data) else X
    if hasattr(X, "__dask_graph__"):
        # A Delayed answers every attribute (with another Delayed): ask its type, not it.
        if hasattr(type(X), "to_dask_array"):
            return X.to_dask_array(lengths=True)
        raise TypeError(
            f"X is a lazy Dask collection ({type(X).__name__}) that is not an array: pass a "
            "dask.array.Array (or a DataArray or DataFrame backed by Dask), so that the data is "
            "not computed into this process.")
    return X


def check_array(estimator, X, *, reset: bool):
    """Validate fit or predict input.

    NumPy input goes through scikit-learn's ``validate_data`` (which also sets or checks
    ``n_features_in_``), Dask input through :func:`check_dask_array` (not computed: the
    summary pass checks its values at fit, and each chunk is checked as it is scored). NaN
    marks a missing value; infinity is refused. At fit, a NumPy column with no observed value
    is refused, naming it.

    Parameters
    ----------
    estimator : BaseEstimator
    X : array-like or dask.array.Array of shape (n_samples, n_features)
    reset : bool
        True at fit (sets ``n_features_in_``), False at predict (checks it).

    Returns
    -------
    X : ndarray or dask.array.Array of shape (n_samples, n_features)
    is_dask : bool

    Raises
    ------
    ValueError
        If NumPy ``X`` contains infinity, or (at fit) has a column with no observed value.
    """
    X = lazy_as_array(X)
    if is_dask_array(X):
        n_features = None if reset else estimator.n_features_in_
        X = check_dask_array(X, n_features)
        if reset:
            estimator.n_features_in_ = int(X.shape[1])
        return X, True
    try:
        X = validate_data(estimator, X, dtype=[np.float64, np.float32], reset=reset,
                          ensure_all_finite="allow-nan",
                          **({"ensure_min_samples": 2} if reset else {}))
    except ValueError as exc:
        if "infinity" not in str(exc):
            raise
        raise ValueError(INFINITY) from None
    if reset:
        check_observed_columns(X)
    return X, False


#: The one line that refuses infinity in ``X`` (the NaN in it are missing values).
INFINITY = "Input X contains infinity (NaN marks a missing value, infinity is not one)."


def check_observed_columns(X: np.ndarray) -> None:
    """Refuse a NumPy ``X`` with a column that has no observed value (every value NaN).

    The columns' sums find the candidates (a column with a NaN sums to NaN) with no
    temporary of the size of ``X``; only those are read again.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    Raises
    ------
    ValueError
        Naming the (first) columns with no observed value.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        candidates = np.flatnonzero(np.isnan(X.sum(axis=0)))
    empty = [int(j) for j in candidates if np.isnan(X[:, j]).all()]
    if empty:
        raise ValueError(unobserved_message(empty))


def with_sample_weight(X, sample_weight):
    """``X`` with the rows' weights as one more, last, column: what a weighted engine reads.

    NumPy weights are checked here: one number per row of ``X``, finite, non-negative, not
    all zero. Dask weights (of any chunking, rechunked to ``X``'s row chunks, never brought
    to this process for Dask ``X``) are checked by the engine's summary pass, before any
    other work. The column takes ``X``'s dtype (float32 data: weights rounded to float32,
    exact for integers up to 2**24).

    Parameters
    ----------
    X : ndarray or dask.array.Array of shape (n_samples, n_features)
        Validated data (:func:`check_array`).
    sample_weight : array-like or dask.array.Array of shape (n_samples,)
        The rows' weights.

    Returns
    -------
    ndarray or dask.array.Array of shape (n_samples, n_features + 1)
        Dask when ``X`` is, in one chunk along the columns and ``X``'s row chunks.

    Raises
    ------
    ValueError
        If the weights are not one number per row, or (NumPy weights) are NaN, infinite,
        negative or all zero.
    """
    n = X.shape[0]
    weights = lazy_as_array(sample_weight)
    if is_dask_array(weights) and not is_dask_array(X):
        weights = weights.compute()  # the data is in this process already
    if not is_dask_array(weights):
        weights = np.asarray(weights) if not isinstance(weights, np.ndarray) else weights
    _check_weight_dtype(weights.dtype)
    if not is_dask_array(weights):
        try:
            weights = np.asarray(weights, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(_NOT_NUMBERS) from None
    if weights.ndim != 1 or weights.shape[0] != n:
        raise ValueError(f"sample_weight has shape {tuple(weights.shape)}, but X has {n} "
                         f"rows: give one weight per row, shape ({n},).")
    if not is_dask_array(weights):
        _check_weight_values(weights, X.dtype)
    if not is_dask_array(X):
        return np.column_stack([X, weights.astype(X.dtype)])
    if is_dask_array(weights):
        weights = weights.rechunk((X.chunks[0],))
    else:
        weights = da.from_array(weights, chunks=(X.chunks[0],))
    column = weights.astype(X.dtype)[:, None]
    return da.concatenate([X, column], axis=1).rechunk({1: -1})


_NOT_NUMBERS = "sample_weight must be an array of real numbers, one per row of X."


def _check_weight_dtype(dtype) -> None:
    """Weights are real numbers or booleans (True weighs 1), never complex or text."""
    if dtype == bool or dtype == object:
        return  # booleans are 0 and 1; objects are converted (or refused) as NumPy does
    if not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.complexfloating):
        raise ValueError(_NOT_NUMBERS)


def _check_weight_values(weights: np.ndarray, dtype) -> None:
    """The summary pass's checks of the weights, for weights in this process; and that the
    weight column (of ``X``'s dtype) holds them."""
    if not np.all(np.isfinite(weights)):
        raise ValueError("sample_weight contains NaN or infinity.")
    if np.any(weights < 0):
        raise ValueError(f"sample_weight has negative values (the smallest is "
                         f"{weights.min():.6g}): weights must be >= 0.")
    if not np.any(weights > 0):
        raise ValueError("sample_weight is zero for every row: nothing to fit.")
    info = np.finfo(dtype)
    largest, low, high = float(weights.max()), float(info.tiny), float(info.max)
    if largest < np.finfo(np.float64).tiny:
        raise ValueError(f"sample_weight is at most {largest:.3g}, below float64's normal "
                         f"range: its products with the responsibilities underflow. Scale the "
                         f"weights up (only their ratios matter).")
    positive = weights[weights > 0]
    if largest > high or float(positive.min()) < low:
        raise ValueError(f"sample_weight ranges from {float(positive.min()):.3g} to "
                         f"{largest:.3g}, beyond what X's dtype {np.dtype(dtype).name} holds "
                         f"({low:.3g} to {high:.3g}): scale the weights (only their ratios "
                         f"matter) or give X as float64.")


def check_n_samples(n_samples, n_components):
    """Refuse fewer rows than components.

    Parameters
    ----------
    n_samples : int
    n_components : int
    """
    if n_samples < n_components:
        raise ValueError(
            f"Expected n_samples >= n_components but got n_components = "
            f"{n_components}, n_samples = {n_samples}."
        )


def check_warm_start(start, n_components, n_features):
    """Refuse a warm start from a model that does not fit the next fit's shape.

    Parameters
    ----------
    start : dict
        The fitted model as ``weights_init``, ``means_init`` and ``precisions_init``.
    n_components : int
        Components the next fit asks for.
    n_features : int
        Features of its data.

    Raises
    ------
    ValueError
        If the fitted model has another number of components or features.
    """
    k, d = np.shape(start["means_init"])
    if (k, d) != (n_components, n_features):
        raise ValueError(
            f"warm_start=True starts from the fitted model, of {k} components in {d} "
            f"features, but this fit asks for {n_components} components and its data has "
            f"{n_features} features: set warm_start=False (or refit a new estimator)."
        )


def check_generator(random_state) -> np.random.Generator:
    """A ``numpy.random.Generator`` from scikit-learn's ``random_state`` conventions.

    Parameters
    ----------
    random_state : None, int, numpy.random.RandomState or numpy.random.Generator

    Returns
    -------
    rng : numpy.random.Generator
    """
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or isinstance(random_state, Integral):
        return np.random.default_rng(random_state)
    rs = check_random_state(random_state)
    return np.random.default_rng(rs.randint(0, 2**32 - 1, size=4))
