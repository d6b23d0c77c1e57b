"""Divide and conquer for long videos (docs/method.md §2, mode b).

Split the video into chunks of ``chunk_frames`` frames, run a coarse pass on every chunk in
parallel (`Send`), keep the ``top_k_chunks`` by answer confidence, pool their evidence
spans, make one fine pass on the pooled zoomed frames, and arbitrate between the best
chunk's answer and the fine answer.
"""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import Send
from typing_extensions import TypedDict

from zoom_agent.approximate import snap_clip
from zoom_agent.config import AgentConfig
from zoom_agent.graphs.nodes import ask_model, question_turns
from zoom_agent.graphs.state import ZoomContext, ZoomState
from zoom_agent.planning import plan_clip
from zoom_agent.spans import clamp, merge
from zoom_agent.tools.zoom import TemporalZoom
from zoom_agent.types import Question, Span, TurnTrace, VideoInfo


class ChunkTask(TypedDict):
    """The input of one chunk's coarse pass (sent with `Send`)."""

    question: Question
    span: Span
    index: int
    info: VideoInfo


def chunk_spans(info: VideoInfo, config: AgentConfig) -> list[Span]:
    """Consecutive windows of ``chunk_frames / budget.fps`` seconds covering the video."""
    length = config.chunk_frames / config.budget.fps
    count = max(1, -(-info.duration // length))  # ceil
    return [Span(start=i * length, end=min((i + 1) * length, info.duration)) for i in range(int(count))]


def chunk_tasks(state: ZoomState, config: AgentConfig) -> list[Send]:
    """One `Send` per chunk: their coarse passes run concurrently."""
    info, question = state["info"], state["question"]
    return [
        Send("chunk", ChunkTask(question=question, span=s, index=i, info=info))
        for i, s in enumerate(chunk_spans(info, config))
    ]


async def run_chunk(task: ChunkTask, runtime: Runtime[ZoomContext]) -> dict[str, Any]:
    """The coarse pass on one chunk (no zoom): answer, spans, confidence."""
    ctx = runtime.context
    config, question = ctx.config, task["question"]
    clip = plan_clip(task["info"], task["span"], config.budget, ctx.geometry, role="coarse")
    try:
        if config.approximate_coarse is not None:  # keyframes only; the clip says so (docs/video.md §5)
            clip = await asyncio.to_thread(snap_clip, clip, config.approximate_coarse)
        turns = question_turns(question, [clip], config.dialect, zoom_rounds=0)
        _, _, trace = await ask_model(ctx, question, turns, 0)
    except Exception as exc:  # one failed chunk does not sink the question
        trace = TurnTrace(round=0, text=f"[chunk {task['index']} failed: {type(exc).__name__}: {exc}]", clips=(clip,))
    return {"trace": [trace]}


def select_chunks(chunks: list[TurnTrace], config: AgentConfig) -> list[TurnTrace]:
    """The answering chunks, most confident first, at most ``top_k_chunks`` of them.

    Without logprobs every confidence is unknown; chunks then keep their video order.
    """
    answering = [t for t in chunks if t.answer is not None]
    ranked = sorted(answering, key=lambda t: -(t.answer_confidence if t.answer_confidence is not None else -1.0))
    kept = [t for t in ranked if t.answer_confidence is None or t.answer_confidence >= config.min_chunk_confidence]
    return kept[: config.top_k_chunks]


async def fine_pass(state: ZoomState, runtime: Runtime[ZoomContext]) -> dict[str, Any]:
    """Pool the kept chunks' spans, zoom on them under one budget, and ask once more."""
    ctx, question, info = runtime.context, state["question"], state["info"]
    config = ctx.config
    chunks = sorted((t for t in state.get("trace", []) if t.round == 0), key=lambda t: t.clips[0].span.start)
    kept = select_chunks(chunks, config)
    pooled = merge(clamp(s, info.duration).as_tuple() for t in kept for s in t.spans)
    pooled = [p for p in pooled if p[1] > p[0]][: config.top_k_chunks]
    if not pooled:
        return {"candidates": kept[:1]}
    tool = TemporalZoom(
        info, config.budget, geometry=ctx.geometry, pad=config.zoom_pad, min_seconds=config.min_zoom_seconds
    )
    zooms = [result.trace(1, i) for i, result in enumerate(tool.zoom_spans(pooled))]
    clips = [z.clip for z in zooms if z.clip is not None]
    turns = question_turns(question, clips, config.dialect, zoom_rounds=0)
    try:
        _, _, fine = await ask_model(ctx, question, turns, 1)
    except Exception as exc:
        return {"zooms": zooms, "candidates": kept[:1], "error": f"fine pass failed: {exc}"}
    return {"zooms": zooms, "trace": [fine], "candidates": [*kept[:1], fine]}
