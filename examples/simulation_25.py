"""The paper's 25-component 2-D simulation: BigLearn-EM against plain (joint) EM.

Data: the 5 x 5 grid mixture of :func:`dask_biglearn.datasets.make_grid25` (means ``2 (i, j) - 6``,
covariances ``0.1 I``, equal weights), 2000 training and 5000 test samples per seed, the two
drawn from independent streams spawned from the seed (``np.random.SeedSequence(seed).spawn(2)``).

For every seed both estimators start from the *same* random initialisation (same ``random_state``;
both draw the initial parameters first from the same generator; the script checks this by
fitting both with ``max_iter=0``):

* BigLearn-EM: 2000 outer iterations x 5 local updates, matching probabilities joint 0.4 /
  marginal 0.1 / rotated marginal 0.5, subset fraction ~ Beta(5, 1), weight smoothing
  ``1/sqrt(25)``, covariance floor 1e-5.
* plain EM: up to 500 iterations with ``tol=1e-10`` (essentially run to convergence), the same
  covariance floor, no weight smoothing.

Metrics per seed and method, on the test samples:

* joint KL(q || p) = mean of ``log q(x) - log p(x)`` (``q`` the true grid mixture);
* modes found: true means with a fitted component of weight > 0.02 within distance 0.5;
* wall time of the fit.

Note: the paper reports per seed the *minimum* test KL over the iterations of a run. Our
:class:`~dask_biglearn.BigLearnGaussianMixture` returns the parameters with the best *training*
log-likelihood among its checks (every ``check_every`` outer iterations), and this script reports
the test KL of that returned model, which can only be equal to or above the paper's statistic.

Targets (printed, not asserted): BigLearn-EM finds all 25 modes in >= 9 of 10 seeds with a
median KL <= 0.04 (paper: 0.030 +- 0.006); plain EM finds all 25 in <= 2 seeds (paper: 0.263 +-
0.035, every seed stuck with merged components).

Run ``python examples/simulation_25.py --help`` for the options; the full run is the default.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning

import dask_biglearn
from dask_biglearn import PAPER_SETTINGS, BigLearnGaussianMixture, GaussianMixture
from dask_biglearn.datasets import (
    count_modes_found,
    grid25_log_density,
    grid25_params,
    make_grid25,
)

log = logging.getLogger("simulation_25")

N_COMPONENTS = 25
COVARIANCE_FLOOR = 1e-5
MATCHING_PROBS = {"joint": 0.4, "marginal": 0.1, "rotated_marginal": 0.5}
METHODS = ("em", "biglearn")
METHOD_TITLES = {"em": "plain EM", "biglearn": "BigLearn-EM"}

TARGET_BIGLEARN_ALL25 = 9  # of 10 seeds
TARGET_BIGLEARN_MEDIAN_KL = 0.04
TARGET_EM_ALL25_MAX = 2


def make_data(seed, n_train, n_test):
    """Training and test samples drawn from two independent streams spawned from ``seed``."""
    train_ss, test_ss = np.random.SeedSequence(seed).spawn(2)
    X_train, _ = make_grid25(n_train, random_state=train_ss)
    X_test, _ = make_grid25(n_test, random_state=test_ss)
    return X_train, X_test


def make_estimators(seed, max_iter, em_max_iter):
    """The two estimators of one seed, keyed by method name."""
    # The paper's algorithm, with its simulation's weight smoothing 1 / sqrt(K).
    paper = {**PAPER_SETTINGS, "matching_probs": MATCHING_PROBS, "marginal_size_beta": (5, 1),
             "weight_concentration": 1 / np.sqrt(N_COMPONENTS)}
    biglearn = BigLearnGaussianMixture(
        N_COMPONENTS,
        max_iter=max_iter,
        covariance_floor=COVARIANCE_FLOOR,
        check_every=20,
        random_state=seed,
        **paper,
    )
    em = GaussianMixture(
        N_COMPONENTS,
        max_iter=em_max_iter,
        tol=1e-10,
        covariance_floor=COVARIANCE_FLOOR,
        init_params="random",
        random_state=seed,
    )
    return {"em": em, "biglearn": biglearn}


def fit_quiet(model, X):
    """Fit ``model`` with plain EM's ``ConvergenceWarning`` silenced; return the wall time."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(X)
        return time.perf_counter() - start


