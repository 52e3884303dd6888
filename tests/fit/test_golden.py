"""No change of results: short fits reproduce the parameters recorded before a refactor.

``tests/data/golden_fits.npz`` was written by ``tests/data/make_golden_fits.py`` on main
before the structural change of issue 7 (both estimators, both init methods, NumPy and Dask
input, two seeds), and again when the starts became nested (issue 23). Every fit must give the
same parameters to 1e-10.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parents[1] / "data"
sys.path.insert(0, str(DATA))
from make_golden_fits import CASES, fit_case

GOLDEN = np.load(DATA / "golden_fits.npz", allow_pickle=False)


@pytest.mark.parametrize("name, est, init, seed, chunks", CASES, ids=[c[0] for c in CASES])
def test_fit_reproduces_recorded_parameters(name, est, init, seed, chunks):
    got = fit_case(est, init, seed, chunks)
    for field, value in got.items():
        want = GOLDEN[f"{name}/{field}"]
        if value.dtype.kind in "U?i":
            np.testing.assert_array_equal(value, want, err_msg=field)
        else:
            np.testing.assert_allclose(value, want, rtol=0, atol=1e-10 * max(1.0, np.abs(want).max()),
                                       err_msg=field)
