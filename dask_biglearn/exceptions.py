"""Warnings and errors of our own, importable from every layer (this module imports nothing of
the package)."""

from __future__ import annotations

__all__ = ["DegenerateFitWarning", "SelectionBoundaryWarning"]


class DegenerateFitWarning(UserWarning):
    """A fit that ended degenerate: data with no spread, or components that all collapsed
    onto one point. The model is returned, but it describes nothing a mixture can tell
    apart; the message says what to check (scale the data, fewer components)."""


class SelectionBoundaryWarning(UserWarning):
    """A selection of the number of components chose the largest (or the smallest, above
    1) candidate of its covariance type: the criterion may keep improving beyond the range,
    so widen ``n_components``."""
