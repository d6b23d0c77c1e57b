"""GRPO training of the zoom agent, laid out by dataflow (docs/training.md).

One step of `Trainer.step`, and the folder each stage lives in::

    questions (loop/data)
      -> rollouts: the zoom graph, G per question, recorded token by token
         (rollout/engine, rollout/render, rollout/sampler | rollout/vllm_engine)
         => Trajectory (rollout/trajectory): sequence, segments, TokenMasks
      -> rewards: format, iou, answer, zoom (the verifier), number
         (loop/scoring: verifier I/O; core/rewards: the pure parts; rewards: one reply's
         text under our rules or theirs, `reward_parts`)
      -> credit: an advantage on every policy token (core/advantages, core/credit)
      -> update: re-render, log-probs under the policy and the reference, PPO-clip loss,
         gradients summed over ranks, AdamW (loop/update, loop/logprobs, core/loss,
         loop/distributed)
      -> metrics and checkpoints (loop/metrics, loop/checkpoint)

``core/`` is pure: torch and the protocol/span floors, no model, no files. ``rollout/``
talks to the policy. ``loop/`` owns state: the optimiser, the data position, ranks, files.
``config.py`` is the typed recipe (`TrainConfig`); ``recipes/`` ships YAML recipes.

The names below import lazily, so ``import zoom_agent.training`` stays light (the CLI
imports it to list recipes).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_HOMES = {
    "TrainConfig": "config",
    "available_recipes": "config",
    "load_recipe": "config",
    "PARTS": "core.rewards",
    "PAPER_WEIGHTS": "core.rewards",
    "trajectory_rewards": "core.rewards",
    "reward_parts": "rewards",
    "region_token_masks": "core.masks",
    "CHANNELS": "core.credit",
    "grpo_advantages": "core.credit",
    "token_selective_advantages": "core.credit",
    "policy_token_advantages": "core.advantages",
    "policy_loss": "core.loss",
    "RolloutEngine": "rollout.engine",
    "RolloutError": "rollout.render",
    "PolicyCall": "rollout.trajectory",
    "TokenMasks": "rollout.trajectory",
    "Trajectory": "rollout.trajectory",
    "Trainer": "loop.trainer",
    "ZoomVerifier": "loop.verifier",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{home}"), name)
