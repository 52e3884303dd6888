"""Model files: a fitted estimator saved and loaded without pickle (see :mod:`.files`).

The file holds the estimator's class and hyper-parameters, the package and format versions,
the fitted parameters (weights, means, covariances: the precisions are recomputed on load)
and the fit's history and accounting (``lower_bounds_``, ``matchings_``, ``n_iter_``,
``n_data_passes_``, ...). Callbacks are not saved; a ``random_state`` that is not an int or
None is saved as None.
"""

from __future__ import annotations

from numbers import Integral
from pathlib import Path

import numpy as np

from .files import FORMAT_VERSION, ModelFileError, read_archive, require, write_archive

MODEL_KIND = "model"
#: Fitted scalars saved with their JSON types.
FITTED_SCALARS = {
    "lower_bound_": float, "n_iter_": int, "converged_": bool, "n_data_passes_": int,
    "bytes_read_": int, "n_sample_passes_": int, "n_features_in_": int,
    "best_iteration_": int, "n_moves_": int, "n_refine_iter_": int,
}
#: Hyper-parameters that are tuples in the estimators (JSON has lists).
TUPLE_PARAMS = ("marginal_size_beta", "moves")
ARRAY_PARAMS = ("weights_init", "means_init", "precisions_init")


def _estimator_classes():
    from ..estimator import BigLearnGaussianMixture, GaussianMixture

    return {cls.__name__: cls for cls in (BigLearnGaussianMixture, GaussianMixture)}


#: Hyper-parameters that do not change what a fit computes (left out of a checkpoint's
#: identity).
RUN_PARAMS = ("callbacks", "verbose", "split_every", "checkpoint", "checkpoint_every",
              "resume")


def hyper_parameters(estimator, *, identity=False):
    """``(params, arrays)``: the JSON-able hyper-parameters (``"<array>"`` for an array,
    which goes to ``arrays``). ``identity=True``: without :data:`RUN_PARAMS`, and arrays as
    their SHA-256 (what a checkpoint checks)."""
    import hashlib

    params, arrays = {}, {}
    for name, value in estimator.get_params(deep=False).items():
        if identity and name in RUN_PARAMS:
            continue
        if name == "callbacks" or name == "random_state" and not (value is None or isinstance(value, Integral)):
            value = None
        elif name in ARRAY_PARAMS and value is not None:
            value = np.asarray(value, dtype=np.float64)
            if identity:
                value = hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()
            else:
                arrays[f"init/{name}"] = value
                value = "<array>"
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, np.integer):
            value = int(value)
        elif isinstance(value, Path):
            value = str(value)
        params[name] = value
    return params, arrays


def model_document(estimator) -> tuple[dict, dict[str, np.ndarray]]:
    """``(meta, arrays)`` of a fitted estimator."""
    from .. import __version__

    params, arrays = hyper_parameters(estimator)
    fitted = {name: kind(getattr(estimator, name)) for name, kind in FITTED_SCALARS.items()
              if hasattr(estimator, name)}
    arrays.update(weights=np.asarray(estimator.weights_, np.float64),
                  means=np.asarray(estimator.means_, np.float64),
                  covariances=np.asarray(estimator.covariances_, np.float64),
                  lower_bounds=np.asarray(estimator.lower_bounds_, np.float64))
    meta = {"format": "dask-biglearn", "format_version": FORMAT_VERSION, "kind": MODEL_KIND,
            "package_version": __version__, "estimator": type(estimator).__name__,
            "hyper_parameters": params, "fitted": fitted,
            "matchings": list(getattr(estimator, "matchings_", []))}
    return meta, arrays


