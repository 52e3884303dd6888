"""Row samples defined by the rows' global indices and a seed, never by chunk boundaries.

Every row ``i`` gets a 64-bit key ``hash(seed, i)`` (SplitMix64, a bijective mixer of the
index); a sample of ``size`` rows is the ``size`` rows with the smallest keys, a uniform sample
without replacement. A block keeps its own smallest keys and samples combine by keeping the
smallest of their union, so any chunking, any grouping and any number of workers give the
same rows. The driver orders the result by global index.

A sample kept on the workers is taken block by block instead, without a combine: the rows
whose key is at most the ``size``-th smallest key of all rows (:func:`sample_key_threshold`,
computed from the row indices alone, without reading the data; :func:`rows_up_to_key`): the
same rows as the driver's sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(z: np.ndarray) -> np.ndarray:
    z = z ^ (z >> np.uint64(30))
    z = z * _MIX1
    z = z ^ (z >> np.uint64(27))
    z = z * _MIX2
    return z ^ (z >> np.uint64(31))


def row_keys(start: int, stop: int, seed: int) -> np.ndarray:
    """The sampling keys of global rows ``start .. stop - 1``.

    Parameters
    ----------
    start : int
        Global index of the first row.
    stop : int
        One past the global index of the last row.
    seed : int
        Seed of the sample: the same rows and seed always give the same keys.

    Returns
    -------
    keys : ndarray of shape (stop - start,), dtype uint64
        ``hash(seed, i)`` of each row ``i``.
    """
    with np.errstate(over="ignore"):
        salt = _splitmix64(np.array([seed], dtype=np.uint64) * _GOLDEN + _GOLDEN)[0]
        index = np.arange(start, stop, dtype=np.uint64)
        return _splitmix64(index * _GOLDEN + salt)


@dataclass(frozen=True)
class RowSample:
    """Up to ``size`` rows with the smallest keys among some rows of the data.

    Parameters
    ----------
    keys : ndarray of shape (n,), dtype uint64
        Sampling keys of the rows (:func:`row_keys`).
    index : ndarray of shape (n,), dtype int64
        Global row indices.
    rows : ndarray of shape (n, n_features), dtype float64
        The rows themselves.
    size : int
        How many rows the whole sample keeps.
    """

    keys: np.ndarray
    index: np.ndarray
    rows: np.ndarray
    size: int

    def smallest(self) -> RowSample:
        """Keep the ``size`` rows with the smallest keys (ties, improbable, by index).

        Returns
        -------
        RowSample
            This sample when it has at most ``size`` rows, else a new one of ``size`` rows.
        """
        if len(self.keys) <= self.size:
            return self
        keep = np.lexsort((self.index, self.keys))[: self.size]
        return RowSample(self.keys[keep], self.index[keep], self.rows[keep], self.size)


def candidate_fraction(size: int, n_rows: int) -> float:
    """A key threshold below which at least ``size`` of ``n_rows`` rows fall.

    The threshold, as a fraction of the key range, holds at least ``size`` rows with
    overwhelming probability: the expected ``size / n_rows`` plus ten binomial standard
    deviations. Blocks keep only their rows below it, so a sample pass holds about ``size``
    rows in all, not ``size`` per block.

    Parameters
    ----------
    size : int
        Rows of the sample.
    n_rows : int
        Rows of the data.

    Returns
    -------
    fraction : float
        Fraction of the key range, in ``(0, 1]``; 1 when ``size >= n_rows``.
    """
    if size >= n_rows:
        return 1.0
    p = size / n_rows
    return min(1.0, p + 10.0 * np.sqrt(p * (1 - p) / n_rows) + 10.0 / n_rows)


def sample_blocks(blocks, offsets, seed: int, size: int, fraction: float = 1.0) -> RowSample:
    """The sample's rows among ``blocks``.

    Each block keeps its ``size`` smallest keys among those below ``fraction`` of the key
    range, and the blocks' samples are combined (:func:`combine_samples`).

    Parameters
    ----------
    blocks : list of ndarray of shape (n_rows_i, n_features)
        Chunks of the data, any real dtype.
    offsets : list of int
        Global index of the first row of each block.
    seed : int
        Seed of the sample.
    size : int
        Rows of the sample.
    fraction : float, default=1.0
        Only rows whose key is below this fraction of the key range are candidates
        (:func:`candidate_fraction`; 1 keeps every candidate).

    Returns
    -------
    RowSample
        The ``size`` rows (at most) of ``blocks`` with the smallest keys.
    """
    parts = []
    n_features = blocks[0].shape[1] if blocks else 0
    threshold = key_threshold(fraction) if fraction < 1.0 else None
    for X, offset in zip(blocks, offsets, strict=True):
        keys = row_keys(offset, offset + X.shape[0], seed)
        local = np.arange(len(keys)) if threshold is None else np.flatnonzero(keys < threshold)
        if len(local) > size:
            local = local[np.argpartition(keys[local], size - 1)[:size]] if size else local[:0]
        parts.append(RowSample(keys[local], offset + local.astype(np.int64),
                               np.asarray(X[local], dtype=np.float64), size))
    if not parts:
        return RowSample(np.array([], np.uint64), np.array([], np.int64),
                         np.empty((0, n_features)), size)
    return combine_samples(parts)


def combine_samples(parts) -> RowSample:
    """The sample of the union of the rows of ``parts`` (associative and commutative).

    Parameters
    ----------
    parts : RowSample or iterable of RowSample
        Samples of disjoint rows, with the same ``size``; a single sample is returned as is.

    Returns
    -------
    RowSample
        The ``size`` rows with the smallest keys among all of ``parts``.
    """
    if isinstance(parts, RowSample):
        return parts
    parts = list(parts)
    merged = RowSample(np.concatenate([p.keys for p in parts]),
                       np.concatenate([p.index for p in parts]),
                       np.concatenate([p.rows for p in parts]), parts[0].size)
    return merged.smallest()


def key_threshold(fraction: float) -> np.uint64:
    """The key below which rows form a Bernoulli sample of ``fraction`` of all rows.

    Parameters
    ----------
    fraction : float
        Expected fraction of rows kept, clipped to ``[0, 1]``.

    Returns
    -------
    threshold : numpy.uint64
        ``fraction * 2**64``, capped at the largest key.
    """
    return np.uint64(min(2**64 - 1, int(max(0.0, fraction) * 2.0**64)))


#: Rows whose keys :func:`sample_key_threshold` hashes at a time (8 bytes each).
KEY_PIECE_ROWS = 1 << 20


def sample_key_threshold(n_rows: int, seed: int, size: int) -> np.uint64:
    """The largest key of the sample of ``size`` of ``n_rows`` rows: its rows are those with
    keys at most this.

    Computed from the row indices alone (no data is read), a million rows at a time, keeping
    only the candidates below :func:`candidate_fraction` (about ``size`` keys in memory).

    Parameters
    ----------
    n_rows : int
        Rows of the data.
    seed : int
        Seed of the sample.
    size : int
        Rows of the sample, at least 1.

    Returns
    -------
    threshold : numpy.uint64
        The ``size``-th smallest key (the largest key when ``size >= n_rows``).
    """
    if size < 1:
        raise ValueError(f"A sample holds at least one row, got size={size}.")
    if size >= n_rows:
        return np.uint64(2**64 - 1)
    fraction = candidate_fraction(size, n_rows)
    while True:
        below = key_threshold(fraction)
        candidates = [keys[keys < below] if fraction < 1.0 else keys
                      for keys in (row_keys(start, min(start + KEY_PIECE_ROWS, n_rows), seed)
                                   for start in range(0, n_rows, KEY_PIECE_ROWS))]
        candidates = np.concatenate(candidates)
        if len(candidates) >= size:
            return np.partition(candidates, size - 1)[size - 1]
        fraction = 1.0  # vanishingly rare: fewer candidates than rows asked for


def rows_up_to_key(X, offset: int, seed: int, threshold) -> np.ndarray:
    """The rows of block ``X`` whose key is at most ``threshold``.

    A sample each block takes alone, with no combine: with
    :func:`sample_key_threshold`'s threshold, the block's rows of the sample.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
        The block, any real dtype.
    offset : int
        Global index of the block's first row.
    seed : int
        Seed of the sample.
    threshold : numpy.uint64
        The largest key kept.

    Returns
    -------
    rows : ndarray of shape (n_kept, n_features)
        The kept rows, in block order, as float64.
    """
    keys = row_keys(offset, offset + X.shape[0], seed)
    return np.asarray(X[keys <= np.uint64(threshold)], dtype=np.float64)


def in_index_order(sample: RowSample) -> np.ndarray:
    """The sample's rows ordered by their global index.

    Parameters
    ----------
    sample : RowSample
        A combined sample.

    Returns
    -------
    rows : ndarray of shape (n, n_features)
        Its rows, by increasing global index.
    """
    return sample.rows[np.argsort(sample.index, kind="stable")]
