"""Fit quality and cost on real data: our estimators against scikit-learn's, same run.

Problems (``--problems``; the seed draws the data where there is a draw, and the fit):

* ``patches``: natural-image patches as the EPLL prior of Zoran & Weiss (2011) is trained.
  The two images that ship with scikit-learn (``load_sample_images``: china and flower) in
  grayscale in [0, 1] (the mean of RGB / 255); every 8x8 patch of both
  (``extract_patches_2d``, 531,720 patches), flattened to 64-D, each patch's own mean
  removed. ``--n-rows`` training rows (default 30000) and 10000 test rows are drawn from them
  *without replacement* by the seed (``extract_patches_2d``'s ``max_patches`` draws positions
  with replacement, so train and test could share patches; they share none here, though
  neighbouring patches overlap, as in Zoran & Weiss). K = ``--patch-components`` (20).
  The data keeps 64 columns, as Zoran & Weiss do, with one exactly-null direction (the
  patch mean); the covariance floor holds it, and the fits are not degenerate
  (``--patch-dims 63`` maps the patches onto an orthonormal basis of the zero-mean subspace,
  the Helmert basis, instead). In 64-D the held-out log-likelihood contains the null
  direction's constant ``-0.5 log(2 pi floor)`` (+5.99 at 1e-6); it is the same for our
  floor and scikit-learn's ``reg_covar`` when both are 1e-6, and absent with 63 columns.
  Metric: held-out mean log-likelihood per patch (``score(X_test)``).
* ``pendigits``: :func:`dask_biglearn.datasets.load_pendigits` (its official split), K = 10.
* ``digits``: scikit-learn's ``load_digits``, a stratified 80/20 split
  (:func:`dask_biglearn.datasets.stratified_split`, ``random_state`` = the seed), K = 10.
  Both labelled sets are min-max scaled with the training split
  (:func:`dask_biglearn.datasets.minmax_scale`); metrics: NMI and ARI of the predicted
  components on the test split against its labels, and the held-out mean log-likelihood.
  ``--n-rows`` does not apply to them.

Covariance floors (ours): 1e-2 on the [0, 1]-scaled labelled sets (the paper's, as in
``bench_quality.py``); ``--patch-floor`` (1e-6) on the patches. Half the patches have a
per-pixel variance below 1e-4 (flat sky and shadow), so a floor of 1e-4 clips the flat
components: on 5000 patches it costs about 30 nats per test patch against 1e-6 (160 against
190 for plain EM from k-means, 63-D; 1e-5: 186); 1e-6 is above the grayscale quantisation
noise (about 1.4e-7) and equals scikit-learn's default ``reg_covar``. scikit-learn runs with
its defaults (``reg_covar=1e-6``, added to the diagonal rather than a floor on the
eigenvalues) everywhere; its default did not fail on the patches. On the labelled sets the
two regularisations differ by four orders of magnitude, and the held-out log-likelihood
shows it more than the fit: digits has pixels constant within a class in the training
split, and scikit-learn's default puts components of variance about 1e-6 on them, so its
held-out log-likelihood is hugely negative (about -2800 per row against +41 for ours) while
its training log-likelihood is higher. ``--sklearn-reg-covar floor`` gives scikit-learn our
floor as ``reg_covar`` (or pass a number) to compare the estimators at equal
regularisation; NMI / ARI are the fairer comparison at the defaults.

Methods (``--methods``), each seeded with the run's seed:

* ``biglearn-default``: ``BigLearnGaussianMixture(K, covariance_floor=...)`` as it ships;
* ``biglearn-sample``: the same with ``sample_size=--sample-size`` (default ``"auto"``):
  exploration on a row sample, plain-EM refinement on all rows;
* ``em-kmeans-1``, ``em-kmeans-10``: our plain EM (``GaussianMixture``) from 1 and 10
  k-means starts (``max_iter=1000``, like scikit-learn's);
* ``sklearn-1``, ``sklearn-10``: scikit-learn's ``GaussianMixture(K, n_init=...,
  max_iter=1000)``, full covariances, k-means start;
* ``sklearn-10-sample``: ``sklearn-10`` fitted on a random row sample of the size our rule
  picks (:func:`dask_biglearn.fit.scalable.sample_rows` of ``--sample-size``), scored on
  all training rows and on the test rows.

Note that the ``"auto"`` rule asks for at least 20000 rows and 40 rows per parameter of a
component per component (1.7 million for 64-D patches and K = 20, 61,200 for pendigits):
on these data sets it is capped at all the training rows, so the sample methods fit on every
row (in another order); pass ``--sample-size 10000`` (or a fraction) to see a real sample.

Every fit records its wall time (one BLAS thread, warnings silenced and their categories
recorded), its passes over the training data (ours: ``n_data_passes_``; scikit-learn: its
EM iterations plus one, times ``n_init``, the k-means passes of its starts not counted;
``sklearn-10-sample``: 0, its passes are over the sample), its passes over the sample (ours:
``n_sample_passes_``), the held-out and the training mean log-likelihood and, on the
labelled sets, NMI and ARI. The summary gives per (problem, method) medians over the seeds
and ``x_sk10``: the median over the seeds of the fit's time over ``sklearn-10``'s time on
the same problem and seed (when ``sklearn-10`` is among the methods).

Cost (2 shared cores, ``--n-jobs 2``, seed 0, 30000 patches): ``em-kmeans-1`` 24 s,
``sklearn-1`` 100 s, ``biglearn-default`` 368 s, ``sklearn-10`` 866 s; the labelled sets take
seconds a fit (``biglearn-default`` on digits about 11 s). Results: ``benchmarks/README.md``.

Output: a table, the JSON of ``_common.Report``. ``--n-jobs`` runs fits in that many
processes, each with one BLAS thread (times then include their contention).
Run ``python benchmarks/bench_realdata.py --help``.
"""

