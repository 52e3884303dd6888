"""scikit-learn compatible estimators: BigLearn-EM and plain EM on NumPy and Dask arrays.

The estimators validate input and hyper-parameters, pick an engine for the data
(:class:`~dask_biglearn.engine.InProcessEngine` for NumPy, :class:`~dask_biglearn.engine.DaskEngine`
for Dask arrays), run a fitting loop from :mod:`dask_biglearn.em` and store the result.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from numbers import Integral, Real

import dask
import dask.array as da
import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from .em import fit_biglearn_em, fit_joint_em, logger
from .engine import DaskEngine, InProcessEngine
from .initialization import (
    INIT_METHODS,
    apply_user_init,
    random_from_data_params,
    random_params,
)
from .numerics import TINY, log_sum_exp_rows, precision_cholesky, weighted_log_prob
from .projection import DEFAULT_MATCHING_PROBS, MatchingSchedule

__all__ = ["BigLearnGaussianMixture", "GaussianMixture"]


# ---------------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------------


def _is_dask_array(X) -> bool:
    return isinstance(X, da.Array)


def _check_dask_array(X, n_features=None) -> da.Array:
    """Shape and dtype checks of a Dask array that need no computation."""
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


def _make_generator(random_state) -> np.random.Generator:
    """A ``numpy.random.Generator`` from scikit-learn's ``random_state`` conventions."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or isinstance(random_state, Integral):
        return np.random.default_rng(random_state)
    rs = check_random_state(random_state)
    return np.random.default_rng(rs.randint(0, 2**32 - 1, size=4))


def _order_free(mean, var):
    """Round the data's mean and variance onto a grid far below their accuracy.

    They are computed in a summation order that depends on the chunking, and serve only as
    the centre of the moments and the scale of the initialisation. Rounding them to about
    ``1e-9`` of each feature's scale (a power of two) makes fits independent of the chunking,
    up to a rounding boundary hit with probability ~1e-7, at no cost in accuracy.
    """
    mean = np.asarray(mean, dtype=np.float64)
    var = np.asarray(var, dtype=np.float64)
    scale = np.sqrt(var) + np.abs(mean)
    grid = np.exp2(np.floor(np.log2(1e-9 * scale + TINY)))
    var_grid = np.exp2(np.floor(np.log2(1e-9 * var + TINY)))
    return np.round(mean / grid) * grid, np.round(var / var_grid) * var_grid


def _check_summaries(mean, var):
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(var))):
        raise FloatingPointError(
            "The data's variance overflows float64 (values beyond ~1e150). Scale the data "
            "(e.g. standardise it) before fitting."
        )
    return mean, var


def _raise_not_finite(where):
    raise ValueError(f"Input X contains NaN or infinity ({where}).")


def _on_finite_block(X, block_fn, *args):
    """Run ``block_fn`` on a Dask chunk after checking it (NumPy input is checked upfront)."""
    if not np.all(np.isfinite(X)):
        _raise_not_finite("found while scoring a chunk")
    return block_fn(X, *args)


def _score_block(X, weights, means, prec_chol):
    return log_sum_exp_rows(weighted_log_prob(X, weights, means, prec_chol))


def _proba_block(X, weights, means, prec_chol):
    wlp = weighted_log_prob(X, weights, means, prec_chol)
    with np.errstate(under="ignore"):
        return np.exp(wlp - log_sum_exp_rows(wlp)[:, None])


def _predict_block(X, weights, means, prec_chol):
    return weighted_log_prob(X, weights, means, prec_chol).argmax(axis=1)


@contextmanager
def _verbosity(verbose):
    """Route progress to the ``dask_biglearn`` logger at INFO (verbose=1) or DEBUG (>= 2)."""
    if not verbose:
        yield
        return
    old_level = logger.level
    logger.setLevel(logging.INFO if verbose == 1 else logging.DEBUG)
    handler = None
    if not logger.hasHandlers():
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[dask_biglearn] %(message)s"))
        logger.addHandler(handler)
    try:
        yield
    finally:
        logger.setLevel(old_level)
        if handler is not None:
            logger.removeHandler(handler)


class _FitData:
    """What a fit needs to know of the data, gathered in one pass."""

    def __init__(self, engine, data_var, data_min, data_max, take_rows):
        self.engine = engine
        self.n_samples = engine.n_samples
        self.n_features = engine.n_features
        self.data_var = data_var
        self.data_min = data_min
        self.data_max = data_max
        self.take_rows = take_rows


