"""Shared fixtures: seeded data, one real LocalCluster (2 worker processes) per session, and
the hypothesis profiles (``default``: fast; ``ci``: more examples, no deadline, chosen when
the ``CI`` environment variable is set or with ``--hypothesis-profile=ci``)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from dask_biglearn.kernels._compiled import NUMBA_AVAILABLE

settings.register_profile("default", max_examples=15, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "default")

KINDS = ["joint", "marginal", "rotated_marginal"]

#: Tests that compare the compiled kernels with NumPy: nothing to compare without numba.
needs_numba = pytest.mark.skipif(not NUMBA_AVAILABLE, reason="numba is not installed")


def make_blobs(seed=0, n_samples=600, n_features=3, n_components=4, offset=0.0, spread=1.0):
    """Well-separated Gaussian blobs with random full covariances."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=6.0, size=(n_components, n_features))
    labels = rng.integers(n_components, size=n_samples)
    A = rng.normal(size=(n_components, n_features, n_features)) * 0.5 + np.eye(n_features)
    noise = np.einsum("nij,nj->ni", A[labels], rng.normal(size=(n_samples, n_features)))
    return offset + spread * (centers[labels] + noise), labels


def random_params(seed, X, n_components):
    """A plausible random state of the parameters (not near the optimum)."""
    rng = np.random.default_rng(seed)
    n, d = X.shape
    weights = rng.dirichlet(np.full(n_components, 5.0))
    means = X[rng.choice(n, n_components, replace=False)] + rng.normal(size=(n_components, d))
    B = rng.normal(size=(n_components, d, d))
    covs = B @ np.swapaxes(B, 1, 2) + np.eye(d) * X.var(axis=0).mean()
    return weights, means, covs


def make_projection(kind, d, seed=0):
    """A projection matrix of each kind (None for the joint one), with m = D - 1 rows."""
    from dask_biglearn.projection import haar_frame

    rng = np.random.default_rng(seed)
    if kind == "joint":
        return None
    if kind == "marginal":
        return np.eye(d)[np.sort(rng.choice(d, size=d - 1, replace=False))]
    return haar_frame(rng, d, d - 1)


@pytest.fixture(scope="session")
def blobs():
    return make_blobs()


@pytest.fixture(scope="session")
def local_cluster():
    """A real scheduler with two single-threaded worker processes."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        worker_dashboard_address=None,
    ) as cluster:
        yield cluster


@pytest.fixture
def client(local_cluster):
    """A client on the session's LocalCluster, set as the default scheduler for the test.

    The test starts on a quiet cluster: what earlier tests released (keys, actors) is gone
    from the scheduler first, so that what a test sees there is its own.
    """
    import time

    from distributed import Client

    with Client(local_cluster) as c:
        deadline = time.monotonic() + 30
        while (c.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))
               and time.monotonic() < deadline):
            time.sleep(0.05)
        yield c


def paper_biglearn(*args, **kwargs):
    """``BigLearnGaussianMixture`` with the paper's settings (``PAPER_SETTINGS``), which the
    given parameters override: for the tests about the paper's algorithm itself."""
    from dask_biglearn import PAPER_SETTINGS, BigLearnGaussianMixture

    return BigLearnGaussianMixture(*args, **{**PAPER_SETTINGS, **kwargs})