def save_model(estimator, path) -> Path:
    """Write the fitted ``estimator`` to ``path`` (atomically; see :mod:`.files`)."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator, "means_")
    meta, arrays = model_document(estimator)
    return write_archive(path, meta, arrays)


def load_model(path):
    """The estimator saved at ``path``, fitted; :class:`ModelFileError` for anything that is
    not a model file we wrote (or is damaged)."""
    from ..algebra import CholeskyError, precision_cholesky

    meta, arrays = read_archive(path, MODEL_KIND)
    where = str(path)
    classes = _estimator_classes()
    name = require(meta, "estimator", str, where)
    if name not in classes:
        raise ModelFileError(f"{where}: unknown estimator {name!r}.")
    cls = classes[name]
    params = require(meta, "hyper_parameters", dict, where)
    known = set(cls().get_params(deep=False))
    if not set(params) <= known:
        raise ModelFileError(f"{where}: unknown hyper-parameters "
                             f"{sorted(set(params) - known)[:5]}.")
    params = dict(params)
    for key in TUPLE_PARAMS:
        if isinstance(params.get(key), list):
            params[key] = tuple(params[key])
    for key in ARRAY_PARAMS:
        if params.get(key) == "<array>":
            if f"init/{key}" not in arrays:
                raise ModelFileError(f"{where}: the array of {key!r} is missing.")
            params[key] = arrays[f"init/{key}"]
    estimator = cls(**params)
    try:
        estimator._check_parameters()
    except (ValueError, TypeError) as exc:
        raise ModelFileError(f"{where}: bad hyper-parameters ({exc}).") from None
    for key in ("weights", "means", "covariances", "lower_bounds"):
        if key not in arrays:
            raise ModelFileError(f"{where}: the array {key!r} is missing.")
    weights, means, covariances = arrays["weights"], arrays["means"], arrays["covariances"]
    if (weights.ndim != 1 or means.ndim != 2 or covariances.ndim != 3
            or means.shape[0] != weights.shape[0] or covariances.shape
            != (weights.shape[0], means.shape[1], means.shape[1]) or weights.shape[0] < 1
            or means.shape[1] < 1 or arrays["lower_bounds"].ndim != 1):
        raise ModelFileError(f"{where}: the parameters have inconsistent shapes "
                             f"{weights.shape}, {means.shape}, {covariances.shape}.")
    if weights.shape[0] != estimator.n_components:
        raise ModelFileError(f"{where}: {weights.shape[0]} components, but n_components is "
                             f"{estimator.n_components}.")
    if np.any(weights < 0) or abs(weights.sum() - 1.0) > 1e-6:
        raise ModelFileError(f"{where}: the weights are not a probability vector.")
    if not np.allclose(covariances, np.swapaxes(covariances, 1, 2), rtol=1e-10, atol=0):
        raise ModelFileError(f"{where}: a covariance is not symmetric.")
    try:
        chol = precision_cholesky(covariances)
    except (CholeskyError, np.linalg.LinAlgError):
        raise ModelFileError(f"{where}: a covariance is not positive definite.") from None
    fitted = require(meta, "fitted", dict, where)
    for key, kind in FITTED_SCALARS.items():
        if key in fitted:
            types = (int, float) if kind is float else kind
            setattr(estimator, key, kind(require(fitted, key, types, where)))
    if getattr(estimator, "n_features_in_", means.shape[1]) != means.shape[1]:
        raise ModelFileError(f"{where}: n_features_in_ does not match the means.")
    estimator.n_features_in_ = int(means.shape[1])
    estimator.weights_, estimator.means_, estimator.covariances_ = weights, means, covariances
    estimator.precisions_cholesky_ = chol
    estimator.precisions_ = chol @ np.swapaxes(chol, 1, 2)
    estimator.lower_bounds_ = [float(v) for v in arrays["lower_bounds"]]
    matchings = meta.get("matchings", [])
    if not isinstance(matchings, list) or not all(isinstance(m, str) for m in matchings):
        raise ModelFileError(f"{where}: bad matchings.")
    if hasattr(cls, "_set_fitted") and name == "BigLearnGaussianMixture":
        estimator.matchings_ = matchings
    return estimator
