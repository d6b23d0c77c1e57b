"""The learnable grounded-QA task: small synthetic videos, three question kinds, seeded splits.

Built on the synthetic videos (`zoom_agent.datasets.synthetic_video`) and their questions
(`zoom_agent.datasets.synthetic`), sized so a small model on a CPU can learn from it
(docs/training.md §8):

- videos of `GQA_VIDEO` (10 s, 4 fps, 224x168, 2 events): each event a coloured shape
  crossing the frame while a card shows a digit in a 3x5-dot font, 1 px per dot;
- three kinds of question (`KINDS`), each with the event's span as ground truth and four
  lettered options: ``grounding`` ("When is the red circle visible?", the options are
  windows), ``coarse`` (its colour or shape: readable in the coarse view) and ``fine``
  ("Which digit is shown on the card while ...": readable only in a zoom);
- ``train`` / ``validation`` / ``test`` splits (`SPLITS`) whose videos come from different
  seeds, written once into ``ROOT/<split>/`` and reused (the sidecars record the
  parameters).

Under `GQA_BUDGET` the coarse view shows the digit at about half a pixel per font dot and
a zoom on the event at one pixel per dot (`legibility` computes both from
`zoom_agent.planning.plan_clip`; tests/test_synthetic_gqa.py pins them).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from zoom_agent.config import Budget
from zoom_agent.geometry import VisionGeometry
from zoom_agent.types import Question, Span, VideoInfo

__all__ = [
    "GQA_BUDGET",
    "GQA_TASK",
    "GQA_VIDEO",
    "GQA_VIDEOS",
    "KINDS",
    "SPLITS",
    "Legibility",
    "legibility",
    "make_gqa_split",
]

GQA_TASK = "synthetic-gqa"
Split = Literal["train", "validation", "test"]
SPLITS: tuple[Split, ...] = ("train", "validation", "test")
GQA_VIDEO: Mapping[str, Any] = {"duration": 10.0, "fps": 4.0, "size": (224, 168), "num_events": 2}
GQA_VIDEOS: Mapping[Split, int] = {"train": 300, "validation": 8, "test": 16}  # 8 questions per video
GQA_BUDGET = Budget(visual_tokens=96, fps=1.0)  # coarse 10 frames at 140x84, a zoom 4 at 224x168
KINDS: Mapping[str, str] = {  # synthetic qtype -> question kind ("order" is left out)
    "when": "grounding",
    "colour": "coarse",
    "shape": "coarse",
    "digit": "fine",
}


def split_seed(seed: int, split: Split) -> int:
    """The synthetic-task seed of one split: different splits never share a video seed."""
    return int(np.random.SeedSequence([seed, 7_301, SPLITS.index(split)]).generate_state(1)[0])


def make_gqa_split(
    root: str | os.PathLike[str], split: Split, *, num_videos: int | None = None, seed: int = 0
) -> list[Question]:
    """Write (or reuse) one split under ``root/<split>`` and return its questions.

    Args:
        root: the task folder; each split gets its own sub-folder.
        split: ``train``, ``validation`` or ``test``.
        num_videos: videos in the split (default `GQA_VIDEOS`; 8 questions per video).
        seed: the task's seed (each split derives its own, `split_seed`).

    Returns:
        Questions with ``task="synthetic-gqa"``, ``qtype`` one of grounding/coarse/fine,
        ids prefixed by the split, absolute video paths.

    Raises:
        ValueError: an unknown split or ``num_videos < 1``.
    """
    from zoom_agent.datasets.synthetic import make_synthetic_task

    if split not in SPLITS:
        raise ValueError(f"{GQA_TASK}: split must be one of {', '.join(SPLITS)}, got {split!r}")
    count = GQA_VIDEOS[split] if num_videos is None else int(num_videos)
    video = {**GQA_VIDEO, "size": list(GQA_VIDEO["size"])}
    base = make_synthetic_task(Path(root) / split, num_videos=count, seed=split_seed(seed, split), **video)
    return [
        q.model_copy(update={"id": f"{split}-{q.id}", "qtype": KINDS[q.qtype], "task": GQA_TASK})
        for q in base
        if q.qtype is not None and q.qtype in KINDS
    ]


@dataclass(frozen=True)
class Legibility:
    """Pixels per font dot of the digit card in each view (>= 1: each dot has a pixel)."""

    coarse_size: tuple[int, int]  # (width, height) of a coarse frame
    zoom_size: tuple[int, int]  # of a frame of a zoom on one event
    coarse_dot: float  # the larger of the two axes' scale: the most a coarse frame keeps
    zoom_dot: float  # the smaller: the least a zoomed frame keeps


def legibility(geometry: VisionGeometry, budget: Budget = GQA_BUDGET, *, event_seconds: float = 3.0) -> Legibility:
    """Frame sizes of the coarse view and of a zoom on one event, and the dot sizes they give.

    Args:
        geometry: the model's vision geometry (the view sizes depend on its token side).
        budget: the visual-token budget of the views.
        event_seconds: the zoom window's length (events last 2-3.5 s in `GQA_VIDEO`).
    """
    from zoom_agent.datasets.synthetic_video import card_scale
    from zoom_agent.planning import plan_clip

    width, height = GQA_VIDEO["size"]
    fps, duration = float(GQA_VIDEO["fps"]), float(GQA_VIDEO["duration"])
    info = VideoInfo(
        path="legibility", duration=duration, fps=fps, num_frames=round(duration * fps), width=width, height=height
    )
    coarse = plan_clip(info, info.whole, budget, geometry)
    zoom = plan_clip(info, Span(start=3.0, end=3.0 + event_seconds), budget, geometry, role="zoom")
    dot = card_scale(height)
    return Legibility(
        coarse_size=(coarse.width, coarse.height),
        zoom_size=(zoom.width, zoom.height),
        coarse_dot=dot * max(coarse.width / width, coarse.height / height),
        zoom_dot=dot * min(zoom.width / width, zoom.height / height),
    )
