"""A progress bar for fits: a callback for the estimators' ``callbacks``.

``BigLearnGaussianMixture(..., callbacks=[ProgressBar()])`` shows, per phase of the fit
(warm-up, explore, refine, move, refine-full), the iterations done, the last joint mean
log-likelihood and the passes per second. It uses :mod:`tqdm.auto`: a widget in Jupyter,
a text bar on a terminal. With several starts advancing together it follows the first.
"""

from __future__ import annotations

import time

__all__ = ["ProgressBar"]


class ProgressBar:
    """``callback(state, event)`` that draws a bar per phase of the fit.

    Parameters
    ----------
    total : int, optional
        Iterations expected per phase (the bar's length); unknown if None.
    disable : bool, optional
        None: on when the output is a terminal or a notebook (tqdm's rule).
    file : file-like, optional
        Where a text bar goes (stderr by default).
    mininterval : float, default=0.1
        Seconds between redraws.
    n_inner_iter : int, default=5
        Passes per outer iteration of BigLearn-EM's exploration (every other phase makes one
        per iteration): the bar shows passes per second from it.
    """

    def __init__(self, total: int | None = None, disable: bool | None = None, file=None,
                 mininterval: float = 0.1, n_inner_iter: int = 5):
        self.total, self.disable, self.file = total, disable, file
        self.mininterval, self.n_inner_iter = mininterval, n_inner_iter
        self._bar, self._phase, self._restart = None, None, None
        self._started = time.perf_counter()

    def _open(self, state):
        from tqdm.auto import tqdm

        self.close()
        self._phase, self._restart = state.phase, state.restart
        self._started = time.perf_counter()
        self._bar = tqdm(total=self.total, desc=state.phase, unit="it", file=self.file,
                         disable=self.disable, leave=False, dynamic_ncols=True,
                         mininterval=self.mininterval)

    def __call__(self, state, event):
        if self._bar is None or state.phase != self._phase:
            self._open(state)
        if state.restart != self._restart:
            return
        if event == "iteration":
            self._bar.update(state.iteration - self._bar.n)
        if state.lower_bounds:
            per_iteration = self.n_inner_iter if state.phase == "explore" else 1
            rate = (state.iteration * per_iteration
                    / max(time.perf_counter() - self._started, 1e-9))
            self._bar.set_postfix(loglik=f"{state.lower_bounds[-1]:.5f}",
                                  passes_per_s=f"{rate:.1f}", refresh=self.mininterval == 0)
        return

    def close(self):
        """Close the bar of the current phase, if one is open.

        Call it when the fit ends; a later phase or fit opens a new bar.
        """
        if self._bar is not None:
            self._bar.close()
            self._bar = None
