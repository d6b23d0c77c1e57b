"""OpenAI chat format for the served backend: requests out, completions back (docs/serving.md §1).

Pure translation, no network: `OpenAIVLM` (`zoom_agent.models.served`) sends what
`render_messages` and `request_body` build and reads replies with `parse_completion`.
cv2 is imported only inside `encode_clip`, so importing this module stays light.

How a conversation goes out:

- Text parts stay text parts. Tool turns become text-only ``role: tool`` messages: vLLM
  drops images there, and the graph already sends a tool's frames in the next user turn.
- ``video_mode="frames"`` (default): each clip is ONE video part, a JPEG frame list
  ``data:video/jpeg;base64,<f1>,<f2>,...`` at the planned frame size (`encode_clip`; the
  client runs it in worker threads and caches the result).
- ``video_mode="images"``: each frame is an image part preceded by its absolute time
  (``<12.5 seconds>``), for endpoints without video input.

Frame timing (docs/serving.md §4). vLLM takes a frame list's timing from the request's
``media_io_kwargs["video"]`` (``fps``; frame indices 0..n-1): one rate for every video of
the request, with no per-video metadata (a ``frames_indices`` list must even match every
video's length). Measured on vLLM 0.32 (CPU build), a 20 s coarse clip (0.51 s apart) sent
with a 1 s zoom (0.33 s apart) at the zoom's rate was shown as ``<0.2>..<12.8 seconds>``.
So, by family (`request_timing`):

- Qwen3-VL, "held frames": the request rate F is the fastest clip's. Each clip goes as a
  list of N = (its length x F) + 1 slots, its n planned frames at the slots that
  ``linspace(0, N-1, n)`` picks and each slot between holding the frame before it; the
  request asks the processor to sample n frames per video (``mm_processor_kwargs``
  ``{"do_sample_frames": true, "num_frames": [n1, n2, ...]}``), which picks exactly those
  slots. The model sees the planned frames (the visual tokens equal the plan) and writes
  ``<t seconds>`` = slot / F: each clip's true offsets from its own start, within half a
  slot. A text line before each clip states that start (``times count from 7.5 s``), so
  the caption's absolute window and the in-prompt times agree. (Absolute times would need
  start x F leading slots per clip: thousands of frames for a late zoom in a long video.)
  The processor samples 4 to 768 frames per video; a request with a clip outside that
  range falls back to the shared rate below.
- Qwen2.5-VL writes no times into the prompt and restarts its time axis at every video;
  its spacing (``second_per_grid_ts``) comes from the request rate alone, whatever is
  sampled, so it gets the newest clip's rate, and a clip whose spacing differs by more than
  2% gets one more text line with its true spacing.
- ``num_frames: -1`` goes along: vLLM otherwise keeps only the first 32 frames of a list.

The transformers backend gives Qwen3-VL absolute times (`zoom_agent.models.hf_render`);
the served prompt's times are clip-local and say so. Requests carry ``media_io_kwargs``
(and ``mm_processor_kwargs`` for Qwen3-VL): the server needs ``--trust-request-mm-kwargs``,
which `zoom_agent.serve` sets, with the safeguards docs/serving.md §3 lists.

Replies: `parse_completion` reads one choice (text, vLLM's ``token_ids``, per-token
logprobs) and `zoom_agent.models.token_offsets` maps the returned token strings back onto
the text.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from zoom_agent.geometry import Family
from zoom_agent.models.base import Completion, ModelError, Turn, VLMRequest
from zoom_agent.models.token_offsets import token_offsets
from zoom_agent.types import ClipRef

VideoMode = Literal["frames", "images"]
SPACING_TOLERANCE = 0.02  # ours: spacings within 2% count as one frame rate
SAMPLED_FRAMES = (4, 768)  # Qwen3-VL video processor's min_frames / max_frames (what vLLM clamps to)


@dataclass(frozen=True)
class EncodedClip:
    """A clip's frames as base64 JPEGs, with the times of the frames that exist."""

    frames: tuple[str, ...]
    timestamps: tuple[float, ...]

    @property
    def nbytes(self) -> int:
        return sum(len(f) for f in self.frames)


