"""scikit-learn compatible estimators: BigLearn-EM and plain EM on NumPy and Dask arrays.

The estimators are a shell around the fit program (:mod:`dask_biglearn.fit.plan`). ``fit``
validates the parameters (declared in ``_parameter_constraints``) and the input
(:mod:`dask_biglearn.validation`), turns the hyper-parameters into a
:class:`~dask_biglearn.fit.plan.FitPlan`, opens the engine for the data
(:func:`dask_biglearn.engines.make_engine`: in-process for NumPy, a Dask graph for Dask
arrays), runs the plan and sets the fitted attributes from its result in one method,
``_set_fitted``, which :func:`load_model` uses too. Scoring a fitted model runs the per-block
kernels of :mod:`dask_biglearn.kernels.scoring`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import logging
import os
import warnings
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, RealNotInt, StrOptions
from sklearn.utils.validation import check_is_fitted

from .algebra import (
    COVARIANCE_TYPES,
    CholeskyError,
    full_covariances,
    n_mixture_parameters,
    typed_covariances,
    typed_precisions,
    typed_precisions_cholesky,
)
from .covariances import type_entry
from .engines import make_engine
from .exceptions import DegenerateFitWarning
from .fit.journal import Journal, fit_identity
from .fit.loop import FitSettings
from .fit.moves import MOVE_KINDS, MoveSettings
from .fit.plan import FitPlan, FitResult, degeneracy, run_plan
from .fit.scalable import sample_rows
from .initialization import INIT_METHODS, one_given_start
from .io.files import ModelFileError
from .io.models import ModelDocument, read_model, write_model
from .kernels.features import default_block_rows
from .kernels.scoring import (
    checked_block,
    predict_block,
    proba_block,
    score_block,
    score_sum_block,
)
from .model import MixtureParams
from .projection import DEFAULT_MATCHING_PROBS, MatchingSchedule
from .validation import (
    Satisfies,
    check_array,
    check_callbacks,
    check_generator,
    check_n_samples,
    check_subset,
    check_warm_start,
    is_dask_array,
    is_data_array,
    lazy_as_array,
    with_sample_weight,
)
from .verbosity import verbosity

__all__ = ["PAPER_SETTINGS", "BigLearnGaussianMixture", "GaussianMixture", "load_model",
           "missing_summary"]

logger = logging.getLogger(__name__)

#: The paper's algorithm (Cong & Li, AAAI 2024, and its reference code), one setting away:
#: ``BigLearnGaussianMixture(n_components, **PAPER_SETTINGS)`` (choose ``max_iter``: the
#: paper ran 2000 outer iterations in its 2-D simulation, 10000 on UCI data, and
#: ``covariance_floor``: 1e-5 there, 1e-2 on [0, 1]-scaled data). A random start in
#: min-max-scaled units, matchings with probabilities 0.4 / 0.1 / 0.5 and Beta(5, 1) subset
#: fractions, 5 local updates an outer iteration, weight smoothing 1/K, all ``max_iter``
#: outer iterations, the best checked parameters, no refinement.
PAPER_SETTINGS = {
    "init_params": "random",
    "n_init": 1,
    "n_inner_iter": 5,
    "matching_probs": None,
    "marginal_size_beta": (5.0, 1.0),
    "weight_concentration": None,
    "n_iter_no_change": None,
    "refine_max_iter": 0,
    "n_explore": None,
    "moves": (),
}

#: Hyper-parameters that do not change what a fit computes: left out of a checkpoint's
#: identity.
RUN_PARAMS = ("callbacks", "verbose", "verbose_interval", "split_every", "checkpoint",
              "checkpoint_every", "resume")
#: Run-time settings of one fit: never saved in a model file (a loaded model fits afresh,
#: with no callbacks and no checkpoint of its own until given them).
SESSION_PARAMS = ("callbacks", "checkpoint", "resume")
#: Hyper-parameters that are arrays when given.
ARRAY_PARAMS = ("weights_init", "means_init", "precisions_init")


def _matching_schedule(matching_probs, marginal_size_beta) -> MatchingSchedule:
    probs = DEFAULT_MATCHING_PROBS if matching_probs is None else matching_probs
    return MatchingSchedule(probs, marginal_size_beta)


def _positive(n):
    return Interval(Integral, n, None, closed="left")


def _non_negative_real():
    return Interval(Real, 0, None, closed="left")


# ---------------------------------------------------------------------------------------------
# Shared estimator machinery
# ---------------------------------------------------------------------------------------------


class _BaseGaussianMixture(DensityMixin, BaseEstimator):
    """The fit shell, prediction, scoring and files shared by both estimators.

    Subclasses provide ``_fit_plan`` (the fit program their hyper-parameters ask for) and
    name their extra fitted attributes in ``_fitted_types``.
    """

    _parameter_constraints: ClassVar[dict] = {
        "n_components": [_positive(1)],
        "covariance_type": [StrOptions(set(COVARIANCE_TYPES))],
        "max_iter": [_positive(0)],
        "tol": [_non_negative_real()],
        "n_init": [_positive(1)],
        "covariance_floor": [Interval(Real, 0, None, closed="neither")],
        "reg_covar": [_non_negative_real()],
        "init_params": [StrOptions(set(INIT_METHODS))],
        "weights_init": ["array-like", None],
        "means_init": ["array-like", None],
        "precisions_init": ["array-like", None],
        "warm_start": ["boolean"],
        "sample_size": [None, StrOptions({"auto"}), _positive(1),
                        Interval(RealNotInt, 0, 1, closed="right")],
        "refine_max_iter": [_positive(0)],
        "refine_tol": [_non_negative_real()],
        "random_state": ["random_state", np.random.Generator],
        "split_every": [None, _positive(2)],
        "callbacks": [None, Satisfies(check_callbacks,
                                      "None or a list of callables callback(state, event)")],
        "checkpoint": [None, str, os.PathLike],
        "checkpoint_every": [_positive(1)],
        "resume": ["boolean"],
        "verbose": ["verbose"],
        "verbose_interval": [_positive(1)],
    }

    #: Fitted attributes besides the parameters, and how each is stored.
    _fitted_types: ClassVar[dict] = {
        "lower_bound_": float, "lower_bounds_": lambda v: [float(x) for x in v],
        "n_iter_": int, "converged_": bool, "n_data_passes_": int, "bytes_read_": int,
        "n_sample_passes_": int, "reseeded_components_": lambda v: [int(k) for k in v],
        "degenerate_components_": lambda v: [int(k) for k in v],
        "missing_fraction_": float, "n_incomplete_rows_": int, "n_empty_rows_": int,
    }

    def __init__(self, n_components, *, covariance_type, max_iter, tol, n_init,
                 covariance_floor, reg_covar, init_params,
                 weights_init, means_init, precisions_init, warm_start, sample_size,
                 refine_max_iter, refine_tol, random_state, split_every, callbacks,
                 checkpoint, checkpoint_every, resume, verbose, verbose_interval):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.covariance_floor = covariance_floor
        self.reg_covar = reg_covar
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.warm_start = warm_start
        self.sample_size = sample_size
        self.refine_max_iter = refine_max_iter
        self.refine_tol = refine_tol
        self.random_state = random_state
        self.split_every = split_every
        self.callbacks = callbacks
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every
        self.resume = resume
        self.verbose = verbose
        self.verbose_interval = verbose_interval

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # NaN marks a missing value
        return tags

    # ----- the fit ---------------------------------------------------------------------------

    def _em_settings(self) -> FitSettings:
        """Plain EM of the refinements (and, for BigLearn-EM, the warm-up and the moves)."""
        return FitSettings.plain_em(max_iter=self.refine_max_iter, tol=self.refine_tol,
                                    covariance_floor=self.covariance_floor,
                                    reg_covar=self.reg_covar,
                                    covariance_type=self.covariance_type)

    def _plan_common(self, n_samples: int, n_features: int) -> dict:
        """The parts of the plan both estimators share."""
        return {
            "n_components": self.n_components, "init_params": self.init_params,
            "n_init": self.n_init, "covariance_floor": self.covariance_floor,
            "em": self._em_settings(),
            "sample_rows": sample_rows(self.sample_size, n_samples, self.n_components,
                                       n_features, self.covariance_type),
            **{name: getattr(self, name) for name in ARRAY_PARAMS},
        }

    def fit(self, X, y=None, sample_weight=None):
        """Fit the mixture to ``X`` (with weighted rows: ``sample_weight``).

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)
            NumPy input runs in-process; a Dask array runs its passes on the active Dask
            scheduler (see :class:`dask_biglearn.engines.DaskEngine`: on a cluster it is
            persisted when it fits, spread over the workers, and small data is passed over
            through one actor per worker). Per-sample data never comes back to the driver,
            and what the fit placed on the cluster is released when it ends.
            NaN marks a missing value (infinity is refused): the fit is exact EM on the
            incomplete data, a row's log-likelihood that of its observed values and its
            statistics completed with their conditional expectations given them. A row with
            no observed value is ignored (it counts neither in the fit nor in
            ``lower_bound_``); a column with no observed value is refused, naming it. The
            k-means starts work on the sample's complete rows when there are at least 20
            per component and 2,000 in all, else on all its rows completed by k-POD. ``missing_fraction_``,
            ``n_incomplete_rows_`` and ``n_empty_rows_`` say how much was missing.
        y : None
            Ignored.
        sample_weight : array-like or dask.array.Array of shape (n_samples,), default=None
            Non-negative weight of each row (pre-aggregated rows, survey or importance
            weights): every statistic, the M-step and the log-likelihood weigh the rows by
            it, so integer weights fit the data with rows repeated and zero weights the data
            without those rows (from the same start; the k-means starts see each sampled row
            of positive weight once). ``lower_bound_`` is then the weighted mean
            log-likelihood. Dask weights of any chunking are rechunked to ``X``'s rows and
            stay on the workers; the summary pass checks them (finite, non-negative, not all
            zero) before any other work. The scalable mode's sample carries its rows'
            weights.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        self._validate_params()
        start = self._warm_start_parameters()
        X, _ = check_array(self, X, reset=True)
        n_samples, n_features = (int(s) for s in X.shape)
        check_n_samples(n_samples, self.n_components)
        weighted = sample_weight is not None
        if weighted:
            X = with_sample_weight(X, sample_weight)
        plan = self._fit_plan(n_samples, n_features)
        if start is not None:
            check_warm_start(start, self.n_components, n_features)
            plan = dataclasses.replace(plan, **start,
                                       previous_lower_bound=self._previous_lower_bound())
        with verbosity(self.verbose, self.verbose_interval), make_engine(
                X, split_every=self.split_every, weighted=weighted) as engine, \
                self._journal(X, engine, start, weighted) as journal:
            summaries = engine.summaries
            if summaries.n_missing:
                logger.info("%s.", missing_summary(
                    summaries.missing_fraction, summaries.n_incomplete,
                    summaries.n_counted_rows, summaries.n_empty))
            result = run_plan(engine, plan, check_generator(self.random_state),
                              self.callbacks or ())
            # A resumed fit counts the passes of the runs before this one too.
            passes = int(engine.n_data_passes) + getattr(journal, "passes_before", 0)
            degenerate = degeneracy(engine.summaries, result.params, self.covariance_floor,
                                    result.degenerate)
        self._warn_if_not_converged(result.chosen.main)
        if degenerate:
            warnings.warn(degenerate, DegenerateFitWarning, stacklevel=2)
        self._set_fitted_result(result, passes, int(X.nbytes), summaries)
        logger.info("Fit done: %d full-data passes (%.3g GB read), %d passes over the sample, "
                    "mean log-likelihood %.6f", self.n_data_passes_, self.bytes_read_ / 1e9,
                    self.n_sample_passes_, self.lower_bound_)
        return self

    def _set_fitted_result(self, result: FitResult, passes: int, nbytes: int,
                           summaries=None) -> None:
        """Set the fitted attributes from a fit program's result: the one hook that ``fit``
        and :class:`~dask_biglearn.selection.GaussianMixtureSelection` (for its best
        candidate) use.

        Parameters
        ----------
        result : FitResult
        passes : int
            Full-data passes the fit (or the sweep) made.
        nbytes : int
            The data's size in memory (``bytes_read_ = passes * nbytes``).
        summaries : DataSummaries or None, default=None
            The training data's summary pass: its counts of missing values give
            ``missing_fraction_``, ``n_incomplete_rows_`` and ``n_empty_rows_`` (None:
            complete data).
        """
        missing = {"missing_fraction_": 0.0, "n_incomplete_rows_": 0, "n_empty_rows_": 0}
        if summaries is not None:
            missing = {"missing_fraction_": summaries.missing_fraction,
                       "n_incomplete_rows_": summaries.n_incomplete,
                       "n_empty_rows_": summaries.n_empty}
        self._set_fitted(result.params, {**self._fitted_values(result), **missing,
                                         "n_data_passes_": passes,
                                         "bytes_read_": passes * nbytes})

    def _fitted_values(self, result: FitResult) -> dict:
        """The fitted attributes of ``result`` (see ``_fitted_types``)."""
        main = result.chosen.main
        return {"lower_bound_": result.lower_bound, "lower_bounds_": result.lower_bounds,
                "n_iter_": main.iteration, "converged_": main.converged,
                "n_sample_passes_": result.n_sample_passes,
                "reseeded_components_": result.reseeded,
                "degenerate_components_": result.degenerate}

    def _set_fitted(self, params: MixtureParams, values: dict) -> None:
        """Set every fitted attribute: the one place, for ``fit`` and :func:`load_model`.

        Raises :class:`~dask_biglearn.algebra.CholeskyError` for a covariance that is not
        positive definite, before any attribute is set.
        """
        covariances = typed_covariances(params.covariances, self.covariance_type)
        chol = typed_precisions_cholesky(covariances, self.covariance_type)
        self.weights_, self.means_, self.covariances_ = (
            params.weights, params.means, covariances)
        self.precisions_cholesky_ = chol
        self.precisions_ = typed_precisions(chol, self.covariance_type)
        self.n_features_in_ = int(params.means.shape[1])
        self._fitted_covariance_type = self.covariance_type  # what a warm start reads
        for name, kind in self._fitted_types.items():
            if name in values:
                setattr(self, name, kind(values[name]))

    def _warm_start_parameters(self) -> dict | None:
        """With ``warm_start`` on a fitted estimator: the plan's parameters that make the
        fitted model the next fit's one start (:func:`~dask_biglearn.initialization.
        one_given_start`); else None."""
        if not (self.warm_start and hasattr(self, "means_")):
            return None
        fitted = getattr(self, "_fitted_covariance_type", self.covariance_type)
        if fitted != self.covariance_type:
            raise ValueError(
                f"warm_start=True starts from the fitted model, whose covariance_type is "
                f"{fitted!r}, but this fit asks for {self.covariance_type!r}: set "
                f"warm_start=False (or refit a new estimator).")
        return one_given_start(self.weights_, self.means_, self.precisions_)

    def _previous_lower_bound(self) -> float | None:
        """A warm start's last iteration log-likelihood, which plain EM's first iteration is
        judged against (scikit-learn's warm start: convergence spans fits)."""
        history = getattr(self, "lower_bounds_", None)
        return float(history[-1]) if history else None

    def _journal(self, X, engine, start=None, weighted=False):
        """The checkpoint of this fit (:mod:`dask_biglearn.fit.journal`), or a no-op: bound to
        the fit's settings, its data (:func:`~dask_biglearn.fit.journal.fit_identity`) and,
        for a warm start, the model it starts from; it counts the engine's passes."""
        if self.checkpoint is None:
            return contextlib.nullcontext()
        shape = (int(X.shape[0]), int(X.shape[1]) - weighted)
        identity = fit_identity(type(self).__name__, self._saved_parameters(identity=True),
                                shape, X.dtype, engine.summaries, start, weighted)
        return Journal(self.checkpoint, self.checkpoint_every, identity, self.resume,
                       passes=lambda: engine.n_data_passes)

    def _saved_parameters(self, *, identity=False) -> dict:
        """The hyper-parameters as files keep them: no run-time settings (callbacks, the
        checkpoint and resume: a loaded model must not resume or overwrite another fit's
        journal), a ``random_state`` that is not an int as None, arrays as float64 arrays;
        ``identity``: also without :data:`RUN_PARAMS` (what a checkpoint compares)."""
        params = {}
        for name, value in self.get_params(deep=False).items():
            if name in SESSION_PARAMS or (identity and name in RUN_PARAMS):
                continue
            if name == "random_state" and not (value is None or isinstance(value, Integral)):
                value = None
            elif name in ARRAY_PARAMS and value is not None:
                value = np.asarray(value, dtype=np.float64)
            params[name] = value
        return params

    def _warn_if_not_converged(self, state):
        """Plain EM warns, as scikit-learn does; BigLearn-EM has no stopping rule to miss."""

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return ``predict(X)`` of the fitted model.

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)
        y : None
            Ignored.
        sample_weight : array-like or dask.array.Array of shape (n_samples,), default=None
            As :meth:`fit` takes it.

        Returns
        -------
        labels : ndarray (or lazy Dask array) of shape (n_samples,)
        """
        return self.fit(X, sample_weight=sample_weight).predict(X)

    # ----- using a fitted model --------------------------------------------------------------

    def save(self, path):
        """Write the fitted model to one file (a ZIP of JSON and ``.npz``, never pickled).

        Written atomically; read it back with :func:`dask_biglearn.load`.

        Parameters
        ----------
        path : path-like

        Returns
        -------
        path : pathlib.Path
        """
        check_is_fitted(self, "means_")
        fitted = {name: getattr(self, name) for name, kind in self._fitted_types.items()
                  if kind in (int, float, bool) and hasattr(self, name)}
        fitted["n_features_in_"] = int(self.n_features_in_)
        document = ModelDocument(
            estimator=type(self).__name__, hyper_parameters=self._saved_parameters(),
            fitted=fitted, weights=self.weights_, means=self.means_,
            covariances=self.covariances_, lower_bounds=np.asarray(self.lower_bounds_),
            matchings=list(getattr(self, "matchings_", [])))
        return write_model(path, document)

    def _apply_blocks(self, X, block_fn, new_width=None, **map_blocks_kwargs):
        """``block_fn(X, weights, means, precisions_cholesky)``: directly on NumPy input,
        lazily chunk by chunk (each chunk checked for NaN and inf) on Dask input; an xarray
        ``DataArray``'s result is a ``DataArray`` on its rows (their coordinate kept).

        Either way the kernel works through its rows in the passes' sub-blocks
        (:func:`~dask_biglearn.kernels.features.default_block_rows`), so a chunk costs its
        output and a few sub-blocks' temporaries, not a float64 copy of itself."""
        check_is_fitted(self)
        given = X
        X, lazy = check_array(self, X, reset=False)
        args = (self.weights_, self.means_, self.precisions_cholesky_, self.covariance_type)
        block_rows = default_block_rows(self.n_features_in_)
        if not lazy:
            result = block_fn(X, *args, block_rows=block_rows)
        else:
            if new_width is not None:
                map_blocks_kwargs["chunks"] = (X.chunks[0], (new_width,))
            result = X.map_blocks(checked_block, block_fn, *args, block_rows=block_rows,
                                  **map_blocks_kwargs)
        return _on_rows_of(given, result) if is_data_array(given) else result

    def score_samples(self, X):
        """Log-density of each sample under the fitted mixture.

        NaN marks a missing value: a row's log-density is that of its observed values (the
        marginal density), 0 for a row with none (infinity is refused).

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)

        Returns
        -------
        log_prob : ndarray of shape (n_samples,)
            A lazy Dask array for Dask input.
        """
        return self._apply_blocks(X, score_block, drop_axis=1, dtype=np.float64)

    def score(self, X, y=None):
        """Mean log-likelihood per sample (computed for Dask input).

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)
        y : None
            Ignored.

        Returns
        -------
        log_likelihood : float
        """
        return self._mean_score(X)[0]

    def _mean_score(self, X):
        """The mean log-likelihood of the rows of ``X`` and their number. On Dask input a
        reduction: one sum per chunk (:func:`~dask_biglearn.kernels.scoring.score_sum_block`),
        added up and divided by the number of rows; no per-row scores are kept."""
        X = lazy_as_array(X)
        if not is_dask_array(X):
            scores = self.score_samples(X)
            scores = scores.data if is_data_array(scores) else scores
            return float(scores.mean()), int(scores.shape[0])
        check_is_fitted(self)
        X, _ = check_array(self, X, reset=False)
        sums = self._apply_blocks(X, score_sum_block, drop_axis=1, dtype=np.float64,
                                  chunks=((1,) * X.numblocks[0],))
        n = int(X.shape[0])
        return float(np.float64(sums.sum().compute()) / n), n

    def predict_proba(self, X):
        """Posterior probability of each component for each sample.

        NaN marks a missing value: the posterior given a row's observed values (the mixture
        weights for a row with none).

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)

        Returns
        -------
        resp : ndarray of shape (n_samples, n_components)
            A lazy Dask array for Dask input.
        """
        return self._apply_blocks(X, proba_block, dtype=np.float64, new_width=self.n_components)

    def predict(self, X):
        """Index of the most probable component for each sample.

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            A lazy Dask array for Dask input.
        """
        return self._apply_blocks(X, predict_block, drop_axis=1, dtype=np.intp)

    def _n_parameters(self):
        return n_mixture_parameters(self.covariance_type, *self.means_.shape)

    def bic(self, X):
        """Bayesian information criterion of the fitted model on ``X`` (lower is better).

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)

        Returns
        -------
        bic : float
        """
        mean, n = self._mean_score(X)
        return -2 * mean * n + self._n_parameters() * np.log(n)

    def aic(self, X):
        """Akaike information criterion of the fitted model on ``X`` (lower is better).

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)

        Returns
        -------
        aic : float
        """
        mean, n = self._mean_score(X)
        return -2 * mean * n + 2 * self._n_parameters()

    def sample(self, n_samples=1):
        """Draw samples from the fitted mixture.

        Parameters
        ----------
        n_samples : int, default=1

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,)
            The component of each sample.
        """
        check_is_fitted(self)
        if not isinstance(n_samples, Integral) or n_samples < 1:
            raise ValueError(f"Invalid value for 'n_samples': {n_samples!r}. The sampling "
                             f"requires at least one sample (an integer >= 1).")
        rng = (self.random_state if isinstance(self.random_state, np.random.Generator)
               else check_random_state(self.random_state))
        counts = rng.multinomial(n_samples, self.weights_)
        # scikit-learn's draws of the type, from the same generator.
        X = type_entry(self.covariance_type).draw(rng, self.means_, self.covariances_, counts)
        y = np.concatenate([np.full(c, j, dtype=int) for j, c in enumerate(counts)])
        return X, y


