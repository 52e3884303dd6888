"""Initial parameters, drawn on the driver from small summaries of the data.

``"random"`` needs only per-feature summaries of the data (min, max: the engine's summary
pass), ``"random_from_data"`` ``n_components`` rows fetched by index, and ``"k-means++"`` /
``"kmeans"`` a row sample (one pass; rows chosen by their global index and a seed, see
:mod:`dask_biglearn.kernels.sampling`) on which the seeds are drawn and Lloyd's iterations
run, on the driver. Every random draw comes from the fit's generator, so the start never
depends on the chunking or the number of workers.

With missing values (NaN), the k-means and pursuit starts work on the sample's complete rows
when there are enough, else on all its rows completed by k-POD (:func:`completed`);
``"random_from_data"``'s rows have their missing values replaced by the data's per-feature
mean (``engine.summaries.shift``); rows with no observed value are left out
(:func:`start_rows`). ``"random"`` reads min and max, which are over the observed values.
"""

from __future__ import annotations

import warnings

import numpy as np

from .algebra import floor_eigenvalues, symmetrize
from .covariances import type_entry
from .model import MixtureParams

INIT_METHODS = ("random", "random_from_data", "k-means++", "kmeans", "kmeans-pursuit",
                "auto")

#: Rows of the sample the k-means starts work on: at least this many (all rows of smaller
#: data), and at least :data:`INIT_SAMPLE_ROWS_PER_COMPONENT` per component.
INIT_SAMPLE_ROWS = 20_000
INIT_SAMPLE_ROWS_PER_COMPONENT = 200

#: Lloyd iterations of ``init_params="kmeans"`` (on the sample, from the k-means++ seeds).
KMEANS_ITERATIONS = 20


def random_params(rng, n_components, data_min, data_max) -> MixtureParams:
    """The paper's initialisation, in the units of min-max-scaled data.

    The reference code scales the data to [0, 1] and draws ``mu_k ~ N(0, I)`` with
    ``Sigma_k = I``. Here the same draw is mapped to the data's own units:
    ``mu_k = min + range * z_k`` with ``z_k ~ N(0, I)`` and ``Sigma_k = diag(range^2)``, so
    on [0, 1]-scaled data it *is* the reference initialisation, and at any other scale or
    offset it is the same starting point. The start is broad (covariances as wide as the
    data): EM then contracts the components onto the data. A constant feature gets range 1.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the draws.
    n_components : int
        Number of components ``K``.
    data_min : ndarray of shape (n_features,)
        Per-feature minimum of the data.
    data_max : ndarray of shape (n_features,)
        Per-feature maximum of the data.

    Returns
    -------
    MixtureParams
        Equal weights, means ``min + range * z_k`` and covariances ``diag(range^2)``.
    """
    span = data_max - data_min
    span = np.where(span > 0, span, 1.0)
    z = rng.standard_normal((n_components, span.size))
    means = data_min + span * z
    covariances = np.broadcast_to(np.diag(span**2), (n_components, span.size, span.size)).copy()
    weights = np.full(n_components, 1.0 / n_components)
    return MixtureParams(weights, means, covariances)


