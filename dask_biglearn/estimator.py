"""scikit-learn compatible estimators: BigLearn-EM and plain EM on NumPy and Dask arrays.

An estimator checks its parameters and the input (:mod:`dask_biglearn.validation`), opens the
engine for the data (:func:`dask_biglearn.engines.make_engine`: in-process for NumPy, a Dask
graph for Dask arrays), draws the start (:mod:`dask_biglearn.initialization`), runs the fit
loop (:mod:`dask_biglearn.fit`), closes the engine and stores the result. Scoring a fitted
model runs the per-block kernels of :mod:`dask_biglearn.kernels.scoring`.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from .algebra import precision_cholesky
from .config import driver_sample_bytes
from .engines import make_engine
from .engines.local import InProcessEngine
from .fit import FitSettings, best_state, finish_fits, refine, run_fits, start_states
from .fit.journal import Journal
from .fit.moves import MOVE_KINDS, MoveSettings, improve_by_moves
from .fit.scalable import refine_on, sample_rows
from .initialization import INIT_METHODS, apply_user_init, init_sample, initial_params
from .kernels.scoring import checked_block, predict_block, proba_block, score_block
from .model import FitState
from .projection import DEFAULT_MATCHING_PROBS, MatchingSchedule
from .validation import (
    check_array,
    check_generator,
    check_int,
    check_n_samples,
    check_real,
    is_dask_array,
)
from .verbosity import verbosity

__all__ = ["PAPER_SETTINGS", "BigLearnGaussianMixture", "GaussianMixture"]

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


# ---------------------------------------------------------------------------------------------
# Shared estimator machinery
# ---------------------------------------------------------------------------------------------


class _BaseGaussianMixture(DensityMixin, BaseEstimator):
    """Validation, initialisation, prediction and scoring shared by both estimators.

    Subclasses provide ``_fit_settings()``.
    """

    # ----- hyper-parameters -----------------------------------------------------------------

    def _check_parameters(self):
        check_int("n_components", self.n_components, 1)
        check_int("max_iter", self.max_iter, 0)
        check_real("covariance_floor", self.covariance_floor, 0.0, strict=True)
        check_real("tol", self.tol, 0.0)
        check_int("n_init", self.n_init, 1)
        check_int("refine_max_iter", self.refine_max_iter, 0)
        check_real("refine_tol", self.refine_tol, 0.0)
        sample_rows(self.sample_size, 1, 1, 1)  # its errors before any pass
        check_int("checkpoint_every", self.checkpoint_every, 1)
        if self.init_params not in INIT_METHODS:
            raise ValueError(
                f"init_params must be one of {list(INIT_METHODS)}, got {self.init_params!r}."
            )
        if self.split_every is not None:
            check_int("split_every", self.split_every, 2)
        check_int("verbose", int(self.verbose) if isinstance(self.verbose, bool)
                  else self.verbose, 0)
        if self.callbacks is not None and not all(callable(c) for c in self.callbacks):
            raise TypeError("callbacks must be a list of callables callback(state, event).")

    # ----- fitting ---------------------------------------------------------------------------

    def _initial_params(self, rng, engine, sample):
        params = initial_params(self.init_params, rng, self.n_components, engine,
                                self.covariance_floor, sample)
        return apply_user_init(
            params,
            weights_init=self.weights_init,
            means_init=self.means_init,
            precisions_init=self.precisions_init,
            covariance_floor=self.covariance_floor,
        )

    def _callbacks(self):
        return list(self.callbacks or ())

    def fit(self, X, y=None):
        """Fit the mixture to ``X``.

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)
            NumPy input runs in-process; a Dask array runs its passes on the active Dask
            scheduler (see :class:`dask_biglearn.engines.DaskEngine`: on a cluster it is
            persisted when it fits, spread over the workers, and small data is passed over
            through one actor per worker). Per-sample data never comes back to the driver,
            and what the fit placed on the cluster is released when it ends.
        y : ignored

        Returns
        -------
        self
        """
        self._check_parameters()
        X, _ = check_array(self, X, reset=True)
        n_samples, n_features = (int(s) for s in X.shape)
        check_n_samples(n_samples, self.n_components)
        n_sample_rows = sample_rows(self.sample_size, n_samples, self.n_components,
                                    n_features)
        settings = self._fit_settings()
        with verbosity(self.verbose), self._journal(X), make_engine(
                X, split_every=self.split_every) as engine:
            rng = check_generator(self.random_state)
            if n_sample_rows is None:
                candidates = self._explore(engine, rng, settings)
                self.n_sample_passes_ = 0
            else:
                candidates = self._explore_sample_refine_data(engine, rng, settings,
                                                              n_sample_rows)
            self.n_data_passes_ = int(engine.n_data_passes)
            self.bytes_read_ = int(engine.n_data_passes * X.nbytes)
        result = best_state([result for _, result in candidates])
        main = next(main for main, candidate in candidates if candidate is result)
        self._warn_if_not_converged(main)
        self._set_fitted(main, result)
        logger.info("Fit done: %d full-data passes (%.3g GB read), %d passes over the sample, "
                    "mean log-likelihood %.6f", self.n_data_passes_, self.bytes_read_ / 1e9,
                    self.n_sample_passes_, self.lower_bound_)
        return self

    def _journal(self, X):
        """The checkpoint of this fit (:mod:`dask_biglearn.fit.journal`), or a no-op."""
        if self.checkpoint is None:
            return contextlib.nullcontext()
        from .io.models import hyper_parameters

        params, _ = hyper_parameters(self, identity=True)
        identity = {"estimator": type(self).__name__, "hyper_parameters": params,
                    "shape": [int(n) for n in X.shape], "dtype": str(X.dtype)}
        return Journal(self.checkpoint, self.checkpoint_every, identity, self.resume)

    def _explore(self, engine, rng, settings):
        """The starts and the fit from them on ``engine``; returns the candidates of
        :meth:`_run`."""
        sample = init_sample(self.init_params, rng, self.n_components, engine)
        starts = start_states(lambda g: self._initial_params(g, engine, sample),
                              self.n_init, rng)
        return self._run(engine, starts, settings, sample)

    def _explore_sample_refine_data(self, engine, rng, settings, n_rows):
        """The scalable mode (:mod:`dask_biglearn.fit.scalable`): one pass draws ``n_rows``
        rows, the whole exploration runs on them in this process, and plain EM over the full
        data refines the best explored model. Returns one candidate."""
        seed = int(rng.integers(2**63 - 1))
        if n_rows * engine.n_features * 8 <= driver_sample_bytes() or not hasattr(
                engine, "persisted_sample"):
            rows = engine.take_sample(n_rows, seed)
            on_sample = InProcessEngine(rows, compiled=engine.compiled)
        else:  # too big for the driver: kept on the workers
            rows = engine.persisted_sample(n_rows, seed)
            on_sample = make_engine(rows, split_every=self.split_every)
        with on_sample:
            candidates = self._explore(on_sample, rng, settings)
            self.n_sample_passes_ = int(on_sample.n_data_passes)
        del rows
        explored = best_state([result for _, result in candidates])
        full = FitSettings.plain_em(max_iter=self.refine_max_iter, tol=self.refine_tol,
                                    covariance_floor=self.covariance_floor)
        refined = refine_on(engine, explored, full, self._callbacks())
        if not refined.finished:
            finish_fits(engine, [refined], full)
        main = next(main for main, result in candidates if result is explored)
        return [(main, refined)]

    def _run(self, engine, starts, settings, sample=None):
        """Run the fit from ``starts``; returns the candidates, pairs ``(main loop's state,
        finished result)`` (the same state, or its refinement): the best result wins."""
        states = run_fits(engine, starts, settings, self._callbacks())
        finish_fits(engine, [s for s in states if not s.finished], settings)
        return [(s, s) for s in states]

    def _warn_if_not_converged(self, state):
        """Plain EM warns, as scikit-learn does; BigLearn-EM has no stopping rule to miss."""

    def fit_predict(self, X, y=None):
        """Fit, then return ``predict(X)`` of the fitted model.

        Returns
        -------
        labels : ndarray (or lazy Dask array) of shape (n_samples,)
        """
        return self.fit(X).predict(X)

    def _set_fitted(self, explored, result):
        """Attributes from the fit's best start (``explored``) and its result (the same
        state, or its refinement)."""
        p = result.best_params
        self.weights_ = p.weights
        self.means_ = p.means
        self.covariances_ = p.covariances
        self.precisions_cholesky_ = precision_cholesky(p.covariances)
        self.precisions_ = self.precisions_cholesky_ @ np.swapaxes(self.precisions_cholesky_,
                                                                   1, 2)
        self.lower_bound_ = float(result.best_lower_bound)
        self.lower_bounds_ = list(explored.lower_bounds)
        if result is not explored:
            self.lower_bounds_ += result.lower_bounds
        self.n_iter_ = int(explored.iteration)
        self.converged_ = bool(explored.converged)

    # ----- using a fitted model --------------------------------------------------------------

    def save(self, path):
        """Write the fitted model to ``path``: one file (a ZIP of JSON and ``.npz``, never
        pickled), written atomically; read it back with :func:`dask_biglearn.load`."""
        from .io import save_model

        return save_model(self, path)

    def _apply_blocks(self, X, block_fn, new_width=None, **map_blocks_kwargs):
        """``block_fn(X, weights, means, precisions_cholesky)``: directly on NumPy input,
        lazily chunk by chunk (each chunk checked for NaN and inf) on Dask input."""
        check_is_fitted(self)
        X, lazy = check_array(self, X, reset=False)
        args = (self.weights_, self.means_, self.precisions_cholesky_)
        if not lazy:
            return block_fn(X, *args)
        if new_width is not None:
            map_blocks_kwargs["chunks"] = (X.chunks[0], (new_width,))
        return X.map_blocks(checked_block, block_fn, *args, **map_blocks_kwargs)

    def score_samples(self, X):
        """Log-density of each sample under the fitted mixture.

        Returns
        -------
        log_prob : ndarray of shape (n_samples,), lazy Dask array for Dask input
        """
        return self._apply_blocks(X, score_block, drop_axis=1, dtype=np.float64)

    def score(self, X, y=None):
        """Mean log-likelihood per sample (a float; computed for Dask input)."""
        return self._mean_score(X)[0]

    def _mean_score(self, X):
        scores = self.score_samples(X)
        mean = scores.mean().compute() if is_dask_array(scores) else scores.mean()
        return float(mean), int(scores.shape[0])

    def predict_proba(self, X):
        """Posterior probability of each component for each sample.

        Returns
        -------
        resp : ndarray of shape (n_samples, n_components), lazy Dask array for Dask input
        """
        return self._apply_blocks(X, proba_block, dtype=np.float64, new_width=self.n_components)

    def predict(self, X):
        """Index of the most probable component for each sample.

        Returns
        -------
        labels : ndarray of shape (n_samples,), lazy Dask array for Dask input
        """
        return self._apply_blocks(X, predict_block, drop_axis=1, dtype=np.intp)

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


# ---------------------------------------------------------------------------------------------
# The estimators
# ---------------------------------------------------------------------------------------------

_COMMON_PARAMS_DOC = """
    covariance_floor : float, default=1e-6
        Eigenvalue floor ``eps`` applied after every covariance update: eigenvalues below it
        are raised to it, keeping every covariance symmetric positive definite; must be > 0.
        It is in the units of the data's variance, so scale it with the data (the paper uses
        1e-2 on [0, 1]-scaled data and 1e-5 in its 2-D simulation).
    init_params : {"random", "random_from_data", "k-means++", "kmeans"}
        Default ``"kmeans"`` for :class:`BigLearnGaussianMixture`, ``"random"`` (the paper's
        start, from which plain EM is the baseline) for :class:`GaussianMixture`.
        ``"random"``: the paper's initialisation in min-max-scaled units: means
        ``min + (max - min) * z`` with ``z ~ N(0, I)``, covariances ``diag((max - min)^2)``,
        equal weights; on data scaled to [0, 1] this is exactly the reference code's
        ``N(0, I)`` means and identity covariances.
        ``"random_from_data"``: means at distinct random rows, covariances ``diag(var)``,
        equal weights.
        ``"k-means++"``: means at seeds drawn as scikit-learn's ``kmeans_plusplus`` draws
        them; ``"kmeans"``: a few Lloyd iterations from those seeds. Both work on a row
        sample (all rows of data up to 20000 rows; on Dask input one pass chooses the rows
        by their global index and a seed, so the start does not depend on the chunking), and
        take each component's weight and covariance from the sample's rows nearest to it.
    weights_init, means_init, precisions_init : array-like, default=None
        User-provided initial weights ``(n_components,)``, means
        ``(n_components, n_features)`` and precision matrices
        ``(n_components, n_features, n_features)``; each replaces its part of ``init_params``.
    sample_size : None, "auto", int or float, default=None
        The scalable mode (:mod:`dask_biglearn.fit.scalable`): one pass draws this many rows
        (an int), this fraction of the rows (a float in (0, 1]) or ``"auto"`` rows (40 per
        free parameter of a component, per component, at least 20000), chosen by their
        global index and the seed, into this process; the whole exploration (starts,
        restarts and, for BigLearn-EM, matchings and moves) runs on them; then plain EM
        passes over the full data refine the best explored model until ``refine_tol`` or
        ``refine_max_iter``. A fit of big data then costs a few tens of passes over it. A
        sample larger than the Dask setting ``biglearn.driver-sample-bytes`` (1 GiB) stays
        on the workers, persisted (about ``sample_size`` rows, each kept when its key falls
        below the fraction: see :mod:`dask_biglearn.kernels.sampling`).
        None: every pass reads the full data (the exact algorithm).
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation and (BigLearn-EM) every matching, subset and rotation. All
        draws happen on the driver, so a seed gives the same fit whatever the chunking of the
        data and the number of workers. With ``n_init > 1`` each start draws from its own
        generator (``Generator.spawn``).
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
        (:mod:`dask_biglearn.fit.journal`).
    checkpoint_every : int, default=10
    resume : bool, default=False
        With ``checkpoint``: continue the fit that wrote it (same data, hyper-parameters and
        seed, else an error) instead of starting afresh. The result is exactly that of a fit
        never interrupted; ``n_data_passes_`` counts this run's passes.
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
    n_data_passes_ : int
        How many times the fit read the whole data: the summary pass, any sample, and every
        EM or evaluation pass (the starts of ``n_init`` share theirs).
    bytes_read_ : int
        ``n_data_passes_`` times the data's size in memory (``X.nbytes``).
    n_sample_passes_ : int
        Passes over the in-process row sample of the scalable mode (0 without one).
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
    """

    def __init__(self, n_components=1, *, max_iter=100, tol=1e-3, n_init=1,
                 covariance_floor=1e-6, init_params="random", weights_init=None,
                 means_init=None, precisions_init=None, sample_size=None,
                 refine_max_iter=100, refine_tol=1e-3, random_state=None, split_every=None,
                 callbacks=None, checkpoint=None, checkpoint_every=10, resume=False,
                 verbose=0):
        self.n_components = n_components
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.sample_size = sample_size
        self.refine_max_iter = refine_max_iter
        self.refine_tol = refine_tol
        self.covariance_floor = covariance_floor
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.split_every = split_every
        self.callbacks = callbacks
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every
        self.resume = resume
        self.verbose = verbose

    def _fit_settings(self):
        return FitSettings.plain_em(max_iter=self.max_iter, tol=self.tol,
                                    covariance_floor=self.covariance_floor)

    def _warn_if_not_converged(self, state):
        if not state.converged and self.max_iter > 0:
            warnings.warn(
                f"EM did not converge in max_iter={self.max_iter} iterations (tol={self.tol}). "
                "Increase max_iter or tol.",
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

    The defaults are those that ``benchmarks/bench_quality.py`` measured best: 10 k-means
    starts advancing together (they share every read of the data), the paper's matchings,
    the stopping rule and the plain-EM refinement. The paper's exact algorithm is one
    setting away: ``BigLearnGaussianMixture(n_components, **PAPER_SETTINGS)``.

    Parameters
    ----------
    n_components : int, default=1
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
    n_iter_no_change : int, default=100
        The stopping rule, which needs no labels: stop once the best checked log-likelihood
        has risen by less than ``tol`` over this many outer iterations (judged at the checks).
        None runs all ``max_iter`` outer iterations (the paper's algorithm).
    refine_max_iter : int, default=200
        After the matchings, at most this many plain EM iterations (joint updates, no weight
        smoothing) from the returned model of each start, until the log-likelihood changes
        by less than ``refine_tol``; the best refined start is returned. 0: none (the
        paper's algorithm). With ``sample_size``, the same refinement on the sample, and
        then on the full data from the best model.
    refine_tol : float, default=1e-3
        The tolerance of the refinement (and of the warm-up and the moves' polish):
        scikit-learn's ``tol``. ``bench_quality.py`` measured 1e-3 against 1e-6: the same
        modes or more (all of them on d2-k10-imbalanced in 10/10 seeds, not 9/10), the same
        test KL, 10-30 % less time.
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
        Outer iteration whose parameters were returned.
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
    """

    def __init__(self, n_components=1, *, max_iter=1000, n_inner_iter=5, matching_probs=None,
                 marginal_size_beta=(5.0, 1.0), weight_concentration=None,
                 covariance_floor=1e-6, init_params="kmeans", weights_init=None,
                 means_init=None, precisions_init=None, check_every=20, tol=1e-3,
                 n_iter_no_change=100, refine_max_iter=200, refine_tol=1e-3, n_init=10,
                 n_explore=2, moves=("split-merge",), max_move_rounds=10, sample_size=None,
                 random_state=None, split_every=None, callbacks=None, checkpoint=None,
                 checkpoint_every=10, resume=False, verbose=0):
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
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.refine_max_iter = refine_max_iter
        self.refine_tol = refine_tol
        self.n_init = n_init
        self.n_explore = n_explore
        self.moves = moves
        self.max_move_rounds = max_move_rounds
        self.sample_size = sample_size
        self.random_state = random_state
        self.split_every = split_every
        self.callbacks = callbacks
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every
        self.resume = resume
        self.verbose = verbose

    def _check_parameters(self):
        super()._check_parameters()
        check_int("n_inner_iter", self.n_inner_iter, 1)
        if self.n_explore is not None:
            check_int("n_explore", self.n_explore, 1)
        check_int("check_every", self.check_every, 1)
        if self.n_iter_no_change is not None:
            check_int("n_iter_no_change", self.n_iter_no_change, 1)
        check_int("max_move_rounds", self.max_move_rounds, 0)
        if isinstance(self.moves, str) or not set(self.moves or ()) <= set(MOVE_KINDS):
            raise ValueError(f"moves must be a sequence of {MOVE_KINDS}, got {self.moves!r}.")
        if self.weight_concentration is not None:
            check_real("weight_concentration", self.weight_concentration, 0.0)
        probs = DEFAULT_MATCHING_PROBS if self.matching_probs is None else self.matching_probs
        self._schedule = MatchingSchedule(probs, self.marginal_size_beta)

    def _fit_settings(self):
        alpha = (1.0 / self.n_components if self.weight_concentration is None
                 else float(self.weight_concentration))
        return FitSettings.biglearn(
            schedule=self._schedule, max_iter=self.max_iter, n_inner_iter=self.n_inner_iter,
            check_every=self.check_every, covariance_floor=self.covariance_floor,
            weight_concentration=alpha, tol=self.tol, n_iter_no_change=self.n_iter_no_change,
        )

    def _refine_settings(self):
        return FitSettings.plain_em(max_iter=self.refine_max_iter, tol=self.refine_tol,
                                    covariance_floor=self.covariance_floor)

    def _run(self, engine, starts, settings, sample=None):
        """Warm-up (plain EM from every start, when only the best ``n_explore`` explore),
        the matchings, then the refinement; every start's plain EM and every refined
        exploration is a candidate. A callback that stops the fit skips what is left."""
        callbacks = self._callbacks()
        em = self._refine_settings()
        self.n_moves_ = 0
        warm = []
        if self.n_explore is not None and self.n_explore < len(starts):
            for start in starts:
                start.phase = "warm-up"
            warm = run_fits(engine, starts, em, callbacks)
            if not all(s.finished for s in warm):
                finish_fits(engine, [s for s in warm if not s.finished], em)
                return [(s, s) for s in warm]
            chosen, rest = [], list(warm)
            for _ in range(self.n_explore):  # the best, near-ties to the first (see best_state)
                chosen.append(best_state(rest))
                rest = [s for s in rest if s is not chosen[-1]]
            starts = [FitState(s.best_params, s.rng, restart=s.restart) for s in
                      sorted(chosen, key=lambda s: s.restart)]
        explored = run_fits(engine, starts, settings, callbacks)
        stopped = [s for s in explored if not s.finished]
        finish_fits(engine, stopped, settings)
        results = explored
        if not stopped and self.refine_max_iter > 0:
            results = refine(engine, explored, em, callbacks)
            finish_fits(engine, [s for s in results if not s.finished], em)
        found = [*zip(explored, results, strict=True), *((s, s) for s in warm)]
        if stopped or not self.moves or self.max_move_rounds == 0:
            return found
        return [*found, self._improve_by_moves(engine, found, sample, em, callbacks)]

    def _improve_by_moves(self, engine, found, sample, em, callbacks):
        """The escape moves (:mod:`dask_biglearn.fit.moves`) from the best candidate so far;
        returns the candidate they give (the best one itself when no move helped)."""
        best = best_state([result for _, result in found])
        main = next(main for main, result in found if result is best)
        if sample is None:
            sample = init_sample("kmeans", best.rng, self.n_components, engine)
        moves = MoveSettings(kinds=tuple(self.moves), max_rounds=self.max_move_rounds)
        moved, self.n_moves_ = improve_by_moves(engine, best, sample, moves, em, callbacks)
        return main, moved

    def _set_fitted(self, explored, result):
        super()._set_fitted(explored, result)
        self.matchings_ = list(explored.matchings)
        self.best_iteration_ = int(explored.best_iteration)
        self.n_refine_iter_ = 0 if result is explored else int(result.iteration)
