"""The token-budget rule V_res = L_v / N (docs/method.md §2): which frames of a span a view
holds and at what size, decided from metadata alone (no decoding).

- `smart_resize`: qwen-vl-utils' rounding of a frame size to the patch grid.
- `plan_clip`: a time span, a `Budget` and the model's `VisionGeometry` -> a `ClipRef`
  (frames, size, visual tokens), which `zoom_agent.video.VideoSource.read_clip` materialises.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

from zoom_agent import spans
from zoom_agent.config import Budget
from zoom_agent.geometry import VisionGeometry
from zoom_agent.types import ClipRef, Span, VideoInfo
from zoom_agent.video import VideoError

MAX_ASPECT_RATIO = 200  # qwen-vl-utils MAX_RATIO
_FRAME_EPS = 1e-6  # frames: float slack when a span edge falls exactly on a frame time


def _round_by(x: float, f: int) -> int:
    return round(x / f) * f


def _ceil_by(x: float, f: int) -> int:
    return math.ceil(x / f) * f


def _floor_by(x: float, f: int) -> int:
    return math.floor(x / f) * f


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Round a frame size to multiples of ``factor`` with its area in [min_pixels, max_pixels].

    The rule of qwen-vl-utils' ``smart_resize``: round each side to the nearest multiple of
    ``factor`` (at least ``factor``); if the area exceeds ``max_pixels`` scale down keeping
    the aspect ratio and floor to the factor; if it is below ``min_pixels`` scale up and
    ceil. One difference, as in transformers' copy: a side never floors to 0 (it stays
    ``factor``), where qwen-vl-utils would return 0 for tiny ``max_pixels``.

    Args:
        height, width: source size in pixels (> 0).
        factor: the patch side after merging (28 for Qwen2.5-VL, 32 for Qwen3-VL).
        min_pixels, max_pixels: area bounds, ``min_pixels <= max_pixels``.

    Returns:
        (height, width), both multiples of ``factor``.

    Raises:
        ValueError: a non-positive size, bounds out of order, or an aspect ratio above 200.
    """
    if height <= 0 or width <= 0 or factor <= 0:
        raise ValueError(f"smart_resize needs positive sizes, got {height}x{width}, factor {factor}")
    if min_pixels > max_pixels:
        raise ValueError(f"min_pixels {min_pixels} must be <= max_pixels {max_pixels}")
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ValueError(
            f"absolute aspect ratio must be smaller than {MAX_ASPECT_RATIO}, "
            f"got {max(height, width) / min(height, width)}"
        )
    h_bar = max(factor, _round_by(height, factor))
    w_bar = max(factor, _round_by(width, factor))
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, _floor_by(height / beta, factor))
        w_bar = max(factor, _floor_by(width / beta, factor))
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = _ceil_by(height * beta, factor)
        w_bar = _ceil_by(width * beta, factor)
    return h_bar, w_bar


def _source_range(info: VideoInfo, span: Span) -> tuple[int, int]:
    """First and last source frame whose time ``index / fps`` lies in the (clamped) span."""
    last_frame = info.num_frames - 1
    first = max(0, math.ceil(span.start * info.fps - _FRAME_EPS))
    last = min(last_frame, math.floor(span.end * info.fps + _FRAME_EPS))
    if first > last:  # no frame inside: the one nearest the span's middle
        mid = min(max(round((span.start + span.end) / 2 * info.fps), 0), last_frame)
        return mid, mid
    return first, last


def _frame_count(distinct: int, src_fps: float, rate: float, budget: Budget, cap: int, tp: int) -> int:
    """N: frames at ``rate`` over the span, bounded, and a multiple of the temporal patch ``tp``."""
    n = max(distinct / src_fps * rate, _ceil_by(budget.min_frames, tp))  # qwen-vl-utils smart_nframes
    whole = math.floor(min(n, cap, distinct))
    return max(1, _floor_by(whole, tp) if whole >= tp else whole)


def _spread(first: int, last: int, n: int) -> tuple[int, ...]:
    if n == 1:
        return (round((first + last) / 2),)
    return tuple(int(i) for i in np.linspace(first, last, n).round())  # as qwen-vl-utils


