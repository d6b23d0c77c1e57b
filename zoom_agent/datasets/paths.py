"""Safe video paths and annotation-file reading shared by the benchmark loaders.

Video paths written in a benchmark's files are data, not trusted input (docs/quality.md,
Security): every one is resolved under a configured video root, and a path that escapes
the root (``..``, an absolute path elsewhere, a symlink pointing out) is refused.
Existence is not checked by default: a missing video becomes a per-item error at
evaluation time, so one absent file does not stop a whole benchmark from loading.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["DatasetFormatError", "read_any_json_records", "read_json", "read_jsonl", "resolve_video"]


class DatasetFormatError(ValueError):
    """A benchmark file is malformed; the message names the file and the row or line."""

    def __init__(self, path: str | Path, where: str | None, message: str) -> None:
        location = f"{path}:{where}" if where else str(path)
        super().__init__(f"{location}: {message}")


def _is_within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def resolve_video(video_root: str | Path, relative: str | Path, *, check_exists: bool = False) -> str:
    """Resolve a video path from a dataset file under ``video_root``, refusing escapes.

    Args:
        video_root: the folder all videos must live under.
        relative: the path as written in the dataset (relative to the root, or absolute but
            inside the root). ``..`` components are allowed only while the path stays inside.
        check_exists: also require the resolved path to be an existing regular file.

    Returns:
        The resolved absolute path (symlinks followed) as a string.

    Raises:
        ValueError: the path is empty, escapes the root (lexically or through a symlink),
            or (with ``check_exists``) is not an existing file. The message names both
            the path and the root.

    Example:
        >>> resolve_video("/data/videos", "0101/2909445186.mp4")  # doctest: +SKIP
        '/data/videos/0101/2909445186.mp4'
    """
    text = os.fspath(relative)
    if not text or not text.strip() or "\x00" in text:
        raise ValueError(f"video path {text!r} is empty or contains a NUL byte (root {video_root})")
    root_abs = os.path.abspath(os.fspath(video_root))
    joined = text if os.path.isabs(text) else os.path.join(root_abs, text)
    lexical = os.path.normpath(joined)
    if not _is_within(lexical, root_abs):
        raise ValueError(f"video path {text!r} escapes the video root {root_abs!r}")
    # Follow symlinks on both sides: a link inside the root that points elsewhere is an escape.
    root_real = os.path.realpath(root_abs)
    real = os.path.realpath(lexical)
    if not _is_within(real, root_real):
        raise ValueError(
            f"video path {text!r} resolves to {real!r}, outside the video root {root_real!r} "
            "(a symlink points out of the root)"
        )
    if check_exists and not os.path.isfile(real):
        raise ValueError(f"video path {text!r} under root {root_real!r} is not an existing file")
    return real


def read_json(path: str | Path) -> Any:
    """Load one JSON document, with an error naming the file and line on bad JSON.

    Args:
        path: the JSON file.

    Returns:
        The parsed document.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DatasetFormatError(path, None, f"cannot read: {exc.strerror or exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetFormatError(path, f"line {exc.lineno}", f"invalid JSON: {exc.msg}") from exc


def read_jsonl(path: str | Path) -> list[tuple[int, Any]]:
    """Parse each non-blank line of a JSON Lines file.

    Args:
        path: the JSONL file.

    Returns:
        ``(line_number, record)`` pairs, line numbers 1-based.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DatasetFormatError(path, None, f"cannot read: {exc.strerror or exc}") from exc
    out: list[tuple[int, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            out.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise DatasetFormatError(path, f"line {number}", f"invalid JSON: {exc.msg}") from exc
    return out


def read_any_json_records(path: str | Path) -> list[tuple[str, Any]]:
    """Records of a ``.jsonl`` file (one per line) or a ``.json`` file holding a list.

    Args:
        path: the file; the suffix ``.jsonl`` selects JSON Lines, anything else one document.

    Returns:
        ``(where, record)`` pairs, ``where`` being ``"line N"`` or ``"item N"`` for errors.
    """
    if str(path).endswith(".jsonl"):
        return [(f"line {n}", rec) for n, rec in read_jsonl(path)]
    doc = read_json(path)
    if not isinstance(doc, list):
        raise DatasetFormatError(path, None, f"expected a JSON list of records, got {type(doc).__name__}")
    return [(f"item {i}", rec) for i, rec in enumerate(doc)]
