"""The video engine: metadata, frame-accurate sampling, a shared frame cache, and the
token-budget rule V_res = L_v / N of docs/METHOD.md §2.

- `plan_clip` turns a time span and a `Budget` into a `ClipRef` (which frames, what size,
  how many visual tokens) without touching the file.
- `VideoSource` (one per file, shared through `open_video`) reads the container's metadata
  without decoding, and decodes exactly the frames a `ClipRef` names, pixel-identical to a
  sequential decode, touching only the GOPs that hold them (see `zoom_agent._decode`).

Decoding uses PyAV (FFmpeg), whose RGB conversion gives the same pixels as OpenCV's
``VideoCapture.read``; OpenCV cross-checks the metadata and resizes. Both are imported
lazily, so `import zoom_agent.video` stays light.

"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path
from typing import Literal

import numpy as np

from zoom_agent import spans
from zoom_agent._frame_cache import DecodeStats, FrameCache, resize
from zoom_agent.config import Budget
from zoom_agent.types import ClipRef, Span, VideoInfo

MAX_ASPECT_RATIO = 200  # qwen-vl-utils MAX_RATIO
MAX_OPEN_SOURCES = 64  # open_video keeps this many files open (LRU)
_FRAME_EPS = 1e-6  # frames: float slack when a span edge falls exactly on a frame time


class VideoError(ValueError):
    """A video file cannot be used; the message names the path and what was expected."""


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


def _frame_count(distinct: int, src_fps: float, rate: float, budget: Budget, cap: int) -> int:
    """N: frames at ``rate`` over the span, bounded, and a multiple of the temporal patch."""
    tp = budget.temporal_patch
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
    *,
    fps: float | None = None,
    max_frames: int | None = None,
    role: Literal["coarse", "zoom", "context"] = "coarse",
) -> ClipRef:
    """Plan a clip of ``span`` under the visual-token budget: V_res = L_v / N (METHOD.md §2).

    Rules, in order:
    1. The span is clamped to ``[0, info.duration]``. Its source frames are those whose time
       ``index / info.fps`` lies inside it. If none does (a zero-length span between two
       frames, or one at the very end), the plan holds the one frame nearest the span's middle.
    2. N = (source frames in the span) / info.fps * ``fps`` (default ``budget.fps``), raised to
       ``budget.min_frames`` (rounded up to the temporal patch), cut to ``max_frames`` (default
       ``budget.zoom_max_frames`` for role "zoom", else ``budget.max_frames``) and to the
       number of distinct source frames, then floored to a multiple of
       ``budget.temporal_patch`` (as qwen-vl-utils' smart_nframes). When that bound is below
       one temporal patch N is that bound itself (at least 1).
    3. Frame indices: ``linspace(first, last, N)`` rounded (as qwen-vl-utils), so all lie
       inside the span and are distinct; N = 1 takes the middle frame. Timestamps are
       ``index / info.fps`` (for a variable-frame-rate file: the grid times, see VideoSource).
    4. Pixels per frame: the budget's share per temporal patch, ``L_v * patch^2 / ceil(N /
       temporal_patch)`` (= temporal_patch * L_v * patch^2 / N when N is a multiple of it),
       clamped to [min_pixels, max_pixels], then capped at the source's native size rounded to
       the patch grid (a zoom never upsamples beyond that rounding).
    5. (height, width) = smart_resize(native size, factor=patch) within that area;
       visual_tokens = ceil(N / temporal_patch) * (height / patch) * (width / patch).

    So a zoomed span gets fewer frames at more pixels each under the same budget.
    visual_tokens <= L_v, except (a) when the min_pixels floor binds (many frames on a small
    budget) and (b) smart_resize's rounding up to reach min_pixels: there a frame may exceed
    its share by at most one patch row and column.

    Args:
        info: the source's metadata (`VideoSource.info`).
        span: the time window in seconds; clamped, never rejected.
        budget: the visual-token budget and its rules.
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
    n = _frame_count(last - first + 1, info.fps, rate, budget, cap)
    indices = _spread(first, last, n)
    p, groups = budget.patch, math.ceil(n / budget.temporal_patch)
    share = budget.visual_tokens * p * p / groups  # V_res = L_v / N, in pixels per frame
    native = max(p, _round_by(info.height, p)) * max(p, _round_by(info.width, p))
    area = int(min(min(max(share, budget.min_pixels), budget.max_pixels), native))
    try:
        height, width = smart_resize(info.height, info.width, p, min(budget.min_pixels, area), area)
    except ValueError as e:
        raise VideoError(f"{info.path}: {e}; expected a frame aspect ratio of at most 200") from e
    return ClipRef(
        path=info.path,
        span=clamped,
        frame_indices=indices,
        timestamps=tuple(i / info.fps for i in indices),
        fps=info.fps,
        num_source_frames=info.num_frames,
        width=width,
        height=height,
        visual_tokens=groups * (height // p) * (width // p),
        role=role,
    )


@dataclass(frozen=True, eq=False)
class Clip:
    """Decoded frames: ``frames`` (N, H, W, 3) uint8 RGB; ``timestamps[i] = frame_indices[i] / fps``."""

    frames: np.ndarray
    timestamps: tuple[float, ...]
    frame_indices: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.frame_indices)


