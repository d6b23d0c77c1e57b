"""plan_clip and smart_resize: the token-budget rule V_res = L_v / N (docs/method.md §2).

Hand-computed cases pin the numbers; hypothesis checks the rules over random videos/spans.
"""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from zoom_agent.config import Budget
from zoom_agent.geometry import FAMILIES, GEOMETRY, VisionGeometry
from zoom_agent.planning import plan_clip, smart_resize
from zoom_agent.types import Span, VideoInfo
from zoom_agent.video import VideoError

BUDGET = Budget()  # L_v 8192, 2 fps, 4..768 frames
QWEN25 = GEOMETRY["qwen2_5_vl"]  # 28-px tokens: min 13171 px, max 602112 px per frame
QWEN3 = GEOMETRY["qwen3_vl"]  # 32-px tokens: min 17203 px, max 786432 px per frame


def info(w: int = 1280, h: int = 720, fps: float = 25.0, n: int = 15000) -> VideoInfo:
    return VideoInfo(path="/videos/v.mp4", duration=n / fps, fps=fps, num_frames=n, width=w, height=h)


def span(a: float, b: float) -> Span:
    return Span(start=a, end=b)


# --------------------------------------------------------------------------- smart_resize


def test_smart_resize_hand_cases() -> None:
    # 1280x720 -> 728x1288 on the 28 grid (937,664 px) > 602,112: beta = sqrt(921600/602112)
    # = 1.2372; 720/1.2372 = 581.97 -> 560; 1280/1.2372 = 1034.6 -> 1008.
    assert smart_resize(720, 1280, 28, 13171, 602112) == (560, 1008)
    assert smart_resize(720, 1280, 28, 13171, 16725) == (84, 168)
    # within bounds: only the rounding to the grid
    assert smart_resize(480, 640, 32, 17203, 786432) == (480, 640)
    # too small: scaled up to min_pixels, sides rounded up. 1x1 -> one patch.
    assert smart_resize(48, 64, 28, 13171, 602112) == (112, 140)
    assert smart_resize(1, 1, 28, 784, 784) == (28, 28)
    # a side never floors to 0 (qwen-vl-utils would give 0 here; transformers keeps 28)
    assert smart_resize(10, 1990, 28, 784, 13171)[0] == 28


def test_smart_resize_rejects_extreme_aspect() -> None:
    with pytest.raises(ValueError, match="aspect ratio must be smaller than 200"):
        smart_resize(1, 201, 28, 784, 602112)
    with pytest.raises(ValueError, match="min_pixels"):
        smart_resize(100, 100, 28, 1000, 10)


@given(
    h=st.integers(1, 4000),
    w=st.integers(1, 4000),
    factor=st.sampled_from([28, 32]),
    lo=st.integers(1, 2000),
    hi_tokens=st.integers(1, 2000),
)
@settings(max_examples=300, deadline=None)
def test_smart_resize_matches_qwen_vl_utils(h: int, w: int, factor: int, lo: int, hi_tokens: int) -> None:
    qwen = pytest.importorskip("qwen_vl_utils.vision_process")
    assume(max(h, w) / min(h, w) <= 200)
    max_pixels = hi_tokens * factor * factor
    min_pixels = min(lo * factor, max_pixels)
    theirs = qwen.smart_resize(h, w, factor, min_pixels=min_pixels, max_pixels=max_pixels)
    ours = smart_resize(h, w, factor, min_pixels, max_pixels)
    if min(theirs) > 0:  # where qwen-vl-utils floors a side to 0 we keep one patch
        assert ours == theirs
    assert ours[0] % factor == 0 and ours[1] % factor == 0 and min(ours) >= factor


# --------------------------------------------------------------------------- hand-computed plans


def test_qwen25_coarse_whole_video() -> None:
    # 600 s at 25 fps: 15000 frames / 25 * 2 fps = 1200 -> cap 768. 384 temporal patches;
    # share = 8192 * 28^2 / 384 = 16725.3 px -> 84x168 (3x6 patches); 384 * 18 = 6912 tokens.
    ref = plan_clip(info(), span(0, 600), BUDGET, QWEN25)
    assert ref.num_frames == 768 and ref.role == "coarse"
    assert ref.frame_indices[:3] == (0, 20, 39) and ref.frame_indices[-1] == 14999
    assert (ref.height, ref.width, ref.visual_tokens) == (84, 168, 6912)
    assert ref.timestamps[1] == 20 / 25 and ref.num_source_frames == 15000 and ref.fps == 25


