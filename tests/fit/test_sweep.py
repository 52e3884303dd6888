"""Several fit programs sharing every pass: each gets its own result, the reads are shared."""

import dataclasses

import numpy as np
import pytest

from dask_biglearn.engines import InProcessEngine
from dask_biglearn.fit.loop import FitSettings, pass_spec
from dask_biglearn.fit.plan import FitPlan, run_plan
from dask_biglearn.fit.sweep import _in_threads, run_plans
from dask_biglearn.model import MixtureParams
from dask_biglearn.testing import make_blobs


def _plan(k, covariance_type="full", **kw):
    em = FitSettings.plain_em(max_iter=60, tol=1e-6, covariance_floor=1e-6,
                              covariance_type=covariance_type)
    return FitPlan(n_components=k, init_params="random", n_init=2, covariance_floor=1e-6,
                   explore=em, em=em, **kw)


@pytest.fixture(scope="module")
def data():
    return make_blobs(seed=41, n_samples=800, n_features=3, n_components=5)[0]


def test_each_program_gets_the_result_it_gets_alone(data):
    """Random starts (no shared sample), plain EM of several sizes and two types: every
    plan's result is its fit alone from the same generator, and the sweep reads the data
    about as often as its longest program, not as often as all of them."""
    plans = [_plan(k, t) for t in ("full", "diag") for k in (2, 3, 5, 7)]
    with InProcessEngine(data) as engine:
        results = run_plans(engine, plans, np.random.default_rng(3))
        shared = engine.n_data_passes
    alone = []
    for plan, rng in zip(plans, np.random.default_rng(3).spawn(len(plans)), strict=True):
        with InProcessEngine(data) as engine:
            alone.append((run_plan(engine, plan, rng), engine.n_data_passes))
    for got, (want, _) in zip(results, alone, strict=True):
        np.testing.assert_allclose(got.params.means, want.params.means, atol=1e-10)
        np.testing.assert_allclose(got.params.covariances, want.params.covariances,
                                   atol=1e-10)
        assert got.lower_bound == pytest.approx(want.lower_bound, abs=1e-12)
    passes = [p for _, p in alone]
    assert shared <= max(passes) + 1 < sum(passes) / 3


def test_the_scalable_mode_explores_every_plan_on_one_sample(data):
    plans = [dataclasses.replace(_plan(k), sample_rows=300 + 50 * k) for k in (2, 4, 6)]
    with InProcessEngine(data) as engine:
        results = run_plans(engine, plans, np.random.default_rng(0))
        passes = engine.n_data_passes
    assert all(r.n_sample_passes > 0 for r in results)
    assert len({r.n_sample_passes for r in results}) == 1  # one sample, shared
    # summary, the one sample, then the refinements together (and their evaluations)
    longest = max(r.chosen.result.iteration for r in results)
    assert passes <= 2 + longest + len(plans)


def test_a_failing_program_fails_the_sweep_without_stalling_the_others(data):
    params = MixtureParams(np.full(2, 0.5), data[:2], np.broadcast_to(np.eye(3), (2, 3, 3)))
    with InProcessEngine(data) as engine:
        spec, _ = pass_spec(engine, params, None, moments=True)
        done = []

        def fine(on):
            for _ in range(3):
                on.run_passes([spec])
            done.append(True)

        def broken(on):
            on.run_passes([spec])
            raise RuntimeError("this candidate failed")

        with pytest.raises(RuntimeError, match="this candidate failed"):
            _in_threads(engine, [fine, broken, fine])
        assert done == [True, True]
        # two programs waiting: one read for both, each gets its own statistics
        before = engine.n_data_passes
        got = _in_threads(engine, [lambda on: on.run_passes([spec, spec]),
                                   lambda on: on.run_passes([spec])])
        assert engine.n_data_passes - before == 1
        assert [len(g) for g in got] == [2, 1]
        np.testing.assert_allclose(got[0][1].first_moment, got[1][0].first_moment, rtol=1e-12)
