"""Prompt templates with the structure of their code (``prompts="official"``, docs/method.md §7).

Their evaluation (``src_eval/eval_gqa_tts.py``) sends ONE user turn and no system turn: a
sentence stating the video's length, the question with its options joined on one line, the
layout instruction with a worked example (and "do not list unrelated time ranges"), then the
video after the text. Videos longer than ``long_video_seconds`` get their own layout; the
chunks of divide and conquer ask for the letter alone; the fresh fine pass appends the
coarse reasoning with its time tags removed. The wording here is this project's own: load
a TOML file (`load_templates`, ``--prompt-file``) to use the exact text a checkpoint was
trained with. Every key is optional; unknown keys and missing placeholders are errors.

Example file::

    duration = "This video is {seconds} seconds long. "
    question = "Question: {question} Options: {options}"
"""

from __future__ import annotations

import functools
import string
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from zoom_agent.types import OPTION_LETTERS

_THINK = (
    "Think first, inside <think> </think>: state what in the video bears on the question and options, "
    "and mark every moment you rely on with its time in seconds inside <time> </time>, for instance "
    "<think> The man lifts the lid <time>(3.5, 7.0)</time> and then pours the water <time>(12.0, 18.5)"
    "</time>.</think>\n"
)
_LONG_THINK = (
    "The video is long: first find the few parts that matter. Think inside <think> </think>, marking each "
    "part you use with its time in seconds inside <time> </time>, for instance <think> The score appears "
    "<time>(610.0, 640.0)</time>.</think>\n"
)
_GLUE = (
    "and inside <glue> </glue> only the video segments, in seconds, that best support it, written as "
    "[(s1, e1), (s2, e2), ...]. Do not list time ranges that do not support the answer. For instance: "
)
_LONG_GLUE = "and, inside <glue> </glue>, only the segments in seconds that support it, as [(s1, e1), ...]. "
_LAYOUT = (
    f"{_THINK}Then give the letter of your choice inside <answer> </answer>, {_GLUE}<answer>B</answer>\n"
    "<glue>[(12.0, 18.5)]</glue>"
)
_LONG_LAYOUT = (
    f"{_LONG_THINK}Then give the letter of your choice inside <answer> </answer> {_LONG_GLUE}"
    "Do not list unrelated time ranges. For instance: <answer>C</answer>\n<glue>[(610.0, 640.0)]</glue>"
)
# Open-ended questions (no options): the same rules, a free-text answer in place of the letter.
_FREE = "your answer, in a few words,"
_OPEN_LAYOUT = (
    f"{_THINK}Then give {_FREE} inside <answer> </answer>, {_GLUE}<answer>the water</answer>\n"
    "<glue>[(12.0, 18.5)]</glue>"
)
_OPEN_LONG_LAYOUT = (
    f"{_LONG_THINK}Then give {_FREE} inside <answer> </answer> {_LONG_GLUE}"
    "Do not list unrelated time ranges. For instance: <answer>the final score</answer>\n"
    "<glue>[(610.0, 640.0)]</glue>"
)

# What a prompt asks for: the full layout with thinking, the letter alone, or letter and spans.
Reply = Literal["reasoned", "letter", "letter_and_spans"]

# Placeholders each template must hold (and may only hold).
PLACEHOLDERS: dict[str, frozenset[str]] = {
    "duration": frozenset({"seconds"}),
    "question": frozenset({"question", "options"}),
    "layout": frozenset(),
    "long_layout": frozenset(),
    "chunk": frozenset(),
    "chunk_spans": frozenset(),
    "reasoning": frozenset({"reasoning"}),
    "verifier": frozenset(),
    "open_question": frozenset({"question"}),
    "open_layout": frozenset(),
    "open_long_layout": frozenset(),
    "open_chunk": frozenset(),
    "open_chunk_spans": frozenset(),
}


