"""Frames for `zoom_agent.video.VideoSource`: from the cache, else decoded, runs in parallel.

A request's missing frames are grouped into runs (`FrameDecoder.runs`: one keyframe seek
each; runs are independent). With ``workers > 1`` the runs are cut into contiguous shares of
about equal decode cost, and each share decodes on its own `FrameDecoder` (its own open
container) in a thread of one shared pool, on top of each decoder's frame threads. PyAV
releases the GIL while FFmpeg decodes and converts, so the shares overlap on the cores
(docs/video.md §4 says what this measured here and what to expect with more cores).

Runs that are one keyframe read alone (almost every run of the approximate mode's coarse
views) are different: each is one packet decoded alone, where frame threads only add
hand-offs, so when a request has several they go to *readers*, decoders without frame
threads, one per core (at most `MAX_FRAME_THREADS`), in parallel; its other runs go to the
main decoder as usual. A request with many runs (a coarse pass: one run per frame when
frames are a GOP or more apart) goes to the readers whole when ``workers`` is left to the
default: runs share nothing, so one single-thread decoder per core keeps every core busy,
where one decoder's frame threads wait on each run's keyframe (docs/video.md §4).

Only `video.py` imports this module (it pulls in PyAV through `_decode`).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np

from zoom_agent._decode import FrameDecoder, Probe, to_rgb
from zoom_agent._frame_cache import DecodeStats, FrameCache

MAX_FRAME_THREADS = 8  # per decoder; more gave nothing on H.264 (FFmpeg's own advice: <= 16)

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def default_workers() -> int:
    """Decoders per source: one per 4 cores (1 on this project's 2-core machines, where a
    second one measured no gain; 4 on 16 cores, each with 4 frame threads)."""
    return max(1, (os.cpu_count() or 1) // 4)


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1), thread_name_prefix="zoom-decode")
        return _POOL


class Decoders:
    """The decoders of one file: the main one, plus ``workers - 1`` helpers opened on first need.

    Not thread-safe: the owning VideoSource holds its lock around every call.
    """

    def __init__(
        self, path: Path, probe: Probe, container: Any = None, *, workers: int = 0, skip_nonref: bool = True
    ) -> None:
        self.auto = workers == 0  # the request decides between the main decoder and the readers
        self.workers = workers or default_workers()
        if self.workers < 1:
            raise ValueError(f"{path}: decode workers must be >= 1, got {workers}")
        # readers: as many as workers when set, else one per core (capped)
        self.reader_count = workers or min(MAX_FRAME_THREADS, os.cpu_count() or 1)
        threads = max(1, min(MAX_FRAME_THREADS, (os.cpu_count() or 1) // self.workers))
        self._make = lambda c, t=threads: FrameDecoder(path, probe, c, skip_nonref=skip_nonref, threads=t)
        self.main = self._make(container)
        self._helpers: list[FrameDecoder] = []
        self._readers: list[FrameDecoder] = []

    @property
    def stats(self) -> DecodeStats:
        return self.main.stats

    def close(self) -> None:
        for d in (self.main, *self._helpers, *self._readers):
            d.close()

    def helpers(self, n: int) -> list[FrameDecoder]:
        while len(self._helpers) < n:
            self._helpers.append(self._make(None))
        return self._helpers[:n]

    def readers(self, n: int) -> list[FrameDecoder]:
        """``n`` readers: decoders with one thread each (no frame threads)."""
        while len(self._readers) < n:
            self._readers.append(self._make(None, 1))
        return self._readers[:n]

    def many_runs(self, runs: int) -> bool:
        """Whether a request's ``runs`` (other than lone keyframes) go to the readers: with the
        default ``workers``, several readers, and at least two runs per reader."""
        return self.auto and self.reader_count > 1 and runs >= 2 * self.reader_count

    def assign(self, slots: Sequence[int]) -> list[tuple[FrameDecoder, list[int]]]:
        """Which decoder reads which of the slots: runs that are one keyframe read alone go to
        the readers (when there are several); the other runs go to the readers too when
        there are many of them (`many_runs`), else to the main decoder and its helpers."""
        runs = self.main.runs(slots)
        lone = [r[0] for r in runs if len(r) == 1 and self.main.smart and self.main.key_before(r[0]) == r[0]]
        if len(lone) < 2:
            lone = []
        if self.many_runs(len(runs) - len(lone)):  # every run to the readers, cut by cost
            parts = _cut(runs, run_costs(self.main, runs), self.reader_count)
            return list(zip(self.readers(len(parts)), parts, strict=True))
        alone = set(lone)
        rest = [s for run in runs for s in run if s not in alone]
        out: list[tuple[FrameDecoder, list[int]]] = []
        if rest:
            parts = shares(self.main, rest, self.workers)
            out += zip([self.main, *self.helpers(len(parts) - 1)], parts, strict=True)
        if lone:
            parts = _cut([[s] for s in lone], [1] * len(lone), self.reader_count)
            out += zip(self.readers(len(parts)), parts, strict=True)
        return out


def shares(decoder: FrameDecoder, slots: Sequence[int], workers: int) -> list[list[int]]:
    """The slots cut into at most ``workers`` contiguous shares of whole runs, of about equal
    decode cost (frames from each run's keyframe to its last wanted frame)."""
    runs = decoder.runs(slots)
    if workers <= 1 or len(runs) <= 1:
        return [[s for run in runs for s in run]]
    return _cut(runs, run_costs(decoder, runs), workers)


def run_costs(decoder: FrameDecoder, runs: list[list[int]]) -> list[int]:
    """Each run's decode cost: frames from its keyframe to its last wanted frame."""
    return [run[-1] - (decoder.key_before(run[0]) or 0) + 1 for run in runs]


def _cut(runs: list[list[int]], costs: list[int], workers: int) -> list[list[int]]:
    """Whole runs in order, cut into at most ``workers`` shares of about equal cost."""
    target = sum(costs) / min(workers, len(runs))
    out: list[list[int]] = [[]]
    acc = 0.0
    for run, cost in zip(runs, costs, strict=True):
        if out[-1] and acc + cost / 2 > target and len(out) < workers:
            out.append([])
            acc = 0.0
        out[-1].extend(run)
        acc += cost
    return out


def _decode_share(decoder: FrameDecoder, slots: list[int]) -> dict[int, np.ndarray]:
    decoder.want(slots)
    out: dict[int, np.ndarray] = {}
    for t in slots:
        frame = decoder.frame_at(t)
        if frame is not None:
            out[t] = to_rgb(frame)
    return out


def fetch(decoders: Decoders, cache: FrameCache, wanted: Iterable[int]) -> dict[int, np.ndarray]:
    """Native RGB frames for the wanted indices: from the cache, else decoded and cached.

    The caller holds the source's lock. Indices whose frames do not exist are absent.
    """
    found: dict[int, np.ndarray] = {}
    stats = decoders.stats
    misses: list[int] = []
    for i in sorted(set(wanted)):
        arr = cache.get(i)
        if arr is None:
            misses.append(i)
        else:
            found[i] = arr
    stats.cache_hits += len(found)
    stats.cache_misses += len(misses)
    if not misses:
        return found
    stats.decode_calls += 1
    (first_decoder, first_part), *rest = decoders.assign(misses)
    futures: list[Future[dict[int, np.ndarray]]] = [_pool().submit(_decode_share, d, part) for d, part in rest]
    try:
        first = _decode_share(first_decoder, first_part)
    finally:  # every helper is done before the lock is let go, even when one failed
        wait(futures)
        for d in (first_decoder, *(d for d, _ in rest)):
            if d is not decoders.main:
                _absorb(stats, d.stats)
    results = [first, *(f.result() for f in futures)]
    for part in results:
        for i, arr in part.items():
            found[i] = arr
            cache.put(i, arr)
    stats.frames_converted += sum(len(part) for part in results)
    return found


def _absorb(total: DecodeStats, part: DecodeStats) -> None:
    """Add a helper's counters to the source's, and zero the helper's."""
    for f in dataclasses.fields(DecodeStats):
        setattr(total, f.name, getattr(total, f.name) + getattr(part, f.name))
        setattr(part, f.name, 0)
