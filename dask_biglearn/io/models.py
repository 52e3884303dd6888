"""Model files: the document of a fitted mixture, written and read without pickle.

A model file (:mod:`.files`: JSON and ``.npz`` in one ZIP) holds the estimator's class name
and hyper-parameters, the fitted parameters (weights, means, covariances: precisions are
recomputed on load), the history (``lower_bounds``, ``matchings``) and the fitted scalars
(``n_iter_``, ``n_data_passes_``, ...). This module knows the format only: which estimator a
file names, and what its attributes mean, is the estimators' business
(:func:`dask_biglearn.estimator.load_model` builds the estimator from a
:class:`ModelDocument`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path

import numpy as np

from .files import ModelFileError, read_archive, require, write_document

__all__ = ["MODEL_KIND", "ModelDocument", "jsonable_parameters", "read_model", "write_model"]

MODEL_KIND = "model"
#: Where an array-valued hyper-parameter goes among the arrays (its JSON value is a marker).
ARRAY_PREFIX, ARRAY_MARKER = "init/", "<array>"
PARAMETER_ARRAYS = ("weights", "means", "covariances")


@dataclass(frozen=True, eq=False)
class ModelDocument:
    """What a model file holds.

    Parameters
    ----------
    estimator : str
        The estimator's class name.
    hyper_parameters : dict
        By name; arrays as NumPy arrays, sequences as JSON lists.
    fitted : dict
        Fitted scalars by attribute name (``"n_iter_"``, ...): ints, floats and bools.
    weights : ndarray of shape (n_components,)
    means : ndarray of shape (n_components, n_features)
    covariances : ndarray of shape (n_components, n_features, n_features)
    lower_bounds : ndarray of shape (n_checks,)
    matchings : list of str
        The matching of each outer iteration (empty for plain EM).
    """

    estimator: str
    hyper_parameters: dict
    fitted: dict
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    lower_bounds: np.ndarray
    matchings: list


def _jsonable(value):
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    return value


def jsonable_parameters(params: dict, *, hash_arrays: bool = False):
    """Hyper-parameters as a JSON document and arrays.

    Parameters
    ----------
    params : dict
        Hyper-parameters by name (values JSON-able, NumPy scalars, paths, tuples or arrays).
    hash_arrays : bool, default=False
        Give each array as its SHA-256 (what a checkpoint's identity compares) instead of
        the marker ``"<array>"`` and an entry of ``arrays``.

    Returns
    -------
    document : dict
    arrays : dict of str to ndarray
        The array-valued hyper-parameters, float64, by ``"init/<name>"``.
    """
    document, arrays = {}, {}
    for name, value in params.items():
        if isinstance(value, np.ndarray):
            value = np.asarray(value, dtype=np.float64)
            if hash_arrays:
                document[name] = hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()
                continue
            arrays[f"{ARRAY_PREFIX}{name}"] = value
            value = ARRAY_MARKER
        document[name] = _jsonable(value)
    return document, arrays


def write_model(path, document: ModelDocument) -> Path:
    """Write a model file (atomically; see :mod:`.files`).

    Parameters
    ----------
    path : path-like
    document : ModelDocument

    Returns
    -------
    path : pathlib.Path
    """
    params, arrays = jsonable_parameters(document.hyper_parameters)
    arrays.update({name: np.asarray(getattr(document, name), np.float64)
                   for name in (*PARAMETER_ARRAYS, "lower_bounds")})
    body = {"estimator": document.estimator, "hyper_parameters": params,
            "fitted": _jsonable(document.fitted),
            "matchings": [str(m) for m in document.matchings]}
    return write_document(path, MODEL_KIND, body, arrays)


def _check_parameters(where, weights, means, covariances, lower_bounds):
    """The format's checks of the parameters: consistent shapes, a probability vector,
    symmetric covariances (positive definiteness is checked where the precisions are
    computed)."""
    if (weights.ndim != 1 or means.ndim != 2 or covariances.ndim != 3
            or means.shape[0] != weights.shape[0] or covariances.shape
            != (weights.shape[0], means.shape[1], means.shape[1]) or weights.shape[0] < 1
            or means.shape[1] < 1 or lower_bounds.ndim != 1):
        raise ModelFileError(f"{where}: the parameters have inconsistent shapes "
                             f"{weights.shape}, {means.shape}, {covariances.shape}.")
    if np.any(weights < 0) or abs(weights.sum() - 1.0) > 1e-6:
        raise ModelFileError(f"{where}: the weights are not a probability vector.")
    if not np.allclose(covariances, np.swapaxes(covariances, 1, 2), rtol=1e-10, atol=0):
        raise ModelFileError(f"{where}: a covariance is not symmetric.")


def read_model(path) -> ModelDocument:
    """Read a model file.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    document : ModelDocument

    Raises
    ------
    ModelFileError
        For anything that is not a model file we wrote, or is damaged (one line naming the
        file and the problem).
    """
    meta, arrays = read_archive(path, MODEL_KIND)
    where = str(path)
    estimator = require(meta, "estimator", str, where)
    params = dict(require(meta, "hyper_parameters", dict, where))
    for name, value in params.items():
        if value == ARRAY_MARKER:
            if f"{ARRAY_PREFIX}{name}" not in arrays:
                raise ModelFileError(f"{where}: the array of {name!r} is missing.")
            params[name] = arrays[f"{ARRAY_PREFIX}{name}"]
    fitted = require(meta, "fitted", dict, where)
    for name in fitted:
        require(fitted, name, (Integral, Real, bool), where)
    for name in (*PARAMETER_ARRAYS, "lower_bounds"):
        if name not in arrays:
            raise ModelFileError(f"{where}: the array {name!r} is missing.")
    weights, means, covariances = (arrays[name] for name in PARAMETER_ARRAYS)
    _check_parameters(where, weights, means, covariances, arrays["lower_bounds"])
    matchings = meta.get("matchings", [])
    if not isinstance(matchings, list) or not all(isinstance(m, str) for m in matchings):
        raise ModelFileError(f"{where}: bad matchings.")
    return ModelDocument(estimator, params, dict(fitted), weights, means, covariances,
                         arrays["lower_bounds"], matchings)
