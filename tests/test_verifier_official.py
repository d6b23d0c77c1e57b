"""The zoom verifier's input as their code builds it (zoomzero preset) and ours: one pooled clip
of all spans at one size, their prompt structure, one greedy token (docs/training.md §3)."""

from __future__ import annotations

import asyncio

from zoom_agent.models.scripted import ScriptedVLM
from zoom_agent.presets import preset
from zoom_agent.training.config import load_recipe
from zoom_agent.training.loop.verifier import ZoomVerifier
from zoom_agent.types import GroundedAnswer, Question, Span, TurnTrace, VideoInfo

INFO = VideoInfo(path="v.mp4", duration=60, fps=30, num_frames=1800, width=640, height=360)
Q = Question(
    id="q",
    video="v.mp4",
    question="What does the dog  do?",
    options=("sit", "run", "jump"),
    answer=1,
    gt_spans=(Span(start=5, end=8),),
)
REPLY = (
    "<think>It runs at <time>5.0s</time> and again later.</think>\n<answer>B</answer>\n<glue>[(5, 8), (20, 35)]</glue>"
)
RESULT = GroundedAnswer(
    question_id="q",
    status="answered",
    answer="B",
    spans=(Span(start=5, end=8), Span(start=20, end=35)),
    turns=(TurnTrace(round=0, text=REPLY),),
)


def _verifier(pooled: bool, official: bool, letter: str = "B") -> tuple[ZoomVerifier, ScriptedVLM]:
    model = ScriptedVLM(lambda r: letter)
    budget = preset("zoomzero").train_budget
    return ZoomVerifier(model, budget, dialect="zoomzero", pooled=pooled, official_prompt=official), model


def test_pooled_view_is_one_clip_at_one_size_as_measured() -> None:
    verifier, _ = _verifier(pooled=True, official=True)
    (clip,) = verifier.zoomed_clips(INFO, [(5.0, 8.0), (20.0, 35.0)])
    # FIDELITY: their verifier, 60 s video, spans (5, 8), (20, 35): about 3,960 tokens, 560x308
    assert (clip.width, clip.height, clip.visual_tokens, clip.num_frames) == (560, 308, 3960, 36)
    ours, _ = _verifier(pooled=False, official=False)
    clips = ours.zoomed_clips(INFO, [(5.0, 8.0), (20.0, 35.0)])
    assert len(clips) == 2 and sum(c.visual_tokens for c in clips) <= 4096
    assert len({(c.width, c.height) for c in clips}) == 2  # each span at its own size


def test_official_prompt_is_one_user_turn_without_time_tags() -> None:
    verifier, model = _verifier(pooled=True, official=True)
    verdict = asyncio.run(verifier.verify(Q, RESULT, INFO))
    assert verdict.reward == 1.0 and verdict.letter == "B"
    (request,) = model.requests
    (turn,) = request.turns
    assert turn.role == "user" and len(turn.clips) == 1
    assert "What does the dog do?" in turn.text and "(A) sit (B) run (C) jump" in turn.text
    assert "It runs at  and again later." in turn.text and "<time>" not in turn.text and "5.0s" not in turn.text
    assert (request.sampling.temperature, request.sampling.max_tokens) == (0.0, 1)


def test_our_prompt_prefixes_the_reasoning_and_strips_bare_times() -> None:
    verifier, model = _verifier(pooled=False, official=False, letter="A")
    verdict = asyncio.run(verifier.verify(Q, RESULT, INFO))
    assert verdict.reward == 0.0 and verdict.letter == "A"
    request = model.requests[0]
    assert request.turns[-1].role == "assistant" and request.turns[-1].text.endswith("<answer>")
    assert "5.0s" not in request.turns[-1].text


def test_the_stage_recipes_use_their_verifier_input() -> None:
    reward = load_recipe("zoomzero-stage1").reward
    assert (reward.verifier_view, reward.verifier_prompt) == ("pooled", "official")
    ours = load_recipe("tiny-cpu").reward
    assert (ours.verifier_view, ours.verifier_prompt) == ("per-span", "ours")
    assert load_recipe("zoomzero-stage1").agent.budget == preset("zoomzero").train_budget
