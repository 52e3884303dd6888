"""Checkpoints: a fit SIGKILLed mid-way and resumed ends exactly where an uninterrupted one
does, in every mode; a checkpoint of another fit is refused."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from dask_biglearn import BigLearnGaussianMixture, GaussianMixture, datasets

# The modes whose checkpoints were recorded (``tests/data/make_old_checkpoints.py``): the same
# fits are killed and resumed here.
sys.path.insert(0, str(Path(__file__).parents[1] / "data"))
from make_old_checkpoints import MODES, RESULTS, checkpoint_path


def same_arithmetic_env():
    """A child's environment that computes as this process does, bit for bit: the same
    kernels (compiled or not: this process's choice, read once) and one BLAS thread."""
    from dask_biglearn.config import compiled_kernels

    return {**os.environ, "DASK_BIGLEARN_NUMBA": "1" if compiled_kernels() else "0",
            "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _data():
    truth = datasets.random_mixture(2, 5, separation=1.5, random_state=1)
    return datasets.sample_mixture(*truth, 4000, random_state=2)[0]


def _killed_fit(expression, checkpoint, kill_after):
    """Run the fit in a child process that SIGKILLs itself after ``kill_after`` iterations
    (with a checkpoint every 2)."""
    script = textwrap.dedent(f"""
        import os, signal
        import numpy as np
        from dask_biglearn import BigLearnGaussianMixture, GaussianMixture, datasets
        truth = datasets.random_mixture(2, 5, separation=1.5, random_state=1)
        X = datasets.sample_mixture(*truth, 4000, random_state=2)[0]
        seen = [0]
        def die(state, event):
            if event == "iteration":
                seen[0] += 1
                if seen[0] == {kill_after}:
                    os.kill(os.getpid(), signal.SIGKILL)
        model = {expression}
        model.set_params(checkpoint={str(checkpoint)!r}, checkpoint_every=2, callbacks=[die])
        model.fit(X)
    """)
    done = subprocess.run([sys.executable, "-c", script], timeout=300, check=False,
                          env=same_arithmetic_env())
    return done.returncode


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_fit_killed_and_resumed_ends_as_an_uninterrupted_one(tmp_path, mode):
    from threadpoolctl import threadpool_limits

    X = _data()
    checkpoint = tmp_path / "fit.ckpt"
    uninterrupted = eval(MODES[mode])
    with threadpool_limits(1):
        uninterrupted.fit(X)
    assert _killed_fit(MODES[mode], checkpoint, kill_after=25) == -signal.SIGKILL
    assert checkpoint.exists()
    resumed = eval(MODES[mode])
    resumed.set_params(checkpoint=checkpoint, resume=True)
    with threadpool_limits(1):
        resumed.fit(X)
    np.testing.assert_array_equal(resumed.means_, uninterrupted.means_)
    np.testing.assert_array_equal(resumed.covariances_, uninterrupted.covariances_)
    np.testing.assert_array_equal(resumed.weights_, uninterrupted.weights_)
    assert resumed.lower_bound_ == uninterrupted.lower_bound_
    # The resumed model counts the killed run's passes (up to its last checkpoint) too: at
    # least the uninterrupted fit's, plus what was redone since that checkpoint.
    assert uninterrupted.n_data_passes_ <= resumed.n_data_passes_
    assert resumed.n_data_passes_ <= uninterrupted.n_data_passes_ + 2 * 5 + 3
    assert [p.name for p in tmp_path.iterdir()] == ["fit.ckpt"]  # no temporary left


def test_a_checkpoint_of_another_fit_is_refused(tmp_path):
    X = _data()
    path = tmp_path / "c.ckpt"
    GaussianMixture(3, checkpoint=path, random_state=0).fit(X)
    with pytest.raises(ValueError, match="another fit.*n_components"):
        GaussianMixture(4, checkpoint=path, resume=True, random_state=0).fit(X)
    with pytest.raises(ValueError, match="another fit.*shape"):
        GaussianMixture(3, checkpoint=path, resume=True, random_state=0).fit(X[:100])


def test_an_existing_checkpoint_is_never_overwritten_by_a_fit_that_does_not_resume(tmp_path):
    """As the command line: without resume, an existing checkpoint (of this fit or another)
    is refused before any work, and left as it was."""
    X = _data()
    path = tmp_path / "c.ckpt"
    GaussianMixture(3, max_iter=5, checkpoint=path, random_state=0).fit(X)
    before = path.read_bytes()
    for model in (GaussianMixture(3, max_iter=5, random_state=0),
                  BigLearnGaussianMixture(4, max_iter=5, random_state=1)):
        with pytest.raises(FileExistsError, match="c.ckpt exists .* resume=True"):
            model.set_params(checkpoint=path).fit(X)
        assert not hasattr(model, "means_")
    assert path.read_bytes() == before


def test_resume_starts_afresh_where_there_is_no_checkpoint_and_says_how_far_one_got(tmp_path):
    """One call a requeued job can repeat: resume=True with no checkpoint fits afresh (and
    writes one); interrupted, the checkpoint says where it stands; resumed, the model counts
    the passes of both runs."""
    from dask_biglearn.fit.journal import describe_checkpoint

    X = _data()
    path = tmp_path / "c.ckpt"
    settings = dict(max_iter=40, tol=0.0, init_params="random", checkpoint=path, resume=True,
                    checkpoint_every=5, random_state=0)
    whole = GaussianMixture(3, **{**settings, "checkpoint": None, "resume": False})
    with pytest.warns(ConvergenceWarning):
        whole.fit(X)

    def interrupt(state, event):
        if event == "iteration" and state.iteration == 23:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        GaussianMixture(3, callbacks=[interrupt], **settings).fit(X)
    described = describe_checkpoint(path)
    assert described["estimator"] == "GaussianMixture"
    assert described["hyper_parameters"]["n_components"] == 3
    assert described["shape"] == list(X.shape)
    progress = described["progress"]
    assert (progress["n_loops"], progress["phase"], progress["iteration"]) == (1, "explore", 20)
    assert not progress["complete"]
    assert progress["n_data_passes"] == 1 + 20  # the summary, 20 updates
    with pytest.warns(ConvergenceWarning):
        resumed = GaussianMixture(3, **settings).fit(X)
    np.testing.assert_array_equal(resumed.means_, whole.means_)
    # 21 passes before, then the summary, 20 updates and the final evaluation
    assert resumed.n_data_passes_ == 21 + 1 + 20 + 1
    assert describe_checkpoint(path)["progress"]["complete"]


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_checkpoint_written_by_an_earlier_version_still_resumes(tmp_path, mode):
    import shutil

    from threadpoolctl import threadpool_limits

    results = np.load(RESULTS, allow_pickle=False)  # the uninterrupted fits, at 90d55af
    checkpoint = tmp_path / "old.ckpt"
    shutil.copyfile(checkpoint_path(mode), checkpoint)
    resumed = eval(MODES[mode])
    resumed.set_params(checkpoint=checkpoint, resume=True)
    with threadpool_limits(1), pytest.warns(UserWarning, match="did not record its data"):
        resumed.fit(_data())
    for name in ("weights", "means", "covariances"):
        want = results[f"{mode}/{name}"]
        np.testing.assert_allclose(getattr(resumed, f"{name}_"), want, rtol=0,
                                   atol=1e-10 * max(1.0, np.abs(want).max()), err_msg=name)
    assert abs(resumed.lower_bound_ - float(results[f"{mode}/lower_bound"])) < 1e-10


def test_a_checkpoint_of_other_data_of_the_same_shape_is_refused(tmp_path):
    """The identity holds a fingerprint of the data (the summary pass: rows, mean, variance,
    min, max), not only its shape and dtype."""
    X = _data()
    path = tmp_path / "c.ckpt"
    GaussianMixture(3, max_iter=5, checkpoint=path, random_state=0).fit(X)
    other = X[::-1] * 1.5  # same shape and dtype
    with pytest.raises(ValueError, match="another fit \\(data differ\\)"):
        GaussianMixture(3, max_iter=5, checkpoint=path, resume=True, random_state=0).fit(other)


def test_the_fingerprint_does_not_depend_on_the_chunking(tmp_path):
    import dask.array as da

    X = _data()
    path = tmp_path / "c.ckpt"
    first = GaussianMixture(3, max_iter=5, checkpoint=path, random_state=0).fit(
        da.from_array(X, chunks=(700, -1)))
    resumed = GaussianMixture(3, max_iter=5, checkpoint=path, resume=True, random_state=0).fit(
        da.from_array(X, chunks=(1500, -1)))
    np.testing.assert_allclose(resumed.means_, first.means_, rtol=0, atol=1e-10)
    assert resumed.lower_bound_ == pytest.approx(first.lower_bound_, abs=1e-12)


def test_a_warm_start_checkpoint_names_its_start(tmp_path):
    """A warm-started fit is bound to the model it started from: resuming its checkpoint
    from another fitted model is refused, from the same one it is accepted."""
    import warnings

    X = _data()
    path = tmp_path / "warm.ckpt"

    def fit(model):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return model.fit(X)

    def warm(max_iter):
        return fit(GaussianMixture(5, init_params="kmeans", max_iter=max_iter,
                                   warm_start=True, random_state=0))

    first = fit(warm(3).set_params(checkpoint=path))
    with pytest.raises(ValueError, match="another fit \\(.*init"):
        fit(warm(4).set_params(checkpoint=path, resume=True))
    same = fit(warm(3).set_params(checkpoint=path, resume=True))
    np.testing.assert_array_equal(same.means_, first.means_)
