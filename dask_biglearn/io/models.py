"""Model files: the document of a fitted mixture, written and read without pickle.

A model file (:mod:`.files`: JSON and ``.npz`` in one ZIP) holds the estimator's class name
and hyper-parameters, the fitted parameters (weights, means, covariances: precisions are
recomputed on load), the history (``lower_bounds``, ``matchings``) and the fitted scalars
(``n_iter_``, ``n_data_passes_``, ...). The covariances (and a given ``precisions_init``)
have scikit-learn's shape for the hyper-parameter ``covariance_type`` (since format 3; a file
without it is of full covariances, as every earlier one). This module knows the format only:
which estimator a file names, and what its attributes mean, is the estimators' business
(:func:`dask_biglearn.estimator.load_model` builds the estimator from a
:class:`ModelDocument`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path

import numpy as np

from ..covariances import COVARIANCE_TYPES, type_entry
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
    covariances : ndarray
        scikit-learn's shape for ``hyper_parameters["covariance_type"]`` (full when absent).
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


#: The largest absolute mean, and covariance entry, a model file may hold: squares and
#: products of such numbers, and of differences from them, stay finite in float64.
MAX_ABS_MEAN = 1e150
MAX_ABS_COVARIANCE = 1e300
#: The most an integer counter (``n_iter_``, ``bytes_read_``, ...) may be.
MAX_COUNTER = 2**63 - 1


def _expected_shapes(where: str):
    """The check, before any array is read, that the arrays' shapes are the parameters'.

    ``K = hyper_parameters["n_components"]``, ``D = fitted["n_features_in_"]`` (or the
    means' second dimension in a file without it): ``weights (K,)``, ``means (K, D)``,
    ``covariances`` of the covariance type's shape (``(K, D, D)`` full), ``lower_bounds
    (n,)`` and the optional initial arrays ``init/weights_init (K,)``, ``init/means_init
    (K, D)``, ``init/precisions_init`` (the type's shape); no other array.
    """

    def check(meta, shapes):
        params = require(meta, "hyper_parameters", dict, where)
        fitted = require(meta, "fitted", dict, where)
        k = require(params, "n_components", Integral, where)
        if k < 1:
            raise ModelFileError(f"{where}: n_components is {k}, not a positive integer.")
        for name in (*PARAMETER_ARRAYS, "lower_bounds"):
            if name not in shapes:
                raise ModelFileError(f"{where}: the array {name!r} is missing.")
        if "n_features_in_" in fitted:
            d = require(fitted, "n_features_in_", Integral, where)
            if d < 1:
                raise ModelFileError(f"{where}: n_features_in_ is {d}, not a positive "
                                     f"integer.")
        elif len(shapes["means"]) == 2:
            d = shapes["means"][1]
        else:
            raise ModelFileError(f"{where}: the means have shape {shapes['means']}, not "
                                 f"(n_components, n_features).")
        covariance_type = _covariance_type(params, where)
        typed = type_entry(covariance_type).shape(k, d)
        expected = {"weights": (k,), "means": (k, d), "covariances": typed,
                    f"{ARRAY_PREFIX}weights_init": (k,), f"{ARRAY_PREFIX}means_init": (k, d),
                    f"{ARRAY_PREFIX}precisions_init": typed}
        for name, shape in shapes.items():
            if name in expected and shape != expected[name]:
                raise ModelFileError(
                    f"{where}: the array {name!r} has shape {shape}, but n_components={k}, "
                    f"n_features={d} and covariance_type={covariance_type!r} make it "
                    f"{expected[name]}.")
        if len(shapes["lower_bounds"]) != 1:
            raise ModelFileError(f"{where}: lower_bounds has shape {shapes['lower_bounds']}, "
                                 f"not (n_checks,).")
        referenced = {f"{ARRAY_PREFIX}{name}" for name, value in params.items()
                      if value == ARRAY_MARKER}
        for name in shapes:
            if name not in (*PARAMETER_ARRAYS, "lower_bounds") and name not in referenced:
                raise ModelFileError(f"{where}: an unexpected array {name[:60]!r}.")

    return check


def _covariance_type(params: dict, where: str) -> str:
    """The file's covariance type: ``"full"`` when it names none (files before format 3)."""
    covariance_type = params.get("covariance_type", "full")
    if covariance_type not in COVARIANCE_TYPES:
        raise ModelFileError(f"{where}: unknown covariance_type {str(covariance_type)[:40]!r}; "
                             f"expected one of {COVARIANCE_TYPES}.")
    return covariance_type


def _check_fitted(where: str, fitted: dict) -> None:
    """The fitted scalars: ints, finite floats and bools; integer counters in
    ``[0, 2**63)``, ``n_features_in_`` at least 1."""
    for name in fitted:
        value = require(fitted, name, (Integral, Real, bool), where)
        if isinstance(value, Integral) and not isinstance(value, bool):
            low = 1 if name == "n_features_in_" else 0
            if not low <= value <= MAX_COUNTER:
                raise ModelFileError(f"{where}: {name[:60]!r} is {value}, out of range "
                                     f"(a count: {low} to 2**63 - 1).")


def _check_parameters(where, weights, means, covariances, lower_bounds,
                      covariance_type="full"):
    """The format's checks of the parameters: consistent shapes, a probability vector,
    symmetric covariances of a sane scale (positive definiteness is checked where the
    precisions are computed)."""
    entry = type_entry(covariance_type)
    if (weights.ndim != 1 or means.ndim != 2 or means.shape[0] != weights.shape[0]
            or covariances.shape != entry.shape(*means.shape)
            or weights.shape[0] < 1 or means.shape[1] < 1 or lower_bounds.ndim != 1):
        raise ModelFileError(f"{where}: the parameters have inconsistent shapes "
                             f"{weights.shape}, {means.shape}, {covariances.shape}.")
    if np.any(weights < 0) or abs(weights.sum() - 1.0) > 1e-6:
        raise ModelFileError(f"{where}: the weights are not a probability vector.")
    if (np.max(np.abs(means)) > MAX_ABS_MEAN or np.max(np.abs(covariances)) > MAX_ABS_COVARIANCE
            or np.any(entry.diagonals(covariances) <= 0)):
        raise ModelFileError(f"{where}: the parameters are out of range (means within "
                             f"+-{MAX_ABS_MEAN:.0e}, covariance entries within "
                             f"+-{MAX_ABS_COVARIANCE:.0e}, variances > 0).")
    matrices = entry.matrices(covariances)  # None for variances, symmetric by nature
    if matrices is not None and not np.allclose(matrices, np.swapaxes(matrices, 1, 2),
                                                rtol=1e-10, atol=0):
        raise ModelFileError(f"{where}: a covariance is not symmetric.")


def read_model(path) -> ModelDocument:
    """Read a model file.

    The arrays' shapes are checked against ``n_components`` and ``n_features_in_`` before
    any of them is read, and the parameters' values after: finite, of a scale whose
    squares and products stay finite, a probability vector of weights; the fitted counters
    are non-negative.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    document : ModelDocument

    Raises
    ------
    ModelFileError
        For anything that is not a model file we wrote, or is damaged, or holds parameters
        out of range (one line naming the file and the problem).
    """
    where = str(path)
    meta, arrays = read_archive(path, MODEL_KIND, check_shapes=_expected_shapes(where))
    estimator = require(meta, "estimator", str, where)
    params = dict(require(meta, "hyper_parameters", dict, where))
    for name, value in params.items():
        if value == ARRAY_MARKER:
            if f"{ARRAY_PREFIX}{name}" not in arrays:
                raise ModelFileError(f"{where}: the array of {name[:60]!r} is missing.")
            params[name] = arrays[f"{ARRAY_PREFIX}{name}"]
    fitted = require(meta, "fitted", dict, where)
    _check_fitted(where, fitted)
    weights, means, covariances = (arrays[name] for name in PARAMETER_ARRAYS)
    _check_parameters(where, weights, means, covariances, arrays["lower_bounds"],
                      _covariance_type(params, where))
    matchings = meta.get("matchings", [])
    if not isinstance(matchings, list) or not all(isinstance(m, str) for m in matchings):
        raise ModelFileError(f"{where}: bad matchings.")
    return ModelDocument(estimator, params, dict(fitted), weights, means, covariances,
                         arrays["lower_bounds"], matchings)
