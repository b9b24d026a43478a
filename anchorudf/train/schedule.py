"""The training schedule: phase, learning rate and per-step seed of each (0-based) step.

``train.steps`` main steps, then ``train.gda_steps`` GDA steps, then (``model.hd_enabled``)
``train.hd_steps`` HD steps with a schedule of their own (see :mod:`anchorudf.train.trainer`).
"""

from __future__ import annotations

import numpy as np

from anchorudf.config import Params, TrainConfig


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Learning rate of (0-based) ``step``; the HD phase has its own schedule."""
    coarse = cfg.steps + cfg.gda_steps
    if step >= coarse:
        start, decay_from = coarse, coarse + round(cfg.lr_decay_at * cfg.hd_steps)
    else:
        start, decay_from = 0, round(cfg.lr_decay_at * coarse)
    warm = min(1.0, (step - start + 1) / (cfg.warmup + 1)) if cfg.warmup else 1.0
    return cfg.lr * warm * (cfg.lr_decay if step >= decay_from else 1.0)


def phase_at(cfg: TrainConfig, step: int) -> str:
    """'main' for the first ``steps`` steps, then 'gda' for ``gda_steps``, then 'hd'."""
    if step < cfg.steps:
        return "main"
    return "gda" if step < cfg.steps + cfg.gda_steps else "hd"


def total_steps(params: Params) -> int:
    """All steps of a run: steps + gda_steps (+ hd_steps with model.hd_enabled)."""
    t = params.train
    return t.steps + t.gda_steps + (t.hd_steps if params.model.hd_enabled else 0)


def step_seed(seed: int, step: int) -> int:
    """Torch's seed before ``step``: the same draw whatever step a run resumed at."""
    return int(np.random.SeedSequence([seed, step, 0xD00D]).generate_state(1)[0])