def missing_summary(missing_fraction: float, n_incomplete: int, n_rows: int,
                    n_empty: int = 0) -> str:
    """One sentence about the missing values of a fit's data, for people.

    Parameters
    ----------
    missing_fraction : float
        The fraction of the values missing (``missing_fraction_``).
    n_incomplete : int
        Rows with a missing value (``n_incomplete_rows_``).
    n_rows : int
        The rows they are counted among.
    n_empty : int, default=0
        Rows with no observed value (``n_empty_rows_``).

    Returns
    -------
    sentence : str
        ``"12.3% of the values missing, in 4000 of 10000 rows; 20 rows with no observed value
        are ignored"`` (without the clause on empty rows when there are none).
    """
    text = (f"{100 * missing_fraction:.3g}% of the values missing, in {n_incomplete} of "
            f"{n_rows} rows")
    if n_empty:
        text += (f"; {n_empty} row{'s' if n_empty != 1 else ''} with no observed value "
                 f"{'are' if n_empty != 1 else 'is'} ignored")
    return text


def _on_rows_of(data_array, result):
    """``result`` (per row, or per row and component) as a ``DataArray`` on the rows of
    ``data_array``: its first dimension and that dimension's coordinate, if it has one."""
    import xarray

    rows = data_array.dims[0]
    coords = {rows: data_array.coords[rows]} if rows in data_array.coords else {}
    dims = (rows,) if result.ndim == 1 else (rows, "component")
    return xarray.DataArray(result, dims=dims, coords=coords)


