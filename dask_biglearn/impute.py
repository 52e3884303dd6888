"""Imputing missing values (NaN) with a Gaussian mixture: a scikit-learn transformer.

:class:`GaussianMixtureImputer` fits a mixture to incomplete data (exact EM on the observed
values, :mod:`dask_biglearn.kernels.missing`), by default choosing its number of components
in one sweep (:class:`~dask_biglearn.selection.GaussianMixtureSelection`), then fills each
missing value with its conditional mean given the row's observed values, or draws it from
the conditional distribution (multiple imputation). The per-block work is
:mod:`dask_biglearn.kernels.impute`: NumPy input is imputed in this process, Dask input
lazily, chunk by chunk, where the chunks live.
"""

from __future__ import annotations

import warnings
from numbers import Integral
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin, clone
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_is_fitted

from .algebra import n_mixture_parameters
from .estimator import BigLearnGaussianMixture, GaussianMixture
from .exceptions import SelectionBoundaryWarning
from .kernels.features import default_block_rows
from .kernels.impute import impute_block, impute_chunk
from .selection import (
    CRITERIA,
    GaussianMixtureSelection,
    _check_estimator,
    _check_n_components,
    _check_types,
)
from .validation import Satisfies, check_array, is_dask_array, is_data_array

__all__ = ["MAX_DEFAULT_COMPONENTS", "GaussianMixtureImputer", "default_n_components"]

#: The largest number of components the default sweep tries (``range(1, 11)``).
MAX_DEFAULT_COMPONENTS = 10

#: Mixed into an int ``random_state`` to seed the draws, so that they share no stream with
#: the fit that the same ``random_state`` seeds.
_DRAW_DOMAIN = 0x696D70757465  # "impute"


def default_n_components(n_samples: int, n_features: int, covariance_type="full") -> list[int]:
    """The candidate numbers of components of the default sweep: ``1 .. 10``, capped by the
    data's rows.

    ``K`` is a candidate when the mixture of ``K`` components (of the most expensive of the
    covariance types) has at most as many free parameters as there are rows: beyond that,
    the likelihood can grow without bound and BIC cannot tell the candidates apart.

    Parameters
    ----------
    n_samples : int
        Rows of the data.
    n_features : int
        Columns of the data.
    covariance_type : str or tuple of str, default="full"
        The candidate covariance types.

    Returns
    -------
    candidates : list of int
        ``[1, ..., K_max]``, with ``1 <= K_max <= 10``.
    """
    types = (covariance_type,) if isinstance(covariance_type, str) else tuple(covariance_type)
    largest = 1
    for k in range(2, MAX_DEFAULT_COMPONENTS + 1):
        if max(n_mixture_parameters(t, k, n_features) for t in types) > n_samples:
            break
        largest = k
    return list(range(1, largest + 1))


def _draw_seed(random_state) -> int:
    """The seed of a draw (:func:`~dask_biglearn.kernels.impute.row_uniforms`) from
    ``random_state``: an int gives the same seed every time, a generator (or
    ``RandomState``) its next number, None fresh entropy."""
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1, np.uint64)[0])
    if isinstance(random_state, Integral):
        sequence = np.random.SeedSequence([int(random_state), _DRAW_DOMAIN])
        return int(sequence.generate_state(1, np.uint64)[0])
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**63 - 1))
    return int(random_state.randint(0, 2**63 - 1, dtype=np.int64))


def _check_n_components_or_int(value):
    if isinstance(value, Integral) and not isinstance(value, bool):
        if value < 1:
            raise ValueError(value)
        return
    _check_n_components(value)


def _fitted_mixture(model):
    """The fitted mixture of ``model`` (a mixture, or a selection's best) and the selection
    (or None)."""
    if isinstance(model, GaussianMixtureSelection):
        check_is_fitted(model)
        return model.best_estimator_, model
    _check_estimator(model)
    check_is_fitted(model, "means_")
    return model, None