def random_from_data_params(rng, n_components, n_samples, data_var, take_rows) -> MixtureParams:
    """Means at ``n_components`` distinct random rows; covariances ``diag(var)``; equal weights.

    ``take_rows`` may leave out rows that cannot be a mean (rows with no observed value):
    the rows it left out are replaced by more distinct rows drawn from ``rng`` (in rounds
    that double, none drawn twice) until there are ``n_components`` of them.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the row indices.
    n_components : int
        Number of components ``K`` (at most the rows ``take_rows`` keeps).
    n_samples : int
        Rows of the data.
    data_var : ndarray of shape (n_features,)
        Per-feature variance of the data (a constant feature gets variance 1).
    take_rows : callable
        ``take_rows(sorted_indices)`` returns those rows as a NumPy array (those it keeps).

    Returns
    -------
    MixtureParams
        The initial parameters.

    Raises
    ------
    ValueError
        If fewer than ``n_components`` rows of the data are kept.
    """
    idx = np.sort(rng.choice(n_samples, size=n_components, replace=False))
    means = np.asarray(take_rows(idx), dtype=np.float64)
    tried, batch = idx, n_components
    while len(means) < n_components:
        if len(tried) >= n_samples:
            raise ValueError(f"init_params='random_from_data' needs {n_components} rows with "
                             f"an observed value; the data has only {len(means)}.")
        batch = min(2 * batch, n_samples - len(tried))
        more = _untried(rng, n_samples, tried, batch)
        tried = np.union1d(tried, more)
        means = np.concatenate([means, np.asarray(take_rows(more), dtype=np.float64)])
    means = means[:n_components]
    var = np.where(data_var > 0, data_var, 1.0)
    covariances = np.broadcast_to(np.diag(var), (n_components, var.size, var.size)).copy()
    weights = np.full(n_components, 1.0 / n_components)
    return MixtureParams(weights, means, covariances)


def _untried(rng, n_samples, tried, size):
    """``size`` distinct sorted row indices drawn from ``rng``, none of them in ``tried``
    (sorted): by rejection while most rows are untried, else among the untried rows."""
    if 2 * len(tried) >= n_samples:
        return np.sort(rng.choice(np.setdiff1d(np.arange(n_samples), tried), size=size,
                                  replace=False))
    found = np.empty(0, dtype=np.int64)
    while len(found) < size:
        draw = np.setdiff1d(rng.integers(n_samples, size=2 * (size - len(found))), tried)
        found = np.union1d(found, draw)
    return np.sort(rng.choice(found, size=size, replace=False))


def init_sample_size(n_samples: int, n_components: int) -> int:
    """Rows of the sample of the k-means starts.

    At least :data:`INIT_SAMPLE_ROWS` and :data:`INIT_SAMPLE_ROWS_PER_COMPONENT` per
    component, and all rows of data that small.

    Parameters
    ----------
    n_samples : int
        Rows of the data.
    n_components : int
        Number of components ``K``.

    Returns
    -------
    int
        Rows of the sample.
    """
    return int(min(n_samples, max(INIT_SAMPLE_ROWS, INIT_SAMPLE_ROWS_PER_COMPONENT * n_components)))


def cell_params(sample, labels, means, covariance_floor) -> MixtureParams:
    """A mixture from a partition of ``sample`` into cells, one a component.

    Weights are the cells' fractions (an empty cell counts as one row), covariances the cells'
    own (about their means) with the eigenvalue floor; a cell with fewer than ``D + 1`` rows
    cannot estimate one and gets the pooled within-cell covariance instead.

    Parameters
    ----------
    sample : ndarray of shape (n_samples, n_features)
        Rows of the data.
    labels : ndarray of shape (n_samples,)
        Cell (component) of each row, in ``0 .. n_components - 1``.
    means : ndarray of shape (n_components, n_features)
        Means of the components.
    covariance_floor : float
        Smallest eigenvalue allowed in the covariances.

    Returns
    -------
    MixtureParams
        The mixture of the cells.
    """
    n, d = sample.shape
    k = means.shape[0]
    counts = np.bincount(labels, minlength=k)
    covariances = np.empty((k, d, d))
    pooled = np.zeros((d, d))
    for j in range(k):
        cell = sample[labels == j]
        if len(cell):
            centred = cell - cell.mean(axis=0)
            covariances[j] = centred.T @ centred / len(cell)
            pooled += centred.T @ centred
    pooled /= n
    if not np.any(pooled):
        pooled = np.diag(np.where(sample.var(axis=0) > 0, sample.var(axis=0), 1.0))
    covariances[counts < d + 1] = pooled
    weights = np.maximum(counts, 1) / np.maximum(counts, 1).sum()
    return MixtureParams(weights, np.asarray(means, dtype=np.float64),
                         floor_eigenvalues(covariances, covariance_floor))


