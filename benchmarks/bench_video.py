"""Video decoding on long real H.264: ours against every peer, ratios from one run (docs/video.md).

Files (made once, kept in ~/.cache/zoom-agent/bench or ``--cache``; never in the repository):

- ``bbb_10min.mp4``: ../shared/data/videos/bigbuckbunny.mp4 looped by remux, 10 minutes,
  1280x720, a keyframe every 5.28 s, I and P frames only (every frame is referenced).
- ``h264_1h_gop2s.mp4``: 600 frames of that loop re-encoded with libx264 (GOP 50 frames = 2 s,
  3 B-frames, scene cuts off, crf 23), then looped by remux to one hour (90,000 frames).

Tasks: ``coarse`` (10-min file: 64 frames over the whole video; 1-hour file: 1 fps, 768 frames
cap, both planned by `plan_clip`) and ``zoom`` (16 frames in a 10 s window in the middle).

Methods (each on a fresh open, in one process, interleaved over ``--repeat`` runs; median):

- ours: `VideoSource` as shipped (skip + drain; ``workers`` per `_fetch.default_workers`),
  opened cold (probe, OpenCV cross-check) inside the timing;
- ours, open source: the same read on a source opened beforehand, as a zoom is in the agent
  (its coarse pass opened the file); ``--one FILE TASK openclip``: `read_clip` there (the
  frames resized to the plan's size, what the agent asks for; the peers return native frames);
- ours, plain floor: `VideoSource(skip_nonref=False)` (what skip and drain buy, per file);
- ours, 2 threads: `VideoSource(workers=2)` (GOP runs on two decoders in threads);
- ours, 2 processes: the same shares read by two worker processes of a warm pool;
- ours, approximate: coarse frames snapped to keyframes (`snap_clip`, 1 s tolerance), read by
  keyframe readers (one per core, no frame threads); ``--one hour coarse approxclip``: the
  same through `read_clip` at the plan's size;
- (c) naive keyframe-seek floor: per GOP holding wanted frames, seek to its keyframe and
  decode forward to its last wanted frame (PyAV, same frame threads as ours);
- (b') decord ``get_batch`` on the same indices; (b) qwen-vl-utils ``fetch_video`` (decord
  backend, its own sampling of the same count, its resize included);
- (a) sequential OpenCV decode picking the frames (10-minute file only, run once);
- torchcodec: tried and reported (see `torchcodec_status`).

Pixel checks: on the 10-minute file every exact method of ours and (c) against (a); on the
1-hour file ours against (c) (a full sequential decode of an hour is not run). The approximate
frames are checked against (c) at the snapped indices, and their true times against the
requested ones (max and mean error). Then: 5 questions on one video (decode calls, shared
coarse clip) and the frame cache's bytes against its bound. The table is printed last.

``--bound``: the bound on the 1-hour file's exact coarse pass, from its 24 s segment
(`decode_bound`: frames by type that the (c) floor and the minimum set decode, per-type CPU
costs measured in the same run; no full decode of the hour).

Run:  python benchmarks/bench_video.py [--repeat 3] [--hour-repeat 1] [--skip-hour] [--bound]
"""

from __future__ import annotations

import argparse
import bisect
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Any

os.environ.setdefault("FORCE_QWENVL_VIDEO_READER", "decord")  # before qwen_vl_utils is imported

import av
import cv2
import decode_bound
import numpy as np

from zoom_agent import _fetch
from zoom_agent.approximate import snap_clip
from zoom_agent.config import Budget
from zoom_agent.datasets.synthetic_video import loop_video
from zoom_agent.geometry import GEOMETRY
from zoom_agent.planning import plan_clip
from zoom_agent.types import ClipRef, Span, VideoInfo
from zoom_agent.video import VideoSource

