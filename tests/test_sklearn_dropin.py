"""A drop-in for scikit-learn's ``GaussianMixture``, measured as a new user would: the
installed ``sklearn/mixture/tests/test_gaussian_mixture.py`` with only its import of
``GaussianMixture`` pointed at ours, run with scikit-learn's own fixtures
(``-p sklearn.conftest``) in a process of its own."""

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

sklearn = pytest.importorskip("sklearn")

SOURCE = Path(sklearn.__file__).parent / "mixture" / "tests" / "test_gaussian_mixture.py"
IMPORT = "from sklearn.mixture import GaussianMixture\n"

#: The test functions that fail by design, and why. Everything else must pass.
KNOWN_DIFFERENCES = {
    # scikit-learn's private functions and internals, which ours do not have, and the
    # exact labels (and their order) of scikit-learn's own KMeans.
    "test_gaussian_mixture_precisions_init": "calls the private _initialize(X, resp)",
    "test_gaussian_mixture_all_init_does_not_estimate_gaussian_parameters":
        "patches the private _estimate_gaussian_parameters and counts its calls",
    "test_gaussian_mixture_precisions_init_diag":
        "builds precisions_init from the cells of scikit-learn's own KMeans(n_init=1, "
        "random_state=0) and expects our k-means start to give those cells in the same "
        "component order (ours seeds k-means++ from the start's own generator: the same "
        "cells here, in the other order, so one more EM step)",
    # Deliberate differences of behaviour.
    "test_regularisation":
        "expects reg_covar=0 on degenerate data to raise; our covariance floor keeps every "
        "fit finite instead (issue 17, item 4)",
}


def _outcomes(report: Path) -> dict:
    """Test function name -> set of outcomes of its cases, from a JUnit XML report."""
    outcomes = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        name = case.get("name").split("[")[0]
        kinds = {child.tag for child in case} & {"failure", "error", "skipped"}
        outcomes.setdefault(name, set()).add(next(iter(kinds)) if kinds else "passed")
    return outcomes


@pytest.mark.skipif(not SOURCE.exists(), reason="scikit-learn installed without its tests")
def test_scikit_learns_own_tests_pass_on_our_gaussian_mixture(tmp_path):
    source = SOURCE.read_text()
    assert source.count(IMPORT) == 1, "scikit-learn's test module changed its import"
    module = tmp_path / "test_gaussian_mixture_dropin.py"
    module.write_text(source.replace(IMPORT, "from dask_biglearn import GaussianMixture\n"))
    report = tmp_path / "report.xml"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", str(module), "-p", "sklearn.conftest",
         "-p", "no:cacheprovider", "-q", "-W", "ignore", f"--junitxml={report}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
    outcomes = _outcomes(report)
    failing = {name for name, kinds in outcomes.items() if kinds & {"failure", "error"}}
    passing = {name for name, kinds in outcomes.items()  # some cases skip (float32, GPUs)
               if "passed" in kinds and not kinds & {"failure", "error"}}
    assert failing <= set(KNOWN_DIFFERENCES), (sorted(failing - set(KNOWN_DIFFERENCES)),
                                                run.stdout[-3000:])
    # The public behaviour: fit, fit_predict, score, sample, warm start, several starts,
    # regularisation, convergence warnings, attributes, every covariance type.
    for name in ("test_gaussian_mixture_fit", "test_gaussian_mixture_fit_predict",
                 "test_score", "test_score_samples", "test_sample", "test_warm_start",
                 "test_convergence_detected_with_warm_start", "test_monotonic_likelihood",
                 "test_gaussian_mixture_fit_best_params", "test_check_precisions",
                 "test_gaussian_mixture_fit_convergence_warning", "test_bic_1d_1component",
                 "test_gaussian_mixture_aic_bic", "test_init", "test_check_weights"):
        assert name in passing, (name, outcomes.get(name))
    assert len(passing) >= 33  # test functions; 47 cases passed, 9 failed when written
