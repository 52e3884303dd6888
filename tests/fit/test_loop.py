"""The one fit loop: callbacks, stopping and resuming from a FitState, plain EM's and
BigLearn-EM's rules, against the dense reference."""

import json

import dask.array as da
import numpy as np
import pytest

from dask_biglearn.engines import DaskEngine, InProcessEngine
from dask_biglearn.fit import FitSettings, best_state, run_fit, run_fits, start_states
from dask_biglearn.fit.loop import finish_fit
from dask_biglearn.model import FitState, MixtureParams
from dask_biglearn.projection import MatchingSchedule
from dask_biglearn.testing import make_blobs, random_params, reference_biglearn_em

SCHEDULE = MatchingSchedule({"joint": 0.4, "marginal": 0.1, "rotated_marginal": 0.5})
BIGLEARN = FitSettings.biglearn(schedule=SCHEDULE, max_iter=24, n_inner_iter=3, check_every=4,
                                covariance_floor=1e-3, weight_concentration=0.2, tol=1e-3)
PLAIN_EM = FitSettings.plain_em(max_iter=40, tol=1e-6, covariance_floor=1e-3)


@pytest.fixture(scope="module")
def data():
    return make_blobs(seed=8, n_samples=400, n_features=3, n_components=4)[0]


def _start(X, seed=0):
    return FitState(MixtureParams(*random_params(9, X, 4)), np.random.default_rng(seed))


def _through_json(state):
    """A copy made as a checkpoint file will: plain arrays and JSON text, nothing shared."""
    arrays, values = state.as_arrays_and_json()
    arrays = {k: np.array(v) for k, v in arrays.items()}
    return FitState.from_arrays_and_json(arrays, json.loads(json.dumps(values)))


def _stop_at(k, event="iteration"):
    return lambda state, e: e == event and state.iteration == k


def _assert_same_state(a, b, atol=0.0):
    for p, q in ((a.params, b.params), (a.best_params, b.best_params)):
        for name in ("weights", "means", "covariances"):
            np.testing.assert_allclose(getattr(p, name), getattr(q, name), rtol=0, atol=atol)
    assert a.iteration == b.iteration and a.best_iteration == b.best_iteration
    assert a.matchings == b.matchings and a.converged == b.converged
    np.testing.assert_allclose(a.lower_bounds, b.lower_bounds, rtol=0, atol=atol)
    assert a.rng.bit_generator.state == b.rng.bit_generator.state


@pytest.mark.parametrize("settings, k", [(BIGLEARN, 7), (BIGLEARN, 8), (PLAIN_EM, 5)],
                         ids=["biglearn-between-checks", "biglearn-at-a-check", "plain-em"])
def test_stop_rebuild_and_resume_is_bit_for_bit_in_process(data, settings, k):
    with InProcessEngine(data) as engine:
        whole = run_fit(engine, _start(data), settings)
    assert whole.finished
    with InProcessEngine(data) as engine:
        stopped = run_fit(engine, _start(data), settings, [_stop_at(k)])
    assert not stopped.finished and stopped.iteration == k
    with InProcessEngine(data) as engine:  # everything rebuilt: engine, generator, state
        resumed = run_fit(engine, _through_json(stopped), settings)
    _assert_same_state(resumed, whole)
    assert resumed.best_lower_bound == whole.best_lower_bound


def test_stop_rebuild_and_resume_on_a_local_cluster(client, data):
    def fit(callbacks=(), state=None):
        with DaskEngine(da.from_array(data, chunks=(90, -1))) as engine:
            return run_fit(engine, state or _start(data), BIGLEARN, callbacks)

    whole = fit()
    resumed = fit(state=_through_json(fit([_stop_at(10)])))
    _assert_same_state(resumed, whole, atol=1e-12)
    with InProcessEngine(data) as engine:
        _assert_same_state(run_fit(engine, _start(data), BIGLEARN), whole, atol=1e-10)


def test_callbacks_see_every_iteration_and_every_check(data):
    events = []

    def record(state, event):
        events.append((event, state.iteration, len(state.lower_bounds)))

    with InProcessEngine(data) as engine:
        run_fit(engine, _start(data), BIGLEARN, [record])
    iterations = [it for e, it, _ in events if e == "iteration"]
    checks = [(it, n) for e, it, n in events if e == "check"]
    assert iterations == list(range(1, 25))
    assert checks == [(4 * i, i) for i in range(1, 7)]  # after the check is recorded


def test_a_stopped_fit_is_finished_with_what_it_has(data):
    with InProcessEngine(data) as engine:
        state = run_fit(engine, _start(data), BIGLEARN, [_stop_at(6)])
        best_at_4 = state.best_lower_bound
        finish_fit(engine, state, BIGLEARN)
    assert state.finished and state.best_iteration == 4 and state.best_lower_bound == best_at_4
    with InProcessEngine(data) as engine:
        state = run_fit(engine, _start(data), BIGLEARN, [_stop_at(2)])
        finish_fit(engine, state, BIGLEARN)  # no check yet: the current parameters, evaluated
    assert state.best_iteration == 2 and np.isfinite(state.best_lower_bound)


