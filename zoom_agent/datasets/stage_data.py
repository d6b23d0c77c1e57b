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

An entry may instead name a raw release by its ``format`` (ours; their manifest has only
the converted layout, ``format: zoomzero``, the default). ``format: nextgqa``: ``ann_dir``
is the NExT-GQA release's annotation folder (``{split}.csv`` and ``gsub_{split}.json``,
read by `zoom_agent.datasets.nextgqa`), ``data_folder`` its videos, with optional
``split`` (default ``val``, their stage 1's), ``id_map`` (``map_vid_vidorID.json``) and
``video_pattern``. Paths in an entry are read from the manifest's folder. Each entry keeps
its own ``data_folder``; theirs keeps one folder per source (the last entry's).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from zoom_agent.datasets.paths import DatasetFormatError, read_json, resolve_video
from zoom_agent.types import OPTION_LETTERS, Question, Span

FORMATS = ("zoomzero", "nextgqa")
"""Manifest entry formats: their converted layout, or the raw NExT-GQA release."""

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
        manifest: the YAML file with ``datasets: [{json_path, data_folder}, ...]`` (entries
            of another ``format`` as the module docstring says).

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
        questions.extend(_load_entry(path, f"datasets[{n}]", entry))
    return questions


def _load_entry(manifest: Path, where: str, entry: Any) -> list[Question]:
    """The questions of one manifest entry, in its format."""
    if not isinstance(entry, dict):
        raise DatasetFormatError(manifest, where, "expected a mapping such as {json_path: ..., data_folder: ...}")
    fmt = entry.get("format", "zoomzero")
    if fmt not in FORMATS:
        raise DatasetFormatError(manifest, where, f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    needed = {"json_path", "data_folder"} if fmt == "zoomzero" else {"ann_dir", "data_folder"}
    if not needed <= set(entry):
        raise DatasetFormatError(manifest, where, f"a {fmt} entry needs {' and '.join(sorted(needed))}")
    folder = manifest.parent / str(entry["data_folder"])
    if fmt == "zoomzero":
        return _load_file(manifest.parent / str(entry["json_path"]), folder)
    from zoom_agent.datasets.nextgqa import load_nextgqa

    split = entry.get("split", "val")
    if split not in ("val", "test"):
        raise DatasetFormatError(manifest, where, f"split {split!r} should be val or test")
    id_map = entry.get("id_map")
    return load_nextgqa(
        manifest.parent / str(entry["ann_dir"]),
        split,
        folder,
        video_pattern=entry.get("video_pattern"),
        id_map=None if id_map is None else manifest.parent / str(id_map),
    )


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