# ---------------------------------------------------------------------------------------------
# The estimators
# ---------------------------------------------------------------------------------------------

_COMMON_PARAMS_DOC = """
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        scikit-learn's covariance types: each component its own full covariance, one full
        covariance shared by all, diagonal ones, or one variance per component. The fitted
        attributes take scikit-learn's shapes for the type. The passes of ``"diag"`` and
        ``"spherical"`` cost ``O(N K D)`` (``O(N K D^2)`` for the others); a matching on a
        coordinate subset updates every type exactly, a rotated one is projected back onto
        the type (:mod:`dask_biglearn.algebra`).
    covariance_floor : float, default=1e-6
        Eigenvalue floor ``eps`` applied after every covariance update: eigenvalues below it
        are raised to it, keeping every covariance symmetric positive definite; must be > 0.
        It is in the units of the data's variance, so scale it with the data (the paper uses
        1e-2 on [0, 1]-scaled data and 1e-5 in its 2-D simulation).
    reg_covar : float, default=0.0
        Added to the diagonal of every updated covariance before the floor, as
        scikit-learn's ``reg_covar`` is (its default is 1e-6; here ``covariance_floor``
        already keeps every covariance positive definite). For a matching, it is added in
        the matching's projected space.
    init_params : {"random", "random_from_data", "k-means++", "kmeans", "kmeans-pursuit", \
"auto"}
        Default ``"auto"`` for :class:`BigLearnGaussianMixture`, ``"kmeans"`` (scikit-learn's
        default) for :class:`GaussianMixture` (``"random"`` is the paper's start, from which
        plain EM is the paper's baseline).
        ``"auto"``: the ``n_init`` starts of ``"kmeans"``, and one ``"kmeans-pursuit"``
        start more for every three of them (one start: ``"kmeans"``); the best by likelihood
        wins.
        ``"random"``: the paper's initialisation in min-max-scaled units: means
        ``min + (max - min) * z`` with ``z ~ N(0, I)``, covariances ``diag((max - min)^2)``,
        equal weights; on data scaled to [0, 1] this is exactly the reference code's
        ``N(0, I)`` means and identity covariances.
        ``"random_from_data"``: means at distinct random rows, covariances ``diag(var)``,
        equal weights.
        ``"k-means++"``: means at seeds drawn as scikit-learn's ``kmeans_plusplus`` draws
        them; ``"kmeans"``: a few Lloyd iterations from those seeds. Both work on a row
        sample (``max(20000, 200 n_components)`` rows, all rows of smaller data; on Dask
        input one pass chooses the rows by their global index and a seed, so the start does
        not depend on the chunking), and
        take each component's weight and covariance from the sample's rows nearest to it.
        ``"kmeans-pursuit"``: k-means on the same sample, whitened, in its independent
        directions that look multimodal (``FastICA``, the most platykurtic ones): the start
        for clusters that Euclidean k-means cuts the wrong way, such as parallel cigars
        (:func:`dask_biglearn.initialization.pursuit_params`).
        With missing values, the sample starts work on the sample's complete rows when
        there are at least 20 per component and 2,000 in all, else on all its rows completed by k-POD
        (:func:`dask_biglearn.initialization.completed`); ``"random_from_data"`` sees a
        missing value as its column's mean; rows with no observed value are left out;
        ``"random"`` spans each column's observed values.
    weights_init, means_init, precisions_init : array-like, default=None
        User-provided initial weights ``(n_components,)``, means
        ``(n_components, n_features)`` and precisions of scikit-learn's shape for the
        covariance type (``(n_components, n_features, n_features)`` full, ``(n_features,
        n_features)`` tied, ``(n_components, n_features)`` diag, ``(n_components,)``
        spherical); each replaces its part of ``init_params``.
    warm_start : bool, default=False
        When the estimator is fitted, the next ``fit`` starts from the fitted parameters
        (one start: ``n_init``, ``init_params`` and the ``*_init`` arrays are then ignored),
        as scikit-learn's ``warm_start`` does. The data must have the fitted number of
        features. ``fit --init-model`` of the command line starts from a saved model.
    sample_size : None, "auto", int or float, default=None
        The scalable mode (:mod:`dask_biglearn.fit.scalable`): one pass draws this many rows
        (an int), this fraction of the rows (a float in (0, 1]) or ``"auto"`` rows (40 per
        free parameter of a component, per component, at least 20000), chosen by their
        global index and the seed; the whole exploration (starts, restarts and, for
        BigLearn-EM, matchings and moves) runs on them; then plain EM passes over the full
        data refine the best explored model until ``refine_tol`` or ``refine_max_iter``. A
        fit of big data then costs a few tens of passes over it. On a ``distributed``
        cluster the sample stays on the workers, persisted, and their cores run its passes;
        on a local scheduler (or NumPy input) it is taken into this process (the Dask
        setting ``biglearn.driver-sample-bytes`` changes both; the rows are the same either
        way: see :mod:`dask_biglearn.kernels.sampling`).
        None: every pass reads the full data (the exact algorithm).
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation and (BigLearn-EM) every matching, subset and rotation. All
        draws happen on the driver, so a seed gives the same fit whatever the chunking of the
        data and the number of workers. Each start draws from its own generator
        (``Generator.spawn``), and the starts are nested: with the same seed, the starts of
        ``n_init=m`` are the first ``m`` of ``n_init=n > m``, so more starts never lose one.
    split_every : int, default=None
        Fan-in of the tree reduction of the per-chunk statistics for Dask input (default:
        ``dask.config`` ``"split_every"``, else 8).
    callbacks : list of callable, default=None
        ``callback(state, event)``, called on the driver after every iteration
        (``event="iteration"``) and after every check (``"check"``) with the
        :class:`~dask_biglearn.model.FitState` of the fit (its ``params``, ``iteration``,
        ``lower_bounds``, best so far). A callback that returns a true value stops the fit,
        which then keeps what it has (see :mod:`dask_biglearn.fit.loop`).
    checkpoint : path-like, default=None
        Write the fit's state to this file (atomically; JSON and ``.npz``, never pickled)
        every ``checkpoint_every`` iterations of each of its loops and when each ends
        (:mod:`dask_biglearn.fit.journal`). An existing file is never overwritten: without
        ``resume`` the fit is refused (``FileExistsError``) before any work.
    checkpoint_every : int, default=10
        Iterations of a loop between two writes of the checkpoint.
    resume : bool, default=False
        With ``checkpoint``: continue the fit that wrote it (same data, hyper-parameters and
        seed, else an error), or start afresh when there is no checkpoint yet, so that a
        requeued job can repeat the same call. The result is exactly that of a fit never
        interrupted; ``n_data_passes_`` counts the passes of every run (those of the runs
        before up to their last checkpoint); :func:`dask_biglearn.fit.journal.
        describe_checkpoint` (and ``dask-biglearn info``) says how far a checkpoint got.
    verbose : int, default=0
        1 logs progress at every check to the ``dask_biglearn`` logger at INFO, 2 also every
        iteration at DEBUG. A stderr handler is added if the logger has none.
    verbose_interval : int, default=10
        With ``verbose=2``, plain EM's per-iteration lines come every this many iterations
        (scikit-learn's ``verbose_interval``).
"""

