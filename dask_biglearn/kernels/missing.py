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

from dataclasses import dataclass, field

import numpy as np

from ._compiled import missing_rows_conditionals, missing_rows_moments
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
    by_pattern : dict, optional
        What each pattern's completion needs, filled as patterns are met and kept for the
        other sub-blocks of the pass.
    """

    precisions: np.ndarray
    centres: np.ndarray
    diagonal: bool
    by_pattern: dict = field(default_factory=dict, compare=False, repr=False)


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


#: A run of at least this many rows that miss the same coordinates is completed with matrix
#: products for all its rows at once; shorter runs (random holes: mostly single rows) row by
#: row in the compiled twin.
GROUP_ROWS = 32


def _patterns(missing: np.ndarray):
    """Groups of rows that miss the same coordinates: ``(rows, M, O)`` index arrays."""
    keys = np.packbits(missing, axis=1)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    for g, row in enumerate(first):
        M = missing[row]
        yield np.flatnonzero(inverse == g), np.flatnonzero(M), np.flatnonzero(~M)


def _pattern_ids(missing: np.ndarray):
    """Each row's pattern (an id shared by the rows that miss the same coordinates) and each
    pattern's number of rows: ``(ids, counts)``."""
    m = missing.shape[1]
    if m <= 62:  # the pattern as the bits of one integer
        keys = missing @ (np.int64(1) << np.arange(m, dtype=np.int64))
        _, ids, counts = np.unique(keys, return_inverse=True, return_counts=True)
    else:
        _, ids, counts = np.unique(np.packbits(missing, axis=1), axis=0, return_inverse=True,
                                   return_counts=True)
    return ids.reshape(-1), counts


def _group_conditionals(Y: np.ndarray, M: np.ndarray, O: np.ndarray, model: Gaussians):
    """For rows ``Y`` (filled, centred; ``(r, m)``) that all miss ``M`` (and observe ``O``):
    the log-density corrections ``(K, r)``, the completed values on ``M`` ``(r, K, q)`` and
    the conditional covariances ``(K, q, q)``, through matrix products for all the rows and
    components (the pattern's factorisations kept for the pass's other sub-blocks).

    As ``y'_M = 0``, ``d_M = -c_M`` is the same for every row, and ``w = L_MO (y'_O - c_O)``
    is linear in the rows' observed values: the completed values and the corrections are
    three matrix products of ``y'_O`` with every component's terms side by side
    (:func:`_pattern_terms`), about ``3 r o K q`` operations."""
    q = len(M)
    c = model.centres
    k = len(c)
    if model.diagonal:
        prec = model.precisions[:, M]  # (K, q)
        cM = c[:, M]
        corr = (0.5 * q * LOG_2PI + 0.5 * np.sum(prec * cM * cM - np.log(prec), axis=1))
        r = Y.shape[0]
        completed = np.broadcast_to(cM[None, :, :], (r, k, q))
        cond = np.zeros((k, q, q))
        cond[:, np.arange(q), np.arange(q)] = 1.0 / prec
        return np.broadcast_to(corr[:, None], (k, r)), completed, cond
    key = M.tobytes()
    terms = model.by_pattern.get(key)
    if terms is None:  # once per pattern and pass
        terms = model.by_pattern[key] = _pattern_terms(model, M, O)
    Z_t, base, V_t, voff, P, const, sums, cond = terms
    r = Y.shape[0]
    Y_O = Y[:, O]
    v = Y_O @ V_t - voff  # R^-1 w per component (L_MM = R R^T): w^T L_MM^-1 w = |v|^2
    corr = (const + 0.5 * ((v * v) @ sums) - Y_O @ P).T  # const' + w^T L_MM^-1 w / 2 - w^T c_M
    completed = (base - Y_O @ Z_t).reshape(r, k, q)  # c_M - L_MM^-1 w
    return corr, completed, cond


