"""Choose the number of components of a known mixture and of a labelled set, in one sweep each.

* a known mixture: 12 components in 8-D (``datasets.random_mixture``, separation 3), 20000
  rows, K from 8 to 17, full and diagonal covariances, BIC;
* pendigits (its official training split, min-max scaled; 10 digits, written by many hands,
  so more than 10 Gaussian clusters are to be expected), K from 4 to 40 by 4, full
  covariances, the held-out log-likelihood (10 % of the rows by global index and seed) and
  BIC side by side.

Prints each table and the passes of the sweep against the candidates fitted one by one, and
writes ``select_known.png`` and ``select_pendigits.png``. Run
``python examples/select_k.py`` (a few minutes on two cores).
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from dask_biglearn import BigLearnGaussianMixture, GaussianMixtureSelection, datasets


def show(title, selection, seconds, separate):
    table = selection.cv_results_
    print(f"\n{title}: selected {selection.best_params_} by {selection.criterion}; sweep "
          f"{selection.n_data_passes_} full-data passes in {seconds:.0f} s; the candidates "
          f"one by one: {separate[0]} passes in {separate[1]:.0f} s")
    print(f"{'K':>4} {'type':>10} {'BIC':>12} {'train LL':>10} {'held-out LL':>12} {'rank':>5}")
    for i in range(len(table["bic"])):
        held = table["heldout_log_likelihood"][i]
        print(f"{table['param_n_components'][i]:>4} {table['param_covariance_type'][i]:>10} "
              f"{table['bic'][i]:>12.1f} {table['train_log_likelihood'][i]:>10.4f} "
              f"{'-' if np.isnan(held) else f'{held:.4f}':>12} {table['rank'][i]:>5}")


def one_by_one(X, candidates, floor, heldout=None):
    passes, t0 = 0, time.perf_counter()
    for k, covariance_type in candidates:
        model = BigLearnGaussianMixture(k, covariance_type=covariance_type,
                                        covariance_floor=floor, random_state=0)
        model.fit(X if heldout is None else X[~heldout])
        passes += model.n_data_passes_
    return passes, time.perf_counter() - t0


def main():
    warnings.simplefilter("ignore")
    truth = datasets.random_mixture(8, 12, separation=3.0, random_state=0)
    X, _ = datasets.sample_mixture(*truth, 20000, random_state=1)
    t0 = time.perf_counter()
    known = GaussianMixtureSelection(range(8, 18), covariance_type=("full", "diag"),
                                     random_state=0).fit(X)
    seconds = time.perf_counter() - t0
    candidates = [(int(k), str(t)) for k, t in zip(known.cv_results_["param_n_components"],
                                                   known.cv_results_["param_covariance_type"],
                                                   strict=True)]
    show("known mixture, 12 components in 8-D", known, seconds,
         one_by_one(X, candidates, 1e-6))
    known.plot("select_known.png")

    X, _, _, _ = datasets.load_pendigits()
    X, _ = datasets.minmax_scale(X, X)
    t0 = time.perf_counter()
    digits = GaussianMixtureSelection(range(4, 41, 4), criterion="heldout",
                                      estimator=BigLearnGaussianMixture(covariance_floor=1e-2),
                                      random_state=0).fit(X)
    seconds = time.perf_counter() - t0
    from dask_biglearn.selection import heldout_mask

    heldout = heldout_mask(0, len(X), _split_seed(0), 0.1)
    candidates = [(int(k), "full") for k in digits.cv_results_["param_n_components"]]
    show("pendigits (training split), held-out log-likelihood", digits, seconds,
         one_by_one(X, candidates, 1e-2, heldout))
    digits.plot("select_pendigits.png")


def _split_seed(random_state):
    """The held-out rows' seed a selection with this ``random_state`` draws first."""
    from dask_biglearn.validation import check_generator

    return int(check_generator(random_state).integers(2**63 - 1))


if __name__ == "__main__":
    main()