from __future__ import annotations

import argparse
import functools
import time
import warnings

import numpy as np
from _common import Report, log, positive_count, print_table, run_jobs

PROBLEMS = ["patches", "pendigits", "digits"]
METHODS = ["biglearn-default", "biglearn-sample", "em-kmeans-1", "em-kmeans-10", "sklearn-1",
           "sklearn-10", "sklearn-10-sample"]
LABELLED = {"pendigits": 10, "digits": 10}
LABELLED_FLOOR = 1e-2
N_PATCH_TEST = 10_000
PATCH_SIZE = (8, 8)


# ---- problems -----------------------------------------------------------------------------


@functools.cache
def all_patches():
    """Every 8x8 patch of scikit-learn's two sample images, grayscale in [0, 1], float32,
    flattened to 64 columns (cached per process)."""
    from sklearn.datasets import load_sample_images
    from sklearn.feature_extraction.image import extract_patches_2d

    parts = []
    for image in load_sample_images().images:
        gray = (image / 255.0).mean(axis=2).astype(np.float32)
        parts.append(extract_patches_2d(gray, PATCH_SIZE).reshape(-1, PATCH_SIZE[0] *
                                                                   PATCH_SIZE[1]))
    return np.concatenate(parts)


def load_patches(seed, n_rows, dims):
    """Disjoint training (``n_rows``) and test rows of zero-mean patches, 64 or 63 columns."""
    patches = all_patches()
    n_needed = n_rows + N_PATCH_TEST
    if n_needed > len(patches):
        raise ValueError(f"--n-rows {n_rows} + {N_PATCH_TEST} test rows exceed the "
                         f"{len(patches)} patches")
    rows = np.random.default_rng(seed).choice(len(patches), n_needed, replace=False)
    X = patches[rows].astype(np.float64)
    if dims == 64:
        X -= X.mean(axis=1, keepdims=True)
    else:
        from scipy.linalg import helmert

        X = X @ helmert(X.shape[1]).T  # rows orthonormal and orthogonal to the ones vector
    return X[:n_rows], X[n_rows:]


