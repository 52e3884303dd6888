"""Compiled (numba) versions of the element-wise steps of a pass (features, softmax) and of
the E-step coefficients.

The two matrix products of a pass run in BLAS; what is left is element-wise. Building the
quadratic features in one compiled loop writes each feature once (NumPy needs one call per
feature row group and a strided subtraction). The E-step's softmax over components costs one
``exp`` per (row, component). NumPy's float64 ``exp`` is scalar code on CPUs without AVX-512
(about 10 ns an element on the reference machine), more than the two matrix products of a
small pass. This module computes the same responsibilities in one compiled kernel with a
vectorisable ``exp`` (Cody-Waite range reduction, a degree-12 polynomial, the power of two
added to the exponent bits), accurate to a few units in the last place.

The E-step coefficients of a pass (a Cholesky factor, its inverse and a few products per
component) are small-matrix work: NumPy spends more time dispatching its dozen batched calls
than computing them when ``m`` is small, so one compiled loop over the components does it.

The NumPy versions in :mod:`dask_biglearn.kernels.features`, :mod:`~dask_biglearn.kernels.passes`
and :mod:`dask_biglearn.algebra` stay the reference. Which of the two runs is decided once, on
the driver (:func:`dask_biglearn.config.compiled_kernels`), and travels to the workers in every
:class:`~dask_biglearn.kernels.passes.PassSpec`; nothing here reads the environment. Tests hold
both to each other.

numba is imported, and the kernels compiled (or loaded from numba's cache), on their first
use, not when this module is imported: a process that only scores a fitted model (scoring is
NumPy) never loads numba and its LLVM (several tens of MiB a worker).
"""

from __future__ import annotations

import functools
import importlib.util
import threading

import numpy as np

#: Same clip as the NumPy reference: exp(-100) ~ 4e-44 is negligible.
_CLIP = -100.0
_LOG2E = 1.4426950408889634
_LN2_HI = 0.6931471803691238  # ln 2 split so that k * _LN2_HI is exact for |k| < 2**11
_LN2_LO = 1.9082149292705877e-10
#: 1.5 * 2**52: adding it rounds to an integer, held in the low bits of the result.
_ROUND_MAGIC = 6755399441055744.0
_ROUND_MAGIC_BITS = int(np.float64(_ROUND_MAGIC).view(np.int64))


def _softmax_columns_py(log_prob_t, row_max, row_sum, scratch, weights):
    """Normalise ``log_prob_t`` (K, n) over its first axis in place; return the log-likelihood.

    ``row_max``, ``row_sum`` and ``scratch`` are float64 work arrays of length n; ``weights``
    (length n, or 0 for none) multiplies each row's responsibilities and log-likelihood.
    Returns NaN if any input is NaN or the maximum of a column is infinite (the caller's
    finiteness check then reports it), as the NumPy reference does.
    """
    k_comp, n = log_prob_t.shape
    for i in range(n):
        row_max[i] = log_prob_t[0, i]
    for k in range(1, k_comp):
        for i in range(n):
            v = log_prob_t[k, i]
            row_max[i] = max(row_max[i], v)
    for i in range(n):
        row_sum[i] = 0.0
    bad = 0
    for k in range(k_comp):
        row = log_prob_t[k]
        for i in range(n):
            x = row[i] - row_max[i]
            bad |= np.isnan(x)  # NaN input, or an infinite maximum
            x = max(x, _CLIP)
            t = x * _LOG2E + _ROUND_MAGIC
            kf = t - _ROUND_MAGIC  # nearest integer to x / ln 2
            r = (x - kf * _LN2_HI) - kf * _LN2_LO  # |r| <= ln(2) / 2
            r2 = r * r
            r4 = r2 * r2
            p = ((1.0 + r) + r2 * (0.5 + r * (1.0 / 6.0))
                 + r4 * ((1.0 / 24.0 + r * (1.0 / 120.0))
                         + r2 * (1.0 / 720.0 + r * (1.0 / 5040.0)))
                 + (r4 * r4) * ((1.0 / 40320.0 + r * (1.0 / 362880.0))
                                + r2 * (1.0 / 3628800.0 + r * (1.0 / 39916800.0))
                                + r4 * (1.0 / 479001600.0)))
            row[i] = p
            scratch[i] = t
        # Multiply by 2**k by adding k to the exponent field (p is in [0.7, 1.42] and
        # k >= -145, so the result stays a normal number).
        row_bits = row.view(np.int64)
        k_bits = scratch.view(np.int64)
        for i in range(n):
            row_bits[i] += (k_bits[i] - _ROUND_MAGIC_BITS) << 52
        for i in range(n):
            row_sum[i] += row[i]
    log_lik = 0.0
    if weights.shape[0] == 0:
        for i in range(n):
            log_lik += np.log(row_sum[i]) + row_max[i]
            row_sum[i] = 1.0 / row_sum[i]
    else:
        for i in range(n):
            log_lik += weights[i] * (np.log(row_sum[i]) + row_max[i])
            row_sum[i] = weights[i] / row_sum[i]
    for k in range(k_comp):
        for i in range(n):
            log_prob_t[k, i] *= row_sum[i]
    if bad:
        return np.nan
    return log_lik