# ---------------------------------------------------------------------------------------------
# Shared estimator machinery
# ---------------------------------------------------------------------------------------------


class _BaseGaussianMixture(DensityMixin, BaseEstimator):
    """Validation, initialisation, prediction and scoring shared by both estimators."""

    # ----- hyper-parameters -----------------------------------------------------------------

    def _check_parameters(self):
        _check_int("n_components", self.n_components, 1)
        _check_int("max_iter", self.max_iter, 0)
        _check_real("covariance_floor", self.covariance_floor, 0.0, strict=True)
        if self.init_params not in INIT_METHODS:
            raise ValueError(
                f"init_params must be one of {list(INIT_METHODS)}, got {self.init_params!r}."
            )
        if self.split_every is not None:
            _check_int("split_every", self.split_every, 2)
        _check_int("verbose", int(self.verbose) if isinstance(self.verbose, bool)
                   else self.verbose, 0)

    # ----- data ------------------------------------------------------------------------------

    def _prepare_fit_data(self, X) -> _FitData:
        if _is_dask_array(X):
            X = _check_dask_array(X)
            n, d = (int(s) for s in X.shape)
            self._check_n_samples(n)
            self.n_features_in_ = d
            # The engine persists the data first (when it fits the cluster), so the summary
            # pass below and every EM pass read it from memory.
            engine = DaskEngine(X, split_every=self.split_every)
            X = engine.X
            is_finite = da.isfinite(X)
            X_zeroed = da.where(is_finite, X, 0.0)  # keeps NaN warnings out of the summaries
            finite, mean, var, lo, hi = dask.compute(
                is_finite.all(),
                X_zeroed.mean(axis=0, dtype=np.float64),
                X_zeroed.var(axis=0, dtype=np.float64),
                X_zeroed.min(axis=0),
                X_zeroed.max(axis=0),
            )
            if not finite:
                _raise_not_finite("checked before fitting")
            mean, var = _order_free(*_check_summaries(mean, var))
            engine.shift = mean
            return _FitData(engine, var, np.asarray(lo, np.float64),
                            np.asarray(hi, np.float64), lambda idx: X[idx].compute())
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2)
        self._check_n_samples(X.shape[0])
        with np.errstate(over="ignore", invalid="ignore"):
            summaries = X.mean(axis=0, dtype=np.float64), X.var(axis=0, dtype=np.float64)
        mean, var = _order_free(*_check_summaries(*summaries))
        engine = InProcessEngine(X, mean)
        return _FitData(engine, var, X.min(axis=0).astype(np.float64),
                        X.max(axis=0).astype(np.float64), lambda idx: X[idx])

    def _check_n_samples(self, n_samples):
        if n_samples < self.n_components:
            raise ValueError(
                f"Expected n_samples >= n_components but got n_components = "
                f"{self.n_components}, n_samples = {n_samples}."
            )

    def _check_predict_data(self, X):
        check_is_fitted(self)
        if _is_dask_array(X):
            return _check_dask_array(X, self.n_features_in_), True
        return validate_data(self, X, dtype=[np.float64, np.float32], reset=False), False

    # ----- fitting ---------------------------------------------------------------------------

    def _initial_params(self, rng, data: _FitData):
        k = self.n_components
        if self.init_params == "random":
            params = random_params(rng, k, data.data_min, data.data_max)
        else:
            params = random_from_data_params(rng, k, data.n_samples, data.data_var,
                                             data.take_rows)
        return apply_user_init(
            params,
            weights_init=self.weights_init,
            means_init=self.means_init,
            precisions_init=self.precisions_init,
            covariance_floor=self.covariance_floor,
        )

    def fit(self, X, y=None):
        """Fit the mixture to ``X``.

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)
            NumPy input runs in-process; a Dask array runs its passes on the active Dask
            scheduler (see :class:`dask_biglearn.engine.DaskEngine`: on a cluster it is
            persisted when it fits, spread over the workers, and small data is passed over
            through one actor per worker). Per-sample data never comes back to the driver.
        y : ignored

        Returns
        -------
        self
        """
        self._check_parameters()
        with _verbosity(self.verbose):
            data = self._prepare_fit_data(X)
            rng = _make_generator(self.random_state)
            result = self._fit_loop(data, rng)
        self._set_fitted(result)
        return self

    def fit_predict(self, X, y=None):
        """Fit, then return ``predict(X)`` of the fitted model.

        Returns
        -------
        labels : ndarray (or lazy Dask array) of shape (n_samples,)
        """
        return self.fit(X).predict(X)

    def _set_fitted(self, result):
        p = result.params
        self.weights_ = p.weights
        self.means_ = p.means
        self.covariances_ = p.covariances
        self.precisions_cholesky_ = precision_cholesky(p.covariances)
        self.precisions_ = self.precisions_cholesky_ @ np.swapaxes(self.precisions_cholesky_,
                                                                   1, 2)
        self.lower_bound_ = float(result.lower_bound)
        self.lower_bounds_ = list(result.lower_bounds)
        self.n_iter_ = int(result.n_iter)
        self.converged_ = bool(result.converged)
        return result

    # ----- using a fitted model --------------------------------------------------------------

    def _apply_blocks(self, X, block_fn, new_width=None, **map_blocks_kwargs):
        """``block_fn(X, weights, means, precisions_cholesky)``: directly on NumPy input,
        lazily chunk by chunk (each chunk checked for NaN and inf) on Dask input."""
        X, lazy = self._check_predict_data(X)
        args = (self.weights_, self.means_, self.precisions_cholesky_)
        if not lazy:
            return block_fn(X, *args)
        if new_width is not None:
            map_blocks_kwargs["chunks"] = (X.chunks[0], (new_width,))
        return X.map_blocks(_on_finite_block, block_fn, *args, **map_blocks_kwargs)

    def score_samples(self, X):
        """Log-density of each sample under the fitted mixture.

        Returns
        -------
        log_prob : ndarray of shape (n_samples,), lazy Dask array for Dask input
        """
        return self._apply_blocks(X, _score_block, drop_axis=1, dtype=np.float64)

    def score(self, X, y=None):
        """Mean log-likelihood per sample (a float; computed for Dask input)."""
        return self._mean_score(X)[0]

    def _mean_score(self, X):
        scores = self.score_samples(X)
        mean = scores.mean().compute() if _is_dask_array(scores) else scores.mean()
        return float(mean), int(scores.shape[0])

    def predict_proba(self, X):
        """Posterior probability of each component for each sample.

        Returns
        -------
        resp : ndarray of shape (n_samples, n_components), lazy Dask array for Dask input
        """
        return self._apply_blocks(X, _proba_block, dtype=np.float64, new_width=self.n_components)

    def predict(self, X):
        """Index of the most probable component for each sample.

        Returns
        -------
        labels : ndarray of shape (n_samples,), lazy Dask array for Dask input
        """
        return self._apply_blocks(X, _predict_block, drop_axis=1, dtype=np.intp)

    def _n_parameters(self):
        k, d = self.means_.shape
        return int(k * d * (d + 1) / 2 + k * d + k - 1)

    def bic(self, X):
        """Bayesian information criterion of the fitted model on ``X`` (lower is better)."""
        mean, n = self._mean_score(X)
        return -2 * mean * n + self._n_parameters() * np.log(n)

    def aic(self, X):
        """Akaike information criterion of the fitted model on ``X`` (lower is better)."""
        mean, n = self._mean_score(X)
        return -2 * mean * n + 2 * self._n_parameters()

    def sample(self, n_samples=1):
        """Draw samples from the fitted mixture.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,), the component of each sample
        """
        check_is_fitted(self)
        if not isinstance(n_samples, Integral) or n_samples < 1:
            raise ValueError(f"n_samples must be an integer >= 1, got {n_samples!r}.")
        rng = (self.random_state if isinstance(self.random_state, np.random.Generator)
               else check_random_state(self.random_state))
        counts = rng.multinomial(n_samples, self.weights_)
        X = np.vstack([
            rng.multivariate_normal(mean, cov, int(c))
            for mean, cov, c in zip(self.means_, self.covariances_, counts, strict=True)
        ])
        y = np.concatenate([np.full(c, j, dtype=int) for j, c in enumerate(counts)])
        return X, y