SHARED = os.environ.get("ZOOM_AGENT_SHARED_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data"
DATA = Path(SHARED) / "videos" / "bigbuckbunny.mp4"
CACHE = Path(os.environ.get("ZOOM_AGENT_BENCH_CACHE", Path.home() / ".cache" / "zoom-agent" / "bench"))
GEOM = GEOMETRY["qwen2_5_vl"]
APPROX_TOLERANCE = 1.0  # seconds
SEGMENT = "h264_24s_gop2s.mp4"  # the 600 re-encoded frames the 1-hour file loops
FLOOR_THREADS = min(os.cpu_count() or 1, 8)  # (c)'s frame threads
Frames = dict[int, np.ndarray]
OURS, NOSKIP, T2, P2 = "ours", "ours, plain floor (no skip/drain)", "ours, 2 threads", "ours, 2 processes"
OPEN, OPENCLIP = "ours, open source", "ours, open source, read_clip at the plan's size"
APPROX = f"ours, approximate (keyframes within {APPROX_TOLERANCE:g} s)"
FLOOR, DECORD, QWEN, SEQ = (
    "(c) keyframe-seek floor",
    "(b') decord get_batch",
    "(b) qwen-vl-utils fetch_video",
    "(a) sequential",
)
PEERS = (FLOOR, DECORD, QWEN, SEQ)


# --------------------------------------------------------------------------- files


def ten_minute_file(cache: Path) -> Path:
    path = cache / "bbb_10min.mp4"
    if not path.exists():
        loop_video(DATA, path.with_suffix(".tmp.mp4"), 114).rename(path)  # 114 x 5.28 s = 10.0 min
    return path


def hour_file(cache: Path, ten_min: Path) -> Path:
    """600 frames re-encoded with libx264 (GOP 2 s, B-frames), looped by remux to 3,600 s."""
    path = cache / "h264_1h_gop2s.mp4"
    if path.exists():
        return path
    if "libx264" not in av.codecs_available:
        raise SystemExit("PyAV has no libx264 here: cannot make the 1-hour GOP-2s file (see docs/video.md)")
    seg = cache / SEGMENT
    with av.open(str(ten_min)) as inp, av.open(str(seg), "w") as out:
        s: Any = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 1280, 720, "yuv420p"
        s.options = {"crf": "23", "preset": "medium", "x264-params": "keyint=50:min-keyint=50:scenecut=0:bframes=3"}
        for i, frame in enumerate(inp.decode(video=0)):
            if i == 600:
                break
            frame.pts, frame.time_base, frame.pict_type = i, Fraction(1, 25), av.video.frame.PictureType.NONE
            out.mux(s.encode(frame))
        out.mux(s.encode())
    return loop_video(seg, path.with_suffix(".tmp.mp4"), 150).rename(path)


def torchcodec_status() -> str:
    """Whether torchcodec decodes here. Never installed into the project's venv: point
    ``ZOOM_AGENT_TORCHCODEC_PATH`` at a throwaway ``pip install --target`` folder to try it."""
    code = f"from torchcodec.decoders import VideoDecoder; VideoDecoder({str(DATA)!r}).get_frames_at([0])"
    env = dict(os.environ)
    extra = os.environ.get("ZOOM_AGENT_TORCHCODEC_PATH")
    if extra:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [extra, env.get("PYTHONPATH")]))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if run.returncode == 0:
        return "decodes here (not yet a peer in this table)"
    lines = run.stderr.strip().splitlines() or ["?"]
    why = [ln.strip() for ln in lines if "cannot open shared object" in ln] or [lines[-1].strip()]
    return f"does not load here: {why[0][:140]}"


# --------------------------------------------------------------------------- methods


def ours(path: Path, idx: list[int], **opts: Any) -> Frames:
    return ours_open(VideoSource(path, **opts), idx)


def ours_open(src: VideoSource, idx: list[int]) -> Frames:
    clip = src.read_indices(idx)
    return dict(zip(clip.frame_indices, clip.frames, strict=True))


def ours_clip(src: VideoSource, ref: ClipRef) -> Frames:
    src.read_clip(ref)
    return {}


def _read_share(path: str, share: list[int]) -> Frames:
    return ours(Path(path), share, workers=1)


