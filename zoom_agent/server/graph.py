"""The deployable graph (``langgraph.json``): JSON in, JSON out, a JSON-able context.

``langgraph dev`` / LangGraph Platform serve ``graph`` from this module. A run takes

- input ``{"video": "clip.mp4", "question": "...", "options": ["...", ...]}`` (the video
  relative to ``ZOOM_AGENT_VIDEO_ROOT``, by the dataset loaders' rule: nothing outside it);
- context ``{"model": "<spec>", "visual_tokens": 8192, "max_zoom_rounds": 2, "max_tokens":
  512}`` (all optional, each bounded by `ServerLimits`): ``model`` must be one of
  ``ZOOM_AGENT_MODELS`` (comma-separated specs, as for ``zoom-agent ask --model``; the
  first is the default), so a client cannot make the server load an arbitrary folder;

and returns ``{"status", "answer", "answer_text", "spans", ..., "zooms"}``
(`zoom_agent.server.answers.answer_summary`). It runs the zoom graph as a subgraph, so
LangChain callbacks see every model run, and it writes one progress event per step of that
graph to ``stream_mode="custom"`` (``{"step": "zoom", "round": 1, "windows": [[2.0, 5.0]]}``).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, NotRequired

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from typing_extensions import TypedDict

from zoom_agent.models.base import VLM
from zoom_agent.server.limits import RequestRefused, ServerLimits

VIDEO_ROOT_ENV = "ZOOM_AGENT_VIDEO_ROOT"
MODELS_ENV = "ZOOM_AGENT_MODELS"


class AskInput(TypedDict):
    """One question about one video."""

    video: str
    question: str
    options: NotRequired[list[str] | None]


class AskOutput(TypedDict, total=False):
    """The grounded answer (see `zoom_agent.server.answers.answer_summary`)."""

    status: str
    answer: str | None
    answer_text: str | None
    spans: list[list[float]]
    answer_confidence: float | None
    span_confidence: float | None
    rounds: int
    zooms: list[dict[str, Any]]
    error: str | None


class AskState(AskInput, AskOutput):
    pass


class ServerContext(TypedDict, total=False):
    """JSON-able run context: which allowed model, and the budget and zoom rounds."""

    model: str
    visual_tokens: int
    max_zoom_rounds: int
    max_tokens: int


_models: dict[str, VLM] = {}


def allowed_models() -> list[str]:
    """The model specs this deployment may load (``ZOOM_AGENT_MODELS``)."""
    return [m.strip() for m in os.environ.get(MODELS_ENV, "").split(",") if m.strip()]


def server_limits(context: ServerContext | None) -> ServerLimits:
    """The limits of a run: the configured video root and the context's budget.

    Raises:
        RequestRefused: no video root configured, or a budget outside the limits.
    """
    root = os.environ.get(VIDEO_ROOT_ENV)
    if not root:
        raise RequestRefused(f"the server has no video root: set {VIDEO_ROOT_ENV}")
    tokens = (context or {}).get("visual_tokens", 8192)
    try:
        return ServerLimits(video_root=root, visual_tokens=tokens)
    except ValueError:
        raise RequestRefused(f"context.visual_tokens must be an integer in 64..65536, got {tokens!r}") from None


def _model(spec: str | None) -> VLM:
    from zoom_agent.models import load_model

    allowed = allowed_models()
    if not allowed:
        raise RequestRefused(f"the server has no models: set {MODELS_ENV}")
    name = spec or allowed[0]
    if name not in allowed:
        raise RequestRefused(f"context.model {name!r} is not served here; expected one of {allowed}")
    if name not in _models:
        _models[name] = load_model(name)
    return _models[name]


def _progress(node: str, update: dict[str, Any]) -> dict[str, Any] | None:
    """One custom stream event for a step of the zoom graph (None for steps with nothing to say)."""
    if node == "zoom":
        zooms = update.get("zooms", [])
        return {
            "step": "zoom",
            "round": zooms[0].round if zooms else None,
            "windows": [list(z.clip.span.as_tuple()) for z in zooms if z.clip is not None],
        }
    if node == "model":
        traces = update.get("trace", [])
        return {"step": "model", "round": traces[0].round if traces else None}
    if node in ("prepare", "finalize"):
        return {"step": node}
    return None


async def answer(state: AskState, runtime: Runtime[ServerContext]) -> AskOutput:
    """Check the request against the limits, then run the zoom graph on it."""
    from zoom_agent.agent import ZoomAgent, make_question
    from zoom_agent.server.answers import answer_summary

    context = runtime.context or {}
    try:
        limits = server_limits(context)
        path = await asyncio.to_thread(limits.video, state["video"])
        options = state.get("options")
        limits.question(state["question"], options)
        overrides = {k: context[k] for k in ("max_zoom_rounds", "max_tokens") if k in context}  # type: ignore[literal-required]
        config = limits.agent_config(**overrides)
        model = await asyncio.to_thread(_model, context.get("model"))
    except RequestRefused as exc:
        return {"status": "error", "error": str(exc)}
    try:
        question = make_question(path, state["question"], options)
    except ValueError as exc:  # e.g. repeated options: the request's fault, not the server's
        return {"status": "error", "error": str(exc)}
    agent = ZoomAgent(model, config)
    write = get_stream_writer()
    final = None
    async for node, update in agent.astream(question):
        event = _progress(node, update)
        if event is not None:
            write(event)
        final = update.get("result", final)
    if final is None:
        return {"status": "error", "error": "the zoom graph ended without a result"}
    return answer_summary(final)  # type: ignore[return-value]


def build_server_graph() -> Any:
    """The deployable graph: ``START -> answer -> END`` with typed input, output and context."""
    builder = StateGraph(AskState, context_schema=ServerContext, input_schema=AskInput, output_schema=AskOutput)
    builder.add_node("answer", answer)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", END)
    return builder.compile(name="zoom_agent")


graph = build_server_graph()