def same_initialisation(seed, X_train):
    """True when both estimators, fitted with ``max_iter=0``, return identical means."""
    models = make_estimators(seed, max_iter=0, em_max_iter=0)
    for model in models.values():
        fit_quiet(model, X_train)
    return bool(np.array_equal(models["em"].means_, models["biglearn"].means_))


def evaluate(model, X_test, true_means):
    """Test joint KL(q || p) and number of true modes found."""
    kl = float(np.mean(grid25_log_density(X_test) - model.score_samples(X_test)))
    modes = count_modes_found(true_means, model.means_, model.weights_)
    return kl, modes


def run_seed(seed, args, true_means):
    """Fit both methods on one seed; return the record and the fitted models."""
    X_train, X_test = make_data(seed, args.n_train, args.n_test)
    record = {"seed": seed, "same_init": same_initialisation(seed, X_train)}
    if not record["same_init"]:
        log.warning("seed %d: the two estimators did not start from the same means", seed)
    models = make_estimators(seed, args.max_iter, args.em_max_iter)
    for name, model in models.items():
        seconds = fit_quiet(model, X_train)
        kl, modes = evaluate(model, X_test, true_means)
        record[name] = {
            "kl": kl,
            "modes": modes,
            "fit_seconds": seconds,
            "n_iter": int(model.n_iter_),
            "converged": bool(model.converged_),
            "train_loglik": float(model.lower_bound_),
        }
        if name == "biglearn":
            record[name]["best_iteration"] = int(model.best_iteration_)
        log.info("seed %d %-11s KL %.4f modes %2d (%.1f s)", seed, METHOD_TITLES[name], kl,
                 modes, seconds)
    return record, models, X_test


def summarise(records):
    """Per-method summary over seeds."""
    summary = {}
    for name in METHODS:
        kls = np.array([r[name]["kl"] for r in records])
        modes = np.array([r[name]["modes"] for r in records])
        secs = np.array([r[name]["fit_seconds"] for r in records])
        summary[name] = {
            "n_seeds": len(records),
            "n_all_modes": int((modes == N_COMPONENTS).sum()),
            "kl_median": float(np.median(kls)),
            "kl_mean": float(kls.mean()),
            "kl_std": float(kls.std()),
            "modes_mean": float(modes.mean()),
            "fit_seconds_mean": float(secs.mean()),
        }
    return summary


def check_targets(summary):
    """Whether each printed target holds (reported, never asserted)."""
    n = summary["biglearn"]["n_seeds"]
    need = int(np.ceil(TARGET_BIGLEARN_ALL25 / 10 * n))
    return {
        f"biglearn all 25 modes in >= {need}/{n} seeds":
            summary["biglearn"]["n_all_modes"] >= need,
        f"biglearn median KL <= {TARGET_BIGLEARN_MEDIAN_KL}":
            summary["biglearn"]["kl_median"] <= TARGET_BIGLEARN_MEDIAN_KL,
        f"plain EM all 25 modes in <= {TARGET_EM_ALL25_MAX} seeds":
            summary["em"]["n_all_modes"] <= TARGET_EM_ALL25_MAX,
    }


def print_table(records, summary, targets):
    header = (f"{'seed':>4}  {'EM KL':>8} {'EM modes':>8} {'EM s':>7}  "
              f"{'BL KL':>8} {'BL modes':>8} {'BL s':>7}  {'same init':>9}")
    print(header)
    print("-" * len(header))
    for r in records:
        em, bl = r["em"], r["biglearn"]
        print(f"{r['seed']:>4}  {em['kl']:>8.4f} {em['modes']:>8d} {em['fit_seconds']:>7.1f}  "
              f"{bl['kl']:>8.4f} {bl['modes']:>8d} {bl['fit_seconds']:>7.1f}  "
              f"{'yes' if r['same_init'] else 'NO':>9}")
    print()
    header = (f"{'method':<12} {'all 25':>8} {'median KL':>10} {'mean KL':>16} "
              f"{'mean modes':>10} {'mean s':>8}")
    print(header)
    print("-" * len(header))
    for name in METHODS:
        s = summary[name]
        print(f"{METHOD_TITLES[name]:<12} {s['n_all_modes']:>3d}/{s['n_seeds']:<4d} "
              f"{s['kl_median']:>10.4f} {s['kl_mean']:>8.4f} +- {s['kl_std']:.4f} "
              f"{s['modes_mean']:>10.1f} {s['fit_seconds_mean']:>8.1f}")
    print()
    print("paper (10 seeds): plain EM KL 0.263 +- 0.035 (no seed with all 25 modes); "
          "BigLearn-EM KL 0.030 +- 0.006 (all 25 modes)")
    print("targets (not asserted):")
    for text, ok in targets.items():
        print(f"  [{'met' if ok else 'NOT met'}] {text}")


