"""The optimiser and learning-rate schedule of a run (AdamW; warm-up, then cosine or constant)."""

from __future__ import annotations

import math
from collections.abc import Callable
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
        total_steps: the run's length in optimiser steps (the schedule's horizon).

    Returns:
        ``(optimizer, scheduler)``.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    o = config.optim
    optimizer = torch.optim.AdamW(params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config, total_steps))


def lr_lambda(config: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """Linear warm-up, then cosine decay to ``min_lr_ratio`` (or constant) over the run.

    Args:
        config: the run's configuration (its ``optim`` section).
        total_steps: the run's length in optimiser steps.

    Returns:
        step -> learning-rate factor, for ``torch.optim.lr_scheduler.LambdaLR``.
    """
    o = config.optim

    def factor(step: int) -> float:
        if step < o.warmup_steps:
            return (step + 1) / (o.warmup_steps + 1)
        if o.schedule == "constant":
            return 1.0
        span = max(total_steps - o.warmup_steps, 1)
        progress = min((step - o.warmup_steps) / span, 1.0)
        return o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor
