"""Rows with missing values (NaN): exact EM on their observed coordinates, in a block.

A pass reads the rows through the features of ``y' = P (x - shift)``. A row with missing
coordinates is read *filled*: each missing ``x_j`` replaced by ``shift_j``, so that ``y'_j = 0``
for a missing coordinate ``j`` of a coordinate-subset pass (and the complete rows' features,
products and cost do not change). The features then give, for component ``k`` with precision
``L = S^-1`` and centred mean ``c = mu - P shift``, the log-density of the filled row; with
``d = y' - c`` and ``M`` the row's missing coordinates (``O`` the observed ones, ``q = |M|``),
the log-density of its *observed* coordinates differs from it by

.. math::

    \\log N(y_O) - \\log N(y') = \\tfrac{q}{2} \\log 2\\pi - \\tfrac12 \\log\\det L_{MM}
        + d_M^T w + \\tfrac12 d_M^T L_{MM} d_M + \\tfrac12 w^T L_{MM}^{-1} w,
    \\qquad w = L_{MO} d_O = (L d)_M - L_{MM} d_M,

(``log det S_OO = log det S + log det L_MM`` and ``S_OO^-1 = L_OO - L_OM L_MM^-1 L_MO``), and
the row completed for component ``k`` is ``y'_M = c_M - L_MM^-1 w`` (the conditional mean,
centred), with conditional covariance ``L_MM^-1``: the statistics of an incomplete row are
those of its filled row plus terms on its missing coordinates only (Ghahramani & Jordan,
*Supervised learning from incomplete data via an EM approach*, NIPS 1994). Only ``q x q``
matrices are factorised, once for every run of rows that miss the same coordinates.

A pass in a rotated space cannot see ``y = P x`` when a coordinate it mixes is missing: such a
row is left out of the pass (weight 0), and so is a row with no observed coordinate in the
pass's space. This module recovers each component's ``L`` and ``c`` from the pass's E-step
coefficients (``theta``), so a spec carries nothing more. NumPy here (the reference, grouped
by pattern); the compiled twins are in :mod:`dask_biglearn.kernels._compiled`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._compiled import missing_conditional_moments, missing_log_prob_corrections
from .features import triu_indices

LOG_2PI = np.log(2.0 * np.pi)


@dataclass(frozen=True)
class Holes:
    """Which rows of a sub-block miss coordinates of a pass's space, and which take no part.

    Parameters
    ----------
    rows : ndarray of int of shape (n_incomplete,)
        The rows (in the sub-block) that miss some but not all of the pass's coordinates.
    missing : ndarray of bool of shape (n_incomplete, n_dims)
        Their missing coordinates, in the pass's space.
    left_out : ndarray of bool of shape (n_rows,) or None
        Rows that take no part in the pass (no observed coordinate in its space, or a missing
        coordinate of a rotated pass); None when every row takes part.
    """

    rows: np.ndarray
    missing: np.ndarray
    left_out: np.ndarray | None


def pass_holes(nan: np.ndarray, projection, keep_empty: bool = False) -> Holes | None:
    """The holes of a sub-block in a pass's space, or None when it has none there.

    Parameters
    ----------
    nan : ndarray of bool of shape (n_rows, n_features)
        Which values of the sub-block are missing.
    projection : ndarray of shape (n_dims, n_features) or None
        ``P`` of the pass (None: the identity).
    keep_empty : bool, default=False
        Count a row with no observed coordinate among the incomplete rows (scoring: the
        density of nothing is 1, and the corrections give it) instead of leaving it out.

    Returns
    -------
    Holes or None
    """
    if projection is None:
        missing = nan
    else:
        P = np.asarray(projection)
        nonzero = P != 0
        if np.all(nonzero.sum(axis=1) == 1) and np.all(P[nonzero] == 1.0):  # a subset
            missing = nan[:, np.argmax(P, axis=1)]
        else:  # a rotation: only the rows observed on all it mixes take part
            out = nan[:, nonzero.any(axis=0)].any(axis=1)
            return Holes(np.empty(0, dtype=np.intp), np.empty((0, P.shape[0]), dtype=bool),
                         out) if out.any() else None
    counts = missing.sum(axis=1)
    if not counts.any():
        return None
    if keep_empty:
        rows = np.flatnonzero(counts)
        return Holes(rows, missing[rows], None)
    empty = counts == missing.shape[1]
    rows = np.flatnonzero((counts > 0) & ~empty)
    return Holes(rows, missing[rows], empty if empty.any() else None)


def filled(X: np.ndarray, nan: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``X`` as float64 with each missing value replaced by its column's ``shift``.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
    nan : ndarray of bool of shape (n_rows, n_features)
    shift : ndarray of shape (n_features,)

    Returns
    -------
    ndarray of shape (n_rows, n_features)
    """
    return np.where(nan, shift, np.asarray(X, dtype=np.float64))


