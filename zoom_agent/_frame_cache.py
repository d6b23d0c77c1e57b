"""The frame cache and decode counters behind `zoom_agent.video.VideoSource`.

Pure NumPy (OpenCV only inside `resize`), so it imports cheaply; `_decode` fills it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zoom_agent.lru import ByteLRU


@dataclass
class DecodeStats:
    """Counters for tests and benchmarks (updated under the source's lock)."""

    frames_decoded: int = 0  # returned by the decoder (consumed or not); a seek drops the few still inside it
    frames_converted: int = 0
    seeks: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    packets_sent: int = 0  # to the decoder; minus frames_decoded: frames skipped (NONREF)
    drains: int = 0  # runs flushed after their last wanted frame
    decode_calls: int = 0  # reads that had to decode (a cache miss)
    shared_clip_hits: int = 0  # coarse clips served from the shared copy (no decode, no resize)


class FrameCache(ByteLRU[int, np.ndarray]):
    """Native RGB frames keyed by frame index, bounded by bytes (the one `ByteLRU`).

    Frames are shared between clips, so each is made read-only as it goes in.
    """

    def put(self, key: int, value: np.ndarray) -> None:
        value.flags.writeable = False  # shared between clips: nobody may paint on it
        super().put(key, value)


def resize(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an (H, W, 3) frame: INTER_AREA when the area shrinks, INTER_CUBIC when it grows."""
    import cv2

    if frame.shape[1] == width and frame.shape[0] == height:
        return frame
    shrink = width * height < frame.shape[0] * frame.shape[1]  # by area when one side grows
    interp = cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
    return cv2.resize(frame, (width, height), interpolation=interp)
