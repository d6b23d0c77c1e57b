"""Decoding internals of `zoom_agent.video`: probe a container, decode chosen frames.

Only `video.py` imports this module (it pulls in PyAV and OpenCV). Terms used below:

- *slot*: a frame's position on the constant-rate grid of the video, ``round((pts - start) *
  time_base * fps)``. For a constant-frame-rate (CFR) file slot ``i`` is exactly the ``i``-th
  frame a sequential decode returns. For a variable-frame-rate (VFR) file slot ``i`` is the frame
  on screen at time ``i / fps`` (to within half a slot).
- *GOP*: the frames from one keyframe up to the next; a frame decodes only from its GOP's
  keyframe. The container's index (``stream.index_entries``) says where the keyframes are,
  so the decoder knows, without decoding, whether a keyframe lies between where it stands
  and the next wanted frame: if one does it seeks to it, otherwise it decodes forward.
  Either way it decodes only the GOPs that hold wanted frames, from their keyframe up to
  the last wanted frame (the keyframe-seek floor, docs/video.md §2).

Beyond that floor (docs/video.md §3), on files with container timestamps and a constant
frame rate ("smart" runs):

- *skip*: packets of frames nobody asked for are sent with the decoder's ``skip_frame =
  NONREF``: frames no other frame references (most B-frames) are not reconstructed; reference
  frames and every wanted frame are (``DEFAULT``). A run that misses a wanted frame anyway
  turns skipping off for the file and decodes again (the fallback).
- *drain*: after the packet of a run's last wanted frame (the next wanted frame, if any,
  needs a seek), the decoder is flushed instead of fed more packets, so the frames behind it
  in the frame-thread pipeline and the B-frame reorder queue are not decoded for nothing.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

import av
import numpy as np

from zoom_agent._frame_cache import DecodeStats

log = logging.getLogger("zoom_agent.video")

# Seeking restarts the decoder pipeline (a flush plus frame-thread warm-up): a seek plus its
# first frame cost about 5-6 frames of forward decoding (720p H.264, 2 cores, measured), so
# a seek must skip more than this many frames to pay off.
MIN_SEEK_GAIN = 5
# At most this many keyframe steps back when a seek lands after the wanted frame (B-frames
# whose keyframe is displayed later than it is decoded); then decode from the start.
_MAX_BACKOFF = 4
_REDO = object()  # _advance: this run cannot give the frame; start a fresh one


class MediaError(ValueError):
    """The file cannot be used as a video; `video.py` turns it into a VideoError."""


@dataclass(frozen=True)
class Probe:
    """What `probe` learned: the numbers for VideoInfo and how the file can be decoded."""

    fps: float
    num_frames: int
    width: int
    height: int
    seekable: bool  # container index + timestamps: keyframe seeking; else sequential decode
    vfr: bool
    notes: tuple[str, ...]


def _open(path: Path) -> Any:
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise MediaError(f"cannot be opened as a video ({e}); expected a video file") from e


def _rate(value: Fraction | None) -> float:
    return float(value) if value else 0.0


def _cv2_props(path: Path) -> tuple[float, float]:
    """OpenCV's view (fps, frame count) for the cross-check; (0, 0) when it cannot open it."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return 0.0, 0.0
        return float(cap.get(cv2.CAP_PROP_FPS)), float(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()


TRUNCATED = "(truncated)"  # ends the probe note of a file that holds fewer frames than its index claims


def _frames_in_file(stream: Any, path: Path, reported: int, notes: list[str]) -> int:
    """Frames whose bytes the file really holds, from the index's byte offsets (no decode).

    A truncated MP4 whose index sits before the data still claims every frame; the offsets
    of the index entries past the end of the file reveal it.
    """
    index = stream.index_entries
    if len(index) != reported or reported == 0:
        return reported
    size = path.stat().st_size
    lo, hi = 0, reported  # offsets grow with the entry number: binary search the first missing
    while lo < hi:
        mid = (lo + hi) // 2
        if index[mid].pos + index[mid].size <= size:
            lo = mid + 1
        else:
            hi = mid
    if lo < reported:
        notes.append(f"container reports {reported} frames but the file holds only {lo} {TRUNCATED}")
    return lo


def _count_packets(container: Any, stream: Any) -> int:
    """Count frames by demuxing (no decode): for raw streams that carry no count or duration."""
    n = 0
    try:
        for pkt in container.demux(stream):
            n += pkt.size > 0
    except av.error.FFmpegError:
        pass  # a damaged tail: the packets read so far are the frames there are
    return n


def probe(path: Path) -> tuple[Probe, Any]:
    """Read a video's metadata from its container without decoding it.

    Returns the Probe and the open container (handed on to `FrameDecoder`).

    fps: the average rate (frames / stream duration) when the container has timestamps,
    else the codec's declared rate (raw streams: the demuxer's 25 fps default is a guess).
    Frame count: the container's count, cut to the frames whose bytes exist, else
    duration * fps, else a demux-only packet count. OpenCV's figures are cross-checked;
    every disagreement is logged and kept in ``notes``.
    """
    container = _open(path)
    try:
        if not container.streams.video:
            raise MediaError("has no video stream (zero frames); expected a video file")
        stream = container.streams.video[0]
        cc = stream.codec_context
        width, height = int(cc.width or stream.width or 0), int(cc.height or stream.height or 0)
        if width <= 0 or height <= 0:
            raise MediaError(f"has no frame size ({width}x{height}); expected a decodable video stream")
        notes: list[str] = []
        tb = stream.time_base
        timed = stream.start_time is not None and tb is not None
        avg, guessed = _rate(stream.average_rate), _rate(stream.guessed_rate)
        duration = float(stream.duration * tb) if timed and stream.duration else 0.0
        if not duration and timed and container.duration:
            duration = container.duration / av.time_base
        count = _frames_in_file(stream, path, int(stream.frames or 0), notes)
        if timed and duration > 0:
            fps = avg or (count / duration if count else guessed)
            count = count or round(duration * fps)
        else:
            fps = guessed or avg
            notes.append(f"no container timestamps: fps {fps:g} is the stream's declared rate")
            count = count or _count_packets(container, stream)
        seekable = timed and len(stream.index_entries) > 0
        if count <= 0 or not fps or fps <= 0:
            raise MediaError(f"contains no video frames (count {count}, fps {fps}); expected at least one frame")
    except BaseException:
        container.close()
        raise
    vfr = bool(timed and guessed and avg and abs(guessed - avg) > 0.01 * avg)
    if vfr:
        notes.append(f"variable frame rate: average {avg:g} fps, base rate {guessed:g} fps")
    _cross_check(path, fps, count, notes)
    for note in notes:
        log.info("%s: %s", path, note)
    return Probe(fps, count, width, height, seekable, vfr, tuple(notes)), container


def _cross_check(path: Path, fps: float, count: int, notes: list[str]) -> None:
    cv_fps, cv_count = _cv2_props(path)
    if cv_fps <= 0:
        notes.append("OpenCV cannot read this file; metadata from the container only")
        return
    if abs(cv_fps - fps) > 0.01 * fps:
        notes.append(f"OpenCV reports {cv_fps:g} fps, the stream's timing gives {fps:g}: using {fps:g}")
    if abs(cv_count - count) > max(1.0, 0.01 * count):
        notes.append(f"OpenCV reports {cv_count:g} frames, the container {count}: using {count}")


class _Decoded(NamedTuple):
    slot: int
    end: int  # first slot after this frame's display time
    frame: Any  # av.VideoFrame, converted to RGB only if wanted


class FrameDecoder:
    """Decodes frames by slot from one file; not thread-safe (the caller holds a lock).

    A *run* is one pass of the decoder from a keyframe (or the file's start) forward. For
    each wanted slot (ascending) it continues the run when the wanted frame's keyframe is
    already behind the demuxer, else seeks: ``container.seek(pts, backward=True)`` lands on
    the last keyframe shown at or before the frame. Call `want` with a request's slots
    before its `frame_at` calls: skip and drain (module notes) follow from them.
    """

    def __init__(
        self, path: Path, probe_: Probe, container: Any = None, *, skip_nonref: bool = True, threads: int = 0
    ) -> None:
        self.path, self.probe, self.stats = path, probe_, DecodeStats()
        # Skip and drain need each packet's slot from its timestamp: CFR files with timing.
        self.smart = probe_.seekable and not probe_.vfr
        self.skip_nonref = skip_nonref and self.smart
        # Frame threads hide most of H.264's cost; one per core (capped) was fastest on 2 cores.
        self.threads = threads or min(os.cpu_count() or 1, 8)
        self._want: frozenset[int] = frozenset()
        self._group_end: dict[int, int] = {}  # wanted slot -> last wanted slot of its run
        self._keyslots: list[int] | None = None
        self._container: Any = None
        self._reopen(container)

    def _reopen(self, container: Any = None) -> None:
        """(Re)open the file, or adopt an open container (its demux position is then unknown)."""
        if self._container is not None:
            self._container.close()
        self._container = container if container is not None else _open(self.path)
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self._stream.thread_count = self.threads
        self._skip_mode = "DEFAULT"  # a fresh codec context
        tb = self._stream.time_base
        self._tb = float(tb) if tb else 0.0
        self._start = self._stream.start_time or 0
        index = self._stream.index_entries
        # MP4 indexes decode times; a B-frame stream shows its keyframes `lag` after decoding.
        self._lag = max(0, self._start - index[0].timestamp) if len(index) else 0
        self._frames: Iterator[_Decoded] | None = None  # the current run
        self._prev: _Decoded | None = None  # last frame consumed in this run
        self._peek: _Decoded | None = None  # decoded, not yet consumed
        self._pos = -1  # slot the run stands at (after a seek: just before its keyframe)
        self._key_pts: int | None = None  # pts of the run's keyframe; None: from the start
        self._key_pos = -1  # byte offset of the last keyframe packet demuxed in this run
        self._skipped: set[int] = set()  # slots sent with skip_frame=NONREF in this run
        self._drained_at: int | None = None  # slot after whose packet this run was drained

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def _slot(self, ts: int) -> int:
        return round((ts - self._start) * self._tb * self.probe.fps)

    def _ts(self, slot: int) -> int:
        return self._start + round(slot / (self.probe.fps * self._tb))

    def keyframe_slots(self) -> list[int]:
        """Slots of the keyframes, ascending, from the container index (no decode; [] without one)."""
        if self._container is None:
            raise MediaError("is closed")
        if self._keyslots is None:
            index = self._stream.index_entries if self.probe.seekable else []
            self._keyslots = sorted({self._slot(e.timestamp + self._lag) for e in index if e.is_keyframe})
        return self._keyslots

    def key_before(self, slot: int) -> int | None:
        """Slot of the last keyframe shown at or before ``slot``; None when there is none
        (or no index). One search of the container index (no decode, no scan of the whole
        index: `keyframe_slots` reads every entry, 44 ms on a 90,000-frame file)."""
        if self._container is None:
            raise MediaError("is closed")
        if not self.probe.seekable:
            return None
        index = self._stream.index_entries
        k = index.search_timestamp(self._ts(slot) - self._lag, backward=True)
        return None if k < 0 else self._slot(index[k].timestamp + self._lag)

    def runs(self, slots: Sequence[int]) -> list[list[int]]:
        """The wanted slots (deduplicated, ascending) grouped by run: a new run starts where
        the next slot's keyframe lies more than `MIN_SEEK_GAIN` slots past the previous slot
        (the rule `frame_at` follows). Runs are independent: each can go to its own decoder.
        """
        groups: list[list[int]] = []
        for s in sorted(set(slots)):
            key = self.key_before(s)
            if groups and (key is None or key <= groups[-1][-1] + MIN_SEEK_GAIN):
                groups[-1].append(s)
            else:
                groups.append([s])
        return groups

    def want(self, slots: Sequence[int]) -> None:
        """Declare the slots the next `frame_at` calls ask for: the others may be skipped."""
        self._want = frozenset(slots)
        self._group_end = {s: g[-1] for g in self.runs(slots) for s in g} if self.smart else {}

    def frame_at(self, t: int) -> Any | None:
        """The decoded frame for slot ``t`` (an av.VideoFrame), or None when it does not exist."""
        if self._container is None:
            raise MediaError("is closed")
        if t not in self._want:
            self.want(sorted(self._want | {t}))
        try:
            return self._frame_at(t)
        except av.error.FFmpegError as e:
            self._frames = None  # the next read starts a fresh run
            raise MediaError(f"decoding frame {t} failed ({e})") from e

    def _frame_at(self, t: int) -> Any | None:
        if self._prev is not None and self._prev.slot == t:
            return self._prev.frame
        if not self._can_continue(t):
            self._seek(t)
        for attempt in range(_MAX_BACKOFF + 3):
            found = self._advance(t)
            if found is _REDO:
                self._seek(t)
                continue
            if found is not False:
                return found
            if self._key_pts is None:  # decoding from the start, and t precedes the first frame
                return None if self._peek is None else self._peek.frame
            # The run's first frame is shown after t: start from the keyframe before it.
            self._seek(t, self._key_pts - 1 if attempt < _MAX_BACKOFF else None)
        return None

    def _advance(self, t: int) -> Any:
        """Decode forward to slot t: its frame, None if the file ends first, False if t was
        passed, `_REDO` if this run cannot give it (drained before it, or skipped it)."""
        assert self._frames is not None
        while True:
            d, self._peek = self._peek or next(self._frames, None), None
            if d is None:  # end of the run: the last frame covers t only if shown then
                self._frames = None
                prev = self._prev
                if prev is not None and prev.slot <= t < prev.end:
                    return prev.frame
                return _REDO if self._drained_at is not None else None
            if d.slot == t:
                self._prev, self._pos = d, d.slot
                return d.frame
            if d.slot > t:
                self._peek = d
                if self._prev is not None and self._prev.slot < t:
                    if self._skipped and self.skip_nonref:  # the fallback: skipping lost it
                        log.warning("%s: frame %d missing with skip_frame=NONREF; skipping off", self.path, t)
                        self.skip_nonref = False
                        return _REDO
                    return self._prev.frame  # VFR: no frame starts in slot t; prev is on screen
                return False
            self._prev, self._pos = d, d.slot

    def _can_continue(self, t: int) -> bool:
        if self._frames is None or t <= self._pos or t in self._skipped:
            return False
        if self._drained_at is not None and t > self._drained_at:
            return False
        if not self.probe.seekable:
            return True
        index = self._stream.index_entries
        k = index.search_timestamp(self._ts(t) - self._lag, backward=True)
        if k < 0:
            return True
        entry = index[k]
        if 0 <= entry.pos <= self._key_pos:
            return True  # t's keyframe is already in the decoder: we are in its GOP
        return self._slot(entry.timestamp + self._lag) <= self._pos + MIN_SEEK_GAIN

    def _seek(self, t: int, ts: int | None = -1) -> None:
        """Start a run at the last keyframe shown at or before ``ts`` (default: slot t's time).

        ``ts=None`` (or a file without an index) starts from the beginning of the file.
        """
        self.stats.seeks += 1
        if ts == -1:
            ts = self._ts(t)
        for _ in range(_MAX_BACKOFF + 1):
            if ts is None or not self.probe.seekable:
                break
            try:
                self._container.seek(ts, stream=self._stream, backward=True)
            except av.error.FFmpegError:
                break
            self._key_pos, self._prev, self._peek = -1, None, None
            packets = self._packets()
            first = next(packets, None)
            if first is None:  # nothing past this point: the frames are missing
                self._frames, self._key_pts, self._pos = iter(()), ts, t - 1
                return
            pts = first.pts if first.pts is not None else first.dts
            if first.is_keyframe and pts is not None and self._slot(pts) <= t:
                self._key_pts, self._pos = pts, self._slot(pts) - 1
                self._frames = self._run(itertools.chain([first], packets))
                return
            ts = None if pts is None else pts - 1  # shown after t or not a keyframe: back off
        self._reopen()
        self._frames = self._run(self._packets())

    def _run(self, packets: Iterator[Any]) -> Iterator[_Decoded]:
        """Start a run over the packets (skipping and draining when smart); yields frames with slots."""
        self._skipped, self._drained_at = set(), None
        unfed = Counter(self._group_end.values())  # per run end: its wanted packets not yet sent
        return self._decode(packets, unfed)

    def _decode(self, packets: Iterator[Any], unfed: Counter[int]) -> Iterator[_Decoded]:
        cc, ordinal = self._stream.codec_context, self._pos
        for pkt in packets:
            slot = self._slot(pkt.pts) if self.smart and pkt is not None and pkt.pts is not None else None
            self._set_skip(slot)
            try:
                frames = cc.decode(pkt)
            except av.error.FFmpegError:
                continue  # a damaged packet: its frame is missing, later GOPs still decode
            self.stats.packets_sent += pkt is not None
            end = self._group_end.get(slot) if slot is not None and slot in self._want else None
            if end is not None:
                unfed[end] -= 1
                if unfed[end] == 0:  # every wanted frame of this run is in: flush, feed no more
                    self._drained_at = end
                    self.stats.drains += 1
                    frames = [*frames, *cc.decode(None)]
            # every frame the decoder returns, consumed or not (a run can stop before the drain's last)
            self.stats.frames_decoded += len(frames)
            for f in frames:
                ordinal += 1
                if not self.probe.seekable or f.pts is None:
                    yield _Decoded(ordinal, ordinal + 1, f)
                    continue
                slot_f = ordinal = self._slot(f.pts)
                stop = self._slot(f.pts + f.duration) if f.duration else slot_f + 1
                yield _Decoded(slot_f, max(stop, slot_f + 1), f)
            if self._drained_at is not None:
                return

    def _set_skip(self, slot: int | None) -> None:
        """NONREF for a packet nobody wants (when skipping is on), DEFAULT otherwise."""
        mode = "DEFAULT"
        if slot is not None and self.skip_nonref and slot not in self._want:
            mode = "NONREF"
            self._skipped.add(slot)
        if mode != self._skip_mode:
            self._stream.codec_context.skip_frame = mode
            self._skip_mode = mode

    def _packets(self) -> Iterator[Any]:
        try:
            for pkt in self._container.demux(self._stream):
                if pkt.is_keyframe and pkt.pos is not None:
                    self._key_pos = max(self._key_pos, pkt.pos)
                yield pkt
        except av.error.FFmpegError as e:  # a truncated tail: what was read stands; flush
            log.info("%s: demux stopped early (%s)", self.path, e)
            yield None


def to_rgb(frame: Any) -> np.ndarray:
    """An av.VideoFrame as (H, W, 3) uint8 RGB (the same pixels as OpenCV's BGR, reordered)."""
    return np.ascontiguousarray(frame.to_ndarray(format="rgb24"))
