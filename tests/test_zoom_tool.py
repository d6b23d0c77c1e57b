"""The temporal zoom tool: bad model arguments come back as text, good ones as a clip plan."""

from __future__ import annotations

import math

import pytest

from zoom_agent.config import Budget
from zoom_agent.geometry import GEOMETRY
from zoom_agent.tools import TemporalZoom
from zoom_agent.types import VideoInfo

INFO = VideoInfo(path="v.mp4", duration=60.0, fps=10.0, num_frames=600, width=640, height=480)
BUDGET = Budget(visual_tokens=1024)
QWEN25 = GEOMETRY["qwen2_5_vl"]


@pytest.fixture
def tool() -> TemporalZoom:
    return TemporalZoom(INFO, BUDGET, geometry=QWEN25)


def test_zoom_plans_more_pixels_per_frame_than_the_coarse_view(tool):
    from zoom_agent.planning import plan_clip

    result = tool.zoom(12, 18.5)
    assert result.clip is not None and result.error is None
    assert result.text == "zoomed 12.0-18.5 s: 12 frames at 420x308"
    assert result.clip.role == "zoom" and result.clip.span.as_tuple() == (12.0, 18.5)
    assert all(12.0 <= t <= 18.5 for t in result.clip.timestamps)
    coarse = plan_clip(INFO, INFO.whole, BUDGET, QWEN25)
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
        (9, 2, "start 9 is after end 2"),
        (-10, -2, "start -10 is negative"),
        (-5, 1000, "start -5 is negative"),
        (70, 80, "outside the video"),
        (60, 61, "outside the video"),
    ],
)
def test_bad_arguments_are_errors_the_model_reads(tool, start, end, message):
    result = tool.zoom(start, end)
    assert result.clip is None and message in (result.error or "")
    assert result.text.startswith("temporal_zoom error:") and "60.0 s" in result.text  # says how long the video is
    assert result.requested == {"start": start, "end": end}


def test_windows_past_the_end_are_clamped_and_say_so(tool):
    result = tool.zoom(0, 1000)
    assert result.clip is not None and result.clip.span.as_tuple() == (0.0, 60.0)
    assert "(requested 0-1000 s)" in result.text


def test_short_windows_widen_to_the_minimum_and_pad_widens_both_sides():
    short = TemporalZoom(INFO, BUDGET, geometry=QWEN25, min_seconds=2.0).zoom(10.0, 10.5)
    assert short.clip is not None and short.clip.span.as_tuple() == (9.25, 11.25)


@pytest.mark.parametrize(("moment", "window"), [(4.0, (3.5, 4.5)), (0.0, (0.0, 1.0)), (59.8, (59.0, 60.0))])
def test_a_moment_is_widened_to_the_minimum_window_around_it(tool, moment, window):
    result = tool.zoom(moment, moment)
    assert result.clip is not None and result.clip.span.as_tuple() == window
    assert f"(requested {moment:g}-{moment:g} s)" in result.text


def test_padding_widens_both_sides_within_the_video():
    padded = TemporalZoom(INFO, BUDGET, geometry=QWEN25, pad=10.0).zoom(5, 20)
    assert padded.clip is not None and padded.clip.span.as_tuple() == (0.0, 30.0)


def test_tool_call_objects_need_exactly_start_and_end(tool):
    assert tool({"start": 1, "end": 3}).error is None
    extra = tool({"start": 1, "end": 3, "fps": 30})
    assert extra.clip is None and "unexpected argument(s): fps" in (extra.error or "")
    assert extra.requested == {"start": 1, "end": 3, "fps": 30}
    missing = tool({"start": 1})
    assert missing.clip is None and "missing argument(s): end" in (missing.error or "")
    listed = tool([1, 3])  # type: ignore[arg-type]
    assert listed.clip is None and "must be a JSON object" in (listed.error or "")


def test_num_frames_is_checked(tool):
    assert tool.zoom(1, 9, num_frames=4).clip is not None
    assert tool.zoom(1, 9, num_frames=4).clip.num_frames == 4  # type: ignore[union-attr]
    assert "num_frames" in (tool.zoom(1, 9, num_frames=0).error or "")


def test_zoom_spans_merges_and_splits_one_budget(tool):
    results = tool.zoom_spans([(30, 40), (5, 10), (8, 12)])
    assert [r.clip.span.as_tuple() for r in results if r.clip] == [(5.0, 12.0), (30.0, 40.0)]
    assert sum(r.clip.visual_tokens for r in results if r.clip) <= BUDGET.visual_tokens
    assert tool.zoom_spans([]) == []
    trace = results[1].trace(2, 1)
    assert (trace.round, trace.call, trace.clip) == (2, 1, results[1].clip)


@pytest.mark.parametrize("setting", [{"pad": -1}, {"pad": math.nan}, {"min_seconds": -1}, {"min_seconds": math.inf}])
def test_bad_pad_or_minimum_is_a_programming_error(setting):
    with pytest.raises(ValueError, match=next(iter(setting))):
        TemporalZoom(INFO, BUDGET, geometry=QWEN25, **setting)