def ours_processes(pool: ProcessPoolExecutor, path: Path, idx: list[int]) -> Frames:
    src = VideoSource(path, workers=1)
    parts = _fetch.shares(src._decoders.main, idx, 2)
    out: Frames = {}
    for part in pool.map(_read_share, [str(path)] * len(parts), parts):
        out.update(part)
    return out


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
        s.thread_type, s.thread_count = "AUTO", FLOOR_THREADS
        tb, fps, start = float(s.time_base), float(s.average_rate), s.start_time or 0
        index = s.index_entries
        lag = start - index[0].timestamp  # B-frames: keyframes are shown `lag` after decoding
        # seek to a keyframe's display time: its decode time lands one GOP early with B-frames
        shown = [e.timestamp + lag for e in index if e.is_keyframe]
        gops: dict[int, list[int]] = {}
        for i in sorted(set(idx)):
            ts = start + round(i / fps / tb)
            gops.setdefault(shown[max(0, bisect.bisect_right(shown, ts) - 1)], []).append(i)
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


def decord_batch(path: Path, idx: list[int]) -> Frames:
    import decord

    return dict(zip(idx, decord.VideoReader(str(path)).get_batch(idx).asnumpy(), strict=True))


# qwen-vl-utils holds the native frames as one float tensor and more: 13.8 GB resident for
# 768 frames of 1280x720 (1-hour coarse pass, killed by the kernel here), 1.6x the float32 frames
QWEN_BYTES_PER_FLOAT_FRAME = 1.6


def qwen_memory_note(info: VideoInfo, n: int) -> str | None:
    """Why qwen-vl-utils must not run ``n`` frames of this file here, or None when it fits
    (needs under half of the memory available now, so the benchmark is never OOM-killed)."""
    need = n * info.width * info.height * 3 * 4 * QWEN_BYTES_PER_FLOAT_FRAME
    avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if need < avail / 2:
        return None
    return f"skipped: needs about {need / 2**30:.1f} GiB for {n} frames, {avail / 2**30:.1f} GiB available"


def qwen_fetch(path: Path, window: tuple[float, float] | None, n: int) -> Frames:
    from qwen_vl_utils.vision_process import fetch_video

    ele: dict[str, object] = {"video": str(path), "nframes": n}
    if window is not None:
        ele["video_start"], ele["video_end"] = window
    fetch_video(ele)
    return {}


# --------------------------------------------------------------------------- running


Timing = tuple[float, float]  # (wall seconds, CPU seconds of this process, all its threads)


def timed(fn: Callable[..., Frames], *args: Any, **kw: Any) -> tuple[Timing, Frames]:
    """Wall and CPU time of one call. CPU time barely moves with other users' load (wall time
    on this shared machine does), so it is the steadier figure of the work a method does."""
    t, c = time.perf_counter(), time.process_time()
    out = fn(*args, **kw)
    return (time.perf_counter() - t, time.process_time() - c), out


def check_exact(name: str, got: Frames, ref: Frames, idx: list[int]) -> None:
    missing = [i for i in idx if i not in got]
    bad = [i for i in idx if i in got and not np.array_equal(got[i], ref[i])]
    if missing or bad:
        raise SystemExit(f"{name}: frames missing {missing[:5]} or not pixel-identical {bad[:5]}")


def plans(path: Path, hour: bool) -> dict[str, tuple[ClipRef, tuple[float, float] | None]]:
    info = VideoSource(path).info
    coarse = plan_clip(info, info.whole, Budget(), GEOM, fps=1.0 if hour else None, max_frames=768 if hour else 64)
    mid = float(round(info.duration / 2))
    window = (mid - 5.0, mid + 5.0)
    zoom = plan_clip(info, Span(start=window[0], end=window[1]), Budget(), GEOM, role="zoom", max_frames=16)
    return {"coarse": (coarse, None), "zoom": (zoom, window)}


Times = dict[tuple[str, str], list[Timing]]


