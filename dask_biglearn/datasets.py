"""Data sets: the paper's 25-component simulation and the UCI sets it clusters.

The UCI sets (pendigits with its official train/test split, vehicle) ship with the package as
``.npz`` files (``labels`` and ``features``, loaded with ``allow_pickle=False``), converted from
the ``.mat`` files of the paper's authors with every bit of the features kept.
"""

from __future__ import annotations

from importlib.resources import files

import numpy as np
from scipy.special import logsumexp

__all__ = [
    "count_modes_found",
    "grid25_log_density",
    "grid25_params",
    "lazy_mixture",
    "load_pendigits",
    "load_vehicle",
    "make_grid25",
    "minmax_scale",
    "mixture_log_density",
    "modes_found",
    "parallel_cigars",
    "random_mixture",
    "sample_mixture",
    "stratified_split",
]

GRID25_VARIANCE = 0.1


def grid25_params():
    """True parameters of the simulation: 25 equal components on a 5 x 5 grid in 2-D.

    Means ``2 (i, j) - 6`` for ``i, j = 1..5``, covariances ``0.1 I``.

    Returns
    -------
    weights : ndarray of shape (25,)
        Equal weights.
    means : ndarray of shape (25, 2)
        The grid points.
    covariances : ndarray of shape (25, 2, 2)
        ``0.1 I`` each.
    """
    grid = np.arange(1, 6) * 2.0 - 6.0
    means = np.array([(a, b) for a in grid for b in grid])
    covariances = np.broadcast_to(GRID25_VARIANCE * np.eye(2), (25, 2, 2)).copy()
    return np.full(25, 1 / 25), means, covariances


def make_grid25(n_samples, random_state=None):
    """Draw ``n_samples`` points of the 25-component grid mixture.

    Parameters
    ----------
    n_samples : int
        Number of points.
    random_state : int, numpy.random.Generator or None, default=None
        Seed of :func:`numpy.random.default_rng`.

    Returns
    -------
    X : ndarray of shape (n_samples, 2)
        The points.
    labels : ndarray of shape (n_samples,)
        The component each point was drawn from.
    """
    rng = np.random.default_rng(random_state)
    weights, means, _ = grid25_params()
    labels = rng.choice(25, size=n_samples, p=weights)
    X = means[labels] + np.sqrt(GRID25_VARIANCE) * rng.standard_normal((n_samples, 2))
    return X, labels


def grid25_log_density(X):
    """Log-density ``log q(x)`` of the true grid mixture.

    Parameters
    ----------
    X : ndarray of shape (n_samples, 2)
        Points.

    Returns
    -------
    ndarray of shape (n_samples,)
        ``log q(x)`` of each point.
    """
    weights, means, _ = grid25_params()
    sq = ((X[:, None, :] - means[None]) ** 2).sum(axis=2)
    log_comp = -0.5 * sq / GRID25_VARIANCE - np.log(2 * np.pi * GRID25_VARIANCE)
    return logsumexp(log_comp + np.log(weights), axis=1)


def count_modes_found(true_means, means, weights, *, radius=0.5, min_weight=0.02):
    """How many true means have a fitted component near them.

    A true mean is found when a fitted component with weight above ``min_weight`` has its
    mean within (Euclidean) distance ``radius`` of it.

    Parameters
    ----------
    true_means : ndarray of shape (n_true_components, n_features)
        Means of the true mixture.
    means : array-like of shape (n_components, n_features)
        Fitted means.
    weights : array-like of shape (n_components,)
        Fitted weights.
    radius : float, default=0.5
        Largest distance between a true mean and a fitted one.
    min_weight : float, default=0.02
        Fitted components of this weight or less are ignored.

    Returns
    -------
    int
        Number of true means found.
    """
    ok = np.asarray(weights) > min_weight
    if not np.any(ok):
        return 0
    dist = np.linalg.norm(true_means[:, None, :] - np.asarray(means)[None, ok, :], axis=2)
    return int((dist.min(axis=1) <= radius).sum())