def test_qwen25_zoom_ten_seconds() -> None:
    # 300-310 s: frames 7500..7750 (251) / 25 * 2 = 20.08 -> 20 frames, 10 temporal patches;
    # share 8192 * 784 / 10 = 642,253 px -> max_pixels 602,112 -> 560x1008 = 20x36 patches;
    # 10 * 720 = 7200 tokens.
    ref = plan_clip(info(), span(300, 310), BUDGET, QWEN25, role="zoom")
    assert ref.num_frames == 20
    assert ref.frame_indices[:3] == (7500, 7513, 7526) and ref.frame_indices[-1] == 7750
    assert (ref.height, ref.width, ref.visual_tokens) == (560, 1008, 7200)
    assert ref.span == span(300, 310)


def test_qwen3_coarse_and_native_cap() -> None:
    # 640x480, 30 fps, 60 s: 120 frames, 60 temporal patches; share 8192 * 32^2 / 60 =
    # 139,810 px -> 320x416 (10x13 patches); 60 * 130 = 7800 tokens.
    vid = info(640, 480, 30.0, 1800)
    coarse = plan_clip(vid, span(0, 60), BUDGET, QWEN3)
    assert coarse.num_frames == 120 and coarse.frame_indices[-1] == 1799
    assert (coarse.height, coarse.width, coarse.visual_tokens) == (320, 416, 7800)
    # zoom 10-14 s: frames 300..420 (121) / 30 * 2 = 8.07 -> 8 frames; share 2,097,152 px is
    # capped at the native 480x640: no upscaling; 4 * 15 * 20 = 1200 tokens.
    zoom = plan_clip(vid, span(10, 14), BUDGET, QWEN3, role="zoom")
    assert zoom.num_frames == 8 and zoom.frame_indices[0] == 300 and zoom.frame_indices[-1] == 420
    assert (zoom.height, zoom.width, zoom.visual_tokens) == (480, 640, 1200)


def test_zoom_has_fewer_frames_at_more_pixels() -> None:
    for geometry in (QWEN25, QWEN3):
        coarse = plan_clip(info(), span(0, 600), BUDGET, geometry)
        zoom = plan_clip(info(), span(290, 310), BUDGET, geometry, role="zoom")
        assert zoom.num_frames < coarse.num_frames
        assert zoom.width * zoom.height > 4 * coarse.width * coarse.height
        assert max(zoom.visual_tokens, coarse.visual_tokens) <= BUDGET.visual_tokens


def test_spans_are_clamped_and_never_empty() -> None:
    past = plan_clip(info(), span(700, 800), BUDGET, QWEN25)  # wholly after the end
    assert past.span == span(600, 600) and past.frame_indices == (14999,)
    assert past.num_frames == 1 and past.visual_tokens == 720  # one temporal patch at 560x1008
    point = plan_clip(info(), span(10.01, 10.01), BUDGET, QWEN25)  # between frames 250 and 251
    assert point.frame_indices == (250,)
    before = plan_clip(info(), span(-50, -1), BUDGET, QWEN25)
    assert before.span == span(0, 0) and before.frame_indices == (0,)
    wide = plan_clip(info(), span(-5, 1e9), BUDGET, QWEN25, max_frames=16)
    assert wide.span == span(0, 600) and wide.frame_indices[0] == 0 and wide.frame_indices[-1] == 14999


def test_few_source_frames_and_float_edges() -> None:
    # 1.0-1.1 s: frames 25..27 (3 distinct); min_frames 4 -> cut to 3 -> floored to 2
    assert plan_clip(info(), span(1.0, 1.1), BUDGET, QWEN25).frame_indices == (25, 27)
    # 0.12 * 25 = 3.0000000000000004 in floating point: frame 3 is still inside
    assert plan_clip(info(), span(0.12, 0.2), BUDGET, QWEN25).frame_indices == (3, 5)
    # a one-frame video
    one = plan_clip(info(n=1), span(0, 1), BUDGET, QWEN25)
    assert one.frame_indices == (0,) and one.num_frames == 1


