"""ReXTime loader: the benchmark's jsonl, plus the option texts when the user has them.

``rextime_val.jsonl`` (ReXTime/ReXTime, data/) has one question per line:
``{"qid", "query", "duration", "vid", "relevant_windows": [[s, e], ...], "ans": "A"}``.
The option texts are not in it (they live in the benchmark's hub dataset). So:

- with ``options_path``: multiple-choice questions. The options file is JSON Lines (or a
  ``.json`` list) of records ``{"qid": str, "options": [str, ...], "ans": "B" | 1}``;
  ``ans`` is optional (a letter, or a 0-based index) and, when both files give one, they
  must agree. Other keys are ignored, so rows exported from the hub dataset, which carry
  ``qid``, ``options`` and ``ans``, work as they are. Every jsonl question must have options.
- without it: grounding-only questions (``options`` and ``answer`` None). The jsonl's
  ``ans`` letter is then dropped from the Question (there is nothing for it to index);
  `zoom_agent.metrics.rextime_metrics` reads it from the jsonl itself.

Videos come from two sources: ActivityNet (qid ``anet_...``, vid ``v_...``) and
QVHighlights (qid ``qvh_...``). ``video_pattern`` may use ``{vid}`` and ``{source}``
(``anet``/``qvh``), e.g. ``"{source}/{vid}.mp4"``. ``qtype`` is the source.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from zoom_agent.datasets.paths import DatasetFormatError, read_any_json_records, read_jsonl, resolve_video
from zoom_agent.types import OPTION_LETTERS, Question, Span

__all__ = ["load_rextime", "load_rextime_options"]


def _letter_index(value: Any, n_options: int | None, where: str) -> int:
    """0-based index from a letter ("B", "(B)") or an int; checked against the options."""
    if isinstance(value, bool):
        raise ValueError(f"{where}: answer {value!r} is neither a letter nor an index")
    if isinstance(value, int):
        index = value
    elif isinstance(value, str) and len(value.strip().strip("()")) == 1:
        letter = value.strip().strip("()").upper()
        index = OPTION_LETTERS.find(letter)
        if index < 0:
            raise ValueError(f"{where}: answer {value!r} is not an option letter")
    else:
        raise ValueError(f"{where}: answer {value!r} is neither a letter nor an index")
    if index < 0 or (n_options is not None and index >= n_options):
        raise ValueError(f"{where}: answer {value!r} is outside the {n_options} options")
    return index


def load_rextime_options(path: str | Path) -> dict[str, tuple[tuple[str, ...], int | None]]:
    """Read an options file (format in the module docstring).

    Args:
        path: ``.jsonl`` (one record per line) or ``.json`` (a list of records).

    Returns:
        qid -> (option texts, answer index or None).
    """
    out: dict[str, tuple[tuple[str, ...], int | None]] = {}
    for where, rec in read_any_json_records(path):
        at = f"{path}:{where}"
        if not isinstance(rec, dict) or not isinstance(rec.get("qid"), str):
            raise ValueError(f"{at}: expected an object with a string 'qid'")
        options = rec.get("options")
        if not isinstance(options, list) or not options or not all(isinstance(o, str) for o in options):
            raise ValueError(f"{at}: 'options' must be a non-empty list of strings")
        answer = _letter_index(rec["ans"], len(options), at) if rec.get("ans") is not None else None
        if rec["qid"] in out:
            raise ValueError(f"{at}: duplicate qid {rec['qid']!r}")
        out[rec["qid"]] = (tuple(options), answer)
    return out


def _windows(raw: Any, where: str) -> tuple[Span, ...]:
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{where}: 'relevant_windows' must be a non-empty list of [start, end]")
    spans = []
    for w in raw:
        if not (isinstance(w, list) and len(w) == 2 and all(_is_number(v) for v in w)) or w[0] > w[1]:
            raise ValueError(f"{where}: window {w!r} is not [start, end] with start <= end")
        spans.append(Span(start=float(w[0]), end=float(w[1])))
    return tuple(spans)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _check_record(rec: Any, where: str) -> dict[str, Any]:
    if not isinstance(rec, dict):
        raise ValueError(f"{where}: expected a JSON object")
    for key in ("qid", "query", "vid"):
        if not isinstance(rec.get(key), str) or not rec[key]:
            raise ValueError(f"{where}: {key!r} must be a non-empty string")
    duration: Any = rec.get("duration")
    if not _is_number(duration) or duration <= 0:
        raise ValueError(f"{where}: 'duration' must be a positive number, got {duration!r}")
    return rec


def _answer(
    rec: dict[str, Any], options: dict[str, tuple[tuple[str, ...], int | None]], where: str
) -> tuple[tuple[str, ...] | None, int | None]:
    """Options and answer index for one question (None, None when grounding-only)."""
    if not options:
        return None, None
    if rec["qid"] not in options:
        raise ValueError(f"{where}: qid {rec['qid']!r} has no entry in the options file")
    texts, from_options = options[rec["qid"]]
    from_jsonl = _letter_index(rec["ans"], len(texts), where) if rec.get("ans") is not None else None
    if from_options is not None and from_jsonl is not None and from_options != from_jsonl:
        raise ValueError(
            f"{where}: answer {rec['ans']!r} disagrees with the options file "
            f"({OPTION_LETTERS[from_options]}) for qid {rec['qid']!r}"
        )
    return texts, from_jsonl if from_jsonl is not None else from_options


def load_rextime(
    jsonl_path: str | Path,
    video_root: str | Path,
    *,
    options_path: str | Path | None = None,
    video_pattern: str = "{vid}.mp4",
) -> list[Question]:
    """Load ReXTime questions (multiple choice with an options file, else grounding-only).

    Args:
        jsonl_path: the benchmark's jsonl (e.g. ``rextime_val.jsonl``).
        video_root: folder the videos live under; paths that escape it are refused.
        options_path: the options file (module docstring), or None for grounding-only.
        video_pattern: relative video path; fields ``{vid}`` and ``{source}``.

    Returns:
        Questions in file order: id = qid, question = query, gt_spans = relevant_windows,
        duration, qtype = source ("anet"/"qvh"), task "rextime". Existence not checked.
    """
    options = load_rextime_options(options_path) if options_path is not None else {}
    questions: list[Question] = []
    seen: set[str] = set()
    for line, raw in read_jsonl(jsonl_path):
        where = f"{jsonl_path}:line {line}"
        rec = _check_record(raw, where)
        if rec["qid"] in seen:
            raise DatasetFormatError(jsonl_path, f"line {line}", f"duplicate qid {rec['qid']!r}")
        seen.add(rec["qid"])
        source = rec["qid"].split("_", 1)[0]
        try:
            relative = video_pattern.format(vid=rec["vid"], source=source)
        except (KeyError, IndexError) as exc:
            raise ValueError(f"video_pattern {video_pattern!r}: unknown field {exc}; known: vid, source") from exc
        texts, answer = _answer(rec, options, where)
        questions.append(
            Question(
                id=rec["qid"],
                video=resolve_video(video_root, relative),
                question=rec["query"],
                options=texts,
                answer=answer,
                gt_spans=_windows(rec.get("relevant_windows"), where),
                duration=float(rec["duration"]),
                qtype=source,
                task="rextime",
            )
        )
    return questions
