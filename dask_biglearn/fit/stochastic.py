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
from .loop import _m_step, _spec


@dataclass(frozen=True)
class StepwiseSettings:
    n_steps: int
    batch_rows: int = 20_000
    block_rows: int = 2_000
    step_exponent: float = 0.6
    covariance_floor: float = 1e-6


def batch_ranges(rng, n_samples: int, batch_rows: int, block_rows: int):
    """Row ranges ``[start, stop)`` of one mini-batch: distinct blocks of the global row
    index, drawn uniformly."""
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
    """``settings.n_steps`` stepwise EM steps from ``params``; ``callback(step, params)``
    after each (for the benchmark's quality-against-passes curve). The statistics are kept
    in the engine's shifted coordinates, rescaled to ``n_samples`` rows."""
    n = engine.summaries.n_samples
    identity = Projection.identity()
    average = None
    for step in range(1, settings.n_steps + 1):
        ranges = batch_ranges(rng, n, settings.batch_rows, settings.block_rows)
        spec, shift_y = _spec(engine, params, None, moments=True)
        stats = engine.run_passes_on_rows([spec], ranges)[0]
        stats = _scaled(stats, n / stats.n_rows, n)
        gamma = step ** -settings.step_exponent
        average = stats if average is None else _blend(average, stats, gamma)
        params, _ = _m_step(params, identity, average, shift_y, settings.covariance_floor, 0.0)
        if callback is not None:
            callback(step, params)
    return params