def _quadratic_features_py(X, shift, F_t):
    """Write ``[1, x', x'_i x'_j (i <= j)]`` of ``x' = x - shift``, one column per row of X."""
    n, d = X.shape
    for c in range(n):
        F_t[0, c] = 1.0
    for i in range(d):
        s = shift[i]
        for c in range(n):
            F_t[1 + i, c] = X[c, i] - s
    row = 1 + d
    for i in range(d):
        for j in range(i, d):
            for c in range(n):
                F_t[row, c] = F_t[1 + i, c] * F_t[1 + j, c]
            row += 1


def _estep_coefficients_py(log_weights, means, covariances, shift, log_2pi, theta, work):
    """Write the E-step coefficients of every component into ``theta`` (W, K).

    Per component: the lower Cholesky factor ``L`` of ``Sigma`` (in ``work``, m x m), then
    ``z = L^-1 nu`` with ``nu = mu - shift``, ``Lambda nu = L^-T z`` and
    ``Lambda = L^-T L^-1`` from the inverse factor, as the NumPy reference does through
    ``U = L^-T``. Returns the index of the first component whose covariance is not
    positive definite, or -1.
    """
    k_comp, m = means.shape
    L = work[0]
    Linv = work[1]
    z = np.empty(m)
    for k in range(k_comp):
        S = covariances[k]
        log_det = 0.0
        for j in range(m):  # Cholesky, column by column
            d = S[j, j]
            for p in range(j):
                d -= L[j, p] * L[j, p]
            if not d > 0.0:  # also catches NaN
                return k
            d = np.sqrt(d)
            L[j, j] = d
            log_det += np.log(d)
            for i in range(j + 1, m):
                v = S[i, j]
                for p in range(j):
                    v -= L[i, p] * L[j, p]
                L[i, j] = v / d
        for j in range(m):  # L^-1, lower triangular, by forward substitution
            for i in range(m):
                Linv[i, j] = 0.0
            Linv[j, j] = 1.0 / L[j, j]
            for i in range(j + 1, m):
                v = 0.0
                for p in range(j, i):
                    v -= L[i, p] * Linv[p, j]
                Linv[i, j] = v / L[i, i]
        zz = 0.0
        for i in range(m):  # z = L^-1 nu
            v = 0.0
            for p in range(i + 1):
                v += Linv[i, p] * (means[k, p] - shift[p])
            z[i] = v
            zz += v * v
        theta[0, k] = log_weights[k] - 0.5 * m * log_2pi - log_det - 0.5 * zz
        for j in range(m):  # Lambda nu = L^-T z
            v = 0.0
            for p in range(j, m):
                v += Linv[p, j] * z[p]
            theta[1 + j, k] = v
        row = 1 + m
        for i in range(m):  # -x^T Lambda x / 2 over the packed upper triangle
            for j in range(i, m):
                v = 0.0
                for p in range(j, m):
                    v += Linv[p, i] * Linv[p, j]
                theta[row, k] = -0.5 * v if i == j else -v
                row += 1
    return -1


def _missing_pattern_py(missing, r, M, O):
    """The missing (``M``) and observed (``O``) coordinates of row ``r``; returns ``q``."""
    q = 0
    o = 0
    for i in range(missing.shape[1]):
        if missing[r, i]:
            M[q] = i
            q += 1
        else:
            O[o] = i
            o += 1
    return q


