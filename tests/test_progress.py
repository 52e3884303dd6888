"""The progress-bar callback draws a bar per phase and never changes the fit."""

import io

import numpy as np

from dask_biglearn import BigLearnGaussianMixture
from dask_biglearn.progress import ProgressBar


def test_the_bar_follows_the_phases_and_leaves_the_fit_unchanged():
    X = np.random.default_rng(0).normal(size=(600, 2))
    sink = io.StringIO()
    bar = ProgressBar(disable=False, file=sink, mininterval=0)
    kw = dict(max_iter=30, n_init=3, random_state=0)
    with_bar = BigLearnGaussianMixture(3, callbacks=[bar], **kw).fit(X)
    bar.close()
    plain = BigLearnGaussianMixture(3, **kw).fit(X)
    np.testing.assert_array_equal(with_bar.means_, plain.means_)
    text = sink.getvalue()
    assert "warm-up" in text and "explore" in text and "loglik=" in text
