"""VideoSource and open_video: metadata, pixel-exact sampling, cache, threads, bad input.

The reference for every pixel check is a plain sequential OpenCV decode (``read`` loop,
BGR reordered to RGB). Small videos are generated here (OpenCV's mp4v writer, PyAV with
libx264 / mpeg4); the real H.264 clips come from ../shared/data/videos when present.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import threading
from pathlib import Path
from typing import cast

import cv2
import numpy as np
import pytest
from video_files import BBB, BIKES, assert_exact, index_sets, needs, sequential, write_av, write_mp4v

from zoom_agent import video
from zoom_agent.config import Budget
from zoom_agent.datasets.synthetic_video import loop_video
from zoom_agent.geometry import GEOMETRY
from zoom_agent.planning import plan_clip
from zoom_agent.types import Span
from zoom_agent.video import VideoError, VideoSource, open_video

QWEN25 = GEOMETRY["qwen2_5_vl"]


@pytest.fixture(scope="module")
def vids(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    return {
        "mp4v": write_mp4v(d / "synthetic.mp4", 40),
        "h264": write_av(d / "h264_gop10.mp4", 60, gop=10),
        "mkv": write_av(d / "clip.mkv", 50, rate=10, gop=10),
    }


@pytest.fixture(autouse=True)
def _fresh_pool() -> None:
    video.forget_videos()


# --------------------------------------------------------------------------- metadata


def test_info_mp4v_without_decoding(vids: dict[str, Path]) -> None:
    src = VideoSource(vids["mp4v"])
    info = src.info
    assert (info.width, info.height, info.num_frames) == (64, 48, 40)
    assert info.fps == pytest.approx(30.0)
    assert info.duration == pytest.approx(40 / 30)
    assert info.path == str(vids["mp4v"].resolve())
    assert src.stats.frames_decoded == 0 and not src.vfr


def test_info_real_h264() -> None:
    for path, (w, h, n) in [(BBB, (1280, 720, 132)), (BIKES, (640, 272, 250))]:
        info = VideoSource(needs(path)).info
        assert (info.width, info.height, info.num_frames, info.fps) == (w, h, n, 25.0)
        assert info.duration == pytest.approx(n / 25)


# --------------------------------------------------------------------------- pixel identity


@pytest.mark.parametrize("name", ["mp4v", "h264", "mkv"])
def test_pixel_exact_generated(vids: dict[str, Path], name: str) -> None:
    ref = sequential(vids[name])
    for idx in index_sets(len(ref), seed=1):
        clip = VideoSource(vids[name]).read_indices(idx)  # fresh source: cold decoder
        assert clip.frame_indices == tuple(idx)
        assert_exact(clip, ref)


@pytest.mark.parametrize("path", [BBB, BIKES], ids=["bigbuckbunny", "bikes-bframes"])
def test_pixel_exact_real_h264(path: Path) -> None:
    ref = sequential(needs(path))
    shared = VideoSource(path)
    sets = index_sets(len(ref), seed=0)
    if path == BBB:  # 720p: whole-clip reads cost seconds of memory traffic, keep the sparse ones
        sets = [*sets[2:], list(range(40, 70))]
    for idx in sets:
        assert_exact(VideoSource(path).read_indices(idx), ref)
        assert_exact(shared.read_indices(idx), ref)  # warm cache and a moved decoder


def test_far_frames_decode_only_their_gops(vids: dict[str, Path]) -> None:
    src = VideoSource(vids["h264"])  # keyframe every 10 frames
    clip = src.read_indices([3, 27, 55])
    assert_exact(clip, sequential(vids["h264"]))
    # floor: GOP 0 frames 0..3, GOP 20 frames 20..27, GOP 50 frames 50..55 (+ pipeline slack)
    assert src.stats.frames_decoded <= (4 + 8 + 6) + 3 * 4
    assert src.stats.seeks == 3


def test_read_times_nearest_frame(vids: dict[str, Path]) -> None:
    src = VideoSource(vids["mp4v"])  # 30 fps, 40 frames
    clip = src.read([0.0, 0.049, 0.051, 1.0, -5.0, 99.0, cast(float, np.float32(0.5))])
    assert clip.frame_indices == (0, 1, 2, 30, 0, 39, 15)
    assert clip.timestamps == tuple(i / 30 for i in clip.frame_indices)
    assert_exact(clip, sequential(vids["mp4v"]))
    for bad in [float("nan"), float("inf"), "1.0"]:
        with pytest.raises(VideoError, match=r"synthetic\.mp4"):
            src.read([bad])  # type: ignore[list-item]


def test_read_clip_resizes(vids: dict[str, Path]) -> None:
    src = VideoSource(vids["mp4v"])
    ref = sequential(vids["mp4v"])
    big = plan_clip(src.info, Span(start=0.2, end=0.8), Budget(), QWEN25, role="zoom")
    assert (big.width, big.height) == (56, 56)  # 64x48 rounded to the 28 grid: slight upscale
    clip = src.read_clip(big)
    assert clip.frames.shape == (big.num_frames, 56, 56, 3)
    assert clip.frame_indices == big.frame_indices and clip.timestamps == big.timestamps
    want = cv2.resize(ref[big.frame_indices[0]], (56, 56), interpolation=cv2.INTER_CUBIC)
    assert np.array_equal(clip.frames[0], want)
    small = big.model_copy(update={"width": 28, "height": 28})
    want = cv2.resize(ref[big.frame_indices[0]], (28, 28), interpolation=cv2.INTER_AREA)
    assert np.array_equal(src.read_clip(small).frames[0], want)
    with pytest.raises(VideoError, match="another file"):
        src.read_clip(big.model_copy(update={"path": str(vids["mkv"])}))


# --------------------------------------------------------------------------- cache


def test_cache_reuses_frames_and_is_bounded(vids: dict[str, Path]) -> None:
    src = VideoSource(vids["h264"])
    src.read_indices([0, 10, 20, 30, 40, 50])  # a coarse pass
    decoded = src.stats.frames_decoded
    src.read_indices([20, 21, 22, 30])  # a zoom that overlaps it
    assert src.stats.cache_hits == 2
    assert src.stats.frames_decoded - decoded <= 3 + 4  # 21, 22 (+ pipeline slack), not 20, 30
    frame_bytes = 32 * 24 * 3
    tiny = VideoSource(vids["h264"], cache_bytes=8 * frame_bytes)  # a quarter is kept for the coarse clip
    ref = sequential(vids["h264"])
    assert_exact(tiny.read_indices(list(range(0, 60, 3))), ref)
    assert len(tiny._cache) == 6 and tiny._cache.nbytes <= 6 * frame_bytes
    none = VideoSource(vids["h264"], cache_bytes=0)
    assert_exact(none.read_indices([5, 5, 6]), ref)
    assert len(none._cache) == 0


def test_clip_frames_are_private_copies(vids: dict[str, Path]) -> None:
    src = VideoSource(vids["mp4v"])
    clip = src.read_indices([3])
    clip.frames[:] = 0  # a caller painting on its clip must not corrupt the cache
    assert_exact(src.read_indices([3]), sequential(vids["mp4v"]))


# --------------------------------------------------------------------------- threads, asyncio


def test_threads_share_one_source(vids: dict[str, Path]) -> None:
    src = VideoSource(vids["h264"], cache_bytes=10 * 32 * 24 * 3)  # small: forces re-decodes
    ref = sequential(vids["h264"])
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        rnd = random.Random(seed)
        try:
            for _ in range(15):
                assert_exact(src.read_indices([rnd.randrange(60) for _ in range(5)]), ref)
        except BaseException as e:  # collected and re-raised in the main thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


async def test_asyncio_to_thread(vids: dict[str, Path]) -> None:
    src = open_video(vids["h264"])
    ref = sequential(vids["h264"])
    sets = [[i, i + 7, i + 19] for i in range(0, 40, 4)]
    clips = await asyncio.gather(*(asyncio.to_thread(src.read_indices, s) for s in sets))
    for s, clip in zip(sets, clips, strict=True):
        assert clip.frame_indices == tuple(s)
        assert_exact(clip, ref)


# --------------------------------------------------------------------------- open_video


def test_open_video_shares_by_resolved_path(
    vids: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    a = open_video(vids["mp4v"])
    monkeypatch.chdir(vids["mp4v"].parent)
    assert open_video("synthetic.mp4") is a
    assert open_video(f"./../{vids['mp4v'].parent.name}/synthetic.mp4") is a
    assert open_video(vids["mkv"]) is not a
    monkeypatch.setattr(video, "MAX_OPEN_SOURCES", 2)
    open_video(vids["h264"])  # the third file pushes out the least recently used (mp4v)
    assert open_video(vids["mkv"]) is open_video(vids["mkv"])
    assert open_video(vids["mp4v"]) is not a
    moving = write_mp4v(tmp_path / "changes.mp4", 10)
    first = open_video(moving)
    write_mp4v(moving, 12)  # rewritten in place: a new source with the new metadata
    assert open_video(moving).info.num_frames == 12 and first.info.num_frames == 10


def test_light_import() -> None:
    code = "import sys, zoom_agent.video; print(sorted({'cv2', 'av', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- bad input


def test_bad_paths(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mp4"
    with pytest.raises(VideoError, match=r"nope\.mp4: no such file"):
        VideoSource(missing)
    with pytest.raises(VideoError, match="is a directory"):
        open_video(tmp_path)
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    with pytest.raises(VideoError, match=r"notes\.mp4: cannot be opened as a video"):
        VideoSource(text)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoError, match=r"empty\.mp4"):
        VideoSource(empty)


def test_zero_frame_file(tmp_path: Path) -> None:
    path = tmp_path / "zero.mp4"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 25, (32, 24))
    vw.release()  # header, no frames
    with pytest.raises(VideoError, match=r"zero\.mp4: .*(no video stream|no video frames|cannot be opened)"):
        VideoSource(path)


def test_bad_indices(vids: dict[str, Path]) -> None:
    src = VideoSource(vids["mp4v"])
    for bad in ([40], [-1], [1.5], [True], ["3"]):
        with pytest.raises(VideoError, match=r"synthetic\.mp4: frame index .* not an integer in \[0, 40\)"):
            src.read_indices(bad)  # type: ignore[arg-type]
    with pytest.raises(VideoError, match="no frames requested"):
        src.read_indices([])
    src.close()
    with pytest.raises(VideoError, match="closed"):
        src.read_indices([1])


def test_truncated_h264_without_index(tmp_path: Path) -> None:
    data = needs(BBB).read_bytes()  # its index (moov) sits after the data: cut, it is gone
    cut = tmp_path / "bbb_half.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match=r"bbb_half\.mp4: cannot be opened as a video"):
        VideoSource(cut)


def test_truncated_h264_with_index(tmp_path: Path) -> None:
    faststart = loop_video(needs(BBB), tmp_path / "bbb_faststart.mp4", options={"movflags": "faststart"})
    data = faststart.read_bytes()
    cut = tmp_path / "bbb_faststart_half.mp4"
    cut.write_bytes(data[: len(data) // 2])
    src = VideoSource(cut)
    n = src.info.num_frames
    assert 20 < n < 132, "info counts only frames whose bytes are in the file"
    assert any("truncated" in note for note in src.notes)
    ref = sequential(BBB)
    assert_exact(src.read_indices([0, n // 2, n - 1]), ref)


def test_container_claims_missing_frames(tmp_path: Path) -> None:
    whole = write_av(tmp_path / "whole.mkv", 100, rate=10, gop=10, fmt="matroska")
    data = whole.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])  # the header still says 10 s = 100 frames
    src = VideoSource(cut)
    assert src.info.num_frames == 100
    ref = sequential(whole)
    clip = src.read_indices([10, 95, 12])
    assert clip.frame_indices == (10, 12)  # frame 95 is not in the file: left out
    assert_exact(clip, ref)
    with pytest.raises(VideoError, match=r"cut\.mkv: none of the frames \[95, 99\] could be decoded"):
        src.read_indices([95, 99])


def test_wrong_fps_and_count_raw_stream(tmp_path: Path) -> None:
    raw = write_av(tmp_path / "clip.h264", 50, rate=10, fmt="h264")  # no container timing
    cap = cv2.VideoCapture(str(raw))
    cv_fps, cv_count = cap.get(cv2.CAP_PROP_FPS), cap.get(cv2.CAP_PROP_FRAME_COUNT)
    cap.release()
    assert cv_fps != 10 or cv_count != 50, "OpenCV was expected to misreport this file"
    src = VideoSource(raw)
    assert (src.info.fps, src.info.num_frames, src.info.duration) == (10.0, 50, 5.0)
    assert any("OpenCV reports" in note for note in src.notes)
    ref = sequential(raw)
    for idx in index_sets(50, seed=3):
        assert_exact(src.read_indices(idx), ref)


def test_one_pixel_video(tmp_path: Path) -> None:
    path = write_av(tmp_path / "dot.mp4", 6, w=1, h=1, codec="mpeg4")
    src = VideoSource(path)
    assert (src.info.width, src.info.height, src.info.num_frames) == (1, 1, 6)
    assert_exact(src.read_indices([5, 0, 3]), sequential(path))
    ref = plan_clip(src.info, src.info.whole, Budget(), QWEN25)
    assert (ref.width, ref.height) == (28, 28)  # one patch: the patch rounding, no more
    assert src.read_clip(ref).frames.shape == (ref.num_frames, 28, 28, 3)


def test_ten_hour_video_metadata_only(tmp_path: Path) -> None:
    # 10 h at 25 fps (900,000 frames), 16x16: a 60 s libx264 clip looped 600 times by remux.
    clip = write_av(tmp_path / "minute.mp4", 1500, w=16, h=16, rate=25, gop=250)
    long = loop_video(clip, tmp_path / "ten_hours.mp4", loops=600)
    src = VideoSource(long)
    assert src.info.num_frames == 900_000 and src.info.duration == pytest.approx(36_000)
    assert src.stats.frames_decoded == 0, "metadata must come from the container alone"
    ref = sequential(clip)
    got = src.read_indices([899_999, 450_061, 3])
    assert got.frame_indices == (899_999, 450_061, 3)
    for k, i in enumerate(got.frame_indices):
        assert np.array_equal(got.frames[k], ref[i % 1500])
    assert src.stats.frames_decoded <= 3 * (250 + 4), "only the three GOPs are decoded"
    whole = plan_clip(src.info, src.info.whole, Budget(), QWEN25)
    assert whole.num_frames == 768 and whole.frame_indices[-1] == 899_999


def test_variable_frame_rate(tmp_path: Path) -> None:
    # 30 frames, alternating 200 ms and 40 ms on screen: 3.6 s at an average 8.33 fps.
    gaps = [200 if k % 2 == 0 else 40 for k in range(30)]
    pts = [sum(gaps[:k]) for k in range(30)]
    path = write_av(tmp_path / "vfr.mp4", 30, pts_ms=pts)
    src = VideoSource(path)
    info = src.info
    assert src.vfr and any("variable frame rate" in note for note in src.notes)
    assert info.num_frames == 30 and info.duration == pytest.approx(3.6, abs=0.05)
    fps = info.fps
    assert fps == pytest.approx(30 / info.duration)
    ref = sequential(path)  # ordinal: ref[k] has time pts[k]
    slots = [round(p / 1000 * fps) for p in pts]
    for i in range(info.num_frames):
        exact = [k for k, s in enumerate(slots) if s == i]
        want = exact[0] if exact else max(k for k, s in enumerate(slots) if s < i)
        # index i returns the frame on screen at i / fps, within half a slot
        assert pts[want] / 1000 <= i / fps + 0.5 / fps
        assert np.array_equal(src.read_indices([i]).frames[0], ref[want]), f"slot {i}"
    fresh = VideoSource(path).read_indices(list(range(29, -1, -3)))
    assert fresh.timestamps == tuple(i / fps for i in fresh.frame_indices)
