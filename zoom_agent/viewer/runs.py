"""What the viewer shows: results, each with its question when the ground truth is known.

Sources:

- a run folder written by ``zoom-agent eval`` (``results.jsonl`` + ``run.json``): the
  questions come back from the task registry with the run's own arguments, so every
  result is shown against its ground truth (without it when the annotation files are gone);
- a ``results.jsonl`` file (result lines of a run);
- a ``.json`` file: one `GroundedAnswer` (``zoom-agent ask --json``), or
  ``{"question": {...}, "result": {...}}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoom_agent.comparison import Comparison, compare_answer
from zoom_agent.types import GroundedAnswer, Question


@dataclass(frozen=True)
class ViewItem:
    """One result, its question (None when unknown) and their comparison."""

    result: GroundedAnswer
    question: Question | None = None

    @property
    def comparison(self) -> Comparison | None:
        return None if self.question is None else compare_answer(self.result, self.question)


@dataclass(frozen=True)
class ViewRun:
    """Everything a viewer site is made of."""

    title: str
    items: list[ViewItem]
    note: str = ""  # e.g. why the ground truth is missing


def load_run(source: str | Path) -> ViewRun:
    """Read a run folder, a results file or one result file (see the module notes).

    Raises:
        FileNotFoundError: ``source`` does not exist.
        ValueError: it is none of the supported kinds, or a line is not a result.
    """
    path = Path(source)
    if path.is_dir():
        return _run_folder(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such run folder or result file")
    if path.suffix == ".jsonl":
        return ViewRun(path.name, [ViewItem(_result(line, path)) for line in _jsonl(path)])
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path}: not JSON ({exc}); expected a GroundedAnswer or a run folder") from None
    if isinstance(doc, dict) and "result" in doc and "question" in doc:
        question = Question.model_validate(doc["question"])
        return ViewRun(path.name, [ViewItem(_result(doc, path), question)])
    return ViewRun(path.name, [ViewItem(_result({"result": doc}, path))])


def _jsonl(path: Path) -> list[dict[str, Any]]:
    from zoom_agent.eval.results import scan_lines

    return [line for _, line in scan_lines(path) if line is not None]


def _result(line: dict[str, Any], where: Path) -> GroundedAnswer:
    try:
        return GroundedAnswer.model_validate(line["result"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{where}: not a GroundedAnswer ({str(exc)[:200]})") from None


def _run_folder(folder: Path) -> ViewRun:
    from zoom_agent.eval.results import RESULTS_FILE, read_results

    lines = read_results(folder)
    if not lines and not (folder / RESULTS_FILE).is_file():
        raise ValueError(f"{folder} has no {RESULTS_FILE}: not a folder written by 'zoom-agent eval'")
    results = [_result(line, folder / RESULTS_FILE) for line in lines]
    questions, note = _questions(folder)
    items = [ViewItem(r, questions.get(r.question_id)) for r in results]
    return ViewRun(folder.name, items, note)


def _questions(folder: Path) -> tuple[dict[str, Question], str]:
    """The run's questions by id, from its task as ``run.json`` records it (or why not)."""
    from zoom_agent.eval.runner import RUN_FILE
    from zoom_agent.eval.tasks import get_task

    path = folder / RUN_FILE
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
        identity = run["identity"]
        video_root = run.get("paths", {}).get("video_root")
        task = get_task(identity["task"], video_root=video_root, **identity["task_args"])
        return {q.id: q for q in task.questions()}, ""
    except Exception as exc:  # the results still show, without the ground truth
        return {}, f"ground truth unavailable ({type(exc).__name__}: {str(exc)[:200]})"