def test_biglearn_loop_follows_the_dense_reference(data):
    with InProcessEngine(data) as engine:
        state = run_fit(engine, _start(data, seed=4), BIGLEARN)
        shift = engine.summaries.shift
    (rw, rm, rc), rll, kinds = reference_biglearn_em(
        data, *random_params(9, data, 4), schedule=SCHEDULE, rng=np.random.default_rng(4),
        max_iter=24, n_inner_iter=3, check_every=4, covariance_floor=1e-3,
        weight_concentration=0.2, shrink_center=shift)
    assert kinds == state.matchings
    assert state.best_lower_bound == pytest.approx(rll, abs=1e-9)
    np.testing.assert_allclose(state.best_params.weights, rw, atol=1e-9)
    np.testing.assert_allclose(state.best_params.means, rm, atol=1e-8)
    np.testing.assert_allclose(state.best_params.covariances, rc, atol=1e-8)


def test_plain_em_stops_on_tol_and_returns_its_last_parameters(data):
    settings = FitSettings.plain_em(max_iter=500, tol=1e-8, covariance_floor=1e-3)
    with InProcessEngine(data) as engine:
        state = run_fit(engine, _start(data), settings)
    assert state.converged and state.iteration < 500 and state.best_params is state.params
    assert state.best_iteration == state.iteration == len(state.lower_bounds)
    assert abs(state.lower_bounds[-1] - state.lower_bounds[-2]) < 1e-8
    assert set(state.matchings) == {"joint"}


def test_biglearn_convergence_means_the_best_stopped_improving(data):
    with InProcessEngine(data) as engine:
        state = run_fit(engine, _start(data), BIGLEARN)
    gains = np.diff(np.maximum.accumulate(state.lower_bounds))
    assert state.converged == (gains[-1] < BIGLEARN.tol)
    one_check = FitSettings.biglearn(schedule=SCHEDULE, max_iter=3, n_inner_iter=1,
                                     check_every=5, covariance_floor=1e-3,
                                     weight_concentration=0.2, tol=np.inf)
    with InProcessEngine(data) as engine:
        assert not run_fit(engine, _start(data), one_check).converged  # needs two checks


class CountingEngine(InProcessEngine):
    """An in-process engine that counts its reads of the data."""

    reads = 0

    def run_passes(self, specs):
        self.reads += 1
        return super().run_passes(specs)


def _initial(data):
    from dask_biglearn.initialization import random_params as paper_random

    return lambda rng, index=0: paper_random(rng, 4, data.min(axis=0), data.max(axis=0))


@pytest.mark.parametrize("settings", [BIGLEARN, PLAIN_EM], ids=["biglearn", "plain-em"])
def test_restarts_advance_together_each_as_if_alone(data, settings):
    with CountingEngine(data) as engine:
        states = run_fits(engine, start_states(_initial(data), 3, np.random.default_rng(0)),
                          settings)
        reads_together = engine.reads
    alone, reads_alone = [], []
    for child in np.random.default_rng(0).spawn(3):
        with CountingEngine(data) as engine:
            alone.append(run_fit(engine, FitState(_initial(data)(child), child), settings))
            reads_alone.append(engine.reads)
    for together, single in zip(states, alone, strict=True):
        _assert_same_state(together, single)
    assert [s.restart for s in states] == [0, 1, 2]
    best = best_state(states)
    assert best.best_lower_bound == max(s.best_lower_bound for s in alone)
    if settings is BIGLEARN:  # three starts read the data as often as one
        assert reads_together == reads_alone[0] == reads_alone[1]
    else:  # plain EM: each start that converges early costs one evaluation pass at most
        assert reads_together <= max(reads_alone) + 2


def test_a_single_start_draws_from_the_first_start_generator_of_several(data):
    """Nested starts: one start is the first of three, to the bit."""
    with InProcessEngine(data) as engine:
        (one,) = run_fits(engine, start_states(_initial(data), 1, np.random.default_rng(0)),
                          BIGLEARN)
        first = run_fits(engine, start_states(_initial(data), 3, np.random.default_rng(0)),
                         BIGLEARN)[0]
    np.testing.assert_array_equal(one.best_params.means, first.best_params.means)
    assert one.matchings == first.matchings


def test_near_ties_between_starts_go_to_the_first(data):
    """Two starts at the same optimum differ by rounding that depends on the chunking: the
    first of them wins, so the chosen start does not."""
    states = [FitState(None, None, best_lower_bound=v) for v in (1.0, 1.0 + 1e-13, 0.5)]
    assert best_state(states) is states[0]
    states[1].best_lower_bound = 1.0 + 1e-6
    assert best_state(states) is states[1]