def _pattern_terms(model: Gaussians, M: np.ndarray, O: np.ndarray):
    """What :func:`_group_conditionals` needs of rows missing ``M`` (observing ``O``), made
    once per pattern and pass: with ``w = L_MO y'_O - L_MO c_O`` linear in the rows, each of
    ``L_MM^-1 w``, ``R^-1 w`` (``L_MM = R R^T``) and ``w^T c_M`` is one matrix product of
    the rows' observed values for every component at once.

    Returns ``(Z_t, base, V_t, voff, P, const, sums, cond)``: ``c_M - L_MM^-1 w = base - y'_O
    Z_t`` and ``R^-1 w = y'_O V_t - voff`` (both ``(K q)`` wide), ``w^T c_M = y'_O P -
    w_0^T c_M`` (folded into ``const``), ``sums`` adds up each component's ``q`` columns, and
    ``cond`` the conditional covariances ``L_MM^-1`` (``(K, q, q)``)."""
    L, c = model.precisions, model.centres
    k, q = len(c), len(M)
    L_MM = L[:, M][:, :, M]  # (K, q, q)
    L_MO = L[:, M][:, :, O]  # (K, q, o)
    cM, cO = c[:, M], c[:, O]
    chol = np.linalg.cholesky(L_MM)
    log_det = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    cond = np.linalg.inv(L_MM)
    inv_chol_t = np.swapaxes(np.linalg.inv(chol), 1, 2)  # R^-T: v^T = w^T R^-T
    offset = np.einsum("kqo,ko->kq", L_MO, cO)  # L_MO c_O
    Z_t = np.einsum("kqo,kql->okl", L_MO, cond).reshape(len(O), k * q)
    base = (cM + np.einsum("kq,kql->kl", offset, cond)).reshape(-1)
    V_t = np.einsum("kqo,kql->okl", L_MO, inv_chol_t).reshape(len(O), k * q)
    voff = np.einsum("kq,kql->kl", offset, inv_chol_t).reshape(-1)
    P = np.einsum("kqo,kq->ok", L_MO, cM)
    const = (0.5 * q * LOG_2PI - 0.5 * log_det + 0.5 * np.einsum("kq,kql,kl->k", cM, L_MM, cM)
             + np.einsum("kq,kq->k", offset, cM))
    sums = np.kron(np.eye(k), np.ones((q, 1)))  # (K q, K)
    return (np.ascontiguousarray(Z_t), base, np.ascontiguousarray(V_t), voff,
            np.ascontiguousarray(P), const, sums, cond)


def _conditionals(Y: np.ndarray, M: np.ndarray, model: Gaussians):
    """For rows ``Y`` that all miss ``M`` (their observed coordinates the others): the
    log-density corrections ``(K, r)``, the completed values on ``M`` ``(K, r, q)`` and the
    conditional covariances ``(K, q, q)`` (:func:`_group_conditionals`)."""
    O = np.setdiff1d(np.arange(model.centres.shape[1]), M)
    corr, completed, cond = _group_conditionals(Y, M, O, model)
    return corr, np.swapaxes(completed, 0, 1), cond


