"""The zoom-in verifier: zoomed frames only, reasoning without timestamps, one greedy token."""

from __future__ import annotations

import asyncio

import pytest

from zoom_agent import protocol
from zoom_agent.config import Budget
from zoom_agent.models.base import VLMRequest
from zoom_agent.models.scripted import ScriptedVLM
from zoom_agent.training.loop.verifier import ZoomVerifier, policy_reasoning, verifier_letter
from zoom_agent.types import ClipRef, GroundedAnswer, Question, Span, TurnTrace, VideoInfo

INFO = VideoInfo(path="v.mp4", duration=60.0, fps=10.0, num_frames=600, width=640, height=480)
Q = Question(
    id="q", video="v.mp4", question="Which digit is shown?", options=("1", "2", "3", "4"), answer=2,
    gt_spans=(Span(start=20, end=30),),
)  # fmt: skip
REASONING = "The card appears at <time>(20.0, 30.0)</time>, around 25.5 s, then fades"


def _result(spans: tuple[Span, ...], status: str = "answered") -> GroundedAnswer:
    text = protocol.format_answer("C", [s.as_tuple() for s in spans], reasoning=REASONING)
    answer = "C" if status == "answered" else None
    return GroundedAnswer(
        question_id="q", status=status, answer=answer, spans=spans, turns=(TurnTrace(round=0, text=text),)
    )  # type: ignore[arg-type]


def _scripted(letter: str) -> ScriptedVLM:
    return ScriptedVLM(lambda request: letter)


def _verify(model: ScriptedVLM, result: GroundedAnswer, **kwargs: object) -> object:
    verifier = ZoomVerifier(model, Budget(visual_tokens=2048), **kwargs)  # type: ignore[arg-type]
    return asyncio.run(verifier.verify(Q, result, INFO))


def test_correct_letter_from_the_zoomed_view_scores_one() -> None:
    model = _scripted("C")
    verdict = _verify(model, _result((Span(start=20, end=30),)))
    assert verdict.reward == 1.0 and verdict.letter == "C"  # type: ignore[attr-defined]
    (request,) = model.requests
    clips = [p for t in request.turns for p in t.content if isinstance(p, ClipRef)]
    assert clips and all(c.role == "zoom" for c in clips), "the verifier sees zoomed frames only"
    assert all(20 <= ts <= 30 for c in clips for ts in c.timestamps)
    assert sum(c.visual_tokens for c in clips) <= 2048 // 2  # half the budget (their code)
    assert request.sampling.temperature == 0 and request.sampling.max_tokens == 1
    prefix = request.turns[-1]
    assert prefix.role == "assistant" and prefix.text.endswith("<answer>")
    assert "20.0" not in prefix.text and "25.5" not in prefix.text and "card appears" in prefix.text


def test_wrong_letter_scores_zero() -> None:
    verdict = _verify(_scripted("A"), _result((Span(start=20, end=30),)))
    assert verdict.reward == 0.0 and verdict.letter == "A"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        (_result(()), "no valid span"),  # their code fell back to the whole video here
        (_result((Span(start=5, end=5),)), "no valid span"),
        (_result((Span(start=20, end=30),), status="unanswered"), "no valid span"),
        (_result((Span(start=70, end=80),)), "inside the video"),
    ],
)
def test_no_valid_span_scores_zero_without_asking(result: GroundedAnswer, reason: str) -> None:
    model = _scripted("C")
    verdict = _verify(model, result)
    assert verdict.reward == 0.0 and reason in (verdict.reason or "")  # type: ignore[attr-defined]
    assert model.requests == []


def test_questions_without_options_score_zero() -> None:
    model = _scripted("C")
    open_q = Q.model_copy(update={"options": None, "answer": None})
    verifier = ZoomVerifier(model, Budget(visual_tokens=2048))
    verdict = asyncio.run(verifier.verify(open_q, _result((Span(start=20, end=30),)), INFO))
    assert verdict.reward == 0.0 and model.requests == []


def test_several_spans_share_the_frames_and_the_budget() -> None:
    model = _scripted("C")
    spans = (Span(start=5, end=15), Span(start=20, end=30), Span(start=40, end=50))
    verdict = _verify(model, _result(spans), max_frames=6)
    clips = verdict.clips  # type: ignore[attr-defined]
    assert len(clips) == 3 and sum(c.num_frames for c in clips) <= 6
    assert sum(c.visual_tokens for c in clips) <= 2048 // 2


def test_verifier_letter_reads_only_a_leading_option_letter() -> None:
    assert verifier_letter("B", "ABCD") == "B"
    assert verifier_letter(" (C", "ABCD") == "C"
    assert verifier_letter("E", "ABCD") is None
    assert verifier_letter("Because", "ABCD") is None
    assert verifier_letter("", "ABCD") is None


def test_policy_reasoning_joins_turns_without_timestamps() -> None:
    call = protocol.format_tool_call(1, 2, reasoning="zoom at <time>(1, 2)</time> now")
    result = GroundedAnswer(
        question_id="q",
        status="answered",
        turns=(TurnTrace(round=0, text=call), TurnTrace(round=1, text="noise")),
    )
    assert policy_reasoning(result, "tool") == "zoom at now"


@pytest.mark.slow
def test_verifier_on_the_tiny_model(tmp_path_factory: pytest.TempPathFactory) -> None:
    from zoom_agent.datasets.synthetic import make_synthetic_task
    from zoom_agent.models.hf import TransformersVLM
    from zoom_agent.models.tiny import build_tiny_model
    from zoom_agent.video import open_video

    root = tmp_path_factory.mktemp("verifier")
    questions = make_synthetic_task(root / "task", num_videos=1, duration=10.0, fps=4.0, size=(160, 120), num_events=2)
    q = next(x for x in questions if x.qtype == "digit")
    vlm = TransformersVLM(build_tiny_model(root / "tiny", "qwen2_5_vl"))
    verifier = ZoomVerifier(vlm, Budget(visual_tokens=128, fps=2.0))
    result = _result(q.gt_spans)
    info = open_video(q.video).info
    verdicts = [asyncio.run(verifier.verify(q, result, info)) for _ in range(2)]
    assert verdicts[0] == verdicts[1], "one greedy token: deterministic"
    assert verdicts[0].reward in (0.0, 1.0) and verdicts[0].clips
    assert (verdicts[0].reward == 1.0) == (verdicts[0].letter == q.answer_letter)
    request: VLMRequest = verifier.request(q, verdicts[0].clips, "reasoning")
    reply = vlm.generate_sync(request)
    assert len(reply.completions[0].token_ids or ()) == 1  # exactly one token generated
