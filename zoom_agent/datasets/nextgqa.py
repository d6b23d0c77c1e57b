"""NExT-GQA loader: ``{split}.csv`` (questions, options) + ``gsub_{split}.json`` (evidence spans).

Files (official release, datasets/nextgqa/ of doc-doc/NExT-GQA):
- ``val.csv`` / ``test.csv``: ``video_id,frame_count,width,height,question,answer,qid,type,a0..a4``;
  ``answer`` is the answer *text*, mapped here to the index of the option that carries it.
- ``gsub_{split}.json``: ``{video_id: {"duration", "fps", "location": {qid: [[s, e], ...]}}}``.

How the two relate (checked on the released files): every csv row has a gsub entry and
every gsub entry a csv row (val 3,358 = 3,358, test 5,553 = 5,553); gsub lists a few more
videos than the csv (570 vs 567, 999 vs 990) whose questions were all left out. The
official grounding evaluation iterates over gsub, so the loader keeps exactly the csv rows
that have gsub segments; a csv row without one would be skipped (none is, in the release).

Duplicated option texts: three test rows and one val row repeat a distractor text (harmless);
one test row, ``3842638015_4`` ("how is the baby feeling ..."), has the *answer* text "happy"
at both a3 and a4. The original NExT-QA test.csv (doc-doc/NExT-QA, answer given as an index)
says 4, so `KNOWN_ANSWER_INDEX` pins it; any other ambiguous row is handled by
``on_ambiguous`` ("error", "first" or "skip"), never by guessing silently.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from zoom_agent.datasets.paths import DatasetFormatError, read_json, resolve_video
from zoom_agent.types import Question, Span

__all__ = ["KNOWN_ANSWER_INDEX", "NEXTGQA_OPTION_COLUMNS", "load_nextgqa", "nextgqa_key"]

NEXTGQA_OPTION_COLUMNS = ("a0", "a1", "a2", "a3", "a4")
_REQUIRED = ("video_id", "question", "answer", "qid", "type", *NEXTGQA_OPTION_COLUMNS)

# Rows whose answer text appears at several option indices, pinned to the index that the
# original NExT-QA test.csv gives (its `answer` column is an index there).
KNOWN_ANSWER_INDEX: dict[str, int] = {"3842638015_4": 4}

Split = Literal["val", "test"]
Ambiguity = Literal["error", "first", "skip"]


def nextgqa_key(video_id: str, qid: str | int) -> str:
    """The official prediction key ``f"{video_id}_{qid}"`` (also the Question id)."""
    return f"{video_id}_{qid}"


def _gt_spans(gsub_path: Path, key: str, raw: Any) -> tuple[Span, ...]:
    if not isinstance(raw, list) or not raw:
        raise DatasetFormatError(gsub_path, key, f"expected a non-empty list of [start, end], got {raw!r}")
    spans = []
    for seg in raw:
        ok = isinstance(seg, list | tuple) and len(seg) == 2
        if not ok or not all(isinstance(v, int | float) and math.isfinite(v) for v in seg):
            raise DatasetFormatError(gsub_path, key, f"segment {seg!r} is not [start, end] in seconds")
        if seg[0] > seg[1]:
            raise DatasetFormatError(gsub_path, key, f"segment {seg!r} has start > end")
        spans.append(Span(start=float(seg[0]), end=float(seg[1])))
    return tuple(spans)


def _load_gsub(path: Path) -> dict[str, tuple[float, dict[str, Any]]]:
    """video_id -> (duration, location) after checking the shape."""
    doc = read_json(path)
    if not isinstance(doc, dict):
        raise DatasetFormatError(path, None, "expected an object keyed by video id")
    out: dict[str, tuple[float, dict[str, Any]]] = {}
    for vid, entry in doc.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("location"), dict):
            raise DatasetFormatError(path, vid, "expected {'duration', 'fps', 'location': {qid: [...]}}")
        duration = entry.get("duration")
        if not isinstance(duration, int | float) or not duration > 0:
            raise DatasetFormatError(path, vid, f"duration must be a positive number, got {duration!r}")
        out[str(vid)] = (float(duration), entry["location"])
    return out


def _answer_index(row: Mapping[str, str], key: str, where: str, on_ambiguous: Ambiguity) -> int | None:
    """Index of the option whose text is the answer; None means skip the row."""
    options = [row[c] for c in NEXTGQA_OPTION_COLUMNS]
    hits = [i for i, text in enumerate(options) if text == row["answer"]]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise ValueError(f"{where}: answer {row['answer']!r} is not one of the options {options}")
    pinned = KNOWN_ANSWER_INDEX.get(key)
    if pinned in hits:
        return pinned
    if on_ambiguous == "first":
        return hits[0]
    if on_ambiguous == "skip":
        return None
    raise ValueError(
        f"{where}: answer {row['answer']!r} appears at option indices {hits}; "
        "pass on_ambiguous='first' or 'skip' to choose how to treat it"
    )


def _video_path(
    video_id: str, video_root: str | Path, pattern: str, id_map: Mapping[str, str] | None, where: str
) -> str:
    vidor_path = video_id
    if id_map is not None:
        if video_id not in id_map:
            raise ValueError(f"{where}: video id {video_id!r} is not in the id map")
        vidor_path = id_map[video_id]
    try:
        relative = pattern.format(video_id=video_id, vidor_path=vidor_path)
    except (KeyError, IndexError) as exc:
        raise ValueError(
            f"video_pattern {pattern!r} uses an unknown field {exc}; known: {{video_id}}, {{vidor_path}}"
        ) from exc
    return resolve_video(video_root, relative)


def _read_rows(csv_path: Path) -> list[dict[str, str]]:
    try:
        with csv_path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in _REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise DatasetFormatError(csv_path, "header", f"missing columns {missing}")
            return list(reader)
    except OSError as exc:
        raise DatasetFormatError(csv_path, None, f"cannot read: {exc.strerror or exc}") from exc


def load_nextgqa(
    ann_dir: str | Path,
    split: Split,
    video_root: str | Path,
    *,
    video_pattern: str | None = None,
    id_map: str | Path | None = None,
    on_ambiguous: Ambiguity = "error",
) -> list[Question]:
    """Load the NExT-GQA questions that have grounding annotations, in csv order.

    Args:
        ann_dir: folder holding ``{split}.csv`` and ``gsub_{split}.json``.
        split: "val" or "test".
        video_root: folder the videos live under; paths that escape it are refused.
        video_pattern: relative video path with ``{video_id}`` (the csv id) and
            ``{vidor_path}`` (the id map's "folder/id", or the csv id without a map).
            Default: ``"{vidor_path}.mp4"`` (equals ``"{video_id}.mp4"`` without a map).
        id_map: the official ``map_vid_vidorID.json`` (video id -> "folder/vidor id").
        on_ambiguous: what to do with a row whose answer text sits at several options and
            is not pinned by `KNOWN_ANSWER_INDEX`: raise, take the first index, or skip it.

    Returns:
        Questions with id ``f"{video_id}_{qid}"``, five options, the answer index, the gsub
        segments as ``gt_spans``, the gsub duration, ``qtype`` = the csv ``type``, task "nextgqa".
        Video existence is not checked here.
    """
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    ann = Path(ann_dir)
    csv_path, gsub_path = ann / f"{split}.csv", ann / f"gsub_{split}.json"
    gsub = _load_gsub(gsub_path)
    vid_map = _load_id_map(Path(id_map)) if id_map is not None else None
    pattern = video_pattern or "{vidor_path}.mp4"
    questions: list[Question] = []
    seen: set[str] = set()
    for row_number, row in enumerate(_read_rows(csv_path), start=2):  # row 1 is the header
        where = f"{csv_path}:row {row_number}"
        short = [c for c in _REQUIRED if row.get(c) is None]
        if short:
            raise ValueError(f"{where}: the row has too few fields (no {short})")
        key = nextgqa_key(row["video_id"], row["qid"])
        entry = gsub.get(row["video_id"])
        if entry is None or row["qid"] not in entry[1]:
            continue  # the official grounding eval covers gsub questions only
        if key in seen:
            raise ValueError(f"{where}: duplicate question {key}")
        seen.add(key)
        answer = _answer_index(row, key, where, on_ambiguous)
        if answer is None:
            continue
        questions.append(
            Question(
                id=key,
                video=_video_path(row["video_id"], video_root, pattern, vid_map, where),
                question=row["question"],
                options=tuple(row[c] for c in NEXTGQA_OPTION_COLUMNS),
                answer=answer,
                gt_spans=_gt_spans(gsub_path, key, entry[1][row["qid"]]),
                duration=entry[0],
                qtype=row["type"] or None,
                task="nextgqa",
            )
        )
    return questions


def _load_id_map(path: Path) -> dict[str, str]:
    doc = read_json(path)
    if not isinstance(doc, dict) or not all(isinstance(v, str) for v in doc.values()):
        raise DatasetFormatError(path, None, 'expected {"video_id": "folder/vidor_id", ...}')
    return {str(k): v for k, v in doc.items()}
