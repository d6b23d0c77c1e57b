"""``zoom-agent demo``: the whole pipeline offline, on a synthetic video.

First a scripted model that zooms on the right event shows the mechanics (the coarse
view, the zoom call, the zoomed view, the grounded answer); then the real transformers
path runs a tiny random Qwen-VL built locally (its answers are meaningless).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from zoom_agent.cli.ask import describe, show_steps
from zoom_agent.config import AgentConfig, Budget
from zoom_agent.geometry import FAMILIES, PAPER_GEOMETRY
from zoom_agent.progress import stage
from zoom_agent.types import GroundedAnswer, Question

# A small budget, so that the coarse view is too coarse for the digit and the zoom is not.
DEMO_BUDGET = Budget(visual_tokens=1024, fps=2.0)


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``demo`` to the ``zoom-agent`` sub-commands."""
    p = subparsers.add_parser(
        "demo",
        help="offline end-to-end demo: synthetic video, scripted zoom, tiny real model",
        description="Run the zoom agent offline on a synthetic video: a scripted model, then a tiny random Qwen-VL.",
    )
    p.add_argument("--out", type=Path, default=Path("zoom-demo"), help="folder for the video and the tiny model")
    p.add_argument(
        "--save-frames", type=Path, default=None, help="write the coarse and zoomed frames here (default: not written)"
    )
    p.add_argument("--family", choices=FAMILIES, default=PAPER_GEOMETRY.family, help="family of the tiny model")
    p.add_argument("--skip-tiny", action="store_true", help="only the scripted run")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Both runs, each printed as a trace."""
    from zoom_agent.agent import ZoomAgent
    from zoom_agent.datasets.synthetic import make_synthetic_task
    from zoom_agent.models.oracle import OracleVLM

    out: Path = args.out
    questions = make_synthetic_task(out / "videos", num_videos=1, seed=0, size=(640, 480))
    question = _demo_question(questions)
    config = AgentConfig(budget=DEMO_BUDGET)
    print(f"video: {question.video}\nquestion: {question.question}")
    for letter, option in zip(question.letters, question.options or (), strict=False):
        print(f"  {letter}. {option}")

    print("\n== 1. a scripted model that zooms on the right event (shows the mechanics) ==")
    scripted = asyncio.run(ZoomAgent(OracleVLM(questions), config).arun(question))
    print(describe(scripted))
    if scripted.answer_index is not None:
        print(f"ground truth: {question.answer_letter}; spans {', '.join(str(s) for s in question.gt_spans)}")
    if args.save_frames:
        for path in save_frames(scripted, args.save_frames):
            print(f"saved {path}")

    if not args.skip_tiny:
        from zoom_agent.models.hf import TransformersVLM
        from zoom_agent.models.tiny import build_tiny_model

        print(f"\n== 2. the real transformers path, tiny random {args.family} (answers are meaningless) ==")
        model_dir = out / f"tiny-{args.family}"
        if not (model_dir / "config.json").is_file():
            build_tiny_model(model_dir, args.family, on_stage=lambda step: stage(f"demo: {step}"))
        tiny_config = config.model_copy(update={"max_tokens": 48})
        stage(f"demo: loading {model_dir}")
        agent = ZoomAgent(TransformersVLM(model_dir), tiny_config)
        real = asyncio.run(agent.arun(question, on_step=show_steps("demo")))
        print(describe(real))
    return 0


def _demo_question(questions: list[Question]) -> Question:
    """The question that needs the zoom: the digit that is only legible up close."""
    return next((q for q in questions if "digit" in q.question.lower()), questions[0])


def save_frames(result: GroundedAnswer, out_dir: Path) -> list[Path]:
    """Write each clip the model saw as one contact sheet (frames in a grid, times on them)."""
    import cv2
    import numpy as np

    from zoom_agent.video import open_video

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for i, clip in enumerate(c for t in result.turns for c in t.clips):
        frames = open_video(clip.path).read_clip(clip)
        tiles = []
        for img, t in zip(frames.frames, frames.timestamps, strict=True):
            tile = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
            cv2.putText(tile, f"{t:.1f}s", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 255, 255), 1)
            tiles.append(tile)
        cols = min(8, len(tiles))
        tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % cols)
        rows = [np.hstack(tiles[r : r + cols]) for r in range(0, len(tiles), cols)]
        path = (
            out_dir / f"{i:02d}_{clip.role}_{clip.span.start:.1f}-{clip.span.end:.1f}s_{clip.width}x{clip.height}.png"
        )
        cv2.imwrite(str(path), np.vstack(rows))
        written.append(path)
    return written
