"""The zoom-in reward's verifier: re-answer from the zoomed frames only (docs/method.md §3).

For one rollout: take its predicted evidence spans, build the zoomed view with
`TemporalZoom` (the inference zoom code) under half the visual budget and at most 256
frames (their code), show the verifier the question, those frames only, and the policy's
reasoning with its timestamps removed (`protocol.strip_timestamps`, so it cannot copy times
it was not shown), and let it write one greedy token after ``<answer>``. Reward 1 when that
token is the correct letter.

The verifier is any `VLM`: the frozen reference (their code) or the current policy
(`RewardConfig.verifier`). Their code falls back to ~20 frames of the whole video when no
span is valid, which can still score 1; here no valid span gives 0.

Their input (``pooled=True``, ``official_prompt=True``; the ``zoomzero`` preset):

- the view: the frames of the rollout's coarse sampling (the whole video under the
  rollouts' budget) that fall inside any span, pooled into ONE clip of at most
  ``max_frames`` frames at one size under ``fraction`` of the budget
  (`zoom_agent.planning.plan_pooled_clip`); ours zooms each span on its own
  (`TemporalZoom.zoom_spans`, the budget split per span).
- the prompt: one user turn, no system turn: the clip, then the question with its options
  on one line (`protocol.templates`), the instruction to answer with the letter only
  (``PromptTemplates.verifier``) and the policy's reasoning with its ``<time>`` tags removed
  (`protocol.strip_time_tags`); the verifier's first generated token is the letter. Ours:
  the dialect's system and question turns, and the reasoning (bare times removed too) as
  an assistant prefix ending in ``<answer>``. Where the clip goes in their training prompt
  is not stated in what we read; it comes first here, as in the rollouts.
- which rollouts are verified (``gate``): ours (``"answered"``) only those our parser marks
  answered, with the spans it read; theirs (``"glue"``, their
  ``fsdp_workers._process_multi_modal_inputs``) every reply whose first ``<glue>`` holds a
  valid list by their regex (`training.rewards.official_glue`), whether or not its answer
  parsed, with the reasoning read as theirs reads it: from the first ``<think>`` to the
  last ``</think>``.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Literal

from zoom_agent import protocol
from zoom_agent.config import Budget
from zoom_agent.graphs.nodes import question_turns
from zoom_agent.models.base import VLM, Sampling, Turn, VLMRequest
from zoom_agent.planning import plan_clip, plan_pooled_clip
from zoom_agent.protocol.templates import PromptTemplates, options_line
from zoom_agent.protocol.timestamps import strip_time_tags
from zoom_agent.tools.zoom import TemporalZoom
from zoom_agent.training.rewards import official_glue
from zoom_agent.types import ClipRef, GroundedAnswer, Question, Span, VideoInfo

_LETTER = re.compile(r"\s{0,8}\(?([A-Z])(?![A-Za-z])")
_THINK = re.compile(r"<think>(.*)</think>", re.DOTALL)  # their greedy read of the reasoning

VerifierGate = Literal["answered", "glue"]
"""Which rollouts the verifier sees: ``answered`` (ours) or ``glue`` (their code), see above."""


@dataclass(frozen=True)
class Verdict:
    """The verifier's outcome for one rollout.

    Attributes:
        reward: 1.0 when the verifier's letter is correct, else 0.0.
        letter: the letter it gave (None when it was not asked or gave none).
        reason: why the reward is 0 without asking (no valid span, no options, ...).
        clips: the zoomed clips it saw.
    """

    reward: float
    letter: str | None = None
    reason: str | None = None
    clips: tuple[ClipRef, ...] = ()


def verifier_letter(text: str, letters: str) -> str | None:
    """The option letter at the start of the verifier's one-token reply, or None."""
    m = _LETTER.match(text)
    return m.group(1) if m and m.group(1) in letters else None