def _same_pattern_py(missing, r):
    """Whether row ``r`` misses the same coordinates as row ``r - 1``."""
    if r == 0:
        return False
    for i in range(missing.shape[1]):
        if missing[r, i] != missing[r - 1, i]:
            return False
    return True


def _factor_missing_blocks_py(Lt, M, q, chol, log_det):
    """Cholesky factors (lower, ``chol[a, b, k]``) and log-determinants of every component's
    ``L_MM``, the components innermost (``Lt[i, j, k]``) so that the loops vectorise."""
    n_comp = Lt.shape[2]
    for a in range(q):
        for b in range(a + 1):
            for k in range(n_comp):
                acc = Lt[M[a], M[b], k]
                for t in range(b):
                    acc -= chol[a, t, k] * chol[b, t, k]
                if a == b:
                    chol[a, a, k] = np.sqrt(acc)
                else:
                    chol[a, b, k] = acc / chol[b, b, k]
    for k in range(n_comp):
        log_det[k] = 0.0
    for a in range(q):
        for k in range(n_comp):
            log_det[k] += 2.0 * np.log(chol[a, a, k])


def _chol_solve_py(chol, q, w, z):
    """``z[:q, k] = L_MM^-1 w[:q, k]`` for every component, from the lower factors."""
    n_comp = chol.shape[2]
    for a in range(q):
        for k in range(n_comp):
            acc = w[a, k]
            for t in range(a):
                acc -= chol[a, t, k] * z[t, k]
            z[a, k] = acc / chol[a, a, k]
    for a in range(q - 1, -1, -1):
        for k in range(n_comp):
            acc = z[a, k]
            for t in range(a + 1, q):
                acc -= chol[t, a, k] * z[t, k]
            z[a, k] = acc / chol[a, a, k]


def _missing_rows_conditionals_py(Y, missing, Lt, ct, corr, completed, e_offsets):
    """Compiled counterpart of :class:`dask_biglearn.kernels.missing.Completion` for rows
    whose pattern few others share (full covariances; rows that miss the same coordinates
    consecutive, so each run factorises once). ``Lt[i, j, k]`` and ``ct[i, k]``: the
    precisions and centres, components innermost. Writes ``corr[r, k]`` and, from
    ``e_offsets[r]``, each row's completed values ``(q, K)``, flat."""
    n, m = Y.shape
    n_comp = Lt.shape[2]
    M = np.empty(m, dtype=np.int64)
    O = np.empty(m, dtype=np.int64)
    chol = np.zeros((m, m, n_comp))
    log_det = np.empty(n_comp)
    const = np.empty(n_comp)
    d = np.empty((m, n_comp))
    w = np.empty((m, n_comp))
    z = np.empty((m, n_comp))
    q = 0
    half_log_2pi = 0.5 * np.log(2.0 * np.pi)
    for r in range(n):
        if not _same_pattern_py(missing, r):
            q = _missing_pattern_py(missing, r, M, O)
            _factor_missing_blocks_py(Lt, M, q, chol, log_det)
            for k in range(n_comp):  # q log(2 pi) / 2 - log det L_MM / 2 + c_M L_MM c_M / 2
                const[k] = q * half_log_2pi - 0.5 * log_det[k]
            for a in range(q):
                for b in range(q):
                    for k in range(n_comp):
                        const[k] += 0.5 * ct[M[a], k] * Lt[M[a], M[b], k] * ct[M[b], k]
        o = m - q
        for b in range(o):  # d_O = y'_O - c_O
            i = O[b]
            for k in range(n_comp):
                d[i, k] = Y[r, i] - ct[i, k]
        for a in range(q):  # w = L_MO d_O
            for k in range(n_comp):
                w[a, k] = 0.0
            for b in range(o):
                i = O[b]
                for k in range(n_comp):
                    w[a, k] += Lt[M[a], i, k] * d[i, k]
        _chol_solve_py(chol, q, w, z)
        e_at = e_offsets[r]
        for k in range(n_comp):
            corr[r, k] = const[k]
        for a in range(q):
            for k in range(n_comp):
                corr[r, k] += -ct[M[a], k] * w[a, k] + 0.5 * w[a, k] * z[a, k]
                completed[e_at + a * n_comp + k] = ct[M[a], k] - z[a, k]


