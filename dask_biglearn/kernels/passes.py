"""The pass kernel: E-step and sufficient statistics of a block, the one entry point of
every route (in-process loop, Dask tasks, actors).

With the quadratic features ``F`` of :mod:`dask_biglearn.kernels.features`

* the E-step is one matrix product ``theta.T @ F.T`` (``F`` is stored transposed), with
  ``theta`` of shape ``(n_quadratic_features(m), n_components)`` built on the driver
  (:func:`dask_biglearn.algebra.estep_coefficients`),
* all sufficient statistics of a pass are one matrix product ``resp.T @ F``: the counts, the
  weighted sums and the upper triangle of the weighted second moments of ``y'``, accumulated
  in float64 whatever the input dtype.

A marginal pass on ``m < D`` dimensions therefore costs ``(m^2 + 3m + 2) / (D^2 + 3D + 2)`` of
a joint pass in its matrix products, and only the ``m``-dimensional statistics leave a block.

A *weighted* pass (``PassSpec.weighted``: ``sample_weight``) reads blocks whose last column is
the rows' weights: each row's responsibilities and log-likelihood are multiplied by its weight
(in the softmax, at no extra cost) and ``n_rows`` becomes the rows' total weight.

A *diagonal* pass (``PassSpec.diagonal``: a diagonal or spherical mixture seen through the
identity or a coordinate subset) uses the diagonal features ``[1, y', y'^2]`` instead: the
same two products over ``1 + 2m`` features, ``O(N K m)``, and its statistics carry only the
diagonals of the second moments.

A pass over data with missing values (``PassSpec.missing``) reads each sub-block filled (a
missing value replaced by its column's shift), so that its features and both products are
those of complete data, then corrects the log-densities of the incomplete rows to those of
their observed coordinates before the softmax and adds their conditional moments to the
statistics after it (:mod:`dask_biglearn.kernels.missing`); the rows it cannot use are
left out through their weights. A sub-block with no hole costs what it costs on complete data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._compiled import softmax_columns
from .features import (
    block_features,
    default_block_rows,
    row_blocks,
    scratch_buffer,
    unpack_second_moments,
)
from .missing import Completion, filled, gaussians_from_theta, pass_holes
from .stats import SuffStats

#: Log-responsibilities below this (relative to the row maximum) are clipped before ``exp``:
#: ``exp(-100) ~ 4e-44`` is negligible and NumPy's ``exp`` is slow on underflowing arguments.
LOG_RESP_CLIP = -100.0


@dataclass(frozen=True)
class PassSpec:
    """What one pass computes, built on the driver and sent to where the rows live.

    Parameters
    ----------
    theta : ndarray of shape (feature_width(n_dims, diagonal), n_components)
        E-step coefficients of the projected parameters about ``P @ shift``.
    shift : ndarray of shape (n_features,)
        Centre the moments are taken about (the engine's, from its summary pass).
    projection : ndarray of shape (n_dims, n_features) or None
        Rows of ``P``; None means the identity (a joint pass).
    moments : bool
        False: only the log-likelihood is computed (an evaluation pass).
    compiled : bool
        Run the numba twins of the element-wise steps (decided once on the driver, so every
        worker runs the same code).
    float32 : bool
        Form the features and run both matrix products in float32 (float32 data: see
        :func:`stacked_feature_pass`); the statistics are still summed in float64.
    diagonal : bool
        The projected covariances are diagonal: the pass runs on the diagonal features
        ``[1, y', y'^2]`` and its second moments are diagonals, ``(n_components, n_dims)``.
    weighted : bool
        The last column of every block is the rows' weights (``sample_weight``).
    missing : bool
        The data has missing values (NaN): incomplete rows are read through their observed
        coordinates (:mod:`dask_biglearn.kernels.missing`).
    """

    theta: np.ndarray
    shift: np.ndarray
    projection: np.ndarray | None = None
    moments: bool = True
    compiled: bool = False
    float32: bool = False
    diagonal: bool = False
    weighted: bool = False
    missing: bool = False

    @property
    def n_dims(self) -> int:
        """Dimension ``m`` of the projected space (from the width of ``theta``)."""
        return _n_dims(self.theta.shape[0], self.diagonal)

    @property
    def n_components(self) -> int:
        """Number of mixture components ``K`` (the columns of ``theta``)."""
        return int(self.theta.shape[1])

    @property
    def nbytes(self) -> int:
        """Bytes of the spec's arrays (``theta``, ``shift`` and ``projection``)."""
        return sum(a.nbytes for a in (self.theta, self.shift, self.projection) if a is not None)


def responsibilities_from_log_prob(log_prob_t: np.ndarray, *, compiled: bool = False,
                                   weights=None) -> tuple[np.ndarray, float]:
    """Normalise weighted log-densities, laid out ``(n_components, n_rows)``, in place.

    The component axis comes first so that the reductions over components are elementwise
    operations on contiguous rows (NumPy reduces a short last axis slowly). Log-responsibilities
    more than :data:`LOG_RESP_CLIP` below a row's maximum are clipped before ``exp``.

    Parameters
    ----------
    log_prob_t : ndarray of shape (n_components, n_rows)
        ``log pi_k + log N(y_n | mu~_k, S~_k)``, float64; overwritten.
    compiled : bool, default=False
        Use the numba twin; ``False`` runs this NumPy code, the reference.
    weights : ndarray of shape (n_rows,), optional
        The rows' weights: each row's responsibilities and log-likelihood are multiplied by
        its weight.

    Returns
    -------
    resp_t : ndarray of shape (n_components, n_rows)
        The (weighted) responsibilities, in ``log_prob_t``'s buffer.
    log_lik_sum : float
        ``sum_n w_n log sum_k exp(log_prob_t[k, n])`` (``w_n = 1`` without weights).
    """
    if compiled:
        n = log_prob_t.shape[1]
        return log_prob_t, softmax_columns(log_prob_t, scratch_buffer("softmax", 3 * n),
                                           weights)
    row_max = log_prob_t.max(axis=0)
    log_prob_t -= row_max
    np.maximum(log_prob_t, LOG_RESP_CLIP, out=log_prob_t)
    np.exp(log_prob_t, out=log_prob_t)
    row_sum = log_prob_t.sum(axis=0)
    if weights is None:
        log_prob_t *= 1.0 / row_sum
        return log_prob_t, float(np.log(row_sum).sum() + row_max.sum())
    log_prob_t *= weights / row_sum
    return log_prob_t, float(weights @ (np.log(row_sum) + row_max))


def feature_pass(F_t: np.ndarray, theta_t: np.ndarray, moments: bool = True, *,
                 compiled: bool = False):
    """E-step and statistics for rows whose quadratic features are the columns of ``F_t``.

    Parameters
    ----------
    F_t : ndarray of shape (n_quadratic_features, n_rows)
        Quadratic features, one column per row
        (:func:`~dask_biglearn.kernels.features.projected_features`).
    theta_t : ndarray of shape (n_components, n_quadratic_features)
        ``theta.T``, the transposed E-step coefficients.
    moments : bool, default=True
        Compute the packed statistics; False computes only the log-likelihood.
    compiled : bool, default=False
        Use the numba twin of the softmax; ``False`` runs the NumPy reference.

    Returns
    -------
    G : ndarray of shape (n_components, n_quadratic_features) or None
        ``resp.T @ F``: counts, sums and packed second moments; None when ``moments`` is
        false.
    log_lik_sum : float
        Sum over the rows of their log-likelihood.
    """
    G, log_lik_sums = stacked_feature_pass(F_t, theta_t, (theta_t.shape[0],), moments,
                                           compiled=compiled)
    return G, log_lik_sums[0]


def stacked_feature_pass(F_t: np.ndarray, theta_t: np.ndarray, sizes, moments: bool = True, *,
                         compiled: bool = False, weights=None, holes=None, model=None):
    """:func:`feature_pass` of several models at once, over the same features.

    The models' coefficients are stacked, so that both matrix products of the pass are one
    product each for all of them (a product of a few dozen rows runs faster per row than
    several products of ten); the softmax runs per model.

    float32 features (and coefficients) run both products in float32, at twice the rate and
    half the memory traffic: the log-densities are widened to float64 for the softmax, the
    responsibilities rounded to float32 for the statistics' product, whose result (a
    sub-block's sums) is returned in float64, to be summed in float64.

    Parameters
    ----------
    F_t : ndarray of shape (n_quadratic_features, n_rows)
        Quadratic features, one column per row, float64 or float32.
    theta_t : ndarray of shape (sum(sizes), n_quadratic_features)
        The models' ``theta.T``, stacked in order, of ``F_t``'s type.
    sizes : sequence of int
        Components of each model.
    moments : bool, default=True
        Compute the packed statistics; False computes only the log-likelihoods.
    compiled : bool, default=False
        Use the numba twin of the softmax.
    weights : ndarray of shape (n_rows,), optional
        The rows' weights (see :func:`responsibilities_from_log_prob`).
    holes : Holes, optional
        The rows of the sub-block that miss coordinates (their features are those of the
        filled rows): see :mod:`dask_biglearn.kernels.missing`.
    model : Gaussians, optional
        The stacked models' precisions and centres, with ``holes``.

    Returns
    -------
    G : ndarray of shape (sum(sizes), n_quadratic_features) or None
        The models' packed statistics, stacked in order; None when ``moments`` is false.
    log_lik_sums : list of float
        Per model, the sum over the rows of their log-likelihood.
    """
    k, n = theta_t.shape[0], F_t.shape[1]
    log_prob_t = scratch_buffer("log_prob_t", k * n).reshape(k, n)
    narrow = None
    if F_t.dtype == np.float32:
        narrow = scratch_buffer("log_prob_t", k * n, np.float32).reshape(k, n)
        np.matmul(theta_t, F_t, out=narrow)
        log_prob_t[...] = narrow
    else:
        np.matmul(theta_t, F_t, out=log_prob_t)
    completion = None
    if holes is not None and len(holes.rows):
        m = model.centres.shape[1]
        Y = np.asarray(F_t[1 : 1 + m].T, dtype=np.float64)  # the filled rows, centred
        completion = Completion(Y, holes, model, compiled)
        log_prob_t[:, holes.rows] += completion.corrections
    log_lik_sums, start = [], 0
    for size in sizes:
        _, log_lik_sum = responsibilities_from_log_prob(log_prob_t[start : start + size],
                                                        compiled=compiled, weights=weights)
        log_lik_sums.append(log_lik_sum)
        start += size
    if not moments:
        return None, log_lik_sums
    if narrow is None:
        G = log_prob_t @ F_t.T
    else:
        narrow[...] = log_prob_t
        G = (narrow @ F_t.T).astype(np.float64)
    if completion is not None:
        completion.add_moments(G, log_prob_t)
    return G, log_lik_sums


def unpack_stats(G: np.ndarray, log_lik_sum: float, n_rows: int,
                 diagonal: bool = False) -> SuffStats:
    """Turn packed statistics ``G = resp.T @ F`` into sufficient statistics.

    Parameters
    ----------
    G : ndarray of shape (n_components, feature_width(n_dims, diagonal))
        Packed statistics: column 0 the counts, then the ``n_dims`` sums, then the packed
        upper triangles of the second moments (their diagonals, for a diagonal pass).
    log_lik_sum : float
        Sum of the log-likelihood of the rows.
    n_rows : int
        How many rows the statistics cover.
    diagonal : bool, default=False
        ``G`` is a diagonal pass's: the second moments stay diagonals.

    Returns
    -------
    SuffStats
        The unpacked statistics (:class:`~dask_biglearn.kernels.stats.SuffStats`).
    """
    m = _n_dims(G.shape[1], diagonal)
    second = (np.ascontiguousarray(G[:, 1 + m :]) if diagonal
              else unpack_second_moments(G[:, 1 + m :], m))
    return SuffStats(G[:, 0].copy(), np.ascontiguousarray(G[:, 1 : 1 + m]), second,
                     log_lik_sum, n_rows)


def pass_stats(blocks, spec: PassSpec, block_rows: int | None = None,
               cache=None) -> SuffStats:
    """Sufficient statistics of one pass over ``blocks``: :func:`pass_stats_batch` of one
    spec (the routes call the batch).

    Parameters
    ----------
    blocks : list of ndarray of shape (n_rows_i, n_features)
        Chunks of the data, any real dtype (converted to float64 in sub-blocks).
    spec : PassSpec
        What the pass computes: coefficients, centre, projection.
    block_rows : int, optional
        Rows per sub-block (default :func:`~dask_biglearn.kernels.features.default_block_rows`).
    cache : FeatureCache, optional
        Features kept between passes for these blocks (the in-process route): used when it
        holds those of ``spec``'s centre and projection.

    Returns
    -------
    SuffStats
        Of ``y = P x``, shifted by ``P @ shift``; ``K (1 + m + m^2) + 2`` numbers whatever the
        number of rows (``K (1 + 2m) + 2`` for a diagonal pass), summed over the blocks
        before they are unpacked.
    """
    return _shared_feature_stats(blocks, [spec], block_rows, cache)[0]


def _shared_feature_stats(blocks, specs, block_rows, cache) -> list[SuffStats]:
    """The statistics of passes that see the rows through the same features (one centre,
    one projection, one kind of pass): each sub-block's features are built once and both
    matrix products run for all the specs together (:func:`stacked_feature_pass`)."""
    first = specs[0]
    sizes = [spec.n_components for spec in specs]
    theta_t = np.ascontiguousarray(np.concatenate([spec.theta.T for spec in specs]))
    model = gaussians_from_theta(theta_t.T, first.diagonal) if first.missing else None
    G_total, ll_totals, n_rows = None, np.zeros(len(specs)), 0
    for F_t, weights, holes in _features_and_weights(blocks, first, block_rows, cache):
        if theta_t.dtype != F_t.dtype:  # the features decide (the cache keeps its own type)
            theta_t = theta_t.astype(F_t.dtype)
        G, lls = stacked_feature_pass(F_t, theta_t, sizes, first.moments,
                                      compiled=first.compiled, weights=weights, holes=holes,
                                      model=model)
        ll_totals += lls
        n_rows += F_t.shape[1] if weights is None else float(weights.sum())
        if first.moments:
            G_total = G if G_total is None else G_total + G
    if G_total is not None:
        bounds = np.cumsum([0, *sizes])
        return [unpack_stats(G_total[a:b], float(ll), n_rows, first.diagonal)
                for a, b, ll in zip(bounds[:-1], bounds[1:], ll_totals, strict=True)]
    # No moments asked for, or no rows: zero moments (of width 0 for a log-likelihood pass).
    return [SuffStats(np.zeros(k), np.zeros((k, m)),
                      np.zeros((k, m) if spec.diagonal else (k, m, m)), float(ll), n_rows)
            for spec, k, ll, m in ((spec, spec.n_components, ll,
                                    spec.n_dims if spec.moments else 0)
                                   for spec, ll in zip(specs, ll_totals, strict=True))]


def _features_and_weights(blocks, spec: PassSpec, block_rows, cache):
    """Yield each sub-block's features, its rows' weights (None without weights, nor rows
    left out) and its holes (None when complete in the pass's space): features from the
    cache when it holds them (the in-process route's one block), else computed."""
    weighted = spec.weighted
    cached = None if cache is None else cache.features_of(spec.shift, spec.projection,
                                                          spec.diagonal)
    if cached is not None:
        (X,) = blocks
        for F_t, (start, stop) in zip(cached, row_blocks(X.shape[0], cache.block_rows),
                                      strict=True):
            yield (F_t, *_weights_and_holes(X[start:stop], spec))
        return
    dtype = np.float32 if spec.float32 else np.float64
    for X in blocks:
        rows = block_rows or default_block_rows(X.shape[1] - weighted)
        if not spec.missing:  # the features of whole blocks, sub-block by sub-block
            features = block_features(X[:, :-1] if weighted else X, spec.shift,
                                      spec.projection, rows, compiled=spec.compiled,
                                      dtype=dtype, diagonal=spec.diagonal)
            for F_t, (start, stop) in zip(features, row_blocks(X.shape[0], rows),
                                          strict=True):
                yield (F_t, *_weights_and_holes(X[start:stop], spec))
            continue
        for start, stop in row_blocks(X.shape[0], rows):
            sub = X[start:stop]
            values = sub[:, :-1] if weighted else sub
            nan = np.isnan(values)
            if nan.any():
                values = filled(values, nan, spec.shift)
            F_t = next(block_features(values, spec.shift, spec.projection, stop - start,
                                      compiled=spec.compiled, dtype=dtype,
                                      diagonal=spec.diagonal))
            yield (F_t, *_weights_and_holes(sub, spec, nan))


def _weights_and_holes(sub, spec: PassSpec, nan=None):
    """A sub-block's rows' weights (None when they are all 1) and its holes in the pass's
    space (None without), the rows a pass leaves out given weight 0."""
    weights = np.asarray(sub[:, -1], dtype=np.float64) if spec.weighted else None
    if not spec.missing:
        return weights, None
    if nan is None:
        nan = np.isnan(sub[:, :-1] if spec.weighted else sub)
    holes = pass_holes(nan, spec.projection) if nan.any() else None
    if holes is not None and holes.left_out is not None:
        weights = np.ones(len(sub)) if weights is None else weights.copy()
        weights[holes.left_out] = 0.0
    return weights, holes


def _n_dims(width: int, diagonal: bool = False) -> int:
    """``m`` from the width ``1 + m + m (m + 1) / 2`` of the quadratic features (``1 + 2m``
    of the diagonal ones)."""
    if diagonal:
        return (width - 1) // 2
    return round(float(np.sqrt(8 * width + 1) - 3) / 2)


def pass_stats_batch(blocks, specs, block_rows: int | None = None,
                     cache=None) -> list[SuffStats]:
    """The statistics of several passes over the same blocks, which are read once.

    The restarts of a fit advance together and share every read of a chunk, and the passes
    that see the rows through the same features (the joint passes of all the restarts) share
    their features and their matrix products. This is the entry point of every route
    (in-process, Dask tasks, actors).

    Parameters
    ----------
    blocks : list of ndarray of shape (n_rows_i, n_features)
        Chunks of the data, any real dtype.
    specs : list of PassSpec
        One spec per pass.
    block_rows : int, optional
        Rows per sub-block (default :func:`~dask_biglearn.kernels.features.default_block_rows`).
    cache : FeatureCache, optional
        Features kept between passes for these blocks (see :func:`pass_stats`).

    Returns
    -------
    list of SuffStats
        One per spec, in order.
    """
    groups: list[list[int]] = []  # specs that share their features, in order of first use
    for i, spec in enumerate(specs):
        for group in groups:
            if _same_features(specs[group[0]], spec):
                group.append(i)
                break
        else:
            groups.append([i])
    out: list = [None] * len(specs)
    for group in groups:
        for i, stats in zip(group, _shared_feature_stats(blocks, [specs[i] for i in group],
                                                         block_rows, cache), strict=True):
            out[i] = stats
    return out


def _same_features(a: PassSpec, b: PassSpec) -> bool:
    """Whether two passes read the rows through the same features and compute the same."""
    if ((a.moments, a.compiled, a.float32, a.diagonal, a.weighted, a.missing)
            != (b.moments, b.compiled, b.float32, b.diagonal, b.weighted, b.missing)):
        return False
    if (a.projection is None) != (b.projection is None):
        return False
    if a.projection is not None and not (a.projection is b.projection or (
            a.projection.shape == b.projection.shape
            and np.array_equal(a.projection, b.projection))):
        return False
    return a.shift is b.shift or np.array_equal(a.shift, b.shift)
