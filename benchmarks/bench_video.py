"""Zoom re-sampling on long real H.264 (docs/QUALITY.md, target 1).

Builds a 10-minute H.264 file by looping ../shared/data/videos/bigbuckbunny.mp4 (PyAV remux,
no re-encode; one keyframe per 5.28 s loop), then times, on the same machine in one run:

- coarse pass: 64 frames spread over the whole video (plan_clip, max_frames=64);
- zoom: 16 frames in a 10 s window in the middle (plan_clip, role="zoom", max_frames=16);

for `VideoSource` (a fresh source with a cold cache, open included; and the zoom again on the
source that just did the coarse pass) against
(a) a sequential OpenCV decode of the whole file picking the frames (grab all, retrieve the
    picks; one pass serves both rows, it costs the same),
(b) qwen-vl-utils ``fetch_video`` with ``video_start``/``video_end`` under
    FORCE_QWENVL_VIDEO_READER=decord (its pipeline includes its bicubic resize), and (b')
    decord's ``get_batch`` alone (the decode inside it, same indices),
(c) the keyframe-seek floor: for each GOP that holds requested frames, seek to its keyframe
    and decode forward to its last requested frame (PyAV, same threading as ours).

Frames from ours and from (c) are checked pixel-identical to (a). Each method runs
``--repeat`` times, interleaved; the median is reported. The table is printed last.

Run:  python benchmarks/bench_video.py [--repeat 3] [--skip-sequential]
"""

from __future__ import annotations

import argparse
import bisect
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

os.environ.setdefault("FORCE_QWENVL_VIDEO_READER", "decord")  # before qwen_vl_utils is imported

import av
import cv2
import numpy as np

from zoom_agent.config import Budget
from zoom_agent.datasets.synthetic_video import loop_video
from zoom_agent.planning import plan_clip
from zoom_agent.types import Span
from zoom_agent.video import VideoSource