class PromptTemplates(BaseModel):
    """The wording of the official prompt structure; each field one piece of the user turn."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    duration: str = Field("This video lasts {seconds} seconds. ", description="the duration sentence, first")
    question: str = Field(
        "Question: {question} Pick one option: {options}", description="question and options on one line"
    )
    layout: str = Field(_LAYOUT, description="the reply layout with its examples")
    long_layout: str = Field(_LONG_LAYOUT, description="the layout for videos over long_video_seconds")
    long_video_seconds: float = Field(600.0, gt=0, description="their code: a separate template above 600 s")
    chunk: str = Field(
        "Answer with the letter of the option inside <answer> </answer> and nothing else.",
        description="divide and conquer's chunk and whole-video passes: the letter alone, no thinking",
    )
    chunk_spans: str = Field(
        "Give the letter of the option inside <answer> </answer> and, inside <glue> </glue>, only the "
        "segments in seconds that support it, as [(s1, e1), ...]. For instance: <answer>A</answer>\n"
        "<glue>[(20.5, 31.0)]</glue>",
        description="divide and conquer's chunks when there are several: letter and spans, no thinking",
    )
    reasoning: str = Field("{reasoning}", description="the coarse reasoning appended to the fresh fine pass")
    verifier: str = Field(
        "Reply with the letter of the correct option only.", description="the zoom verifier's instruction"
    )

    open_question: str = Field("Question: {question}", description="an open-ended question (no options)")
    open_layout: str = Field(_OPEN_LAYOUT, description="the layout of an open-ended question: a free-text answer")
    open_long_layout: str = Field(_OPEN_LONG_LAYOUT, description="open_layout for videos over long_video_seconds")
    open_chunk: str = Field(
        "Answer the question in a few words inside <answer> </answer> and nothing else.",
        description="chunk and whole-video passes of an open-ended question",
    )
    open_chunk_spans: str = Field(
        "Answer the question in a few words inside <answer> </answer> and, inside <glue> </glue>, give only "
        "the segments in seconds that support it, as [(s1, e1), ...]. For instance: <answer>the red car</answer>\n"
        "<glue>[(20.5, 31.0)]</glue>",
        description="chunks of an open-ended question when there are several: answer and spans",
    )

    @field_validator(*PLACEHOLDERS)
    @classmethod
    def _placeholders(cls, text: str, info: object) -> str:
        name = getattr(info, "field_name", "")
        found = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
        expected = PLACEHOLDERS[name]
        if found != expected:
            want = ", ".join("{" + p + "}" for p in sorted(expected)) or "no placeholder"
            raise ValueError(f"template {name!r} must hold {want}; it holds {sorted(found) or 'none'}")
        return text


def load_templates(path: str | Path) -> PromptTemplates:
    """Prompt templates from a TOML file; keys left out keep the built-in wording.

    Raises:
        ValueError: the file is missing or not TOML, or a key is unknown or has the wrong
            placeholders; the message names the file and the key.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"prompt file {path}: {e}; expected a TOML file of template strings") from None
    try:
        return PromptTemplates.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise ValueError(f"prompt file {path}: {problems}") from None


@functools.lru_cache(maxsize=8)
def templates_from(path: str | None) -> PromptTemplates:
    """The built-in templates (``path`` None) or those of a file, read once per path."""
    return PromptTemplates() if path is None else load_templates(path)


def options_line(options: Sequence[str]) -> str:
    """Options joined on one line: ``(A) red (B) green``."""
    return " ".join(f"({OPTION_LETTERS[i]}) {' '.join(str(o).split())}" for i, o in enumerate(options))


def _seconds(value: float) -> str:
    return f"{round(float(value), 2):g}"


def official_prompt(
    templates: PromptTemplates,
    question: str,
    options: Sequence[str] | None,
    *,
    seconds: float,
    reply: Reply = "reasoned",
    reasoning: str | None = None,
) -> str:
    """The text of the one user turn (the video follows it).

    Args:
        templates: the wording.
        question: the question.
        options: the options (lettered A, B, ...), or None for an open-ended question (its
            own question line and a layout asking for a free-text answer).
        seconds: the length of the video the model sees (the pooled clip's, in the fine pass).
        reply: ``reasoned`` (the layout with thinking; the duration sentence first),
            ``letter`` or ``letter_and_spans`` (divide and conquer; their long-video
            prompts state no duration).
        reasoning: the coarse reasoning, time tags removed (the fresh fine pass).

    Raises:
        ValueError: an empty question.
    """
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"question must be non-empty text, got {question!r}")
    text = templates.duration.format(seconds=_seconds(seconds)) if reply == "reasoned" else ""
    asked = " ".join(question.split())
    long_video = seconds > templates.long_video_seconds
    if options is None:  # open-ended: a free-text answer, same layout rules
        text += templates.open_question.format(question=asked)
        layouts = (templates.open_chunk, templates.open_chunk_spans, templates.open_long_layout, templates.open_layout)
    else:
        text += templates.question.format(question=asked, options=options_line(options))
        layouts = (templates.chunk, templates.chunk_spans, templates.long_layout, templates.layout)
    if reply == "letter":
        layout = layouts[0]
    elif reply == "letter_and_spans":
        layout = layouts[1]
    else:
        layout = layouts[2] if long_video else layouts[3]
    text += "\n" + layout
    if reasoning:
        text += " " + templates.reasoning.format(reasoning=reasoning)
    return text