def encode_clip(ref: ClipRef, quality: int) -> EncodedClip:
    """Decode a planned clip (shared video cache) and JPEG-encode its frames (blocking)."""
    import cv2

    from zoom_agent.video import open_video

    clip = open_video(ref.path).read_clip(ref)
    params = [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)]
    frames = []
    for frame in clip.frames:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), params)
        if not ok:
            raise ModelError(f"JPEG encoding failed for a frame of {ref.path}")
        frames.append(base64.b64encode(buf.tobytes()).decode("ascii"))
    return EncodedClip(tuple(frames), tuple(float(t) for t in clip.timestamps))


def request_fps(clips: Sequence[ClipRef]) -> float | None:
    """The one frame rate of a request's frame-list videos: the newest clip's."""
    return 1.0 / clips[-1].frame_spacing if clips else None


def spacing_note(ref: ClipRef, fps: float) -> str | None:
    """A text line for a clip whose spacing is not the request's (see the module notes)."""
    spacing = ref.frame_spacing
    if abs(spacing * fps - 1.0) <= SPACING_TOLERANCE:
        return None
    return f"(its frames are {spacing:.2f} s apart, starting at {ref.timestamps[0]:.1f} s)"


@dataclass(frozen=True)
class RequestTiming:
    """How a request's frame-list videos are timed (see the module notes).

    ``held``: Qwen3-VL held frames at ``fps`` (the fastest clip's rate); otherwise one
    shared rate ``fps`` (the newest clip's) with spacing notes.
    """

    fps: float
    held: bool


def request_timing(clips: Sequence[ClipRef], family: Family | None) -> RequestTiming | None:
    """The timing of a request's frame-list videos; None when it has none."""
    if not clips:
        return None
    lo, hi = SAMPLED_FRAMES
    if family == "qwen3_vl" and all(lo <= c.num_frames <= hi for c in clips):
        return RequestTiming(fps=max(1.0 / c.frame_spacing for c in clips), held=True)
    return RequestTiming(fps=1.0 / clips[-1].frame_spacing, held=False)


def held_slots(timestamps: Sequence[float], fps: float) -> tuple[int, tuple[int, ...]]:
    """``(N, picked)``: a clip's slot count at ``fps`` and the slot of each of its frames.

    ``picked`` is ``linspace(0, N-1, n)`` rounded, what Qwen3-VL's processor samples (and
    vLLM times as ``slot / fps``); N is at least n, so the picked slots are distinct.
    """
    n = len(timestamps)
    slots = max(n, round((timestamps[-1] - timestamps[0]) * fps) + 1)
    return slots, tuple(int(i) for i in np.linspace(0, slots - 1, n).round())


def held_frames(enc: EncodedClip, fps: float) -> list[str]:
    """A clip's frames laid on its slots: each frame at its picked slot, every slot after
    it holding it until the next one."""
    slots, picked = held_slots(enc.timestamps, fps)
    frames = enc.frames
    out: list[str] = []
    for k, frame in enumerate(frames):
        end = picked[k + 1] if k + 1 < len(picked) else slots
        out += [frame] * (end - picked[k])
    return out