def kmeans_params(rng, n_components, sample, covariance_floor, lloyd_iterations=0):
    """A k-means++ (or k-means) start on a row sample.

    Seeds drawn from ``sample`` as scikit-learn's ``kmeans_plusplus`` draws them, then
    ``lloyd_iterations`` of Lloyd's algorithm (0: the seeds themselves are the means), and
    covariances and weights from the cells of the nearest mean (:func:`cell_params`).

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the seed of scikit-learn's draws.
    n_components : int
        Number of components ``K``.
    sample : ndarray of shape (n_samples, n_features)
        Row sample of the data.
    covariance_floor : float
        Smallest eigenvalue allowed in the covariances.
    lloyd_iterations : int, default=0
        Lloyd iterations after the seeding.

    Returns
    -------
    MixtureParams
        The initial parameters.
    """
    means, labels = kmeans_cells(rng, n_components, sample, lloyd_iterations)
    return cell_params(sample, labels, means, covariance_floor)


def kmeans_cells(rng, n_components, rows, lloyd_iterations=0):
    """k-means++ seeds of ``rows`` (as scikit-learn's ``kmeans_plusplus`` draws them), then
    ``lloyd_iterations`` of Lloyd's algorithm, and the cell of every row.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the seed of scikit-learn's draws.
    n_components : int
        Number of cells ``K``.
    rows : ndarray of shape (n_rows, n_dims)
    lloyd_iterations : int, default=0
        Lloyd iterations after the seeding (0: the seeds are the centres).

    Returns
    -------
    centres : ndarray of shape (n_components, n_dims)
    labels : ndarray of shape (n_rows,)
        The cell (nearest centre) of every row.
    """
    from sklearn.cluster import KMeans, kmeans_plusplus
    from sklearn.exceptions import ConvergenceWarning

    seed = int(rng.integers(2**31 - 1))
    centres, _ = kmeans_plusplus(rows, n_components, random_state=seed)
    if not lloyd_iterations:
        return centres, _nearest(rows, centres)
    with warnings.catch_warnings():
        # Fewer distinct rows than components: empty cells are handled by cell_params, and
        # a fit of data that degenerate warns once, at its end.
        warnings.filterwarnings("ignore", "Number of distinct clusters", ConvergenceWarning)
        km = KMeans(n_components, init=centres, n_init=1, max_iter=lloyd_iterations,
                    random_state=seed).fit(rows)
    return km.cluster_centers_, km.labels_


#: Excess kurtosis below which a whitened independent component counts as multimodal (a
#: Gaussian's is 0, within about 0.04 on the start's sample; two equal, well separated
#: clusters give -2).
PLATYKURTIC = -0.2


#: Rows the unmixing of :func:`pursuit_directions` is learnt on at most (FastICA's cost grows
#: with them; its directions do not need more): every ``ceil(n / PURSUIT_ROWS)``-th row.
PURSUIT_ROWS = 5000