def plan_clip(
    info: VideoInfo,
    span: Span,
    budget: Budget,
    geometry: VisionGeometry,
    *,
    fps: float | None = None,
    max_frames: int | None = None,
    role: Literal["coarse", "zoom", "context"] = "coarse",
) -> ClipRef:
    """Plan a clip of ``span`` under the visual-token budget: V_res = L_v / N (docs/method.md §2).

    ``p`` below is ``geometry.token_side`` (pixels per visual-token side: 28 Qwen2.5-VL,
    32 Qwen3-VL) and ``tp`` is ``geometry.temporal_patch``: the model's, never the budget's.

    Rules, in order:
    1. The span is clamped to ``[0, info.duration]``. Its source frames are those whose time
       ``index / info.fps`` lies inside it. If none does (a zero-length span between two
       frames, or one at the very end), the plan holds the one frame nearest the span's middle.
    2. N = (source frames in the span) / info.fps * ``fps`` (default ``budget.fps``), raised to
       ``budget.min_frames`` (rounded up to tp), cut to ``max_frames`` (default
       ``budget.zoom_max_frames`` for role "zoom", else ``budget.max_frames``) and to the
       number of distinct source frames, then floored to a multiple of tp (as qwen-vl-utils'
       smart_nframes). When that bound is below tp, N is that bound itself (at least 1).
    3. Frame indices: ``linspace(first, last, N)`` rounded (as qwen-vl-utils), so all lie
       inside the span and are distinct; N = 1 takes the middle frame. Timestamps are
       ``index / info.fps`` (for a variable-frame-rate file: the grid times, see VideoSource).
    4. Pixels per frame: the budget's share per temporal patch, ``L_v * p^2 / ceil(N / tp)``
       (= tp * L_v * p^2 / N when N is a multiple of tp), clamped to the budget's
       `Budget.pixel_bounds` for this geometry, then capped at the source's native size
       rounded to the grid (a zoom never upsamples beyond that rounding).
    5. (height, width) = smart_resize(native size, factor=p) within that area, except for
       thin frames: where one side sits at a single token (p pixels) and smart_resize's
       scaling, which assumes both sides shrink or grow together, would overshoot the area,
       the long side is the most whole tokens that fit the area (never beyond its native
       length on the grid). visual_tokens = ceil(N / tp) * (height / p) * (width / p).

    So a zoomed span gets fewer frames at no fewer pixels each under the same budget.
    visual_tokens <= L_v, except (a) when the min_pixels floor binds (many frames on a small
    budget) and (b) smart_resize's rounding up to reach min_pixels: there a frame may exceed
    its share by at most one token row and column.

    Args:
        info: the source's metadata (`VideoSource.info`).
        span: the time window in seconds; clamped, never rejected.
        budget: the visual-token budget and its rules.
        geometry: the model's vision geometry (``vlm.geometry``).
        fps: sampling rate of this view (frames per second of video); default budget.fps.
        max_frames: frame cap; default by role as in rule 2.
        role: "coarse" (whole video), "zoom" (a predicted span) or "context" (low-res global view).

    Returns:
        A ClipRef for `VideoSource.read_clip`.

    Raises:
        ValueError: ``fps`` not a positive finite number or ``max_frames`` below 1.
        VideoError: the video's aspect ratio exceeds 200.
    """
    rate = budget.fps if fps is None else float(fps)
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"plan_clip fps must be a positive finite number, got {fps!r}")
    default_cap = budget.zoom_max_frames if role == "zoom" else budget.max_frames
    cap = default_cap if max_frames is None else max_frames
    if cap < 1:
        raise ValueError(f"plan_clip max_frames must be >= 1, got {max_frames!r}")
    clamped = spans.clamp(span, info.duration)
    first, last = _source_range(info, clamped)
    n = _frame_count(last - first + 1, info.fps, rate, budget, cap, geometry.temporal_patch)
    indices = floor_capped(_spread(first, last, n), budget)
    return plan_frames(info, clamped, indices, budget, geometry, role)


def floor_capped(indices: tuple[int, ...], budget: Budget) -> tuple[int, ...]:
    """Frames kept under `Budget.floor_frame_cap`: at most ``int(2 * L_v / min_frame_tokens)``
    (their ``fetch_video``: ``int(total_pixels / (min_pixels * 1.05) * 2)``, 975 at 8,192),
    picked by ``linspace`` over the planned ones as their code does; unchanged when off."""
    if not budget.floor_frame_cap:
        return indices
    most = max(1, int(2 * budget.visual_tokens / budget.min_frame_tokens))
    if len(indices) <= most:
        return indices
    return tuple(indices[int(i)] for i in np.linspace(0, len(indices) - 1, most).round())