def render_messages(
    turns: Sequence[Turn], encoded: dict[ClipRef, EncodedClip], mode: VideoMode, family: Family | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Turns as OpenAI chat messages, plus the request's vLLM media kwargs.

    Args:
        turns: the conversation; clips must all be in ``encoded``.
        encoded: the encoded frames of every clip.
        mode: ``"frames"`` (one video part per clip) or ``"images"`` (timed image parts).
        family: the served model's family (it decides the timing, see the module notes);
            None (unknown) gets the shared rate.

    Returns:
        ``(messages, extra_body)``.

    Raises:
        ValueError: a clip in a system or tool turn (their roles take text only).
    """
    clips = [c for t in turns for c in t.clips]
    timing = request_timing(clips, family) if mode == "frames" else None
    messages: list[dict[str, Any]] = []
    for i, turn in enumerate(turns):
        if turn.role in ("system", "tool", "assistant"):
            if turn.clips:
                raise ValueError(f"turn {i} ({turn.role}) carries a clip; {turn.role} turns take text only")
            messages.append({"role": turn.role, "content": turn.text})
            continue
        parts: list[dict[str, Any]] = []
        for part in turn.content:
            if isinstance(part, str):
                parts.append({"type": "text", "text": part})
            else:
                parts += _clip_parts(part, encoded[part], timing)
        messages.append({"role": "user", "content": parts})
    extra: dict[str, Any] = {}
    if timing is not None:
        extra["media_io_kwargs"] = {"video": {"num_frames": -1, "fps": round(timing.fps, 6)}}
        if timing.held:
            counts = [len(encoded[c].frames) for c in clips]
            extra["mm_processor_kwargs"] = {"do_sample_frames": True, "num_frames": counts}
    return messages, extra


def _clip_parts(ref: ClipRef, enc: EncodedClip, timing: RequestTiming | None) -> list[dict[str, Any]]:
    if timing is None:  # images: each frame with its absolute time
        parts: list[dict[str, Any]] = []
        for t, frame in zip(enc.timestamps, enc.frames, strict=True):
            parts.append({"type": "text", "text": f"<{t:.1f} seconds>"})
            parts.append({"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{frame}"}})
        return parts
    frames = held_frames(enc, timing.fps) if timing.held else list(enc.frames)
    video = {"type": "video_url", "video_url": {"url": "data:video/jpeg;base64," + ",".join(frames)}}
    if timing.held:
        note: str | None = f"(times count from {ref.timestamps[0]:.1f} s)"
    else:
        note = spacing_note(ref, timing.fps)
    return [video] if note is None else [{"type": "text", "text": note}, video]


def request_body(
    request: VLMRequest, messages: list[dict[str, Any]], extra: dict[str, Any], *, n: int
) -> dict[str, Any]:
    """The chat-completions JSON body (without ``model``): messages, sampling, vLLM extras."""
    s = request.sampling
    body: dict[str, Any] = {"messages": messages, "n": n, "temperature": s.temperature, "top_p": s.top_p}
    body |= {"max_tokens": s.max_tokens, **extra}
    if s.seed is not None:
        body["seed"] = s.seed
    if s.stop:
        body["stop"] = list(s.stop)
    if request.want_logprobs:  # per-token logprobs and vLLM's token ids (training rollouts)
        body |= {"logprobs": True, "top_logprobs": request.top_logprobs, "return_token_ids": True}
    if request.turns[-1].role == "assistant":  # a prefix to continue, as the transformers backend does
        body |= {"continue_final_message": True, "add_generation_prompt": False}
    return body


# --------------------------------------------------------------------------- responses


def parse_completion(choice: dict[str, Any], want_logprobs: bool) -> Completion:
    """One choice of a chat completion (JSON, with vLLM's ``token_ids``) as a Completion.

    Raises:
        ModelError: the choice does not have the OpenAI shape.
    """
    try:
        text = choice["message"].get("content") or ""
        items = (choice.get("logprobs") or {}).get("content") or None
        ids = choice.get("token_ids")
        return Completion(
            text=text,
            token_ids=tuple(int(i) for i in ids) if ids is not None else None,
            logprobs=tuple(float(it["logprob"]) for it in items) if want_logprobs and items else None,
            token_offsets=token_offsets(text, [str(it["token"]) for it in items]) if items else None,
            top_logprobs=_top_logprobs(items) if want_logprobs and items else None,
            finish_reason=choice.get("finish_reason"),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelError(f"a response choice is not an OpenAI chat completion: {exc!r}") from exc


def _top_logprobs(items: list[dict[str, Any]]) -> tuple[tuple[float, ...], ...] | None:
    """Each step's ``top_logprobs`` values, largest first; None when the server sent none."""
    if not any(it.get("top_logprobs") for it in items):
        return None
    return tuple(
        tuple(sorted((float(t["logprob"]) for t in it.get("top_logprobs") or ()), reverse=True)) for it in items
    )
