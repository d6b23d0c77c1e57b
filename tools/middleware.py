"""`ZoomFramesMiddleware`: a ``create_agent`` middleware that shows the model each zoom's
frames while the agent state keeps only clip references (checkpoints stay small).

    agent = create_agent(model, [zoom_tool(video_root=root)], middleware=[ZoomFramesMiddleware()])

Needs the ``langchain`` package (``create_agent`` lives there); the tool itself needs only
``langchain-core`` (`zoom_agent.tools.langchain`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse

from zoom_agent.models.lc_messages import JPEG_QUALITY
from zoom_agent.protocol import ZOOM_TOOL_NAME
from zoom_agent.tools.langchain import with_zoom_frames


class ZoomFramesMiddleware(AgentMiddleware):  # type: ignore[type-arg]
    """Expand zoom references into a user message with the frames, at model-call time only.

    Args:
        tool_names: names of the zoom tools whose results to expand (default ``temporal_zoom``).
        quality: JPEG quality of the frames.
    """

    def __init__(self, tool_names: Sequence[str] = (ZOOM_TOOL_NAME,), quality: int = JPEG_QUALITY) -> None:
        super().__init__()
        self.tool_names = tuple(tool_names)
        self.quality = quality

    def _expanded(self, request: ModelRequest) -> ModelRequest:
        messages = with_zoom_frames(request.messages, tool_names=self.tool_names, quality=self.quality)
        return request.override(messages=messages)

    def wrap_model_call(self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]) -> Any:
        return handler(self._expanded(request))

    async def awrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], Awaitable[ModelResponse]]
    ) -> Any:
        return await handler(await asyncio.to_thread(self._expanded, request))