def bench_file(label: str, path: Path, repeat: int, pool: ProcessPoolExecutor, hour: bool) -> Times:
    times: Times = {}
    info = VideoSource(path).info
    print(f"\n{label}: {path.name}, {info.num_frames} frames, {info.duration:.0f} s, {info.width}x{info.height}")
    tasks = plans(path, hour)
    seq: Frames = {}
    if not hour:  # one whole-file pass serves both tasks: it costs the same
        t, seq = timed(sequential, path, {i for ref, _ in tasks.values() for i in ref.frame_indices})
        times[(SEQ, "coarse")] = times[(SEQ, "zoom")] = [t]
    for task, (ref, window) in tasks.items():
        idx = list(ref.frame_indices)
        print(f"  {task}: {len(idx)} frames", flush=True)
        ref_frames = seq
        methods: list[tuple[str, Callable[[], Frames]]] = [
            (OURS, partial(ours, path, idx)),
            (NOSKIP, partial(ours, path, idx, skip_nonref=False)),
            (T2, partial(ours, path, idx, workers=2)),
            (P2, partial(ours_processes, pool, path, idx)),
            (FLOOR, partial(keyframe_floor, path, idx)),
            (DECORD, partial(decord_batch, path, idx)),
            (QWEN, partial(qwen_fetch, path, window, len(idx))),
        ]
        for rep in range(repeat):
            # a source opened before the timing, fresh each round (no frames cached)
            opened: tuple[str, Callable[[], Frames]] = (OPEN, partial(ours_open, VideoSource(path), idx))
            methods_now = [*methods, opened]
            for name, fn in methods_now[:: 1 if rep % 2 == 0 else -1]:  # alternate who goes first
                if name == QWEN and (note := qwen_memory_note(info, len(idx))):
                    print(f"    {name}: {note}", flush=True)
                    continue
                t, got = timed(fn)
                times.setdefault((name, task), []).append(t)
                print(f"    {name}: {t[0]:.3f} s wall, {t[1]:.2f} s CPU", flush=True)
                if name == FLOOR and not ref_frames:
                    ref_frames = got  # 1-hour file: (c) is the reference (checked against (a) on 10 min)
                if name not in (QWEN, DECORD) and ref_frames:
                    check_exact(f"{name} / {task}", got, ref_frames, idx)
                del got
        if hour and task == "coarse":
            approximate(path, ref, times, repeat)
    return times


def approximate(path: Path, ref: ClipRef, times: Times, repeat: int, clip_size: bool = False) -> None:
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        snapped = snap_clip(ref, APPROX_TOLERANCE)  # reads the container index (no decode)
        src = VideoSource(path)
        # read_clip: what the agent asks for (the plan's size); read_indices: native, as the peers
        clip = src.read_clip(snapped) if clip_size else src.read_indices(snapped.frame_indices)
        times.setdefault((APPROX, "coarse"), []).append((time.perf_counter() - t, time.process_time() - c))
    assert clip.timestamps == snapped.timestamps, "the clip reports the snapped frames' own times"
    if clip_size:
        print(f"  approximate, read_clip at {snapped.width}x{snapped.height}: {len(clip)} frames")
        return
    got = dict(zip(clip.frame_indices, clip.frames, strict=True))
    check_exact(APPROX, got, keyframe_floor(path, list(snapped.frame_indices)), list(snapped.frame_indices))
    err = [abs(a - b) for a, b in zip(snapped.timestamps, ref.timestamps, strict=True)]
    print(
        f"  approximate: {len(err)} frames, timestamp error max {max(err):.3f} s, mean {statistics.mean(err):.3f} s; "
        f"{src.stats.frames_decoded} frames decoded ({src.stats.frames_decoded / len(err):.2f} per sample)"
    )


