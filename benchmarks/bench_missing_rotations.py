"""Do BigLearn-EM's rotated matchings still help on incomplete data? (issue 24, item 3)

A rotated matching sees ``y = P x``, which a row with a missing coordinate among those ``P``
mixes does not have. The rule the library follows: such a row is left out of that matching
(the rows observed on all of its subset take part). This measures, on problems where plain
EM from k-means starts gets stuck, with values missing completely at random, what the
matchings alone achieve (10 k-means starts, the default schedule, stopping rule and
refinement; no pursuit start and no moves, so that only the matchings can escape):

* ``rotations``: the default matchings (joint 0.4, marginal 0.1, rotated 0.5), rotated ones
  on the rows observed on their subset;
* ``no-rotations``: the rotated matchings' share given to marginal ones (joint 0.4,
  marginal 0.6), which use every row through its observed coordinates;
* ``em``: plain EM from the same 10 starts.

Reported per problem and rate: all modes found (of 10 seeds), median test KL to the truth,
median ARI and time.

Run: ``python benchmarks/bench_missing_rotations.py`` (``--help``).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from _common import Report, log, print_table, run_jobs
from bench_quality import load_problem

METHODS = ("rotations", "no-rotations", "em")


def make_model(method, k, seed, floor):
    from dask_biglearn import BigLearnGaussianMixture, GaussianMixture

    common = dict(init_params="kmeans", n_init=10, covariance_floor=floor, random_state=seed)
    if method == "em":
        return GaussianMixture(k, max_iter=1000, **common)
    probs = None if method == "rotations" else {"joint": 0.4, "marginal": 0.6}
    return BigLearnGaussianMixture(k, matching_probs=probs, moves=(), **common)


def run_one(problem, rate, method, seed):
    from sklearn.metrics import adjusted_rand_score
    from threadpoolctl import threadpool_limits

    from dask_biglearn.algebra import full_covariances
    from dask_biglearn.datasets import mixture_log_density, modes_found

    data = load_problem(problem, seed)
    X = data["X_train"].copy()
    X[np.random.default_rng((seed, 99)).random(X.shape) < rate] = np.nan
    model = make_model(method, data["n_components"], seed, data["covariance_floor"])
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        started = time.perf_counter()
        model.fit(X)
        seconds = time.perf_counter() - started
    k, d = model.means_.shape
    covariances = full_covariances(model.covariances_, model.covariance_type, k, d)
    X_test = data["X_test"]
    log_q = mixture_log_density(X_test, *data["truth"])
    log_p = mixture_log_density(X_test, model.weights_, model.means_, covariances)
    found = modes_found(*data["truth"], model.weights_, model.means_)
    return dict(problem=problem, rate=rate, method=method, seed=seed, seconds=seconds,
                kl=float(np.mean(log_q - log_p)), modes=int(found),
                all_modes=bool(found == len(data["truth"][0])),
                ari=float(adjusted_rand_score(data["y_test"], model.predict(X_test))),
                passes=int(model.n_data_passes_))


def summarise(rows):
    out = []
    for key in sorted({(r["problem"], r["rate"], r["method"]) for r in rows},
                      key=lambda t: (t[0], t[1], METHODS.index(t[2]))):
        mine = [r for r in rows if (r["problem"], r["rate"], r["method"]) == key]
        out.append(dict(problem=key[0], rate=key[1], method=key[2], seeds=len(mine),
                        all_modes=f"{sum(r['all_modes'] for r in mine)}/{len(mine)}",
                        median_kl=float(np.median([r["kl"] for r in mine])),
                        median_ari=float(np.median([r["ari"] for r in mine])),
                        median_s=float(np.median([r["seconds"] for r in mine]))))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--problems", nargs="+",
                        default=["cigars-d2-k3", "cigars-d2-k5", "cigars-d10-k3", "d4-k50"])
    parser.add_argument("--rates", nargs="+", type=float, default=[0.2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=list(range(10)))
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--output", default="results/bench_missing_rotations.json")
    args = parser.parse_args(argv)
    report = Report("bench_missing_rotations", vars(args))
    jobs = [(p, r, m, s) for p in args.problems for r in args.rates for m in args.methods
            for s in args.seeds]
    log(f"{len(jobs)} fits in {args.n_jobs} processes")
    for i, _ in run_jobs(run_one, jobs, args.n_jobs, report):
        if i % 10 == 0:
            log(f"  {i}/{len(jobs)} fits done")
    table = summarise(report.data["rows"])
    report.summary(table=table)
    print_table(table, ["problem", "rate", "method", "seeds", "all_modes", "median_kl",
                        "median_ari", "median_s"],
                {"median_kl": ".4f", "median_ari": ".3f", "median_s": ".2f"})
    print(f"wrote {report.write(args.output)}")


if __name__ == "__main__":
    main()