class GaussianMixtureImputer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Imputation of missing values (NaN) by a Gaussian mixture fitted to the incomplete data.

    ``fit`` fits a mixture to ``X`` by exact EM on its observed values (a row counts through
    what it observes; no value is filled in first), choosing the number of components from
    the data unless told; ``transform`` fills each missing value of a row with its
    conditional mean given the row's observed values under the mixture,

    .. math::

        E[x_M \\mid x_O] = \\sum_k r_k(x_O) \\, \\hat x_{kM}, \\qquad
        \\hat x_{kM} = \\mu_{kM} + S_{k,MO} S_{k,OO}^{-1} (x_O - \\mu_{kO}),

    with the responsibilities ``r_k(x_O)`` of the observed values (``predict_proba``), or
    with ``sample_posterior=True`` draws it from that conditional distribution (multiple
    imputation). Observed values are returned unchanged; a row with nothing observed gets
    the mixture's mean (or a draw from the mixture). Unlike one Gaussian (linear regression
    on the observed values), the mixture imputes non-linear, clustered, multimodal data.

    Parameters
    ----------
    n_components : int, iterable of int or None, default=None
        An int: one fit of that many components. Candidates (a list, tuple or range): one
        sweep over them (:class:`~dask_biglearn.selection.GaussianMixtureSelection`, which
        shares every pass between the candidates), the best by ``criterion``. None: the
        candidates ``1 .. 10``, capped so that no candidate has more free parameters than
        the data has rows (:func:`default_n_components`).
    covariance_type : str or tuple of str, default="full"
        scikit-learn's covariance type of the mixture, or candidates for the sweep (every
        pair of a size and a type is a candidate). ``"full"`` imputes from the correlations
        within each component, which is what imputation lives on: with ``"diag"`` or
        ``"spherical"`` a component predicts its mean whatever is observed, and only the
        responsibilities carry information from the observed values.
    criterion : {"bic", "aic", "heldout"}, default="bic"
        How the sweep chooses (as :class:`~dask_biglearn.selection.GaussianMixtureSelection`
        does). BIC by default: it learns from every row (``"heldout"`` holds 10% back from
        every fit), is consistent for the number of components of a mixture (Keribin, 2000),
        and is mclust's choice; AIC tends to choose more components than the data supports.
    estimator : GaussianMixture or BigLearnGaussianMixture, default=None
        The fit (of each candidate): its hyper-parameters but ``n_components``,
        ``covariance_type`` and ``random_state``, which the imputer sets. None is
        ``GaussianMixture(n_init=3)``: EM from three k-means starts, sharing every pass (on
        a sweep, with every candidate's), about 20 to 100 passes over the data. A sweep
        over the number of components already guards against a start that merged two
        clusters (a size that fits badly loses on BIC), and imputation needs a good density
        rather than the best of all local optima; ``BigLearnGaussianMixture()``, which
        escapes bad local optima where plain EM cannot (many overlapping components), costs
        several times the passes.
    sample_posterior : bool, default=False
        ``transform`` draws each row's missing values from their conditional distribution
        under the mixture instead of giving their conditional mean: a component ``k`` drawn
        from the responsibilities ``r(x_O)``, then ``x_M`` from that component's conditional
        Gaussian ``N(xhat_kM, S_k,MM - S_k,MO S_k,OO^-1 S_k,OM)``. Several draws (with several
        ``random_state``) make a multiple imputation, as scikit-learn's ``IterativeImputer``
        offers; :meth:`from_model` builds each draw's imputer over one fitted mixture at no
        cost.
    random_state : int, RandomState instance, Generator or None, default=None
        Seeds the fit (the sweep's or the one fit's; None leaves the estimator's own
        ``random_state``) and the draws of ``sample_posterior``. The draws of a row depend
        on its global row index and a seed only (hashed as the row samples are,
        :mod:`dask_biglearn.kernels.sampling`), never on the chunking: with an int, every
        ``transform`` of the same rows draws the same values; with a generator, each
        ``transform`` draws afresh from its next number.

    Attributes
    ----------
    estimator_ : GaussianMixture or BigLearnGaussianMixture
        The fitted mixture (the sweep's best candidate).
    selection_ : GaussianMixtureSelection or None
        The fitted sweep (its ``cv_results_`` compare the candidates); None after one fit.
    n_components_ : int
        Components of the fitted mixture.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Defined when ``X`` had feature names (a pandas DataFrame).
    missing_fraction_ : float
        The fraction of the training values that were missing (the mixture's
        ``missing_fraction_``).

    See Also
    --------
    GaussianMixtureSelection : the sweep that chooses the number of components.
    sklearn.impute.IterativeImputer : imputation by chained regressions.
    sklearn.impute.SimpleImputer : a column's mean (or median) in every missing value.

    Notes
    -----
    Input and output: NumPy (or any array-like) in, NumPy out, in ``X``'s float dtype (an
    integer ``X`` has nothing missing, and comes back as float64); a Dask array in, a lazy
    Dask array out, of the same row chunks and dtype, imputed chunk by chunk on the workers
    (each chunk in sub-blocks of rows, only its incomplete rows scored); an xarray
    ``DataArray`` in, a ``DataArray`` out with the same dims, coordinates, name and
    attributes (NumPy- or Dask-backed as given); a Dask DataFrame in, a Dask DataFrame out
    with the same columns, index and partitions (its values float). ``set_output`` (pandas)
    applies to NumPy results.

    The responsibilities and conditional Gaussians are those of exact EM on incomplete data
    (Ghahramani and Jordan, 1994); infinity is refused, in ``fit`` and in ``transform`` (a
    Dask chunk when it is imputed). The imputations assume values missing at random: whether
    a value is missing may depend on the row's observed values, not on the missing value
    itself.

    References
    ----------
    .. [1] Z. Ghahramani and M. I. Jordan, "Supervised learning from incomplete data via an
       EM approach", Advances in Neural Information Processing Systems 6 (1994).
    .. [2] C. Keribin, "Consistent estimation of the order of mixture models", Sankhya A 62
       (2000).

    Examples
    --------
    >>> import numpy as np
    >>> from dask_biglearn import GaussianMixtureImputer
    >>> rng = np.random.default_rng(0)
    >>> X = rng.multivariate_normal([0, 0], [[1, 0.9], [0.9, 1]], size=200)
    >>> X[:20, 1] = np.nan
    >>> imputer = GaussianMixtureImputer(random_state=0).fit(X)
    >>> imputer.transform(X).shape
    (200, 2)
    """

    _parameter_constraints: ClassVar[dict] = {
        "n_components": [None, Satisfies(
            _check_n_components_or_int,
            "None, an int >= 1, or a list, tuple or range of integers >= 1")],
        "covariance_type": [Satisfies(_check_types, "a covariance type ('full', 'tied', "
                                                    "'diag', 'spherical') or a tuple of them")],
        "criterion": [StrOptions(set(CRITERIA))],
        "estimator": [None, Satisfies(
            _check_estimator, "a GaussianMixture or BigLearnGaussianMixture of dask_biglearn")],
        "sample_posterior": ["boolean"],
        "random_state": ["random_state", np.random.Generator],
    }

    def __init__(self, n_components=None, *, covariance_type="full", criterion="bic",
                 estimator=None, sample_posterior=False, random_state=None):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.criterion = criterion
        self.estimator = estimator
        self.sample_posterior = sample_posterior
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # NaN marks a missing value: what is imputed
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    # ----- the fit -----------------------------------------------------------------------------

    def _template(self):
        """The estimator every fit clones (see ``estimator``)."""
        return GaussianMixture(n_init=3) if self.estimator is None else self.estimator

    def _fit_random_state(self, template):
        return self.random_state if self.random_state is not None else template.random_state

    def fit(self, X, y=None):
        """Fit the mixture to ``X`` (choosing its number of components unless told).

        Parameters
        ----------
        X : array-like, dask.array.Array, xarray.DataArray or Dask DataFrame of shape \
(n_samples, n_features)
            NaN marks a missing value (infinity is refused). A Dask collection's passes run
            on the active Dask scheduler, where its chunks are. A row with nothing observed
            is ignored by the fit; a column with nothing observed is refused.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted imputer.
        """
        self._validate_params()
        X, _ = check_array(self, X, reset=True)
        n_samples, n_features = (int(s) for s in X.shape)
        template = self._template()
        random_state = self._fit_random_state(template)
        candidates = self.n_components
        capped = False
        if candidates is None:
            candidates = default_n_components(n_samples, n_features, self.covariance_type)
            capped = len(candidates) < MAX_DEFAULT_COMPONENTS
        if isinstance(candidates, Integral) and isinstance(self.covariance_type, str):
            model = clone(template).set_params(n_components=int(candidates),
                                               covariance_type=self.covariance_type,
                                               random_state=random_state)
            self.estimator_, self.selection_ = model.fit(X), None
        else:
            sizes = [int(candidates)] if isinstance(candidates, Integral) else list(candidates)
            selection = GaussianMixtureSelection(
                sizes, covariance_type=self.covariance_type, criterion=self.criterion,
                estimator=template, random_state=random_state,
                split_every=template.split_every, verbose=template.verbose)
            with warnings.catch_warnings():
                if capped:  # the default range stops where the data does: nothing to widen
                    warnings.simplefilter("ignore", SelectionBoundaryWarning)
                selection.fit(X)
            self.estimator_, self.selection_ = selection.best_estimator_, selection
        self._set_fitted_from_mixture()
        return self

    def _set_fitted_from_mixture(self):
        """The fitted attributes that mirror ``estimator_``."""
        model = self.estimator_
        self.n_components_ = int(model.n_components)
        self.n_features_in_ = int(model.n_features_in_)
        self.missing_fraction_ = float(getattr(model, "missing_fraction_", 0.0))

    @classmethod
    def from_model(cls, model, *, sample_posterior=False, random_state=None):
        """An imputer over an already fitted mixture (no fit).

        ``transform`` then imputes under ``model`` as it is. The imputer's ``estimator`` is
        ``model`` itself, with its ``n_components`` and ``covariance_type``: ``fit`` (or a
        ``clone``) fits a new mixture of the same hyper-parameters, as scikit-learn's
        estimators always do. Multiple imputation from one fit:
        ``[GaussianMixtureImputer.from_model(model, sample_posterior=True,
        random_state=i).transform(X) for i in range(5)]``.

        Parameters
        ----------
        model : GaussianMixture, BigLearnGaussianMixture or GaussianMixtureSelection
            Fitted (a selection gives its ``best_estimator_``), e.g. loaded with
            :func:`dask_biglearn.load`.
        sample_posterior : bool, default=False
            As the constructor takes it.
        random_state : int, RandomState instance, Generator or None, default=None
            Seeds the draws of ``sample_posterior``.

        Returns
        -------
        imputer : GaussianMixtureImputer
            Fitted: ``estimator_`` is ``model`` (the same object, not a copy).

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If ``model`` is not fitted.
        TypeError
            If ``model`` is not a mixture of this package.
        """
        if not isinstance(model, GaussianMixtureSelection | GaussianMixture
                          | BigLearnGaussianMixture):
            raise TypeError(f"from_model takes a fitted GaussianMixture, "
                            f"BigLearnGaussianMixture or GaussianMixtureSelection of "
                            f"dask_biglearn, got {type(model).__name__}.")
        mixture, selection = _fitted_mixture(model)
        imputer = cls(int(mixture.n_components), covariance_type=mixture.covariance_type,
                      estimator=mixture, sample_posterior=sample_posterior,
                      random_state=random_state)
        imputer.estimator_, imputer.selection_ = mixture, selection
        imputer._set_fitted_from_mixture()
        if hasattr(mixture, "feature_names_in_"):
            imputer.feature_names_in_ = mixture.feature_names_in_
        return imputer

    # ----- imputing ----------------------------------------------------------------------------

    def transform(self, X):
        """``X`` with each missing value imputed under the fitted mixture.

        Parameters
        ----------
        X : array-like, dask.array.Array, xarray.DataArray or Dask DataFrame of shape \
(n_samples, n_features)
            NaN marks a missing value (infinity is refused).

        Returns
        -------
        X_imputed : ndarray, dask.array.Array, xarray.DataArray or Dask DataFrame of shape \
(n_samples, n_features)
            Of ``X``'s kind (see Notes of the class): the observed values unchanged, each
            missing one its conditional mean (with ``sample_posterior``, a draw). Lazy for
            Dask input.
        """
        check_is_fitted(self)
        given = X
        X, lazy = check_array(self, X, reset=False)
        model = self.estimator_
        seed = _draw_seed(self.random_state) if self.sample_posterior else None
        args = (model.weights_, model.means_, model.precisions_cholesky_,
                model.covariance_type, seed)
        block_rows = default_block_rows(self.n_features_in_)
        if lazy:
            result = X.map_blocks(impute_chunk, *args, block_rows=block_rows, dtype=X.dtype,
                                  meta=np.empty((0, 0), dtype=X.dtype))
        else:
            result = impute_block(X, *args, 0, block_rows=block_rows)
        return _like(given, result)


def _like(given, result):
    """``result`` in the container ``given`` came in: a ``DataArray`` (dims, coordinates,
    name and attributes kept), a Dask DataFrame (columns, index and partitions kept), or the
    array itself."""
    if is_data_array(given):
        return given.copy(data=result)
    if hasattr(given, "__dask_graph__") and not is_dask_array(given) and hasattr(
            type(given), "to_dask_array"):
        import dask.dataframe as dd

        return dd.from_dask_array(result, columns=list(given.columns), index=given.index)
    return result
