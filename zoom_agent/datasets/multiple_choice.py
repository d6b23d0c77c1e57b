"""One loader for multiple-choice video QA files (Video-MME, MLVU, LVBench style).

A `FieldMap` names where each Question field lives in a record; presets cover the public
releases (field names as published by each benchmark):

- Video-MME (lmms-lab/Video-MME, ``videomme/test-*.parquet``; convert it to JSON Lines first,
  e.g. ``pandas.read_parquet(p).to_json(out, orient="records", lines=True)``): ``question_id``,
  ``videoID`` (the YouTube id, video ``{videoID}.mp4``), ``question``, ``options`` (``"A. ..."``
  strings), ``answer`` (a letter), ``duration`` (the category short/medium/long, kept as qtype),
  ``task_type``.
- MLVU (dev ``json/{k}_{task}.json``): ``video`` (file name, under ``video/{task}/``: pass that
  folder as the video root), ``duration`` (seconds), ``question``, ``candidates``, ``answer``
  (the answer *text*), ``question_type``. No question id: ids are ``f"{file stem}_{index}"``.
- LVBench (THUDM/LVBench ``video_info.meta.jsonl``): one line per video, ``key`` (YouTube id,
  video ``{key}.mp4``) and ``qa``: a list of ``{uid, question, answer, question_type,
  time_reference}``; the options are inside the question text as ``(A) ...`` lines.

Answers may be a letter (``"C"``, ``"(C)"``), a 0-based index, or the option text.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from zoom_agent.datasets.paths import read_any_json_records, resolve_video
from zoom_agent.types import OPTION_LETTERS, Question

__all__ = ["LVBENCH", "MLVU", "PRESETS", "VIDEO_MME", "FieldMap", "load_multiple_choice"]

AnswerFormat = Literal["auto", "letter", "index", "text"]

_LABEL = re.compile(r"^\s*(?:\(([A-Z])\)|([A-Z])[.:)])\s*")  # "(A) x", "A. x", "A: x", "A) x"
_OPTION_LINE = re.compile(r"^\s*(?:\(([A-Z])\)|([A-Z])[.)])\s*(.*\S)\s*$")


class FieldMap(BaseModel):
    """Where each Question field lives in a record (dotted paths reach into sub-objects)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str | None = Field(None, description="question id field; None: f'{file stem}_{index}'")
    video: str = Field(description="field holding the video name or relative path")
    question: str
    options: str | None = Field(None, description="list-of-strings field; None: parse (A) lines")
    answer: str | None = Field(None, description="answer field; None: no answers in the file")
    answer_format: AnswerFormat = "auto"
    qtype: str | None = None
    duration: str | None = Field(None, description="duration in seconds (non-numbers ignored)")
    items: str | None = Field(None, description="list field of questions inside each record")
    video_pattern: str = Field("{video}", description="relative path; {video} and record fields")
    task: str | None = None


VIDEO_MME = FieldMap(
    id="question_id",
    video="videoID",
    question="question",
    options="options",
    answer="answer",
    answer_format="letter",
    qtype="duration",
    video_pattern="{video}.mp4",
    task="videomme",
)
MLVU = FieldMap(
    video="video",
    question="question",
    options="candidates",
    answer="answer",
    answer_format="text",
    qtype="question_type",
    duration="duration",
    task="mlvu",
)
LVBENCH = FieldMap(
    id="uid",
    video="key",
    question="question",
    answer="answer",
    answer_format="letter",
    qtype="question_type",
    items="qa",
    video_pattern="{video}.mp4",
    task="lvbench",
)
PRESETS: dict[str, FieldMap] = {"videomme": VIDEO_MME, "mlvu": MLVU, "lvbench": LVBENCH}

_MISSING = object()


def _lookup(record: dict[str, Any], dotted: str) -> Any:
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _get(item: dict[str, Any], parent: dict[str, Any] | None, dotted: str) -> Any:
    """The item's field, else the parent record's (LVBench keeps the video on the parent)."""
    value = _lookup(item, dotted)
    if value is _MISSING and parent is not None:
        value = _lookup(parent, dotted)
    return value


def _strip_label(text: str, position: int) -> str:
    m = _LABEL.match(text)
    if m and (m.group(1) or m.group(2)) == OPTION_LETTERS[position]:
        return text[m.end() :]
    return text


def _split_question(text: str, where: str) -> tuple[str, tuple[str, ...]]:
    """Split a question whose options are its trailing ``(A) ...`` lines (LVBench)."""
    lines = text.rstrip().splitlines()
    tail: list[tuple[str, str]] = []
    cut = len(lines)
    while cut > 0 and (m := _OPTION_LINE.match(lines[cut - 1])):
        tail.insert(0, (m.group(1) or m.group(2), m.group(3)))
        cut -= 1
    letters = "".join(letter for letter, _ in tail)
    # The longest run of trailing lines that reads A, B, C, ...: a stem line that happens
    # to look like "A. ..." stays in the question.
    for start in range(len(tail)):
        if letters[start:] == OPTION_LETTERS[: len(tail) - start]:
            stem = "\n".join(lines[: cut + start]).strip()
            return stem, tuple(option for _, option in tail[start:])
    raise ValueError(f"{where}: no options field and no '(A) ...' option lines ending the question")


