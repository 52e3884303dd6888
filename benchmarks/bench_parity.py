"""Parity with scikit-learn per covariance type: plain EM from the same starting parameters.

For each of ``full``, ``tied``, ``diag`` and ``spherical``: scikit-learn's own parameters
after one iteration are the start (``weights_init``, ``means_init``, ``precisions_init`` of
the type's shapes); then ``--max-iter`` EM iterations with ``tol=0`` and the same
``reg_covar`` in scikit-learn's ``GaussianMixture`` and in ours (``covariance_floor`` far
below the data's scale, so that only ``reg_covar`` regularises). Reported: the largest
absolute difference of every fitted array, and the relative difference of
``score_samples`` and ``bic``. Target (issue 17): 1e-6.

Run: ``python benchmarks/bench_parity.py`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
from _common import Report, print_table
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from dask_biglearn import GaussianMixture
from dask_biglearn.datasets import random_mixture, sample_mixture

ARRAYS = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_")


def compare(X, n_components, covariance_type, max_iter, reg_covar):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = SkGaussianMixture(n_components, covariance_type=covariance_type, max_iter=1,
                                  random_state=1).fit(X)
        settings = {"covariance_type": covariance_type, "max_iter": max_iter, "tol": 0.0,
                    "reg_covar": reg_covar, "weights_init": start.weights_,
                    "means_init": start.means_, "precisions_init": start.precisions_}
        theirs = SkGaussianMixture(n_components, **settings).fit(X)
        ours = GaussianMixture(n_components, covariance_floor=1e-12, **settings).fit(X)
    row = {"covariance_type": covariance_type}
    for name in ARRAYS:
        row[name.rstrip("_")] = float(np.abs(getattr(ours, name) - getattr(theirs, name)).max())
    scores = theirs.score_samples(X)
    row["score_samples_rel"] = float(np.abs(ours.score_samples(X) - scores).max()
                                     / np.abs(scores).max())
    row["bic_rel"] = float(abs(ours.bic(X) - theirs.bic(X)) / abs(theirs.bic(X)))
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--n-samples", type=int, default=5000)
    parser.add_argument("--n-features", type=int, default=6)
    parser.add_argument("--n-components", type=int, default=8)
    parser.add_argument("--max-iter", type=int, default=50)
    parser.add_argument("--reg-covar", type=float, default=1e-6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="results/bench_parity.json")
    args = parser.parse_args(argv)
    truth = random_mixture(args.n_features, args.n_components, separation=2.0,
                           random_state=args.seed)
    X, _ = sample_mixture(*truth, args.n_samples, random_state=args.seed + 1)
    report = Report("parity", vars(args))
    rows = [report.add(**compare(X, args.n_components, t, args.max_iter, args.reg_covar))
            for t in ("full", "tied", "diag", "spherical")]
    columns = ["covariance_type", *(n.rstrip("_") for n in ARRAYS), "score_samples_rel",
               "bic_rel"]
    print_table(rows, columns, dict.fromkeys(columns[1:], ".1e"))
    worst = max(max(r[c] for c in columns[1:]) for r in rows)
    report.summary(worst=worst, target_met=worst <= 1e-6)
    print(f"largest difference {worst:.1e}: target 1e-6 {'met' if worst <= 1e-6 else 'NOT met'}")
    print(f"wrote {report.write(args.output)}")


if __name__ == "__main__":
    main()
