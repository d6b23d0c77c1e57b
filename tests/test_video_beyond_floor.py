"""Decoding beyond the keyframe-seek floor (docs/video.md): skip, drain, parallel GOP runs,
the approximate mode, and one decode per video in an evaluation.

Every new path is checked pixel-identical to a sequential OpenCV decode, on the real H.264
clips (bigbuckbunny: no B-frames; bikes: B-frames, 46% of its frames unreferenced) and on
generated ones (libx264 with B-frames, mp4v, Matroska).
"""

from __future__ import annotations

import asyncio
import bisect
import math
import os
import random
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from video_files import BBB, BIKES, assert_exact, index_sets, needs, sequential, write_av, write_mp4v

from zoom_agent import _decode, video
from zoom_agent._frame_cache import resize
from zoom_agent.agent import ZoomAgent
from zoom_agent.approximate import snap_clip, snap_to_keyframes
from zoom_agent.config import AgentConfig, Budget
from zoom_agent.datasets.synthetic import make_synthetic_task
from zoom_agent.datasets.synthetic_video import loop_video
from zoom_agent.eval.runner import by_video, run_eval
from zoom_agent.geometry import GEOMETRY
from zoom_agent.models.base import VLMRequest
from zoom_agent.models.hf_render import read_clip_frames
from zoom_agent.models.scripted import ScriptedVLM
from zoom_agent.planning import plan_clip
from zoom_agent.types import ClipRef, Question, Span
from zoom_agent.video import VideoSource, open_video

QWEN25 = GEOMETRY["qwen2_5_vl"]
# Every way a VideoSource can decode: the plain floor, skip + drain, and GOP runs in parallel.
PATHS = {
    "floor": {"skip_nonref": False, "workers": 1},
    "skip": {"skip_nonref": True, "workers": 1},
    "parallel2": {"skip_nonref": True, "workers": 2},
    "parallel3-noskip": {"skip_nonref": False, "workers": 3},
}