_COMMON_ATTRS_DOC = """
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    covariances_ : ndarray
        scikit-learn's shape for the covariance type: ``(n_components, n_features,
        n_features)`` full, ``(n_features, n_features)`` tied, ``(n_components,
        n_features)`` diag, ``(n_components,)`` spherical.
    precisions_ : ndarray
        The inverses of the covariances, of the same shape.
    precisions_cholesky_ : ndarray
        Of the same shape: upper-triangular ``U_k`` with ``U_k U_k^T = covariances_[k]^{-1}``
        (full, tied), ``1 / sqrt(covariances_)`` (diag, spherical).
    n_features_in_ : int
    lower_bound_ : float
        Mean joint log-likelihood per training sample of the returned model.
    n_data_passes_ : int
        How many times the fit read the whole data: the summary pass, any sample, and every
        EM or evaluation pass (the starts of ``n_init`` share theirs).
    bytes_read_ : int
        ``n_data_passes_`` times the data's size in memory (``X.nbytes``).
    n_sample_passes_ : int
        Passes over the row sample of the scalable mode (0 without one), wherever it lives
        (in this process, or persisted on the workers of a cluster).
    reseeded_components_ : list of int
        Components that were degenerate at the end of the fit (a weight below 1e-6, or a
        covariance on ``covariance_floor`` in every direction) and were re-seeded at the
        worst-explained rows, the model then polished by plain EM (logged at ``verbose=1``).
    degenerate_components_ : list of int
        Components of the returned model still degenerate (re-seeding did not help, e.g.
        more components than distinct rows): kept at the floor, never NaN.
    missing_fraction_ : float
        The fraction of the training values that were missing (NaN), over the rows of
        positive weight; 0.0 for complete data.
    n_incomplete_rows_ : int
        Training rows (of positive weight) with at least one missing value, those with none
        observed included.
    n_empty_rows_ : int
        Training rows (of positive weight) with no observed value: the fit ignored them.
"""


