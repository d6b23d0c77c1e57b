"""The results file of a run: one JSON line per question, read back safely, merged.

A line counts only when it ends in a newline and parses as a result object. The only
line a crash can tear is the last one (each line is flushed before the next starts), so
a damaged line before the end means something else edited the file, and resuming stops
with an error naming the line instead of guessing.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = [
    "RESULTS_FILE",
    "MergeSummary",
    "ResultWriter",
    "check_lines",
    "merge_results",
    "read_results",
    "scan_lines",
]

RESULTS_FILE = "results.jsonl"
FSYNC_EVERY_S = 1.0  # ours: a machine crash loses at most ~1 s of flushed lines


class MergeSummary(BaseModel):
    """What `merge_results` found in the shard folders."""

    model_config = ConfigDict(frozen=True)

    out_dir: str
    shards: int
    lines: int  # unique ids written
    duplicates: int  # extra lines for an id already taken (same content)
    conflicts: list[str]  # ids whose lines disagree between shards (the first was kept)
    torn_lines: int  # torn last lines skipped


# --- reading a results file -----------------------------------------------------------


def scan_lines(path: Path) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """Yield ``(end byte offset, line dict or None if torn)`` for each line of the file."""
    offset = 0
    with path.open("rb") as f:
        for raw in f:
            offset += len(raw)
            line: dict[str, Any] | None = None
            if raw.endswith(b"\n"):
                try:
                    obj = json.loads(raw)
                    line = obj if isinstance(obj, dict) and "id" in obj and "result" in obj else None
                except ValueError:
                    line = None
            yield offset, line


def check_lines(path: Path) -> tuple[int, int]:
    """``(bytes of the whole lines, bytes of a torn last line)``; a bad line before the end raises."""
    good = 0
    bad: int | None = None
    for number, (end, line) in enumerate(scan_lines(path), start=1):
        if bad is not None:
            raise ValueError(
                f"{path}: line {bad} is not a result line but more lines follow it; "
                "the file was edited or written by something else: fix or remove that line"
            )
        if line is None:
            bad = number
        else:
            good = end
    return good, path.stat().st_size - good


def read_results(out_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The result lines of a run folder, one per id (the first wins), torn lines skipped.

    Args:
        out_dir: a folder `run_eval` wrote (or `merge_results`).

    Returns:
        The line dicts in file order; empty when there is no results file.
    """
    path = Path(out_dir) / RESULTS_FILE
    if not path.is_file():
        return []
    seen: set[str] = set()
    out = []
    for _, line in scan_lines(path):
        if line is not None and str(line["id"]) not in seen:
            seen.add(str(line["id"]))
            out.append(line)
    return out


# --- writing --------------------------------------------------------------------------


class ResultWriter:
    """Appends whole lines, flushes each, fsyncs at a cadence."""

    def __init__(self, path: Path) -> None:
        self._f = path.open("a", encoding="utf-8", newline="\n")
        self._synced = time.monotonic()

    def write(self, line: dict[str, Any]) -> None:
        # Flushed before the next line starts: a kill can only tear the last line, which resume drops.
        self._f.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._f.flush()
        if time.monotonic() - self._synced >= FSYNC_EVERY_S:
            self._sync()

    def _sync(self) -> None:
        os.fsync(self._f.fileno())
        self._synced = time.monotonic()

    def close(self) -> None:
        if not self._f.closed:
            self._f.flush()
            self._sync()
            self._f.close()


# --- merging shards -------------------------------------------------------------------


def _content(line: Mapping[str, Any]) -> Any:
    """A line's content without timings, to tell a true conflict from a rerun."""
    result = {k: v for k, v in line["result"].items() if k != "elapsed_s"}
    result["turns"] = [{k: v for k, v in t.items() if k != "latency_s"} for t in result.get("turns", [])]
    return line.get("status"), result


def merge_results(shard_dirs: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str]) -> MergeSummary:
    """Merge the results of shard folders into one ``OUT/results.jsonl`` (written atomically).

    One line per id: the first shard (in the order given) that has it wins. A second line
    with the same content counts as a duplicate; one with different content is a conflict
    (kept out, its id listed). Torn last lines of the shards are skipped.

    Args:
        shard_dirs: folders written by `run_eval` (any ``--shard``).
        out_dir: the merged folder (created); must not be one of ``shard_dirs``.

    Returns:
        A `MergeSummary`.
    """
    out = Path(out_dir)
    shards = [Path(d) for d in shard_dirs]
    if not shards:
        raise ValueError("merge needs at least one shard folder")
    for d in shards:
        if not (d / RESULTS_FILE).is_file():
            raise FileNotFoundError(f"shard folder {d} has no {RESULTS_FILE}")
        if d.resolve() == out.resolve():
            raise ValueError(f"the merged folder {out} is also a shard folder: pick another one")
    out.mkdir(parents=True, exist_ok=True)
    kept: dict[str, Any] = {}
    duplicates = torn = 0
    conflicts: list[str] = []
    tmp = out / f".{RESULTS_FILE}.{os.getpid()}.tmp"
    with tmp.open("w", encoding="utf-8", newline="\n") as f:
        for d in shards:
            for _, line in scan_lines(d / RESULTS_FILE):
                if line is None:
                    torn += 1
                    continue
                key = str(line["id"])
                if key not in kept:
                    kept[key] = _content(line)
                    f.write(json.dumps(line, ensure_ascii=False) + "\n")
                elif kept[key] == _content(line):
                    duplicates += 1
                else:
                    conflicts.append(key)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out / RESULTS_FILE)
    return MergeSummary(
        out_dir=str(out),
        shards=len(shards),
        lines=len(kept),
        duplicates=duplicates,
        conflicts=conflicts,
        torn_lines=torn,
    )
