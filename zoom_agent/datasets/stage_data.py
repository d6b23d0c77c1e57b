"""Zoom-Zero's stage data: the manifest their trainer reads (``verl/utils/dataset_video.py``).

Their two stages train on Grounded-VideoLLM's GVideoQA (ActivityNet, QVHighlights),
PLM-Video-Auto and NExT-GQA val (stage 1), and PLM-Video-Auto (clean 5k), GVideoQA
ActivityNet long and NExT-GQA clean 2k (stage 2), all converted by the authors into ONE
layout, which their ``RLHFDataset`` reads and this loader reads the same way:

- the manifest, a YAML file: ``datasets: [{json_path: ..., data_folder: ...}, ...]``
  (relative paths are read from the manifest's folder here);
- each ``json_path``: a JSON list of items
  ``{"video": "v_abc" or "v_abc.mp4", "question": "...", "options": ["(A) ...", ...],
  "answer": "(B)" or "B", "glue": [[s, e], ...]}``: the video under ``data_folder``
  (``.mp4`` appended when missing), the options with their letters, the answer letter,
  the evidence spans in seconds;
- the source is named from the file name as theirs does: ``plm``, ``nextgqa``,
  ``qvhighlights``, ``anet``, ``ego4d`` (features, not videos: refused here), else ``gqa``.
  It becomes the question's ``task``; ids are ``{source}/{file stem}/{index}`` unless an
  item has an ``id``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from zoom_agent.datasets.paths import DatasetFormatError, read_json, resolve_video
from zoom_agent.types import OPTION_LETTERS, Question, Span

SOURCES = ("plm", "nextgqa", "qvhighlights", "anet", "ego4d")
"""Their source names, matched in this order against the JSON path; none matching is ``gqa``."""

_OPTION = re.compile(r"\s*\(?([A-Z])\)?[.:]?\s+(.*)", re.DOTALL)
_ITEM_KEYS = ("video", "question", "options", "answer", "glue")


def source_of(json_path: str | Path) -> str:
    """Their source name for a data file (the first of `SOURCES` in its path, else ``gqa``)."""
    text = str(json_path)
    return next((s for s in SOURCES if s in text), "gqa")


def load_stage_data(manifest: str | Path) -> list[Question]:
    """Every question the manifest lists, in its order.

    Args:
        manifest: the YAML file with ``datasets: [{json_path, data_folder}, ...]``.

    Returns:
        One `Question` per item: options without their letters, ``answer`` the index of the
        correct letter, ``gt_spans`` the glue, ``task`` the source.

    Raises:
        DatasetFormatError: the manifest or an item is malformed (the file and the entry or
            item index are named, with what was expected).
    """
    import yaml

    path = Path(manifest)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DatasetFormatError(path, None, f"cannot read the manifest: {exc}") from None
    entries = raw.get("datasets") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not entries:
        raise DatasetFormatError(path, None, "expected a mapping with a non-empty list 'datasets'")
    questions: list[Question] = []
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict) or not {"json_path", "data_folder"} <= set(entry):
            raise DatasetFormatError(path, f"datasets[{n}]", "expected a mapping with json_path and data_folder")
        json_path = path.parent / str(entry["json_path"])
        folder = path.parent / str(entry["data_folder"])
        questions.extend(_load_file(json_path, folder))
    return questions


def _load_file(json_path: Path, folder: Path) -> list[Question]:
    source = source_of(json_path)
    if source == "ego4d":
        raise DatasetFormatError(json_path, None, "ego4d items are .npy features, not videos; leave them out")
    items = read_json(json_path)
    if not isinstance(items, list):
        raise DatasetFormatError(json_path, None, f"expected a JSON list of items, got {type(items).__name__}")
    return [_question(item, json_path, folder, source, i) for i, item in enumerate(items)]


def _question(item: Any, json_path: Path, folder: Path, source: str, index: int) -> Question:
    where = f"item {index}"
    if not isinstance(item, dict) or not set(_ITEM_KEYS) <= set(item):
        raise DatasetFormatError(json_path, where, f"expected an object with keys {', '.join(_ITEM_KEYS)}")
    options = _options(item["options"], json_path, where)
    letter = str(item["answer"]).strip().replace("(", "").replace(")", "")  # as theirs reads it
    if letter not in OPTION_LETTERS[: len(options)]:
        raise DatasetFormatError(json_path, where, f"answer {item['answer']!r} is not one of the options' letters")
    video = str(item["video"])
    video = video if video.endswith(".mp4") else video + ".mp4"
    try:
        spans = tuple(Span(start=float(s), end=float(e)) for s, e in item["glue"])
        return Question(
            id=str(item.get("id", f"{source}/{json_path.stem}/{index}")),
            video=resolve_video(folder, video),
            question=str(item["question"]),
            options=options,
            answer=OPTION_LETTERS.index(letter),
            gt_spans=spans,
            task=source,
        )
    except (TypeError, ValueError) as exc:
        raise DatasetFormatError(json_path, where, f"bad glue, video or question ({exc})") from None


def _options(raw: Any, json_path: Path, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        raise DatasetFormatError(json_path, where, "options must be a non-empty list like ['(A) ...', '(B) ...']")
    out = []
    for k, text in enumerate(raw):
        m = _OPTION.fullmatch(str(text))
        if m is None or m.group(1) != OPTION_LETTERS[k]:
            raise DatasetFormatError(
                json_path, where, f"option {k} {text!r} should start with ({OPTION_LETTERS[k]}) and its text"
            )
        out.append(m.group(2).strip())
    return tuple(out)
