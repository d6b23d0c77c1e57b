"""The temporal zoom tool for LangChain agents, and the middleware that shows its frames.

    from langchain.agents import create_agent
    from zoom_agent.tools.langchain import zoom_tool
    from zoom_agent.tools.middleware import ZoomFramesMiddleware

    agent = create_agent(model, [zoom_tool(video_root="/data/videos")], middleware=[ZoomFramesMiddleware()])

- ``zoom_tool(video=...)`` binds one video (arguments ``start``, ``end``);
  ``zoom_tool(video_root=...)`` serves every video under a root (arguments ``video``,
  ``start``, ``end``; paths resolve by `zoom_agent.datasets.paths.resolve_video`, so
  ``..``, absolute paths elsewhere and symlinks out are refused). ``name`` is configurable,
  so two tools can live side by side. ``video`` may also be a `VideoInfo` (plans without
  opening the file; only ``frames="reference"`` then).
- A bad window raises ``ToolException``: the agent gets a ``ToolMessage`` with
  ``status="error"`` and the reason (the model reads it and may try again).
- The artifact is the `ZoomResult` as plain JSON (it survives any checkpointer; read it
  back with `zoom_result`).
- ``frames="reference"`` (default): the tool message holds text and the artifact holds the
  clip reference; `zoom_agent.tools.middleware.ZoomFramesMiddleware` turns references into a user message with the
  frames at model-call time only, so checkpoints keep references (vLLM drops images in
  ``role: tool`` anyway). ``frames="inline"``: the tool message itself carries the frames
  as image blocks (for models that read images in tool results; checkpoints then hold JPEGs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import StructuredTool, ToolException
from pydantic import BaseModel

from zoom_agent.config import Budget
from zoom_agent.datasets.paths import resolve_video
from zoom_agent.geometry import PAPER_GEOMETRY, VisionGeometry
from zoom_agent.models.lc_messages import JPEG_QUALITY, clip_blocks
from zoom_agent.protocol import ZOOM_TOOL_NAME, ZOOM_TOOL_SCHEMA
from zoom_agent.tools.zoom import TemporalZoom, ZoomResult
from zoom_agent.types import VideoInfo

FramesMode = Literal["reference", "inline"]
DESCRIPTION: str = ZOOM_TOOL_SCHEMA["function"]["description"]


def _many_videos_schema() -> dict[str, Any]:
    """The zoom call's argument schema (`protocol.ZOOM_TOOL_SCHEMA`) with a ``video`` argument first."""
    wire = ZOOM_TOOL_SCHEMA["function"]["parameters"]
    video = {"type": "string", "description": "the video file, relative to the video root"}
    return {**wire, "properties": {"video": video, **wire["properties"]}, "required": ["video", *wire["required"]]}


def zoom_tool(
    *,
    video: str | Path | VideoInfo | None = None,
    video_root: str | Path | None = None,
    name: str = ZOOM_TOOL_NAME,
    budget: Budget | None = None,
    geometry: VisionGeometry = PAPER_GEOMETRY,
    pad: float = 0.0,
    frames: FramesMode = "reference",
    quality: int = JPEG_QUALITY,
) -> StructuredTool:
    """The temporal zoom as a LangChain tool (see the module notes).

    Args:
        video: bind the tool to this one video (the model then passes only start and end);
            a path, or a `VideoInfo` to plan without opening the file.
        video_root: serve any video under this folder (the model passes ``video`` too).
            Give exactly one of ``video`` and ``video_root``.
        name: the tool's name as the model sees it.
        budget: the visual-token budget of one zoomed view.
        geometry: the grid frames are planned on: the model's ``vlm.geometry`` for a
            Qwen-VL model (default `zoom_agent.geometry.PAPER_GEOMETRY`, Qwen2.5-VL's).
        pad: seconds added on both sides of every window.
        frames: ``"reference"`` (frames added at model-call time by `ZoomFramesMiddleware`)
            or ``"inline"`` (image blocks in the tool message).
        quality: JPEG quality of inline frames.

    Returns:
        A ``StructuredTool`` with ``response_format="content_and_artifact"``.

    Raises:
        ValueError: neither or both of ``video`` / ``video_root``, or an unknown ``frames``.
    """
    if (video is None) == (video_root is None):
        raise ValueError("zoom_tool needs exactly one of video= (one video) or video_root= (videos under a root)")
    if frames not in ("reference", "inline"):
        raise ValueError(f"frames must be 'reference' or 'inline', got {frames!r}")
    budget = budget or Budget()

    def run(path: str | VideoInfo, start: float, end: float) -> tuple[Any, dict[str, Any]]:
        from zoom_agent.video import VideoError, VideoSource, open_video

        try:
            source: VideoSource | VideoInfo = path if isinstance(path, VideoInfo) else open_video(path)
        except VideoError as exc:
            raise ToolException(f"{name} error: {exc}") from exc
        result = TemporalZoom(source, budget, geometry=geometry, pad=pad)({"start": start, "end": end})
        if result.clip is None:
            raise ToolException(result.text)
        content: Any = result.text
        if frames == "inline":
            content = [{"type": "text", "text": result.text}, *clip_blocks(result.clip, quality)]
        return content, result.model_dump(mode="json")

    if video is not None:
        bound = video if isinstance(video, VideoInfo) else str(video)

        def zoom_one(start: float, end: float) -> tuple[Any, dict[str, Any]]:
            return run(bound, start, end)

        func: Callable[..., Any] = zoom_one
        schema: dict[str, Any] | type[BaseModel] = ZOOM_TOOL_SCHEMA["function"]["parameters"]
    else:
        root = str(video_root)

        def zoom_any(video: str, start: float, end: float) -> tuple[Any, dict[str, Any]]:
            try:
                path = resolve_video(root, video, check_exists=True)
            except ValueError as exc:
                raise ToolException(f"{name} error: {exc}") from exc
            return run(path, start, end)

        func, schema = zoom_any, _many_videos_schema()
    return StructuredTool.from_function(
        func=func,
        name=name,
        description=DESCRIPTION,
        args_schema=schema,
        response_format="content_and_artifact",
        handle_tool_error=True,
    )


def zoom_result(message: ToolMessage) -> ZoomResult | None:
    """The `ZoomResult` a zoom tool left on its message (also after a checkpoint round trip)."""
    artifact = message.artifact
    if isinstance(artifact, ZoomResult):
        return artifact
    if isinstance(artifact, dict) and "text" in artifact:
        return ZoomResult.model_validate(artifact)
    return None


def with_zoom_frames(
    messages: Sequence[BaseMessage], *, tool_names: Sequence[str] = (ZOOM_TOOL_NAME,), quality: int = JPEG_QUALITY
) -> list[BaseMessage]:
    """The messages with the frames of every zoom shown: after each run of tool messages
    holding zoom references, one user message with each clip's caption and frames.

    Args:
        messages: the conversation (not changed).
        tool_names: names of the zoom tools whose references to expand.
        quality: JPEG quality.
    """
    out: list[BaseMessage] = []
    pending: list[dict[str, Any]] = []
    for message in messages:
        if pending and not isinstance(message, ToolMessage):
            out.append(HumanMessage(content=pending))  # type: ignore[arg-type]
            pending = []
        out.append(message)
        if isinstance(message, ToolMessage) and message.name in tool_names and message.status != "error":
            result = zoom_result(message)
            if result is not None and result.clip is not None:
                pending += clip_blocks(result.clip, quality)
    if pending:
        out.append(HumanMessage(content=pending))  # type: ignore[arg-type]
    return out
