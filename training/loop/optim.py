"""The optimiser and learning-rate schedule of a run (AdamW; warm-up, then cosine or constant)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from zoom_agent.training.config import TrainConfig


def build_optimizer(
    model: Any, config: TrainConfig, total_steps: int
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over the model's trainable parameters and its `lr_lambda` schedule.

    Args:
        model: the policy (parameters with ``requires_grad`` set as they will be trained).
        config: the run's configuration (its ``optim`` section).
        total_steps: the run's length in rollout steps (the default horizon).

    Returns:
        ``(optimizer, scheduler)``.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    o = config.optim
    optimizer = torch.optim.AdamW(params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config, total_steps))


def lr_lambda(config: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """Linear warm-up, then cosine decay to ``min_lr_ratio`` (or constant), stepped once per
    rollout step.

    The cosine spans ``optim.horizon`` steps (their code: a fixed 500) or, by default, the
    run (ours); past its end the factor stays at the floor (theirs would rise again).
    ``optim.warmup_from_zero`` gives their warm-up (step 0 at lr 0).

    Args:
        config: the run's configuration (its ``optim`` section).
        total_steps: the run's length in rollout steps.

    Returns:
        step -> learning-rate factor, for ``torch.optim.lr_scheduler.LambdaLR``.
    """
    o = config.optim
    horizon = total_steps if o.horizon is None else o.horizon

    def factor(step: int) -> float:
        if step < o.warmup_steps:
            return step / o.warmup_steps if o.warmup_from_zero else (step + 1) / (o.warmup_steps + 1)
        if o.schedule == "constant":
            return 1.0
        span = max(horizon - o.warmup_steps, 1)
        progress = min((step - o.warmup_steps) / span, 1.0)
        return o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def mini_batches(config: TrainConfig) -> int:
    """Optimiser steps per rollout step: ``ceil(P * G / optim.mini_batch_size)``, 1 without
    mini-batches (their code: 512 / 64 = 8).

    Example:
        >>> mini_batches(TrainConfig.model_validate({"optim": {"mini_batch_size": 64}}))
        8
    """
    mb = config.optim.mini_batch_size
    return 1 if mb is None else max(1, math.ceil(config.prompts_per_step * config.group_size / mb))


def lr_at(config: TrainConfig, steps: Sequence[int], total_steps: int | None = None) -> dict[int, float | None]:
    """The learning rate at each rollout step (``optim.lr`` times `lr_lambda`).

    Args:
        config: the run's configuration.
        steps: the rollout steps asked about.
        total_steps: the run's length; None = ``max_steps``.

    Returns:
        step -> lr; None for every step when the horizon is the run's length and that is
        unknown (no ``optim.horizon``, no ``max_steps``, no ``total_steps``).
    """
    total = total_steps or config.max_steps
    if config.optim.horizon is None and total is None:
        return dict.fromkeys(steps)
    factor = lr_lambda(config, total or config.optim.horizon or 1)
    return {s: config.optim.lr * factor(s) for s in steps}