class GaussianMixture(_BaseGaussianMixture):
    __doc__ = f"""Gaussian mixture fitted by plain (joint) EM, on NumPy or Dask arrays.

    The baseline of BigLearn-EM and an estimator of its own: the same engine as
    :class:`BigLearnGaussianMixture` with every update joint and no weight smoothing. Its
    updates are scikit-learn's, with an eigenvalue floor beside ``reg_covar``.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components.
    max_iter : int, default=100
        EM iterations (passes over the data). 0 returns the initialisation.
    tol : float, default=1e-3
        Stop when the mean log-likelihood changes by less than this between iterations.
    n_init : int, default=1
        Number of initialisations; the one with the best ``lower_bound_`` is kept. They
        advance together, sharing every read of the data (see
        :class:`BigLearnGaussianMixture`); one that converges stops while the others go on.
    refine_max_iter : int, default=100
        With ``sample_size``: at most this many EM passes over the full data after the fit
        on the sample.
    refine_tol : float, default=1e-3
        With ``sample_size``: the tolerance (as ``tol``) of those passes.
{_COMMON_PARAMS_DOC}
    Attributes
    ----------
{_COMMON_ATTRS_DOC}
    lower_bounds_ : list of float
        Mean log-likelihood at each iteration (of the parameters entering it).
    n_iter_ : int
    converged_ : bool
        Whether the log-likelihood changed by less than ``tol`` at the last iteration.

    See Also
    --------
    BigLearnGaussianMixture : the same model fitted by BigLearn-EM.

    References
    ----------
    .. [1] Y. Cong and S. Li, "Big Learning Expectation Maximization", Proceedings of the
       AAAI Conference on Artificial Intelligence 38 (2024). arXiv:2312.11926.
    """

    def __init__(self, n_components=1, *, covariance_type="full", max_iter=100, tol=1e-3,
                 n_init=1, covariance_floor=1e-6, reg_covar=0.0, init_params="kmeans",
                 weights_init=None, means_init=None, precisions_init=None, warm_start=False, sample_size=None,
                 refine_max_iter=100, refine_tol=1e-3, random_state=None, split_every=None,
                 callbacks=None, checkpoint=None, checkpoint_every=10, resume=False,
                 verbose=0, verbose_interval=10):
        super().__init__(
            n_components, covariance_type=covariance_type, max_iter=max_iter, tol=tol,
            n_init=n_init,
            covariance_floor=covariance_floor, reg_covar=reg_covar, init_params=init_params,
            weights_init=weights_init, means_init=means_init, precisions_init=precisions_init,
            warm_start=warm_start, sample_size=sample_size,
            refine_max_iter=refine_max_iter, refine_tol=refine_tol,
            random_state=random_state, split_every=split_every, callbacks=callbacks,
            checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume,
            verbose=verbose, verbose_interval=verbose_interval)

    def _fit_plan(self, n_samples: int, n_features: int) -> FitPlan:
        """Plain EM from every start; in the scalable mode, refined on the full data."""
        explore = FitSettings.plain_em(max_iter=self.max_iter, tol=self.tol,
                                       covariance_floor=self.covariance_floor,
                                       reg_covar=self.reg_covar,
                                       covariance_type=self.covariance_type)
        return FitPlan(explore=explore, **self._plan_common(n_samples, n_features))

    def _fitted_values(self, result: FitResult) -> dict:
        # The EM iterations of the returned model: its start's, then the polish of its
        # re-seeded components (within max_iter, as every read of the fit).
        values = super()._fitted_values(result)
        return {**values, "n_iter_": values["n_iter_"] + result.n_reseed_iter}

    def _warn_if_not_converged(self, state):
        if not state.converged and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different init "
                "parameters, or increase max_iter, tol, or check for degenerate data "
                f"(EM ran max_iter={self.max_iter} iterations, tol={self.tol}).",
                ConvergenceWarning,
                stacklevel=3,
            )


