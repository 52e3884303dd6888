"""Choosing the number of components (and the covariance type) from the data, in one sweep.

:class:`GaussianMixtureSelection` fits one mixture per candidate ``(n_components,
covariance_type)`` and keeps the best by a criterion: ``"bic"``, ``"aic"`` (on the training
rows) or ``"heldout"`` (the mean log-likelihood of held-out rows, chosen by their global row
index and the seed, so the split does not depend on the chunking). scikit-learn's proposal of
such an estimator (scikit-learn#19338, pull requests #19562 and #26735) calls it
``GaussianMixtureIC``; mclust does the same in R. None of them shares the reads of the data
between candidates; here every candidate's fit program runs in a thread of its own and their
passes are shared (:func:`dask_biglearn.fit.sweep.run_plans`): once every program still
running waits for a pass, one read of the data computes all their statistics (the kernels
stack models of different sizes), a candidate that has finished costs nothing more, and in
the scalable mode one row sample serves all of them.
"""

from __future__ import annotations

import logging
import time
import warnings
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin, clone
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .algebra import COVARIANCE_TYPES, n_mixture_parameters
from .engines import make_engine
from .estimator import BigLearnGaussianMixture, GaussianMixture, missing_summary
from .exceptions import DegenerateFitWarning, SelectionBoundaryWarning
from .fit.loop import pass_spec
from .fit.plan import degeneracy
from .fit.sweep import run_plans
from .kernels.sampling import key_threshold, row_keys
from .validation import (
    Satisfies,
    check_array,
    check_generator,
    check_n_samples,
    is_dask_array,
    with_sample_weight,
)
from .verbosity import verbosity

__all__ = ["CRITERIA", "GaussianMixtureSelection", "heldout_mask"]

logger = logging.getLogger(__name__)

#: The selection criteria: lower is better for the information criteria, higher for the
#: held-out log-likelihood.
CRITERIA = ("bic", "aic", "heldout")


def heldout_mask(start: int, stop: int, seed: int, fraction: float) -> np.ndarray:
    """Which of the global rows ``start .. stop - 1`` are held out.

    A row is held out when its sampling key (:func:`~dask_biglearn.kernels.sampling.row_keys`,
    a hash of the seed and its global index) falls below ``fraction`` of the key range: the
    same rows whatever the chunking, about ``fraction`` of them.

    Parameters
    ----------
    start, stop : int
        Global row indices ``[start, stop)``.
    seed : int
    fraction : float
        In [0, 1).

    Returns
    -------
    ndarray of bool of shape (stop - start,)
    """
    return row_keys(start, stop, seed) < key_threshold(fraction)


def _heldout_block(block, seed, fraction, block_info=None):
    start = block_info[0]["array-location"][0][0]
    return heldout_mask(start, start + len(block), seed, fraction)


def _heldout_rows(X, seed: int, fraction: float):
    """The held-out mask of ``X``'s rows: NumPy, or Dask chunk by chunk on the workers."""
    n = X.shape[0]
    if not is_dask_array(X):
        return heldout_mask(0, n, seed, fraction)
    import dask.array as da

    index = da.zeros(n, chunks=(X.chunks[0],), dtype=np.int8)
    return index.map_blocks(_heldout_block, seed, fraction, dtype=bool)


def _candidates(n_components, covariance_type):
    types = (covariance_type,) if isinstance(covariance_type, str) else tuple(covariance_type)
    return [(int(k), t) for t in types for k in n_components]


def _check_n_components(value):
    if iter(value) is value:  # an iterator (a generator): checking it would use it up
        raise ValueError(value)
    values = list(value) if not isinstance(value, (str, bytes)) else []
    if not values or not all(isinstance(k, Integral) and not isinstance(k, bool) and k >= 1
                             for k in values):
        raise ValueError(value)


def _check_types(value):
    types = (value,) if isinstance(value, str) else tuple(value)
    if not types or not all(t in COVARIANCE_TYPES for t in types):
        raise ValueError(value)


def _check_estimator(value):
    if not isinstance(value, (GaussianMixture, BigLearnGaussianMixture)):
        raise TypeError(value)