def _resolve(path: str | Path) -> Path:
    try:
        p = Path(path).expanduser().resolve()
    except (TypeError, ValueError, OSError) as e:
        raise VideoError(f"{path!r}: not a usable path ({e}); expected a video file path") from e
    if not p.exists():
        raise VideoError(f"{p}: no such file; expected a video file")
    if p.is_dir():
        raise VideoError(f"{p}: is a directory; expected a video file")
    if not p.is_file():
        raise VideoError(f"{p}: not a regular file; expected a video file")
    return p


class VideoSource:
    """One open video file: metadata, frame reads, and a bounded frame cache. Thread-safe.

    - ``info`` comes from the container (PyAV stream data, cross-checked with OpenCV; see
      ``notes``) and never needs a decode, even for a 10-hour file.
    - Reads decode only the GOPs that hold requested frames: one seek to a GOP's keyframe,
      then sequential decoding through every requested frame up to the next GOP that has
      one (dense frames share a pass; far-apart frames each get a seek, chosen from the
      container's keyframe index). Returned frames are pixel-identical to a sequential
      decode (OpenCV ``read`` loop, BGR reordered to RGB) at the same indices.
    - Decoded frames go into an LRU cache bounded by ``cache_bytes``, keyed by frame index,
      so a zoom after a coarse pass decodes only frames it has not seen.
    - One lock guards the decoder: calls from several threads (or ``asyncio.to_thread``)
      are safe and take turns on this file; different files decode in parallel.

    Frame indices and times: index ``i`` is shown at ``i / info.fps``. For a variable-frame-rate
    file (``vfr``), indices are slots of a constant grid at the average rate (num_frames /
    duration): index ``i`` returns the frame on screen at ``i / fps`` (within half a slot), so
    timestamps stay true times; frames shorter than a slot may never be returned, longer ones
    repeat. Files without timestamps (raw streams) are read in decode order from the start.

    Missing frames: if the container claims frames the file does not hold (truncated or
    lying headers), reads return only the frames that exist (``Clip.frame_indices`` says
    which) and raise VideoError only when none of the requested frames can be decoded.
    """

    def __init__(self, path: str | Path, *, cache_bytes: int = 512 * 2**20) -> None:
        from zoom_agent import _decode

        self.path = _resolve(path)
        try:
            probe, container = _decode.probe(self.path)
            self._decoder = _decode.FrameDecoder(self.path, probe, container)
        except _decode.MediaError as e:
            raise VideoError(f"{self.path}: {e}") from e
        n, fps, w, h = probe.num_frames, probe.fps, probe.width, probe.height
        path_s = str(self.path)
        self._info = VideoInfo(path=path_s, duration=n / fps, fps=fps, num_frames=n, width=w, height=h)
        self.notes: tuple[str, ...] = probe.notes
        self.vfr: bool = probe.vfr
        self._cache = FrameCache(max(0, cache_bytes))
        self._lock = threading.Lock()

    @property
    def info(self) -> VideoInfo:
        """Container metadata (no decode)."""
        return self._info

    @property
    def stats(self) -> DecodeStats:
        """Decode counters (frames decoded, seeks, cache hits), for tests and benchmarks."""
        return self._decoder.stats

    def __repr__(self) -> str:
        i = self._info
        return f"VideoSource({str(self.path)!r}, {i.width}x{i.height}, {i.num_frames} frames @ {i.fps:g} fps)"

    def close(self) -> None:
        """Release the file; later reads fail. Sources from `open_video` are shared: don't."""
        with self._lock:
            self._decoder.close()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, times: Sequence[float]) -> Clip:
        """Frames nearest the given times (seconds; clamped to the video).

        Args:
            times: seconds from the start; each maps to frame ``round(t * fps)``.

        Returns:
            A Clip at native size, in the order asked (see `read_indices`).
        """
        last = self._info.num_frames - 1
        indices: list[int] = []
        for t in times:
            if not isinstance(t, Real) or not math.isfinite(t):
                raise VideoError(f"{self.path}: frame time {t!r} is not a finite number of seconds")
            indices.append(min(max(round(float(t) * self._info.fps), 0), last))
        return self.read_indices(indices)

    def read_indices(self, indices: Sequence[int]) -> Clip:
        """Frames by index, at native size, in the order asked (repeats allowed).

        Args:
            indices: frame indices in ``[0, info.num_frames)``.

        Returns:
            A Clip of the frames that exist (see the class notes on missing frames).

        Raises:
            VideoError: an index out of range or not an integer, an empty request, or no
                requested frame could be decoded.
        """
        from zoom_agent import _decode

        wanted = self._check_indices(indices)
        with self._lock:
            try:
                found = _decode.fetch(self._decoder, self._cache, wanted)
            except _decode.MediaError as e:
                raise VideoError(f"{self.path}: {e}") from e
        keep = tuple(i for i in wanted if i in found)
        if not keep:
            raise VideoError(
                f"{self.path}: none of the frames {_brief(wanted)} could be decoded; the file holds "
                f"fewer than the {self._info.num_frames} frames its container reports"
            )
        fps = self._info.fps
        return Clip(np.stack([found[i] for i in keep]), tuple(i / fps for i in keep), keep)

    def read_clip(self, ref: ClipRef) -> Clip:
        """Decode a planned clip and resize its frames to ``ref.width`` x ``ref.height``.

        INTER_AREA when the area shrinks, INTER_CUBIC when it grows.

        Raises:
            VideoError: the ClipRef names another file, or as `read_indices`.
        """
        if Path(ref.path).expanduser().resolve() != self.path:
            raise VideoError(f"{self.path}: asked to read a clip of another file, {ref.path}")
        clip = self.read_indices(ref.frame_indices)
        frames = np.stack([resize(f, ref.width, ref.height) for f in clip.frames])
        return Clip(frames, clip.timestamps, clip.frame_indices)

    def _check_indices(self, indices: Sequence[int]) -> tuple[int, ...]:
        n = self._info.num_frames
        out: list[int] = []
        for i in indices:
            if isinstance(i, bool) or not isinstance(i, Integral) or not 0 <= i < n:
                raise VideoError(f"{self.path}: frame index {i!r} is not an integer in [0, {n})")
            out.append(int(i))
        if not out:
            raise VideoError(f"{self.path}: no frames requested; expected at least one index")
        return tuple(out)


