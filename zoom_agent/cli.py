"""The ``zoom-agent`` command: ask, demo, tiny-model, eval, train, serve."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from zoom_agent.config import AgentConfig, Budget
from zoom_agent.types import ClipRef, GroundedAnswer, Question


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as exc:  # user errors: one clear line, no traceback
        print(f"zoom-agent {args.command}: error: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zoom-agent", description=__doc__)
    sub = parser.add_subparsers(dest="command")

    ask = sub.add_parser("ask", help="ask one question about a video")
    ask.add_argument("video", type=Path)
    ask.add_argument("question")
    ask.add_argument("--option", action="append", default=None, help="an answer option (repeat, in order)")
    ask.add_argument(
        "--model", required=True, help="a local model directory (transformers) or an http(s)://.../v1 server URL"
    )
    ask.add_argument("--json", action="store_true", help="print the GroundedAnswer as JSON")
    _agent_options(ask)
    ask.set_defaults(run=_ask)

    demo = sub.add_parser("demo", help="offline end-to-end demo: synthetic video, scripted zoom, tiny real model")
    demo.add_argument("--out", type=Path, default=Path("zoom-demo"), help="where the video and tiny model go")
    demo.add_argument("--save-frames", type=Path, default=None, help="write the coarse and zoomed frames here")
    demo.add_argument("--family", choices=["qwen2_5_vl", "qwen3_vl"], default="qwen2_5_vl")
    demo.add_argument("--skip-tiny", action="store_true", help="only the scripted run")
    demo.set_defaults(run=_demo)

    tiny = sub.add_parser("tiny-model", help="build a tiny random Qwen-VL offline (for tests and demos)")
    tiny.add_argument("out", type=Path)
    tiny.add_argument("--family", choices=["qwen2_5_vl", "qwen3_vl"], default="qwen2_5_vl")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(run=_tiny_model)

    from zoom_agent.eval.cli import add_eval_parser

    add_eval_parser(sub, agent_options=_agent_options, agent_config=_agent_config)

    from zoom_agent.training.cli import add_train_parser

    add_train_parser(sub)

    from zoom_agent.serve import add_serve_parser

    add_serve_parser(sub)
    return parser


def _agent_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dialect", choices=["tool", "zoomzero"], default="tool")
    p.add_argument("--visual-tokens", type=int, default=8192, help="the visual-token budget L_v")
    p.add_argument("--zoom-rounds", type=int, default=2, help="zoom rounds before the model must answer")
    p.add_argument("--global-context", action="store_true", help="add low-res whole-video frames to zoomed turns")


def _agent_config(args: argparse.Namespace, family: str = "qwen2_5_vl") -> AgentConfig:
    budget = Budget.for_family(family, visual_tokens=args.visual_tokens)  # type: ignore[arg-type]
    return AgentConfig(
        dialect=args.dialect,
        budget=budget,
        max_zoom_rounds=args.zoom_rounds,
        global_context=args.global_context,
    )


def _ask(args: argparse.Namespace) -> int:
    from zoom_agent.agent import ZoomAgent
    from zoom_agent.models import load_model

    model = load_model(args.model)
    agent = ZoomAgent(model, _agent_config(args, getattr(model, "family", "qwen2_5_vl")))
    result = agent.ask(args.video, args.question, args.option)
    print(result.model_dump_json(indent=2) if args.json else describe(result))
    return 0 if result.status != "error" else 1


def _tiny_model(args: argparse.Namespace) -> int:
    from zoom_agent.models.tiny import build_tiny_model

    t0 = time.perf_counter()
    path = build_tiny_model(args.out, args.family, seed=args.seed)
    print(f"tiny {args.family} model written to {path} in {time.perf_counter() - t0:.1f} s (random weights)")
    return 0


def describe(result: GroundedAnswer) -> str:
    """A readable trace: each turn's view, each zoom, the answer and its evidence."""
    lines = [f"question {result.question_id}: {result.status}"]
    zooms_by_round: dict[int, list] = {}
    for z in result.zooms:
        zooms_by_round.setdefault(z.round, []).append(z)
    for turn in result.turns:
        for clip in turn.clips:
            lines.append(f"  [{clip.role}] {_clip_line(clip)}")
        head = turn.text.strip().replace("\n", " ")
        tokens = f", {turn.prompt_tokens}+{turn.completion_tokens} tokens" if turn.prompt_tokens else ""
        lines.append(f"  model (round {turn.round}, {turn.latency_s * 1000:.0f} ms{tokens}): {head[:160]}")
        for z in zooms_by_round.get(turn.round + 1, []) if turn.tool_calls else []:
            lines.append(f"  -> temporal_zoom{json.dumps(z.requested, default=str)}: {z.text}")
    if result.status == "answered":
        spans = ", ".join(str(s) for s in result.spans) or "none"
        conf = f" (p={result.answer_confidence:.2f})" if result.answer_confidence is not None else ""
        lines.append(f"answer: {result.answer}{conf} {result.answer_text or ''}".rstrip())
        lines.append(f"evidence: {spans}")
    elif result.error:
        lines.append(f"reason: {result.error}")
    lines.append(f"zoom rounds: {result.rounds}; total {result.elapsed_s:.2f} s")
    return "\n".join(lines)


def _clip_line(clip: ClipRef) -> str:
    times = clip.timestamps
    shown = ", ".join(f"{t:.1f}" for t in times[:6]) + (", ..." if len(times) > 6 else "")
    return f"{clip.describe()}, {clip.visual_tokens} visual tokens; frame times [{shown}] s"


def _demo(args: argparse.Namespace) -> int:
    from zoom_agent.agent import ZoomAgent
    from zoom_agent.datasets.synthetic import make_synthetic_task
    from zoom_agent.models.oracle import OracleVLM

    out: Path = args.out
    questions = make_synthetic_task(out / "videos", num_videos=1, seed=0, size=(640, 480))
    question = _demo_question(questions)
    # A small budget, so that the coarse view is too coarse for the digit and the zoom is not.
    config = AgentConfig(budget=Budget(visual_tokens=1024, fps=2.0))
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
            build_tiny_model(model_dir, args.family)
        budget = Budget.for_family(args.family, visual_tokens=1024)  # type: ignore[arg-type]
        tiny_config = config.model_copy(update={"budget": budget, "max_tokens": 48})
        real = asyncio.run(ZoomAgent(TransformersVLM(model_dir), tiny_config).arun(question))
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


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
