"""The fit program: nested starts; the warm-up's model is the bar the exploration must beat."""

import dataclasses

import numpy as np
import pytest

from dask_biglearn import BigLearnGaussianMixture, GaussianMixture, datasets
from dask_biglearn.engines import InProcessEngine
from dask_biglearn.fit.plan import draw_starts, run_plan
from dask_biglearn.initialization import INIT_METHODS, start_kinds


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


@pytest.mark.parametrize("init_params", INIT_METHODS)
def test_the_starts_of_fewer_inits_are_among_those_of_more(easy, init_params):
    """The first m starts of n_init=n are the starts of n_init=m (and the extra pursuit
    starts of "auto" nest too), so raising n_init never loses a start."""
    model = BigLearnGaussianMixture(4, init_params=init_params)

    def starts(n_init):
        plan = dataclasses.replace(model._fit_plan(*easy.shape), n_init=n_init)
        with InProcessEngine(easy) as engine:
            states, _ = draw_starts(engine, plan, np.random.default_rng(7))
        return {(plan_kind, i): s.params for (plan_kind, i), s in zip(
            _numbered(start_kinds(init_params, n_init)), states, strict=True)}

    few, many = starts(2), starts(7)
    assert few and set(few) <= set(many)
    for key, params in few.items():
        np.testing.assert_array_equal(params.means, many[key].means)
        np.testing.assert_array_equal(params.covariances, many[key].covariances)
    one = starts(1)
    np.testing.assert_array_equal(one[next(iter(one))].means, many[next(iter(one))].means)


def _numbered(kinds):
    """``(kind, i)``: the i-th start of its kind."""
    seen = {}
    for kind in kinds:
        seen[kind] = seen.get(kind, -1) + 1
        yield kind, seen[kind]


def test_more_plain_em_starts_never_give_a_worse_model(easy):
    """scikit-learn's test_init: the same random_state, n_init=10 never below n_init=1."""
    for seed in range(3):
        one = GaussianMixture(6, n_init=1, random_state=seed, tol=1e-4).fit(easy)
        ten = GaussianMixture(6, n_init=10, random_state=seed, tol=1e-4).fit(easy)
        assert ten.lower_bound_ >= one.lower_bound_
