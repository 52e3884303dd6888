"""Features of the (projected, centred) data, in sub-blocks and reused buffers.

The Gaussian log-density ``log N(y | mu~, S~)`` is linear in the *quadratic features*
``F(y) = [1, y', y'_i y'_j (i <= j)]`` of ``y' = P (x - shift)``, with ``shift`` a fixed centre
of the data (its mean). So the E-step of a pass is one matrix product with coefficients built
on the driver, and all its statistics are a second one (:mod:`dask_biglearn.kernels.passes`).
The features are stored transposed (one *column* per row of data) so that both products are
contiguous row operations.

A Gaussian with a *diagonal* covariance needs only the *diagonal features*
``[1, y', y'^2]`` (:func:`diagonal_features`, width ``1 + 2m`` instead of
``1 + m + m (m + 1) / 2``): the passes of diagonal and spherical mixtures cost ``O(N K D)``,
not ``O(N K D^2)``.
"""

from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np

from ._compiled import quadratic_features_into

#: Rows per sub-block inside a chunk (at least, unless the features are very wide): the
#: features of one sub-block should stay in cache between the E-step product and the
#: statistics product.
DEFAULT_BLOCK_ROWS = 1024

#: Narrow features (low D) get more rows per sub-block, up to this many bytes of features
#: and :data:`MAX_BLOCK_ROWS` rows, so that small problems make few kernel calls.
BLOCK_CACHE_BYTES = 2**20
MAX_BLOCK_ROWS = 16384

#: Bytes of quadratic features per sub-block (at most): high-D data uses fewer rows.
BLOCK_FEATURE_BYTES = 32 * 2**20


def n_quadratic_features(n_features: int) -> int:
    """Width of the quadratic features ``F(x) = [1, x, x_i x_j (i <= j)]``.

    Parameters
    ----------
    n_features : int
        Dimension ``D`` of ``x``.

    Returns
    -------
    width : int
        ``1 + D + D (D + 1) / 2``.
    """
    return 1 + n_features + n_features * (n_features + 1) // 2


def n_diagonal_features(n_features: int) -> int:
    """Width of the diagonal features ``F(x) = [1, x, x^2]``.

    Parameters
    ----------
    n_features : int
        Dimension ``D`` of ``x``.

    Returns
    -------
    width : int
        ``1 + 2 D``.
    """
    return 1 + 2 * n_features


def feature_width(n_features: int, diagonal: bool = False) -> int:
    """Width of the quadratic (or, with ``diagonal``, the diagonal) features.

    Parameters
    ----------
    n_features : int
        Dimension ``D`` of ``x``.
    diagonal : bool, default=False
        The diagonal features ``[1, x, x^2]``.

    Returns
    -------
    width : int
    """
    return n_diagonal_features(n_features) if diagonal else n_quadratic_features(n_features)


