"""Divide and conquer in the official setting (their ``eval_*_zoom.py``): 1,024 sampled
frames in chunks of 256, a whole-video answer pass, the agreement shortcut, the span
confidence filter and the fallback to the top chunk; our setting is tests/test_long_video.py."""

from __future__ import annotations

import asyncio
import math

import pytest

from zoom_agent.agent import ZoomAgent
from zoom_agent.geometry import GEOMETRY
from zoom_agent.graphs.divide_official import FALLBACK_BELOW, SPAN_CONFIDENCE_FLOOR, official_chunks
from zoom_agent.models.base import Completion, VLMRequest
from zoom_agent.models.scripted import ScriptedVLM
from zoom_agent.presets import preset
from zoom_agent.types import Question, VideoInfo

LONG = VideoInfo(path="/v/hour.mp4", duration=1800.0, fps=30.0, num_frames=54000, width=1280, height=720)
QUESTION = Question(id="q", video=LONG.path, question="What is on the sign?", options=("w", "x", "y", "z"))
CONFIG = preset("zoomzero").agent  # strategy auto: 1,800 s is divide and conquer


def reply(letter: str, answer_p: float, glue: str = "", glue_top: float = -40.0) -> Completion:
    """One token per character; the token after "<answer" has probability ``answer_p``; every
    glue token's top-2 log-probs are (0, glue_top), so the official span confidence is -glue_top/2."""
    text = f"<answer>{letter}</answer>" + (f"\n<glue>{glue}</glue>" if glue else "")
    after = text.index("<answer") + len("<answer")
    logprobs = tuple(math.log(answer_p) if i == after else 0.0 for i in range(len(text)))
    return Completion(
        text=text,
        logprobs=logprobs,
        token_offsets=tuple((i, i + 1) for i in range(len(text))),
        top_logprobs=tuple((0.0, glue_top) for _ in text),
    )


def kind(request: VLMRequest) -> str:
    (clip,) = [c for t in request.turns for c in t.clips]
    if clip.role == "zoom":
        return "fine"
    return "whole" if clip.num_frames == 1024 else f"chunk{round(clip.span.start / 450)}"


def run(script):
    model = ScriptedVLM(script)
    result = asyncio.run(ZoomAgent(model, CONFIG).arun(QUESTION, info=LONG))
    return model, result


def test_the_video_is_sampled_once_and_cut_into_four_chunks() -> None:
    whole, chunks = official_chunks(LONG, CONFIG, GEOMETRY["qwen2_5_vl"])
    assert whole.num_frames == 1024 and [c.num_frames for c in chunks] == [256, 256, 256, 256]
    assert [i for c in chunks for i in c.frame_indices] == list(whole.frame_indices)
    assert all(c.visual_tokens <= 16384 for c in [whole, *chunks])
    assert chunks[0].span.start == 0 and chunks[-1].span.end == pytest.approx(1800.0)
    short = VideoInfo(path="/v/s.mp4", duration=100.0, fps=30.0, num_frames=3000, width=640, height=360)
    _, one = official_chunks(short, CONFIG, GEOMETRY["qwen2_5_vl"])
    assert len(one) == 1 and one[0].num_frames == 200


def test_disagreeing_chunks_make_one_pooled_fine_pass() -> None:
    def script(request: VLMRequest) -> Completion:
        k = kind(request)
        if k == "chunk0":  # confident, spans in chunk time (10-20 s of the chunk), span confidence 20
            return reply("B", 0.8, "[(10.0, 20.0)]", glue_top=-40.0)
        if k == "chunk1":  # less sure, another answer, span confidence 5: its spans are left out
            return reply("C", 0.6, "[(5.0, 9.0)]", glue_top=-10.0)
        if k == "fine":
            return reply("B", 0.9)
        return reply("C", 0.3) if k == "whole" else reply("D", 0.1, "[(1.0, 2.0)]", glue_top=-10.0)

    model, result = run(script)
    kinds = sorted(kind(r) for r in model.requests)
    assert kinds == ["chunk0", "chunk1", "chunk2", "chunk3", "fine", "whole"]
    chunk_prompt = next(r for r in model.requests if kind(r) == "chunk0").turns
    assert [t.role for t in chunk_prompt] == ["user"] and "<glue>" in chunk_prompt[0].text
    assert "<think>" not in chunk_prompt[0].text  # no thinking in the chunk passes
    fine = next(r for r in model.requests if kind(r) == "fine")
    (clip,) = fine.turns[0].clips
    assert [w.as_tuple() for w in clip.windows] == [(10.0, 20.0)]  # chunk 0's spans only (20 > 10 > 5)
    assert "<glue>" not in fine.turns[0].text  # the letter alone
    assert result.answer == "B" and result.answer_confidence == pytest.approx(0.9)


def test_agreeing_chunks_skip_the_fine_pass() -> None:
    def script(request: VLMRequest) -> Completion:
        k = kind(request)
        return reply("A", 0.2) if k == "whole" else reply("B", 0.7, "[(1.0, 2.0)]")

    model, result = run(script)
    assert "fine" not in [kind(r) for r in model.requests] and len(model.requests) == 5
    assert result.answer == "B"  # the chunks' answer beats the whole-video pass (0.7 > 0.2)


def test_low_confidence_falls_back_to_the_top_chunk() -> None:
    def script(request: VLMRequest) -> Completion:
        k = kind(request)
        if k == "chunk2":
            return reply("D", 0.45, "[(3.0, 4.0)]")
        if k in ("fine", "whole"):
            return reply("A", 0.4) if k == "fine" else reply("C", 0.3)
        return reply("B", 0.2, "[(1.0, 2.0)]")

    model, result = run(script)
    assert "fine" in [kind(r) for r in model.requests]
    # fine 0.4 > whole 0.3, but 0.4 < 0.5 and < the top chunk's 0.45: the top chunk's answer
    assert FALLBACK_BELOW == 0.5 and SPAN_CONFIDENCE_FLOOR == 10.0
    assert result.answer == "D"
    (span,) = result.spans
    assert span.as_tuple() == pytest.approx((903.0, 904.0), abs=1.0)  # chunk time read back onto the video