@pytest.fixture(scope="module")
def vids(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    return {
        "h264-bframes": write_av(d / "bframes.mp4", 120, w=64, h=48, gop=25),
        "mp4v": write_mp4v(d / "synthetic.mp4", 40),
        "mkv": write_av(d / "clip.mkv", 50, rate=10, gop=10),
    }


@pytest.fixture(autouse=True)
def _fresh_pool() -> None:
    video.forget_videos()


def _clips(path: Path) -> list[list[int]]:
    n = len(sequential(path))
    rnd = random.Random(7)
    return [*index_sets(n, seed=5), sorted(rnd.sample(range(n), min(n, 40))), list(range(n // 3, n // 3 + 12))]


# --------------------------------------------------------------------------- pixel identity


@pytest.mark.parametrize("mode", PATHS)
@pytest.mark.parametrize("name", ["h264-bframes", "mp4v", "mkv"])
def test_every_path_pixel_exact_generated(vids: dict[str, Path], name: str, mode: str) -> None:
    ref = sequential(vids[name])
    shared = VideoSource(vids[name], **PATHS[mode])  # a moved decoder and a warm cache
    for idx in _clips(vids[name]):
        for src in (VideoSource(vids[name], **PATHS[mode]), shared):
            clip = src.read_indices(idx)
            assert clip.frame_indices == tuple(idx)
            assert_exact(clip, ref)


@pytest.mark.parametrize("mode", PATHS)
@pytest.mark.parametrize("path", [BBB, BIKES], ids=["bigbuckbunny", "bikes-bframes"])
def test_every_path_pixel_exact_real_h264(path: Path, mode: str) -> None:
    ref = sequential(needs(path))
    n = len(ref)
    rnd = random.Random(11)
    sets = [sorted(rnd.sample(range(n), 16)), [rnd.randrange(n) for _ in range(12)], [n - 1, 0, n // 2, 1]]
    if path == BIKES:  # small frames: the dense and reversed sets too
        sets += [list(range(n)), list(range(n - 1, -1, -3))]
    shared = VideoSource(path, cache_bytes=0, **PATHS[mode])  # no cache: every read decodes
    for idx in sets:
        assert_exact(VideoSource(path, **PATHS[mode]).read_indices(idx), ref)
        assert_exact(shared.read_indices(idx), ref)


# --------------------------------------------------------------------------- what each buys


def test_skip_decodes_fewer_frames_where_frames_are_unreferenced() -> None:
    idx = [20, 60, 100, 140, 180, 220]
    floor = VideoSource(needs(BIKES), skip_nonref=False, workers=1)
    skip = VideoSource(BIKES, workers=1)
    assert_exact(floor.read_indices(idx), sequential(BIKES))
    assert_exact(skip.read_indices(idx), sequential(BIKES))
    assert skip.stats.packets_sent == floor.stats.packets_sent  # same packets reach the decoder
    assert skip.stats.frames_decoded < 0.7 * floor.stats.frames_decoded  # measured: 88 vs 155
    # bigbuckbunny references every frame (I P P P ...): skipping cannot drop any
    floor, skip = VideoSource(needs(BBB), skip_nonref=False, workers=1), VideoSource(BBB, workers=1)
    floor.read_indices([40, 100])
    skip.read_indices([40, 100])
    assert skip.stats.frames_decoded == floor.stats.frames_decoded == skip.stats.packets_sent


def test_drain_decodes_one_frame_per_keyframe() -> None:
    src = VideoSource(needs(BIKES), workers=1)
    keys = list(src.keyframe_indices)
    assert keys[0] == 0 and len(keys) >= 4
    clip = src.read_indices(keys)
    assert_exact(clip, sequential(BIKES))
    assert src.stats.frames_decoded == src.stats.packets_sent == len(keys)  # no pipeline slack
    assert src.stats.drains == src.stats.seeks == len(keys)


def test_skip_fallback_when_a_wanted_frame_goes_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    # A decoder that drops a frame it was asked for (here: slot 1 of bikes, an unreferenced
    # B-frame, sent with NONREF behind the engine's back) must not cost a wrong frame: the
    # run notices the gap, skipping turns off for the file and the frame is decoded again.
    original = _decode.FrameDecoder._set_skip
    lied: list[int] = []

    def lying(self: _decode.FrameDecoder, slot: int | None) -> None:
        if slot == 1 and not lied and self.skip_nonref:
            lied.append(slot)
            self._want = self._want - {1}
            original(self, slot)
            self._want, self._skipped = self._want | {1}, self._skipped - {1}
            return
        original(self, slot)

    monkeypatch.setattr(_decode.FrameDecoder, "_set_skip", lying)
    src = VideoSource(needs(BIKES), workers=1)
    clip = src.read_indices([0, 1, 5])
    assert lied == [1]
    assert_exact(clip, sequential(BIKES))
    assert clip.frame_indices == (0, 1, 5)
    assert src._decoders.main.skip_nonref is False  # the fallback holds for the file


def test_variable_frame_rate_and_raw_streams_keep_the_floor(tmp_path: Path) -> None:
    gaps = [200 if k % 2 == 0 else 40 for k in range(30)]
    vfr = VideoSource(write_av(tmp_path / "vfr.mp4", 30, pts_ms=[sum(gaps[:k]) for k in range(30)]))
    raw = VideoSource(write_av(tmp_path / "clip.h264", 20, rate=10, fmt="h264"))
    for src in (vfr, raw):
        assert not src._decoders.main.smart and not src._decoders.main.skip_nonref


def test_parallel_runs_share_the_work_and_the_counters(vids: dict[str, Path]) -> None:
    path = needs(BIKES)
    src = VideoSource(path, workers=2)
    idx = [10, 50, 100, 150, 200, 245]
    runs = src._decoders.main.runs(idx)
    assert len(runs) >= 4
    clip = src.read_indices(idx)
    assert_exact(clip, sequential(path))
    assert len(src._decoders._helpers) == 1  # the second share went to a helper decoder
    one = VideoSource(path, workers=1)
    one.read_indices(idx)
    assert src.stats.seeks == one.stats.seeks == len(runs)  # helpers' counters are added in
    assert src.stats.frames_decoded == one.stats.frames_decoded


async def test_parallel_source_under_asyncio_threads(vids: dict[str, Path]) -> None:
    path = vids["h264-bframes"]
    src = VideoSource(path, workers=3, cache_bytes=20 * 64 * 48 * 3)  # small: forces re-decodes
    ref = sequential(path)
    sets = [[i, i + 37, i + 71, i + 3] for i in range(0, 45, 5)]
    clips = await asyncio.gather(*(asyncio.to_thread(src.read_indices, s) for s in sets))
    for s, clip in zip(sets, clips, strict=True):
        assert clip.frame_indices == tuple(s)
        assert_exact(clip, ref)


def test_bad_worker_count(vids: dict[str, Path]) -> None:
    with pytest.raises(video.VideoError, match=r"synthetic\.mp4: decode workers must be >= 1, got -1"):
        VideoSource(vids["mp4v"], workers=-1)


# --------------------------------------------------------------------------- approximate mode


def _ref(n: int, fps: float, indices: list[int]) -> ClipRef:
    return ClipRef(
        path="/v.mp4",
        span=Span(start=0, end=n / fps),
        frame_indices=tuple(indices),
        timestamps=tuple(i / fps for i in indices),
        fps=fps,
        num_source_frames=n,
        width=56,
        height=28,
        visual_tokens=8,
    )


def test_snap_moves_frames_to_keyframes_within_the_tolerance() -> None:
    ref = _ref(1000, 25.0, [0, 100, 200, 300, 400, 500])
    keys = [0, 90, 130, 260, 262, 399, 700]
    out = snap_to_keyframes(ref, keys, 2.0)  # 50 frames
    # 200: keyframes 130 (70 away) and 260 (60 away) are beyond 50 frames: exact
    assert out.frame_indices == (0, 90, 200, 262, 399, 500)
    assert out.timestamps == tuple(i / 25.0 for i in out.frame_indices)  # the true times
    assert out.keyframe_tolerance == 2.0
    same = ("span", "width", "height", "visual_tokens", "fps", "num_source_frames", "role", "path")
    assert all(getattr(out, f) == getattr(ref, f) for f in same)  # the budget rule is unchanged
    assert snap_to_keyframes(ref, keys, 0.0).frame_indices == ref.frame_indices
    assert ref.keyframe_tolerance is None


def test_snap_never_repeats_or_reorders_frames() -> None:
    ref = _ref(100, 10.0, [10, 11, 12, 13, 14])
    out = snap_to_keyframes(ref, [12], 5.0)
    assert out.frame_indices == (12, 13, 14, 15, 16)  # one keyframe, used once; the rest move on
    assert list(out.frame_indices) == sorted(set(out.frame_indices))


@pytest.mark.parametrize("bad", [-0.5, math.nan, math.inf, "1", True])
def test_snap_rejects_a_bad_tolerance(bad: Any) -> None:
    with pytest.raises(ValueError, match="keyframe tolerance"):
        snap_to_keyframes(_ref(10, 1.0, [1]), [0], bad)


def test_approximate_clip_is_truthful_and_reads_one_frame_per_sample(tmp_path: Path) -> None:
    # a 5-minute real H.264 file (bigbuckbunny looped: a keyframe every 5.28 s)
    long = loop_video(needs(BBB), tmp_path / "bbb_5min.mp4", loops=57)
    src = VideoSource(long)
    info = src.info
    exact = plan_clip(info, info.whole, Budget(), QWEN25, max_frames=32)
    approx = snap_clip(exact, 3.0)
    assert approx.keyframe_tolerance == 3.0 and approx.num_frames == exact.num_frames
    keys = src.keyframe_indices
    assert keys == tuple(range(0, info.num_frames, 132))
    far = [i for i in approx.frame_indices if i not in keys]
    assert far == [info.num_frames - 1]  # the last frame: 5.24 s after the last keyframe, kept exact
    shifts = [abs(a - e) for a, e in zip(approx.timestamps, exact.timestamps, strict=True)]
    assert max(shifts) <= 3.0
    clip = open_video(long).read_clip(approx.model_copy(update={"width": info.width, "height": info.height}))
    assert clip.frame_indices == approx.frame_indices
    assert clip.timestamps == approx.timestamps == tuple(i / info.fps for i in clip.frame_indices)
    ref = sequential(needs(BBB))  # the loop repeats the 132-frame clip
    for k, i in enumerate(clip.frame_indices):
        assert np.array_equal(clip.frames[k], ref[i % len(ref)]), f"frame {i}"
    # one frame per keyframe sample; the exact last frame costs its GOP (131 frames + its keyframe)
    assert open_video(long).stats.frames_decoded == (exact.num_frames - 1) + 132


def test_approximate_mode_is_off_by_default_and_in_the_trace_when_on(vids: dict[str, Path]) -> None:
    path = needs(BIKES)
    question = Question(id="q", video=str(path), question="Which?", options=("a", "b"))

    def run(config: AgentConfig) -> ClipRef:
        model = ScriptedVLM(["<answer>A</answer>\n<glue>[(1.0, 2.0)]</glue>"])
        result = asyncio.run(ZoomAgent(model, config).arun(question))
        assert result.status == "answered", result.error
        (coarse,) = result.turns[0].clips
        return coarse

    assert AgentConfig().approximate_coarse is None
    exact = run(AgentConfig())
    assert exact.keyframe_tolerance is None
    approx = run(AgentConfig(approximate_coarse=1.5))
    assert approx.keyframe_tolerance == 1.5 and approx.num_frames == exact.num_frames
    assert approx.visual_tokens == exact.visual_tokens
    keys = set(open_video(path).keyframe_indices)
    assert keys & set(approx.frame_indices) and not keys >= set(exact.frame_indices)
    with pytest.raises(ValueError, match="approximate_coarse"):
        AgentConfig(approximate_coarse=-1.0)


# --------------------------------------------------------------------------- evaluation


def test_eval_decodes_each_videos_coarse_frames_once(tmp_path: Path) -> None:
    questions = make_synthetic_task(tmp_path / "synth", num_videos=2, seed=4, size=(160, 120))
    first = {q.video: q for q in reversed(questions)}  # one question per video
    videos = sorted(first)
    assert len(videos) == 2
    # five questions per video, interleaved as a dataset file could list them
    many = [first[v].model_copy(update={"id": f"{first[v].id}-{k}"}) for k in range(5) for v in videos]
    assert [q.video for _, q in by_video(list(enumerate(many)))[:5]] == [many[0].video] * 5
    reads: list[ClipRef] = []

    def reader(request: VLMRequest) -> str:  # reads its clips the way the transformers backend does
        for turn in request.turns:
            for ref in turn.clips:
                read_clip_frames(ref)
                reads.append(ref)
        return "<answer>A</answer>\n<glue>[(1.0, 2.0)]</glue>"

    agent = ZoomAgent(ScriptedVLM(reader), AgentConfig(strategy="single"))
    summary = asyncio.run(run_eval(agent, many, tmp_path / "run", concurrency=4, progress=False))
    assert summary.answered == len(many) == 10
    for v in videos:
        src = open_video(v)
        coarse = [r for r in reads if Path(r.path) == src.path]
        assert len(coarse) == 5 and len(set(coarse)) == 1  # one shared coarse plan per video
        assert src.stats.decode_calls == 1  # decoded once for its five questions
        assert src.stats.frames_converted == coarse[0].num_frames
        assert src.stats.shared_clip_hits == 4
        assert src._cache.nbytes <= src._cache.max_bytes


# --------------------------------------------------------------------------- keyframe readers


@pytest.mark.parametrize("name", ["h264-bframes", "mkv", "bikes-bframes", "bigbuckbunny", "vfr", "raw"])
def test_key_before_agrees_with_the_index_scan(vids: dict[str, Path], tmp_path: Path, name: str) -> None:
    # runs() finds each slot's keyframe with one index search instead of reading every entry
    # (keyframe_slots, 44 ms on the 1-hour file): the same keyframe for every slot.
    gaps = [200 if k % 2 == 0 else 40 for k in range(30)]
    path = {
        **vids,
        "bikes-bframes": BIKES,
        "bigbuckbunny": BBB,
        "vfr": write_av(tmp_path / "vfr.mp4", 30, pts_ms=[sum(gaps[:k]) for k in range(30)], gop=4),
        "raw": write_av(tmp_path / "clip.h264", 20, rate=10, fmt="h264"),
    }[name]
    src = VideoSource(needs(path))
    dec = src._decoders.main
    keys = dec.keyframe_slots()
    for s in range(src.info.num_frames):
        k = bisect.bisect_right(keys, s) - 1
        assert dec.key_before(s) == (keys[k] if k >= 0 else None), f"slot {s}"
    if name == "raw":
        assert keys == [] and dec.key_before(5) is None


@pytest.mark.parametrize("workers", [0, 1, 2, 3])
@pytest.mark.parametrize("path", [BIKES, BBB], ids=["bikes-bframes", "bigbuckbunny-loop"])
def test_keyframe_requests_go_to_single_thread_readers(tmp_path: Path, path: Path, workers: int) -> None:
    # A request made only of keyframes (the approximate mode's coarse view) decodes each
    # keyframe alone: on decoders without frame threads, several in parallel; exact frames.
    if path == BBB:  # one keyframe in the clip: loop it for several
        path = loop_video(needs(BBB), tmp_path / "bbb_4.mp4", loops=4)
    ref = sequential(needs(path))
    src = VideoSource(path, workers=workers)
    keys = list(src.keyframe_indices)
    assert len(keys) >= 4
    clip = src.read_indices(keys[::-1])
    assert clip.frame_indices == tuple(keys[::-1])
    for k, i in enumerate(clip.frame_indices):
        assert np.array_equal(clip.frames[k], ref[i % len(ref)]), f"frame {i}"
    d = src._decoders
    assert d.reader_count == (workers or min(os.cpu_count() or 1, 8))
    assert len(d._readers) == min(d.reader_count, len(keys)) and d._helpers == []
    assert all(r.threads == 1 for r in d._readers)
    assert src.stats.frames_decoded == src.stats.seeks == src.stats.drains == len(keys)  # readers' counters in
    assert d.main.stats.frames_decoded == len(keys) and all(r.stats.frames_decoded == 0 for r in d._readers)
    # a request with one frame that is not a keyframe takes the usual decoders
    other = VideoSource(path, workers=workers)
    other.read_indices([*keys[:2], keys[1] + 3])
    assert other._decoders._readers == []
    # as the approximate mode's plans: keyframes and an exact last frame (in the last
    # keyframe's run): the lone keyframes go to the readers, that run to the main decoder
    mixed = VideoSource(path, workers=workers)
    last = mixed.info.num_frames - 1
    clip = mixed.read_indices([*keys, last])
    for k, i in enumerate(clip.frame_indices):
        assert np.array_equal(clip.frames[k], ref[i % len(ref)]), f"frame {i}"
    assert len(mixed._decoders._readers) == min(mixed._decoders.reader_count, len(keys) - 1)
    assert mixed._decoders.main._pos == last  # the main decoder read the last keyframe's run


@pytest.mark.parametrize("path", [BIKES, BBB], ids=["bikes-bframes", "bigbuckbunny-loop"])
def test_many_run_requests_go_to_single_thread_readers(
    tmp_path: Path, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A coarse pass has one run per GOP: with the default workers those runs go to one
    # single-thread decoder per core (here 2), not to one frame-threaded decoder; exact
    # frames. Explicit workers, and a request of few runs (a zoom), keep the main decoder.
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    if path == BBB:  # one keyframe in the clip: loop it for several
        path = loop_video(needs(BBB), tmp_path / "bbb_6.mp4", loops=6)
    ref = sequential(needs(path))
    src = VideoSource(path)
    wanted = [k + 2 for k in src.keyframe_indices]  # one run per GOP, no keyframe among them
    assert len(wanted) >= 4
    clip = src.read_indices(wanted)
    assert clip.frame_indices == tuple(wanted)
    for k, i in enumerate(clip.frame_indices):
        assert np.array_equal(clip.frames[k], ref[i % len(ref)]), f"frame {i}"
    d = src._decoders
    assert len(d._readers) == 2 and all(r.threads == 1 for r in d._readers) and d._helpers == []
    assert src.stats.frames_decoded >= len(wanted) and all(r.stats.frames_decoded == 0 for r in d._readers)
    for workers, request in ((1, wanted), (0, wanted[:3])):
        other = VideoSource(path, workers=workers)
        clip = other.read_indices(request)
        assert other._decoders._readers == [], (workers, request)
        for k, i in enumerate(clip.frame_indices):
            assert np.array_equal(clip.frames[k], ref[i % len(ref)]), f"frame {i}"


def test_read_clip_never_stacks_native_frames(tmp_path: Path) -> None:
    # read_clip resizes straight from the decoded frames, never stacking them at native size
    # first. Decoded frames live in FFmpeg's buffers (not traced); a numpy stack is traced.
    path = loop_video(needs(BBB), tmp_path / "bbb_2.mp4", loops=2)
    src = VideoSource(path, cache_bytes=0)  # nothing kept: every read decodes
    info = src.info
    plan = plan_clip(info, info.whole, Budget(), QWEN25, max_frames=24)
    ref = plan.model_copy(update={"width": 112, "height": 56})  # a coarse view of a long video: small
    want = np.stack([resize(f, 112, 56) for f in src.read_indices(ref.frame_indices).frames])
    native = ref.num_frames * info.width * info.height * 3
    tracemalloc.start()
    try:
        clip = src.read_clip(ref)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert np.array_equal(clip.frames, want)  # the same pixels as resizing the native read
    assert peak < 0.2 * native  # with the native stack: 1.0x
