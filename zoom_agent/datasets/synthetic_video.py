"""Synthetic videos with known events at known times: planning, drawing, writing, reading.

Each event is a coloured shape (circle, square or triangle) that enters the frame, crosses
it and leaves between its start and end, while a small card shows a digit. The card is a
few pixels tall (a 3x5 bitmap font, 2 px per dot at 240p): legible at full resolution,
gone after the coarse pass downsamples the frames under a small token budget. So the digit
questions need a zoom onto the right window, which is what the toy task, the offline
demo and the pipeline checks exercise. Everything is deterministic for a seed. The
questions and the task folder are `zoom_agent.datasets.synthetic`.

The budget matters: under the default 8192 tokens a 320x240 source stays at native size
even in the coarse pass. With ``Budget(visual_tokens=256)`` (Budget's per-frame rule), a
20 s video at 2 fps gets 40 coarse frames of ~132x99 (the min-pixels floor): the digit is
~4 px tall, each font dot under 1 px. A 3 s zoom (6 frames) gets ~0.93x native: ~9 px.

OpenCV is imported inside the functions that write or read videos, so importing this
module stays light.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zoom_agent.types import Span

SHAPES = ("circle", "square", "triangle")
COLOURS: dict[str, tuple[int, int, int]] = {  # BGR, far apart in hue
    "red": (40, 40, 220),
    "green": (40, 170, 40),
    "blue": (220, 90, 30),
    "yellow": (30, 220, 230),
    "magenta": (200, 40, 200),
    "cyan": (210, 200, 40),
}
GENERATOR_VERSION = 1  # bump when the drawing changes: cached videos are then rewritten
_DIGIT_ROWS = {  # 3x5 bitmap font: one string of 3 dots per row
    0: ("111", "101", "101", "101", "111"),
    1: ("010", "110", "010", "010", "111"),
    2: ("111", "001", "111", "100", "111"),
    3: ("111", "001", "111", "001", "111"),
    4: ("101", "101", "111", "001", "001"),
    5: ("111", "100", "111", "001", "111"),
    6: ("111", "100", "111", "101", "111"),
    7: ("111", "001", "010", "010", "010"),
    8: ("111", "101", "111", "101", "111"),
    9: ("111", "101", "111", "001", "111"),
}


@dataclass(frozen=True)
class SyntheticEvent:
    """One shape crossing the frame; visible in frames ``[start_frame, end_frame)``.

    ``start``/``end`` are ``start_frame / fps`` and ``end_frame / fps`` in seconds.
    ``card`` is the digit card's ``(x, y, width, height)`` in full-resolution pixels.
    """

    start: float
    end: float
    shape: str
    colour: str
    digit: int
    start_frame: int
    end_frame: int
    radius: int
    track_y: int
    direction: int  # +1 left to right, -1 right to left
    card: tuple[int, int, int, int]

    @property
    def span(self) -> Span:
        return Span(start=self.start, end=self.end)

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"

    def position(self, frame_index: int, width: int) -> tuple[int, int]:
        """Centre of the shape in a frame: half in view at the first frame, half at the last."""
        n = max(1, self.end_frame - 1 - self.start_frame)
        frac = (frame_index - self.start_frame) / n
        if self.direction < 0:
            frac = 1.0 - frac
        x = -0.5 * self.radius + frac * (width + self.radius)
        return round(x), self.track_y


def render_digit_card(digit: int, scale: int) -> np.ndarray:
    """The card image (BGR uint8): black 3x5-dot digit on white with a one-dot margin.

    Args:
        digit: 0-9.
        scale: pixels per dot.

    Returns:
        An array of shape ``(7 * scale, 5 * scale, 3)``.
    """
    if digit not in _DIGIT_ROWS or scale < 1:
        raise ValueError(f"digit must be 0-9 and scale >= 1, got digit={digit!r} scale={scale!r}")
    dots = np.ones((7, 5), dtype=np.uint8) * 255
    for r, row in enumerate(_DIGIT_ROWS[digit]):
        for c, bit in enumerate(row):
            if bit == "1":
                dots[r + 1, c + 1] = 0
    card = np.kron(dots, np.ones((scale, scale), dtype=np.uint8))
    return np.repeat(card[:, :, None], 3, axis=2)


def card_scale(height: int) -> int:
    """Pixels per font dot for a video height: 2 at 240p, so the digit is 10 px tall."""
    return max(1, round(height / 120))


def _check_args(duration: float, fps: float, size: Sequence[int], num_events: int) -> int:
    """Validate the video arguments; returns the frame count."""
    if not (isinstance(size, Sequence) and len(size) == 2 and all(isinstance(v, int) for v in size)):
        raise ValueError(f"size must be (width, height) ints, got {size!r}")
    if size[0] < 64 or size[1] < 48:
        raise ValueError(f"size must be at least 64x48 pixels, got {size[0]}x{size[1]}")
    if not (duration > 0 and fps > 0):
        raise ValueError(f"duration and fps must be > 0, got duration={duration!r} fps={fps!r}")
    if not 1 <= num_events <= len(COLOURS):
        raise ValueError(f"num_events must be 1..{len(COLOURS)}, got {num_events!r}")
    frames = round(duration * fps)
    if frames // num_events < 10:
        raise ValueError(
            f"{duration} s at {fps} fps gives {frames} frames: too few for {num_events} events "
            "(need at least 10 frames per event)"
        )
    return frames


def plan_events(*, frames: int, fps: float, size: tuple[int, int], seed: int, num_events: int) -> list[SyntheticEvent]:
    """Place ``num_events`` non-overlapping events, one per equal slot of the video."""
    rng = random.Random(seed)
    width, height = size
    radius = max(6, round(min(width, height) * 0.1))
    scale = card_scale(height)
    card_w, card_h = 5 * scale, 7 * scale
    band = max(card_h + 4, round(height * 0.3))  # cards above, shapes below: never overlap
    shapes = rng.sample(SHAPES, num_events) if num_events <= len(SHAPES) else rng.choices(SHAPES, k=num_events)
    colours = rng.sample(list(COLOURS), num_events)
    digits = rng.sample(range(10), num_events)
    slot = frames // num_events
    events = []
    for k in range(num_events):
        length = rng.randint(max(4, int(slot * 0.4)), max(4, int(slot * 0.7)))
        first = k * slot + rng.randint(1, max(1, slot - length - 1))
        card = (rng.randint(2, width - card_w - 2), rng.randint(2, band - card_h - 2), card_w, card_h)
        events.append(
            SyntheticEvent(
                start=first / fps,
                end=(first + length) / fps,
                shape=shapes[k],
                colour=colours[k],
                digit=digits[k],
                start_frame=first,
                end_frame=first + length,
                radius=radius,
                track_y=rng.randint(min(band + radius + 2, height - radius - 2), height - radius - 2),
                direction=rng.choice((1, -1)),
                card=card,
            )
        )
    return events


def _background(size: tuple[int, int], seed: int) -> np.ndarray:
    """Mid grey with a soft horizontal gradient and fixed mild noise (int16, H x W x 3)."""
    width, height = size
    rng = np.random.default_rng(seed)
    gradient = np.linspace(-12, 12, width, dtype=np.float32)[None, :, None]
    noise = rng.integers(-6, 7, size=(height, width, 1))
    return (np.full((height, width, 3), 120, np.float32) + gradient + noise).astype(np.int16)


def _draw_event(frame: np.ndarray, event: SyntheticEvent, index: int) -> None:
    import cv2

    x, y = event.position(index, frame.shape[1])
    r, colour = event.radius, COLOURS[event.colour]
    if event.shape == "circle":
        cv2.circle(frame, (x, y), r, colour, thickness=-1, lineType=cv2.LINE_AA)
    elif event.shape == "square":
        s = round(r * 0.85)
        cv2.rectangle(frame, (x - s, y - s), (x + s, y + s), colour, thickness=-1)
    else:
        pts = np.array([[x, y - r], [x - r, y + r], [x + r, y + r]], dtype=np.int32)
        cv2.fillPoly(frame, [pts], colour, lineType=cv2.LINE_AA)
    cx, cy, cw, ch = event.card
    frame[cy : cy + ch, cx : cx + cw] = render_digit_card(event.digit, card_scale(frame.shape[0]))


def write_synthetic_video(
    path: str | os.PathLike[str],
    *,
    duration: float = 20.0,
    fps: float = 10.0,
    size: tuple[int, int] = (320, 240),
    seed: int = 0,
    num_events: int = 3,
) -> list[SyntheticEvent]:
    """Write an mp4v video with known events (atomically: a temp file, then a rename).

    Args:
        path: the ``.mp4`` file to write (its folder must exist).
        duration: seconds.
        fps: frames per second.
        size: ``(width, height)`` in pixels, at least 64x48.
        seed: same seed, same events and pixels.
        num_events: 1..6 events, in disjoint time slots.

    Returns:
        The events, in time order.
    """
    import cv2

    size = (int(size[0]), int(size[1])) if isinstance(size, list) else size
    frames = _check_args(duration, fps, size, num_events)
    out = Path(path)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"folder for the synthetic video does not exist: {out.parent}")
    events = plan_events(frames=frames, fps=fps, size=size, seed=seed, num_events=num_events)
    background = _background(size, seed)
    noise_rng = np.random.default_rng(seed + 1)
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp.mp4")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
    try:
        if not writer.isOpened():
            raise OSError(f"OpenCV could not open an mp4v writer for {tmp}")
        for i in range(frames):
            flicker = noise_rng.integers(-2, 3, size=(*background.shape[:2], 1))
            frame = np.clip(background + flicker, 0, 255).astype(np.uint8)
            for event in events:
                if event.start_frame <= i < event.end_frame:
                    _draw_event(frame, event, i)
            writer.write(frame)
        writer.release()
        os.replace(tmp, out)
    finally:
        writer.release()
        tmp.unlink(missing_ok=True)
    return events


def loop_video(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], loops: int = 1, *, options: dict[str, str] | None = None
) -> Path:
    """Copy a video's packets ``loops`` times end to end, without re-encoding (PyAV remux).

    Makes long real videos from a short clip for tests and benchmarks (a 10-minute or
    10-hour H.264 file from a 5 s one, in well under a second per thousand packets).

    Args:
        src: the clip to repeat.
        dst: the file to write.
        loops: how many copies.
        options: container options for the muxer (e.g. ``{"movflags": "faststart"}``).

    Returns:
        ``dst`` as a `Path`.
    """
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w", options=options or {}) as out:
        stream = inp.streams.video[0]
        ost = out.add_stream_from_template(stream)
        packets: list[Any] = [p for p in inp.demux(stream) if p.size]  # PyAV packets: pts set
        pts = sorted(p.pts for p in packets)
        period = pts[-1] - pts[0] + (pts[1] - pts[0] if len(pts) > 1 else 1)
        for loop in range(loops):
            for p in packets:
                p.pts += period if loop else 0
                p.dts += period if loop else 0
                p.stream = ost
                out.mux(p)
    return Path(dst)