def _missing_rows_moments_py(Y, missing, Lt, resp, completed, e_offsets, first, cross_t, mm):
    """Compiled counterpart of :meth:`dask_biglearn.kernels.missing.Completion.add_moments`
    for the rows of :func:`_missing_rows_conditionals_py` (components innermost: ``resp[r,
    k]``, ``first[i, k]``, ``cross_t[a, i, k]``, ``mm[a, b, k]``): adds ``r e`` to ``first``,
    ``r e y'^T`` to ``cross_t`` (missing rows, every column: ``y'_M = 0``) and ``r (e e^T +
    C)`` to ``mm``."""
    n, m = Y.shape
    n_comp = Lt.shape[2]
    M = np.empty(m, dtype=np.int64)
    O = np.empty(m, dtype=np.int64)
    chol = np.zeros((m, m, n_comp))
    inverse = np.zeros((m, m, n_comp))  # L_MM^-1
    log_det = np.empty(n_comp)
    unit = np.zeros((m, n_comp))
    column = np.empty((m, n_comp))
    ea = np.empty(n_comp)
    q = 0
    for r in range(n):
        if not _same_pattern_py(missing, r):
            q = _missing_pattern_py(missing, r, M, O)
            _factor_missing_blocks_py(Lt, M, q, chol, log_det)
            for b in range(q):
                for a in range(q):
                    for k in range(n_comp):
                        unit[a, k] = 1.0 if a == b else 0.0
                _chol_solve_py(chol, q, unit, column)
                for a in range(q):
                    for k in range(n_comp):
                        inverse[a, b, k] = column[a, k]
        e_at = e_offsets[r]
        for a in range(q):
            base = e_at + a * n_comp
            for k in range(n_comp):
                ea[k] = resp[r, k] * completed[base + k]
                first[M[a], k] += ea[k]
            for i in range(m):
                y = Y[r, i]
                for k in range(n_comp):
                    cross_t[M[a], i, k] += ea[k] * y
            for b in range(q):
                other = e_at + b * n_comp
                for k in range(n_comp):
                    mm[M[a], M[b], k] += (ea[k] * completed[other + k]
                                          + resp[r, k] * inverse[a, b, k])


#: Whether numba is installed (the compiled kernels exist); found without importing it.
NUMBA_AVAILABLE = importlib.util.find_spec("numba") is not None


_COMPILING = threading.Lock()


def _kernels():
    """The compiled kernels, built once (under a lock: a sweep's threads may ask together)."""
    with _COMPILING:
        return _compile()


@functools.cache
def _compile():
    """The compiled kernels ``(softmax_columns, quadratic_features, estep_coefficients,
    missing_rows_conditionals, missing_rows_moments)``, numba imported on the first call."""
    import numba

    jit = numba.njit(fastmath={"contract"}, nogil=True, cache=True, error_model="numpy")
    # The missing-value kernels are small loops over a row's coordinates: reassociating
    # their sums lets them vectorise (a few units in the last place of their results).
    # Their helpers are compiled first, inlined, so that the kernels call the compiled
    # versions (numba resolves the globals of a function it compiles).
    loose = numba.njit(fastmath=True, nogil=True, cache=True, error_model="numpy")
    helper = numba.njit(fastmath=True, nogil=True, cache=True, error_model="numpy",
                        inline="always")
    for name in ("_missing_pattern_py", "_same_pattern_py", "_factor_missing_blocks_py",
                 "_chol_solve_py"):
        globals()[name] = helper(globals()[name])
    return (jit(_softmax_columns_py), jit(_quadratic_features_py),
            jit(_estep_coefficients_py), loose(_missing_rows_conditionals_py),
            loose(_missing_rows_moments_py))


def numba_version() -> str | None:
    """numba's version (importing it), or None without numba.

    Returns
    -------
    str or None
    """
    if not NUMBA_AVAILABLE:
        return None
    import numba

    return numba.__version__


def quadratic_features_into(X: np.ndarray, shift: np.ndarray, F_t: np.ndarray) -> np.ndarray:
    """Compiled counterpart of :func:`dask_biglearn.kernels.features.quadratic_features`.

    ``X`` is float32 or float64; other dtypes are converted first.
    """
    if X.dtype not in (np.float32, np.float64) or not X.flags.c_contiguous:
        X = np.ascontiguousarray(X, dtype=np.float64)
    _kernels()[1](X, shift, F_t)
    return F_t


_NO_WEIGHTS = np.empty(0)