def random_mixture(n_features, n_components, *, separation=2.0, anisotropy=1.0,
                   weight_ratio=1.0, random_state=None):
    """Parameters of a random Gaussian mixture with a known separation.

    Means are uniform in the unit cube; every covariance is a random rotation of
    ``lambda_max * geomspace(1, 1 / anisotropy, D)``, with ``lambda_max`` set so that the two
    closest means are exactly ``separation``-separated in Dasgupta's sense,
    ``|mu_i - mu_j| >= c sqrt(D lambda_max)`` (all other pairs are farther apart). Weights
    fall geometrically from the largest to ``1 / weight_ratio`` of it, in random order.

    Parameters
    ----------
    n_features : int
        Dimension ``D``.
    n_components : int
        Number of components.
    separation : float, default=2.0
        Dasgupta separation ``c`` of the two closest means.
    anisotropy : float, default=1.0
        Ratio of the largest to the smallest eigenvalue of every covariance.
    weight_ratio : float, default=1.0
        Ratio of the largest to the smallest weight.
    random_state : int, numpy.random.Generator or None, default=None
        Seed of :func:`numpy.random.default_rng`.

    Returns
    -------
    weights : ndarray of shape (n_components,)
        Mixture weights, summing to 1.
    means : ndarray of shape (n_components, n_features)
        Component means.
    covariances : ndarray of shape (n_components, n_features, n_features)
        Component covariances.
    """
    rng = np.random.default_rng(random_state)
    means = rng.uniform(size=(n_components, n_features))
    if n_components > 1:
        gaps = np.linalg.norm(means[:, None] - means[None], axis=2)
        closest = gaps[np.triu_indices(n_components, 1)].min()
    else:
        closest = 1.0
    lambda_max = (closest / (separation * np.sqrt(n_features))) ** 2
    spectrum = lambda_max * np.geomspace(1.0, 1.0 / anisotropy, n_features)
    covariances = np.empty((n_components, n_features, n_features))
    for k in range(n_components):
        Q, R = np.linalg.qr(rng.standard_normal((n_features, n_features)))
        Q = Q * np.sign(np.diagonal(R))
        covariances[k] = (Q * spectrum) @ Q.T
    weights = np.geomspace(1.0, 1.0 / weight_ratio, n_components)
    weights = rng.permutation(weights / weights.sum())
    return weights, means, covariances


def parallel_cigars(n_features, n_components, *, separation=6.0, stretch=20.0,
                    whiten=False, random_state=None):
    """Parameters of a mixture of parallel cigars: the clusters that defeat k-means starts.

    The components lie side by side along the first axis, ``separation`` within-cluster
    standard deviations apart, and are stretched ``stretch`` times along the second axis (an
    axis that tells nothing about the clusters); every other axis is unit noise. Euclidean
    k-means splits along the long axis, so EM started from it (scikit-learn's
    ``GaussianMixture``, with any ``n_init``) finds no cluster (scikit-learn issue #34842).
    With ``whiten``, the whole mixture is mapped to mean 0 and identity covariance, so that
    whitening the data, the usual fix, changes nothing either (the issue's lifted case); a
    random rotation then hides the axes.

    Parameters
    ----------
    n_features : int
        Dimension ``D`` (at least 2).
    n_components : int
        Number of cigars.
    separation : float, default=6.0
        Distance between neighbouring means along the first axis, in within-cluster standard
        deviations (6: the clusters barely overlap, so the true labels are recoverable).
    stretch : float, default=20.0
        Standard deviation along the second axis.
    whiten : bool, default=False
        Map the mixture to mean 0 and identity covariance, then rotate it at random.
    random_state : int, numpy.random.Generator or None, default=None
        Seed of the rotation (the rest is deterministic).

    Returns
    -------
    weights : ndarray of shape (n_components,)
        Equal weights.
    means : ndarray of shape (n_components, n_features)
    covariances : ndarray of shape (n_components, n_features, n_features)
    """
    if n_features < 2:
        raise ValueError(f"parallel cigars need n_features >= 2, got {n_features}.")
    k, d = int(n_components), int(n_features)
    weights = np.full(k, 1.0 / k)
    means = np.zeros((k, d))
    means[:, 0] = separation * (np.arange(k) - (k - 1) / 2)
    scale = np.ones(d)
    scale[1] = stretch
    covariances = np.broadcast_to(np.diag(scale**2), (k, d, d)).copy()
    if whiten:
        centre = weights @ means
        total = np.einsum("k,kij->ij", weights, covariances) + np.einsum(
            "k,ki,kj->ij", weights, means - centre, means - centre)
        eigenvalues, eigenvectors = np.linalg.eigh(total)
        rotation, _ = np.linalg.qr(np.random.default_rng(random_state).normal(size=(d, d)))
        A = rotation @ (eigenvectors / np.sqrt(eigenvalues)).T
        means = (means - centre) @ A.T
        covariances = A @ covariances @ A.T
    return weights, means, 0.5 * (covariances + np.swapaxes(covariances, 1, 2))


