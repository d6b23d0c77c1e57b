"""The fresh fine pass (``fine_pass="fresh"``), as their evaluation runs it (docs/method.md §7).

Their ``src_eval/eval_gqa_tts.py``: after the coarse reply, a NEW request holding only the
frames of the predicted spans, each padded by ``zoom_pad`` (10 s) and pooled into ONE clip
(`zoom_agent.planning.plan_pooled_clip`: at most ``zoom_max_frames`` = 256 frames at
``fine_share`` = half the budget, 4,096 tokens), plus the coarse ``<think>`` with its
``<time>`` tags removed. Under the ``official`` prompts the model sees the pooled clip as a
video of its own length, so the fine glue is in clip time; it is read back onto the video
(`to_video_time`). Qwen3-VL is shown each frame's true time (``<t seconds>``), and under
``ours`` the clip's caption states its windows in video time: there the glue is read as video
time.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from langgraph.runtime import Runtime

from zoom_agent import protocol
from zoom_agent.graphs.nodes import ask_model, opening_turns
from zoom_agent.graphs.state import ZoomContext, ZoomState
from zoom_agent.models.base import model_failure
from zoom_agent.planning import plan_pooled_clip
from zoom_agent.protocol.timestamps import strip_time_tags
from zoom_agent.tools.zoom import TemporalZoom
from zoom_agent.tracing import progress
from zoom_agent.types import ClipRef, Span, ZoomTrace


def clip_seconds(clip: ClipRef, spacing: float) -> float:
    """The pooled clip's own length: its frames at ``spacing`` (`ClipRef.frame_spacing`)."""
    return clip.num_frames * spacing


def to_video_time(clip: ClipRef, seconds: float, spacing: float) -> float:
    """A time in the pooled clip (frame k shown at ``k * spacing``) as a time in the video.

    Their code shifts by the first padded window's start, which is exact for one window;
    this interpolates over the pooled frames' own timestamps, which is the same for one
    window and stays right across the gaps between several.
    """
    position = seconds / spacing
    frames = np.arange(clip.num_frames, dtype=float)
    return float(np.interp(position, frames, np.asarray(clip.timestamps, dtype=float)))


def _reasoning(text: str, dialect: protocol.Dialect) -> str | None:
    parsed = protocol.parse(text, dialect)
    think = [r for r in parsed.regions if r.kind == "reasoning"]
    if not think:
        return None
    body = think[-1].text.removeprefix("<think>").removesuffix("</think>")
    return strip_time_tags(body) or None


async def fresh_fine_pass(state: ZoomState, runtime: Runtime[ZoomContext]) -> dict[str, Any]:
    """One fresh request on the pooled zoom of the coarse turn's spans; its trace is the fine turn."""
    ctx = runtime.context
    config, question, info, coarse = ctx.config, state["question"], state["info"], state["coarse"]
    tool = TemporalZoom(info, config.fine_budget(), geometry=ctx.geometry, pad=config.zoom_pad, min_seconds=0.0)
    results = [
        tool(call["arguments"]) if "arguments" in call else tool.error_result(str(call.get("error")), {})
        for call in state.get("calls", [])  # at most max_parallel_zooms (nodes.call_model)
    ]
    windows = [r.clip.span for r in results if r.clip is not None]
    if not windows:  # nothing valid to zoom on: the coarse answer stands
        return {"zooms": [r.trace(1, i) for i, r in enumerate(results)]}
    pooled = plan_pooled_clip(info, windows, coarse, config.fine_budget(), ctx.geometry)
    requested: dict[str, object] = {"windows": [list(w.as_tuple()) for w in windows]}
    zoom = ZoomTrace(round=1, call=0, requested=requested, text=f"pooled zoom {pooled.describe()}", clip=pooled)
    progress({"step": "zoom", "round": 1, "call": 0, "window": list(pooled.span.as_tuple()), "error": None})
    spacing = pooled.frame_spacing  # the step the model is shown between pooled frames
    seconds = clip_seconds(pooled, spacing) if config.prompts == "official" else info.duration
    turns = opening_turns(
        question,
        [pooled],
        config,
        zoom_rounds=0,
        seconds=seconds,
        reasoning=_reasoning(state["trace"][-1].text, config.dialect),
    )
    try:
        _, _, fine = await ask_model(ctx, question, turns, 1)
    except Exception as exc:
        return {"zooms": [zoom], "error": model_failure(exc)}
    if config.prompts == "official" and ctx.geometry.family == "qwen2_5_vl":  # clip time -> video time
        fine = fine.model_copy(
            update={
                "spans": tuple(
                    Span(start=to_video_time(pooled, s.start, spacing), end=to_video_time(pooled, s.end, spacing))
                    for s in fine.spans
                )
            }
        )
    return {"zooms": [zoom], "trace": [fine]}  # the coarse conversation stays as it was