def softmax_columns(log_prob_t: np.ndarray, work: np.ndarray, weights=None) -> float:
    """Compiled counterpart of :func:`dask_biglearn.kernels.passes.responsibilities_from_log_prob`.

    ``log_prob_t`` (K, n), float64, C-contiguous, is overwritten with the responsibilities
    (times ``weights``, float64 of length n, when given); ``work`` is a float64 array of at
    least ``3 n`` elements. Returns the (weighted) summed log-likelihood of the n rows (NaN
    when the input is not finite).
    """
    n = log_prob_t.shape[1]
    weights = _NO_WEIGHTS if weights is None else np.ascontiguousarray(weights, np.float64)
    return float(_kernels()[0](log_prob_t, work[:n], work[n : 2 * n], work[2 * n : 3 * n],
                               weights))


def estep_coefficients_into(log_weights, means, covariances, shift, theta) -> int:
    """Compiled counterpart of :func:`dask_biglearn.algebra.estep_coefficients`.

    Writes ``theta`` (W, K) and returns -1, or the index of the first component whose
    covariance is not positive definite (``theta`` is then incomplete). All arrays float64.
    """
    m = means.shape[1]
    work = np.empty((2, m, m))
    return int(_kernels()[2](log_weights, means, covariances, shift,
                             float(np.log(2.0 * np.pi)), theta, work))


def missing_rows_conditionals(Y, missing, precisions_t, centres_t, corr, completed,
                              e_offsets) -> None:
    """Compiled completion of incomplete rows (full covariances): see
    :class:`dask_biglearn.kernels.missing.Completion`.

    Parameters
    ----------
    Y : ndarray of shape (n_rows, n_dims)
        The rows, filled and centred, those that miss the same coordinates consecutive.
    missing : ndarray of bool of shape (n_rows, n_dims)
    precisions_t : ndarray of shape (n_dims, n_dims, n_components)
        The precisions, components innermost.
    centres_t : ndarray of shape (n_dims, n_components)
    corr : ndarray of shape (n_rows, n_components)
        The log-density corrections (written).
    completed : ndarray of shape (e_offsets[-1],)
        Each row's completed values on its ``q`` missing coordinates, ``(q, K)`` from
        ``e_offsets[r]`` (written).
    e_offsets : ndarray of int of shape (n_rows + 1,)
    """
    _kernels()[3](Y, missing, precisions_t, centres_t, corr, completed, e_offsets)


def missing_rows_moments(Y, missing, precisions_t, resp, completed, e_offsets, first, cross_t,
                         mm) -> None:
    """Compiled moments that complete incomplete rows (full covariances), components
    innermost: see :meth:`dask_biglearn.kernels.missing.Completion.add_moments`.

    Parameters
    ----------
    Y : ndarray of shape (n_rows, n_dims)
        The rows, filled and centred, in :func:`missing_rows_conditionals`'s order.
    missing : ndarray of bool of shape (n_rows, n_dims)
    precisions_t : ndarray of shape (n_dims, n_dims, n_components)
    resp : ndarray of shape (n_rows, n_components)
        The rows' (weighted) responsibilities.
    completed, e_offsets : ndarray
        What :func:`missing_rows_conditionals` wrote.
    first : ndarray of shape (n_dims, n_components)
        Gains ``r e`` (added to).
    cross_t : ndarray of shape (n_dims, n_dims, n_components)
        Gains ``r e y'^T`` in its missing rows (added to).
    mm : ndarray of shape (n_dims, n_dims, n_components)
        Gains ``r (e e^T + C)`` on the missing block (added to).
    """
    _kernels()[4](Y, missing, precisions_t, resp, completed, e_offsets, first, cross_t, mm)


def warm_up() -> bool:
    """Compile (or load from the on-disk cache) every kernel specialisation a fit uses.

    Worth calling once when building an image (with ``NUMBA_CACHE_DIR`` set), so that worker
    processes start without compiling. Returns whether the compiled kernels exist (numba).
    """
    if not NUMBA_AVAILABLE:
        return False
    for dtype in (np.float64, np.float32):
        quadratic_features_into(np.zeros((2, 2), dtype=dtype), np.zeros(2), np.empty((6, 2)))
    softmax_columns(np.zeros((2, 3)), np.empty(9))
    estep_coefficients_into(np.zeros(1), np.zeros((1, 1)), np.ones((1, 1, 1)), np.zeros(1),
                            np.empty((3, 1)))
    return True