def _answer_index(value: Any, options: tuple[str, ...], fmt: AnswerFormat, where: str) -> int:
    """0-based index of the answer, given as a letter, an index or the option text."""
    if fmt in ("auto", "index") and isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value < len(options):
            return value
        raise ValueError(f"{where}: answer index {value} is outside the {len(options)} options")
    if not isinstance(value, str):
        raise ValueError(f"{where}: answer {value!r} is not a {fmt} answer")
    bare = value.strip().strip("()").strip()
    if fmt == "index" and bare.isdigit():
        return _answer_index(int(bare), options, "index", where)
    if fmt in ("auto", "letter") and len(bare) == 1 and bare.upper() in OPTION_LETTERS[: len(options)]:
        return OPTION_LETTERS.index(bare.upper())
    if fmt in ("auto", "text"):
        hits = [i for i, text in enumerate(options) if text.strip() == value.strip()]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise ValueError(f"{where}: answer text {value!r} matches options {hits}; cannot tell which")
    raise ValueError(f"{where}: answer {value!r} is not a {fmt} answer among {len(options)} options")


def _text(value: Any, name: str, where: str) -> str:
    if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
        raise ValueError(f"{where}: field {name!r} must be a non-empty string, got {value!r}")
    return str(value)


def _options(
    item: dict[str, Any], parent: dict[str, Any] | None, fields: FieldMap, where: str
) -> tuple[str, tuple[str, ...]]:
    question = _text(_get(item, parent, fields.question), fields.question, where)
    if fields.options is None:
        return _split_question(question, where)
    raw = _get(item, parent, fields.options)
    if not isinstance(raw, list) or not raw or not all(isinstance(o, str) for o in raw):
        raise ValueError(f"{where}: field {fields.options!r} must be a non-empty list of strings")
    return question, tuple(_strip_label(o, i) for i, o in enumerate(raw))


def _optional(item: dict[str, Any], parent: dict[str, Any] | None, name: str | None) -> Any:
    if name is None:
        return None
    value = _get(item, parent, name)
    return None if value is _MISSING else value


def _scalars(*records: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for rec in records:  # later records (the item) win over earlier ones (the parent)
        if rec:
            out.update({k: v for k, v in rec.items() if isinstance(v, str | int | float)})
    return out


def _to_question(
    item: dict[str, Any],
    parent: dict[str, Any] | None,
    fields: FieldMap,
    auto_id: str,
    video_root: str | Path,
    where: str,
) -> Question:
    question, options = _options(item, parent, fields, where)
    video = _text(_get(item, parent, fields.video), fields.video, where)
    try:
        relative = fields.video_pattern.format_map({**_scalars(parent, item), "video": video})
    except (KeyError, IndexError) as exc:
        raise ValueError(f"{where}: video_pattern {fields.video_pattern!r} uses a missing field {exc}") from exc
    answer_raw = _optional(item, parent, fields.answer)
    duration = _optional(item, parent, fields.duration)
    qtype = _optional(item, parent, fields.qtype)
    if isinstance(qtype, list):  # LVBench: several capability tags per question
        qtype = ",".join(str(t) for t in qtype)
    ok_duration = isinstance(duration, int | float) and not isinstance(duration, bool)
    return Question(
        id=auto_id if fields.id is None else _text(_get(item, parent, fields.id), fields.id, where),
        video=resolve_video(video_root, relative),
        question=question,
        options=options,
        answer=None if answer_raw is None else _answer_index(answer_raw, options, fields.answer_format, where),
        duration=float(duration) if ok_duration and math.isfinite(duration) and duration > 0 else None,
        qtype=None if qtype is None else str(qtype),
        task=fields.task,
    )


def load_multiple_choice(path: str | Path, video_root: str | Path, fields: FieldMap | str) -> list[Question]:
    """Load a multiple-choice QA file with a field mapping or a preset name.

    Args:
        path: ``.jsonl`` (one record per line) or ``.json`` (a list of records).
        video_root: folder the videos live under; paths that escape it are refused.
        fields: a `FieldMap`, or a preset name: "videomme", "mlvu", "lvbench".

    Returns:
        Questions in file order (with ``items``, each record's questions in order).
        Video existence is not checked.

    Example:
        >>> qs = load_multiple_choice("videomme.jsonl", "/data/videomme", "videomme")  # doctest: +SKIP
    """
    if isinstance(fields, str):
        if fields not in PRESETS:
            raise ValueError(f"unknown preset {fields!r}; known: {sorted(PRESETS)}")
        fields = PRESETS[fields]
    stem = Path(path).stem
    questions: list[Question] = []
    seen: set[str] = set()
    for where, record in read_any_json_records(path):
        at = f"{path}:{where}"
        if not isinstance(record, dict):
            raise ValueError(f"{at}: expected a JSON object, got {type(record).__name__}")
        if fields.items is None:
            pairs: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = [(at, record, None)]
        else:
            items = _lookup(record, fields.items)
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise ValueError(f"{at}: field {fields.items!r} must be a list of objects")
            pairs = [(f"{at} {fields.items}[{k}]", item, record) for k, item in enumerate(items)]
        for item_at, item, parent in pairs:
            q = _to_question(item, parent, fields, f"{stem}_{len(questions)}", video_root, item_at)
            if q.id in seen:
                raise ValueError(f"{item_at}: duplicate question id {q.id!r}")
            seen.add(q.id)
            questions.append(q)
    return questions
