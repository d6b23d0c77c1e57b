"""Where the zoom graph goes after a node: each router reads the typed state and the run's
config, decides, and names the next node (or fans out with `Send`). Nodes never name
their successor, so each decision lives here, once.
"""

from __future__ import annotations

from typing import Literal

from langgraph.runtime import Runtime
from langgraph.types import Send

from zoom_agent.graphs.divide import chunk_tasks
from zoom_agent.graphs.state import ZoomContext, ZoomState, ZoomTask, rounds_taken


def after_prepare(state: ZoomState, runtime: Runtime[ZoomContext]) -> Literal["model", "finalize"] | list[Send]:
    """A bad video ends the question; a long one fans out to per-chunk passes; else the
    coarse model turn."""
    config = runtime.context.config
    if state.get("error"):
        return "finalize"
    if config.resolved_strategy(state["info"].duration) == "divide_and_conquer":
        return chunk_tasks(state, config, runtime.context.geometry)
    return "model"


def after_model(state: ZoomState, runtime: Runtime[ZoomContext]) -> Literal["retry", "finalize", "refine"] | list[Send]:
    """One `Send` per zoom call while zoom rounds are left (parallel zoom; `nodes.call_model`
    keeps at most ``max_parallel_zooms`` and says so), or the fresh fine pass on all of them (``fine_pass="fresh"``);
    else finalize on an answer or a model error; else a format reminder while
    ``format_retries`` allow; else finalize (unanswered)."""
    config = runtime.context.config
    if state.get("error"):
        return "finalize"
    taken, calls = rounds_taken(state), state.get("calls", [])
    if calls and taken < config.zoom_rounds() and config.fine_pass == "fresh":
        return "refine"
    if calls and taken < config.zoom_rounds():  # the model node already kept at most max_parallel_zooms
        return [
            Send("zoom", ZoomTask(call=call, index=i, count=len(calls), round=taken + 1, info=state["info"]))
            for i, call in enumerate(calls)
        ]
    if state["trace"][-1].answer is not None:
        return "finalize"
    return "retry" if state.get("retries", 0) < config.format_retries else "finalize"
