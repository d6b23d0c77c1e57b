"""The results file of a run: one JSON line per question, read back safely, merged.

A line counts only when it ends in a newline and parses as a result object. The only
line a crash can tear is the last one (each line is flushed before the next starts), so
a damaged line before the end means something else edited the file, and resuming stops
with an error naming the line instead of guessing.

Errors come in two kinds (`error_kind`): "infra", the model call failed (the server was
down, timed out or refused the request: `zoom_agent.models.base.is_model_failure`), and
"item", the question itself failed (a broken video). A rerun retries infra errors by
default and appends the new line; for each id the line that stands (`standing_lines`) is
the first that is not an infra error, else the last one. So a question is answered once
however many times the server failed it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from zoom_agent.models.base import is_model_failure

__all__ = [
    "RESULTS_FILE",
    "ErrorKind",
    "MergeSummary",
    "ResultWriter",
    "check_lines",
    "error_kind",
    "merge_results",
    "read_results",
    "scan_lines",
    "standing_lines",
]

RESULTS_FILE = "results.jsonl"
ErrorKind = Literal["infra", "item"]
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


def error_kind(line: Mapping[str, Any]) -> ErrorKind | None:
    """ "infra" (the model call failed), "item" (the question failed) or None (no error).

    Lines written before error kinds existed are classified from their error text.
    """
    if line.get("status") != "error":
        return None
    kind = line.get("error_kind")
    if kind in ("infra", "item"):
        return kind  # type: ignore[no-any-return]
    return "infra" if is_model_failure(line.get("error")) else "item"


def standing_lines(lines: Iterator[dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], int, int]:
    """The line that stands for each id, ``(by id in first-seen order, duplicates, superseded)``.

    The first line that is not an infra error stands; an id with only infra errors keeps
    its last one. ``superseded`` counts infra-error lines a later line replaced;
    ``duplicates`` counts the other extra lines (a second answer for an answered id).
    """
    kept: dict[str, dict[str, Any]] = {}
    duplicates = superseded = 0
    for line in lines:
        key = str(line["id"])
        old = kept.get(key)
        if old is None:
            kept[key] = line
        elif error_kind(old) == "infra":
            kept[key] = line
            superseded += 1
        else:
            duplicates += 1
    return kept, duplicates, superseded


def read_results(out_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The standing result line of each id in a run folder (`standing_lines`), torn lines skipped.

    Args:
        out_dir: a folder `run_eval` wrote (or `merge_results`).

    Returns:
        One line dict per id, in order of each id's first line; empty when there is no
        results file.
    """
    path = Path(out_dir) / RESULTS_FILE
    if not path.is_file():
        return []
    kept, _, _ = standing_lines(line for _, line in scan_lines(path) if line is not None)
    return list(kept.values())


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


def _exact(line: Mapping[str, Any]) -> str:
    """A line's whole content, timings included, as one comparable string."""
    return json.dumps(line, sort_keys=True, ensure_ascii=False)


def _check_merge_target(out: Path, shard_lines: set[str]) -> None:
    """Refuse a merged folder whose results file holds lines that are none of the shards'."""
    path = out / RESULTS_FILE
    if not path.is_file():
        return
    foreign = sum(line is None or _exact(line) not in shard_lines for _, line in scan_lines(path))
    if foreign:
        raise FileExistsError(
            f"{out} holds another run's results ({foreign} lines of its {RESULTS_FILE} are in none of "
            "these shards): merge into a new folder, or overwrite it (eval merge --overwrite)"
        )


def merge_results(
    shard_dirs: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str], *, overwrite: bool = False
) -> MergeSummary:
    """Merge the results of shard folders into one ``OUT/results.jsonl`` (written atomically).

    One line per id: each shard's standing line (`standing_lines`), the first shard (in the
    order given) that has one wins, except that an infra error gives way to a later shard's
    result. A second line with the same content counts as a duplicate; one with different
    content is a conflict (kept out, its id listed). Torn last lines of the shards are
    skipped.

    ``OUT`` may already hold a merge of these shards (every line of its results file is a
    line of one of them: shards only grow, so an earlier merge of the same shards always
    is); results from anywhere else are another run's and are not replaced unless
    ``overwrite``.

    Args:
        shard_dirs: folders written by `run_eval` (any ``--shard``).
        out_dir: the merged folder (created); must not be one of ``shard_dirs``.
        overwrite: replace ``OUT/results.jsonl`` even when it holds other results.

    Returns:
        A `MergeSummary`.

    Raises:
        FileExistsError: ``OUT/results.jsonl`` holds lines that no shard holds.
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
    read = {d: list(scan_lines(d / RESULTS_FILE)) for d in shards}
    if not overwrite:
        _check_merge_target(out, {_exact(line) for found in read.values() for _, line in found if line is not None})
    out.mkdir(parents=True, exist_ok=True)
    kept: dict[str, dict[str, Any]] = {}
    duplicates = torn = 0
    conflicts: list[str] = []
    for d in shards:
        lines = []
        for _, line in read[d]:
            if line is None:
                torn += 1
            else:
                lines.append(line)
        standing, repeated, _ = standing_lines(iter(lines))  # a rerun's retries within the shard
        duplicates += repeated
        for key, line in standing.items():
            old = kept.get(key)
            if old is None or (error_kind(old) == "infra" and error_kind(line) != "infra"):
                kept[key] = line
            elif _content(old) == _content(line) or error_kind(line) == "infra":
                duplicates += 1
            else:
                conflicts.append(key)
    tmp = out / f".{RESULTS_FILE}.{os.getpid()}.tmp"
    with tmp.open("w", encoding="utf-8", newline="\n") as f:
        for line in kept.values():
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
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