def pursuit_directions(sample, seed: int) -> np.ndarray:
    """The sample in its independent directions that look multimodal, standardised.

    Whitens the sample, finds its independent components (scikit-learn's ``FastICA``, learnt
    on at most :data:`PURSUIT_ROWS` evenly spaced rows of it) and keeps those that are
    platykurtic: excess kurtosis below :data:`PLATYKURTIC` and at least half the lowest (a
    direction that separates clusters is multimodal; the sample's noise makes some Gaussian
    directions look a little platykurtic too, more of them the more dimensions), or the
    single most non-Gaussian one if none is.

    Parameters
    ----------
    sample : ndarray of shape (n_samples, n_features)
        Row sample of the data.
    seed : int
        Seed of ``FastICA``.

    Returns
    -------
    sources : ndarray of shape (n_samples, n_directions) or None
        The sample's coordinates along the kept directions (mean 0, variance 1); None when
        the sample has no spread.
    """
    from sklearn.decomposition import FastICA
    from sklearn.exceptions import ConvergenceWarning

    centred = sample - sample.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    if not s.size or not s[0] > 0:
        return None
    white = u[:, s > s[0] * 1e-8] * np.sqrt(len(sample))
    step = -(-len(white) // PURSUIT_ROWS)  # the unmixing is learnt on evenly spaced rows
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        ica = FastICA(whiten=False, random_state=seed, max_iter=400, tol=1e-4)
        ica.fit(white[::step])
    sources = white @ ica.components_.T
    sources = (sources - sources.mean(axis=0)) / np.maximum(sources.std(axis=0), 1e-300)
    kurtosis = (sources**4).mean(axis=0) - 3.0
    chosen = np.flatnonzero(kurtosis < min(PLATYKURTIC, 0.5 * kurtosis.min()))
    if chosen.size == 0:
        chosen = np.array([int(np.argmax(np.abs(kurtosis)))])
    return sources[:, chosen]


def pursuit_params(rng, n_components, sample, covariance_floor, sources=None,
                   lloyd_iterations=KMEANS_ITERATIONS) -> MixtureParams:
    """A k-means start in the directions where the data looks least like one Gaussian.

    Euclidean k-means fails where clusters are separated along a short axis and stretched
    along a long one (parallel cigars): it cuts the long axis. Whitening the data alone does
    not help once there are many uninformative directions. This start runs k-means (seeded
    from ``rng``) on :func:`pursuit_directions` of the sample and takes the components from
    the cells in the data's own space (:func:`cell_params`).

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the k-means++ seed (and of the ``FastICA`` seed when ``sources`` is None).
    n_components : int
        Number of components ``K``.
    sample : ndarray of shape (n_samples, n_features)
        Row sample of the data.
    covariance_floor : float
        Smallest eigenvalue allowed in the covariances.
    sources : ndarray of shape (n_samples, n_directions), optional
        :func:`pursuit_directions` of ``sample``, computed once for all the starts of a fit;
        computed here if None.
    lloyd_iterations : int, default=KMEANS_ITERATIONS
        Lloyd iterations after the k-means++ seeding.

    Returns
    -------
    MixtureParams
        The initial parameters.
    """
    if sources is None:
        sources = pursuit_directions(sample, int(rng.integers(2**31 - 1)))
    if sources is None:  # no spread at all: nothing to pursue
        return kmeans_params(rng, n_components, sample, covariance_floor, lloyd_iterations)
    _, labels = kmeans_cells(rng, n_components, sources, lloyd_iterations)
    counts = np.bincount(labels, minlength=n_components)
    sums = np.zeros((n_components, sample.shape[1]))
    np.add.at(sums, labels, sample)
    means = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None],
                     sample[rng.choice(len(sample), n_components)])
    return cell_params(sample, labels, means, covariance_floor)


def _nearest(rows, means):
    """The index of the nearest mean of every row."""
    sq = (rows**2).sum(axis=1)[:, None] - 2 * rows @ means.T + (means**2).sum(axis=1)
    return sq.argmin(axis=1)


SAMPLE_STARTS = ("k-means++", "kmeans", "kmeans-pursuit", "auto")


def one_given_start(weights, means, precisions) -> dict:
    """The hyper-parameters of a fit whose one start is a given model (a warm start).

    ``init_params="random"`` (drawn from the data's summary, with no pass) wholly replaced by
    the given weights, means and precisions (:func:`apply_user_init`).

    Parameters
    ----------
    weights : ndarray of shape (n_components,)
    means : ndarray of shape (n_components, n_features)
    precisions : ndarray
        Of scikit-learn's shape for the fit's covariance type.

    Returns
    -------
    params : dict
        ``init_params``, ``n_init`` and the three ``*_init`` arrays, by name (the names of
        the estimators' hyper-parameters and of the fit plan's fields alike).
    """
    return {"init_params": "random", "n_init": 1, "weights_init": weights,
            "means_init": means, "precisions_init": precisions}