def plot_seed(path, seed, models, X_test, true_means, record):
    """Two panels (plain EM, BigLearn-EM): test data, 2-sigma ellipses, true means."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Ellipse

    fig, axes = plt.subplots(1, 2, figsize=(12, 6), sharex=True, sharey=True)
    colours = [*plt.get_cmap("tab20").colors, *plt.get_cmap("tab20b").colors][:N_COMPONENTS]
    for ax, name in zip(axes, METHODS, strict=True):
        model = models[name]
        ax.scatter(X_test[:, 0], X_test[:, 1], s=1, c="0.7", rasterized=True)
        for k in range(N_COMPONENTS):
            eigval, eigvec = np.linalg.eigh(model.covariances_[k])
            width, height = 2 * 2 * np.sqrt(np.maximum(eigval[::-1], 0.0))
            angle = np.degrees(np.arctan2(eigvec[1, -1], eigvec[0, -1]))
            ax.add_patch(Ellipse(model.means_[k], width, height, angle=angle, fill=False,
                                 lw=1.5, color=colours[k]))
            ax.plot(*model.means_[k], ".", color=colours[k], ms=4)
        ax.plot(true_means[:, 0], true_means[:, 1], "kx", ms=7, mew=1.5)
        ax.set_title(f"{METHOD_TITLES[name]} (seed {seed}): KL {record[name]['kl']:.3f}, "
                     f"{record[name]['modes']}/{N_COMPONENTS} modes")
        ax.set_aspect("equal")
        ax.set_xlim(-6, 6)
        ax.set_ylim(-6, 6)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="25-component 2-D simulation: BigLearn-EM vs plain EM (test KL, modes).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)),
                        help="seeds (data, initialisation and BigLearn-EM draws)")
    parser.add_argument("--max-iter", type=int, default=2000,
                        help="BigLearn-EM outer iterations")
    parser.add_argument("--em-max-iter", type=int, default=500,
                        help="plain EM iterations (tol 1e-10)")
    parser.add_argument("--n-train", type=int, default=2000, help="training samples per seed")
    parser.add_argument("--n-test", type=int, default=5000, help="test samples per seed")
    parser.add_argument("--output", type=Path, default=Path("results/simulation_25.json"),
                        help="JSON file of all per-seed numbers")
    parser.add_argument("--plot", default="results/simulation_25.png",
                        help="PNG of the first seed's fits ('' to skip)")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="-v: log progress to stderr; -vv: also the estimators' own logs")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(message)s")
    if args.verbose < 2:
        logging.getLogger("dask_biglearn").setLevel(logging.WARNING)
    _, true_means, _ = grid25_params()
    records = []
    for i, seed in enumerate(args.seeds):
        record, models, X_test = run_seed(seed, args, true_means)
        records.append(record)
        if i == 0 and args.plot:
            plot_seed(Path(args.plot), seed, models, X_test, true_means, record)
    summary = summarise(records)
    targets = check_targets(summary)
    print_table(records, summary, targets)

    args.output.parent.mkdir(parents=True, exist_ok=True)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    payload = {
        "experiment": "simulation_25",
        "config": config,
        "versions": {"dask_biglearn": dask_biglearn.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
        "kl_note": "test KL of the returned model (best training log-likelihood among checks), "
                   "not the paper's minimum over iterations",
        "records": records,
        "summary": summary,
        "targets": targets,
    }
    args.output.write_text(json.dumps(payload, indent=2))
    print(f"\nwrote {args.output}" + (f" and {args.plot}" if args.plot else ""))


if __name__ == "__main__":
    main()
