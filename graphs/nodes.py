"""The zoom graph's nodes: prepare the coarse view, call the model, zoom, observe, finalize.

Each node reads the state, does one thing, and returns a partial update. Model errors
end the question with status "error" and keep the trace; they never raise out of the
graph, so a batch never dies for one item.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from langgraph.runtime import Runtime
from zoom_agent.graphs.arbitration import answer_confidence, arbitrate, span_confidence
from zoom_agent.graphs.state import ZoomContext, ZoomState, ZoomTask
from zoom_agent.tools.zoom import TOOL_NAME, TemporalZoom

from zoom_agent import protocol
from zoom_agent.config import AgentConfig
from zoom_agent.models.base import Sampling, Turn, VLMRequest
from zoom_agent.spans import merge
from zoom_agent.types import GroundedAnswer, Span, TurnTrace, VideoInfo, ZoomTrace
from zoom_agent.video import open_video, plan_clip


def _rounds_allowed(config: AgentConfig) -> int:
    # The paper's one-shot layout zooms once: its fine turn repeats the same glue layout.
    return min(config.max_zoom_rounds, 1) if config.dialect == "zoomzero" else config.max_zoom_rounds


async def prepare(state: ZoomState, runtime: Runtime[ZoomContext]) -> dict[str, Any]:
    """Open the video (metadata only), plan the coarse view, write the first turns."""
    config, question = runtime.context.config, state["question"]
    started = time.perf_counter()
    try:
        info = state.get("info") or await asyncio.to_thread(lambda: open_video(question.video).info)
    except Exception as exc:  # a bad video is this item's failure, not the batch's
        return {"error": f"{type(exc).__name__}: {exc}", "next": "finalize", "started": started}
    coarse = plan_clip(info, info.whole, config.budget, role="coarse")
    system = protocol.system_prompt(config.dialect, max_zoom_rounds=_rounds_allowed(config))
    user = (
        protocol.clip_caption(coarse),
        coarse,
        protocol.question_prompt(question.question, question.options, dialect=config.dialect),
    )
    return {
        "info": info,
        "coarse": coarse,
        "turns": [Turn(role="system", content=(system,)), Turn(role="user", content=user)],
        "round": 0,
        "retries": 0,
        "started": started,
        "error": None,
    }


async def call_model(state: ZoomState, runtime: Runtime[ZoomContext]) -> dict[str, Any]:
    """One model turn: generate, parse, record, and decide what comes next."""
    ctx, question = runtime.context, state["question"]
    config = ctx.config
    request = VLMRequest(
        turns=tuple(state["turns"]),
        sampling=Sampling(temperature=config.temperature, max_tokens=config.max_tokens),
    )
    t0 = time.perf_counter()
    try:
        response = await ctx.model.generate(request)
    except Exception as exc:
        return {"error": f"model failed: {type(exc).__name__}: {exc}", "next": "finalize"}
    completion = response.completions[0]
    parsed = protocol.parse(completion.text, config.dialect, letters=question.letters or "ABCDE")
    trace = TurnTrace(
        round=state.get("round", 0),
        text=completion.text,
        clips=state["turns"][-1].clips if state["turns"][-1].role == "user" else (),
        answer=parsed.answer,
        spans=_spans(parsed.spans),
        answer_confidence=answer_confidence(completion, parsed),
        span_confidence=span_confidence(completion, parsed),
        format_ok=parsed.format_ok,
        tool_calls=len(parsed.tool_calls) + len(parsed.tool_call_errors),
        prompt_tokens=len(response.prompt_token_ids) if response.prompt_token_ids else None,
        completion_tokens=len(completion.token_ids) if completion.token_ids else None,
        latency_s=time.perf_counter() - t0,
    )
    update: dict[str, Any] = {"turns": [Turn(role="assistant", content=(completion.text,))], "trace": [trace]}
    return update | _decide(state, config, parsed)


def _spans(pairs: list[tuple[float, float]]) -> tuple[Span, ...]:
    return tuple(Span(start=s, end=e) for s, e in pairs)


def _decide(state: ZoomState, config: AgentConfig, parsed: protocol.Parsed) -> dict[str, Any]:
    """Route: zoom (calls pending), finalize (answered), or retry (re-ask with a reminder)."""
    rounds_left = _rounds_allowed(config) - state.get("round", 0)
    calls = _zoom_calls(parsed, config)
    if calls and rounds_left > 0:
        return {"next": "zoom", "pending": calls[: config.max_parallel_zooms]}
    if parsed.answer is not None:
        return {"next": "finalize"}
    retries = state.get("retries", 0)
    if retries >= config.format_retries:
        return {"next": "finalize"}
    reminder = protocol.format_reminder(config.dialect)
    if calls:
        reminder = f"You have no zoom rounds left. Answer now. {reminder}"
    return {"next": "retry", "retries": retries + 1, "turns": [Turn(role="user", content=(reminder,))]}


def _zoom_calls(parsed: protocol.Parsed, config: AgentConfig) -> list[dict[str, Any]]:
    """The zoom requests of one turn, as ``{"name", "arguments" | "error"}`` records."""
    if config.dialect == "zoomzero":  # the glue spans become the zoom request
        return [{"name": TOOL_NAME, "arguments": {"start": s, "end": e}} for s, e in merge(parsed.spans)]
    calls: list[dict[str, Any]] = [{"name": c.name, "arguments": c.arguments} for c in parsed.tool_calls]
    calls += [{"name": TOOL_NAME, "error": e} for e in parsed.tool_call_errors]
    return calls


def route_after_model(state: ZoomState) -> Any:
    """Fan out one `Send` per zoom call (parallel zoom), or go on to retry/finalize."""
    from langgraph.types import Send

    if state["next"] != "zoom":
        return state["next"]
    round_ = state.get("round", 0) + 1
    return [
        Send("zoom", ZoomTask(call=call, index=i, round=round_, info=state["info"]))
        for i, call in enumerate(state["pending"])
    ]


async def zoom(task: ZoomTask, runtime: Runtime[ZoomContext]) -> dict[str, Any]:
    """Run one zoom call through `TemporalZoom`; errors become text the model reads."""
    config, call = runtime.context.config, task["call"]
    budget = config.budget.scaled(1 - config.context_share) if config.global_context else config.budget
    tool = TemporalZoom(task["info"], budget, pad=config.zoom_pad, min_seconds=config.min_zoom_seconds)
    if "error" in call:
        result = tool.error_result(f"the tool call could not be read: {call['error']}", {})
    elif call["name"] != TOOL_NAME:
        result = tool.error_result(f"unknown tool {call['name']!r}; the only tool is {TOOL_NAME}", {})
    else:
        result = tool(call["arguments"])
    trace = ZoomTrace(
        round=task["round"],
        call=task["index"],
        requested=result.requested,
        text=result.text,
        clip=result.clip,
        error=result.error,
    )
    return {"zooms": [trace]}


async def observe(state: ZoomState, runtime: Runtime[ZoomContext]) -> dict[str, Any]:
    """Show the zoom results: text tool turns, then one user turn carrying the clips.

    vLLM drops images inside ``role: tool`` messages, so frames travel in a user turn.
    """
    config = runtime.context.config
    round_ = state.get("round", 0) + 1
    done = sorted((z for z in state["zooms"] if z.round == round_), key=lambda z: z.call)
    turns = [Turn(role="tool", name=TOOL_NAME, content=(z.text,)) for z in done]
    content: list[Any] = []
    for z in done:
        if z.clip is not None:
            content += [protocol.clip_caption(z.clip), z.clip]
    if content and config.global_context:
        context = _context_clip(state["info"], config)
        content = [protocol.clip_caption(context), context, *content]
    left = _rounds_allowed(config) - round_
    content.append(protocol.follow_up_prompt(config.dialect, rounds_left=left))
    turns.append(Turn(role="user", content=tuple(content)))
    return {"turns": turns, "round": round_}


def _context_clip(info: VideoInfo, config: AgentConfig) -> Any:
    budget = config.budget.scaled(config.context_share)
    return plan_clip(info, info.whole, budget, max_frames=config.context_frames, role="context")


async def finalize(state: ZoomState, runtime: Runtime[ZoomContext]) -> dict[str, Any]:
    """Arbitrate coarse vs fine and build the `GroundedAnswer`."""
    config, question = runtime.context.config, state["question"]
    trace, zooms = state.get("trace", []), state.get("zooms", [])
    elapsed = time.perf_counter() - state.get("started", time.perf_counter())
    common: dict[str, Any] = {
        "question_id": question.id,
        "rounds": state.get("round", 0),
        "turns": tuple(trace),
        "zooms": tuple(zooms),
        "elapsed_s": elapsed,
    }
    if state.get("error"):
        return {"result": GroundedAnswer(status="error", error=state["error"], **common)}
    chosen = arbitrate(trace, use_confidence=config.arbitrate)
    if chosen is None:
        return {"result": GroundedAnswer(status="unanswered", error="no valid answer in any turn", **common)}
    answer_turn, span_turn = chosen
    letter = answer_turn.answer
    assert letter is not None
    index = question.letters.find(letter) if question.options else -1
    spans = span_turn.spans or tuple(z.clip.span for z in zooms if z.clip is not None)
    result = GroundedAnswer(
        status="answered",
        answer=letter,
        answer_index=index if index >= 0 else None,
        answer_text=question.options[index] if question.options and index >= 0 else None,
        spans=spans,
        answer_confidence=answer_turn.answer_confidence,
        span_confidence=span_turn.span_confidence,
        chosen_round=answer_turn.round,
        **common,
    )
    return {"result": result}