def _brief(indices: Sequence[int]) -> str:
    return str(list(indices[:8]))[:-1] + (", ...]" if len(indices) > 8 else "]")


_SOURCES: OrderedDict[str, tuple[tuple[int, int], VideoSource]] = OrderedDict()
_SOURCES_LOCK = threading.Lock()


def open_video(path: str | Path) -> VideoSource:
    """The shared `VideoSource` of a file, so that every backend uses one decode cache.

    Keyed by resolved path; reopened if the file changed (size or mtime); at most
    `MAX_OPEN_SOURCES` kept (least recently used dropped, not closed: a holder may still
    read from it). Thread-safe.

    Raises:
        VideoError: as `VideoSource`.
    """
    p = _resolve(path)
    st = p.stat()
    stamp = (st.st_mtime_ns, st.st_size)
    key = str(p)
    with _SOURCES_LOCK:
        hit = _SOURCES.get(key)
        if hit is not None and hit[0] == stamp:
            _SOURCES.move_to_end(key)
            return hit[1]
        source = VideoSource(p)
        _SOURCES[key] = (stamp, source)
        _SOURCES.move_to_end(key)
        while len(_SOURCES) > MAX_OPEN_SOURCES:
            _SOURCES.popitem(last=False)
        return source


def forget_videos() -> None:
    """Drop every shared source (tests; or to release memory). Holders keep theirs."""
    with _SOURCES_LOCK:
        _SOURCES.clear()