def _check_int(name, value, low):
    if not isinstance(value, Integral) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")


def _check_real(name, value, low, *, strict=False):
    ok = isinstance(value, Real) and not isinstance(value, bool) and np.isfinite(value)
    ok = ok and (value > low if strict else value >= low)
    if not ok:
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {low}, "
                         f"got {value!r}.")


# ---------------------------------------------------------------------------------------------
# The estimators
# ---------------------------------------------------------------------------------------------

_COMMON_PARAMS_DOC = """
    covariance_floor : float, default=1e-6
        Eigenvalue floor ``eps`` applied after every covariance update: eigenvalues below it
        are raised to it, keeping every covariance symmetric positive definite; must be > 0.
        It is in the units of the data's variance, so scale it with the data (the paper uses
        1e-2 on [0, 1]-scaled data and 1e-5 in its 2-D simulation).
    init_params : {"random", "random_from_data"}, default="random"
        ``"random"``: the paper's initialisation in min-max-scaled units: means
        ``min + (max - min) * z`` with ``z ~ N(0, I)``, covariances ``diag((max - min)^2)``,
        equal weights; on data scaled to [0, 1] this is exactly the reference code's
        ``N(0, I)`` means and identity covariances.
        ``"random_from_data"``: means at distinct random rows, covariances ``diag(var)``,
        equal weights.
    weights_init, means_init, precisions_init : array-like, default=None
        User-provided initial weights ``(n_components,)``, means
        ``(n_components, n_features)`` and precision matrices
        ``(n_components, n_features, n_features)``; each replaces its part of ``init_params``.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation and (BigLearn-EM) every matching, subset and rotation. All
        draws happen on the driver, so a seed gives the same fit whatever the chunking of the
        data and the number of workers.
    split_every : int, default=None
        Fan-in of the tree reduction of the per-chunk statistics for Dask input (default:
        ``dask.config`` ``"split_every"``, else 8).
    verbose : int, default=0
        1 logs progress at every check to the ``dask_biglearn`` logger at INFO, 2 also every
        iteration at DEBUG. A stderr handler is added if the logger has none.
"""