class BigLearnGaussianMixture(_BaseGaussianMixture):
    __doc__ = f"""Gaussian mixture fitted by BigLearn-EM (Cong & Li, AAAI 2024).

    Each outer iteration draws a matching (joint, marginal on a random coordinate subset, or
    marginal on a random subset after a random rotation) and makes ``n_inner_iter`` EM
    updates in that projected space. These updates move the parameters where joint EM
    cannot and so escape the bad local optima plain EM lands in once ``n_components > 3``.

    It runs up to ``max_iter`` outer iterations (fewer with the stopping rule
    ``n_iter_no_change``), evaluates the joint training log-likelihood every ``check_every``
    of them and at the end, and **returns the best parameters it checked** (BigLearn-EM
    wanders between good states), polished by plain EM (``refine_max_iter``).

    The defaults (chosen from the measurements of ``benchmarks/README.md``): 10 k-means
    starts and 3 pursuit starts advancing together (they share every read of the data),
    plain EM from each, the paper's matchings from the best two for as long as they beat
    that EM (``n_iter_no_change``), the plain-EM refinement and split-merge moves. The
    paper's exact algorithm is one setting away:
    ``BigLearnGaussianMixture(n_components, **PAPER_SETTINGS)``.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components.
    max_iter : int, default=1000
        Outer iterations (the paper: 2000 in its 2-D simulation, 10000 on UCI data). Each
        makes ``n_inner_iter`` passes over the data.
    n_inner_iter : int, default=5
        Local EM updates per outer iteration.
    matching_probs : dict, default=None
        Probability of each matching kind, ``{{"joint": p, "marginal": q,
        "rotated_marginal": r}}`` summing to 1 (missing kinds have probability 0). None means
        the reference code's ``{{"joint": 0.4, "marginal": 0.1, "rotated_marginal": 0.5}}``.
    marginal_size_beta : (float, float), default=(5.0, 1.0)
        ``(a, b)`` of the Beta law of the subset fraction: ``m = max(1, floor(D * Beta(a, b)))``.
    weight_concentration : float, default=None
        Weight smoothing ``alpha``: ``pi_k = (N_k/N + alpha) / sum_j (N_j/N + alpha)``.
        None means ``1 / n_components`` (the paper's UCI setting; its simulation used
        ``1/sqrt(n_components)``); 0 disables it. It keeps every weight at least
        ``alpha / (1 + K alpha)``, so components never die.
    check_every : int, default=20
        Outer iterations between evaluations of the joint log-likelihood.
    tol : float, default=1e-3
        The fit counts as converged (``converged_``) when the best checked joint
        log-likelihood rose by less than this over the last ``n_iter_no_change`` outer
        iterations (over the last check interval when that is None).
    n_iter_no_change : int, default=20
        The stopping rule, which needs no labels: stop once the best checked log-likelihood
        has risen by less than ``tol`` over this many outer iterations (judged at the checks).
        After a warm-up, the warm-up's model counts as the first check: the matchings must
        beat it. The default spends 20 outer iterations (100 passes) on a start whose
        matchings find nothing better, and goes on for as long as they keep finding better
        models. A larger value searches longer, which pays where the starts are all wrong
        and the matchings must do the work (``benchmarks/README.md`` compares the values).
        None runs all ``max_iter`` outer iterations (the paper's algorithm).
    refine_max_iter : int, default=200
        After the matchings, at most this many plain EM iterations (joint updates, no weight
        smoothing) from the returned model of each start, until the log-likelihood changes
        by less than ``refine_tol``; the best refined start is returned. 0: none (the
        paper's algorithm). With ``sample_size``, the same refinement on the sample, and
        then on the full data from the best model.
    refine_tol : float, default=1e-3
        The tolerance of the refinement (and of the warm-up and the moves' polish):
        scikit-learn's ``tol``.
    n_init : int, default=10
        Independent starts; the one with the best ``lower_bound_`` is kept. They advance
        together: each pass over the data computes every start's statistics (on Dask, one
        task per chunk for all of them), so ``n_init`` starts read the data as often as one.
    moves : tuple of str, default=("split-merge",)
        Escape moves tried after the refinement, from the best model
        (:mod:`dask_biglearn.fit.moves`): ``"split-merge"`` (SMEM) and ``"reseed"``
        (greedy EM). A round tries 5 candidates together (10 EM iterations each, one read of
        the data for all) and keeps the best only if it raises the joint log-likelihood,
        then polishes it with the refinement's EM; rounds go on until none helps. ``()``:
        none (the paper's algorithm).
    max_move_rounds : int, default=10
        At most this many rounds of moves.
    n_explore : int, default=2
        With fewer than ``n_init``: every start first runs plain EM (the refinement's
        settings), and only the best ``n_explore`` of those go on to the matchings, which
        cost ``n_inner_iter`` passes an outer iteration each. Every start's plain EM stays a
        candidate, so the fit is never worse (in training log-likelihood) than k-means
        started EM with ``n_init`` starts. None: every start explores, with no warm-up.
{_COMMON_PARAMS_DOC}
    Attributes
    ----------
{_COMMON_ATTRS_DOC}
    lower_bounds_ : list of float
        Joint mean log-likelihood at each check, then at each refinement iteration.
    matchings_ : list of str
        The matching drawn at each outer iteration.
    best_iteration_ : int
        Outer iteration whose parameters were returned (0 after a warm-up: the warm-up's
        model, which no matching beat).
    n_iter_ : int
        Outer iterations run: ``max_iter``, or fewer when the stopping rule or a callback
        ended the fit.
    converged_ : bool
        Whether the best checked joint log-likelihood stopped improving (see ``tol``). False
        with too few checks to tell.
    n_moves_ : int
        Moves kept (each raised the joint log-likelihood).
    n_refine_iter_ : int
        Plain EM iterations of the refinement of the returned start. When a start's warm-up
        EM beat every exploration, it is returned: ``n_iter_``, ``matchings_`` and
        ``lower_bounds_`` are then that EM's (all joint).

    Notes
    -----
    A component whose responsibility mass falls below ``1e-5 N`` has its M-step divisor floored
    at ``1e-5 N`` (as in the reference), which shrinks its mean towards the data mean (the
    reference code shrinks it towards the origin, which depends on where the origin is); with
    weight smoothing on this is rare.

    See Also
    --------
    GaussianMixture : the same model fitted by plain EM.

    References
    ----------
    .. [1] Y. Cong and S. Li, "Big Learning Expectation Maximization", Proceedings of the
       AAAI Conference on Artificial Intelligence 38 (2024). arXiv:2312.11926.
    """

    _parameter_constraints: ClassVar[dict] = {
        **_BaseGaussianMixture._parameter_constraints,
        "n_inner_iter": [_positive(1)],
        "matching_probs": [None, Satisfies(
            lambda p: _matching_schedule(p, (5.0, 1.0)),
            "None or a dict of probabilities >= 0 of matching kinds ('joint', 'marginal', "
            "'rotated_marginal') that sum to 1")],
        "marginal_size_beta": [Satisfies(
            lambda b: _matching_schedule(None, b), "a pair (a, b) of numbers > 0")],
        "weight_concentration": [None, _non_negative_real()],
        "check_every": [_positive(1)],
        "n_iter_no_change": [None, _positive(1)],
        "n_explore": [None, _positive(1)],
        "moves": [Satisfies(lambda m: check_subset(m, MOVE_KINDS),
                            f"a sequence of moves among {MOVE_KINDS}")],
        "max_move_rounds": [_positive(0)],
    }

    _fitted_types: ClassVar[dict] = {
        **_BaseGaussianMixture._fitted_types,
        "matchings_": lambda v: [str(m) for m in v], "best_iteration_": int,
        "n_refine_iter_": int, "n_moves_": int,
    }

    def __init__(self, n_components=1, *, covariance_type="full", max_iter=1000,
                 n_inner_iter=5, matching_probs=None,
                 marginal_size_beta=(5.0, 1.0), weight_concentration=None,
                 covariance_floor=1e-6, reg_covar=0.0, init_params="auto", weights_init=None,
                 means_init=None, precisions_init=None, warm_start=False, check_every=20,
                 tol=1e-3,
                 n_iter_no_change=20, refine_max_iter=200, refine_tol=1e-3, n_init=10,
                 n_explore=2, moves=("split-merge",), max_move_rounds=10, sample_size=None,
                 random_state=None, split_every=None, callbacks=None, checkpoint=None,
                 checkpoint_every=10, resume=False, verbose=0, verbose_interval=10):
        super().__init__(
            n_components, covariance_type=covariance_type, max_iter=max_iter, tol=tol,
            n_init=n_init,
            covariance_floor=covariance_floor, reg_covar=reg_covar, init_params=init_params,
            weights_init=weights_init, means_init=means_init, precisions_init=precisions_init,
            warm_start=warm_start, sample_size=sample_size,
            refine_max_iter=refine_max_iter, refine_tol=refine_tol,
            random_state=random_state, split_every=split_every, callbacks=callbacks,
            checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume,
            verbose=verbose, verbose_interval=verbose_interval)
        self.n_inner_iter = n_inner_iter
        self.matching_probs = matching_probs
        self.marginal_size_beta = marginal_size_beta
        self.weight_concentration = weight_concentration
        self.check_every = check_every
        self.n_iter_no_change = n_iter_no_change
        self.n_explore = n_explore
        self.moves = moves
        self.max_move_rounds = max_move_rounds

    def _fit_plan(self, n_samples: int, n_features: int) -> FitPlan:
        """BigLearn-EM from the starts (after a plain-EM warm-up when only ``n_explore`` of
        them explore), refined by plain EM, then the moves."""
        alpha = (1.0 / self.n_components if self.weight_concentration is None
                 else float(self.weight_concentration))
        explore = FitSettings.biglearn(
            schedule=_matching_schedule(self.matching_probs, self.marginal_size_beta),
            max_iter=self.max_iter, n_inner_iter=self.n_inner_iter,
            check_every=self.check_every, covariance_floor=self.covariance_floor,
            weight_concentration=alpha, tol=self.tol, n_iter_no_change=self.n_iter_no_change,
            reg_covar=self.reg_covar, covariance_type=self.covariance_type,
        )
        moves = None
        if self.moves and self.max_move_rounds > 0:
            moves = MoveSettings(kinds=tuple(self.moves), max_rounds=self.max_move_rounds)
        return FitPlan(explore=explore, refine_explored=self.refine_max_iter > 0,
                       n_explore=self.n_explore, moves=moves,
                       **self._plan_common(n_samples, n_features))

    def _fitted_values(self, result: FitResult) -> dict:
        main = result.chosen.main
        return {**super()._fitted_values(result), "matchings_": main.matchings,
                "best_iteration_": main.best_iteration,
                "n_refine_iter_": result.n_refine_iter, "n_moves_": result.n_moves}


