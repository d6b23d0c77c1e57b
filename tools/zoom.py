"""The temporal zoom tool: re-inspect a time window at higher per-frame resolution.

The same visual-token budget that covered the whole video now covers only the window,
so fewer frames each get more pixels (V'_res = L_v / N', docs/method.md §2).

Like verl's image-zoom tool and LangGraph's ToolNode, bad arguments from the model never
raise: the result carries the error text, the model sees it and may try again. The
LangChain tool (frames as content blocks, errors as ``ToolException``) is
`zoom_agent.tools.langchain.zoom_tool`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from zoom_agent.config import Budget
from zoom_agent.geometry import VisionGeometry
from zoom_agent.protocol import ZOOM_TOOL_NAME, check_zoom_arguments
from zoom_agent.spans import SpanLike, merge, pad
from zoom_agent.types import ClipRef, Span, VideoInfo, ZoomTrace

if TYPE_CHECKING:
    from zoom_agent.video import VideoSource


class ZoomResult(BaseModel):
    """What one zoom call produced: text for the model, and a clip reference or an error."""

    model_config = ConfigDict(frozen=True)

    text: str = Field(description="the tool message the model reads")
    clip: ClipRef | None = Field(None, description="the zoomed clip (no pixels); None on error")
    error: str | None = None
    requested: dict[str, Any] = Field(default_factory=dict, description="the arguments as received")

    def trace(self, round_: int, call: int = 0) -> ZoomTrace:
        """This result as the agent's trace records it (the `call`-th zoom of round `round_`)."""
        return ZoomTrace(
            round=round_, call=call, requested=self.requested, text=self.text, clip=self.clip, error=self.error
        )


class TemporalZoom:
    """Plans a zoomed view of one video under a visual-token budget.

    Args:
        source: the video (a `VideoSource`, or just its `VideoInfo`: the tool never decodes).
        budget: the token budget the zoomed view may spend.
        geometry: the model's vision geometry (``vlm.geometry``): the grid views are planned on.
        pad: seconds added on both sides of every request (their eval pads by 10 s).
        min_seconds: shortest window; shorter valid requests (a moment, ``start == end``,
            included) are widened around their centre.

    Which arguments are valid is the protocol's rule (`zoom_agent.protocol.zoom_call`: a
    negative start, a start after the end, NaN, a string, a missing or extra key are
    errors); the tool adds what needs the video: the window is padded and clamped to it
    (`zoom_agent.spans.pad`), widened to ``min_seconds``, and refused when it starts at or
    after the video's end.

    Example:
        >>> from zoom_agent.types import VideoInfo
        >>> info = VideoInfo(path="v.mp4", duration=60, fps=10, num_frames=600, width=640, height=480)
        >>> from zoom_agent.geometry import GEOMETRY
        >>> TemporalZoom(info, Budget(visual_tokens=1024), geometry=GEOMETRY["qwen2_5_vl"]).zoom(12, 18.5).text
        'zoomed 12.0-18.5 s: 12 frames at 420x308'
    """

    def __init__(
        self,
        source: VideoSource | VideoInfo,
        budget: Budget | None = None,
        *,
        geometry: VisionGeometry,
        pad: float = 0.0,
        min_seconds: float = 1.0,
    ) -> None:
        self.info: VideoInfo = source if isinstance(source, VideoInfo) else source.info
        self.budget = budget or Budget()
        self.geometry = geometry
        if pad < 0 or not math.isfinite(pad):
            raise ValueError(f"pad must be a finite number of seconds >= 0, got {pad}")
        if min_seconds < 0 or not math.isfinite(min_seconds):
            raise ValueError(f"min_seconds must be a finite number of seconds >= 0, got {min_seconds}")
        self.pad = pad
        self.min_seconds = min_seconds

    def __call__(self, arguments: Mapping[str, Any]) -> ZoomResult:
        """Run a tool call given as a JSON object (extra or missing keys are errors)."""
        requested = dict(arguments) if isinstance(arguments, Mapping) else {"arguments": arguments}
        return self._plan(arguments, requested, None, None)

    def zoom(
        self, start: object, end: object, *, num_frames: int | None = None, pad: float | None = None
    ) -> ZoomResult:
        """Validate, pad, clamp and plan the window ``[start, end]``.

        Args:
            start, end: seconds as the model wrote them (anything: it is validated here).
            num_frames: frames for the zoomed view (default: the budget's rule, capped at
                ``budget.zoom_max_frames``).
            pad: seconds to widen both sides by (default: the tool's ``pad``).

        Returns:
            A `ZoomResult`; on a bad request ``error`` says what was wrong and ``clip`` is None.
        """
        requested = {"start": start, "end": end}
        return self._plan(requested, requested, num_frames, pad)

    def _plan(
        self, arguments: object, requested: dict[str, Any], num_frames: int | None, padding: float | None
    ) -> ZoomResult:
        window, error = check_zoom_arguments(arguments)
        if window is None:
            return self.error_result(str(error), requested)
        s, e = window
        duration = self.info.duration
        if s >= duration:
            return self.error_result(f"the window {s:g}-{e:g} s lies outside the video (0-{duration:.1f} s)", requested)
        if num_frames is not None and not (
            isinstance(num_frames, int) and 1 <= num_frames <= self.budget.zoom_max_frames
        ):
            return self.error_result(
                f"num_frames must be an integer in 1..{self.budget.zoom_max_frames}, got {num_frames!r}",
                requested,
            )
        span = self._window(s, e, self.pad if padding is None else padding)
        from zoom_agent.planning import plan_clip  # floor 2; imported lazily to keep the tool importable light

        clip = plan_clip(self.info, span, self.budget, self.geometry, max_frames=num_frames, role="zoom")
        note = "" if (s, e) == span.as_tuple() else f" (requested {s:g}-{e:g} s)"
        text = f"zoomed {clip.describe()}{note}"
        return ZoomResult(text=text, clip=clip, requested=requested)

    def zoom_spans(self, spans: Sequence[SpanLike]) -> list[ZoomResult]:
        """Zoom several windows at once under this tool's one budget.

        The windows are merged first; each merged window gets an equal share of the visual
        tokens and of ``zoom_max_frames`` (divide and conquer's pooled fine pass, and the
        zoom reward's verifier).

        Args:
            spans: ``(start, end)`` windows in seconds.

        Returns:
            One `ZoomResult` per merged window (errors included), in time order.
        """
        merged = merge(spans)
        if not merged:
            return []
        n = len(merged)
        budget = self.budget.view(1 / n, zoom_max_frames=max(1, self.budget.zoom_max_frames // n))
        share = TemporalZoom(self.info, budget, geometry=self.geometry, pad=self.pad, min_seconds=self.min_seconds)
        return [share.zoom(s, e) for s, e in merged]

    def _window(self, s: float, e: float, seconds: float) -> Span:
        duration = self.info.duration
        span = pad((s, e), seconds, duration)
        if span.length < self.min_seconds:  # too short to hold 2 frames at the budget's fps
            centre = (span.start + span.end) / 2
            half = min(self.min_seconds, duration) / 2
            lo = min(max(centre - half, 0.0), duration - 2 * half)
            span = Span(start=lo, end=lo + 2 * half)
        return span

    def error_result(self, message: str, requested: dict[str, Any]) -> ZoomResult:
        """A failed call: the text tells the model what was wrong and how long the video is."""
        text = f"{ZOOM_TOOL_NAME} error: {message}. The video lasts {self.info.duration:.1f} s."
        return ZoomResult(text=text, error=message, requested=requested)