_COMMON_ATTRS_DOC = """
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    covariances_ : ndarray of shape (n_components, n_features, n_features)
    precisions_ : ndarray of shape (n_components, n_features, n_features)
    precisions_cholesky_ : ndarray of shape (n_components, n_features, n_features)
        Upper-triangular ``U_k`` with ``U_k U_k^T = covariances_[k]^{-1}``.
    n_features_in_ : int
    lower_bound_ : float
        Mean joint log-likelihood per training sample of the returned model.
"""


class GaussianMixture(_BaseGaussianMixture):
    __doc__ = f"""Gaussian mixture fitted by plain (joint) EM, on NumPy or Dask arrays.

    The baseline of BigLearn-EM and an estimator of its own: the same engine as
    :class:`BigLearnGaussianMixture` with every update joint and no weight smoothing. Its
    updates are scikit-learn's with an eigenvalue floor in place of ``reg_covar``.

    Parameters
    ----------
    n_components : int, default=1
    max_iter : int, default=100
        EM iterations (passes over the data). 0 returns the initialisation.
    tol : float, default=1e-3
        Stop when the mean log-likelihood changes by less than this between iterations.
    n_init : int, default=1
        Number of initialisations; the one with the best ``lower_bound_`` is kept.
{_COMMON_PARAMS_DOC}
    Attributes
    ----------
{_COMMON_ATTRS_DOC}
    lower_bounds_ : list of float
        Mean log-likelihood at each iteration (of the parameters entering it).
    n_iter_ : int
    converged_ : bool
    """

    def __init__(self, n_components=1, *, max_iter=100, tol=1e-3, n_init=1,
                 covariance_floor=1e-6, init_params="random", weights_init=None,
                 means_init=None, precisions_init=None, random_state=None, split_every=None,
                 verbose=0):
        self.n_components = n_components
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.covariance_floor = covariance_floor
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.split_every = split_every
        self.verbose = verbose

    def _check_parameters(self):
        super()._check_parameters()
        _check_real("tol", self.tol, 0.0)
        _check_int("n_init", self.n_init, 1)

    def _fit_loop(self, data, rng):
        best = None
        for _ in range(self.n_init):
            params = self._initial_params(rng, data)
            result = fit_joint_em(data.engine, params, max_iter=self.max_iter, tol=self.tol,
                                  covariance_floor=self.covariance_floor)
            if best is None or result.lower_bound > best.lower_bound:
                best = result
        if not best.converged and self.max_iter > 0:
            warnings.warn(
                f"EM did not converge in max_iter={self.max_iter} iterations (tol={self.tol}). "
                "Increase max_iter or tol.",
                ConvergenceWarning,
                stacklevel=3,
            )
        return best