# ---------------------------------------------------------------------------------------------
# Model files
# ---------------------------------------------------------------------------------------------

ESTIMATORS = {cls.__name__: cls for cls in (BigLearnGaussianMixture, GaussianMixture)}


def _constructor_arguments(cls, document: ModelDocument, where: str) -> dict:
    """The hyper-parameters of a file, as ``cls`` takes them (JSON lists back to tuples where
    the default is a tuple)."""
    defaults = {name: p.default for name, p in inspect.signature(cls).parameters.items()}
    unknown = sorted(set(document.hyper_parameters) - set(defaults))
    if unknown:
        raise ModelFileError(f"{where}: unknown hyper-parameters {unknown[:5]}.")
    return {name: tuple(value) if isinstance(defaults[name], tuple)
            and isinstance(value, list) else value
            for name, value in document.hyper_parameters.items()
            if name not in SESSION_PARAMS}  # files of earlier versions saved them


def load_model(path):
    """Read a model file written by ``save``: the estimator, fitted.

    It is built through the same ``_set_fitted`` that ``fit`` uses. Nothing is unpickled.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    estimator : GaussianMixture or BigLearnGaussianMixture
        Fitted, as it was saved (without its callbacks).

    Raises
    ------
    ModelFileError
        For anything that is not a model file we wrote, or is damaged (one line).
    """
    document = read_model(path)
    where = str(path)
    cls = ESTIMATORS.get(document.estimator)
    if cls is None:
        raise ModelFileError(f"{where}: unknown estimator {document.estimator!r}.")
    estimator = cls(**_constructor_arguments(cls, document, where))
    try:
        estimator._validate_params()
    except (ValueError, TypeError) as exc:
        raise ModelFileError(f"{where}: bad hyper-parameters ({exc}).") from None
    # io.models.read_model checked the shapes (components, features, the type's shape of
    # the covariances) and the values' ranges; what is left is positive definiteness and
    # finite log-densities, which computing the precisions tells.
    # Files written before NaN was allowed fitted complete data.
    values = {"missing_fraction_": 0.0, "n_incomplete_rows_": 0, "n_empty_rows_": 0,
              **document.fitted, "lower_bounds_": document.lower_bounds,
              "matchings_": document.matchings}
    covariance_type = estimator.covariance_type
    k, d = document.means.shape
    params = MixtureParams(document.weights, document.means,
                           full_covariances(document.covariances, covariance_type, k, d))
    with np.errstate(all="ignore"):  # out-of-range values are refused below, not warned
        try:
            estimator._set_fitted(params, values)
        except (CholeskyError, np.linalg.LinAlgError):
            raise ModelFileError(f"{where}: a covariance is not positive definite.") from None
        probe = score_block(params.means, params.weights, params.means,  # its own means
                            estimator.precisions_cholesky_, covariance_type)
    if not (np.all(np.isfinite(estimator.precisions_cholesky_)) and np.all(np.isfinite(probe))):
        raise ModelFileError(f"{where}: the parameters are out of range (the model's "
                             "log-densities are not finite).")
    return estimator