def load_problem(name, seed, n_rows, patch_components, patch_floor, patch_dims):
    """``dict(X_train, X_test, y_test, n_components, covariance_floor)``; ``y_test`` is None
    for the patches."""
    from dask_biglearn import datasets

    if name == "patches":
        X, X_test = load_patches(seed, n_rows, patch_dims)
        return dict(X_train=X, X_test=X_test, y_test=None, n_components=patch_components,
                    covariance_floor=patch_floor)
    if name == "pendigits":
        X, _, X_test, y_test = datasets.load_pendigits()
    else:
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        X, _, X_test, y_test = datasets.stratified_split(np.asarray(X, float), y,
                                                         random_state=seed)
    X, X_test = datasets.minmax_scale(X, X_test)
    return dict(X_train=X, X_test=X_test, y_test=y_test, n_components=LABELLED[name],
                covariance_floor=LABELLED_FLOOR)


# ---- methods ------------------------------------------------------------------------------


def make_model(method, k, seed, floor, sample_size, sklearn_reg_covar="default"):
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    from dask_biglearn import BigLearnGaussianMixture, GaussianMixture

    ours = dict(covariance_floor=floor, random_state=seed)
    theirs = dict(max_iter=1000, random_state=seed)
    if sklearn_reg_covar != "default":
        theirs["reg_covar"] = floor if sklearn_reg_covar == "floor" else sklearn_reg_covar
    return {
        "biglearn-default": lambda: BigLearnGaussianMixture(k, **ours),
        "biglearn-sample": lambda: BigLearnGaussianMixture(k, sample_size=sample_size, **ours),
        "em-kmeans-1": lambda: GaussianMixture(k, init_params="kmeans", n_init=1,
                                               max_iter=1000, **ours),
        "em-kmeans-10": lambda: GaussianMixture(k, init_params="kmeans", n_init=10,
                                                max_iter=1000, **ours),
        "sklearn-1": lambda: SkGaussianMixture(k, n_init=1, **theirs),
        "sklearn-10": lambda: SkGaussianMixture(k, n_init=10, **theirs),
        "sklearn-10-sample": lambda: SkGaussianMixture(k, n_init=10, **theirs),
    }[method]()


def run_one(problem, method, seed, opts):
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
    from threadpoolctl import threadpool_limits

    from dask_biglearn.fit.scalable import sample_rows

    data = load_problem(problem, seed, opts["n_rows"], opts["patch_components"],
                        opts["patch_floor"], opts["patch_dims"])
    X, X_test, k = data["X_train"], data["X_test"], data["n_components"]
    n, d = X.shape
    model = make_model(method, k, seed, data["covariance_floor"], opts["sample_size"],
                       opts["sklearn_reg_covar"])
    X_fit, n_sample = X, None
    if method.endswith("-sample"):
        n_sample = sample_rows(opts["sample_size"], n, k, d)
        if method == "sklearn-10-sample":
            rows = np.random.default_rng([seed, 1]).choice(n, n_sample, replace=False)
            X_fit = X[rows]
    with threadpool_limits(1), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        model.fit(X_fit)
        seconds = time.perf_counter() - t0
    ours = not method.startswith("sklearn")
    regularisation = data["covariance_floor"] if ours else float(model.reg_covar)
    if ours:
        passes, sample_passes = int(model.n_data_passes_), int(model.n_sample_passes_)
    elif method == "sklearn-10-sample":
        passes, sample_passes = 0, int((model.n_iter_ + 1) * model.n_init)
    else:
        passes, sample_passes = int((model.n_iter_ + 1) * model.n_init), None
    row = dict(problem=problem, method=method, seed=seed, n_train=n, n_features=d,
               n_components=k, regularisation=regularisation,
               sample_rows=n_sample, seconds=seconds, passes=passes,
               sample_passes=sample_passes, test_ll=float(model.score(X_test)),
               train_ll=float(model.score(X)), nmi=None, ari=None,
               warnings=sorted({w.category.__name__ for w in caught}))
    if data["y_test"] is not None:
        labels = model.predict(X_test)
        row.update(nmi=float(normalized_mutual_info_score(data["y_test"], labels)),
                   ari=float(adjusted_rand_score(data["y_test"], labels)))
    return row


# ---- report -------------------------------------------------------------------------------