class BigLearnGaussianMixture(_BaseGaussianMixture):
    __doc__ = f"""Gaussian mixture fitted by BigLearn-EM (Cong & Li, AAAI 2024).

    Each outer iteration draws a matching (joint, marginal on a random coordinate subset, or
    marginal on a random subset after a random rotation) and makes ``n_inner_iter`` EM
    updates in that projected space. These updates move the parameters where joint EM
    cannot and so escape the bad local optima plain EM lands in once ``n_components > 3``.

    The method has no stopping rule; it runs ``max_iter`` outer iterations, evaluates the
    joint training log-likelihood every ``check_every`` of them and at the end, and **returns
    the best parameters it checked** (BigLearn-EM wanders between good states).

    Parameters
    ----------
    n_components : int, default=1
    max_iter : int, default=1000
        Outer iterations (the paper: 2000 in its 2-D simulation, 10000 on UCI data). Each
        makes ``n_inner_iter`` passes over the data.
    n_inner_iter : int, default=5
        Local EM updates per outer iteration.
    matching_probs : dict, default={{"joint": 0.4, "marginal": 0.1, "rotated_marginal": 0.5}}
        Probability of each matching kind (the reference code's values); must sum to 1.
    marginal_size_beta : (float, float), default=(5.0, 1.0)
        ``(a, b)`` of the Beta law of the subset fraction: ``m = max(1, floor(D * Beta(a, b)))``.
    weight_concentration : float, default=None
        Weight smoothing ``alpha``: ``pi_k = (N_k/N + alpha) / sum_j (N_j/N + alpha)``.
        None means ``1 / n_components`` (the paper's UCI setting; its simulation used
        ``1/sqrt(n_components)``); 0 disables it. It keeps every weight at least
        ``alpha / (1 + K alpha)``, so components never die.
    check_every : int, default=20
        Outer iterations between evaluations of the joint log-likelihood.
{_COMMON_PARAMS_DOC}
    Attributes
    ----------
{_COMMON_ATTRS_DOC}
    lower_bounds_ : list of float
        Joint mean log-likelihood at each check.
    matchings_ : list of str
        The matching drawn at each outer iteration.
    best_iteration_ : int
        Outer iteration whose parameters were returned.
    n_iter_ : int
        Outer iterations run (always ``max_iter``).
    converged_ : bool
        True once the schedule of ``max_iter`` iterations completed (there is no
        convergence test).

    Notes
    -----
    A component whose responsibility mass falls below ``1e-5 N`` has its M-step divisor floored
    at ``1e-5 N`` (as in the reference), which shrinks its mean towards the data mean (the
    reference code shrinks it towards the origin, which depends on where the origin is); with
    weight smoothing on this is rare.
    """

    def __init__(self, n_components=1, *, max_iter=1000, n_inner_iter=5,
                 matching_probs=DEFAULT_MATCHING_PROBS, marginal_size_beta=(5.0, 1.0),
                 weight_concentration=None, covariance_floor=1e-6, init_params="random",
                 weights_init=None, means_init=None, precisions_init=None, check_every=20,
                 random_state=None, split_every=None, verbose=0):
        self.n_components = n_components
        self.max_iter = max_iter
        self.n_inner_iter = n_inner_iter
        self.matching_probs = matching_probs
        self.marginal_size_beta = marginal_size_beta
        self.weight_concentration = weight_concentration
        self.covariance_floor = covariance_floor
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.check_every = check_every
        self.random_state = random_state
        self.split_every = split_every
        self.verbose = verbose

    def _check_parameters(self):
        super()._check_parameters()
        _check_int("n_inner_iter", self.n_inner_iter, 1)
        _check_int("check_every", self.check_every, 1)
        if self.weight_concentration is not None:
            _check_real("weight_concentration", self.weight_concentration, 0.0)
        self._schedule = MatchingSchedule(self.matching_probs, self.marginal_size_beta)

    def _fit_loop(self, data, rng):
        alpha = (1.0 / self.n_components if self.weight_concentration is None
                 else float(self.weight_concentration))
        params = self._initial_params(rng, data)
        return fit_biglearn_em(
            data.engine, params, schedule=self._schedule, rng=rng, max_iter=self.max_iter,
            n_inner_iter=self.n_inner_iter, check_every=self.check_every,
            covariance_floor=self.covariance_floor, weight_concentration=alpha,
        )

    def _set_fitted(self, result):
        super()._set_fitted(result)
        self.matchings_ = list(result.matchings)
        self.best_iteration_ = int(result.best_iteration)
        return result
