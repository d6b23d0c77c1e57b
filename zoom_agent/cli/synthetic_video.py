"""``zoom-agent synthetic-video OUT.mp4``: write one synthetic video with known events.

A video to try ``ask`` and the Python API on without a download: coloured shapes cross
the frame at known times while a small card shows a digit (`zoom_agent.datasets.synthetic_video`).
It prints each event's time span, shape, colour and digit: the answers.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from zoom_agent.cli.options import parameter_default
from zoom_agent.datasets.synthetic_video import write_synthetic_video


def parse_size(text: str) -> tuple[int, int]:
    """``"WIDTHxHEIGHT"`` -> ``(width, height)``."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size expects WIDTHxHEIGHT such as 320x240, got {text!r}") from None
    return width, height


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``synthetic-video`` to the ``zoom-agent`` sub-commands."""
    p = subparsers.add_parser(
        "synthetic-video",
        help="write a synthetic video with known events (to try ask and the Python API offline)",
        description="Write an mp4 video in which shapes cross the frame at known times beside a digit card.",
    )
    p.add_argument("out", type=Path, help="the .mp4 file to write (its folder is created)")

    def default(name: str) -> Any:
        return parameter_default(write_synthetic_video, name)

    p.add_argument("--duration", type=float, default=default("duration"), help="seconds")
    p.add_argument("--fps", type=float, default=default("fps"), help="frames per second")
    width, height = default("size")
    p.add_argument("--size", type=parse_size, default=f"{width}x{height}", help="WIDTHxHEIGHT in pixels")
    p.add_argument("--events", type=int, default=default("num_events"), help="shapes crossing, in disjoint slots")
    p.add_argument("--seed", type=int, default=default("seed"), help="same seed, same video")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Write the video and print its events."""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    events = write_synthetic_video(
        args.out, duration=args.duration, fps=args.fps, size=args.size, seed=args.seed, num_events=args.events
    )
    print(f"{args.out}: {args.duration:g} s at {args.fps:g} fps, {args.size[0]}x{args.size[1]}, "
          f"written in {time.perf_counter() - t0:.1f} s")  # fmt: skip
    for event in events:
        print(f"  {event.start:.1f}-{event.end:.1f} s: a {event.name} crosses; the card shows {event.digit}")
    return 0
