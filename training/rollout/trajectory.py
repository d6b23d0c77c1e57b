"""What a recorded rollout is: its policy calls, its token sequence, segments and token masks.

A `Trajectory` keeps the sequence (the last call's prompt followed by its reply, which
holds every earlier call's prompt and reply as a prefix), its segments (policy | environment:
prompt, tool results, frames), one `TokenMasks` record (who wrote each token, which tokens
are span or answer tokens, the sampled log-probs), and the clip references (pixels are
re-decoded for the training pass, never kept). It is immutable and built in one place,
`Trajectory.from_calls`.
"""

from __future__ import annotations

from collections.abc import Sequence
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


@dataclass(frozen=True)
class TokenMasks:
    """Per token of a trajectory's sequence, all of the same length.

    Attributes:
        policy: the loss mask: True on tokens the policy sampled.
        span: span tokens (time tags, glue, zoom-call arguments); policy tokens only.
        answer: answer tokens; policy tokens only.
        logprobs: the log-prob each policy token was sampled with (0 elsewhere).
    """

    policy: tuple[bool, ...] = ()
    span: tuple[bool, ...] = ()
    answer: tuple[bool, ...] = ()
    logprobs: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        lengths = {len(self.policy), len(self.span), len(self.answer), len(self.logprobs)}
        if len(lengths) != 1:
            raise ValueError(f"token masks must have one length, got policy/span/answer/logprobs {lengths}")
        triples = zip(self.policy, self.span, self.answer, strict=True)
        outside = [i for i, (p, s, a) in enumerate(triples) if (s or a) and not p]
        if outside:
            raise ValueError(f"span and answer tokens must be policy tokens; token {outside[0]} is not")

    @property
    def positions(self) -> list[int]:
        """Indices of the policy's tokens in the sequence."""
        return [i for i, m in enumerate(self.policy) if m]

    def on_policy(self) -> dict[str, list[bool]]:
        """The region masks (``span``, ``answer``) restricted to the policy's tokens, in order."""
        pos = self.positions
        return {"span": [self.span[i] for i in pos], "answer": [self.answer[i] for i in pos]}

    def sampled_logprobs(self) -> list[float]:
        """The sampled log-prob of each policy token, in order."""
        return [self.logprobs[i] for i in self.positions]


@dataclass(frozen=True)
class Trajectory:
    """One recorded rollout, ready for rewards, credit and the training pass.

    ``input_ids`` is the last call's prompt followed by its reply; ``masks`` has its length.
    A rollout that errored before its first call has no calls and no tokens (``failed``).
    """

    question: Question
    group: int
    sample: int
    result: GroundedAnswer
    turns: tuple[Turn, ...] = ()
    calls: tuple[PolicyCall, ...] = ()
    input_ids: tuple[int, ...] = ()
    segments: tuple[Segment, ...] = ()
    masks: TokenMasks = field(default_factory=TokenMasks)

    @classmethod
    def from_calls(
        cls,
        question: Question,
        result: GroundedAnswer,
        *,
        group: int,
        sample: int,
        turns: Sequence[Turn] = (),
        calls: Sequence[PolicyCall] = (),
        regions: Sequence[dict[str, Sequence[bool]]] = (),
    ) -> Trajectory:
        """Lay a finished rollout's calls out as one sequence with its masks.

        Args:
            question, result: the question and what the graph returned.
            group, sample: the question's group id and this rollout's index in it.
            turns: the conversation of the last call (its reply is appended as a turn).
            calls: the recorded policy calls, in order; each prompt extends the previous
                prompt + reply.
            regions: per call, ``{"span": [...], "answer": [...]}`` over its reply tokens.

        Returns:
            The trajectory (no tokens when there is no call).
        """
        if len(regions) != len(calls):
            raise ValueError(f"need one region record per call, got {len(regions)} for {len(calls)} calls")
        if not calls:
            return cls(question=question, group=group, sample=sample, result=result)
        last = calls[-1]
        ids = (*last.prompt_ids, *last.token_ids)
        n = len(ids)
        policy, span, answer, logprobs = [False] * n, [False] * n, [False] * n, [0.0] * n
        segments: list[Segment] = []
        pos = 0
        for k, (call, marks) in enumerate(zip(calls, regions, strict=True)):
            start, end = len(call.prompt_ids), len(call.prompt_ids) + len(call.token_ids)
            if start < pos:
                raise ValueError(
                    f"call {k}'s prompt must extend the previous prompt + reply; it starts at {start} < {pos}"
                )
            if (
                len(marks["span"]) != end - start
                or len(marks["answer"]) != end - start
                or len(call.logprobs) != end - start
            ):
                raise ValueError(f"call {k}: its region masks and log-probs need one entry per reply token")
            segments += [Segment("env", pos, start)] if start > pos else []
            segments.append(Segment("policy", start, end))
            policy[start:end] = [True] * (end - start)
            span[start:end], answer[start:end] = marks["span"], marks["answer"]
            logprobs[start:end] = call.logprobs
            pos = end
        return cls(
            question=question,
            group=group,
            sample=sample,
            result=result,
            turns=(*turns, Turn(role="assistant", content=(last.text,))),
            calls=tuple(calls),
            input_ids=ids,
            segments=tuple(segments),
            masks=TokenMasks(tuple(policy), tuple(span), tuple(answer), tuple(logprobs)),
        )

    @property
    def failed(self) -> bool:
        """No policy token to train on (the rollout errored before or at its first call)."""
        return not any(self.masks.policy)

    @property
    def clips(self) -> tuple[ClipRef, ...]:
        return tuple(c for t in self.turns for c in t.clips)

    @property
    def policy_positions(self) -> list[int]:
        """Indices of the policy's tokens in ``input_ids``."""
        return self.masks.positions
