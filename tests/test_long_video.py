"""Long-video strategies on a metadata-only 30-minute video (no frames are decoded):
multi-step zoom and divide and conquer, and the strategy switch."""

from __future__ import annotations

import asyncio
import itertools
import re

import pytest

from zoom_agent.agent import ZoomAgent
from zoom_agent.config import AgentConfig, Budget
from zoom_agent.graphs.divide import chunk_spans, select_chunks
from zoom_agent.models.base import Completion, VLMRequest
from zoom_agent.models.scripted import ScriptedVLM
from zoom_agent.types import Question, Span, TurnTrace, VideoInfo

LONG = VideoInfo(path="/videos/thirty_minutes.mp4", duration=1800.0, fps=30.0, num_frames=54000, width=1280, height=720)
EVENT = (1000.0, 1010.0)  # the evidence, in chunk 7 (896-1024 s) of 128 s chunks
QUESTION = Question(id="long", video=LONG.path, question="What is written on the sign?", options=("A", "B", "C", "D"))
BUDGET = Budget(visual_tokens=2048)


def confident(text: str, letter_logprob: float) -> Completion:
    """One token per character; the answer letter gets ``letter_logprob``, the rest 0."""
    at = text.index("<answer>") + len("<answer>")
    logprobs = tuple(letter_logprob if i == at else 0.0 for i in range(len(text)))
    return Completion(
        text=text,
        token_ids=tuple(range(len(text))),
        logprobs=logprobs,
        token_offsets=tuple((i, i + 1) for i in range(len(text))),
    )


def seen_span(request: VLMRequest) -> tuple[float, float]:
    clips = [c for t in request.turns for c in t.clips]
    return clips[-1].span.as_tuple()


def test_chunks_cover_the_video_with_their_frame_count():
    spans = chunk_spans(LONG, AgentConfig(budget=BUDGET))
    assert len(spans) == 15 and spans[0] == Span(start=0, end=128) and spans[-1].end == 1800
    assert all(a.end == b.start for a, b in itertools.pairwise(spans))


def test_divide_and_conquer_keeps_confident_chunks_and_makes_one_fine_pass():
    # The chunk passes run concurrently: each waits until all 15 are in flight at once
    # (run one after another, the first would wait forever; the timeout fails it instead).
    arrived = 0
    all_in = asyncio.Event()

    async def reply(request: VLMRequest) -> Completion:
        nonlocal arrived
        start, end = seen_span(request)
        if any(c.role == "zoom" for t in request.turns for c in t.clips):  # the fine pass
            return confident("<answer>C</answer>\n<glue>[(1001.0, 1008.0)]</glue>", -0.05)
        arrived += 1
        if arrived == 15:
            all_in.set()
        await asyncio.wait_for(all_in.wait(), timeout=120)
        if start <= EVENT[0] < end:
            return confident(f"<answer>C</answer>\n<glue>[({EVENT[0]}, {EVENT[1]})]</glue>", -0.3)
        return confident(f"<answer>A</answer>\n<glue>[({start + 1}, {start + 5})]</glue>", -2.0 - start / 1000)

    model = ScriptedVLM(reply)
    config = AgentConfig(budget=BUDGET, strategy="divide_and_conquer", top_k_chunks=2)
    result = asyncio.run(ZoomAgent(model, config).arun(QUESTION, info=LONG))
    assert len(model.requests) == 15 + 1 and arrived == 15
    assert result.status == "answered" and result.answer == "C" and result.rounds == 1
    # the fine pass saw the two most confident chunks' spans, zoomed under one shared budget
    zoomed = [z.clip for z in result.zooms if z.clip]
    assert [c.span.as_tuple() for c in zoomed] == [(1.0, 5.0), EVENT]
    assert sum(c.visual_tokens for c in zoomed) <= BUDGET.visual_tokens + 64
    assert result.spans == (Span(start=1001.0, end=1008.0),)  # fine beat the best chunk


def test_divide_and_conquer_without_spans_answers_from_the_best_chunk():
    model = ScriptedVLM(lambda r: confident("<answer>B</answer>\n<glue>[]</glue>", -0.5))
    config = AgentConfig(budget=BUDGET, strategy="divide_and_conquer")
    result = asyncio.run(ZoomAgent(model, config).arun(QUESTION, info=LONG))
    assert len(model.requests) == 15 and result.answer == "B" and result.zooms == ()


def test_select_chunks_ranks_by_confidence_and_applies_threshold():
    def turn(start: float, answer: str | None, conf: float | None) -> TurnTrace:
        return TurnTrace(round=0, text="", answer=answer, answer_confidence=conf)

    chunks = [turn(0, "A", 0.2), turn(1, None, None), turn(2, "B", 0.9), turn(3, "C", 0.5)]
    config = AgentConfig(top_k_chunks=2, min_chunk_confidence=0.3)
    assert [t.answer for t in select_chunks(chunks, config)] == ["B", "C"]


def test_multi_step_zooms_again_inside_the_first_span():
    def reply(request: VLMRequest) -> str:
        start, end = seen_span(request)
        if end - start > 600:
            return '<tool_call>{"name": "temporal_zoom", "arguments": {"start": 900, "end": 1100}}</tool_call>'
        if end - start > 20:
            return '<tool_call>{"name": "temporal_zoom", "arguments": {"start": 999, "end": 1011}}</tool_call>'
        return "<answer>D</answer>\n<glue>[(1000.0, 1010.0)]</glue>"

    model = ScriptedVLM(reply)
    config = AgentConfig(budget=BUDGET, strategy="multi_step", max_zoom_rounds=3)
    result = asyncio.run(ZoomAgent(model, config).arun(QUESTION, info=LONG))
    assert result.answer == "D" and result.rounds == 2
    first, second = (z.clip for z in result.zooms)
    assert first and second and first.span.length == 200 and second.span.length == 12
    # same budget each time: per-frame resolution rises as the window shrinks
    coarse = result.turns[0].clips[0]
    assert coarse.width * coarse.height <= first.width * first.height <= second.width * second.height


@pytest.mark.parametrize(
    ("strategy", "duration", "expected_calls"),
    [("auto", 1800.0, 16), ("auto", 300.0, 3), ("single", 300.0, 2), ("multi_step", 300.0, 3)],
)
def test_strategy_switch(strategy, duration, expected_calls):
    info = LONG.model_copy(update={"duration": duration, "num_frames": int(duration * 30)})

    def reply(request: VLMRequest) -> str:
        n_tools = sum(t.role == "tool" for t in request.turns)
        in_chunks = "Zooming is not available" in request.turns[0].text
        if in_chunks or n_tools >= 2:
            return "<answer>A</answer>\n<glue>[(10.0, 20.0)]</glue>"
        return '<tool_call>{"name": "temporal_zoom", "arguments": {"start": 10, "end": 20}}</tool_call>'

    model = ScriptedVLM(reply)
    config = AgentConfig(budget=BUDGET, strategy=strategy, max_zoom_rounds=2, format_retries=0)
    result = asyncio.run(ZoomAgent(model, config).arun(QUESTION, info=info))
    assert len(model.requests) == expected_calls, [re.sub(r"\s+", " ", r.turns[-1].text)[:60] for r in model.requests]
    if strategy == "single":
        assert result.status == "unanswered" and result.rounds == 1  # wanted a second zoom, had none left
