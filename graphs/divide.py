"""Divide and conquer for long videos (docs/method.md §2, mode b).

Split the video into chunks of ``chunk_frames`` frames, run a coarse pass on every chunk in
parallel (`Send`), keep the ``top_k_chunks`` by answer confidence, pool their evidence
spans, make one fine pass on the pooled zoomed frames, and arbitrate between the best
chunk's answer and the fine answer.
"""

from __future__ import annotations

import asyncio
from typing import Any, NotRequired

from langgraph.runtime import Runtime
from langgraph.types import Send
from typing_extensions import TypedDict

from zoom_agent.approximate import snap_clip
from zoom_agent.config import AgentConfig
from zoom_agent.geometry import VisionGeometry
from zoom_agent.graphs import divide_official as official
from zoom_agent.graphs.nodes import ask_model, opening_turns
from zoom_agent.graphs.state import ZoomContext, ZoomState
from zoom_agent.planning import plan_clip, plan_pooled_clip
from zoom_agent.protocol.templates import Reply
from zoom_agent.spans import clamp, merge
from zoom_agent.tools.zoom import TemporalZoom
from zoom_agent.types import ClipRef, Question, Span, TurnTrace, VideoInfo, ZoomTrace


class ChunkTask(TypedDict):
    """The input of one chunk's coarse pass (sent with `Send`)."""

    question: Question
    span: Span
    index: int  # -1: the whole-video answer pass (divide="official")
    info: VideoInfo
    clip: NotRequired[ClipRef]  # divide="official": the chunk, cut from the sampled video
    reply: NotRequired[Reply]  # divide="official": what the chunk's prompt asks for


def chunk_spans(info: VideoInfo, config: AgentConfig) -> list[Span]:
    """Consecutive windows of ``chunk_frames`` frames at the long-video rate covering the video."""
    length = config.chunk_frames / config.long_budget().fps
    count = max(1, -(-info.duration // length))  # ceil
    return [Span(start=i * length, end=min((i + 1) * length, info.duration)) for i in range(int(count))]


def chunk_tasks(state: ZoomState, config: AgentConfig, geometry: VisionGeometry) -> list[Send]:
    """One `Send` per chunk: their coarse passes run concurrently (``divide="official"``: the
    chunks of the sampled video, then the whole-video answer pass, index -1)."""
    info, question = state["info"], state["question"]
    if config.divide == "official":
        whole, chunks = official.official_chunks(info, config, geometry)
        reply: Reply = "letter" if len(chunks) == 1 else "letter_and_spans"
        tasks = [
            ChunkTask(question=question, span=c.span, index=i, info=info, clip=c, reply=reply)
            for i, c in enumerate(chunks)
        ]
        tasks.append(ChunkTask(question=question, span=whole.span, index=-1, info=info, clip=whole, reply="letter"))
        return [Send("chunk", task) for task in tasks]
    return [
        Send("chunk", ChunkTask(question=question, span=s, index=i, info=info))
        for i, s in enumerate(chunk_spans(info, config))
    ]


async def run_chunk(task: ChunkTask, runtime: Runtime[ZoomContext]) -> dict[str, Any]:
    """The coarse pass on one chunk (no zoom): answer, spans, confidence."""
    ctx = runtime.context
    config, question = ctx.config, task["question"]
    clip = task.get("clip") or plan_clip(task["info"], task["span"], config.long_budget(), ctx.geometry, role="coarse")
    try:
        if config.approximate_coarse is not None:  # keyframes only; the clip says so (docs/video.md §5)
            clip = await asyncio.to_thread(snap_clip, clip, config.approximate_coarse)
        seconds = clip.span.end - clip.span.start
        reply = task.get("reply", "reasoned")
        turns = opening_turns(question, [clip], config, zoom_rounds=0, seconds=seconds, reply=reply)
        _, _, trace = await ask_model(ctx, question, turns, 0)
    except Exception as exc:  # one failed chunk does not sink the question
        trace = TurnTrace(round=0, text=f"[chunk {task['index']} failed: {type(exc).__name__}: {exc}]", clips=(clip,))
    if "clip" not in task:
        return {"trace": [trace]}
    if config.prompts == "official":  # the chunk was its own video: its glue is in chunk time
        trace = trace.model_copy(update={"spans": chunk_to_video_time(trace.spans, clip)})
    return {"trace": [trace], "overview": trace} if task["index"] < 0 else {"trace": [trace]}


def chunk_to_video_time(spans: tuple[Span, ...], chunk: ClipRef) -> tuple[Span, ...]:
    """Spans a chunk's reply gave in its own time, shifted by the chunk's start and cut at its
    end (their ``start_seconds`` shift and ``min(end, end_seconds)``)."""
    start, end = chunk.span.start, chunk.span.end
    return tuple(Span(start=min(s.start + start, end), end=min(s.end + start, end)) for s in spans)


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
    if config.divide == "official":
        return await _official_fine_pass(state, ctx)
    chunks = sorted((t for t in state.get("trace", []) if t.round == 0), key=lambda t: t.clips[0].span.start)
    kept = select_chunks(chunks, config)
    pooled = merge(clamp(s, info.duration).as_tuple() for t in kept for s in t.spans)
    pooled = [p for p in pooled if p[1] > p[0]][: config.top_k_chunks]
    if not pooled:
        return {"candidates": kept[:1]}
    tool = TemporalZoom(
        info, config.long_budget(), geometry=ctx.geometry, pad=config.zoom_pad, min_seconds=config.min_zoom_seconds
    )
    zooms = [result.trace(1, i) for i, result in enumerate(tool.zoom_spans(pooled))]
    clips = [z.clip for z in zooms if z.clip is not None]
    seconds = info.duration
    turns = opening_turns(question, clips, config, zoom_rounds=0, seconds=seconds)
    try:
        _, _, fine = await ask_model(ctx, question, turns, 1)
    except Exception as exc:
        return {"zooms": zooms, "candidates": kept[:1], "error": f"fine pass failed: {exc}"}
    return {"zooms": zooms, "trace": [fine], "candidates": [*kept[:1], fine]}


async def _official_fine_pass(state: ZoomState, ctx: ZoomContext) -> dict[str, Any]:
    """Their long-video decision (`zoom_agent.graphs.divide_official`, rules 3 to 5)."""
    question, info, config = state["question"], state["info"], ctx.config
    overview = state.get("overview")
    chunks = sorted(
        (t for t in state.get("trace", []) if t.round == 0 and t != overview), key=lambda t: t.clips[0].span.start
    )
    top = official.top_chunks(chunks, config)
    if not top:
        return {"candidates": [overview] if overview is not None else []}
    if official.agreed(chunks, top):
        return {"candidates": [official.final_turn(overview, top[0], top)]}
    windows = official.fine_windows(top)
    whole = overview.clips[0] if overview is not None and overview.clips else None
    if whole is None:
        whole, _ = official.official_chunks(info, config, ctx.geometry)
    clip = plan_pooled_clip(info, windows, whole, config.long_budget(), ctx.geometry) if windows else whole
    zoom = ZoomTrace(
        round=1, requested={"windows": [list(w.as_tuple()) for w in windows]}, text=clip.describe(), clip=clip
    )
    turns = opening_turns(question, [clip], config, zoom_rounds=0, seconds=info.duration, reply="letter")
    try:
        _, _, fine = await ask_model(ctx, question, turns, 1)
    except Exception as exc:
        return {"zooms": [zoom], "candidates": top[:1], "error": f"fine pass failed: {exc}"}
    return {"zooms": [zoom], "trace": [fine], "candidates": [official.final_turn(overview, fine, top)]}