def default_block_rows(n_features: int) -> int:
    """Rows per sub-block for data of ``n_features`` columns.

    :data:`DEFAULT_BLOCK_ROWS`, more when the features are narrow (up to
    :data:`BLOCK_CACHE_BYTES` of features and :data:`MAX_BLOCK_ROWS` rows), fewer when they
    are very wide (at most :data:`BLOCK_FEATURE_BYTES` of features, and never fewer than 64
    rows).

    Parameters
    ----------
    n_features : int
        Dimension of the (projected) data whose quadratic features are formed.

    Returns
    -------
    block_rows : int
        Rows per sub-block.
    """
    row_bytes = 8 * n_quadratic_features(n_features)
    rows = min(MAX_BLOCK_ROWS, max(DEFAULT_BLOCK_ROWS, BLOCK_CACHE_BYTES // row_bytes))
    return int(max(64, min(rows, BLOCK_FEATURE_BYTES // row_bytes)))


@lru_cache(maxsize=64)
def triu_indices(n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-major upper triangle ``(i, j), i <= j``: the order of the quadratic features.

    Parameters
    ----------
    n_features : int
        Size ``D`` of the square matrices.

    Returns
    -------
    iu : ndarray of shape (n_features * (n_features + 1) // 2,)
        Row indices ``i``.
    ju : ndarray of shape (n_features * (n_features + 1) // 2,)
        Column indices ``j``, with ``i <= j``.
    """
    iu = np.triu_indices(n_features)
    return iu[0].copy(), iu[1].copy()


def row_blocks(n_rows: int, block_rows: int):
    """Bounds of consecutive sub-blocks of at most ``block_rows`` rows.

    Parameters
    ----------
    n_rows : int
        Rows to cover.
    block_rows : int
        Maximum rows per sub-block.

    Yields
    ------
    start : int
        First row of the sub-block.
    stop : int
        One past its last row.
    """
    for start in range(0, n_rows, block_rows):
        yield start, min(start + block_rows, n_rows)


_scratch = threading.local()


def scratch_buffer(name: str, size: int, dtype=np.float64) -> np.ndarray:
    """A buffer of ``size`` elements, reused across calls in this thread.

    Passes reuse their temporaries instead of allocating them every time: large fresh
    allocations cost page faults, all the more under distributed's nanny, which sets
    ``MALLOC_TRIM_THRESHOLD_`` low for its workers.

    Parameters
    ----------
    name : str
        Which of the thread's buffers to use; each name has its own.
    size : int
        Number of elements needed; the buffer grows when it is smaller.
    dtype : dtype, default=numpy.float64
        Its type (each name has one buffer per type).

    Returns
    -------
    buffer : ndarray of shape (size,)
        A view of the thread's buffer, uninitialised; valid until the next call with the same
        ``name`` in this thread.
    """
    buffers = getattr(_scratch, "buffers", None)
    if buffers is None:
        buffers = _scratch.buffers = {}
    key = (name, np.dtype(dtype).char)
    buf = buffers.get(key)
    if buf is None or buf.size < size:
        buf = buffers[key] = np.empty(size, dtype=dtype)
    return buf[:size]


def quadratic_features(X, shift, out=None, *, compiled: bool = False,
                       dtype=np.float64) -> np.ndarray:
    """Quadratic features of ``x' = x - shift``, one *column* per row of ``X``.

    Row ``0`` is ones, rows ``1..D`` are ``x'``, the remaining rows are ``x'_i x'_j`` for
    ``i <= j`` (row-major upper triangle).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Rows of data, any real dtype (promoted to float64).
    shift : ndarray of shape (n_features,)
        Centre subtracted from every row.
    out : ndarray of shape (n_quadratic_features(n_features), n_samples), optional
        Scratch buffer to write into (of type ``dtype``, C-contiguous).
    compiled : bool, default=False
        Use the numba twin of :mod:`dask_biglearn.kernels._compiled` (the same values, bit
        for bit); ``False`` runs this NumPy code, the reference.
    dtype : {numpy.float64, numpy.float32}, default=numpy.float64
        Type of the features (of ``out`` when given): ``x'`` is formed in float64 and
        rounded, the products are of the rounded values.

    Returns
    -------
    F_t : ndarray of shape (n_quadratic_features(n_features), n_samples)
        The features, one column per row of ``X`` (``out`` when given).
    """
    n, d = X.shape
    F_t = np.empty((n_quadratic_features(d), n), dtype=dtype) if out is None else out
    if compiled:
        return quadratic_features_into(X, np.asarray(shift, dtype=np.float64), F_t)
    F_t[0] = 1.0
    Xc = F_t[1 : 1 + d]
    np.subtract(X.T, shift[:, None], out=Xc, dtype=np.float64)  # float32 is promoted first
    start = 1 + d
    # Rows x_i * x_j for j >= i: D broadcast products of contiguous rows.
    for i in range(d):
        stop = start + d - i
        np.multiply(Xc[i], Xc[i:], out=F_t[start:stop])
        start = stop
    return F_t


def diagonal_features(X, shift, out=None, *, dtype=np.float64) -> np.ndarray:
    """Diagonal features ``[1, x', x'^2]`` of ``x' = x - shift``, one *column* per row of ``X``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Rows of data, any real dtype (promoted to float64).
    shift : ndarray of shape (n_features,)
        Centre subtracted from every row.
    out : ndarray of shape (n_diagonal_features(n_features), n_samples), optional
        Scratch buffer to write into (of type ``dtype``, C-contiguous).
    dtype : {numpy.float64, numpy.float32}, default=numpy.float64
        Type of the features: ``x'`` is formed in float64 and rounded, the squares are of the
        rounded values (as :func:`quadratic_features`).

    Returns
    -------
    F_t : ndarray of shape (n_diagonal_features(n_features), n_samples)
        Row ``0`` ones, rows ``1..D`` ``x'``, rows ``D+1..2D`` ``x'^2``.
    """
    n, d = X.shape
    F_t = np.empty((n_diagonal_features(d), n), dtype=dtype) if out is None else out
    F_t[0] = 1.0
    Xc = F_t[1 : 1 + d]
    np.subtract(X.T, np.asarray(shift, dtype=np.float64)[:, None], out=Xc, dtype=np.float64)
    np.multiply(Xc, Xc, out=F_t[1 + d :])
    return F_t


def projected_features(X, shift, projection, out=None, *, compiled: bool = False,
                       dtype=np.float64, diagonal: bool = False) -> np.ndarray:
    """Quadratic (or diagonal) features of ``y' = P (x - shift)``, one column per row of ``X``.

    The features of ``x - shift`` when ``projection`` is None (see
    :func:`quadratic_features` and :func:`diagonal_features`).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Rows of data, any real dtype.
    shift : ndarray of shape (n_features,)
        Centre subtracted from every row before the projection.
    projection : ndarray of shape (n_dims, n_features) or None
        Rows of ``P``; None means the identity.
    out : ndarray of shape (n_quadratic_features(n_dims), n_samples), optional
        Scratch buffer to write into (of type ``dtype``, C-contiguous).
    compiled : bool, default=False
        Use the numba twin (the same values, bit for bit); ``False`` runs the NumPy
        reference.
    dtype : {numpy.float64, numpy.float32}, default=numpy.float64
        Type of the features (``y'`` is formed in float64).
    diagonal : bool, default=False
        The diagonal features ``[1, y', y'^2]`` (:func:`diagonal_features`).

    Returns
    -------
    F_t : ndarray of shape (feature_width(n_dims, diagonal), n_samples)
        The features, one column per row of ``X`` (``n_dims = n_features`` without a
        projection).
    """
    if projection is not None:
        X = np.subtract(X, shift, dtype=np.float64) @ projection.T
        shift = np.zeros(projection.shape[0])
    if diagonal:
        return diagonal_features(X, shift, out=out, dtype=dtype)
    return quadratic_features(X, shift, out=out, compiled=compiled, dtype=dtype)


def block_features(X, shift, projection, block_rows: int, *, compiled: bool = False,
                   dtype=np.float64, diagonal: bool = False):
    """Yield the features of ``X`` sub-block by sub-block, in a reused buffer.

    Each sub-block's features are written into this thread's scratch buffer (see
    :func:`scratch_buffer`), so they are valid only until the next sub-block is produced.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Rows of data, any real dtype.
    shift : ndarray of shape (n_features,)
        Centre subtracted from every row before the projection.
    projection : ndarray of shape (n_dims, n_features) or None
        Rows of ``P``; None means the identity.
    block_rows : int
        Maximum rows per sub-block.
    compiled : bool, default=False
        Use the numba twin (the same values, bit for bit); ``False`` runs the NumPy
        reference.
    dtype : {numpy.float64, numpy.float32}, default=numpy.float64
        Type of the features.
    diagonal : bool, default=False
        The diagonal features ``[1, y', y'^2]``.

    Yields
    ------
    F_t : ndarray of shape (feature_width(n_dims, diagonal), n_block_rows)
        The features of one sub-block, one column per row (see
        :func:`projected_features`).
    """
    width = feature_width(X.shape[1] if projection is None else projection.shape[0], diagonal)
    for start, stop in row_blocks(X.shape[0], block_rows):
        buf = scratch_buffer("features", (stop - start) * width, dtype)
        yield projected_features(X[start:stop], shift, projection,
                                 out=buf.reshape(width, stop - start), compiled=compiled,
                                 dtype=dtype, diagonal=diagonal)


def unpack_second_moments(upper: np.ndarray, n_features: int) -> np.ndarray:
    """Rebuild symmetric matrices from their packed upper triangles.

    Parameters
    ----------
    upper : ndarray of shape (n_matrices, n_features * (n_features + 1) // 2)
        Upper triangles in the row-major order of :func:`triu_indices`.
    n_features : int
        Size ``D`` of the matrices.

    Returns
    -------
    full : ndarray of shape (n_matrices, n_features, n_features)
        The symmetric matrices.
    """
    iu, ju = triu_indices(n_features)
    full = np.zeros((upper.shape[0], n_features, n_features))
    full[:, iu, ju] = upper
    full[:, ju, iu] = upper
    return full


class FeatureCache:
    """The features of one in-memory array, kept between passes (the in-process route).

    Small fits make tens of thousands of passes, and the features of the data do not depend
    on the parameters. Within ``max_bytes`` this keeps

    * the features of the data (quadratic, and diagonal for diagonal mixtures), computed on
      first use and reused by every joint pass;
    * the features of ``P x`` for the last ``max_projections`` projections ``P``, reused
      while the next passes use the same ``P`` (the ``n_inner_iter`` local updates of one
      BigLearn-EM outer iteration, for each of the restarts that advance together), each in
      a buffer as large as the data's own quadratic features, reused for the next projection.

    :meth:`features_of` returns None for what does not fit: the pass then computes features
    sub-block by sub-block.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        The in-memory data, any real dtype.
    shift : ndarray of shape (n_features,)
        Centre of the features (the engine's, from its summary pass).
    block_rows : int
        Rows per sub-block of the cached features.
    max_bytes : int
        Budget of all cached features together, in bytes.
    compiled : bool, default=False
        Compute the features with the numba twin (the same values, bit for bit).
    max_projections : int, default=32
        Most projections whose features are kept at once (least recently used dropped
        first): enough for the two explorers of each candidate of a sweep over ten
        (:mod:`dask_biglearn.fit.sweep`), whose passes read every projection in turn.
    dtype : {numpy.float64, numpy.float32}, default=numpy.float64
        Type of the kept features (the products of the passes that use them).

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_features)
        The data.
    shift : ndarray of shape (n_features,)
        The centre, as float64.
    block_rows : int
        Rows per sub-block.
    max_bytes : int
        Budget in bytes.
    max_projections : int
        Most projections kept.
    compiled : bool
        Whether the numba twin computes the features.
    dtype : numpy.dtype
        Type of the kept features.
    """

    def __init__(self, X, shift, block_rows: int, max_bytes: int, *, compiled: bool = False,
                 max_projections: int = 32, dtype=np.float64):
        self.X = X
        self.shift = np.asarray(shift, dtype=np.float64)
        self.block_rows = int(block_rows)
        self.max_bytes = int(max_bytes)
        self.max_projections = int(max_projections)
        self.compiled = bool(compiled)
        self.dtype = np.dtype(dtype)
        self._own = {}  # diagonal -> the data's own block features (None: do not fit)
        self._projected = []  # (copy of P, diagonal, block features, buffer), oldest first

    def _bytes(self, n_dims: int, diagonal: bool = False) -> int:
        return self.dtype.itemsize * self.X.shape[0] * feature_width(n_dims, diagonal)

    def _build(self, projection, diagonal, buffer=None):
        """Features of each sub-block, written into ``buffer`` (flat, of the cache's type) if
        given."""
        n_rows, n_features = self.X.shape
        width = feature_width(n_features if projection is None else projection.shape[0],
                              diagonal)
        if buffer is None:
            buffer = np.empty(width * n_rows, dtype=self.dtype)
        return [
            projected_features(self.X[start:stop], self.shift, projection,
                               out=buffer[width * start : width * stop].reshape(width, -1),
                               compiled=self.compiled, dtype=self.dtype, diagonal=diagonal)
            for start, stop in row_blocks(n_rows, self.block_rows)
        ]

    def _cached_bytes(self) -> int:
        n_features = self.X.shape[1]
        own = sum(self._bytes(n_features, diagonal)
                  for diagonal, features in self._own.items() if features is not None)
        return own + len(self._projected) * self._bytes(n_features)

    def _own_features(self, diagonal: bool):
        """The data's own features, built on first use when they fit the budget (projected
        ones are dropped first to make room)."""
        if diagonal not in self._own:
            needed = self._bytes(self.X.shape[1], diagonal)
            while self._projected and self._cached_bytes() + needed > self.max_bytes:
                self._projected.pop(0)
            fits = self._cached_bytes() + needed <= self.max_bytes
            self._own[diagonal] = self._build(None, diagonal) if fits else None
        return self._own[diagonal]

    def _free_buffer(self):
        """A buffer for another projection: a new one while the budget allows, else the
        oldest projection's (dropped first, so it is never paired with a stale P)."""
        size = self._bytes(self.X.shape[1])
        if (len(self._projected) < self.max_projections
                and self._cached_bytes() + size <= self.max_bytes):
            return np.empty(size // self.dtype.itemsize, dtype=self.dtype)
        if self._projected:
            return self._projected.pop(0)[3]
        return None

    def features_of(self, shift, projection, diagonal: bool = False):
        """Cached block features for ``shift`` and ``projection``, or None.

        The features asked for are computed here (the data's own, or a new projection's in
        a free buffer or the least recently used projection's) when they fit the budget.

        Parameters
        ----------
        shift : ndarray of shape (n_features,)
            Centre of the features asked for.
        projection : ndarray of shape (n_dims, n_features) or None
            Rows of ``P``; None asks for the data's own features.
        diagonal : bool, default=False
            The diagonal features ``[1, y', y'^2]`` rather than the quadratic ones.

        Returns
        -------
        features : list of ndarray of shape (feature_width(n_dims, diagonal), n_block_rows) \
or None
            The features sub-block by sub-block, or None when they are not the cache's
            (another centre) or do not fit it.
        """
        if not np.array_equal(shift, self.shift):
            return None
        if projection is None:
            return self._own_features(diagonal)
        for i, (P, diag, features, _) in enumerate(self._projected):
            if diag == diagonal and np.array_equal(P, projection):
                self._projected.append(self._projected.pop(i))  # most recently used last
                return features
        # Projections have m <= D rows: their features fit a buffer of the data's width.
        if projection.shape[0] > self.X.shape[1]:
            return None
        buffer = self._free_buffer()
        if buffer is None:
            return None
        features = self._build(projection, diagonal, buffer)
        self._projected.append((np.array(projection), diagonal, features, buffer))
        return features

    def clear(self):
        """Drop every cached array."""
        self._own = {}
        self._projected = []
