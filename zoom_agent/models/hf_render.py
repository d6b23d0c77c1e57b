"""What a conversation becomes for a Qwen processor: chat messages, frames, video metadata.

Rendering helpers of the transformers backend (`zoom_agent.models.hf`), also used by the
trainer. numpy only at module level; transformers is imported inside `clip_metadata`.

Timing, the facts these helpers must get right (measured with transformers 5.2x):

- Qwen3-VL writes ``<t seconds>`` into the prompt from ``frames_indices / fps``: each clip
  goes in with its *source* frame indices and the source fps, so the times are absolute.
- Qwen2.5-VL restarts time at 0 for every video and places frames on the M-RoPE time axis
  by ``second_per_grid_ts``. transformers derives it from ``VideoMetadata.sampled_fps`` =
  ``len(frames_indices) / total_num_frames * fps``, the average rate over the *whole*
  source, which is wrong for a zoomed clip (4 frames inside 2 s of a 20 s video gave
  6.7 s per grid instead of 1.0 s). Each Qwen2.5-VL clip therefore goes in with
  clip-local metadata whose rate is the real frame spacing (`ClipRef.frame_spacing`, shared with
  the served backend), so ``second_per_grid_ts == temporal_patch * spacing``; its absolute
  start and end are stated in the prompt text by the prompt builder. A vLLM backend gets
  the same numbers by passing ``fps = 1 / spacing``.
- Clips arrive already resized to their planned size (a multiple of patch * merge), and
  the size bounds given to the processor bracket exactly those sizes, so it keeps them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from zoom_agent.geometry import Family, VisionGeometry
from zoom_agent.models.base import Turn
from zoom_agent.types import ClipRef


def chat_messages(turns: Sequence[Turn]) -> tuple[list[dict[str, Any]], list[ClipRef]]:
    """Turns as Qwen chat messages (text and video parts in order) plus their clips.

    Args:
        turns: the conversation; system turns carry text only.

    Returns:
        ``(messages, clips)``: clips in the order their ``<|video_pad|>`` parts appear.

    Raises:
        ValueError: a system turn carries a clip (the Qwen templates drop it silently).
    """
    messages: list[dict[str, Any]] = []
    clips: list[ClipRef] = []
    for i, turn in enumerate(turns):
        parts: list[dict[str, Any]] = []
        for part in turn.content:
            if isinstance(part, str):
                parts.append({"type": "text", "text": part})
                continue
            if turn.role == "system":
                raise ValueError(f"turn {i} (system) carries a clip; system turns take text only")
            parts.append({"type": "video"})
            clips.append(part)
        messages.append({"role": turn.role, "content": parts})
    return messages, clips


def read_clip_frames(ref: ClipRef) -> np.ndarray:
    """The RGB frames (N, H, W, 3) uint8 of a planned clip, from the shared video cache."""
    from zoom_agent import video

    frames = np.asarray(video.open_video(ref.path).read_clip(ref).frames)
    expected = (ref.num_frames, ref.height, ref.width, 3)
    if frames.shape != expected or frames.dtype != np.uint8:
        raise ValueError(f"clip of {ref.path} decoded to {frames.shape} {frames.dtype}, expected {expected} uint8")
    return frames


def pad_frames(frames: np.ndarray, indices: list[int], temporal: int) -> tuple[np.ndarray, list[int]]:
    """Repeat the last frame (and its source index) up to a whole temporal patch."""
    # The processors repeat the last frame up to a whole temporal patch anyway; doing it
    # here keeps single-frame clips legal for Qwen3-VL's resize and the timestamps aligned.
    missing = -len(frames) % temporal
    if missing:
        frames = np.concatenate([frames, np.repeat(frames[-1:], missing, axis=0)])
        indices = indices + [indices[-1]] * missing
    return frames, indices


def clip_metadata(ref: ClipRef, family: Family, num_frames: int, indices: Sequence[int]) -> Any:
    """The ``VideoMetadata`` a clip goes in with (see the module docstring for why).

    Args:
        ref: the planned clip.
        family: model family.
        num_frames: frames passed (after padding to a whole temporal patch).
        indices: source frame index of each passed frame.

    Returns:
        Qwen3-VL: source indices and fps (absolute ``<t seconds>``). Qwen2.5-VL: clip-local
        indices at rate ``1 / spacing`` (correct ``second_per_grid_ts``).
    """
    from transformers.video_utils import VideoMetadata

    if family == "qwen3_vl":
        return VideoMetadata(total_num_frames=ref.num_source_frames, fps=ref.fps, frames_indices=list(indices))
    return VideoMetadata(
        total_num_frames=num_frames, fps=1.0 / ref.frame_spacing, frames_indices=list(range(num_frames))
    )


def processor_size_bounds(videos: Sequence[np.ndarray], geometry: VisionGeometry) -> dict[str, int]:
    """``size`` bounds that make the processor keep each clip's planned frame size.

    Qwen2.5-VL bounds pixels per frame; Qwen3-VL (without the per-frame cap) bounds pixels
    per video (frames rounded to the temporal patch x height x width). Bracketing exactly
    the clips' own values leaves every clip as it is.
    """
    factor, temporal = geometry.token_side, geometry.temporal_patch
    costs = []
    for v in videos:
        n, h, w = v.shape[0], v.shape[1], v.shape[2]
        pixels = max(factor, round(h / factor) * factor) * max(factor, round(w / factor) * factor)
        costs.append(pixels * (round(n / temporal) * temporal if geometry.family == "qwen3_vl" else 1))
    return {"shortest_edge": min(costs), "longest_edge": max(costs)}
