"""The fine pass in both settings: ``continue`` (ours: the conversation goes on) and ``fresh``
(their evaluation: a new request holding one pooled clip of the padded spans at half the
budget, with the coarse reasoning minus its time tags), and the prompt structures."""

from __future__ import annotations

import asyncio

import pytest

from zoom_agent.agent import ZoomAgent
from zoom_agent.config import AgentConfig
from zoom_agent.graphs.fine import to_video_time
from zoom_agent.models.scripted import ScriptedVLM
from zoom_agent.presets import preset
from zoom_agent.types import Question, VideoInfo

INFO = VideoInfo(path="/videos/v.mp4", duration=60.0, fps=30.0, num_frames=1800, width=640, height=360)
QUESTION = Question(id="q", video=INFO.path, question="What colour is the square?", options=("red", "green", "blue"))
COARSE = (
    "<think>A square appears <time>(5.0, 8.0)</time> and turns green <time>(20.0, 35.0)</time>.</think>\n"
    "<answer>A</answer>\n<glue>[(5.0, 8.0), (20.0, 35.0)]</glue>"
)


def _run(config: AgentConfig, replies: list[str]):
    model = ScriptedVLM(replies)
    result = asyncio.run(ZoomAgent(model, config).arun(QUESTION, info=INFO))
    return model, result


def test_fresh_fine_pass_is_one_pooled_clip_at_half_the_budget() -> None:
    config = preset("zoomzero").agent
    fine_reply = "<think>Green.</think>\n<answer>B</answer>\n<glue>[(2.0, 4.0)]</glue>"
    model, result = _run(config, [COARSE, fine_reply])
    assert result.status == "answered", result.error
    coarse_req, fine_req = model.requests
    # their structure: no system turn, one user turn, text before the video
    assert [t.role for t in coarse_req.turns] == ["user"]
    assert isinstance(coarse_req.turns[0].content[0], str) and "60 seconds" in coarse_req.turns[0].content[0]
    assert "(A) red (B) green (C) blue" in coarse_req.turns[0].text
    # the fine request is fresh: one user turn, ONE clip, no coarse video, no coarse reply
    assert [t.role for t in fine_req.turns] == ["user"]
    (clip,) = fine_req.turns[0].clips
    assert clip.visual_tokens <= 4096 and clip.num_frames <= 256
    assert clip.windows[0].start == 0.0 and clip.windows[-1].end == 45.0  # padded by 10 s each side
    text = fine_req.turns[0].text
    assert text.endswith(" A square appears  and turns green .")  # the coarse reasoning, time tags removed
    assert result.turns[1].request_visual_tokens == clip.visual_tokens
    assert result.turns[0].request_visual_tokens == coarse_req.turns[0].clips[0].visual_tokens
    # the fine glue was clip time: (2, 4) s of the pooled clip = 2..4 s after its first frame
    (span,) = result.turns[1].spans
    assert span.start == pytest.approx(2.0, abs=0.6) and span.end == pytest.approx(4.0, abs=0.6)


def test_continue_fine_pass_keeps_the_conversation() -> None:
    config = AgentConfig(dialect="zoomzero")
    fine_reply = "<think>Green.</think>\n<answer>B</answer>\n<glue>[(21.0, 30.0)]</glue>"
    model, result = _run(config, [COARSE, fine_reply])
    fine_req = model.requests[1]
    assert fine_req.turns[0].role == "system"
    clips = [c for t in fine_req.turns for c in t.clips]
    assert len(clips) == 3  # the coarse view, then one clip per span
    assert result.turns[1].request_visual_tokens == sum(c.visual_tokens for c in clips)
    assert [s.as_tuple() for s in result.turns[1].spans] == [(21.0, 30.0)]  # read as video time


def test_fresh_fine_pass_with_our_prompts_reads_video_time() -> None:
    config = AgentConfig(dialect="zoomzero", fine_pass="fresh", zoom_pad=10.0)
    fine_reply = "<think>Green.</think>\n<answer>B</answer>\n<glue>[(21.0, 30.0)]</glue>"
    model, result = _run(config, [COARSE, fine_reply])
    fine_req = model.requests[1]
    assert [t.role for t in fine_req.turns] == ["system", "user"]
    (clip,) = fine_req.turns[1].clips
    assert "0.0-45.0 s" in fine_req.turns[1].text
    assert [s.as_tuple() for s in result.turns[1].spans] == [(21.0, 30.0)]
    assert clip.visual_tokens <= config.fine_budget().visual_tokens


def test_clip_time_maps_back_across_windows() -> None:
    config = AgentConfig(fine_pass="fresh")
    from zoom_agent.geometry import GEOMETRY
    from zoom_agent.planning import plan_clip, plan_pooled_clip
    from zoom_agent.types import Span

    coarse = plan_clip(INFO, INFO.whole, config.budget, GEOMETRY["qwen2_5_vl"])
    pooled = plan_pooled_clip(
        INFO, [Span(start=10, end=20), Span(start=40, end=50)], coarse, config.fine_budget(), GEOMETRY["qwen2_5_vl"]
    )
    spacing = pooled.frame_spacing  # the gap between the windows does not stretch it
    assert spacing == pytest.approx(coarse.frame_spacing, rel=0.05)
    assert to_video_time(pooled, 0.0, spacing) == pytest.approx(10.0, abs=spacing)
    half = pooled.num_frames // 2 * spacing
    assert to_video_time(pooled, half, spacing) == pytest.approx(40.0, abs=spacing)  # the second window starts
    assert to_video_time(pooled, 1e9, spacing) == pooled.timestamps[-1]
