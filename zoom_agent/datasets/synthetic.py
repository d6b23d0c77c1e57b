"""The synthetic task: multiple-choice questions on synthetic videos, and its folder on disk.

The videos (events, drawing, the digit font) are `zoom_agent.datasets.synthetic_video`;
this module asks questions with ground-truth spans about their events and writes or reads
a task folder (videos, ``.json`` sidecars, ``questions.jsonl``). Everything is
deterministic for a seed. Importing this module does not import OpenCV.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from zoom_agent.datasets.paths import read_jsonl, resolve_video
from zoom_agent.datasets.synthetic_video import (
    COLOURS,
    GENERATOR_VERSION,
    SHAPES,
    SyntheticEvent,
    write_synthetic_video,
)
from zoom_agent.progress import progress_bar
from zoom_agent.types import Question
from zoom_agent.video import open_video

__all__ = [
    "DISTRACTOR_SHAPES",
    "NUM_OPTIONS",
    "QUESTIONS_FILE",
    "SyntheticEvent",
    "load_synthetic_task",
    "make_synthetic_task",
    "read_synthetic_events",
    "synthetic_questions",
    "write_synthetic_video",
]

DISTRACTOR_SHAPES = ("star", "hexagon")  # never drawn; fill shape options
NUM_OPTIONS = 4

# --- questions ---------------------------------------------------------------------------

Choice = tuple[tuple[str, ...], int]  # (options, index of the correct one)


def _choice(rng: random.Random, correct: str, pool: Sequence[str]) -> Choice:
    """``NUM_OPTIONS`` shuffled options: the correct one and distinct distractors from ``pool``."""
    distractors = rng.sample(sorted({p for p in pool if p != correct}), NUM_OPTIONS - 1)
    options = [correct, *distractors]
    rng.shuffle(options)
    return tuple(options), options.index(correct)


def _window(start: float, end: float) -> str:
    return f"{start:.1f}-{end:.1f} s"


def _when_distractors(
    rng: random.Random, event: SyntheticEvent, events: Sequence[SyntheticEvent], duration: float
) -> list[str]:
    """Other events' windows, then random windows clear of this one (same length first).

    A long event leaves little room, so later tries shrink the window; a last resort
    shifts the true window by half its length (overlapping, but never equal to it).
    """
    pool = {_window(e.start, e.end) for e in events if e is not event}
    length = event.end - event.start
    for attempt in range(400):
        if len(pool) >= NUM_OPTIONS - 1:
            return sorted(pool)
        size = length if attempt < 100 else rng.uniform(0.2, 1.0) * length
        start = rng.uniform(0.0, max(0.0, duration - size))
        if start + size <= event.start or start >= event.end:
            pool.add(_window(start, start + size))
    for shift in (-0.5, 0.5, -0.75, 0.75, 1.0, -1.0):
        start = min(max(0.0, event.start + shift * length), max(0.0, duration - length))
        pool.add(_window(start, start + length))
    pool.discard(_window(event.start, event.end))
    return sorted(pool)


def _event_questions(
    rng: random.Random, e: SyntheticEvent, events: Sequence[SyntheticEvent], duration: float
) -> list[tuple[str, str, Choice]]:
    """``(qtype, question, (options, answer))`` about one event."""
    out: list[tuple[str, str, Choice]] = []
    if sum(x.shape == e.shape for x in events) == 1:  # "the square" must name one object
        out.append(("colour", f"What colour is the {e.shape}?", _choice(rng, e.colour, list(COLOURS))))
    digits = [str(d) for d in range(10)]
    out.append(
        (
            "digit",
            f"Which digit is shown on the card while the {e.name} is visible?",
            _choice(rng, str(e.digit), digits),
        )
    )
    shapes = [*SHAPES, *DISTRACTOR_SHAPES]
    out.append(("shape", f"What shape is the {e.colour} object?", _choice(rng, e.shape, shapes)))
    windows = _when_distractors(rng, e, events, duration)
    out.append(("when", f"When is the {e.name} visible?", _choice(rng, _window(e.start, e.end), windows)))
    return out


def synthetic_questions(
    video_path: str | os.PathLike[str],
    events: Sequence[SyntheticEvent],
    *,
    seed: int = 0,
    duration: float | None = None,
) -> list[Question]:
    """Multiple-choice questions (4 options) with ground-truth spans for one synthetic video.

    Per event: its colour (when its shape is unique), the digit on its card, its shape,
    and when it is visible; per video: which object appears first.

    Args:
        video_path: the video the events were drawn into.
        events: what `write_synthetic_video` returned.
        seed: for option order and distractors.
        duration: the video's length in seconds (read from the file when None).

    Returns:
        Questions with ``task="synthetic"`` and ``qtype`` in colour/digit/shape/when/order.
    """
    if not events:
        raise ValueError("synthetic_questions needs at least one event")
    rng = random.Random(seed)
    duration = open_video(Path(video_path)).info.duration if duration is None else duration
    items = [
        (str(k), qtype, text, choice, e.span)
        for k, e in enumerate(events)
        for qtype, text, choice in _event_questions(rng, e, events, duration)
    ]
    if len(events) > 1:
        first = min(events, key=lambda e: e.start)
        names = [e.name for e in events] + [f"{c} {s}" for c in COLOURS for s in SHAPES]
        items.append(("all", "order", "Which object appears first?", _choice(rng, first.name, names), first.span))
    stem = Path(video_path).stem
    return [
        Question(
            id=f"{stem}-{key}-{qtype}",
            video=str(video_path),
            question=text,
            options=options,
            answer=answer,
            gt_spans=(span,),
            duration=duration,
            qtype=qtype,
            task="synthetic",
        )
        for key, qtype, text, (options, answer), span in items
    ]


# --- a task on disk ----------------------------------------------------------------------

QUESTIONS_FILE = "questions.jsonl"


def _sidecar(video: Path) -> Path:
    return video.with_suffix(".json")


def read_synthetic_events(video_path: str | os.PathLike[str]) -> list[SyntheticEvent]:
    """The events of a video written by `make_synthetic_task` (from its ``.json`` sidecar)."""
    meta = json.loads(_sidecar(Path(video_path)).read_text(encoding="utf-8"))
    return [SyntheticEvent(**{**e, "card": tuple(e["card"])}) for e in meta["events"]]


def _ensure_video(path: Path, params: dict[str, Any]) -> tuple[list[SyntheticEvent], float]:
    """Reuse ``path`` when its sidecar records the same parameters; else (re)write both."""
    sidecar = _sidecar(path)
    if path.is_file() and sidecar.is_file():
        try:
            meta = json.loads(sidecar.read_text(encoding="utf-8"))
            if meta.get("params") == params:
                return read_synthetic_events(path), float(meta["duration"])
        except (ValueError, KeyError, TypeError):
            pass  # a damaged sidecar: write again
    kwargs = {k: v for k, v in params.items() if k != "version"}
    kwargs["size"] = tuple(kwargs["size"])
    events = write_synthetic_video(path, **kwargs)
    duration = round(params["duration"] * params["fps"]) / params["fps"]
    meta = {"params": params, "duration": duration, "events": [asdict(e) for e in events]}
    _write_atomic(sidecar, json.dumps(meta, indent=1) + "\n")
    return events, duration


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def make_synthetic_task(
    out_dir: str | os.PathLike[str], *, num_videos: int = 4, seed: int = 0, **video_kwargs: Any
) -> list[Question]:
    """Write ``synth_000.mp4``... and ``questions.jsonl`` into ``out_dir``; return the questions.

    Videos whose sidecar ``.json`` records the same parameters are reused, not rewritten.
    ``questions.jsonl`` holds one ``Question.model_dump_json()`` per line with the video
    path relative to ``out_dir``, so the folder can move; `load_synthetic_task` resolves it.

    Args:
        out_dir: the folder (created if missing).
        num_videos: how many videos.
        seed: the task's seed; video ``i`` uses a seed derived from ``(seed, i)``.
        **video_kwargs: ``duration``, ``fps``, ``size``, ``num_events`` for
            `write_synthetic_video`.

    Returns:
        All questions, with absolute video paths.
    """
    unknown = set(video_kwargs) - {"duration", "fps", "size", "num_events"}
    if unknown:
        raise TypeError(f"make_synthetic_task got unknown video arguments: {sorted(unknown)}")
    if num_videos < 1:
        raise ValueError(f"num_videos must be >= 1, got {num_videos!r}")
    root = Path(out_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    questions: list[Question] = []
    lines = []
    bar = progress_bar(num_videos, desc=f"synthetic videos in {root}", unit="video")
    for i in range(num_videos):
        video_seed = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
        params = {"duration": 20.0, "fps": 10.0, "size": [320, 240], "num_events": 3, **video_kwargs}
        params = {
            **params,
            "size": [int(v) for v in params["size"]],
            "seed": video_seed,
            "version": GENERATOR_VERSION,
        }
        path = root / f"synth_{i:03d}.mp4"
        events, duration = _ensure_video(path, params)
        for q in synthetic_questions(path, events, seed=video_seed, duration=duration):
            questions.append(q)
            lines.append(q.model_copy(update={"video": path.name}).model_dump_json())
        bar.update(1)
    bar.close()
    _write_atomic(root / QUESTIONS_FILE, "\n".join(lines) + "\n")
    return questions


def load_synthetic_task(out_dir: str | os.PathLike[str]) -> list[Question]:
    """Read the questions `make_synthetic_task` wrote, video paths resolved under ``out_dir``.

    Raises:
        FileNotFoundError: no ``questions.jsonl`` in ``out_dir``.
        ValueError: a line is not a Question, or its video path leaves ``out_dir``.
    """
    root = Path(out_dir).resolve()
    path = root / QUESTIONS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {QUESTIONS_FILE} in {root}: run make_synthetic_task first")
    questions = []
    for n, record in read_jsonl(path):
        try:
            q = Question.model_validate(record)
        except ValueError as exc:
            raise ValueError(f"{path}:{n}: not a Question ({exc})") from exc
        try:
            video = resolve_video(root, q.video)
        except ValueError as exc:
            raise ValueError(f"{path}:{n}: video path {q.video!r} leaves {root}") from exc
        questions.append(q.model_copy(update={"video": video}))
    return questions
