"""The zoom graph's steps as LangChain runs and stream events (docs/architecture.md).

- `traced_zoom` runs one zoom call as a LangChain *tool* run: callbacks and tracers
  (LangSmith, Langfuse, a ``BaseCallbackHandler``) see ``on_tool_start`` with the arguments
  and ``on_tool_end`` with a ``ToolMessage`` whose artifact is the zoom result (the clip
  reference: window, frame times and size; never pixels), or ``on_tool_error``.
- `progress` writes one event to LangGraph's ``stream_mode="custom"``
  (``{"step": "zoom", "round": 1, "window": [2.0, 5.0]}``); outside a graph run it does nothing.

Model calls are chat-model runs when the backend is a LangChain chat model
(`zoom_agent.models.langchain.LangChainVLM`), whose tokens then stream in
``stream_mode="messages"``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from zoom_agent.protocol import ZOOM_TOOL_NAME
from zoom_agent.tools.zoom import ZoomResult


def progress(event: dict[str, Any]) -> None:
    """Write ``event`` to the running graph's custom stream (no-op outside a graph run)."""
    from langgraph.config import get_stream_writer

    try:
        write = get_stream_writer()
    except RuntimeError:  # called outside a LangGraph run
        return
    write(event)


def _run_config() -> dict[str, Any] | None:
    from langgraph.config import get_config

    try:
        return dict(get_config())
    except RuntimeError:
        return None


async def traced_zoom(arguments: Any, run: Callable[[], ZoomResult], *, call_id: str) -> ZoomResult:
    """Run one zoom (``run``) as a LangChain tool run of the current graph step.

    Args:
        arguments: the call's arguments as the model wrote them.
        run: does the zoom and returns its result (errors as data).
        call_id: the tool call's id in the trace (round and position).
    """
    from langchain_core.callbacks.manager import AsyncCallbackManager
    from langchain_core.messages import ToolMessage
    from langchain_core.tools import ToolException

    config = _run_config()
    if config is None:
        return run()
    manager = AsyncCallbackManager.configure(
        inheritable_callbacks=config.get("callbacks"),
        inheritable_tags=config.get("tags"),
        inheritable_metadata=config.get("metadata"),
    )
    text = json.dumps(arguments, default=str) if isinstance(arguments, dict) else str(arguments)
    run_manager = await manager.on_tool_start(
        {"name": ZOOM_TOOL_NAME}, text, name=ZOOM_TOOL_NAME, inputs=arguments if isinstance(arguments, dict) else None
    )
    result = run()
    if result.error is not None:
        await run_manager.on_tool_error(ToolException(result.text))
    else:
        artifact = result.model_dump(mode="json")
        await run_manager.on_tool_end(
            ToolMessage(content=result.text, artifact=artifact, tool_call_id=call_id, name=ZOOM_TOOL_NAME)
        )
    return result