#: ``init_params="auto"``: besides its ``n_init`` k-means starts, a fit makes one
#: ``"kmeans-pursuit"`` start for every this many of them (at least one).
AUTO_PURSUIT_EVERY = 3


def start_kinds(init_params: str, n_init: int) -> list[str]:
    """The start of each start of a fit with ``init_params`` and ``n_init``.

    ``"auto"`` with several starts gives ``n_init`` ``"kmeans"`` starts (Euclidean), then
    ``max(1, n_init // AUTO_PURSUIT_EVERY)`` more ``"kmeans-pursuit"`` starts (k-means in the
    multimodal independent directions), so that a fit has starts for round clusters and
    starts for clusters that Euclidean k-means cuts the wrong way; the plain EM of every
    start then competes on the joint log-likelihood. Its first ``n_init`` starts are those of
    ``"kmeans"`` (each start's generator is a child of the fit's, by index). With one start,
    ``"auto"`` is ``"kmeans"``.

    Parameters
    ----------
    init_params : str
        One of :data:`INIT_METHODS`.
    n_init : int
        The estimator's ``n_init``.

    Returns
    -------
    kinds : list of str
        One start (other than ``"auto"``) per start of the fit.
    """
    if init_params != "auto":
        return [init_params] * n_init
    if n_init == 1:
        return ["kmeans"]
    return ["kmeans"] * n_init + ["kmeans-pursuit"] * max(1, n_init // AUTO_PURSUIT_EVERY)


def init_sample(init_params, rng, n_components, engine):
    """The row sample a start works on, or None for the starts that need none.

    One pass, its seed drawn from ``rng``. All the starts of one fit share it.

    Parameters
    ----------
    init_params : str
        The start, one of :data:`INIT_METHODS`.
    rng : numpy.random.Generator
        Source of the sample's seed.
    n_components : int
        Number of components ``K``.
    engine : object
        The data's engine (its ``summaries`` and ``take_sample``).

    Returns
    -------
    ndarray of shape (n_sample_rows, n_features) or None
        The sample, for the k-means starts (:func:`start_rows` of the rows drawn: of
        incomplete data, the complete rows, or all rows completed by k-POD). Of weighted
        data (``sample_weight``), its rows of positive weight, without their weights: the
        starts see each sampled row once (the EM passes weigh them); the sample is then
        sized so as to hold about as many rows of positive weight (with an observed value)
        as complete, unweighted data would give (``DataSummaries.rows_holding``).
    """
    if init_params not in SAMPLE_STARTS:
        return None
    summaries = engine.summaries
    size = summaries.rows_holding(init_sample_size(summaries.n_positive_rows, n_components))
    seed = int(rng.integers(2**63 - 1))
    return start_rows(engine.take_sample(size, seed), engine, n_components, seed)


def unweighted(rows, engine):
    """Rows of a weighted engine without their weight column (those of positive weight).

    Parameters
    ----------
    rows : ndarray of shape (n_rows, n_features + 1) or (n_rows, n_features)
        Rows the engine gave (with their weights, last, when it is weighted).
    engine : object
        Its ``weighted`` says whether the rows carry their weights.

    Returns
    -------
    ndarray of shape (n_kept, n_features)
        The rows of positive weight, without the weights (all rows of an unweighted engine).
    """
    if not getattr(engine, "weighted", False):
        return rows
    return rows[rows[:, -1] > 0, :-1]


#: Complete rows per component, and in all, from which a start's sample of incomplete data is
#: its complete rows alone (fewer: all its rows, completed by k-means of the observed values).
#: Measured: on 50 clusters in 4-D at 20% missing (8,000 complete rows), the complete rows
#: give the better starts (ARI 0.997-0.999 against 0.973-0.997); on parallel cigars in 10-D
#: (300 complete rows of 3,000), the pursuit start needs all the rows (ARI 0.41-0.48 in 4
#: seeds of 6, against 0.99 in all).
COMPLETE_ROWS_PER_COMPONENT = 20
COMPLETE_ROWS_AT_LEAST = 2000

#: Lloyd rounds, at most, of the k-means of observed values that completes a start's sample
#: of incomplete rows.
OBSERVED_KMEANS_ROUNDS = 10


def completed(rows, shift, n_components=None, seed=0):
    """Rows with no missing value (NaN) for the starts: the complete ones, or all of them
    with their missing values filled in; rows with no observed value are left out.

    Without ``n_components``, a missing value is its column's mean. With it, the rows are
    the complete ones alone when they number at least :data:`COMPLETE_ROWS_PER_COMPONENT`
    per component and :data:`COMPLETE_ROWS_AT_LEAST` in all; else a missing value is its row's centre there after k-means of the
    observed values (rows assigned by their distances over their observed coordinates,
    centres the means of their rows' observed values; seeded by k-means of the complete rows
    when there are 5 per component, as k-POD, Chi, Chi and Baraniuk 2016, fills them). A
    column's mean puts an incomplete row between the clusters, where the k-means starts then
    see it: measured on 50 clusters in 4-D with 30% of the values missing, k-means starts on
    mean-filled rows end with 30 of the 50 modes after EM, on the complete rows all 50
    (``benchmarks/README.md``).

    Parameters
    ----------
    rows : ndarray of shape (n_rows, n_features)
    shift : ndarray of shape (n_features,)
        The data's per-feature mean (``DataSummaries.shift``).
    n_components : int, optional
        The components of the starts (None: the columns' means only).
    seed : int, default=0
        Seed of k-POD's k-means.

    Returns
    -------
    ndarray of shape (n_kept, n_features)
        ``rows`` itself when none has a missing value; else a new float64 array.
    """
    missing = np.isnan(rows)
    if not missing.any():
        return rows
    kept = ~missing.all(axis=1)
    missing = missing[kept]
    complete = ~missing.any(axis=1)
    if n_components is not None and complete.sum() >= max(
            COMPLETE_ROWS_PER_COMPONENT * n_components, COMPLETE_ROWS_AT_LEAST):
        return np.asarray(rows[kept][complete], dtype=np.float64)
    filled = np.where(missing, np.asarray(shift, dtype=np.float64), rows[kept])
    if n_components is None or n_components < 2 or len(filled) <= n_components:
        return filled
    return _kmeans_of_observed(filled, missing, n_components, seed)


def _kmeans_of_observed(filled, missing, n_components, seed):
    """k-means of the observed values (see :func:`completed`): rows assigned by their
    distances to the centres over their observed coordinates, centres the means of their
    rows' observed values; then each missing value is its row's centre there."""
    from sklearn.cluster import KMeans, kmeans_plusplus

    observed = (~missing).astype(np.float64)
    values = np.where(missing, 0.0, filled)
    squares = observed * values * values
    complete = ~missing.any(axis=1)
    if complete.sum() >= 5 * n_components:  # seeds among the complete rows, and their cells
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            centres = KMeans(n_components, n_init=1, max_iter=KMEANS_ITERATIONS,
                             random_state=seed % 2**31).fit(filled[complete]).cluster_centers_
    else:
        centres, _ = kmeans_plusplus(filled, n_components, random_state=seed % 2**31)
    labels = None
    for _ in range(OBSERVED_KMEANS_ROUNDS):
        distances = (squares.sum(axis=1, keepdims=True) - 2.0 * values @ centres.T
                     + observed @ (centres * centres).T)
        new = distances.argmin(axis=1)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        one_hot = np.zeros((len(labels), n_components))
        one_hot[np.arange(len(labels)), labels] = 1.0
        counts = one_hot.T @ observed  # (K, D): observed values of each cell and column
        sums = one_hot.T @ values
        centres = np.where(counts > 0, sums / np.maximum(counts, 1.0), centres)
    return np.where(missing, centres[labels], filled)


def start_rows(rows, engine, n_components=None, seed=0):
    """The rows the starts, the moves and the re-seeding work on, from rows an engine gave:
    those of positive weight, without their weight (:func:`unweighted`), and of incomplete
    data the complete ones, or all with their missing values filled in
    (:func:`completed`).

    Parameters
    ----------
    rows : ndarray of shape (n_rows, n_features + 1) or (n_rows, n_features)
        Rows the engine gave (with their weights, last, when it is weighted).
    engine : object
        Its ``weighted`` and ``summaries`` (``shift``, and ``missing``).
    n_components : int, optional
        k-POD's cells (see :func:`completed`).
    seed : int, default=0
        k-POD's seed.

    Returns
    -------
    ndarray of shape (n_kept, n_features)
        With no NaN.
    """
    rows = unweighted(rows, engine)
    if not engine.summaries.missing:
        return rows
    return completed(rows, engine.summaries.shift, n_components, seed)


def initial_params(init_params, rng, n_components, engine, covariance_floor,
                   sample=None, sources=None) -> MixtureParams:
    """Draw the ``init_params`` start from ``rng`` for the data behind ``engine``.

    Parameters
    ----------
    init_params : {"random", "random_from_data", "k-means++", "kmeans", "kmeans-pursuit"}
        The start.
    rng : numpy.random.Generator
        Source of every draw.
    n_components : int
        Number of components ``K``.
    engine : object
        The data's engine (its ``summaries``, ``take_rows`` and ``take_sample``).
    covariance_floor : float
        Smallest eigenvalue allowed in the covariances.
    sample : ndarray of shape (n_sample_rows, n_features), optional
        The row sample of the k-means starts (:func:`init_sample`, taken here if not given).
    sources : ndarray of shape (n_sample_rows, n_directions), optional
        ``"kmeans-pursuit"``: :func:`pursuit_directions` of the sample, shared by the starts
        of a fit (computed here if not given).

    Returns
    -------
    MixtureParams
        The initial parameters.
    """
    summaries = engine.summaries
    if sample is None and init_params in SAMPLE_STARTS:
        sample = init_sample(init_params, rng, n_components, engine)
    starts = {
        "random": lambda: random_params(rng, n_components, summaries.min, summaries.max),
        "random_from_data": lambda: random_from_data_params(
            rng, n_components, summaries.n_samples, summaries.var,
            lambda index: _observed_rows(engine, index)),
        "k-means++": lambda: kmeans_params(rng, n_components, sample, covariance_floor),
        "kmeans": lambda: kmeans_params(rng, n_components, sample, covariance_floor,
                                        KMEANS_ITERATIONS),
        "kmeans-pursuit": lambda: pursuit_params(rng, n_components, sample, covariance_floor,
                                                 sources),
    }
    return starts[init_params]()


def _observed_rows(engine, index):
    """``"random_from_data"``'s rows: those of ``index`` (without a weight column), a missing
    value replaced by its column's mean, rows with no observed value left out."""
    rows = np.asarray(engine.take_rows(index))[:, :engine.n_features]
    if not engine.summaries.missing:
        return rows
    return completed(rows, engine.summaries.shift)


def check_user_init(name, value, shape):
    """Validate one of ``weights_init`` / ``means_init`` / ``precisions_init``.

    The messages are scikit-learn's (``"The parameter 'weights' should have the shape of
    ..."``), after the name of the hyper-parameter.

    Parameters
    ----------
    name : str
        The parameter's name in scikit-learn's messages: ``"weights"``, ``"means"`` or
        ``"<covariance_type> precision"``.
    value : array-like
        The value given.
    shape : tuple of int
        The shape it must have.

    Returns
    -------
    ndarray of shape ``shape``
        The value as float64.

    Raises
    ------
    ValueError
        If the shape is wrong or a value is NaN or infinite.
    """
    argument = _INIT_ARGUMENTS.get(name, "precisions_init")
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"{argument}: The parameter '{name}' should have the shape of "
                         f"{shape}, but got {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{argument}: The parameter '{name}' contains NaN or inf.")
    return arr


