"""The temporal zoom tool: bad model arguments come back as text, good ones as a clip plan."""

from __future__ import annotations

import math

import pytest

from zoom_agent.config import Budget
from zoom_agent.tools import TemporalZoom, ZoomResult
from zoom_agent.types import VideoInfo

INFO = VideoInfo(path="v.mp4", duration=60.0, fps=10.0, num_frames=600, width=640, height=480)
BUDGET = Budget(visual_tokens=1024)


@pytest.fixture
def tool() -> TemporalZoom:
    return TemporalZoom(INFO, BUDGET)


def test_zoom_plans_more_pixels_per_frame_than_the_coarse_view(tool):
    from zoom_agent.planning import plan_clip

    result = tool.zoom(12, 18.5)
    assert result.ok and result.clip is not None and result.error is None
    assert result.text == "zoomed 12.0-18.5 s: 12 frames at 420x308"
    assert result.clip.role == "zoom" and result.span is not None and result.span.as_tuple() == (12.0, 18.5)
    assert all(12.0 <= t <= 18.5 for t in result.clip.timestamps)
    coarse = plan_clip(INFO, INFO.whole, BUDGET)
    assert result.clip.width * result.clip.height > coarse.width * coarse.height
    assert result.clip.visual_tokens <= BUDGET.visual_tokens


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (math.nan, 5, "finite"),
        (1, math.inf, "finite"),
        ("soon", 5, "must be a number"),
        (None, 5, "must be a number"),
        (True, 5, "must be a number"),
        (9, 2, "must not be after end"),
        (4, 4, "zero length"),
        (-10, -2, "outside the video"),
        (70, 80, "outside the video"),
    ],
)
def test_bad_arguments_are_errors_the_model_reads(tool, start, end, message):
    result = tool.zoom(start, end)
    assert not result.ok and result.clip is None and message in (result.error or "")
    assert result.text.startswith("temporal_zoom error:") and "60.0 s" in result.text  # says how long the video is
    assert result.requested == {"start": start, "end": end}


def test_partly_outside_windows_are_clamped_and_say_so(tool):
    result = tool.zoom(-5, 1000)
    assert result.ok and result.span is not None and result.span.as_tuple() == (0.0, 60.0)
    assert "(requested -5-1000 s)" in result.text


def test_short_windows_widen_to_the_minimum_and_pad_widens_both_sides():
    short = TemporalZoom(INFO, BUDGET, min_seconds=2.0).zoom(10.0, 10.5)
    assert short.span is not None and short.span.as_tuple() == (9.25, 11.25)
    padded = TemporalZoom(INFO, BUDGET, pad=10.0).zoom(5, 20)
    assert padded.span is not None and padded.span.as_tuple() == (0.0, 30.0)


def test_tool_call_objects_need_exactly_start_and_end(tool):
    assert tool({"start": 1, "end": 3}).ok
    extra = tool({"start": 1, "end": 3, "fps": 30})
    assert not extra.ok and "unexpected keys ['fps']" in (extra.error or "")
    missing = tool({"start": 1})
    assert not missing.ok and "missing keys ['end']" in (missing.error or "")
    assert not tool([1, 3]).ok  # type: ignore[arg-type]


def test_num_frames_is_checked(tool):
    assert tool.zoom(1, 9, num_frames=4).clip is not None
    assert tool.zoom(1, 9, num_frames=4).clip.num_frames == 4  # type: ignore[union-attr]
    assert "num_frames" in (tool.zoom(1, 9, num_frames=0).error or "")


def test_zoom_spans_merges_and_splits_one_budget(tool):
    results = tool.zoom_spans([(30, 40), (5, 10), (8, 12)])
    assert [r.span.as_tuple() for r in results if r.span] == [(5.0, 12.0), (30.0, 40.0)]
    assert sum(r.clip.visual_tokens for r in results if r.clip) <= BUDGET.visual_tokens
    assert tool.zoom_spans([]) == []
    trace = results[1].trace(2, 1)
    assert (trace.round, trace.call, trace.clip) == (2, 1, results[1].clip)


def test_bad_pad_is_a_programming_error():
    with pytest.raises(ValueError, match="pad"):
        TemporalZoom(INFO, BUDGET, pad=-1)


def test_langchain_adapter_returns_text_and_the_result_as_artifact(tool):
    lc = tool.as_langchain_tool()
    assert lc.name == "temporal_zoom" and set(lc.args) == {"start", "end"}
    message = lc.invoke({"type": "tool_call", "id": "c1", "name": "temporal_zoom", "args": {"start": 2, "end": 6}})
    assert message.content.startswith("zoomed 2.0-6.0 s")
    assert isinstance(message.artifact, ZoomResult) and message.artifact.clip is not None
    bad = lc.invoke({"type": "tool_call", "id": "c2", "name": "temporal_zoom", "args": {"start": 6, "end": 2}})
    assert "must not be after end" in bad.content and bad.artifact.clip is None
