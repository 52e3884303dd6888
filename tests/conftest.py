"""Shared fixtures: seeded data, one real LocalCluster (2 worker processes) per session, and
the hypothesis profiles (``default``: fast; ``ci``: more examples, no deadline, chosen when
the ``CI`` environment variable is set or with ``--hypothesis-profile=ci``). The helpers that
test modules import live in :mod:`dask_biglearn.testing`."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from dask_biglearn.testing import make_blobs

settings.register_profile("default", max_examples=15, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "default")

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