def _median(values):
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def summarise(rows):
    """One row per (problem, method): medians over the seeds, and the median over the seeds
    of the time ratio to ``sklearn-10`` on the same problem and seed."""
    reference = {(r["problem"], r["seed"]): r["seconds"] for r in rows
                 if r["method"] == "sklearn-10"}
    out = []
    keys = sorted({(r["problem"], r["method"]) for r in rows},
                  key=lambda pm: (PROBLEMS.index(pm[0]), METHODS.index(pm[1])))
    for problem, method in keys:
        mine = [r for r in rows if r["problem"] == problem and r["method"] == method]
        ratios = [r["seconds"] / reference[problem, r["seed"]] for r in mine
                  if reference.get((problem, r["seed"]))]
        out.append(dict(
            problem=problem, method=method, seeds=len(mine),
            median_test_ll=_median([r["test_ll"] for r in mine]),
            median_train_ll=_median([r["train_ll"] for r in mine]),
            median_nmi=_median([r["nmi"] for r in mine]),
            median_ari=_median([r["ari"] for r in mine]),
            median_s=_median([r["seconds"] for r in mine]),
            x_sk10=_median(ratios),
            median_passes=_median([r["passes"] for r in mine]),
            median_sample_passes=_median([r["sample_passes"] for r in mine]),
            sample_rows=mine[0]["sample_rows"],
            warned=sum(bool(r["warnings"]) for r in mine)))
    return out


def sample_size_arg(text):
    """``"auto"``, a number of rows (``"10000"``, ``"1e4"``) or a fraction in (0, 1)."""
    if text == "auto":
        return text
    value = float(text.replace("_", ""))
    if 0 < value < 1:
        return value
    return positive_count(text)


def reg_covar_arg(text):
    """``"default"`` (scikit-learn's), ``"floor"`` (our floor on the problem) or a number."""
    return text if text in ("default", "floor") else float(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--problems", nargs="+", choices=PROBLEMS, default=PROBLEMS)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=METHODS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-rows", type=positive_count, default=30_000,
                        help="training patches (the labelled sets use their training split)")
    parser.add_argument("--patch-components", type=positive_count, default=20)
    parser.add_argument("--patch-floor", type=float, default=1e-6,
                        help="our covariance floor on the patches")
    parser.add_argument("--patch-dims", type=int, choices=[64, 63], default=64,
                        help="64: zero-mean patches; 63: on an orthonormal basis of the "
                             "zero-mean subspace")
    parser.add_argument("--sample-size", type=sample_size_arg, default="auto",
                        help="sample_size of biglearn-sample and the rows of "
                             "sklearn-10-sample: 'auto', rows or a fraction")
    parser.add_argument("--sklearn-reg-covar", type=reg_covar_arg, default="default",
                        help="reg_covar of the sklearn-* methods: 'default' (1e-6), 'floor' "
                             "(our covariance floor on the problem) or a number")
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--output", default="results/bench_realdata.json")
    args = parser.parse_args(argv)
    report = Report("bench_realdata", vars(args))
    opts = dict(n_rows=args.n_rows, patch_components=args.patch_components,
                patch_floor=args.patch_floor, patch_dims=args.patch_dims,
                sample_size=args.sample_size, sklearn_reg_covar=args.sklearn_reg_covar)
    jobs = [(p, m, s, opts) for p in args.problems for s in args.seeds for m in args.methods]
    log(f"{len(jobs)} fits in {args.n_jobs} processes")
    rows = []
    t0 = time.perf_counter()
    for i, row in run_jobs(run_one, jobs, args.n_jobs, report):
        rows.append(row)
        log(f"  {i}/{len(jobs)}: {row['problem']} {row['method']} seed {row['seed']}: "
            f"{row['seconds']:.1f}s, test ll {row['test_ll']:.3f}")
    summary = summarise(rows)
    report.summary(table=summary, wall_s=time.perf_counter() - t0)
    columns = ["problem", "method", "seeds", "median_test_ll", "median_train_ll", "median_nmi",
               "median_ari", "median_s", "x_sk10", "median_passes", "median_sample_passes",
               "warned"]
    print_table(summary, columns, {"median_test_ll": ".3f", "median_train_ll": ".3f",
                                   "median_nmi": ".3f", "median_ari": ".3f",
                                   "median_s": ".2f", "x_sk10": ".2f", "median_passes": ".0f",
                                   "median_sample_passes": ".0f"})
    path = report.write(args.output)
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
