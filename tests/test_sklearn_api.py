"""scikit-learn's own estimator checks on NumPy input.

Small iteration counts keep the checks fast. Every check applies, with no expected failure;
the two array-API checks skip themselves unless SCIPY_ARRAY_API is set (we support NumPy and
Dask arrays, not the array API).
"""

import warnings

from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

from dask_biglearn import BigLearnGaussianMixture, GaussianMixture


@parametrize_with_checks(
    [
        GaussianMixture(max_iter=20),
        BigLearnGaussianMixture(max_iter=10, check_every=5),
    ],
)
def test_sklearn_compatible_estimator(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)