def test_fps_and_caps() -> None:
    assert plan_clip(info(), span(0, 100), BUDGET, QWEN25, fps=0.5).num_frames == 50
    assert plan_clip(info(), span(0, 100), BUDGET, QWEN25, fps=1, max_frames=31).num_frames == 30
    assert plan_clip(info(), span(0, 600), BUDGET, QWEN25, role="zoom").num_frames == 256
    assert plan_clip(info(), span(0, 600), BUDGET, QWEN25, role="context").num_frames == 768
    assert plan_clip(info(), span(0, 600), BUDGET, QWEN25, max_frames=1).num_frames == 1
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="fps must be a positive finite number"):
            plan_clip(info(), span(0, 10), BUDGET, QWEN25, fps=bad)
    with pytest.raises(ValueError, match="max_frames must be >= 1"):
        plan_clip(info(), span(0, 10), BUDGET, QWEN25, max_frames=0)


def test_extreme_aspect_ratio_is_a_video_error() -> None:
    with pytest.raises(VideoError, match=r"/videos/v\.mp4: .*aspect ratio"):
        plan_clip(info(w=1000, h=4), span(0, 1), BUDGET, QWEN25)


# --------------------------------------------------------------------------- properties

Case = tuple[VideoInfo, Span, Budget, VisionGeometry, str, int | None]
sizes = st.tuples(st.integers(1, 3840), st.integers(1, 2160)).filter(lambda s: max(s) / min(s) <= 200)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    w, h = draw(sizes)
    fps = draw(st.floats(1.0, 120.0))
    n = draw(st.integers(1, 300_000))
    vid = VideoInfo(path="/v.mp4", duration=n / fps, fps=fps, num_frames=n, width=w, height=h)
    a = draw(st.floats(-100.0, vid.duration + 100.0))
    b = draw(st.floats(-100.0, vid.duration + 100.0))
    geometry = GEOMETRY[draw(st.sampled_from(FAMILIES))]
    budget = Budget(visual_tokens=draw(st.sampled_from([256, 2048, 8192, 16384])))
    role = draw(st.sampled_from(["coarse", "zoom", "context"]))
    cap = draw(st.one_of(st.none(), st.integers(1, 1024)))
    return vid, span(min(a, b), max(a, b)), budget, geometry, role, cap


def thin_case(w: int, h: int, fps: float, n: int, family: str, tokens: int) -> Case:
    """A very wide (or tall) video, the shape where the thin-frame rule once failed."""
    vid = VideoInfo(path="/v.mp4", duration=n / fps, fps=fps, num_frames=n, width=w, height=h)
    return vid, vid.whole, Budget(visual_tokens=tokens), GEOMETRY[family], "coarse", None  # type: ignore[index]


# Draws that once failed: the coarse view of a one-token-thin video came out wider than
# its share and its native size, so wider than the zoom. The issue's: 28x1428 coarse frames
# and 28x476 zoomed ones from a 476x3 video; two more found the same way.
THIN_ISSUE = thin_case(476, 3, 30.0, 30000, "qwen2_5_vl", 2048)
THIN_WIDE = thin_case(1155, 9, 90.94070029470964, 131338, "qwen2_5_vl", 8192)
THIN_TALL = thin_case(9, 902, 101.01462225362675, 146275, "qwen3_vl", 8192)


