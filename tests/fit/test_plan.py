"""The fit program: the warm-up's model is the bar the exploration must beat."""

import numpy as np
import pytest

from dask_biglearn import BigLearnGaussianMixture, datasets
from dask_biglearn.engines import InProcessEngine
from dask_biglearn.fit.plan import run_plan


@pytest.fixture(scope="module")
def easy():
    truth = datasets.random_mixture(2, 4, separation=4.0, random_state=2)
    X, _ = datasets.sample_mixture(*truth, 3000, random_state=3)
    return X


def _run(X, **params):
    model = BigLearnGaussianMixture(4, n_init=3, n_explore=2, moves=(), random_state=0,
                                    **params)
    plan = model._fit_plan(*X.shape)
    with InProcessEngine(X) as engine:
        return run_plan(engine, plan, np.random.default_rng(0))


def test_the_exploration_starts_from_the_warm_up_and_must_beat_it(easy):
    result = _run(easy, check_every=5, n_iter_no_change=10)
    warm = {c.main.restart: c.result for c in result.candidates if c.main.phase == "warm-up"}
    explored = [c.main for c in result.candidates if c.main.phase == "explore"]
    assert len(explored) == 2
    for state in explored:
        start = warm[state.restart]
        # The warm-up's log-likelihood is the first check, and the best can only rise.
        assert state.lower_bounds[0] == start.best_lower_bound
        assert state.best_lower_bound >= start.best_lower_bound
        if state.best_iteration == 0:  # no matching beat it: the warm-up's model returns
            assert state.best_params is start.best_params
        # The stopping rule judges from the start: 10 outer iterations without a gain end it.
        last_gain = state.best_iteration
        assert state.iteration <= last_gain + 10 + 5


def test_a_longer_window_explores_longer(easy):
    short = _run(easy, check_every=5, n_iter_no_change=10)
    long = _run(easy, check_every=5, n_iter_no_change=40)
    iterations = lambda r: max(c.main.iteration for c in r.candidates
                               if c.main.phase == "explore")
    assert iterations(long) >= 40 > iterations(short)
