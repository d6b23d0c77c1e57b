"""Prompt templates and well-formed replies for both dialects (docs/architecture.md §4).

The system, question, reminder and follow-up turns the graph sends, the caption placed
before each clip, and `format_tool_call` / `format_answer`, which write replies the way a
well-behaved policy would (scripted models, tests); `parse` reads those back with score 1.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from zoom_agent.protocol.parser import Dialect
from zoom_agent.protocol.scan import Interval
from zoom_agent.protocol.zoom_call import ZOOM_TOOL_NAME, ZOOM_TOOL_SCHEMA
from zoom_agent.types import OPTION_LETTERS, ClipRef

_ROLE = "You answer questions about a video and point to the evidence in time."
_TIMES = (
    "Each clip is preceded by a line giving its absolute start and end in seconds; "
    "always give times as seconds from the start of the whole video."
)
_THINK = "Think inside <think> </think> and mark each moment you refer to as <time>(start, end)</time>."
_CALL = f'<tool_call>{{"name": "{ZOOM_TOOL_NAME}", "arguments": {{"start": START, "end": END}}}}</tool_call>'
_ANSWER = "<answer>LETTER</answer>\n<glue>[(START, END), ...]</glue>"
_GLUE = "<glue> lists the time windows, in seconds, that show the evidence."
_ANSWER_WHAT = "the option's letter (or a short answer when there are no options)"


def _check_dialect(dialect: str) -> None:
    if dialect not in ("tool", "zoomzero"):
        raise ValueError(f"dialect must be 'tool' or 'zoomzero', got {dialect!r}")


def _layout_text(dialect: Dialect, *, open_ended: bool = False, allow_zoom: bool = True) -> str:
    answer = _ANSWER.replace("LETTER", "YOUR ANSWER" if open_ended else "LETTER")
    if dialect == "zoomzero":
        return f"Reply in exactly this layout:\n<think> ... </think>\n{answer}"
    if not allow_zoom:
        return f"Reply with:\n<think> ... </think>\n{answer}"
    return f"To zoom, reply with one call per window:\n{_CALL}\nTo answer, reply with:\n{answer}"


def system_prompt(dialect: Dialect = "tool", *, max_zoom_rounds: int) -> str:
    """The system turn: task, timing convention, and the dialect's output rules.

    Args:
        dialect: ``"tool"`` or ``"zoomzero"``.
        max_zoom_rounds: how many zoom turns the graph allows (0 = answer at once).

    Returns:
        The prompt text.
    """
    _check_dialect(dialect)
    if isinstance(max_zoom_rounds, bool) or not isinstance(max_zoom_rounds, int) or max_zoom_rounds < 0:
        raise ValueError(f"max_zoom_rounds must be an int >= 0, got {max_zoom_rounds!r}")
    lines = [_ROLE, "You first see the whole video at a low resolution. " + _TIMES, _THINK]
    if dialect == "tool" and max_zoom_rounds:
        lines.append(
            f"To look closer, call the {ZOOM_TOOL_NAME} tool with a window in seconds; it returns "
            f"that window's frames at a higher resolution. You have at most {max_zoom_rounds} "
            "zoom turn(s); several calls in one turn zoom several windows at once."
        )
    elif dialect == "tool":
        lines.append("Zooming is not available: answer from what you see.")
    lines.append(f"To answer, give {_ANSWER_WHAT} inside <answer> </answer>; {_GLUE}")
    if dialect == "zoomzero" and max_zoom_rounds:
        lines.append(
            "You may then be shown your evidence windows at a higher resolution; answer again in the same layout."
        )
    return "\n".join(lines)


def question_prompt(
    question: str, options: Sequence[str] | None, *, dialect: Dialect = "tool", allow_zoom: bool = True
) -> str:
    """The user text that follows the coarse clip: question, lettered options, layout.

    Args:
        question: the question text.
        options: option texts (lettered A, B, ...), or None for an open-ended question.
        dialect: ``"tool"`` (adds the ``temporal_zoom`` JSON schema) or ``"zoomzero"``.
        allow_zoom: ``tool`` dialect only; False leaves out the tool (no zoom rounds left).

    Returns:
        The prompt text.
    """
    _check_dialect(dialect)
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"question must be non-empty text, got {question!r}")
    lines = [f"Question: {' '.join(question.split())}"]
    if options is not None:
        if isinstance(options, str) or not 1 <= len(options) <= len(OPTION_LETTERS):
            raise ValueError(f"options must be a sequence of 1..26 strings, got {options!r}")
        lines.append("Options:")
        lines += [f"{OPTION_LETTERS[i]}. {' '.join(str(o).split())}" for i, o in enumerate(options)]
    if dialect == "tool" and allow_zoom:
        lines.append("Tool:\n<tools>\n" + json.dumps(ZOOM_TOOL_SCHEMA) + "\n</tools>")
    lines.append(_layout_text(dialect, open_ended=options is None, allow_zoom=allow_zoom))
    return "\n".join(lines)


def clip_caption(ref: ClipRef) -> str:
    """The line placed right before a clip, e.g. ``Video 12.0-18.5 s (16 frames, 448x252):``.

    Qwen2.5-VL restarts its time positions at each clip, so the absolute window is stated.
    """
    prefix = {"coarse": "Video", "zoom": "Zoomed video", "context": "Whole-video overview"}[ref.role]
    size = f"{ref.num_frames} frames, {ref.width}x{ref.height}"
    if len(ref.windows) > 1:  # a pooled clip: its windows, in video time
        windows = " + ".join(f"{w.start:.1f}-{w.end:.1f} s" for w in ref.windows)
        return f"{prefix} {windows} ({size}):"
    return f"{prefix} {ref.span.start:.1f}-{ref.span.end:.1f} s ({size}):"


def format_reminder(dialect: Dialect = "tool", *, open_ended: bool = False) -> str:
    """The user text sent back when a turn could not be parsed (``open_ended``: the answer
    layout asks for free text, not a letter)."""
    _check_dialect(dialect)
    return "Your reply could not be read. " + _layout_text(dialect, open_ended=open_ended)


def follow_up_prompt(dialect: Dialect = "tool", *, rounds_left: int, open_ended: bool = False) -> str:
    """The user text after the zoomed clips: zoom again (while rounds are left) or answer.

    Args:
        dialect: ``"tool"`` or ``"zoomzero"``.
        rounds_left: zoom turns still allowed after this one (0 or less = answer now).
        open_ended: the question has no options: the layout asks for a free-text answer.

    Returns:
        The prompt text.
    """
    _check_dialect(dialect)
    if dialect == "zoomzero":
        return "Answer again from the zoomed frames. " + _layout_text(dialect, open_ended=open_ended)
    if rounds_left > 0:
        return f"You may zoom again ({rounds_left} zoom turn(s) left) or answer. " + _layout_text(
            dialect, open_ended=open_ended
        )
    return "No zoom turns left: answer now. " + _layout_text(dialect, open_ended=open_ended, allow_zoom=False)


def dropped_calls_note(asked: int, cap: int) -> str:
    """What the model is told when a turn made more zoom calls than run in one turn.

    >>> dropped_calls_note(50, 4)
    'Only your first 4 of 50 zoom calls ran: at most 4 run per turn, so 46 were dropped.'
    """
    dropped = asked - cap
    return f"Only your first {cap} of {asked} zoom calls ran: at most {cap} run per turn, so {dropped} were dropped."


def _seconds(value: float) -> str:
    """A time for a reply: at most 2 decimals, always a float literal (``5.0``, ``12.25``)."""
    return repr(round(float(value), 2))


def format_tool_call(start: float, end: float, *, reasoning: str | None = None) -> str:
    """A ``tool``-dialect zoom turn, as a well-behaved policy writes it (scripted models, tests).

    Args:
        start: window start, seconds.
        end: window end, seconds.
        reasoning: put inside ``<think>`` first, if given.

    Returns:
        The reply text; `parse` reads it back with format score 1 for a valid window.
    """
    args = json.dumps({"start": round(float(start), 2), "end": round(float(end), 2)})
    call = f'<tool_call>{{"name": "{ZOOM_TOOL_NAME}", "arguments": {args}}}</tool_call>'
    return call if reasoning is None else f"<think>{reasoning}</think>\n{call}"


def format_answer(
    answer: str, spans: Sequence[Interval], *, reasoning: str | None = None, dialect: Dialect = "tool"
) -> str:
    """An answering turn: optional ``<think>``, then ``<answer>`` and ``<glue>``.

    Args:
        answer: the option letter (or a short answer).
        spans: evidence windows ``(start, end)`` in seconds.
        reasoning: text for ``<think>``; ``zoomzero`` requires one, so None there writes a
            sentence citing the spans with ``<time>`` tags.
        dialect: ``"tool"`` or ``"zoomzero"``.

    Returns:
        The reply text; `parse` reads it back with format score 1 for valid spans.
    """
    _check_dialect(dialect)
    pairs = [f"({_seconds(s)}, {_seconds(e)})" for s, e in spans]
    if reasoning is None and dialect == "zoomzero":
        cited = " and ".join(f"<time>{p}</time>" for p in pairs) or "no clear moment"
        reasoning = f"The evidence is at {cited}."
    head = "" if reasoning is None else f"<think>{reasoning}</think>\n"
    return f"{head}<answer>{answer}</answer>\n<glue>[{', '.join(pairs)}]</glue>"
