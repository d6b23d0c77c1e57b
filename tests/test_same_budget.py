"""The same-budget guarantee (docs/method.md §8): every request records its visual tokens,
and a declared per-request cap is never exceeded, over a sweep of videos, spans, zoom rounds,
parallel zooms, dialects, fine-pass modes and presets."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from zoom_agent import protocol
from zoom_agent.agent import ZoomAgent
from zoom_agent.config import AgentConfig, Budget
from zoom_agent.geometry import GEOMETRY
from zoom_agent.graphs.request_budget import RequestBudgetError, fit_request, request_visual_tokens
from zoom_agent.models.base import Turn, VLMRequest
from zoom_agent.models.scripted import ScriptedVLM
from zoom_agent.planning import plan_clip
from zoom_agent.presets import preset
from zoom_agent.types import Question, VideoInfo

VIDEOS = [
    VideoInfo(path="/v/short.mp4", duration=10.0, fps=30.0, num_frames=300, width=640, height=360),
    VideoInfo(path="/v/hd.mp4", duration=75.0, fps=25.0, num_frames=1875, width=1280, height=720),
    VideoInfo(path="/v/small.mp4", duration=600.0, fps=30.0, num_frames=18000, width=320, height=240),
    VideoInfo(path="/v/tall.mp4", duration=200.0, fps=24.0, num_frames=4800, width=360, height=640),
]
SPAN_SETS = [
    [(0.2, 0.8)],  # shorter than a second
    [(1.0, 4.0), (0.5, 0.9)],
    [(0.0, 1.0)],  # the whole video
    [(0.1, 0.2), (0.3, 0.4), (0.5, 0.6), (0.7, 0.9)],  # four windows at once
]
CONFIGS = {
    "tool 8192": AgentConfig(max_zoom_rounds=3, request_token_cap=8192),
    "tool 1024 + context": AgentConfig(
        budget=Budget(visual_tokens=1024), max_zoom_rounds=3, global_context=True, request_token_cap=1024
    ),
    "zoomzero continue": AgentConfig(dialect="zoomzero", request_token_cap=8192),
    "tool fresh": AgentConfig(fine_pass="fresh", zoom_pad=10.0, request_token_cap=8192),
    "zoomzero preset (fresh)": preset("zoomzero").agent.model_copy(update={"strategy": "multi_step"}),
}


def _script(dialect: str, windows: list[tuple[float, float]], rounds: int):
    def reply(request: VLMRequest) -> str:
        done = sum(t.role == "assistant" for t in request.turns)
        zoomed = any(c.role == "zoom" for t in request.turns for c in t.clips)
        fresh_fine = zoomed and done == 0  # the fresh fine pass: a new request on the pooled zoom
        if dialect == "tool" and done < rounds and not fresh_fine:
            return "\n".join(protocol.format_tool_call(s, e) for s, e in windows)
        letter = "B" if zoomed else "A"
        return protocol.format_answer(letter, windows, dialect=dialect)  # type: ignore[arg-type]

    return reply


@pytest.mark.parametrize(
    ("name", "video", "spans", "rounds"), list(itertools.product(CONFIGS, VIDEOS, SPAN_SETS, [1, 3]))
)
def test_no_request_exceeds_the_cap(name: str, video: VideoInfo, spans: list[tuple[float, float]], rounds: int) -> None:
    config = CONFIGS[name]
    cap = config.request_token_cap
    assert cap is not None
    windows = [(round(a * video.duration, 2), round(b * video.duration, 2)) for a, b in spans]
    model = ScriptedVLM(_script(config.dialect, windows, rounds))
    question = Question(id="q", video=video.path, question="Which?", options=("a", "b", "c"))
    result = asyncio.run(ZoomAgent(model, config).arun(question, info=video))
    assert result.status == "answered", result.error
    assert len(model.requests) == len(result.turns) >= 2  # a coarse and at least one fine request
    for request, turn in zip(model.requests, result.turns, strict=True):
        tokens = request_visual_tokens(request.turns)
        assert tokens == turn.request_visual_tokens > 0
        assert tokens <= cap, (name, video.path, windows, rounds, turn.round, tokens)
    if config.fine_pass == "fresh":  # their fine pass: one clip at half the budget
        (clip,) = [c for t in model.requests[1].turns for c in t.clips]
        assert clip.visual_tokens <= config.budget.visual_tokens // 2 and clip.num_frames <= 256


def test_without_a_cap_requests_grow_and_are_recorded() -> None:
    video = VIDEOS[1]
    config = AgentConfig(max_zoom_rounds=3)
    model = ScriptedVLM(_script("tool", [(10.0, 20.0), (40.0, 50.0)], 3))
    question = Question(id="q", video=video.path, question="Which?", options=("a", "b"))
    result = asyncio.run(ZoomAgent(model, config).arun(question, info=video))
    recorded = [t.request_visual_tokens for t in result.turns]
    assert recorded == sorted(recorded) and recorded[-1] > config.budget.visual_tokens  # ours: no cap
    assert recorded == [request_visual_tokens(r.turns) for r in model.requests]


def _clip_turn(video: VideoInfo, budget: Budget, role: str = "user") -> Turn:
    clip = plan_clip(video, video.whole, budget, GEOMETRY["qwen2_5_vl"])
    return Turn(role=role, content=("caption", clip, "question"))  # type: ignore[arg-type]


def test_fit_request_drops_the_oldest_views_first() -> None:
    video = VIDEOS[1]
    turns = [_clip_turn(video, Budget(visual_tokens=v)) for v in (4000, 3000, 2000)]
    sizes = [t.clips[0].visual_tokens for t in turns]
    fitted = fit_request(turns, sum(sizes[1:]))
    assert [len(t.clips) for t in fitted] == [0, 1, 1]
    assert fitted[0].content[0] == "caption" and "removed to keep this request within" in fitted[0].text
    assert fit_request(turns, None) == turns and fit_request(turns, sum(sizes)) == turns
    assert [len(t.clips) for t in fit_request(turns, sizes[2])] == [0, 0, 1]
    with pytest.raises(RequestBudgetError, match="newest turn's views alone hold"):
        fit_request(turns, sizes[2] - 1)


def test_a_declared_cap_turns_on_the_floor_cap() -> None:
    assert AgentConfig(request_token_cap=8192).budget.floor_frame_cap
    assert not AgentConfig().budget.floor_frame_cap
