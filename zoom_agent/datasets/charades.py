"""Charades-STA loader: ``vid start end##sentence`` lines plus a durations file.

Annotation lines (``charades_sta_{train,test}.txt``), e.g. ``3MSZA 24.3 30.4##person turns a
light on.``. Variants seen in the field add columns before ``##`` (``vid start end EXTRA##...``);
the columns after the third are ignored. The sentence is everything after the first ``##``,
stripped of surrounding whitespace. Spans are kept as annotated (some end past the video's
duration; the evaluators of the field score them as they are).

Durations file, either
- CSV: with a header naming an id column (``id``, ``vid`` or ``video``) and a duration column
  (``length`` or ``duration``) — the official ``Charades_v1_{train,test}.csv`` works as is —
  or without a header, two columns ``vid,duration``;
- JSON: an object ``{"vid": seconds, ...}``.

Every question is grounding-only (no options): question = the sentence, id =
``f"{vid}_{n}"`` with ``n`` the 0-based index of the line among the annotation lines.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from zoom_agent.datasets.paths import DatasetFormatError, read_json, resolve_video
from zoom_agent.types import Question, Span

__all__ = ["load_charades", "load_durations"]

_ID_COLUMNS = ("id", "vid", "video", "video_id")
_DURATION_COLUMNS = ("length", "duration")


def _positive(value: object, path: Path, where: str) -> float:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DatasetFormatError(path, where, f"duration {value!r} is not a number") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise DatasetFormatError(path, where, f"duration {value!r} must be a positive number")
    return seconds


def _durations_csv(path: Path) -> dict[str, float]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise DatasetFormatError(path, None, "empty durations file")
    header = [c.strip().lower() for c in rows[0]]
    id_col = next((header.index(c) for c in _ID_COLUMNS if c in header), None)
    dur_col = next((header.index(c) for c in _DURATION_COLUMNS if c in header), None)
    if id_col is None or dur_col is None:  # no header: vid,duration
        id_col, dur_col, body, first = 0, 1, rows, 1
    else:
        body, first = rows[1:], 2
    out: dict[str, float] = {}
    for number, row in enumerate(body, start=first):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(id_col, dur_col):
            raise DatasetFormatError(path, f"row {number}", f"expected an id and a duration, got {row}")
        out[row[id_col].strip()] = _positive(row[dur_col], path, f"row {number}")
    return out


def load_durations(path: str | Path) -> dict[str, float]:
    """Read video durations from a CSV or JSON file (formats in the module docstring).

    Args:
        path: ``.json`` for a JSON object, anything else is read as CSV.

    Returns:
        video id -> duration in seconds.
    """
    p = Path(path)
    if p.suffix.lower() == ".json":
        doc = read_json(p)
        if not isinstance(doc, dict):
            raise DatasetFormatError(p, None, 'expected an object {"vid": seconds, ...}')
        return {str(k): _positive(v, p, str(k)) for k, v in doc.items()}
    try:
        return _durations_csv(p)
    except OSError as exc:
        raise DatasetFormatError(p, None, f"cannot read: {exc.strerror or exc}") from exc


def _parse_line(text: str, path: Path, number: int) -> tuple[str, float, float, str]:
    head, sep, sentence = text.partition("##")
    parts = head.split()
    if not sep or len(parts) < 3 or not sentence.strip():
        raise DatasetFormatError(path, f"line {number}", f"expected 'vid start end##sentence', got {text!r}")
    try:
        start, end = float(parts[1]), float(parts[2])
    except ValueError:
        raise DatasetFormatError(path, f"line {number}", f"start/end {parts[1:3]} are not numbers") from None
    if not (math.isfinite(start) and math.isfinite(end)):
        raise DatasetFormatError(path, f"line {number}", f"start/end {parts[1:3]} are not finite")
    return parts[0], start, end, sentence.strip()


def load_charades(
    ann_path: str | Path,
    durations_path: str | Path,
    video_root: str | Path,
    *,
    video_pattern: str = "{vid}.mp4",
    skip_invalid: bool = False,
) -> list[Question]:
    """Load Charades-STA queries as grounding-only questions.

    Args:
        ann_path: the ``vid start end##sentence`` file.
        durations_path: CSV or JSON durations (module docstring).
        video_root: folder the videos live under; paths that escape it are refused.
        video_pattern: relative video path with ``{vid}``.
        skip_invalid: drop lines whose start > end instead of raising.

    Returns:
        Questions in file order (id ``f"{vid}_{n}"``, one gt span, duration, task "charades").
    """
    path = Path(ann_path)
    durations = load_durations(durations_path)
    questions: list[Question] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DatasetFormatError(path, None, f"cannot read: {exc.strerror or exc}") from exc
    index = 0
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        vid, start, end, sentence = _parse_line(text, path, number)
        n, index = index, index + 1
        if start > end:
            if skip_invalid:
                continue
            raise DatasetFormatError(path, f"line {number}", f"start {start} > end {end}")
        if vid not in durations:
            raise DatasetFormatError(path, f"line {number}", f"video {vid!r} has no duration in {durations_path}")
        try:
            relative = video_pattern.format(vid=vid)
        except (KeyError, IndexError) as exc:
            raise ValueError(f"video_pattern {video_pattern!r}: unknown field {exc}; known: vid") from exc
        questions.append(
            Question(
                id=f"{vid}_{n}",
                video=resolve_video(video_root, relative),
                question=sentence,
                gt_spans=(Span(start=start, end=end),),
                duration=durations[vid],
                task="charades",
            )
        )
    return questions
