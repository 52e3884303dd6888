"""The law of the projections: orthonormal rows, subset sizes, kinds, Haar frames."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dask_biglearn.projection import MatchingSchedule, haar_frame


def _draw(schedule, d, n, seed=0):
    rng = np.random.default_rng(seed)
    return [schedule.sample(rng, d) for _ in range(n)]


def test_rows_are_orthonormal_and_sizes_follow_the_beta_law():
    d = 16
    schedule = MatchingSchedule({"marginal": 0.5, "rotated_marginal": 0.5}, (5.0, 1.0))
    draws = _draw(schedule, d, 4000)
    sizes = []
    for p in draws:
        P = p.matrix
        np.testing.assert_allclose(P @ P.T, np.eye(P.shape[0]), atol=1e-12)
        sizes.append(P.shape[0])
        if p.kind == "marginal":
            assert set(np.unique(P)) <= {0.0, 1.0}
            assert np.all(np.diff(np.argmax(P, axis=1)) > 0)  # increasing coordinates
    sizes = np.array(sizes)
    assert sizes.min() >= 1 and sizes.max() <= d - 1
    # m = floor(16 b), b ~ Beta(5, 1): P(m <= 11) = P(b < 12/16) = 0.75**5.
    assert np.mean(sizes <= 11) == pytest.approx(0.75**5, abs=0.03)


def test_two_features_use_one_coordinate():
    schedule = MatchingSchedule({"marginal": 0.5, "rotated_marginal": 0.5})
    assert {p.matrix.shape for p in _draw(schedule, 2, 200)} == {(1, 2)}


def test_kind_frequencies_follow_matching_probs():
    schedule = MatchingSchedule({"joint": 0.4, "marginal": 0.1, "rotated_marginal": 0.5})
    kinds = [p.kind for p in _draw(schedule, 5, 5000)]
    for kind, prob in schedule.probs.items():
        assert kinds.count(kind) / len(kinds) == pytest.approx(prob, abs=0.025)
    joint = next(p for p in _draw(schedule, 5, 50) if p.kind == "joint")
    assert joint.matrix is None and joint.is_identity


def test_haar_frames_are_isotropic():
    """E[P^T P] = (m / D) I for rows of a Haar rotation; the sign fix keeps it unbiased."""
    rng = np.random.default_rng(1)
    d, m, n = 5, 2, 20000
    acc = np.zeros((d, d))
    first = []
    for _ in range(n):
        P = haar_frame(rng, d, m)
        acc += P.T @ P
        first.append(P[0, 0])
    np.testing.assert_allclose(acc / n, (m / d) * np.eye(d), atol=0.01)
    assert np.mean(first) == pytest.approx(0.0, abs=0.01)  # no sign bias


def test_same_seed_same_sequence():
    schedule = MatchingSchedule({"joint": 0.2, "marginal": 0.3, "rotated_marginal": 0.5})
    a, b = _draw(schedule, 7, 50, seed=3), _draw(schedule, 7, 50, seed=3)
    for p, q in zip(a, b, strict=True):
        assert p.kind == q.kind
        if p.matrix is not None:
            np.testing.assert_array_equal(p.matrix, q.matrix)


@given(d=st.integers(1, 12), seed=st.integers(0, 2**32 - 1),
       probs=st.sampled_from([{"joint": 1.0}, {"marginal": 1.0}, {"rotated_marginal": 1.0},
                              {"joint": 0.4, "marginal": 0.1, "rotated_marginal": 0.5}]),
       beta=st.tuples(st.floats(0.2, 8.0), st.floats(0.2, 8.0)))
def test_every_projection_has_orthonormal_rows(d, seed, probs, beta):
    schedule = MatchingSchedule(probs, beta)
    rng = np.random.default_rng(seed)
    for _ in range(5):
        projection = schedule.sample(rng, d)
        if projection.is_identity:
            assert projection.kind == "joint"
            continue
        P = projection.matrix
        assert 1 <= P.shape[0] <= d and P.shape[1] == d
        np.testing.assert_allclose(P @ P.T, np.eye(P.shape[0]), atol=1e-12)