SHARED = os.environ.get("ZOOM_AGENT_SHARED_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data"
DATA = Path(SHARED) / "videos" / "bigbuckbunny.mp4"
Frames = dict[int, np.ndarray]
T = TypeVar("T")
OURS = "ours: VideoSource, fresh (open + read)"
WARM = "ours: zoom after the coarse pass (same source)"
SEQ = "(a) sequential decode, pick frames (OpenCV)"
QWEN = "(b) qwen-vl-utils fetch_video (decord)"
DECORD = "(b') decord get_batch only"
FLOOR = "(c) keyframe-seek floor (PyAV)"


def ours(path: Path, idx: list[int]) -> Frames:
    clip = VideoSource(path).read_indices(idx)
    return dict(zip(clip.frame_indices, clip.frames, strict=True))


def sequential(path: Path, picks: set[int]) -> Frames:
    """(a): decode every frame (grab), convert only the picks (retrieve)."""
    cap = cv2.VideoCapture(str(path))
    out, i = {}, 0
    while cap.grab():
        if i in picks:
            _, f = cap.retrieve()
            out[i] = np.ascontiguousarray(f[..., ::-1])
        i += 1
    cap.release()
    return out


def keyframe_floor(path: Path, idx: list[int]) -> Frames:
    """(c): per GOP holding wanted frames, seek to its keyframe, decode to its last wanted frame."""
    with av.open(str(path)) as c:
        s: Any = c.streams.video[0]
        s.thread_type, s.thread_count = "AUTO", min(os.cpu_count() or 1, 8)
        tb, fps, start = float(s.time_base), float(s.average_rate), s.start_time or 0
        keys = [e.timestamp for e in s.index_entries if e.is_keyframe]  # decode-time = pts here
        gops: dict[int, list[int]] = {}
        for i in sorted(set(idx)):
            ts = start + round(i / fps / tb)
            gops.setdefault(keys[bisect.bisect_right(keys, ts) - 1], []).append(i)
        out: Frames = {}
        for key, wanted in sorted(gops.items()):
            c.seek(key, stream=s, backward=True)
            for f in c.decode(s):
                i = round((f.pts - start) * tb * fps)
                if i in wanted:
                    out[i] = f.to_ndarray(format="rgb24")
                if i >= wanted[-1]:
                    break
    return out


def qwen_fetch(path: Path, window: tuple[float, float] | None, n: int) -> list[int]:
    """(b): qwen-vl-utils' loader; returns the frame indices it sampled."""
    from qwen_vl_utils.vision_process import fetch_video

    ele: dict[str, object] = {"video": str(path), "nframes": n}
    if window is not None:
        ele["video_start"], ele["video_end"] = window
    _, meta = fetch_video(ele, return_video_metadata=True)
    return list(meta["frames_indices"])


def decord_batch(path: Path, idx: list[int]) -> None:
    """(b'): the decode step inside (b): decord.VideoReader.get_batch on the same indices."""
    import decord

    decord.VideoReader(str(path)).get_batch(idx).asnumpy()


def zoom_after_coarse(path: Path, coarse: list[int], zoom: list[int]) -> float:
    src = VideoSource(path)
    src.read_indices(coarse)
    return timed(src.read_indices, zoom)[0]


def timed(fn: Callable[..., T], *args: Any) -> tuple[float, T]:
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def check_exact(name: str, got: Frames, ref: Frames, idx: list[int]) -> None:
    missing = [i for i in idx if i not in got]
    bad = [i for i in idx if i in got and not np.array_equal(got[i], ref[i])]
    if missing or bad:
        raise SystemExit(f"{name}: frames missing {missing[:5]} or not pixel-identical {bad[:5]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per method (median reported)")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--skip-sequential", action="store_true", help="skip (a) and the pixel check")
    args = ap.parse_args()
    if not DATA.exists():
        raise SystemExit(f"{DATA} is absent: this benchmark needs the shared data folder")
    with tempfile.TemporaryDirectory() as tmp:
        loops = math.ceil(args.minutes * 60 / VideoSource(DATA).info.duration)
        path = loop_video(DATA, Path(tmp) / "bbb_long.mp4", loops)
        path.read_bytes()  # warm the page cache: time decoding, not the disk
        run(path, args)


def run(path: Path, args: argparse.Namespace) -> None:
    info = VideoSource(path).info
    budget = Budget()
    coarse = list(plan_clip(info, info.whole, budget, max_frames=64).frame_indices)
    mid = float(round(info.duration / 2))  # whole seconds: both loaders agree on the edge frames
    window = (mid - 5.0, mid + 5.0)
    zspan = Span(start=window[0], end=window[1])
    zoom = list(plan_clip(info, zspan, budget, role="zoom", max_frames=16).frame_indices)
    print(f"{path.name}: {info.num_frames} frames, {info.duration:.1f} s, {info.width}x{info.height}")
    print(f"coarse: {len(coarse)} frames over the whole video; zoom: {len(zoom)} frames in {zspan}")
    qwen_idx = qwen_fetch(path, window, len(zoom))  # also warms its imports
    print(f"qwen-vl-utils samples the same zoom frames: {qwen_idx == zoom}")
    times: dict[tuple[str, str], list[float]] = {}

    def add(method: str, task: str, seconds: float) -> None:
        times.setdefault((method, task), []).append(seconds)

    ref: Frames = {}
    if not args.skip_sequential:
        t, ref = timed(sequential, path, set(coarse) | set(zoom))
        add(SEQ, "coarse", t)  # one whole-file pass serves both tasks: it costs the same
        add(SEQ, "zoom", t)
    for rep in range(args.repeat):
        for task, idx in (("coarse", coarse), ("zoom", zoom)):
            # alternate who goes first: the first big allocations of a process cost extra here
            for name, fn in ((OURS, ours), (FLOOR, keyframe_floor))[:: 1 if rep % 2 == 0 else -1]:
                t, got = timed(fn, path, idx)
                add(name, task, t)
                if ref:
                    check_exact(name, got, ref, idx)
            add(QWEN, task, timed(qwen_fetch, path, window if task == "zoom" else None, len(idx))[0])
            add(DECORD, task, timed(decord_batch, path, idx)[0])
        add(WARM, "zoom", zoom_after_coarse(path, coarse, zoom))
    report(times)


def report(times: dict[tuple[str, str], list[float]]) -> None:
    med = {k: statistics.median(v) for k, v in times.items()}
    base = {task: med[(OURS, task)] for task in ("coarse", "zoom")}
    floor = {task: med[(FLOOR, task)] for task in ("coarse", "zoom")}
    print("\nGoals (docs/QUALITY.md target 1):")
    seq = med.get((SEQ, "zoom"))
    if seq is not None:
        print(f"  zoom >= 20x faster than (a): {seq / base['zoom']:.1f}x")
    print(f"  zoom faster than (b): {med[(QWEN, 'zoom')] / base['zoom']:.2f}x")
    for task in ("zoom", "coarse"):
        print(f"  {task} within 1.3x of (c): ours / floor = {base[task] / floor[task]:.2f}")
    runs = max(len(v) for v in times.values())
    print(f"\nmedian of {runs} runs ((a) runs once); ratio = method time / ours (fresh)\n")
    print("| task | method | seconds | ratio vs ours |")
    print("|---|---|---:|---:|")
    for task in ("coarse", "zoom"):
        rows = sorted((v, m) for (m, t), v in med.items() if t == task)
        for seconds, method in rows:
            print(f"| {task} | {method} | {seconds:.3f} | {seconds / base[task]:.2f} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