_INIT_ARGUMENTS = {"weights": "weights_init", "means": "means_init"}


def full_precisions(value, covariance_type: str, n_components: int,
                    n_features: int) -> np.ndarray:
    """``precisions_init`` of a covariance type, checked, as ``K`` full matrices.

    Parameters
    ----------
    value : array-like
        scikit-learn's shape for the type: ``(K, D, D)`` full, ``(D, D)`` tied, ``(K, D)``
        diag, ``(K,)`` spherical.
    covariance_type : {"full", "tied", "diag", "spherical"}
    n_components, n_features : int

    Returns
    -------
    ndarray of shape (n_components, n_features, n_features)

    Raises
    ------
    ValueError
        If the shape is wrong, a value is NaN or infinite, or a diagonal one is not
        positive.
    """
    entry = type_entry(covariance_type)
    prec = check_user_init(f"{covariance_type} precision", value,
                           entry.shape(n_components, n_features))
    if entry.diagonal and np.any(prec <= 0):
        raise ValueError(f"precisions_init: '{covariance_type} precision' should be "
                         f"positive.")
    return entry.to_full(prec, n_components, n_features)


def apply_user_init(params: MixtureParams, *, weights_init, means_init, precisions_init,
                    covariance_floor, covariance_type="full") -> MixtureParams:
    """Replace parts of ``params`` by user-supplied initial values (scikit-learn semantics).

    Parameters
    ----------
    params : MixtureParams
        The drawn start.
    weights_init : array-like of shape (n_components,) or None
        Initial weights: non-negative, summing to 1.
    means_init : array-like of shape (n_components, n_features) or None
        Initial means.
    precisions_init : array-like or None
        Initial precisions (inverse covariances): symmetric positive definite, of
        scikit-learn's shape for ``covariance_type`` (:func:`full_precisions`).
    covariance_floor : float
        Smallest eigenvalue allowed in the covariances.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        The shape of ``precisions_init``.

    Returns
    -------
    MixtureParams
        The start with the given parts replaced, covariances floored (as full matrices:
        the fit projects them onto the type).

    Raises
    ------
    ValueError
        If a given value is malformed.
    """
    k, d = params.means.shape
    weights, means, covariances = params.weights, params.means, params.covariances
    if weights_init is not None:
        weights = check_user_init("weights", weights_init, (k,))
        if np.any(weights < 0) or np.any(weights > 1):
            # scikit-learn's words, which swap the minimum and the maximum (kept for
            # drop-in callers that match on them), then the values named right.
            low, high = weights.min(), weights.max()
            raise ValueError(f"weights_init: The parameter 'weights' should be in the range "
                             f"[0, 1], but got max value {low:.5f}, min value {high:.5f} "
                             f"(scikit-learn's wording, which swaps them: the smallest weight "
                             f"is {low:.5f}, the largest {high:.5f}).")
        if abs(weights.sum() - 1.0) > 1e-6:
            raise ValueError(f"weights_init: The parameter 'weights' should be normalized, "
                             f"but got sum(weights) = {weights.sum():.5f}.")
        weights = weights / weights.sum()
    if means_init is not None:
        means = check_user_init("means", means_init, (k, d))
    if precisions_init is not None:
        prec = full_precisions(precisions_init, covariance_type, k, d)
        not_definite = (f"precisions_init: '{covariance_type} precision' should be "
                        f"symmetric, positive-definite.")
        if not np.allclose(prec, np.swapaxes(prec, 1, 2), rtol=1e-8, atol=1e-12):
            raise ValueError(not_definite)
        try:
            chol = np.linalg.cholesky(prec)
        except np.linalg.LinAlgError:
            raise ValueError(not_definite) from None
        eye = np.broadcast_to(np.eye(d), prec.shape)
        inv_chol = np.linalg.solve(chol, eye)  # L^{-1}; Sigma = L^{-T} L^{-1}
        covariances = symmetrize(np.swapaxes(inv_chol, 1, 2) @ inv_chol)
    covariances = floor_eigenvalues(covariances, covariance_floor)
    return MixtureParams(weights, means, covariances)
