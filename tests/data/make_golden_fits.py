"""Record the parameters of a few short fits, to hold refactors to "no change of results".

Run from the repository root: ``python tests/data/make_golden_fits.py --overwrite``. It writes
``tests/data/golden_fits.npz`` (plain arrays, read with ``allow_pickle=False``). The cases
are listed in :data:`CASES`; ``tests/test_golden.py`` refits each one and compares at 1e-10.
The file was first written on main at 9097f59, before the structural change of issue 7, and
recorded again when the starts became nested (issue 23: a single start now draws from the first
child of the fit's generator, as the first of several starts does, instead of from the fit's
generator itself); nothing else changed a recorded fit.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import dask
import dask.array as da
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from dask_biglearn import PAPER_SETTINGS, BigLearnGaussianMixture, GaussianMixture

OUT = Path(__file__).with_name("golden_fits.npz")

#: (name, estimator, init_params, seed, dask chunk rows or None)
CASES = [
    (f"{est}-{init}-seed{seed}-{'dask' if chunks else 'numpy'}", est, init, seed, chunks)
    for est in ("em", "biglearn")
    for init in ("random", "random_from_data")
    for seed in (0, 1)
    for chunks in (None, 97)
]


def golden_data():
    """Five blobs with random full covariances in 3-D, 400 rows."""
    rng = np.random.default_rng(2024)
    centers = rng.normal(scale=5.0, size=(5, 3))
    labels = rng.integers(5, size=400)
    A = rng.normal(size=(5, 3, 3)) * 0.5 + np.eye(3)
    noise = np.einsum("nij,nj->ni", A[labels], rng.normal(size=(400, 3)))
    return 10.0 + centers[labels] + noise


def make_estimator(est, init, seed):
    if est == "em":
        return GaussianMixture(4, max_iter=25, tol=1e-6, covariance_floor=1e-4,
                               init_params=init, random_state=seed)
    # The paper's settings: the defaults when the fits were recorded.
    settings = {**PAPER_SETTINGS, "init_params": init}
    return BigLearnGaussianMixture(4, max_iter=30, check_every=5, covariance_floor=1e-4,
                                   random_state=seed, **settings)


def fit_case(est, init, seed, chunks):
    X = golden_data()
    model = make_estimator(est, init, seed)
    data = X if chunks is None else da.from_array(X, chunks=(chunks, -1))
    with warnings.catch_warnings(), dask.config.set(scheduler="threads"):
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(data)
    out = {
        "weights": model.weights_,
        "means": model.means_,
        "covariances": model.covariances_,
        "lower_bound": np.float64(model.lower_bound_),
        "lower_bounds": np.asarray(model.lower_bounds_, dtype=np.float64),
        "n_iter": np.int64(model.n_iter_),
    }
    if est == "biglearn":
        out["matchings"] = np.asarray(model.matchings_, dtype="U16")
        out["best_iteration"] = np.int64(model.best_iteration_)
    else:
        out["converged"] = np.bool_(model.converged_)
    return out


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the recorded fits (only on purpose, with a reason)")
    args = parser.parse_args(argv)
    if OUT.exists() and not args.overwrite:
        parser.error(f"{OUT} exists; pass --overwrite to record new fits.")
    arrays = {}
    for name, est, init, seed, chunks in CASES:
        for field, value in fit_case(est, init, seed, chunks).items():
            arrays[f"{name}/{field}"] = value
    np.savez(OUT, **arrays)
    print(f"wrote {len(CASES)} fits to {OUT}")


if __name__ == "__main__":
    main()