class Completion:
    """The incomplete rows of a sub-block under every component of a pass: the corrections
    of their log-densities, and what completes their statistics (see the module docstring).

    Runs of at least :data:`GROUP_ROWS` rows that miss the same coordinates are completed
    with matrix products; the other rows with the compiled twin (``compiled``), else
    pattern by pattern in NumPy (the reference).

    Parameters
    ----------
    Y : ndarray of shape (n_rows, n_dims)
        The sub-block's rows in the pass's space, filled and centred (``y'``, 0 where a
        coordinate is missing).
    holes : Holes
    model : Gaussians
    compiled : bool, default=False

    Attributes
    ----------
    corrections : ndarray of shape (n_components, n_incomplete)
        What to add to the log-densities of the rows of ``holes.rows``, in that order.
    """

    def __init__(self, Y, holes: Holes, model: Gaussians, compiled: bool = False):
        self.Y, self.holes, self.model = Y, holes, model
        k = len(model.centres)
        self.corrections = np.empty((k, len(holes.rows)))
        self._groups = []  # (positions among the incomplete rows, M, O, completed, cond)
        self._rows = None  # the compiled twin's rows: (positions, ragged results)
        if model.diagonal:  # a sum over the missing coordinates: one product
            c, prec = model.centres, model.precisions
            per_coordinate = 0.5 * (LOG_2PI - np.log(prec) + prec * c * c)  # (K, m)
            self.corrections[...] = per_coordinate @ holes.missing.T.astype(np.float64)
            return
        if not compiled:
            for group, M, O in _patterns(holes.missing):
                self._complete_group(group, M, O)
            return
        pattern, counts = _pattern_ids(holes.missing)
        in_runs = counts[pattern] >= GROUP_ROWS
        for run in np.unique(pattern[in_runs]):
            group = np.flatnonzero(pattern == run)
            seen = holes.missing[group[0]]
            self._complete_group(group, np.flatnonzero(seen), np.flatnonzero(~seen))
        rare = np.flatnonzero(~in_runs)
        if len(rare):
            self._complete_rows(rare[np.argsort(pattern[rare], kind="stable")])

    def _complete_group(self, group, M, O):
        """Matrix products for the rows ``group`` (positions among the incomplete rows), which
        all miss ``M``."""
        corr, completed, cond = _group_conditionals(self.Y[self.holes.rows[group]], M, O,
                                                    self.model)
        self.corrections[:, group] = corr
        self._groups.append((group, M, O, completed, cond))

    def _complete_rows(self, positions):
        """The compiled twin over the rows ``positions`` (ordered by pattern)."""
        holes, model = self.holes, self.model
        k = len(model.centres)
        missing = np.ascontiguousarray(holes.missing[positions])
        e_offsets = np.concatenate([[0], np.cumsum(k * missing.sum(axis=1))])
        completed = np.empty(e_offsets[-1])
        corr = np.empty((len(positions), k))
        Y = np.ascontiguousarray(self.Y[holes.rows[positions]])
        precisions_t = np.ascontiguousarray(np.moveaxis(model.precisions, 0, -1))
        missing_rows_conditionals(Y, missing, precisions_t, np.ascontiguousarray(
            model.centres.T), corr, completed, e_offsets)
        self.corrections[:, positions] = corr.T
        self._rows = (positions, Y, missing, completed, e_offsets, precisions_t)

    def add_moments(self, G: np.ndarray, resp_t: np.ndarray) -> None:
        """Add to the sub-block's packed statistics what completes its incomplete rows.

        ``G = resp^T F`` holds the statistics of the filled rows; a row completed for
        component ``k`` differs from its filled row on its missing coordinates, by ``e_k``
        (the centred conditional mean there, as the filled value is 0), and brings its
        conditional covariance ``C_k``: per component, the sums gain ``r e``, the second
        moments ``r (y' e^T + e y'^T + e e^T + C)``.

        Parameters
        ----------
        G : ndarray of shape (n_components, feature_width(n_dims, diagonal))
            The packed statistics, updated in place.
        resp_t : ndarray of shape (n_components, n_rows)
            The sub-block's (weighted) responsibilities.
        """
        holes, model = self.holes, self.model
        k, m = model.centres.shape
        if model.diagonal:  # completed by the means, with the variances
            mass = resp_t[:, holes.rows] @ holes.missing.astype(np.float64)  # (K, m)
            c = model.centres
            G[:, 1 : 1 + m] += mass * c
            G[:, 1 + m :] += mass * (c * c + 1.0 / model.precisions)
            return
        first, cross, mm = np.zeros((k, m)), np.zeros((k, m, m)), np.zeros((k, m, m))
        for group, M, O, completed, cond in self._groups:
            rows = holes.rows[group]
            R = resp_t[:, rows]  # (K, r)
            q = len(M)
            re = (R.T[:, :, None] * completed).reshape(len(rows), k * q)  # r e, (r, K q)
            first[:, M] += re.sum(axis=0).reshape(k, q)
            # y'_O e^T and e e^T of every component: one product each (the latter's
            # off-diagonal blocks, between components, are not used)
            cross[:, O[:, None], M] += (self.Y[rows][:, O].T @ re).reshape(-1, k, q
                                                                           ).transpose(1, 0, 2)
            outer = np.matmul(re.reshape(len(rows), k, q).transpose(1, 2, 0),
                              completed.transpose(1, 0, 2))  # sum_r r e e^T, (K, q, q)
            mm[:, M[:, None], M] += outer + R.sum(axis=1)[:, None, None] * cond
        if self._rows is not None:  # components innermost in the compiled twin
            positions, Y, missing, completed, e_offsets, precisions_t = self._rows
            first_t, cross_t, mm_t = (np.zeros((m, k)), np.zeros((m, m, k)),
                                      np.zeros((m, m, k)))
            missing_rows_moments(Y, missing, precisions_t,
                                 np.ascontiguousarray(resp_t[:, holes.rows[positions]].T),
                                 completed, e_offsets, first_t, cross_t, mm_t)
            first += first_t.T
            cross += np.moveaxis(cross_t, -1, 0).swapaxes(1, 2)
            mm += np.moveaxis(mm_t, -1, 0)
        iu, ju = triu_indices(m)
        G[:, 1 : 1 + m] += first
        G[:, 1 + m :] += (cross + np.swapaxes(cross, 1, 2) + mm)[:, iu, ju]


def log_prob_corrections(Y: np.ndarray, holes: Holes, model: Gaussians,
                         compiled: bool = False) -> np.ndarray:
    """What to add to the log-densities of a sub-block's incomplete rows (filled rows) to
    make them those of their observed coordinates (:class:`Completion`'s corrections).

    Parameters
    ----------
    Y : ndarray of shape (n_rows, n_dims)
        The sub-block's rows in the pass's space, filled and centred (``y'``, 0 where a
        coordinate is missing).
    holes : Holes
    model : Gaussians
    compiled : bool, default=False
        Use the numba twin for rows whose pattern few others share.

    Returns
    -------
    ndarray of shape (n_components, n_incomplete)
        One column per row of ``holes.rows``.
    """
    return Completion(Y, holes, model, compiled).corrections
