"""An oracle model that answers known questions from their ground truth.

It is a pipeline check, never a result: it lets the demo, evaluation and reports run end
to end without weights. With ``noise > 0`` it errs on purpose (seeded per question): it
picks a wrong option with probability ``noise`` and shifts its spans by up to
``noise * span length``, so metrics take realistic, non-trivial values.

It behaves like a well-trained tool-dialect policy: the coarse turn calls
``temporal_zoom`` on the (padded) ground-truth span, the next turn answers with glue.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable

from zoom_agent import protocol
from zoom_agent.geometry import PAPER_GEOMETRY, Family, VisionGeometry
from zoom_agent.models.base import Completion, VLMRequest, VLMResponse
from zoom_agent.types import Question, Span

PIPELINE_CHECK_LABEL = "oracle model: pipeline check, not a result"


class OracleVLM:
    """Answers each question it knows from the ground truth, with seeded noise.

    Args:
        questions: the questions it may be asked (matched by video path and question text).
        noise: 0 = always right; 1 = wrong option every time and spans fully shifted.
        seed: makes the noise reproducible per question.
        zoom: call the zoom tool first (True) or answer at once.
        geometry: the vision geometry views are planned with (default
            `zoom_agent.geometry.PAPER_GEOMETRY`, Qwen2.5-VL's).
    """

    label = PIPELINE_CHECK_LABEL

    def __init__(
        self,
        questions: Iterable[Question],
        *,
        noise: float = 0.0,
        seed: int = 0,
        zoom: bool = True,
        geometry: VisionGeometry = PAPER_GEOMETRY,
    ):
        if not 0.0 <= noise <= 1.0:
            raise ValueError(f"oracle noise must be in [0, 1], got {noise}")
        self.noise, self.seed, self.zoom = noise, seed, zoom
        self.geometry = geometry
        self._by_video: dict[str, list[Question]] = {}
        for q in questions:  # indexed by video: a lookup scans only that video's questions
            self._by_video.setdefault(q.video, []).append(q)

    @property
    def family(self) -> Family:
        return self.geometry.family

    async def generate(self, request: VLMRequest) -> VLMResponse:
        question = self._which(request)
        rng = random.Random(int(hashlib.sha1(f"{self.seed}:{question.id}".encode()).hexdigest()[:12], 16))
        zoomed = any(t.role == "tool" for t in request.turns)
        spans = self._spans(question, rng)
        if self.zoom and not zoomed and spans:
            lo, hi = min(s.start for s in spans), max(s.end for s in spans)
            text = protocol.format_tool_call(lo, hi, reasoning="The event should be around here; let me look closer.")
        else:
            text = protocol.format_answer(self._letter(question, rng), [s.as_tuple() for s in spans])
        completion = Completion(text=text, finish_reason="stop")
        return VLMResponse(completions=(completion,) * request.sampling.n, model="oracle")

    def _which(self, request: VLMRequest) -> Question:
        clips = [c for t in request.turns for c in t.clips]
        text = "\n".join(t.text for t in request.turns if t.role == "user")
        for question in self._by_video.get(clips[0].path, []) if clips else []:
            if question.question in text:
                return question
        raise KeyError("the oracle was asked a question it does not know")

    def _letter(self, question: Question, rng: random.Random) -> str:
        letters = question.letters or "ABCDE"
        right = question.answer_letter or letters[0]
        if rng.random() < self.noise and len(letters) > 1:
            return rng.choice([x for x in letters if x != right])
        return right

    def _spans(self, question: Question, rng: random.Random) -> list[Span]:
        out = []
        for span in question.gt_spans:
            shift = rng.uniform(-1, 1) * self.noise * max(span.length, 1.0)
            start, end = max(0.0, span.start + shift), max(0.0, span.end + shift)
            if question.duration is not None:
                start, end = min(start, question.duration), min(end, question.duration)
            out.append(Span(start=round(start, 1), end=round(max(start, end), 1)))
        return out