@dataclass(frozen=True)
class Gaussians:
    """The components of a pass (stacked models), as the missing-value corrections need them.

    Parameters
    ----------
    precisions : ndarray of shape (n_components, n_dims, n_dims), or (n_components, n_dims)
        for a diagonal pass
        ``L_k``, the inverses of the projected covariances.
    centres : ndarray of shape (n_components, n_dims)
        ``c_k``, the projected means less the projected shift.
    diagonal : bool
        Whether the covariances (and ``precisions``) are diagonal.
    """

    precisions: np.ndarray
    centres: np.ndarray
    diagonal: bool


def gaussians_from_theta(theta: np.ndarray, diagonal: bool = False) -> Gaussians:
    """The precisions and centred means a pass's E-step coefficients encode.

    ``theta`` holds, per component, ``L c`` in its linear rows and ``-L_ii / 2``, ``-L_ij``
    (``i < j``) in its quadratic ones (``-1 / (2 v_i)`` for the diagonal features); see
    :func:`dask_biglearn.algebra.estep_coefficients`.

    Parameters
    ----------
    theta : ndarray of shape (feature_width(n_dims, diagonal), n_components)
    diagonal : bool, default=False

    Returns
    -------
    Gaussians
    """
    theta = np.asarray(theta, dtype=np.float64)
    width, k = theta.shape
    if diagonal:
        m = (width - 1) // 2
        precisions = -2.0 * theta[1 + m :].T
        return Gaussians(precisions, theta[1 : 1 + m].T / precisions, True)
    m = round(float(np.sqrt(8 * width + 1) - 3) / 2)
    iu, ju = triu_indices(m)
    packed = theta[1 + m :].T
    L = np.empty((k, m, m))
    L[:, iu, ju] = -packed
    L[:, ju, iu] = -packed
    L[:, np.arange(m), np.arange(m)] *= 2.0
    b = theta[1 : 1 + m].T  # L c
    return Gaussians(L, np.linalg.solve(L, b[..., None])[..., 0], False)


def _patterns(missing: np.ndarray):
    """Groups of rows that miss the same coordinates: ``(rows, M, O)`` index arrays."""
    keys = np.packbits(missing, axis=1)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    for g, row in enumerate(first):
        M = missing[row]
        yield np.flatnonzero(inverse == g), np.flatnonzero(M), np.flatnonzero(~M)


def _conditionals(Y: np.ndarray, M: np.ndarray, model: Gaussians):
    """For rows ``Y`` (filled, centred; ``(r, m)``) that miss ``M``: the log-density
    corrections ``(K, r)``, the completed values on ``M`` ``(K, r, q)`` and the conditional
    covariances ``(K, q, q)``."""
    q = len(M)
    c = model.centres
    if model.diagonal:
        prec = model.precisions[:, M]  # (K, q)
        cM = c[:, M]
        corr = (0.5 * q * LOG_2PI + 0.5 * np.sum(prec * cM * cM - np.log(prec), axis=1))
        r = Y.shape[0]
        completed = np.broadcast_to(cM[:, None, :], (len(c), r, q))
        cond = np.zeros((len(c), q, q))
        cond[:, np.arange(q), np.arange(q)] = 1.0 / prec
        return np.broadcast_to(corr[:, None], (len(c), r)), completed, cond
    L = model.precisions
    L_MM = L[:, M][:, :, M]  # (K, q, q)
    chol = np.linalg.cholesky(L_MM)
    log_det = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    d = Y[None, :, :] - c[:, None, :]  # (K, r, m)
    d_M = d[:, :, M]
    w = np.einsum("kjm,krm->krj", L[:, M, :], d) - np.einsum("kjl,krl->krj", L_MM, d_M)
    z = np.linalg.solve(L_MM[:, None], w[..., None])[..., 0]  # L_MM^-1 w, (K, r, q)
    quad_M = np.einsum("krj,kjl,krl->kr", d_M, L_MM, d_M)
    corr = (0.5 * q * LOG_2PI - 0.5 * log_det[:, None] + np.einsum("krj,krj->kr", d_M, w)
            + 0.5 * quad_M + 0.5 * np.einsum("krj,krj->kr", w, z))
    return corr, c[:, None, M] - z, np.linalg.inv(L_MM)


