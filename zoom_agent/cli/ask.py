"""``zoom-agent ask``: one question about one video, with the model's trace.

Every input is checked before the model loads (the flags, ``--model``'s form, the video's
header); then stage lines on stderr say what runs (loading the model, the coarse view, each
zoom round, the answer), so a slow model is never silent.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoom_agent.cli.errors import UsageError, one_line
from zoom_agent.cli.options import add_agent_options, agent_config, check_model_spec
from zoom_agent.cli.smoke import SMOKE_TOKENS, smaller, smoke_mode
from zoom_agent.progress import stage
from zoom_agent.types import ClipRef, GroundedAnswer, VideoInfo


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
        "--model",
        required=True,
        help="a local model folder (transformers), an http(s)://HOST:PORT/v1 server URL or a LangChain "
        "'provider:model' string",
    )
    p.add_argument("--json", action="store_true", help="print the GroundedAnswer as JSON")
    add_agent_options(p)
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Check every input, load the model, answer; exit status 1 when the run ended in an error."""
    from zoom_agent.agent import ZoomAgent, make_question
    from zoom_agent.models import load_model
    from zoom_agent.sync import shared_loop

    config = agent_config(args)
    if smoke_mode():  # CI runs the README's commands at smoke sizes (zoom_agent.cli.smoke)
        tokens = smaller("ask", "max_tokens", config.max_tokens, SMOKE_TOKENS)
        config = config.model_copy(update={"max_tokens": tokens})
    check_model_spec(args.model, oracle=False)
    info = checked_video(args.video)
    try:
        question = make_question(args.video, args.question, args.option)
    except ValueError as exc:  # repeated options, more than 26
        raise UsageError(f"--option: {one_line(exc)}") from None
    stage(f"ask: loading model {args.model}")
    t0 = time.perf_counter()
    agent = ZoomAgent(load_model(args.model, family=args.family), config)
    stage(f"ask: model loaded in {time.perf_counter() - t0:.1f} s")
    result = shared_loop().run(agent.arun(question, info=info, on_step=show_steps("ask")))
    print(result.model_dump_json(indent=2) if args.json else describe(result))
    return 0 if result.status != "error" else 1


def checked_video(path: Path) -> VideoInfo:
    """The video's header, read before any model loads.

    Raises:
        UsageError: no such file, a folder, or a file that does not open as a video.
    """
    from zoom_agent.video import open_video

    if not path.exists():
        raise UsageError(f"video {path}: no such file")
    if not path.is_file():
        raise UsageError(f"video {path} is a folder: expected a video file")
    try:
        return open_video(path).info
    except (ValueError, OSError) as exc:  # VideoError and what the container reader raises
        raise UsageError(f"video {path} does not open as a video: {one_line(exc)}") from None


def show_steps(command: str) -> Callable[[str, dict[str, Any]], None]:
    """An ``on_step`` for `ZoomAgent.arun`: a stage line on stderr per step of the zoom graph."""

    def show(node: str, update: dict[str, Any]) -> None:
        line = step_line(node, update)
        if line:
            stage(f"{command}: {line}")

    return show


def step_line(node: str, update: dict[str, Any]) -> str | None:
    """What a finished graph step means to a waiting user (None: nothing worth a line)."""
    if node == "prepare" and update.get("coarse") is not None:
        clip = update["coarse"]
        return f"coarse view {clip.describe()}, {clip.visual_tokens} visual tokens; the model reads it (round 0)"
    if node == "prepare" and update.get("info") is not None:
        return "a long video: answering chunk by chunk (divide and conquer)"
    if node == "model" and update.get("trace"):
        trace = update["trace"][-1]
        calls = len(update.get("calls") or [])
        if calls:
            return f"round {trace.round}: the model asks for {calls} zoom{'s' if calls > 1 else ''}"
        return f"round {trace.round}: the model answers {trace.answer}" if trace.answer else None
    if node == "zoom":
        return "; ".join(_zoom_line(z) for z in update.get("zooms", [])) or None
    return _OTHER_STEPS.get(node)


_OTHER_STEPS = {
    "observe": "the model reads the zoomed views",
    "retry": "no answer and no zoom in the reply: reminding the model of the format",
    "chunk": "a chunk read",
    "fine": "fine pass over the pooled spans",
    "refine": "fresh fine pass over the pooled spans",
}


def _zoom_line(zoom: Any) -> str:
    if zoom.clip is None:
        return f"zoom round {zoom.round}: refused ({zoom.error or zoom.text})"
    return f"zoom round {zoom.round}: {zoom.clip.describe()}"


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
        text = "" if result.answer_index is None else f" {result.answer_text}"  # open-ended: the text is the answer
        lines.append(f"answer: {result.answer}{conf}{text}")
        lines.append(f"evidence: {spans}")
    elif result.error:
        lines.append(f"reason: {result.error}")
    lines += [f"warning: {w}" for w in result.warnings]  # what may make the answer wrong though it ran
    lines.append(f"zoom rounds: {result.rounds}; total {result.elapsed_s:.2f} s")
    return "\n".join(lines)


def _clip_line(clip: ClipRef) -> str:
    times = clip.timestamps
    shown = ", ".join(f"{t:.1f}" for t in times[:6]) + (", ..." if len(times) > 6 else "")
    return f"{clip.describe()}, {clip.visual_tokens} visual tokens; frame times [{shown}] s"
