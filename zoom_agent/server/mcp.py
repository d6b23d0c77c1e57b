"""The zoom tool and the agent over MCP: ``zoom-agent mcp`` (stdio or streamable HTTP).

``zoom-agent mcp`` (`zoom_agent.cli.mcp`) starts it. Tools:

- ``temporal_zoom(video, start, end, frames=None)``: up to ``frames`` (default: the server's
  ``max_zoom_frames``) of the window's frames as MCP images, each
  after its time stamp, behind the tool's text (``zoomed 2.0-5.0 s: 8 frames at 308x252``).
  A bad window, a path outside the video root or too many frames is an MCP tool error
  (``isError``; LangChain's MCP adapters turn it into a ``ToolMessage`` with
  ``status="error"``).
- ``ask_video(video, question, options=None, max_zoom_rounds=None)`` (when the server has a
  model): the agent's grounded answer as JSON (answer, evidence spans, confidences, every
  zoom window), under the server's limits.

Every call runs under `ServerLimits` (video root, frames, rounds, windows, text sizes,
concurrency). HTTP binds 127.0.0.1 unless ``--host`` says otherwise.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.types import ImageContent, TextContent

from zoom_agent.geometry import PAPER_GEOMETRY, VisionGeometry
from zoom_agent.models.base import VLM
from zoom_agent.protocol import ZOOM_TOOL_NAME
from zoom_agent.server.answers import answer_summary
from zoom_agent.server.limits import LOOPBACK, RequestRefused, ServerLimits

ZOOM_DESCRIPTION = (
    "Re-inspect the time window [start, end] (seconds) of a video at higher per-frame resolution; "
    "returns the window's frames as images. `video` is a path under the server's video root."
)
ASK_DESCRIPTION = (
    "Answer a question about a video by grounding it in time and zooming in; returns the answer, "
    "its evidence spans (seconds) and the zoom windows the model looked at."
)


def zoom_content(
    limits: ServerLimits, geometry: VisionGeometry, video: str, start: float, end: float, frames: int | None
) -> list[Any]:
    """The MCP content of one zoom: the tool text, then each frame's time and JPEG image (blocking).

    Raises:
        RequestRefused: a path outside the root, too many frames, or a bad window.
    """
    from zoom_agent.models.chat_format import encode_clip
    from zoom_agent.tools.zoom import TemporalZoom
    from zoom_agent.video import open_video

    path = limits.video(video)
    count = limits.max_zoom_frames if frames is None else limits.zoom_frames(frames)
    budget = limits.agent_config().budget.view(1.0, zoom_max_frames=count)
    result = TemporalZoom(open_video(path), budget, geometry=geometry).zoom(start, end, num_frames=count)
    if result.clip is None:
        raise RequestRefused(result.text)
    encoded = encode_clip(result.clip, 85)
    content: list[Any] = [TextContent(type="text", text=result.text)]
    for t, jpeg in zip(encoded.timestamps, encoded.frames, strict=True):
        content.append(TextContent(type="text", text=f"<{t:.1f} seconds>"))
        content.append(ImageContent(type="image", data=jpeg, mimeType="image/jpeg"))
    return content


def build_mcp_server(
    limits: ServerLimits, model: VLM | str | Path | None = None, *, host: str = LOOPBACK, port: int = 8765
) -> FastMCP:
    """The MCP server: ``temporal_zoom`` always, ``ask_video`` when a model is given.

    Args:
        limits: the video root and the bounds of one call.
        model: the agent's model (anything `zoom_agent.models.load_model` takes), or None.
        host, port: where streamable HTTP listens (stdio ignores them).
    """
    from zoom_agent.models import load_model

    server = FastMCP("zoom-agent", host=host, port=port, instructions=ZOOM_DESCRIPTION)
    gate = asyncio.Semaphore(limits.max_concurrent)
    vlm = None if model is None else load_model(model)
    geometry = PAPER_GEOMETRY if vlm is None else vlm.geometry  # frames planned for the served model

    @server.tool(name=ZOOM_TOOL_NAME, description=ZOOM_DESCRIPTION)
    async def temporal_zoom(video: str, start: float, end: float, frames: int | None = None) -> list[Any]:
        async with gate:
            try:
                return await asyncio.to_thread(zoom_content, limits, geometry, video, start, end, frames)
            except (RequestRefused, ValueError) as exc:
                raise ToolError(str(exc)) from None

    if vlm is None:
        return server
    from zoom_agent.agent import ZoomAgent

    @server.tool(name="ask_video", description=ASK_DESCRIPTION)
    async def ask_video(
        video: str, question: str, options: list[str] | None = None, max_zoom_rounds: int | None = None
    ) -> dict[str, Any]:
        try:
            path = limits.video(video)
            limits.question(question, options)
            overrides = {} if max_zoom_rounds is None else {"max_zoom_rounds": max_zoom_rounds}
            agent = ZoomAgent(vlm, limits.agent_config(**overrides))
        except RequestRefused as exc:
            raise ToolError(str(exc)) from None
        async with gate:
            result = await agent.aask(path, question, options)
        return answer_summary(result)

    return server
