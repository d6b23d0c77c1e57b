"""The zoom graph's nodes: prepare the coarse view, call the model, remind, zoom, observe,
finalize.

Each node reads the state, does one thing, and returns a partial update; where the graph
goes next is the routers' business (`zoom_agent.graphs.routes`). Model errors end the
question with status "error" and keep the trace; they never raise out of the graph, so a
batch never dies for one item.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from langgraph.runtime import Runtime

from zoom_agent import protocol
from zoom_agent.approximate import snap_clip
from zoom_agent.config import AgentConfig
from zoom_agent.geometry import VisionGeometry
from zoom_agent.graphs.arbitration import OFFICIAL_TOP_K, answer_confidence, arbitrate, span_confidence
from zoom_agent.graphs.request_budget import fit_request, request_visual_tokens
from zoom_agent.graphs.state import ZoomContext, ZoomState, ZoomTask, rounds_taken
from zoom_agent.models.base import Sampling, Turn, VLMRequest, model_failure
from zoom_agent.planning import plan_clip
from zoom_agent.protocol import Dialect, templates
from zoom_agent.spans import fit_to_video, merge
from zoom_agent.tools.zoom import TemporalZoom
from zoom_agent.tracing import progress, traced_zoom
from zoom_agent.types import ClipRef, GroundedAnswer, Question, Span, TurnTrace, VideoInfo, repeated_options
from zoom_agent.video import open_video


async def prepare(state: ZoomState, runtime: Runtime[ZoomContext]) -> dict[str, Any]:
    """Open the video (metadata only), choose the strategy, write the coarse turns."""
    config, question = runtime.context.config, state["question"]
    started = time.perf_counter()
    try:
        info = state.get("info") or await asyncio.to_thread(lambda: open_video(question.video).info)
    except Exception as exc:  # a bad video is this item's failure, not the batch's
        return {"error": f"{type(exc).__name__}: {exc}", "started": started}
    warnings = [*info.warnings, *repeated_options(question)]  # a truncated file reads short
    base = {"info": info, "retries": 0, "started": started, "error": None, "calls": [], "warnings": warnings}
    if config.resolved_strategy(info.duration) == "divide_and_conquer":
        return base  # the chunks plan their own views
    coarse = plan_clip(info, info.whole, config.budget, runtime.context.geometry, role="coarse")
    if config.approximate_coarse is not None:  # keyframes only; the clip says so (docs/video.md §5)
        try:
            coarse = await asyncio.to_thread(snap_clip, coarse, config.approximate_coarse)
        except Exception as exc:  # a bad video is this item's failure, not the batch's
            return {"error": f"{type(exc).__name__}: {exc}", "started": started}
    turns = opening_turns(question, [coarse], config, zoom_rounds=config.zoom_rounds(), seconds=info.duration)
    return base | {"coarse": coarse, "turns": turns}


def opening_turns(
    question: Question,
    clips: Sequence[ClipRef],
    config: AgentConfig,
    *,
    zoom_rounds: int,
    seconds: float,
    reply: templates.Reply = "reasoned",
    reasoning: str | None = None,
) -> list[Turn]:
    """The opening of a conversation in the configured prompt structure (``config.prompts``).

    ``official``: one user turn, the text (duration sentence, question and options on one
    line, layout) BEFORE the clips, no system turn (`zoom_agent.protocol.templates`).
    ``ours``: `question_turns`, plus the coarse reasoning as a text line when given.

    Args:
        question: the question and its options.
        clips: the views the model sees first.
        config: the agent's configuration (prompt structure, dialect, template file).
        zoom_rounds: zoom turns allowed (``ours`` leaves the tool out at 0).
        seconds: the length of the video the clips show (the duration sentence).
        reply: what the ``official`` prompt asks for (`zoom_agent.protocol.templates.Reply`).
        reasoning: the coarse reasoning, time tags removed (the fresh fine pass).
    """
    if config.prompts == "official":
        text = templates.official_prompt(
            templates.templates_from(config.prompt_file),
            question.question,
            question.options,
            seconds=seconds,
            reply=reply,
            reasoning=reasoning,
        )
        return [Turn(role="user", content=(text, *clips))]
    turns = question_turns(question, clips, config.dialect, zoom_rounds=zoom_rounds)
    if reasoning:
        last = turns[-1]
        turns[-1] = last.model_copy(update={"content": (*last.content, f"\nYour earlier analysis: {reasoning}")})
    return turns


def question_turns(question: Question, clips: Sequence[ClipRef], dialect: Dialect, *, zoom_rounds: int) -> list[Turn]:
    """The opening of a conversation: the system turn, then the clips (each after its
    caption) and the question with the answer layout.

    Args:
        question: the question and its options.
        clips: the views the model sees first (coarse, chunk, or zoomed clips).
        dialect: the output layout.
        zoom_rounds: zoom turns allowed; 0 leaves the zoom tool out of the prompts.
    """
    content: list[str | ClipRef] = []
    for clip in clips:
        content += [protocol.clip_caption(clip), clip]
    content.append(
        protocol.question_prompt(question.question, question.options, dialect=dialect, allow_zoom=zoom_rounds > 0)
    )
    system = protocol.system_prompt(dialect, max_zoom_rounds=zoom_rounds)
    return [Turn(role="system", content=(system,)), Turn(role="user", content=tuple(content))]


async def ask_model(
    ctx: ZoomContext, question: Question, turns: list[Turn], round_: int
) -> tuple[str, protocol.Parsed, TurnTrace]:
    """One model call on a conversation: generate, parse, and record the turn.

    Raises whatever the backend raises; callers turn it into an error result.
    """
    config = ctx.config
    sent = fit_request(turns, config.request_token_cap)  # docs/method.md §8
    request = VLMRequest(
        turns=tuple(sent),
        sampling=Sampling(temperature=config.temperature, max_tokens=config.max_tokens),
        top_logprobs=OFFICIAL_TOP_K if config.confidence == "official" else 0,
    )
    t0 = time.perf_counter()
    response = await ctx.model.generate(request)
    completion = response.completions[0]
    parsed = protocol.parse(completion.text, config.dialect, letters=question.letters)  # "": open-ended
    trace = TurnTrace(
        round=round_,
        text=completion.text,
        clips=sent[-1].clips if sent[-1].role == "user" else (),
        answer=parsed.answer,
        spans=_spans(parsed.spans),
        answer_confidence=answer_confidence(completion, parsed, config.confidence),
        span_confidence=span_confidence(completion, parsed, config.confidence),
        request_visual_tokens=request_visual_tokens(sent),
        format_ok=parsed.format_ok,
        tool_calls=len(parsed.tool_calls) + len(parsed.tool_call_errors),
        prompt_tokens=len(response.prompt_token_ids) if response.prompt_token_ids else response.prompt_tokens,
        completion_tokens=len(completion.token_ids) if completion.token_ids else completion.completion_tokens,
        latency_s=time.perf_counter() - t0,
    )
    return completion.text, parsed, trace


async def call_model(state: ZoomState, runtime: Runtime[ZoomContext]) -> dict[str, Any]:
    """One model turn of the conversation: its reply, its trace and the zoom calls it made."""
    config = runtime.context.config
    try:
        text, parsed, trace = await ask_model(runtime.context, state["question"], state["turns"], rounds_taken(state))
    except Exception as exc:
        return {"error": model_failure(exc), "calls": []}
    reply = Turn(role="assistant", content=(text,))  # kept even when unreadable: the model sees what it wrote
    asked = _zoom_calls(parsed, config)
    calls = asked[: config.max_parallel_zooms]  # the one place the per-turn cap applies
    update: dict[str, Any] = {"turns": [reply], "calls": calls}
    zooming = rounds_taken(state) < config.zoom_rounds()  # else no call runs: the reminder says so
    if zooming and len(asked) > len(calls):  # recorded on the turn; observe tells the model (dropped_calls_note)
        trace = trace.model_copy(update={"zoom_calls_dropped": len(asked) - len(calls)})
        note = protocol.dropped_calls_note(len(asked), len(calls))
        update["warnings"] = [f"round {trace.round}: {note}"]
    progress({"step": "model", "round": trace.round, "answer": trace.answer, "zoom_calls": len(calls)})
    return update | {"trace": [trace]}


async def remind(state: ZoomState, runtime: Runtime[ZoomContext]) -> dict[str, Any]:
    """Re-ask after a turn without an answer or a zoom that can run: one format reminder."""
    config = runtime.context.config
    reminder = protocol.format_reminder(config.dialect, open_ended=state["question"].open_ended)
    if state.get("calls"):  # it asked to zoom with no rounds left
        reminder = f"You have no zoom rounds left. Answer now. {reminder}"
    return {"retries": state.get("retries", 0) + 1, "turns": [Turn(role="user", content=(reminder,))]}


def _spans(pairs: list[tuple[float, float]]) -> tuple[Span, ...]:
    return tuple(Span(start=s, end=e) for s, e in pairs)


def _zoom_calls(parsed: protocol.Parsed, config: AgentConfig) -> list[dict[str, Any]]:
    """The zoom requests of one turn, as ``{"name", "arguments" | "error"}`` records."""
    if config.dialect == "zoomzero":  # the glue spans become the zoom request
        return [{"name": protocol.ZOOM_TOOL_NAME, "arguments": {"start": s, "end": e}} for s, e in merge(parsed.spans)]
    calls: list[dict[str, Any]] = [{"name": c.name, "arguments": c.arguments} for c in parsed.tool_calls]
    calls += [{"name": protocol.ZOOM_TOOL_NAME, "error": e} for e in parsed.tool_call_errors]
    return calls


async def zoom(task: ZoomTask, runtime: Runtime[ZoomContext]) -> dict[str, Any]:
    """Run one zoom call through `TemporalZoom`; errors become text the model reads."""
    ctx, call = runtime.context, task["call"]
    config = ctx.config
    budget = config.zoom_budget()
    if config.request_token_cap is not None:  # one round's zooms share one budget (docs/method.md §8)
        budget = budget.view(1 / task.get("count", 1))
    tool = TemporalZoom(
        task["info"],
        budget,
        geometry=ctx.geometry,
        pad=config.zoom_pad,
        min_seconds=config.min_zoom_seconds,
    )
    if "error" in call:
        result = tool.error_result(f"the tool call could not be read: {call['error']}", {})
    elif call["name"] != protocol.ZOOM_TOOL_NAME:
        result = tool.error_result(f"unknown tool {call['name']!r}; the only tool is {protocol.ZOOM_TOOL_NAME}", {})
    else:
        call_id = f"zoom_{task['round']}_{task['index']}"
        result = await traced_zoom(call["arguments"], lambda: tool(call["arguments"]), call_id=call_id)
    window = None if result.clip is None else list(result.clip.span.as_tuple())
    progress({"step": "zoom", "round": task["round"], "call": task["index"], "window": window, "error": result.error})
    return {"zooms": [result.trace(task["round"], task["index"])]}


async def observe(state: ZoomState, runtime: Runtime[ZoomContext]) -> dict[str, Any]:
    """Show the zoom results: text tool turns, then one user turn carrying the clips.

    vLLM drops images inside ``role: tool`` messages, so frames travel in a user turn.
    """
    config = runtime.context.config
    round_ = rounds_taken(state)  # this round's zoom calls are in the state now
    done = sorted((z for z in state["zooms"] if z.round == round_), key=lambda z: z.call)
    turns = [Turn(role="tool", name=protocol.ZOOM_TOOL_NAME, content=(z.text,)) for z in done]
    content: list[Any] = []
    for z in done:
        if z.clip is not None:
            content += [protocol.clip_caption(z.clip), z.clip]
    if content and config.global_context:
        context = _context_clip(state["info"], config, runtime.context.geometry)
        content = [protocol.clip_caption(context), context, *content]
    left = config.zoom_rounds() - round_
    follow_up = protocol.follow_up_prompt(config.dialect, rounds_left=left, open_ended=state["question"].open_ended)
    asked = state["trace"][-1]  # the turn whose calls ran
    if asked.zoom_calls_dropped:
        ran = len(done)
        follow_up = f"{protocol.dropped_calls_note(ran + asked.zoom_calls_dropped, ran)} {follow_up}"
    content.append(follow_up)
    turns.append(Turn(role="user", content=tuple(content)))
    return {"turns": turns}


def _context_clip(info: VideoInfo, config: AgentConfig, geometry: VisionGeometry) -> ClipRef:
    return plan_clip(
        info, info.whole, config.context_budget(), geometry, max_frames=config.context_frames, role="context"
    )


async def finalize(state: ZoomState, runtime: Runtime[ZoomContext]) -> dict[str, Any]:
    """Arbitrate coarse vs fine and build the `GroundedAnswer`."""
    candidates = state.get("candidates") or state.get("trace", [])
    return {"result": build_result(state, runtime.context.config, candidates=candidates)}


def build_result(state: ZoomState, config: AgentConfig, *, candidates: list[TurnTrace]) -> GroundedAnswer:
    """The final answer from the candidate turns (first = coarse, last = fine), with the trace.

    Without a valid answer the result is "unanswered", never a guessed letter.
    """
    question = state["question"]
    zooms = state.get("zooms", [])
    common: dict[str, Any] = {
        "question_id": question.id,
        "rounds": rounds_taken(state),
        "turns": tuple(state.get("trace", [])),
        "zooms": tuple(zooms),
        "elapsed_s": time.perf_counter() - state.get("started", time.perf_counter()),
    }
    warnings = list(state.get("warnings", []))
    if state.get("error"):
        return GroundedAnswer(status="error", error=state["error"], warnings=tuple(warnings), **common)
    chosen = arbitrate(candidates, use_confidence=config.arbitrate)
    if chosen is None:
        return GroundedAnswer(
            status="unanswered", error="no valid answer in any turn", warnings=tuple(warnings), **common
        )
    answer_turn, span_turn = chosen
    answer = answer_turn.answer  # the letter, or an open-ended question's free text
    assert answer is not None
    index = question.letters.find(answer) if question.options else -1
    spans = span_turn.spans or tuple(z.clip.span for z in zooms if z.clip is not None)
    spans, clamped = fit_to_video(spans, state["info"].duration)  # docs/evaluation.md §6
    return GroundedAnswer(
        status="answered",
        answer=answer,
        answer_index=index if index >= 0 else None,
        answer_text=answer if question.options is None else question.options[index] if index >= 0 else None,
        spans=spans,
        answer_confidence=answer_turn.answer_confidence,
        span_confidence=span_turn.span_confidence,
        chosen_round=answer_turn.round,
        warnings=tuple(warnings + clamped),
        **common,
    )
