"""Stepwise (mini-batch) EM, the stochastic variant the scalable mode was compared with.

Each step reads a mini-batch, computes its sufficient statistics at the current parameters,
and moves a running average towards them with step ``gamma_t = t ** -step_exponent``
(Cappé & Moulines 2009; Liang & Klein 2009; Nguyen, Forbes & McLachlan 2020 for normal
mixtures: ``step_exponent`` in (0.5, 1]); the M-step of the average gives the new
parameters. A mini-batch is ``batch_blocks`` row ranges of ``block_rows`` rows, at positions
drawn on the driver over the global row index: it does not depend on the chunking (each
range reads the chunks it touches).

``benchmarks/bench_scale.py`` compares it with the scalable mode (explore on a sample, refine
on the full data) on full-data passes to quality; see ``benchmarks/README.md`` for where it
stands. It is a function of the fit package, not an estimator option.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..kernels.stats import SuffStats
from ..model import MixtureParams
from ..projection import Projection
from .loop import m_step, pass_spec


@dataclass(frozen=True)
class StepwiseSettings:
    """How stepwise EM runs.

    Parameters
    ----------
    n_steps : int
        Mini-batch steps.
    batch_rows : int, default=20_000
        Rows of a mini-batch (rounded down to whole blocks, at least one block).
    block_rows : int, default=2_000
        Rows of each of a mini-batch's row ranges.
    step_exponent : float, default=0.6
        The step is ``gamma_t = t ** -step_exponent``; in (0.5, 1].
    covariance_floor : float, default=1e-6
        Eigenvalue floor of the covariances.
    """

    n_steps: int
    batch_rows: int = 20_000
    block_rows: int = 2_000
    step_exponent: float = 0.6
    covariance_floor: float = 1e-6


def batch_ranges(rng, n_samples: int, batch_rows: int, block_rows: int):
    """Draw the row ranges ``[start, stop)`` of one mini-batch.

    Distinct blocks of the global row index, drawn uniformly.

    Parameters
    ----------
    rng : numpy.random.Generator
        The driver's generator.
    n_samples : int
        The data's rows.
    batch_rows : int
        Rows of the mini-batch (rounded down to whole blocks, at least one block, at most
        all of them).
    block_rows : int
        Rows of each block.

    Returns
    -------
    ranges : list of (int, int)
        The chosen blocks' ranges ``[start, stop)``, in increasing order.
    """
    n_blocks = -(-n_samples // block_rows)
    take = min(n_blocks, max(1, batch_rows // block_rows))
    chosen = np.sort(rng.choice(n_blocks, size=take, replace=False))
    return [(int(b * block_rows), int(min(n_samples, (b + 1) * block_rows))) for b in chosen]


def _scaled(stats: SuffStats, factor: float, n_rows: int) -> SuffStats:
    return SuffStats(stats.resp_sum * factor, stats.first_moment * factor,
                     stats.second_moment * factor, stats.log_lik_sum * factor, n_rows)


def _blend(average: SuffStats, new: SuffStats, gamma: float) -> SuffStats:
    return replace(
        average,
        resp_sum=(1 - gamma) * average.resp_sum + gamma * new.resp_sum,
        first_moment=(1 - gamma) * average.first_moment + gamma * new.first_moment,
        second_moment=(1 - gamma) * average.second_moment + gamma * new.second_moment,
        log_lik_sum=(1 - gamma) * average.log_lik_sum + gamma * new.log_lik_sum,
    )


def stepwise_em(engine, params: MixtureParams, settings: StepwiseSettings, rng,
                callback=None) -> MixtureParams:
    """Run ``settings.n_steps`` stepwise EM steps from ``params``.

    The statistics are kept in the engine's shifted coordinates, rescaled to ``n_samples``
    rows.

    Parameters
    ----------
    engine : Engine
        Where the rows live; it must offer ``run_passes_on_rows``.
    params : MixtureParams
        The starting parameters.
    settings : StepwiseSettings
        How the steps run.
    rng : numpy.random.Generator
        Draws the mini-batches.
    callback : callable, default=None
        ``callback(step, params)``, called after each step (for the benchmark's
        quality-against-passes curve).

    Returns
    -------
    params : MixtureParams
        The parameters after the last step.
    """
    n = engine.summaries.n_samples
    identity = Projection.identity()
    average = None
    for step in range(1, settings.n_steps + 1):
        ranges = batch_ranges(rng, n, settings.batch_rows, settings.block_rows)
        spec, shift_y = pass_spec(engine, params, None, moments=True)
        stats = engine.run_passes_on_rows([spec], ranges)[0]
        stats = _scaled(stats, n / stats.n_rows, n)
        gamma = step ** -settings.step_exponent
        average = stats if average is None else _blend(average, stats, gamma)
        params, _ = m_step(params, identity, average, shift_y, settings.covariance_floor, 0.0)
        if callback is not None:
            callback(step, params)
    return params
