"""The subspace matched by one BigLearn-EM outer iteration, and the law it is drawn from.

Every matching is EM in a projected space ``y = P x`` with ``P`` of orthonormal rows:

========================  ==========================================  ==========
matching                  P                                           rows m
========================  ==========================================  ==========
``"joint"``               the identity                                D
``"marginal"``            rows T of the identity (a coordinate subset)  |T|
``"rotated_marginal"``    a Haar-random m-frame (rows T of a Haar A)  |T|
========================  ==========================================  ==========

All randomness lives here and is drawn on the driver from one ``numpy.random.Generator``,
so a seed fixes the sequence whatever the chunking or the number of workers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Real
from types import MappingProxyType

import numpy as np

MATCHING_KINDS = ("joint", "marginal", "rotated_marginal")

#: Reference matching probabilities (the authors' code): what ``matching_probs=None`` means.
DEFAULT_MATCHING_PROBS = MappingProxyType({"joint": 0.4, "marginal": 0.1, "rotated_marginal": 0.5})


@dataclass(frozen=True)
class Projection:
    """Subspace matched in one outer iteration.

    Parameters
    ----------
    kind : {"joint", "marginal", "rotated_marginal"}
        The matching.
    matrix : ndarray of shape (n_dims, n_features) or None
        ``P``, orthonormal rows; ``None`` stands for the identity (joint matching).
    """

    kind: str
    matrix: np.ndarray | None

    @property
    def is_identity(self) -> bool:
        """Whether this is the identity (a joint matching, ``matrix`` is None)."""
        return self.matrix is None

    def n_dims(self, n_features: int) -> int:
        """Dimension ``m`` of the projected space.

        Parameters
        ----------
        n_features : int
            Dimension ``D`` of the data.

        Returns
        -------
        int
            ``D`` for the identity, else the number of rows of ``P``.
        """
        return n_features if self.matrix is None else self.matrix.shape[0]

    @classmethod
    def identity(cls) -> Projection:
        """The identity projection of a joint matching.

        Returns
        -------
        Projection
            ``Projection("joint", None)``.
        """
        return cls("joint", None)


def haar_frame(rng: np.random.Generator, n_features: int, n_dims: int) -> np.ndarray:
    """``n_dims`` orthonormal rows distributed as ``n_dims`` rows of a Haar-random rotation.

    QR of a Gaussian ``(n_features, n_dims)`` matrix with the signs of ``R``'s diagonal fixed,
    which avoids drawing the full ``D x D`` rotation.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the Gaussian draws.
    n_features : int
        Dimension ``D`` of the full space.
    n_dims : int
        Number ``m <= D`` of rows of the frame.

    Returns
    -------
    ndarray of shape (n_dims, n_features)
        Orthonormal rows.
    """
    G = rng.standard_normal((n_features, n_dims))
    Q, R = np.linalg.qr(G)
    signs = np.sign(np.diagonal(R))
    signs[signs == 0] = 1.0
    return (Q * signs).T.copy()


def validate_matching_probs(matching_probs) -> dict[str, float]:
    """Check a ``{kind: probability}`` mapping of matching probabilities.

    Parameters
    ----------
    matching_probs : Mapping of str to float
        Probabilities of the kinds of :data:`MATCHING_KINDS` (missing kinds count as 0):
        finite, non-negative numbers summing to 1.

    Returns
    -------
    dict of str to float
        The probabilities, with every kind present.

    Raises
    ------
    TypeError
        If ``matching_probs`` is not a mapping.
    ValueError
        If it names an unknown kind, or its probabilities are invalid or do not sum to 1.
    """
    if not isinstance(matching_probs, Mapping):
        raise TypeError(
            f"matching_probs must be a dict (or other mapping) from {MATCHING_KINDS} to "
            "probabilities, "
            f"got {type(matching_probs).__name__}."
        )
    unknown = set(matching_probs) - set(MATCHING_KINDS)
    if unknown:
        raise ValueError(
            f"matching_probs has unknown matching kinds {sorted(unknown)}; "
            f"allowed are {list(MATCHING_KINDS)}."
        )
    probs = {}
    for kind in MATCHING_KINDS:
        p = matching_probs.get(kind, 0.0)
        if not isinstance(p, Real) or isinstance(p, bool) or not np.isfinite(p) or p < 0:
            raise ValueError(f"matching_probs[{kind!r}] must be a number >= 0, got {p!r}.")
        probs[kind] = float(p)
    total = sum(probs.values())
    if abs(total - 1.0) > 1e-8:
        raise ValueError(f"matching_probs must sum to 1, they sum to {total:.6g}.")
    return probs


def validate_beta(marginal_size_beta) -> tuple[float, float]:
    """Check the ``(a, b)`` parameters of the Beta law of the subset-size fraction.

    Parameters
    ----------
    marginal_size_beta : tuple of (float, float)
        The pair ``(a, b)``, finite and positive.

    Returns
    -------
    a : float
        First shape parameter.
    b : float
        Second shape parameter.

    Raises
    ------
    ValueError
        If it is not a pair of finite positive numbers.
    """
    try:
        a, b = (float(v) for v in marginal_size_beta)
    except (TypeError, ValueError):
        raise ValueError(
            f"marginal_size_beta must be a pair (a, b) of positive numbers, "
            f"got {marginal_size_beta!r}."
        ) from None
    if not (np.isfinite(a) and np.isfinite(b) and a > 0 and b > 0):
        raise ValueError(f"marginal_size_beta parameters must be > 0, got ({a}, {b}).")
    return a, b


@dataclass(frozen=True)
class MatchingSchedule:
    """The law of one outer iteration's projection.

    The kind is drawn with ``probs``; the subset size is ``m = max(1, floor(D * b))`` with
    ``b ~ Beta(a, b_)`` (reference: ``a = 5, b_ = 1``); a marginal subset is a uniform random
    ``m``-subset of the coordinates (kept in increasing order) and a rotated marginal frame is a
    Haar-random ``m``-frame.

    Parameters
    ----------
    probs : dict of str to float
        Probability of each matching kind (checked by :func:`validate_matching_probs`).
    beta : tuple of (float, float), default=(5.0, 1.0)
        Parameters ``(a, b_)`` of the Beta law of the subset-size fraction (checked by
        :func:`validate_beta`).
    """

    probs: dict
    beta: tuple[float, float] = (5.0, 1.0)

    def __post_init__(self):
        object.__setattr__(self, "probs", validate_matching_probs(self.probs))
        object.__setattr__(self, "beta", validate_beta(self.beta))

    def subset_size(self, rng: np.random.Generator, n_features: int) -> int:
        """Draw the number of rows ``m = max(1, floor(D * b))``, ``b ~ Beta(a, b_)``.

        Parameters
        ----------
        rng : numpy.random.Generator
            Source of the draw.
        n_features : int
            Dimension ``D`` of the data.

        Returns
        -------
        int
            ``m``, between 1 and ``D``.
        """
        frac = rng.beta(*self.beta)
        return int(min(n_features, max(1, np.floor(n_features * frac))))

    def sample(self, rng: np.random.Generator, n_features: int) -> Projection:
        """Draw the next projection.

        Always consumes the same draws for the same kind.

        Parameters
        ----------
        rng : numpy.random.Generator
            The driver's generator.
        n_features : int
            Dimension ``D`` of the data.

        Returns
        -------
        Projection
            The kind drawn and its matrix.
        """
        kinds = MATCHING_KINDS
        p = np.array([self.probs[k] for k in kinds])
        kind = kinds[int(rng.choice(len(kinds), p=p))]
        if kind == "joint":
            return Projection.identity()
        m = self.subset_size(rng, n_features)
        if kind == "marginal":
            subset = np.sort(rng.choice(n_features, size=m, replace=False))
            return Projection(kind, np.eye(n_features)[subset])
        return Projection(kind, haar_frame(rng, n_features, m))