@given(cases())
@example(THIN_ISSUE)
@example(THIN_WIDE)
@example(THIN_TALL)
@settings(max_examples=400, deadline=None)
def test_plan_properties(case: Case) -> None:
    vid, sp, budget, geometry, role, cap = case
    ref = plan_clip(vid, sp, budget, geometry, role=role, max_frames=cap)  # type: ignore[arg-type]
    p, tp, n = geometry.token_side, geometry.temporal_patch, ref.num_frames
    min_pixels, _ = budget.pixel_bounds(geometry)
    idx = ref.frame_indices
    # clamped span; indices distinct, ascending, inside the video and inside the span
    assert 0 <= ref.span.start <= ref.span.end <= vid.duration
    assert all(0 <= i < vid.num_frames for i in idx)
    assert all(a < b for a, b in itertools.pairwise(idx))
    inside = [i for i in range(math.ceil(ref.span.start * vid.fps - 1e-6), vid.num_frames)]
    if inside and inside[0] / vid.fps <= ref.span.end + 1e-6:
        assert all(ref.span.start - 1e-6 <= i / vid.fps <= ref.span.end + 1e-6 for i in idx)
    else:
        assert n == 1  # nothing inside: the nearest frame
    assert ref.timestamps == tuple(i / vid.fps for i in idx)
    # frame count: capped, a multiple of the temporal patch unless below one
    limit = cap if cap is not None else budget.zoom_max_frames if role == "zoom" else budget.max_frames
    assert 1 <= n <= limit and (n % tp == 0 or n < tp)
    # size: on the token grid, never beyond the native size rounded to it (thin frames too)
    assert ref.width % p == 0 and ref.height % p == 0
    native = max(p, round(vid.width / p) * p) * max(p, round(vid.height / p) * p)
    assert ref.width * ref.height <= native
    groups = math.ceil(n / tp)
    assert ref.visual_tokens == groups * (ref.width // p) * (ref.height // p)
    # the budget: a frame never costs more than its share (or the min_pixels floor), thin or not
    share = budget.visual_tokens * p * p / groups
    assert ref.width * ref.height <= max(share, min_pixels)
    if share >= min_pixels:
        assert ref.visual_tokens <= budget.visual_tokens


@given(cases(), st.floats(0.05, 0.5))
@example(THIN_ISSUE, 0.05)
@example(THIN_WIDE, 0.09444350509661648)
@example(THIN_TALL, 0.4976011175340388)
@settings(max_examples=200, deadline=None)
def test_zoom_never_lowers_resolution(case: Case, frac: float) -> None:
    vid, _, budget, geometry, _, _ = case
    coarse = plan_clip(vid, vid.whole, budget, geometry)
    mid = vid.duration / 2
    zoom = plan_clip(vid, span(mid - frac * mid, mid + frac * mid), budget, geometry, role="zoom")
    assert zoom.num_frames <= coarse.num_frames
    assert zoom.width * zoom.height >= coarse.width * coarse.height


def test_thin_frames_fit_their_share() -> None:
    # The issue's draw: 476x3, 1000 s, L_v 2048. Coarse: 768 frames, share 4,181 px, so the
    # 13,171 px floor binds; smart_resize alone gives 28x1428 (3x the native 28x476). The rule
    # gives the whole tokens that fit: 13,171 // 784 = 16 -> 28x448. The zoom (900-1000 s,
    # 200 frames, share 16,056 px) is capped at the native 28x476: never below the coarse.
    vid, _, budget, geometry, _, _ = THIN_ISSUE
    coarse = plan_clip(vid, vid.whole, budget, geometry)
    zoom = plan_clip(vid, span(900, 1000), budget, geometry, role="zoom")
    assert (coarse.num_frames, coarse.height, coarse.width) == (768, 28, 448)
    assert (zoom.num_frames, zoom.height, zoom.width) == (200, 28, 476)
    # 1155x9 at 8192 tokens, 768 frames: share 16,725 px. smart_resize alone gives 28x1456
    # (40,768 px: above the share and the native 28x1148); the rule gives 21 tokens = 28x588.
    vid, _, budget, geometry, _, _ = THIN_WIDE
    coarse = plan_clip(vid, vid.whole, budget, geometry)
    assert (coarse.num_frames, coarse.height, coarse.width) == (768, 28, 588)
    zoom = plan_clip(vid, span(5, 50), budget, geometry, role="zoom")
    assert (zoom.height, zoom.width) == (28, 1148)  # the native width on the grid


def test_geometry_decides_the_grid() -> None:
    # One budget, two models: each plans on its own token side and pixel bounds.
    assert BUDGET.pixel_bounds(QWEN25) == (13171, 602112)
    assert BUDGET.pixel_bounds(QWEN3) == (17203, 786432)
    for geometry in (QWEN25, QWEN3):
        ref = plan_clip(info(), span(0, 600), BUDGET, geometry)
        assert ref.width % geometry.token_side == 0 and ref.height % geometry.token_side == 0