def log_prob_corrections(Y: np.ndarray, holes: Holes, model: Gaussians,
                         compiled: bool = False) -> np.ndarray:
    """What to add to the log-densities of a sub-block's incomplete rows (filled rows) to
    make them those of their observed coordinates.

    Parameters
    ----------
    Y : ndarray of shape (n_rows, n_dims)
        The sub-block's rows in the pass's space, filled and centred (``y'``, 0 where a
        coordinate is missing).
    holes : Holes
    model : Gaussians
    compiled : bool, default=False
        Use the numba twin (full covariances); ``False`` runs this NumPy code, the reference.

    Returns
    -------
    ndarray of shape (n_components, n_incomplete)
        One column per row of ``holes.rows``.
    """
    if model.diagonal:  # a sum over the missing coordinates: one product
        c, prec = model.centres, model.precisions
        per_coordinate = 0.5 * (LOG_2PI - np.log(prec) + prec * c * c)  # (K, m)
        return per_coordinate @ holes.missing.T.astype(np.float64)
    out = np.empty((len(model.centres), len(holes.rows)))
    if compiled:
        order = _pattern_order(holes.missing)
        missing_log_prob_corrections(np.ascontiguousarray(Y[holes.rows[order]]),
                                     np.ascontiguousarray(holes.missing[order]),
                                     model.precisions, model.centres, out)
        out[:, order] = out.copy()
        return out
    for group, M, _ in _patterns(holes.missing):
        out[:, group] = _conditionals(Y[holes.rows[group]], M, model)[0]
    return out


def _pattern_order(missing: np.ndarray) -> np.ndarray:
    """An order of the rows in which those that miss the same coordinates are consecutive
    (the compiled twins factorise once per run of a pattern)."""
    keys = np.packbits(missing, axis=1)
    return np.lexsort(keys.T[::-1])


def add_conditional_moments(G: np.ndarray, Y: np.ndarray, resp_t: np.ndarray, holes: Holes,
                            model: Gaussians, compiled: bool = False) -> None:
    """Add to a sub-block's packed statistics what completes its incomplete rows.

    ``G = resp^T F`` holds the statistics of the filled rows; a row completed for component
    ``k`` differs from its filled row on its missing coordinates, by ``e_k`` (the centred
    conditional mean there, as the filled value is 0), and brings its conditional covariance
    ``C_k``: per component, the sums gain ``r e``, the second moments ``r (y' e^T + e y'^T +
    e e^T + C)``.

    Parameters
    ----------
    G : ndarray of shape (n_components, feature_width(n_dims, diagonal))
        The packed statistics (:func:`~dask_biglearn.kernels.passes.stacked_feature_pass`),
        updated in place.
    Y : ndarray of shape (n_rows, n_dims)
        The sub-block's rows in the pass's space, filled and centred.
    resp_t : ndarray of shape (n_components, n_rows)
        The (weighted) responsibilities.
    holes : Holes
    model : Gaussians
    compiled : bool, default=False
        Use the numba twin (full covariances); ``False`` runs this NumPy code, the reference.
    """
    k, m = model.centres.shape
    if model.diagonal:  # completed by the means, with the variances: sums over the rows
        mass = resp_t[:, holes.rows] @ holes.missing.astype(np.float64)  # (K, m)
        c = model.centres
        G[:, 1 : 1 + m] += mass * c
        G[:, 1 + m :] += mass * (c * c + 1.0 / model.precisions)
        return
    iu, ju = triu_indices(m)
    if compiled:
        order = _pattern_order(holes.missing)
        rows = holes.rows[order]
        first, cross, mm = np.zeros((k, m)), np.zeros((k, m, m)), np.zeros((k, m, m))
        missing_conditional_moments(np.ascontiguousarray(Y[rows]),
                                    np.ascontiguousarray(holes.missing[order]),
                                    model.precisions, model.centres,
                                    np.ascontiguousarray(resp_t[:, rows]), first, cross, mm)
        G[:, 1 : 1 + m] += first
        G[:, 1 + m :] += (cross + np.swapaxes(cross, 1, 2) + mm)[:, iu, ju]
        return
    delta = np.zeros((k, m, m))
    for group, M, _ in _patterns(holes.missing):
        rows = holes.rows[group]
        _, completed, cond = _conditionals(Y[rows], M, model)
        R = resp_t[:, rows]  # (K, r)
        re = R[..., None] * completed  # (K, r, q)
        G[:, 1 + M] += re.sum(axis=1)
        cross = np.einsum("ri,krj->kij", Y[rows], re)  # y' e^T, (K, m, q)
        delta[:, :, M] += cross
        delta[:, M, :] += np.swapaxes(cross, 1, 2)
        delta[:, M[:, None], M] += (np.einsum("krj,krl->kjl", re, completed)
                                    + R.sum(axis=1)[:, None, None] * cond)
    G[:, 1 + m :] += delta[:, iu, ju]
