"""OpenAI chat format for the served backend: requests out, completions back (DESIGN.md §3).

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

Frame timing, one rate per request. vLLM takes a frame list's timing from the request's
``media_io_kwargs["video"]`` (``fps``; frame indices default to 0..n-1). Those kwargs are
keyed by modality for the whole request, not per video (a ``frames_indices`` list must
even match every video's length), so all frame-list videos of one request share one
frame rate. The design:

- the request's ``fps`` is the frame rate of its newest clip (the view being answered);
- each clip's absolute window is in the caption the graph writes before it
  (`protocol.clip_caption`; Qwen2.5-VL restarts time at every video anyway);
- a clip whose frame spacing differs from that rate by more than 2% gets one more text
  line with its true spacing, so no clip is shown on a wrong time scale silently;
- ``num_frames: -1`` goes along: vLLM otherwise keeps only the first 32 frames of a list.

So over vLLM, Qwen3-VL's in-prompt ``<t seconds>`` are clip-local (the transformers
backend gives absolute ones). Considered and rejected: the whole video by path
(``--allowed-local-media-path``) beside the zoom as frames. vLLM would sample the coarse
view itself (not `plan_clip`'s frames), and the shared per-request kwargs would still give
both videos one frame rate and one pixel bound. The processor's size bounds that keep the
planned frame sizes are server flags (`zoom_agent.serve`), so requests carry no
``mm_processor_kwargs`` and the server needs no ``--trust-request-mm-kwargs``.

Replies: `parse_completion` reads one choice (text, vLLM's ``token_ids``, per-token
logprobs) and `token_offsets` maps the returned token strings back onto the text.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from zoom_agent.models.base import Completion, ModelError, Turn, VLMRequest
from zoom_agent.types import ClipRef

VideoMode = Literal["frames", "images"]
SPACING_TOLERANCE = 0.02  # ours: spacings within 2% count as one frame rate


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


def render_messages(
    turns: Sequence[Turn], encoded: dict[ClipRef, EncodedClip], mode: VideoMode
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Turns as OpenAI chat messages, plus the request's vLLM media kwargs.

    Args:
        turns: the conversation; clips must all be in ``encoded``.
        encoded: the encoded frames of every clip.
        mode: ``"frames"`` (one video part per clip) or ``"images"`` (timed image parts).

    Returns:
        ``(messages, extra_body)``.

    Raises:
        ValueError: a clip in a system or tool turn (their roles take text only).
    """
    clips = [c for t in turns for c in t.clips]
    fps = request_fps(clips) if mode == "frames" else None
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
                parts += _clip_parts(part, encoded[part], fps)
        messages.append({"role": "user", "content": parts})
    extra: dict[str, Any] = {}
    if fps is not None:
        extra["media_io_kwargs"] = {"video": {"num_frames": -1, "fps": round(fps, 6)}}
    return messages, extra


def _clip_parts(ref: ClipRef, enc: EncodedClip, fps: float | None) -> list[dict[str, Any]]:
    if fps is None:  # images: each frame with its absolute time
        parts: list[dict[str, Any]] = []
        for t, frame in zip(enc.timestamps, enc.frames, strict=True):
            parts.append({"type": "text", "text": f"<{t:.1f} seconds>"})
            parts.append({"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{frame}"}})
        return parts
    video = {"type": "video_url", "video_url": {"url": "data:video/jpeg;base64," + ",".join(enc.frames)}}
    note = spacing_note(ref, fps)
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
        body |= {"logprobs": True, "top_logprobs": 0, "return_token_ids": True}
    if request.turns[-1].role == "assistant":  # a prefix to continue, as the transformers backend does
        body |= {"continue_final_message": True, "add_generation_prompt": False}
    return body


# --------------------------------------------------------------------------- responses


def token_offsets(text: str, tokens: Sequence[str]) -> tuple[tuple[int, int], ...] | None:
    """``[start, end)`` of each returned token string in ``text`` (for confidences).

    Token strings decoded one by one do not always concatenate to the text: a character
    split over byte-level tokens decodes as U+FFFD pieces (``" \\ufffd"``, ``"\\ufffd0"``),
    EOS may show as ``<|im_end|>``, a stop string cuts the text inside a token. The walk
    matches literal characters one to one; a run of U+FFFD matches the non-ASCII
    characters up to the next literal and gives them to the run's last token, the one
    completing them (as the transformers backend does); a token whose first character does
    not match (a special token the text leaves out) gets an empty range.

    Returns:
        One range per token, contiguous from 0; tokens past the text end there. None when
        the strings do not spell the text (e.g. ``token_id:N`` strings).
    """
    stream = [(i, ch) for i, tok in enumerate(tokens) for ch in tok]
    ends: dict[int, int] = {}
    p = q = 0
    while q < len(stream) and p < len(text):
        i, ch = stream[q]
        if ch == "\ufffd":
            run_end = q
            while run_end < len(stream) and stream[run_end][1] == "\ufffd":
                run_end += 1
            after = stream[run_end][1] if run_end < len(stream) else None
            if text[p].isascii():
                return None
            p += 1
            while p < len(text) and not text[p].isascii() and text[p] != after:
                p += 1
            ends[stream[run_end - 1][0]] = p
            q = run_end
        elif text[p] == ch:
            p += 1
            ends[i] = p
            q += 1
        elif i in ends or (q > 0 and stream[q - 1][0] == i):
            return None  # a mismatch inside a token
        else:
            while q < len(stream) and stream[q][0] == i:
                q += 1
    if p < len(text):
        return None
    offsets, start = [], 0
    for i in range(len(tokens)):
        end = max(ends.get(i, start), start)
        offsets.append((start, end))
        start = end
    return tuple(offsets)


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
            finish_reason=choice.get("finish_reason"),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelError(f"a response choice is not an OpenAI chat completion: {exc!r}") from exc
