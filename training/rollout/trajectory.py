"""What a recorded rollout is: its policy calls, its token sequence, segments and masks.

A `Trajectory` keeps the sequence (the last call's prompt followed by its reply, which
holds every earlier call's prompt and reply as a prefix), its segments (policy | environment:
prompt, tool results, frames), the loss mask (1 only on sampled tokens), the region masks
(span: time tags, glue, zoom-call arguments; answer) from `protocol.parse` offsets through
`training.masks`, the sampled log-probs, and the clip references (pixels are re-decoded
for the training pass, never kept).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from zoom_agent.models.base import Turn
from zoom_agent.types import ClipRef, GroundedAnswer, Question


@dataclass(frozen=True)
class PolicyCall:
    """One model call of a rollout: what the policy saw and what it sampled."""

    prompt_ids: tuple[int, ...]
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]
    text: str
    finish_reason: str


@dataclass(frozen=True)
class Segment:
    """A run of tokens in a trajectory: sampled by the policy, or written by the environment."""

    kind: Literal["policy", "env"]
    start: int
    end: int


@dataclass
class Trajectory:
    """One recorded rollout, ready for rewards, credit and the training pass.

    ``input_ids`` is the last call's prompt followed by its reply; per-token lists have its
    length. ``sampled_logprobs`` is 0 outside the policy's tokens.
    """

    question: Question
    group: int
    sample: int
    result: GroundedAnswer
    turns: tuple[Turn, ...] = ()
    calls: tuple[PolicyCall, ...] = ()
    input_ids: list[int] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    loss_mask: list[bool] = field(default_factory=list)
    span_mask: list[bool] = field(default_factory=list)
    answer_mask: list[bool] = field(default_factory=list)
    sampled_logprobs: list[float] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """No policy token to train on (the rollout errored before or at its first call)."""
        return not any(self.loss_mask)

    @property
    def clips(self) -> tuple[ClipRef, ...]:
        return tuple(c for t in self.turns for c in t.clips)

    @property
    def policy_positions(self) -> list[int]:
        return [i for i, m in enumerate(self.loss_mask) if m]

    @property
    def texts(self) -> list[str]:
        return [c.text for c in self.calls]