def sample_mixture(weights, means, covariances, n_samples, random_state=None):
    """Draw ``n_samples`` rows of a Gaussian mixture.

    Parameters
    ----------
    weights : ndarray of shape (n_components,)
        Mixture weights, summing to 1.
    means : ndarray of shape (n_components, n_features)
        Component means.
    covariances : ndarray of shape (n_components, n_features, n_features)
        Component covariances.
    n_samples : int
        Number of rows.
    random_state : int, numpy.random.Generator or None, default=None
        Seed of :func:`numpy.random.default_rng`.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        The rows.
    labels : ndarray of shape (n_samples,)
        The component each row was drawn from.
    """
    rng = np.random.default_rng(random_state)
    labels = rng.choice(len(weights), size=n_samples, p=weights)
    chol = np.linalg.cholesky(covariances)
    z = rng.standard_normal((n_samples, means.shape[1]))
    return means[labels] + np.einsum("nij,nj->ni", chol[labels], z), labels


def mixture_block(weights, means, covariances, n_rows, seed, block_index, dtype=np.float64):
    """Rows of block ``block_index`` of a lazily drawn mixture sample.

    Drawn from the generator seeded by ``(seed, block_index)``, component by component (never
    an ``n x D x D`` array).

    Parameters
    ----------
    weights : ndarray of shape (n_components,)
        Mixture weights, summing to 1.
    means : ndarray of shape (n_components, n_features)
        Component means.
    covariances : ndarray of shape (n_components, n_features, n_features)
        Component covariances.
    n_rows : int
        Rows of the block.
    seed : int
        Seed of the whole sample.
    block_index : int
        Index of the block in the sample.
    dtype : data-type, default=numpy.float64
        Dtype of ``X``.

    Returns
    -------
    X : ndarray of shape (n_rows, n_features)
        The rows.
    labels : ndarray of shape (n_rows,)
        The component each row was drawn from.
    """
    rng = np.random.default_rng((int(seed), int(block_index)))
    labels = rng.choice(len(weights), size=int(n_rows), p=weights)
    z = rng.standard_normal((int(n_rows), means.shape[1]))
    X = np.empty((int(n_rows), means.shape[1]), dtype=dtype)
    chol = np.linalg.cholesky(covariances)
    for k in range(len(weights)):
        rows = labels == k
        X[rows] = means[k] + z[rows] @ chol[k].T
    return X, labels


def lazy_mixture(weights, means, covariances, n_samples, chunk_rows, seed=0,
                 dtype=np.float64):
    """A sample of a Gaussian mixture as Dask arrays, drawn chunk by chunk when computed.

    Each chunk of ``chunk_rows`` rows is drawn (:func:`mixture_block`) from a generator seeded
    by ``(seed, chunk index)``: data of any size, never whole in one place, the same whatever
    computes it.

    Parameters
    ----------
    weights : ndarray of shape (n_components,)
        Mixture weights, summing to 1.
    means : ndarray of shape (n_components, n_features)
        Component means.
    covariances : ndarray of shape (n_components, n_features, n_features)
        Component covariances.
    n_samples : int
        Rows of the sample.
    chunk_rows : int
        Rows per chunk (the last chunk may be smaller).
    seed : int, default=0
        Seed of the sample.
    dtype : data-type, default=numpy.float64
        Dtype of ``X``.

    Returns
    -------
    X : dask.array.Array of shape (n_samples, n_features)
        The rows.
    labels : dask.array.Array of shape (n_samples,)
        The component each row was drawn from (int64).
    """
    import dask
    import dask.array as da

    dtype = np.dtype(dtype)
    d = means.shape[1]
    sizes = [min(chunk_rows, n_samples - start) for start in range(0, n_samples, chunk_rows)]
    draw = dask.delayed(mixture_block, nout=2, pure=True)
    X_parts, label_parts = [], []
    for i, n in enumerate(sizes):
        X_i, labels_i = draw(weights, means, covariances, n, seed, i, dtype)
        X_parts.append(da.from_delayed(X_i, (n, d), dtype=dtype))
        label_parts.append(da.from_delayed(labels_i, (n,), dtype=np.int64))
    return da.concatenate(X_parts), da.concatenate(label_parts)


