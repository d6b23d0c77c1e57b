"""Scoring a step's rollouts: every reward part, the zoom verifier's included.

The reward functions are pure (`training.core.rewards`); the zoom part needs a model: the
verifier (`verifier.ZoomVerifier`) re-answers from the zoomed frames of each rollout its
gate lets through (ours: answered with spans; theirs: a valid glue list, answer or not).
This module does that I/O (video metadata, the verifier's calls) and hands the verdicts to
the pure functions.
"""

from __future__ import annotations

from collections.abc import Sequence

from zoom_agent import protocol
from zoom_agent.training.config import RewardConfig
from zoom_agent.training.core.rewards import trajectory_rewards
from zoom_agent.training.loop.verifier import ZoomVerifier
from zoom_agent.training.rewards import reward_parts
from zoom_agent.training.rollout.trajectory import Trajectory


async def score_trajectories(
    trajs: Sequence[Trajectory],
    verifier: ZoomVerifier | None,
    reward: RewardConfig,
    dialect: protocol.Dialect,
) -> list[dict[str, float]]:
    """Reward parts of every trajectory (the verifier runs for those its gate lets through).

    Args:
        trajs: the step's trajectories (failed ones score as their result allows).
        verifier: the zoom verifier, or None (the zoom part is then 0).
        reward: the weights and the rules; ``rules="official"`` scores the last reply's text
            with `training.rewards.reward_parts` (their one-shot layout), else
            `core.rewards.trajectory_rewards` judges every turn.
        dialect: the protocol dialect the policy answers in.

    Returns:
        One ``part -> reward`` dict per trajectory, ``total`` included.
    """
    zoom = [0.0] * len(trajs)
    if verifier is not None:
        from zoom_agent.video import open_video

        todo = [i for i, t in enumerate(trajs) if verifier.spans_of(t.result)]  # its gate decides
        items = [(trajs[i].question, trajs[i].result, open_video(trajs[i].question.video).info) for i in todo]
        for i, verdict in zip(todo, await verifier.verify_many(items), strict=True):
            zoom[i] = verdict.reward
    if reward.rules == "official":
        return [_official_parts(t, z, reward) for t, z in zip(trajs, zoom, strict=True)]
    weights = reward.weights()
    return [
        trajectory_rewards(t.question, t.result, zoom=z, weights=weights, dialect=dialect)
        for t, z in zip(trajs, zoom, strict=True)
    ]


def _official_parts(traj: Trajectory, zoom: float, reward: RewardConfig) -> dict[str, float]:
    turns = traj.result.turns
    q = traj.question
    return reward_parts(
        turns[-1].text if turns else "",
        gt_spans=q.gt_spans,
        gt_answer=q.answer_letter or "",
        preset=reward,
        zoom=zoom,
    )
