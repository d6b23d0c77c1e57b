"""The evaluation runner: the agent graph over many questions, crash-safe and resumable.

Each finished question appends one JSON line to ``OUT/results.jsonl`` and flushes it, so
a crash loses at most the questions in flight; ``fsync`` runs at a cadence (every
`results.FSYNC_EVERY_S` seconds, and at the end) to survive a machine crash too. A rerun with
the same folder resumes: it reads the lines already there, cuts a torn last line away
(a line counts only when it ends in a newline and parses), and runs only the questions
without a line, so every question appears exactly once. A per-item failure (a bad video,
a model error, even an exception escaping the agent) is a result line with status
"error", counted and never fatal. Its ``error_kind`` says whose failure it was
(`results.error_kind`): "infra" (the model call failed: server down, timeout) is retried
by the next run unless ``retry_infra_errors=False``, its new line superseding the old one
(`results.standing_lines`); "item" (a broken video) stays recorded.

The questions run grouped by video (`by_video`), so a video's coarse clip is decoded once
for all its questions (NExT-GQA has about five per video).

Concurrency is a fixed pool of ``concurrency`` workers pulling from one iterator rather
than one task per question behind a semaphore: the same limit, but memory stays flat
however many questions there are (10,000 pending coroutines would each hold a frame).

Result line (one per question)::

    {"id": "...", "index": 12, "status": "answered", "error": null, "error_kind": null,
     "warnings": ["evidence span 50-80 s reaches outside the video ..."],
     "zoom_iou": 0.62,
     "wall_s": 0.41, "finished_at": 1718000000.0,
     "result": {GroundedAnswer as JSON: clip refs, no pixels}}

``zoom_iou`` is the IoU of the best window the agent zoomed into with the question's true
spans (`zoom_agent.comparison.compare_answer`; null without a zoom or true spans).
``warnings`` repeats the result's (`zoom_agent.types.GroundedAnswer.warnings`): what may make
the answer wrong though the question ran (a truncated video, spans clamped to the video).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from zoom_agent.comparison import compare_answer
from zoom_agent.eval.results import RESULTS_FILE, ResultWriter, check_lines, error_kind, scan_lines, standing_lines
from zoom_agent.progress import progress_bar
from zoom_agent.types import GroundedAnswer, Question, VideoInfo

__all__ = ["RUN_FILE", "FolderInUseError", "RunSummary", "by_video", "run_eval", "select"]

RUN_FILE = "run.json"
LOCK_FILE = ".lock"


class Answerer(Protocol):
    """What the runner needs from an agent (`zoom_agent.agent.ZoomAgent` fits)."""

    async def arun(self, question: Question, *, info: VideoInfo | None = None) -> GroundedAnswer: ...


class FolderInUseError(RuntimeError):
    """Another process is writing the same run folder."""


class RunSummary(BaseModel):
    """What one `run_eval` call did, and the totals over the selected questions."""

    model_config = ConfigDict(frozen=True)

    out_dir: str
    selected: int
    resumed: int  # selected questions already done before this call
    ran: int  # questions answered by this call
    answered: int
    unanswered: int
    errors: int  # item errors (the question failed: a broken video); they stay
    infra_errors: int  # model/server failures still standing; the next run retries them
    missing: int  # selected questions still without a line (0 after a complete run)
    duplicates: int  # extra lines for an id already seen (kept out of every count)
    retried: int  # questions this call re-ran because their line was an infra error
    torn_bytes: int  # bytes of a torn last line cut away on resume
    elapsed_s: float

    @property
    def rate(self) -> float:
        """Questions per second in this call."""
        return self.ran / self.elapsed_s if self.elapsed_s > 0 else 0.0


def select(
    questions: Sequence[Question], *, limit: int | None = None, shard: tuple[int, int] | None = None
) -> list[tuple[int, Question]]:
    """The ``(index, question)`` pairs a run covers: the first ``limit``, then shard ``k`` of ``n``.

    Args:
        questions: the task's questions, in order.
        limit: keep the first ``limit`` questions (None = all).
        shard: ``(k, n)``: keep index ``i`` with ``i % n == k`` (after the limit).

    Returns:
        Index in the task's list and question, in order.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if shard is not None:
        k, n = shard
        if not (isinstance(k, int) and isinstance(n, int) and n >= 1 and 0 <= k < n):
            raise ValueError(f"shard must be (k, n) with 0 <= k < n, got {shard!r}")
    pairs = list(enumerate(questions[:limit] if limit is not None else questions))
    ids = Counter(q.id for _, q in pairs)
    dup = [i for i, c in ids.items() if c > 1]
    if dup:
        raise ValueError(f"question ids must be unique; repeated: {dup[:5]}")
    if shard is not None:
        pairs = [(i, q) for i, q in pairs if i % shard[1] == shard[0]]
    return pairs


