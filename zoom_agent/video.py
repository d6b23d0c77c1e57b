"""The video engine: metadata, frame-accurate sampling and a shared frame cache.

- `zoom_agent.planning.plan_clip` decides which frames a view holds (metadata only).
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

import numpy as np

from zoom_agent._frame_cache import DecodeStats, FrameCache, resize
from zoom_agent.types import ClipRef, VideoInfo

MAX_OPEN_SOURCES = 64  # open_video keeps this many files open (LRU)


class VideoError(ValueError):
    """A video file cannot be used; the message names the path and what was expected."""


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
    - Decoded frames go into an LRU cache keyed by frame index, so a zoom after a coarse pass
      decodes only frames it has not seen. The last coarse clip read (resized, as planned) is
      kept too and shared by every question on the video (one decode and one resize per
      video, docs/video.md §6). Together they stay within ``cache_bytes``: the coarse clip
      gets up to a quarter (a bigger one is not kept), the frame cache the rest.
    - Beyond the floor (docs/video.md): frames nothing references are skipped on the way to
      a wanted frame, a run stops at its last wanted frame, and independent GOP runs of one
      request decode in parallel when ``workers > 1``.
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

    def __init__(
        self, path: str | Path, *, cache_bytes: int = 512 * 2**20, workers: int = 0, skip_nonref: bool = True
    ) -> None:
        """Open a video file (metadata only; nothing is decoded yet).

        Args:
            path: the video file.
            cache_bytes: bound of the decoded-frame cache (native RGB frames).
            workers: decoders that take a request's independent GOP runs in parallel
                (0: one per 4 cores, see docs/video.md §4).
            skip_nonref: skip frames nothing references on the way to a wanted frame
                (docs/video.md §3); False gives the plain keyframe-seek floor.
        """
        from zoom_agent import _decode, _fetch

        self.path = _resolve(path)
        try:
            probe, container = _decode.probe(self.path)
            self._decoders = _fetch.Decoders(self.path, probe, container, workers=workers, skip_nonref=skip_nonref)
        except (_decode.MediaError, ValueError) as e:
            raise VideoError(f"{self.path}: {e}") from e
        n, fps, w, h = probe.num_frames, probe.fps, probe.width, probe.height
        path_s = str(self.path)
        seconds = f"{n / fps:.1f}"  # a note the answer must carry (VideoInfo.warnings): the file reads short
        truncated = (note for note in probe.notes if _decode.TRUNCATED in note)
        warnings = tuple(f"{path_s}: {note}: read as a {seconds} s video" for note in truncated)
        self._info = VideoInfo(
            path=path_s, duration=n / fps, fps=fps, num_frames=n, width=w, height=h, warnings=warnings
        )
        self.notes: tuple[str, ...] = probe.notes
        self.vfr: bool = probe.vfr
        cache_bytes = max(0, cache_bytes)
        self._share_bytes = cache_bytes // 4  # the shared coarse clip's part of the bound
        self._cache = FrameCache(cache_bytes - self._share_bytes)
        self._shared: tuple[ClipRef, Clip] | None = None  # the last coarse clip read, resized
        self._lock = threading.Lock()  # the decoders and the frame cache
        self._coarse_lock = threading.Lock()  # the shared coarse clip

    @property
    def info(self) -> VideoInfo:
        """Container metadata (no decode)."""
        return self._info

    @property
    def stats(self) -> DecodeStats:
        """Decode counters (frames decoded, seeks, cache hits), for tests and benchmarks."""
        return self._decoders.stats

    @property
    def keyframe_indices(self) -> tuple[int, ...]:
        """Frame indices of the keyframes, from the container index (no decode; () without one).

        A keyframe decodes alone: reading only these is the cheapest view of a long video
        (`zoom_agent.approximate.snap_to_keyframes`).
        """
        with self._lock:
            return tuple(self._decoders.main.keyframe_slots())

    def __repr__(self) -> str:
        i = self._info
        return f"VideoSource({str(self.path)!r}, {i.width}x{i.height}, {i.num_frames} frames @ {i.fps:g} fps)"

    def close(self) -> None:
        """Release the file; later reads fail. Sources from `open_video` are shared: don't."""
        with self._lock:
            self._decoders.close()

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
        keep, found = self._decoded(indices)
        fps = self._info.fps
        return Clip(np.stack([found[i] for i in keep]), tuple(i / fps for i in keep), keep)

    def _decoded(self, indices: Sequence[int]) -> tuple[tuple[int, ...], dict[int, np.ndarray]]:
        """The requested indices whose frames exist, in the order asked, and those frames
        (native, read-only: the cache's own)."""
        from zoom_agent import _decode, _fetch

        wanted = self._check_indices(indices)
        with self._lock:
            try:
                found = _fetch.fetch(self._decoders, self._cache, wanted)
            except _decode.MediaError as e:
                raise VideoError(f"{self.path}: {e}") from e
        keep = tuple(i for i in wanted if i in found)
        if not keep:
            raise VideoError(
                f"{self.path}: none of the frames {_brief(wanted)} could be decoded; the file holds "
                f"fewer than the {self._info.num_frames} frames its container reports"
            )
        return keep, found

    def read_clip(self, ref: ClipRef) -> Clip:
        """Decode a planned clip and resize its frames to ``ref.width`` x ``ref.height``.

        INTER_AREA when the area shrinks, INTER_CUBIC when it grows.

        Raises:
            VideoError: the ClipRef names another file, or as `read_indices`.
        """
        if Path(ref.path).expanduser().resolve() != self.path:
            raise VideoError(f"{self.path}: asked to read a clip of another file, {ref.path}")
        if ref.role != "coarse":
            return self._resized(ref)
        with self._coarse_lock:  # questions asking for the same coarse clip wait for the first
            shared = self._shared
            if shared is not None and shared[0] == ref:
                with self._lock:
                    self._decoders.stats.shared_clip_hits += 1
                return Clip(shared[1].frames.copy(), shared[1].timestamps, shared[1].frame_indices)
            clip = self._resized(ref)
            if clip.frames.nbytes <= self._share_bytes:
                self._shared = (ref, Clip(clip.frames.copy(), clip.timestamps, clip.frame_indices))
            return clip

    def _resized(self, ref: ClipRef) -> Clip:
        # resized straight from the decoded frames: no stacked copy of them at native size
        # (for a 768-frame coarse view of a 720p file that copy alone is 2 GB)
        keep, found = self._decoded(ref.frame_indices)
        frames = np.stack([resize(found[i], ref.width, ref.height) for i in keep])
        return Clip(frames, tuple(i / self._info.fps for i in keep), keep)

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