class GaussianMixtureSelection(DensityMixin, BaseEstimator):
    """Gaussian mixtures of every candidate size (and covariance type), fitted in one sweep
    that shares every pass, and the best by BIC, AIC or held-out log-likelihood.

    Every candidate is ``clone(estimator)`` with its ``n_components`` and ``covariance_type``
    (the other hyper-parameters are the estimator's). Their fit programs share every pass
    (:func:`~dask_biglearn.fit.sweep.run_plans`): each read of the data computes the
    statistics of every candidate still running, a finished one costs nothing more, and with
    the estimator's ``sample_size`` one row sample (of the largest candidate's size) serves
    all of them before their full-data refinements, which share their passes too. Each
    candidate draws from a generator of its own; the k-means starts of all of them work on
    one row sample.

    Parameters
    ----------
    n_components : iterable of int, default=range(1, 11)
        The candidate numbers of components.
    covariance_type : str or tuple of str, default="full"
        The candidate covariance types (every pair of a size and a type is a candidate).
    criterion : {"bic", "aic", "heldout"}, default="bic"
        ``"bic"`` and ``"aic"`` (lower is better) on the training rows, with scikit-learn's
        parameter counts; ``"heldout"`` (higher is better): the mean log-likelihood of the
        held-out rows.
    estimator : GaussianMixture or BigLearnGaussianMixture, default=None
        The fit of every candidate; None is ``BigLearnGaussianMixture()``.
    heldout_fraction : float, default=None
        The fraction of rows held out from every fit (chosen by their global index and
        ``random_state``: :func:`heldout_mask`) and scored in ``cv_results_``; None is 0.1
        for ``criterion="heldout"`` and 0 (no rows held out) for the others.
    random_state : int, RandomState instance or None, default=None
        Seeds the held-out rows and every candidate's fit.
    split_every : int, default=None
        Fan-in of the tree reduction for Dask input.
    verbose : int, default=0
        As the estimators' ``verbose``.

    Attributes
    ----------
    best_estimator_ : GaussianMixture or BigLearnGaussianMixture
        The best candidate, fitted (its ``n_data_passes_`` are the whole sweep's; its
        ``missing_fraction_``, ``n_incomplete_rows_`` and ``n_empty_rows_`` count the
        training rows).
    best_params_ : dict
        Its ``n_components`` and ``covariance_type``.
    best_index_ : int
        Its row in ``cv_results_``.
    cv_results_ : dict of ndarray
        One entry per candidate: ``param_n_components``, ``param_covariance_type``,
        ``params``, ``n_parameters``, ``bic``, ``aic``, ``train_log_likelihood`` (mean per
        training row), ``heldout_log_likelihood`` (mean per held-out row; NaN with none held
        out), ``criterion`` (the one selected on), ``rank`` (1 is the best), ``n_iter``,
        ``n_data_passes`` and ``fit_time`` (the whole sweep's, which every candidate
        shares).
    n_data_passes_ : int
        Reads of the full data by the whole sweep (the held-out scoring included).
    n_sample_passes_ : int
        Passes over the shared row sample (0 without one).
    bytes_read_ : int
        ``n_data_passes_`` times the data's size.
    fit_time_ : float
        Wall seconds of the sweep.
    n_features_in_ : int
    """

    _parameter_constraints: ClassVar[dict] = {
        "n_components": [Satisfies(_check_n_components,
                                   "a list, tuple or range of integers >= 1 (not a generator, "
                                   "which would be used up)")],
        "covariance_type": [Satisfies(_check_types, f"one or more of {COVARIANCE_TYPES}")],
        "criterion": [StrOptions(set(CRITERIA))],
        "estimator": [None, Satisfies(
            _check_estimator, "a GaussianMixture or BigLearnGaussianMixture of dask_biglearn")],
        "heldout_fraction": [None, Interval(Real, 0, 1, closed="left")],
        "random_state": ["random_state"],
        "split_every": [None, Interval(Integral, 2, None, closed="left")],
        "verbose": ["verbose"],
    }

    def __init__(self, n_components=range(1, 11), *, covariance_type="full", criterion="bic",
                 estimator=None, heldout_fraction=None, random_state=None, split_every=None,
                 verbose=0):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.criterion = criterion
        self.estimator = estimator
        self.heldout_fraction = heldout_fraction
        self.random_state = random_state
        self.split_every = split_every
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # NaN marks a missing value
        return tags

    def _heldout_fraction(self) -> float:
        if self.heldout_fraction is not None:
            return float(self.heldout_fraction)
        return 0.1 if self.criterion == "heldout" else 0.0

    def fit(self, X, y=None):
        """Fit every candidate to ``X`` (less the held-out rows) and keep the best.

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)
            As the estimators take it (a Dask array's passes run on the active scheduler;
            NaN marks a missing value, and rows with no observed value are ignored).
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted selection.
        """
        self._validate_params()
        started = time.perf_counter()
        X, _ = check_array(self, X, reset=True)
        n_samples, n_features = (int(s) for s in X.shape)
        candidates = _candidates(self.n_components, self.covariance_type)
        check_n_samples(n_samples, max(k for k, _ in candidates))
        rng = check_generator(self.random_state)
        fraction = self._heldout_fraction()
        template = self.estimator if self.estimator is not None else BigLearnGaussianMixture()
        models = [clone(template).set_params(n_components=k, covariance_type=t, verbose=0,
                                             callbacks=None, checkpoint=None,
                                             warm_start=False)
                  for k, t in candidates]
        for model in models:
            model._validate_params()
        split_seed = int(rng.integers(2**63 - 1))
        heldout = _heldout_rows(X, split_seed, fraction) if fraction > 0 else None
        n_train = n_samples if heldout is None else n_samples - _count(heldout)
        self._check_split(n_samples, n_train, fraction, max(k for k, _ in candidates))
        data = X if heldout is None else with_sample_weight(X, (~heldout).astype(np.float64))
        plans = [m._fit_plan(n_samples, n_features) for m in models]
        with verbosity(self.verbose), make_engine(
                data, split_every=self.split_every, weighted=heldout is not None) as engine:
            summaries = engine.summaries
            if summaries.n_missing:
                logger.info("%s.", missing_summary(
                    summaries.missing_fraction, summaries.n_incomplete,
                    summaries.n_counted_rows, summaries.n_empty))
            results = run_plans(engine, plans, rng)
            passes = int(engine.n_data_passes)
        scores = np.full(len(candidates), np.nan)
        if heldout is not None:
            scores, scored_passes = self._heldout_scores(X, heldout, candidates, results,
                                                         summaries)
            passes += scored_passes
        # The criteria count the rows the fits learnt from: rows with no observed value
        # are ignored (with none, these are the training rows).
        self._set_results(candidates, models, results, summaries.n_positive_rows, scores,
                          passes, int(X.nbytes), time.perf_counter() - started, summaries)
        best = self.best_estimator_
        message = degeneracy(summaries, results[self.best_index_].params,
                             best.covariance_floor, results[self.best_index_].degenerate)
        if message:
            warnings.warn(message, DegenerateFitWarning, stacklevel=2)
        edge = _at_the_edge(candidates, self.best_index_)
        if edge:
            warnings.warn(edge, SelectionBoundaryWarning, stacklevel=2)
        return self

    def _check_split(self, n_samples: int, n_train: int, fraction: float, largest: int):
        """Refuse a held-out split the criterion cannot use or that leaves too few training
        rows, before any pass."""
        if self.criterion == "heldout" and n_samples - n_train == 0:
            raise ValueError(f"criterion='heldout' holds out 0 of the {n_samples} rows "
                             f"(heldout_fraction={fraction:g}): it needs held-out rows to "
                             f"score; raise heldout_fraction (None is 0.1) or use 'bic'.")
        if n_train < largest:
            raise ValueError(f"heldout_fraction={fraction:g} holds out "
                             f"{n_samples - n_train} of the {n_samples} rows and leaves "
                             f"{n_train} to train on, fewer than the largest candidate "
                             f"n_components={largest}: lower heldout_fraction or the "
                             f"candidates.")

    def _heldout_scores(self, X, heldout, candidates, results, summaries):
        """The mean log-likelihood of every candidate on the held-out rows: one summary pass,
        then one pass for all the candidates (each with its type's kernel). A feature that
        no held-out row observes takes the training rows' ``summaries``."""
        with make_engine(with_sample_weight(X, heldout.astype(np.float64)),
                         split_every=self.split_every, weighted=True,
                         parent=summaries) as engine:
            specs = [pass_spec(engine, r.params, None, moments=False, covariance_type=t)[0]
                     for (_, t), r in zip(candidates, results, strict=True)]
            stats = engine.run_passes(specs)
            scores = np.array([s.log_lik_sum / s.n_rows for s in stats])
            return scores, int(engine.n_data_passes)

    def _set_results(self, candidates, models, results, n_train, heldout, passes, nbytes,
                     seconds, summaries=None):
        """``cv_results_``, the best candidate (with the training rows' counts of missing
        values, from their ``summaries``), and the sweep's accounting."""
        train = np.array([r.lower_bound for r in results])
        n_params = np.array([n_mixture_parameters(t, k, self.n_features_in_)
                             for k, t in candidates])
        bic = -2 * train * n_train + n_params * np.log(n_train)
        aic = -2 * train * n_train + 2 * n_params
        criterion = {"bic": bic, "aic": aic, "heldout": heldout}[self.criterion]
        if not np.any(np.isfinite(criterion)):  # nothing to rank: never pick the first
            raise ValueError(f"No candidate has a finite {self.criterion} to rank by.")
        order = np.argsort(-criterion if self.criterion == "heldout" else criterion,
                           kind="stable")
        rank = np.empty(len(candidates), dtype=int)
        rank[order] = np.arange(1, len(candidates) + 1)
        self.cv_results_ = {
            "param_n_components": np.array([k for k, _ in candidates]),
            "param_covariance_type": np.array([t for _, t in candidates]),
            "params": [{"n_components": k, "covariance_type": t} for k, t in candidates],
            "n_parameters": n_params, "bic": bic, "aic": aic,
            "train_log_likelihood": train, "heldout_log_likelihood": heldout,
            "criterion": criterion, "rank": rank,
            "n_iter": np.array([r.chosen.main.iteration for r in results]),
            "n_data_passes": np.full(len(candidates), passes),
            "fit_time": np.full(len(candidates), seconds),
        }
        self.best_index_ = int(order[0])
        self.best_params_ = dict(self.cv_results_["params"][self.best_index_])
        best, result = models[self.best_index_], results[self.best_index_]
        best._set_fitted_result(result, passes, nbytes, summaries)
        self.best_estimator_ = best
        self.n_data_passes_ = passes
        self.n_sample_passes_ = int(max(r.n_sample_passes for r in results))
        self.bytes_read_ = passes * nbytes
        self.fit_time_ = float(seconds)

    def plot(self, path=None):
        """Draw the criterion and the log-likelihoods against K, one line per covariance
        type, the selected candidate starred (needs matplotlib).

        Parameters
        ----------
        path : path-like, optional
            Also write the figure there (a PNG, say).

        Returns
        -------
        figure : matplotlib.figure.Figure
            Two panels: the criterion; the mean training (and held-out) log-likelihood.
        """
        import matplotlib.pyplot as plt

        check_is_fitted(self)
        table = self.cv_results_
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
        for covariance_type in dict.fromkeys(table["param_covariance_type"]):
            which = table["param_covariance_type"] == covariance_type
            k = table["param_n_components"][which]
            top.plot(k, table["criterion"][which], "o-", label=covariance_type)
            bottom.plot(k, table["train_log_likelihood"][which], "o-",
                        label=f"{covariance_type}, training")
            if not np.all(np.isnan(table["heldout_log_likelihood"][which])):
                bottom.plot(k, table["heldout_log_likelihood"][which], "s--",
                            label=f"{covariance_type}, held out")
        best = self.best_index_
        top.plot(table["param_n_components"][best], table["criterion"][best], "k*", ms=14,
                 label="selected")
        top.set_ylabel({"bic": "BIC (lower is better)", "aic": "AIC (lower is better)",
                        "heldout": "held-out log-likelihood"}[self.criterion])
        bottom.set_ylabel("mean log-likelihood per row")
        bottom.set_xlabel("number of components K")
        top.legend(fontsize=8)
        bottom.legend(fontsize=8)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=100)
        return fig

    # ----- the best model ------------------------------------------------------------------

    def predict(self, X):
        """``best_estimator_.predict(X)``.

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        return self.best_estimator_.predict(X)

    def predict_proba(self, X):
        """``best_estimator_.predict_proba(X)``.

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)

        Returns
        -------
        resp : ndarray of shape (n_samples, n_components)
        """
        check_is_fitted(self)
        return self.best_estimator_.predict_proba(X)

    def score_samples(self, X):
        """``best_estimator_.score_samples(X)``.

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)

        Returns
        -------
        log_prob : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        return self.best_estimator_.score_samples(X)

    def score(self, X, y=None):
        """``best_estimator_.score(X)``.

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)
        y : None
            Ignored.

        Returns
        -------
        log_likelihood : float
        """
        check_is_fitted(self)
        return self.best_estimator_.score(X)

    def bic(self, X):
        """``best_estimator_.bic(X)``.

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)

        Returns
        -------
        bic : float
        """
        check_is_fitted(self)
        return self.best_estimator_.bic(X)

    def aic(self, X):
        """``best_estimator_.aic(X)``.

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)

        Returns
        -------
        aic : float
        """
        check_is_fitted(self)
        return self.best_estimator_.aic(X)

    def sample(self, n_samples=1):
        """``best_estimator_.sample(n_samples)``.

        Parameters
        ----------
        n_samples : int, default=1

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        return self.best_estimator_.sample(n_samples)


def _at_the_edge(candidates, best: int) -> str | None:
    """Why the chosen candidate may not be the best there is: the largest (or the smallest,
    above 1) number of components tried for its covariance type."""
    k, covariance_type = candidates[best]
    tried = [kk for kk, t in candidates if t == covariance_type]
    if len(tried) < 2:
        return None
    if k == max(tried):
        return (f"The selected n_components={k} is the largest candidate tried for "
                f"covariance_type={covariance_type!r}: the criterion may improve beyond it. "
                f"Widen n_components.")
    if k == min(tried) and k > 1:
        return (f"The selected n_components={k} is the smallest candidate tried for "
                f"covariance_type={covariance_type!r}: the criterion may improve below it. "
                f"Widen n_components.")
    return None


def _count(mask) -> int:
    """How many rows a (NumPy or Dask) mask holds (a Dask mask is counted on the workers)."""
    total = mask.sum()
    return int(total.compute() if is_dask_array(total) else total)
