"""The zoom verifier's input as their code builds it (zoomzero preset) and ours: one pooled clip
of all spans at one size, their prompt structure, one greedy token (docs/training.md §3)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

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


# An official-style reply our parser does not answer: their layout without an <answer>
# element (their tvg_zoom still scores IoU and zoom from the glue; our graph marks the
# rollout unanswered, with no spans).
NO_ANSWER = "<think>The dog <time>5.0s - 8.0s</time> runs off.</think>\n<glue>[(5, 8), (20, 35)]</glue>"
UNANSWERED = GroundedAnswer(question_id="q", status="unanswered", turns=(TurnTrace(round=0, text=NO_ANSWER),))


def _gated(gate: str) -> tuple[ZoomVerifier, ScriptedVLM]:
    model = ScriptedVLM(lambda r: "B")
    budget = preset("zoomzero").train_budget
    verifier = ZoomVerifier(
        model,
        budget,
        dialect="zoomzero",
        pooled=True,
        official_prompt=True,
        gate=gate,  # type: ignore[arg-type]
    )
    return verifier, model


def test_their_gate_verifies_the_glue_of_a_reply_without_an_answer_ours_does_not() -> None:
    from zoom_agent import protocol

    assert protocol.parse(NO_ANSWER, "zoomzero", letters=Q.letters).answer is None
    ours, ours_model = _gated("answered")
    verdict = asyncio.run(ours.verify(Q, UNANSWERED, INFO))
    assert (verdict.reward, verdict.reason, ours_model.requests) == (0.0, "no valid span", [])
    theirs, model = _gated("glue")
    verdict = asyncio.run(theirs.verify(Q, UNANSWERED, INFO))
    assert verdict.reward == 1.0 and verdict.letter == "B"
    (request,) = model.requests
    (clip,) = request.turns[0].clips  # the same pooled clip as for the answered reply above
    assert (clip.width, clip.height, clip.visual_tokens, clip.num_frames) == (560, 308, 3960, 36)
    assert "The dog  runs off." in request.turns[0].text and "<time>" not in request.turns[0].text
    # An invalid glue list (a pair with start after end) is no span for either gate.
    bad_turn = TurnTrace(round=0, text="<glue>[(9, 2)]</glue>")
    bad = GroundedAnswer(question_id="q", status="unanswered", turns=(bad_turn,))
    assert asyncio.run(theirs.verify(Q, bad, INFO)).reason == "no valid span"


def test_scoring_gives_an_unanswered_official_reply_its_zoom_only_under_their_gate(tmp_path: Path) -> None:
    from video_files import write_mp4v

    from zoom_agent.training.config import TrainConfig
    from zoom_agent.training.loop.scoring import score_trajectories
    from zoom_agent.training.rollout.trajectory import Trajectory

    video = write_mp4v(tmp_path / "v.mp4", 600, fps=10.0)  # 60 s
    question = Q.model_copy(update={"video": str(video)})
    traj = Trajectory(question=question, group=0, sample=0, result=UNANSWERED)
    theirs = TrainConfig(preset="zoomzero").reward
    assert theirs.verifier_gate == "glue" and TrainConfig().reward.verifier_gate == "answered"
    ours_gate = theirs.model_copy(update={"verifier_gate": "answered"})
    scored = {}
    for reward in (theirs, ours_gate):
        verifier, model = _gated(reward.verifier_gate)
        (parts,) = asyncio.run(score_trajectories([traj], verifier, reward, "zoomzero"))
        scored[reward.verifier_gate] = (parts, len(model.requests))
    glue, answered = scored["glue"], scored["answered"]
    assert glue[1] == 1 and answered[1] == 0  # the verifier was asked only under their gate
    assert glue[0]["zoom"] == 1.0 and answered[0]["zoom"] == 0.0
    # Their tvg_zoom: format 0 (no <answer>), answer 0, IoU from the glue either way.
    assert glue[0]["format"] == answered[0]["format"] == 0.0 and glue[0]["answer"] == 0.0
    # truth (5, 8) against the spans (5, 8) and (20, 35): 3 s shared of 18 s in all
    assert glue[0]["iou"] == answered[0]["iou"] == pytest.approx(3 / 18)
    assert glue[0]["total"] - answered[0]["total"] == pytest.approx(theirs.zoom)
