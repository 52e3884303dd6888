"""pytest markers that several test modules share (imports pytest: for the tests only)."""

from __future__ import annotations

import pytest

from ..kernels._compiled import NUMBA_AVAILABLE

__all__ = ["needs_numba"]

#: Tests that compare the compiled kernels with NumPy: nothing to compare without numba.
needs_numba = pytest.mark.skipif(not NUMBA_AVAILABLE, reason="numba is not installed")