def plan_frames(
    info: VideoInfo,
    span: Span,
    indices: tuple[int, ...],
    budget: Budget,
    geometry: VisionGeometry,
    role: Literal["coarse", "zoom", "context"],
    windows: tuple[Span, ...] = (),
) -> ClipRef:
    """A clip of the given source frames: rules 4 and 5 of `plan_clip` (one frame size for
    ``indices`` under ``budget``). Divide and conquer's chunks of an already sampled video,
    and the pooled clips, are planned with it."""
    p, tp = geometry.token_side, geometry.temporal_patch
    groups = math.ceil(len(indices) / tp)
    min_pixels, max_pixels = budget.pixel_bounds(geometry)
    share = budget.visual_tokens * p * p / groups  # V_res = L_v / N, in pixels per frame
    native_h, native_w = max(p, _round_by(info.height, p)), max(p, _round_by(info.width, p))
    area = int(min(min(max(share, min_pixels), max_pixels), native_h * native_w))
    try:
        height, width = smart_resize(info.height, info.width, p, min(min_pixels, area), area)
    except ValueError as e:
        raise VideoError(f"{info.path}: {e}; expected a frame aspect ratio of at most 200") from e
    height, width = _fit_thin(height, width, area, p, native_h, native_w)
    return ClipRef(
        path=info.path,
        span=span,
        frame_indices=indices,
        timestamps=tuple(i / info.fps for i in indices),
        fps=info.fps,
        num_source_frames=info.num_frames,
        width=width,
        height=height,
        visual_tokens=groups * (height // p) * (width // p),
        role=role,
        windows=windows,
    )


def plan_pooled_clip(
    info: VideoInfo,
    windows: Sequence[Span],
    sampled: ClipRef,
    budget: Budget,
    geometry: VisionGeometry,
) -> ClipRef:
    """ONE clip holding the frames of several windows, at one size (their fine pass and verifier).

    Their code (``src_eval/my_qwen_utils.py::fetch_video`` with ``timestamps``, and the zoom
    verifier in training) keeps the frames of the already sampled video (``sampled``, the
    coarse view) that fall inside any window, drops repeats, takes ``linspace`` down to
    ``budget.zoom_max_frames``, and resizes all of them once under ``budget``
    (V_res = L_v / N over the pooled N). Windows should already be padded and clamped.

    Args:
        info: the source's metadata.
        windows: the time windows, in seconds (merged and sorted here).
        sampled: the view whose frames are pooled (the coarse clip of the whole video).
        budget: the pooled clip's budget (their fine pass: half of L_v; at most 256 frames).
        geometry: the model's vision geometry.

    Returns:
        A ClipRef with role "zoom", ``span`` the hull of the windows and ``windows`` the
        merged windows; a window that holds no sampled frame contributes the sampled frame
        nearest its middle.

    Raises:
        ValueError: no window.
    """
    merged = [Span(start=a, end=b) for a, b in spans.merge(spans.clamp(w, info.duration) for w in windows)]
    if not merged:
        raise ValueError(f"plan_pooled_clip needs at least one window inside the video, got {list(windows)!r}")
    chosen: set[int] = set()
    for w in merged:
        pairs = list(zip(sampled.timestamps, sampled.frame_indices, strict=True))
        inside = [i for t, i in pairs if w.start <= t <= w.end]
        if not inside:  # a window between two sampled frames: the one nearest its middle
            mid = (w.start + w.end) / 2
            inside = [min(pairs, key=lambda pair: abs(pair[0] - mid))[1]]
        chosen.update(inside)
    frames = tuple(sorted(chosen))
    if len(frames) > budget.zoom_max_frames:
        frames = tuple(frames[int(i)] for i in np.linspace(0, len(frames) - 1, budget.zoom_max_frames).round())
    hull = Span(start=merged[0].start, end=merged[-1].end)
    return plan_frames(info, hull, frames, budget, geometry, "zoom", windows=tuple(merged))


def _fit_thin(height: int, width: int, area: int, p: int, native_h: int, native_w: int) -> tuple[int, int]:
    """Rule 5's exception: a frame one token thin keeps its long side within ``area``.

    smart_resize scales both sides by one factor and then keeps each side at least one
    token; for a frame thinner than one token that keeps the short side at ``p`` while the
    long side grows by the full factor (a 1155x9 source planned at 16,725 px came out
    1456x28 = 40,768 px, above its share and its native 1148x28), so a zoom with a larger
    share could come out smaller than the coarse view.
    """
    if height * width <= area or (height > p and width > p):
        return height, width
    tokens = max(1, area // (p * p))  # whole tokens along the long side
    if height == p and width > p:
        return height, min(tokens * p, max(native_w, p))
    if width == p and height > p:
        return min(tokens * p, max(native_h, p)), width
    return height, width


def largest_clip_tokens(budget: Budget, geometry: VisionGeometry) -> int:
    """An upper bound on the visual tokens of any one clip `plan_clip` gives under ``budget``.

    Rule 4 keeps a clip within L_v unless the per-frame floor binds: then each temporal
    patch costs about ``min_pixels`` (one token row and column more after smart_resize's
    rounding up, for frames up to about 17:1), at most ``ceil(frames / tp)`` times, with
    frames the larger of the coarse and zoom caps. The launcher sizes vLLM's encoder cache
    from this (`zoom_agent.serve`): a video above the cache is refused.
    """
    p, tp = geometry.token_side, geometry.temporal_patch
    min_pixels, _ = budget.pixel_bounds(geometry)
    side = math.isqrt(math.ceil(min_pixels / (p * p))) + 2
    frames = max(budget.max_frames, budget.zoom_max_frames)
    return max(budget.visual_tokens, math.ceil(frames / tp) * side * side)
