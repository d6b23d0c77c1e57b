"""Scoring a step's rollouts: reward parts (with the zoom verifier), then per-token advantages.

`score_trajectories` computes every trajectory's reward parts (`training.rewards`), running
the verifier (`training.verifier`) for answered rollouts with spans; `trajectory_advantages`
turns those parts into advantages on each trajectory's policy tokens (`training.credit`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from zoom_agent import protocol
from zoom_agent.training.config import CreditConfig
from zoom_agent.training.core.credit import CHANNELS, grpo_advantages, token_selective_advantages
from zoom_agent.training.core.rewards import PARTS, trajectory_rewards
from zoom_agent.training.loop.verifier import ZoomVerifier
from zoom_agent.training.rollout.trajectory import Trajectory


async def score_trajectories(
    trajs: Sequence[Trajectory],
    verifier: ZoomVerifier | None,
    weights: dict[str, float],
    dialect: protocol.Dialect,
) -> list[dict[str, float]]:
    """Reward parts of every trajectory (the verifier runs for those with spans).

    Args:
        trajs: the step's trajectories (failed ones score as their result allows).
        verifier: the zoom verifier, or None (the zoom part is then 0).
        weights: part -> weight of the total.
        dialect: the protocol dialect the policy answers in.

    Returns:
        One ``part -> reward`` dict per trajectory, ``total`` included.
    """
    zoom = [0.0] * len(trajs)
    if verifier is not None:
        todo = [i for i, t in enumerate(trajs) if t.result.status == "answered" and t.result.spans]
        items = []
        for i in todo:
            from zoom_agent.video import open_video

            items.append((trajs[i].question, trajs[i].result, open_video(trajs[i].question.video).info))
        for i, verdict in zip(todo, await verifier.verify_many(items), strict=True):
            zoom[i] = verdict.reward
    return [
        trajectory_rewards(t.question, t.result, zoom=z, weights=weights, dialect=dialect)
        for t, z in zip(trajs, zoom, strict=True)
    ]


def trajectory_advantages(
    trajs: Sequence[Trajectory],
    parts: Sequence[dict[str, float]],
    credit: CreditConfig,
    weights: dict[str, float],
) -> list[torch.Tensor]:
    """Per-token advantages of each trajectory's policy tokens.

    Token-selective mode: `credit.token_selective_advantages` on the four channels of
    METHOD.md §4 (their weights in the total do not enter; the variant's own 1/3 or 1/4
    does), plus, for any other part with a weight (the CI probe), that weight times its
    sequence-level GRPO advantage on every policy token (a shared channel). GRPO mode: the
    sequence-level advantage of the weighted total on every policy token.

    Args:
        trajs: trajectories with policy tokens (``group`` = their question).
        parts: each trajectory's reward parts (`rewards.trajectory_rewards`).
        credit: the credit settings.
        weights: part -> weight of the total.

    Returns:
        One (P_b,) tensor per trajectory, P_b its number of policy tokens.
    """
    if not trajs:
        return []
    lengths = [len(t.policy_positions) for t in trajs]
    batch, width = len(trajs), max(lengths)
    mask = torch.zeros(batch, width, dtype=torch.bool)
    span, answer = torch.zeros_like(mask), torch.zeros_like(mask)
    for b, t in enumerate(trajs):
        pos = t.policy_positions
        mask[b, : len(pos)] = True
        span[b, : len(pos)] = torch.tensor([t.span_mask[i] for i in pos])
        answer[b, : len(pos)] = torch.tensor([t.answer_mask[i] for i in pos])
    group = torch.tensor([t.group for t in trajs])
    column = {k: torch.tensor([p[k] for p in parts], dtype=torch.float32) for k in (*PARTS, "total")}
    if credit.mode == "grpo":
        adv = grpo_advantages(column["total"], group, eps=credit.eps)[:, None] * mask
    else:
        adv = token_selective_advantages(
            {k: column[k] for k in CHANNELS},
            {"span": span, "answer": answer},
            mask,
            group,
            variant=credit.variant,
            channel_regions=credit.channel_regions,
            eps=credit.eps,
        )
        for name, weight in weights.items():
            if name not in CHANNELS and weight > 0:  # extra shared channels (the CI probe)
                adv = adv + weight * grpo_advantages(column[name], group, eps=credit.eps)[:, None] * mask
    return [adv[b, :n] for b, n in enumerate(lengths)]