def eval_rows(path: Path) -> None:
    """5 questions on one video: decode calls and time, shared coarse clip vs a decode per question."""
    ref = plans(path, hour=False)["coarse"][0]
    t0 = time.perf_counter()
    src = VideoSource(path)
    peak = 0
    for _ in range(5):
        src.read_clip(ref)
        peak = max(peak, src._cache.nbytes)
    shared = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(5):
        VideoSource(path).read_clip(ref)
    fresh = time.perf_counter() - t0
    st = src.stats
    print(
        f"\n5 questions on {path.name} (coarse {ref.num_frames} frames): {st.decode_calls} decode call(s), "
        f"{st.frames_converted} frames converted, {st.shared_clip_hits} shared-clip hits; {shared:.2f} s "
        f"vs {fresh:.2f} s with a decode per question ({fresh / shared:.1f}x)"
    )
    print(f"frame cache: peak {peak / 2**20:.0f} MiB held, bound {src._cache.max_bytes / 2**20:.0f} MiB")


def report(results: dict[str, Times]) -> None:
    med = {
        (label, m, t): (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
        for label, times in results.items()
        for (m, t), v in times.items()
    }
    print("\nGoals (issue 14), wall-time ratios (CPU-time ratios in brackets):")
    for label in results:
        for task in ("zoom", "coarse"):
            ours_w, ours_c = med[(label, OURS, task)]
            floor_w, floor_c = med[(label, FLOOR, task)]
            peers = {m: v for (lb, m, t), v in med.items() if lb == label and t == task and m in PEERS and m != SEQ}
            fastest = min(peers, key=lambda m: peers[m][0])
            print(
                f"  {label} {task}: ours / naive floor = {ours_w / floor_w:.2f} [{ours_c / floor_c:.2f}]; "
                f"fastest peer ({fastest}) / ours = {peers[fastest][0] / ours_w:.2f}"
            )
            if (label, APPROX, task) in med:
                approx_w = med[(label, APPROX, task)][0]
                print(f"  {label} {task}: fastest peer / approximate = {peers[fastest][0] / approx_w:.1f}")
    print("\n| file | task | method | wall s | CPU s | wall vs ours | CPU vs ours |")
    print("|---|---|---|---:|---:|---:|---:|")
    for label in results:
        for task in ("coarse", "zoom"):
            ours_w, ours_c = med[(label, OURS, task)]
            rows = sorted((v, m) for (lb, m, t), v in med.items() if lb == label and t == task)
            for (w, c), m in rows:
                cpu = "n/a" if m == P2 else f"{c:.2f}"  # the workers' CPU is not this process's
                ratio = "n/a" if m == P2 else f"{c / ours_c:.2f}"
                print(f"| {label} | {task} | {m} | {w:.3f} | {cpu} | {w / ours_w:.2f} | {ratio} |")
    sys.stdout.flush()


ONE = {
    "ours": OURS,
    "open": OPEN,
    "openclip": OPENCLIP,
    "noskip": NOSKIP,
    "threads2": T2,
    "floor": FLOOR,
    "decord": DECORD,
    "qwen": QWEN,
    "approx": APPROX,
    "approxclip": f"{APPROX}, read_clip at the plan's size",
}


def run_one(path: Path, hour: bool, task: str, methods: list[str], repeat: int, first: int = 0) -> None:
    """Time one method, or several interleaved round by round (the order alternating), and
    print each one's median wall and CPU seconds (no table, no pixel check except the
    approximate mode's). CPU seconds of separate runs stay comparable when they run side by
    side on a loaded machine; their wall seconds do not. Interleaving several methods in one
    process puts them under the same load. ``first``: only the plan's first frames (said in the output)."""
    ref, window = plans(path, hour)[task]
    if first:
        ref = ref.model_copy(update={"frame_indices": ref.frame_indices[:first], "timestamps": ref.timestamps[:first]})
    idx = list(ref.frame_indices)
    times: Times = {}
    if "qwen" in methods and (note := qwen_memory_note(VideoSource(path).info, len(idx))):
        print(f"ONE | {path.name} | {task} | {QWEN} | {note}")
        methods = [m for m in methods if m != "qwen"]

    def reader(method: str) -> Callable[[], Frames]:
        if method in ("open", "openclip"):
            src = VideoSource(path)  # opened before the timing, as the coarse pass left it
            return partial(ours_clip, src, ref) if method == "openclip" else partial(ours_open, src, idx)
        return {
            "ours": partial(ours, path, idx),
            "noskip": partial(ours, path, idx, skip_nonref=False),
            "threads2": partial(ours, path, idx, workers=2),
            "floor": partial(keyframe_floor, path, idx),
            "decord": partial(decord_batch, path, idx),
            "qwen": partial(qwen_fetch, path, window, len(idx)),
        }[method]

    for rep in range(repeat):
        for method in methods[:: 1 if rep % 2 == 0 else -1]:
            if method in ("approx", "approxclip"):
                scratch: Times = {}  # approximate() files its times under APPROX
                approximate(path, ref, scratch, 1, clip_size=method == "approxclip")
                times.setdefault((ONE[method], task), []).extend(scratch[(APPROX, "coarse")])
            else:
                times.setdefault((ONE[method], task), []).append(timed(reader(method))[0])
    for method in methods:
        v = times[(ONE[method], task)]
        wall, cpu = statistics.median(w for w, _ in v), statistics.median(c for _, c in v)
        cpus = " ".join(f"{c:.2f}" for _, c in v)
        print(
            f"ONE | {path.name} | {task} | {ONE[method]} | {len(idx)} frames | {wall:.3f} s wall | {cpu:.2f} s CPU"
            f" (runs: {cpus})"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per method on the 10-minute file (median)")
    ap.add_argument("--hour-repeat", type=int, default=1, help="timed runs per method on the 1-hour file")
    ap.add_argument("--skip-hour", action="store_true", help="only the 10-minute file")
    ap.add_argument("--cache", type=Path, default=CACHE, help="where the generated files are kept")
    ap.add_argument(
        "--one",
        nargs=3,
        metavar=("FILE", "TASK", "METHOD"),
        help="time one method alone, or several (comma-separated) interleaved: FILE 10min|hour, TASK coarse|zoom, "
        "METHOD " + "|".join(ONE),
    )
    ap.add_argument("--first", type=int, default=0, help="with --one or --bound: only the first N frames of the plan")
    ap.add_argument(
        "--bound",
        action="store_true",
        help="the bound on the 1-hour file's exact coarse pass from its 24 s segment (frames by type, costs)",
    )
    ap.add_argument(
        "--bound-ours", type=int, default=48, help="with --bound: check ours' counters on the plan's first N frames"
    )
    args = ap.parse_args()
    if not DATA.exists():
        raise SystemExit(f"{DATA} is absent: this benchmark needs the shared data folder")
    args.cache.mkdir(parents=True, exist_ok=True)
    ten = ten_minute_file(args.cache)
    if args.bound:
        hour = hour_file(args.cache, ten)
        wanted = list(plans(hour, hour=True)["coarse"][0].frame_indices)[: args.first or None]
        decode_bound.run(args.cache / SEGMENT, hour, wanted, args.bound_ours, FLOOR_THREADS)
        return
    if args.one:
        name, task, method = args.one
        methods = method.split(",")
        if name not in ("10min", "hour") or task not in ("coarse", "zoom") or not set(methods) <= set(ONE):
            raise SystemExit(f"--one {' '.join(args.one)}: expected 10min|hour coarse|zoom {'|'.join(ONE)}[,...]")
        hour = name == "hour"
        run_one(hour_file(args.cache, ten) if hour else ten, hour, task, methods, args.repeat, args.first)
        return
    files = {"10 min": (ten, args.repeat, False)}
    if not args.skip_hour:
        files["1 hour"] = (hour_file(args.cache, ten), args.hour_repeat, True)
    print(f"torchcodec: {torchcodec_status()}; decoders per source here: {_fetch.default_workers()}")
    for path, _, _ in files.values():
        path.read_bytes()  # warm the page cache: time decoding, not the disk
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_read_share, [str(ten)] * 2, [[0], [1]]))  # start the workers (warm pool)
        results = {label: bench_file(label, p, r, pool, hour) for label, (p, r, hour) in files.items()}
    eval_rows(ten)
    report(results)


if __name__ == "__main__":
    main()
