"""The approximate mode: coarse views of long videos read only keyframes (docs/video.md §5).

A keyframe decodes alone (one seek, one frame), where an exact frame costs on average half a
GOP of decoding. The approximate mode moves each planned frame of a view to the nearest
keyframe within a stated tolerance, so the view costs one frame per sample. It is off by
default and never silent:

- the returned `ClipRef` names the frames it will return: ``frame_indices`` and
  ``timestamps`` are the snapped frames' true ones (never the requested times), so the
  prompt's captions and Qwen3-VL's ``<t seconds>`` stay truthful;
- ``keyframe_tolerance`` is set on it, and the agent's trace keeps every clip it showed;
- the frame count, size and visual tokens are the plan's: the budget rule is unchanged.

A planned frame with no unused keyframe within the tolerance keeps its exact frame.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

from zoom_agent.types import ClipRef


def snap_to_keyframes(ref: ClipRef, keyframes: Sequence[int], tolerance: float) -> ClipRef:
    """Move each planned frame to the nearest unused keyframe within ``tolerance`` seconds.

    Args:
        ref: the planned clip (`zoom_agent.planning.plan_clip`).
        keyframes: ascending frame indices of the source's keyframes
            (`zoom_agent.video.VideoSource.keyframe_indices`).
        tolerance: the largest shift of a frame, in seconds (finite, >= 0).

    Returns:
        A copy of ``ref`` with the snapped frames (ascending, no repeats where the video has
        room), their true timestamps, and ``keyframe_tolerance = tolerance``.

    Raises:
        ValueError: ``tolerance`` is not a finite number >= 0.
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or not math.isfinite(tolerance):
        raise ValueError(f"keyframe tolerance must be a finite number of seconds, got {tolerance!r}")
    if tolerance < 0:
        raise ValueError(f"keyframe tolerance must be >= 0 seconds, got {tolerance}")
    keys = sorted(set(keyframes))
    reach = tolerance * ref.fps  # in frames
    last = ref.num_source_frames - 1
    out: list[int] = []
    for i in ref.frame_indices:
        prev = out[-1] if out else -1
        lo = bisect.bisect_right(keys, prev)  # keyframes not used yet (after the previous pick)
        j = bisect.bisect_left(keys, i, lo)
        near = [k for k in keys[max(lo, j - 1) : j + 1] if abs(k - i) <= reach]
        pick = min(near, key=lambda k: (abs(k - i), k)) if near else min(max(i, prev + 1), last)
        out.append(pick)
    fps = ref.fps
    return ref.model_copy(
        update={
            "frame_indices": tuple(out),
            "timestamps": tuple(i / fps for i in out),
            "keyframe_tolerance": float(tolerance),
        }
    )


def snap_clip(ref: ClipRef, tolerance: float) -> ClipRef:
    """`snap_to_keyframes` with the keyframes of ``ref``'s file (its shared `VideoSource`).

    Reads the container index only (no decode). Raises `zoom_agent.video.VideoError` for a
    file that cannot be opened, ValueError as `snap_to_keyframes`.
    """
    from zoom_agent.video import open_video

    return snap_to_keyframes(ref, open_video(ref.path).keyframe_indices, tolerance)
