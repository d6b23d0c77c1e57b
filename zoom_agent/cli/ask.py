"""``zoom-agent ask``: one question about one video, with the model's trace."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from zoom_agent.cli.options import add_agent_options, agent_config
from zoom_agent.types import ClipRef, GroundedAnswer


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``ask`` to the ``zoom-agent`` sub-commands."""
    p = subparsers.add_parser(
        "ask",
        help="ask one question about a video",
        description="Ask one question about a video; print the answer, its evidence spans and every view.",
    )
    p.add_argument("video", type=Path, help="the video file")
    p.add_argument("question", help="the question")
    p.add_argument(
        "--option",
        action="append",
        default=None,
        help="an answer option, repeated in order (default: none, an open question)",
    )
    p.add_argument(
        "--model", required=True, help="a local model folder (transformers) or an http(s)://.../v1 server URL"
    )
    p.add_argument("--json", action="store_true", help="print the GroundedAnswer as JSON")
    add_agent_options(p)
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Answer the question; exit status 1 when the run ended in an error."""
    from zoom_agent.agent import ZoomAgent
    from zoom_agent.models import load_model

    agent = ZoomAgent(load_model(args.model, family=args.family), agent_config(args))
    result = agent.ask(args.video, args.question, args.option)
    print(result.model_dump_json(indent=2) if args.json else describe(result))
    return 0 if result.status != "error" else 1


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
