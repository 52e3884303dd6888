"""What a user's ``max_iter`` buys: reads of the data and time against scikit-learn's.

Plain EM (:class:`dask_biglearn.GaussianMixture`) and scikit-learn's ``GaussianMixture``
with the same settings, one BLAS thread each, in one process, on data from a random mixture:

* ``collapse``: the new user's case of issue 23: ``K = 256`` diagonal components from given
  means (rows of the data, some of them duplicated so that components collapse) on
  ``50,000 x 64`` rows, ``max_iter`` 3 and 10;
* ``restarts``: ``n_init = 10`` starts at random rows (``init_params="random_from_data"``,
  scikit-learn's too) of ``K = 20`` full components on ``20,000 x 16`` rows: starts that
  converge at different iterations.

Reported per case: our ``n_iter_``, ``n_data_passes_`` (and the bound ``max_iter + 3``),
scikit-learn's passes (``(n_iter_ + 1) n_init``: its E-steps), both wall times and their ratio.

Run: ``python benchmarks/bench_budget.py`` (``--help`` for options). Run it against another
checkout of the package (``PYTHONPATH=...``) to compare versions: the JSON names the
package's path.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from _common import Report, log, print_table
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from threadpoolctl import threadpool_limits

import dask_biglearn
from dask_biglearn import GaussianMixture
from dask_biglearn.datasets import random_mixture, sample_mixture


def collapse_problem(n_samples, n_features, n_components, seed):
    """Rows of a random mixture, a few copies of some rows, and means at given rows."""
    truth = random_mixture(n_features, 32, separation=2.0, random_state=seed)
    X, _ = sample_mixture(*truth, n_samples, random_state=seed + 1)
    rng = np.random.default_rng(seed)
    copies = X[rng.choice(n_samples, 8, replace=False)]
    X = np.vstack([X, np.repeat(copies, 4, axis=0)])  # 8 points held by 4 rows each
    means = np.vstack([X[rng.choice(n_samples, n_components - 8, replace=False)], copies])
    return X, {"means_init": means}


def restarts_problem(n_samples, n_features, n_components, seed):
    truth = random_mixture(n_features, n_components, separation=1.0, random_state=seed)
    X, _ = sample_mixture(*truth, n_samples, random_state=seed + 1)
    return X, {"n_init": 10, "init_params": "random_from_data"}


CASES = {
    "collapse": (collapse_problem, (50_000, 64, 256), "diag", (3, 10)),
    "restarts": (restarts_problem, (20_000, 16, 20), "full", (100,)),
}


def timed(model, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        started = time.perf_counter()
        model.fit(X)
    return time.perf_counter() - started


def run_case(name, max_iter, seed):
    make, shape, covariance_type, _ = CASES[name]
    X, settings = make(*shape, seed)
    common = {"covariance_type": covariance_type, "max_iter": max_iter, "random_state": seed,
              **settings}
    ours = GaussianMixture(shape[2], **common)
    theirs = SkGaussianMixture(shape[2], **common)
    ours_s, theirs_s = timed(ours, X), timed(theirs, X)
    n_init = common.get("n_init", 1)
    return {"case": name, "n_samples": X.shape[0], "n_features": shape[1],
            "n_components": shape[2], "covariance_type": covariance_type,
            "max_iter": max_iter, "n_init": n_init, "n_iter": int(ours.n_iter_),
            "passes": int(ours.n_data_passes_), "bound": max_iter + 3,
            "reseeded": len(ours.reseeded_components_),
            "sklearn_n_iter": int(theirs.n_iter_),
            "sklearn_passes": (int(theirs.n_iter_) + 1) * n_init,
            "seconds": ours_s, "sklearn_seconds": theirs_s,
            "time_ratio": ours_s / theirs_s,
            "lower_bound": float(ours.lower_bound_), "sklearn_lower_bound":
                float(theirs.lower_bound_)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=sorted(CASES), choices=sorted(CASES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="results/bench_budget.json")
    args = parser.parse_args(argv)
    report = Report("bench_budget", {"cases": args.cases, "seed": args.seed,
                                     "package": dask_biglearn.__file__})
    with threadpool_limits(1):
        for name in args.cases:
            for max_iter in CASES[name][3]:
                row = report.add(**run_case(name, max_iter, args.seed))
                log(f"{name} max_iter={max_iter}: {row['passes']} passes "
                    f"(bound {row['bound']}), {row['time_ratio']:.2f}x scikit-learn's time")
    print_table(report.data["rows"], ["case", "max_iter", "n_init", "n_iter", "passes", "bound",
                                      "reseeded", "sklearn_n_iter", "sklearn_passes",
                                      "seconds", "sklearn_seconds", "time_ratio"],
                {"seconds": ".2f", "sklearn_seconds": ".2f", "time_ratio": ".2f"})
    print(f"wrote {report.write(args.output)}")


if __name__ == "__main__":
    main()
