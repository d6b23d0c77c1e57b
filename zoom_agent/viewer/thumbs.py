"""Thumbnails of what the model saw: a clip's frames, decoded from its `ClipRef`, small JPEGs.

Files are named by the clip's content hash, so a clip seen in several turns (or pages) is
written once. A clip whose video cannot be read gives no thumbnails (the page says so).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from zoom_agent.types import ClipRef

THUMB_HEIGHT = 72  # pixels
MAX_THUMBS = 16  # per clip: evenly spaced frames beyond that


def clip_key(ref: ClipRef) -> str:
    """A short stable name for a clip (its path, frames and size)."""
    return hashlib.sha1(ref.model_dump_json().encode()).hexdigest()[:16]


def write_thumbs(ref: ClipRef, folder: Path) -> list[tuple[float, str]]:
    """Write the clip's thumbnails into ``folder``; return ``(time, file name)`` per thumbnail.

    Returns an empty list when the video cannot be read.
    """
    import cv2

    from zoom_agent.video import VideoError, open_video

    picks = np.unique(np.linspace(0, ref.num_frames - 1, min(ref.num_frames, MAX_THUMBS)).round().astype(int))
    names = [f"{clip_key(ref)}-{int(i)}.jpg" for i in picks]
    times = [float(ref.timestamps[i]) for i in picks]
    if all((folder / n).is_file() for n in names):
        return list(zip(times, names, strict=True))
    try:
        clip = open_video(ref.path).read_clip(ref)
    except (VideoError, OSError, ValueError):
        return []
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, name, t in zip(picks, names, times, strict=True):
        if i >= len(clip.frames):
            continue
        frame = clip.frames[i]
        h, w = frame.shape[:2]
        small = cv2.resize(frame, (max(1, round(w * THUMB_HEIGHT / h)), THUMB_HEIGHT), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [int(cv2.IMWRITE_JPEG_QUALITY), 85])
        if ok:
            (folder / name).write_bytes(buf.tobytes())
            out.append((t, name))
    return out