def by_video(pairs: Sequence[tuple[int, Question]]) -> list[tuple[int, Question]]:
    """The questions grouped by video: videos in order of first appearance, each video's
    questions in index order.

    The workers then take a video's questions together, so its coarse clip is decoded once
    and shared while it is still in the source's cache (docs/video.md §6).
    """
    first: dict[str, int] = {}
    for _, q in pairs:
        first.setdefault(q.video, len(first))
    return sorted(pairs, key=lambda p: (first[p[1].video], p[0]))


class _Lock:
    """An exclusive advisory lock on the run folder (released by the OS if the process dies)."""

    def __init__(self, out_dir: Path) -> None:
        self._f = (out_dir / LOCK_FILE).open("a")
        try:
            import fcntl

            fcntl.flock(self._f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # not POSIX: no lock, one runner per folder is then on the user
            pass
        except OSError as exc:
            self._f.close()
            raise FolderInUseError(
                f"another evaluation is writing {out_dir}: wait for it or use another folder"
            ) from exc

    def release(self) -> None:
        self._f.close()


def _check_meta(out_dir: Path, meta: Mapping[str, Any] | None) -> None:
    """Record the run's identity in ``run.json``, or refuse to mix it with another run's."""
    if meta is None:
        return
    path = out_dir / RUN_FILE
    record = json.loads(json.dumps(dict(meta), default=str))
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old.get("identity") != record.get("identity"):
            raise ValueError(
                f"{out_dir} holds results of another run ({old.get('identity')!r}); "
                f"this run is {record.get('identity')!r}: use another output folder"
            )
    tmp = path.with_name(f".{RUN_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# --- running --------------------------------------------------------------------------


async def _answer_one(agent: Answerer, index: int, question: Question, info: VideoInfo | None) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        result = await agent.arun(question, info=info)
    except Exception as exc:  # the agent should not raise; if it does, this item fails alone
        result = GroundedAnswer(question_id=question.id, status="error", error=f"{type(exc).__name__}: {exc}")
    line = {
        "id": question.id,
        "index": index,
        "status": result.status,
        "error": result.error,
        "warnings": list(result.warnings),
        "zoom_iou": _zoom_iou(result, question),
        "wall_s": round(time.perf_counter() - t0, 6),
        "finished_at": round(time.time(), 3),
        "result": result.model_dump(mode="json"),
    }
    return line | {"error_kind": error_kind(line)}


def _zoom_iou(result: GroundedAnswer, question: Question) -> float | None:
    """IoU of the best zoomed window with the true spans (None: no zoom or no true spans)."""
    try:
        return compare_answer(result, question).best_zoom_iou
    except ValueError:  # an agent that answered another question: its line says so elsewhere
        return None


def _tally(line: dict[str, Any]) -> str:
    """The count a line goes to: its status, or "infra" for an infra error."""
    return "infra" if error_kind(line) == "infra" else str(line.get("status"))


def _done_before(path: Path, wanted: set[str], retry_infra: bool) -> tuple[Counter[str], set[str], int, int, int]:
    """Tallies and ids of selected questions already done; duplicates; torn bytes cut; and
    how many selected questions stand as infra errors (not done when ``retry_infra``)."""
    status: Counter[str] = Counter()
    done: set[str] = set()
    if not path.is_file():
        return status, done, 0, 0, 0
    good, torn = check_lines(path)
    if torn:
        with path.open("r+b") as f:  # drop the torn tail so the next line starts clean
            f.truncate(good)
            os.fsync(f.fileno())
    lines = (line for _, line in scan_lines(path) if line is not None)  # check_lines left only whole lines
    kept, duplicates, _ = standing_lines(lines)
    infra = 0
    for key, line in kept.items():
        if key not in wanted:
            continue
        if error_kind(line) == "infra":
            infra += 1
            if retry_infra:
                continue
        done.add(key)
        status[_tally(line)] += 1
    return status, done, duplicates, torn, infra


async def run_eval(
    agent: Answerer,
    questions: Sequence[Question],
    out_dir: str | os.PathLike[str],
    *,
    concurrency: int = 8,
    limit: int | None = None,
    shard: tuple[int, int] | None = None,
    progress: bool = True,
    infos: Mapping[str, VideoInfo] | None = None,
    meta: Mapping[str, Any] | None = None,
    retry_infra_errors: bool = True,
) -> RunSummary:
    """Answer every selected question once, appending one result line each to ``OUT/results.jsonl``.

    Args:
        agent: anything with ``async arun(question, info=None) -> GroundedAnswer``.
        questions: the task's questions, in order (ids must be unique).
        out_dir: the run folder (created); rerun with the same folder to resume.
        concurrency: questions in flight at once.
        limit: only the first ``limit`` questions.
        shard: ``(k, n)``: only questions ``i`` with ``i % n == k`` (after ``limit``).
        progress: report progress on stderr (`zoom_agent.progress.progress_bar`): a tqdm
            bar on a terminal, else a plain line every tenth of the questions or 10 s.
        infos: ``{video path: VideoInfo}`` so the graph skips opening those videos.
        meta: the run's identity etc. for ``run.json``; its ``"identity"`` must match what
            the folder already holds, so two different runs never mix in one file.
        retry_infra_errors: re-run questions whose line is an infra error (the model call
            failed); their new line supersedes the old one. Item errors are never re-run.

    Returns:
        A `RunSummary` with the counts over the selected questions.

    Raises:
        ValueError: bad arguments, a results file damaged before its last line, or a
            folder holding another run.
        FolderInUseError: another process is writing the folder.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    t0 = time.perf_counter()
    pairs = select(questions, limit=limit, shard=shard)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lock = _Lock(out)
    try:
        _check_meta(out, meta)
        path = out / RESULTS_FILE
        status, done, duplicates, torn, infra = _done_before(path, {q.id for _, q in pairs}, retry_infra_errors)
        todo = iter(by_video([(i, q) for i, q in pairs if q.id not in done]))
        ran = await _drain(agent, todo, path, status, len(pairs), len(done), concurrency, progress, infos)
    finally:
        lock.release()
    return RunSummary(
        out_dir=str(out),
        selected=len(pairs),
        resumed=len(done),
        ran=ran,
        answered=status["answered"],
        unanswered=status["unanswered"],
        errors=status["error"],
        infra_errors=status["infra"],
        missing=len(pairs) - sum(status.values()),
        duplicates=duplicates,
        retried=infra if retry_infra_errors else 0,
        torn_bytes=torn,
        elapsed_s=time.perf_counter() - t0,
    )


async def _drain(
    agent: Answerer,
    todo: Iterator[tuple[int, Question]],
    path: Path,
    status: Counter[str],
    total: int,
    initial: int,
    concurrency: int,
    progress: bool,
    infos: Mapping[str, VideoInfo] | None,
) -> int:
    """Run the worker pool over ``todo``; returns how many questions it answered."""
    writer = ResultWriter(path)
    bar = progress_bar(total, desc="eval", unit="q", initial=initial, enabled=progress)
    ran = 0

    async def worker() -> None:
        nonlocal ran
        for index, question in todo:  # one shared iterator: each question goes to one worker
            info = infos.get(question.video) if infos is not None else None
            line = await _answer_one(agent, index, question, info)
            writer.write(line)
            status[_tally(line)] += 1
            ran += 1
            bar.update(1)
            if status["error"] or status["infra"]:
                bar.set_postfix(errors=status["error"], infra=status["infra"], refresh=False)

    try:
        async with asyncio.TaskGroup() as group:  # a failed write cancels the other workers
            for _ in range(concurrency):
                group.create_task(worker())
    finally:
        bar.close()
        writer.close()
    return ran