def mixture_log_density(X, weights, means, covariances):
    """Log-density ``log p(x)`` of a Gaussian mixture for each row.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Rows.
    weights : ndarray of shape (n_components,)
        Mixture weights, summing to 1.
    means : ndarray of shape (n_components, n_features)
        Component means.
    covariances : ndarray of shape (n_components, n_features, n_features)
        Component covariances.

    Returns
    -------
    ndarray of shape (n_samples,)
        ``log p(x)`` of each row.
    """
    from .algebra import precision_cholesky
    from .kernels.scoring import score_block

    return score_block(X, weights, means, precision_cholesky(covariances))


def modes_found(true_weights, true_means, true_covariances, weights, means, *,
                max_distance=1.5, min_weight_fraction=0.5):
    """How many true components have a fitted one near them.

    A true component is found when a fitted one with at least ``min_weight_fraction`` of its
    weight has its mean within ``max_distance`` in the true component's Mahalanobis distance.

    Parameters
    ----------
    true_weights : ndarray of shape (n_true_components,)
        Weights of the true mixture.
    true_means : ndarray of shape (n_true_components, n_features)
        Means of the true mixture.
    true_covariances : ndarray of shape (n_true_components, n_features, n_features)
        Covariances of the true mixture.
    weights : array-like of shape (n_components,)
        Fitted weights.
    means : array-like of shape (n_components, n_features)
        Fitted means.
    max_distance : float, default=1.5
        Largest Mahalanobis distance between a true mean and a fitted one.
    min_weight_fraction : float, default=0.5
        Smallest fitted weight, as a fraction of the true component's weight.

    Returns
    -------
    int
        Number of true components found.
    """
    from .algebra import precision_cholesky

    U = precision_cholesky(true_covariances)
    weights, means = np.asarray(weights), np.asarray(means)
    found = 0
    for k in range(len(true_weights)):
        heavy = weights >= min_weight_fraction * true_weights[k]
        if not np.any(heavy):
            continue
        z = (means[heavy] - true_means[k]) @ U[k]
        found += bool(np.sqrt((z**2).sum(axis=1)).min() <= max_distance)
    return found


def _load(name):
    path = files("dask_biglearn.data").joinpath(f"{name}.npz")
    with path.open("rb") as fh, np.load(fh, allow_pickle=False) as data:
        return data["features"].astype(np.float64), data["labels"].astype(np.int64)


def load_pendigits():
    """UCI pendigits (16 features, 10 digits) with its official split, unscaled.

    Returns
    -------
    X_train : ndarray of shape (7494, 16)
        Training features.
    y_train : ndarray of shape (7494,)
        Training digits.
    X_test : ndarray of shape (3498, 16)
        Test features.
    y_test : ndarray of shape (3498,)
        Test digits.
    """
    X_train, y_train = _load("pendigits_train")
    X_test, y_test = _load("pendigits_test")
    return X_train, y_train, X_test, y_test


def load_vehicle():
    """UCI Statlog vehicle silhouettes (846 x 18, 4 classes), unscaled.

    Returns
    -------
    X : ndarray of shape (846, 18)
        Features.
    y : ndarray of shape (846,)
        Classes.
    """
    return _load("vehicle")


def minmax_scale(X_train, *others):
    """Scale every array to [0, 1] with the *training* split's per-feature min and max.

    Constant training features are left at 0.

    Parameters
    ----------
    X_train : ndarray of shape (n_samples, n_features)
        The training split, whose min and max are used.
    *others : ndarray of shape (n_samples_i, n_features)
        Other splits, scaled the same way.

    Returns
    -------
    ndarray or tuple of ndarray
        The scaled training split alone when there are no ``others``, else the scaled
        ``(X_train, *others)``.
    """
    lo = X_train.min(axis=0)
    span = X_train.max(axis=0) - lo
    span = np.where(span > 0, span, 1.0)
    out = [(X_train - lo) / span] + [(X - lo) / span for X in others]
    return out[0] if not others else tuple(out)


def stratified_split(X, y, test_size=0.2, random_state=0):
    """A stratified train/test split (scikit-learn's ``train_test_split``).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Features.
    y : ndarray of shape (n_samples,)
        Classes, the strata.
    test_size : float or int, default=0.2
        Fraction (or number) of rows in the test split.
    random_state : int, default=0
        Seed of the split.

    Returns
    -------
    X_train : ndarray of shape (n_train, n_features)
        Training features.
    y_train : ndarray of shape (n_train,)
        Training classes.
    X_test : ndarray of shape (n_test, n_features)
        Test features.
    y_test : ndarray of shape (n_test,)
        Test classes.
    """
    from sklearn.model_selection import train_test_split

    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, stratify=y, random_state=random_state
    )
    return X_train, y_train, X_test, y_test