class ZoomVerifier:
    """Scores zoom-in accuracy with a frozen or live model.

    Args:
        model: the verifier `VLM` (the frozen reference, or the policy itself).
        budget: the rollouts' visual budget; the verifier's view gets ``fraction`` of it.
        dialect: the rollouts' dialect (the verifier's prompt uses its answer layout).
        fraction: share of the budget for the zoomed view (their code: 1/2).
        max_frames: frames of the zoomed view, all spans together (their code: 256).
        pad, min_seconds: as `TemporalZoom` (the agent's zoom settings).
        pooled: one pooled clip of all spans at one size (their code) instead of one zoom
            per span (ours).
        official_prompt: their prompt structure (see the module docstring) instead of ours.
        templates: the wording of the official prompt (default `PromptTemplates()`).
        gate: ``"answered"`` (ours) verifies rollouts our parser answered, with their parsed
            spans; ``"glue"`` (their code) every rollout whose last reply holds a valid glue
            list, answer parsed or not.
    """

    def __init__(
        self,
        model: VLM,
        budget: Budget,
        *,
        dialect: protocol.Dialect = "tool",
        fraction: float = 0.5,
        max_frames: int = 256,
        pad: float = 0.0,
        min_seconds: float = 1.0,
        pooled: bool = False,
        official_prompt: bool = False,
        templates: PromptTemplates | None = None,
        gate: VerifierGate = "answered",
    ) -> None:
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        if max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {max_frames}")
        if gate not in ("answered", "glue"):
            raise ValueError(f"gate must be 'answered' or 'glue', got {gate!r}")
        self.model = model
        self.budget = budget
        self.dialect: protocol.Dialect = dialect
        self.fraction = fraction
        self.max_frames = max_frames
        self.pad = pad
        self.min_seconds = min_seconds
        self.pooled = pooled
        self.official_prompt = official_prompt
        self.templates = templates or PromptTemplates()
        self.gate: VerifierGate = gate

    def spans_of(self, result: GroundedAnswer) -> list[tuple[float, float]]:
        """The spans the verifier would zoom for this rollout (none: it is not verified).

        ``gate="answered"``: an answered result's spans; ``"glue"``: the last reply's glue
        as their code reads it (the whole list or nothing), answer parsed or not.
        """
        if self.gate == "glue":
            text = result.turns[-1].text if result.turns else ""
            return [(a, b) for a, b in official_glue(text) or [] if b > a]
        if result.status != "answered":
            return []
        return [s.as_tuple() for s in result.spans if s.end > s.start]

    def reasoning_of(self, result: GroundedAnswer) -> str:
        """The reasoning shown to the verifier, times removed (see `policy_reasoning`); under
        ``gate="glue"`` the last reply's first ``<think>`` to last ``</think>``, as theirs."""
        if self.gate == "answered":
            return policy_reasoning(result, self.dialect, time_tags_only=self.official_prompt)
        found = _THINK.search(result.turns[-1].text) if result.turns else None
        joined = found.group(1) if found else ""
        return strip_time_tags(joined) if self.official_prompt else protocol.strip_timestamps(joined)

    def zoomed_clips(self, info: VideoInfo, spans: list[tuple[float, float]]) -> tuple[ClipRef, ...]:
        """The verifier's view: the spans zoomed together (`TemporalZoom.zoom_spans`) under
        ``fraction`` of the budget and at most ``max_frames`` frames in all.

        Args:
            info: the video's metadata.
            spans: the predicted evidence spans.

        Returns:
            The clips of the spans the zoom tool accepted (possibly none).
        """
        budget = self.budget.view(self.fraction, zoom_max_frames=min(self.max_frames, self.budget.zoom_max_frames))
        if self.pooled:
            coarse = plan_clip(info, info.whole, self.budget, self.model.geometry)  # the rollout's sampling
            windows = [Span(start=a, end=b) for a, b in spans]
            return (plan_pooled_clip(info, windows, coarse, budget, self.model.geometry),)
        tool = TemporalZoom(info, budget, geometry=self.model.geometry, pad=self.pad, min_seconds=self.min_seconds)
        return tuple(r.clip for r in tool.zoom_spans(spans) if r.clip is not None)

    def request(self, question: Question, clips: tuple[ClipRef, ...], reasoning: str) -> VLMRequest:
        """The verifier's conversation: zoomed frames, question, and the reasoning as a prefix
        (ours), or one user turn with the reasoning in it (``official_prompt``)."""
        sampling = Sampling(temperature=0.0, max_tokens=1)
        if self.official_prompt:
            t = self.templates
            text = t.question.format(
                question=" ".join(question.question.split()), options=options_line(question.options or ())
            )
            text += "\n" + t.verifier
            if reasoning:
                text += " " + t.reasoning.format(reasoning=reasoning)
            return VLMRequest(
                turns=(Turn(role="user", content=(*clips, text)),), sampling=sampling, want_logprobs=False
            )
        prefix = f"<think>{reasoning}</think>\n<answer>"
        turns = (
            *question_turns(question, clips, self.dialect, zoom_rounds=0),
            Turn(role="assistant", content=(prefix,)),  # a prefix the model continues
        )
        return VLMRequest(turns=turns, sampling=sampling, want_logprobs=False)

    async def verify(self, question: Question, result: GroundedAnswer, info: VideoInfo) -> Verdict:
        """Zoom-in accuracy of one rollout.

        Args:
            question: with options and the correct answer.
            result: the rollout's outcome (its spans and turns).
            info: the video's metadata.

        Returns:
            A `Verdict`; reward 0 without options, a correct answer or a valid span (and,
            under ``gate="answered"``, without a parsed answer).
        """
        correct = question.answer_letter
        if not question.options or correct is None:
            return Verdict(0.0, reason="the question has no options or no correct answer")
        spans = self.spans_of(result)
        if not spans:
            return Verdict(0.0, reason="no valid span")  # their fallback to the whole video is a hole
        clips = self.zoomed_clips(info, spans)
        if not clips:
            return Verdict(0.0, reason="no span lies inside the video")
        reasoning = self.reasoning_of(result)
        reply = await self.model.generate(self.request(question, clips, reasoning))
        letter = verifier_letter(reply.text, question.letters)
        return Verdict(1.0 if letter == correct else 0.0, letter=letter, clips=clips)

    async def verify_many(
        self, items: list[tuple[Question, GroundedAnswer, VideoInfo]], *, concurrency: int = 8
    ) -> list[Verdict]:
        """`verify` for many rollouts, at most ``concurrency`` at once, in input order."""
        gate = asyncio.Semaphore(concurrency)

        async def one(item: tuple[Question, GroundedAnswer, VideoInfo]) -> Verdict:
            async with gate:
                return await self.verify(*item)

        return list(await asyncio.gather(*(one(i) for i in items)))


def policy_reasoning(result: GroundedAnswer, dialect: protocol.Dialect, *, time_tags_only: bool = False) -> str:
    """The rollout's reasoning, every turn's ``<think>`` joined, with timestamps removed
    (``time_tags_only``: only the ``<time>`` elements, as their code)."""
    parts = []
    for turn in result.turns:
        reasoning = protocol.parse(turn.text, dialect).reasoning
        if reasoning:
            parts.append(reasoning)
    joined = "\n".join(parts)
    return strip_time_tags(joined) if time_tags_only else protocol.strip_timestamps(joined)
