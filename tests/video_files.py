"""Test videos: builders (OpenCV mp4v, PyAV libx264 / mpeg4) and the sequential-decode reference.

The reference for every pixel check is a plain sequential OpenCV decode (``read`` loop, BGR
reordered to RGB). The real H.264 clips come from the shared data folder when present.
"""

from __future__ import annotations

import fractions
import functools
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
from conftest import SHARED_DATA

from zoom_agent.video import Clip

DATA = SHARED_DATA / "videos"
BBB, BIKES = DATA / "bigbuckbunny.mp4", DATA / "bikes.mp4"


def _pattern(i: int, w: int, h: int) -> np.ndarray:
    """A frame that differs per index i (flat colour from i, plus a gradient)."""
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = (i * 37) % 256
    img[..., 1] = (i * 11 + np.arange(w)[None, :] * 3) % 256
    img[..., 2] = (np.arange(h)[:, None] * 5) % 256
    return img


def write_mp4v(path: Path, n: int, w: int = 64, h: int = 48, fps: float = 30.0) -> Path:
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (w, h))
    assert vw.isOpened(), "OpenCV's mp4v writer is unavailable"
    for i in range(n):
        vw.write(_pattern(i, w, h))
    vw.release()
    return path


def write_av(
    path: Path,
    n: int,
    *,
    w: int = 32,
    h: int = 24,
    rate: int = 25,
    codec: str = "libx264",
    pts_ms: Sequence[int] | None = None,
    gop: int | None = None,
    fmt: str | None = None,
) -> Path:
    """Encode n pattern frames with PyAV; ``pts_ms`` gives each frame's time (VFR)."""
    with av.open(str(path), "w", format=fmt) as out:
        s: Any = out.add_stream(codec, rate=rate)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        if gop:
            s.codec_context.gop_size = gop
        if pts_ms is not None:
            s.codec_context.time_base = fractions.Fraction(1, 1000)
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(_pattern(i, w, h), format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], fractions.Fraction(1, 1000)
            out.mux(s.encode(frame))
        out.mux(s.encode())
    return path


def sequential(path: Path) -> list[np.ndarray]:
    """Every frame of a sequential OpenCV decode, as RGB (cached per file version)."""
    st = path.stat()
    return _sequential(str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=8)
def _sequential(path: str, mtime_ns: int, size: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        rgb = np.ascontiguousarray(f[..., ::-1])
        rgb.flags.writeable = False  # shared by the cache: no test may paint on it
        frames.append(rgb)
    cap.release()
    return frames


def assert_exact(clip: Clip, ref: list[np.ndarray]) -> None:
    assert clip.frames.dtype == np.uint8 and clip.frames.ndim == 4
    assert len(clip.frames) == len(clip.frame_indices) == len(clip.timestamps)
    for k, i in enumerate(clip.frame_indices):
        assert np.array_equal(clip.frames[k], ref[i]), f"frame {i} differs from the sequential decode"


def needs(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent (shared test data not checked out)")
    return path


def index_sets(n: int, seed: int) -> list[list[int]]:
    """Index sets that stress a decoder: all, reversed, sparse sorted, random with repeats, far apart."""
    rnd = random.Random(seed)
    return [
        list(range(n)),
        list(range(n - 1, -1, -1)),
        sorted(rnd.sample(range(n), min(n, 16))),
        [rnd.randrange(n) for _ in range(24)],
        [n - 1, 0, n // 2, n // 2, 1],
    ]
