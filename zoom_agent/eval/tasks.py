"""Evaluation tasks: a benchmark loader plus the metric set that scores it.

A `Task` loads `Question` items and turns result lines (what `run_eval` writes) into the
official metrics of its benchmark (`zoom_agent.metrics`), plus per-question scores for
the report's plots. Four metric sets ("kinds"):

- ``grounded_qa`` (NExT-GQA, synthetic): `nextgqa_metrics` — mIoU, IoU@0.3/0.5, mIoP,
  IoP@0.3/0.5, Acc@QA, Acc@GQA. The synthetic task uses the same semantics (each question
  has one gt span, so "max over gt segments" is that span), so its numbers read like a
  NExT-GQA table. Both also report ``mIoU_all`` (ours): the mean multi-span IoU of ALL
  predicted spans against all gt spans, merged first (`spans.multi_iou`, the RL reward's
  IoU, docs/method.md §3).
- ``rextime``: `rextime_metrics` — mIoU, R1@0.3/0.5/0.7, Acc, Acc@IoU0.5 (grounding-only
  when the questions carry no options: the answer metrics are then left out).
- ``charades``: `charades_metrics` — R1@0.3/0.5/0.7, mIoU.
- ``multiple_choice`` (Video-MME, MLVU, LVBench): `multiple_choice_metrics`.

Choices that hold for every kind:
- Grounding scores the FIRST predicted span (ReXTime's first window; NExT-GQA and
  Charades take one span per question too).
- The strict answer is the graph's own (``GroundedAnswer.answer``, read from
  ``<answer>X</answer>`` only). The lenient answer is the strict one when the graph
  answered; for an unanswered question it is `protocol.extract_answer_lenient` over the
  last turn's text. An error has neither. Nothing is ever guessed.
- Questions without a result line count as 0 / wrong and are counted (``missing``), never
  dropped from the denominator.
- Open-ended questions (no options, with ``references``) add ``open_EM`` and ``open_F1``
  (`metrics.open_ended_metrics`: normalised exact match and token F1) to any metric set.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from zoom_agent import metrics, protocol, spans
from zoom_agent.types import GroundedAnswer, Question

__all__ = ["TASKS", "QuestionScore", "Task", "get_task", "index_results"]

Kind = Literal["grounded_qa", "rextime", "charades", "multiple_choice"]

# Open-ended questions' columns, shown by any metric set whose questions have references.
_OPEN_COLUMNS = (("EM (open)", "open_EM"), ("F1 (open)", "open_F1"))
# Columns of the report's headline table per metric set: (column title, metric key).
HEADLINE: dict[Kind, tuple[tuple[str, str], ...]] = {
    "grounded_qa": (
        ("mIoU", "mIoU"),
        ("IoU@0.3", "IoU@0.3"),
        ("IoU@0.5", "IoU@0.5"),
        ("mIoP", "mIoP"),
        ("IoP@0.3", "IoP@0.3"),
        ("IoP@0.5", "IoP@0.5"),
        ("Acc@QA", "Acc@QA"),
        ("Acc@GQA", "Acc@GQA"),
        ("Acc (lenient)", "accuracy_lenient"),
        *_OPEN_COLUMNS,
    ),
    "rextime": (
        ("mIoU", "mIoU"),
        ("R1@0.3", "R1@0.3"),
        ("R1@0.5", "R1@0.5"),
        ("R1@0.7", "R1@0.7"),
        ("Acc", "Acc"),
        ("Acc@IoU0.5", "Acc@IoU0.5"),
        ("Acc (lenient)", "accuracy_lenient"),
        *_OPEN_COLUMNS,
    ),
    "charades": (("R1@0.3", "R1@0.3"), ("R1@0.5", "R1@0.5"), ("R1@0.7", "R1@0.7"), ("mIoU", "mIoU"), *_OPEN_COLUMNS),
    "multiple_choice": (("Acc", "accuracy"), ("Acc (lenient)", "accuracy_lenient"), *_OPEN_COLUMNS),
}


@dataclass(frozen=True)
class QuestionScore:
    """One question's outcome, for the report's per-type table and plots."""

    id: str
    qtype: str | None
    status: str  # answered / unanswered / error / missing (no result line)
    correct: bool | None  # None: the gt answer is unknown
    iou: float | None  # first predicted span vs best gt span; None: no gt spans
    has_span: bool
    rounds: int | None


@dataclass
class Task:
    """A benchmark: how to load its questions and how to score results on them.

    Args:
        name: registry name (``synthetic``, ``nextgqa``, ...).
        kind: the metric set (module docstring).
        loader: returns the questions, in the benchmark's order.
        args: the arguments the task was built with (recorded in ``run.json``).
    """

    name: str
    kind: Kind
    loader: Callable[[], list[Question]]
    args: dict[str, Any] = field(default_factory=dict)
    _questions: list[Question] | None = field(default=None, repr=False)

    def questions(self) -> list[Question]:
        """The task's questions (loaded once, then cached)."""
        if self._questions is None:
            self._questions = self.loader()
        return self._questions

    @property
    def headline(self) -> tuple[tuple[str, str], ...]:
        return HEADLINE[self.kind]

    def metrics(self, questions: Sequence[Question], results: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """The task's official metrics over ``questions``.

        Args:
            questions: the questions that were meant to be answered (the denominator).
            results: result lines (dicts with ``id`` and ``result``); other ids are ignored.

        Returns:
            The metric dict of `zoom_agent.metrics` for this kind (percent, unrounded),
            with ``accuracy`` / ``accuracy_lenient`` / ``parse_failures`` added for tasks
            whose questions have answers, and ``mIoU_all`` for grounded QA.
        """
        answers = index_results(results)
        compute = _METRICS[self.kind]
        out = compute(questions, answers)
        if self.kind != "multiple_choice" and any(q.answer is not None for q in questions):
            mc = _choice_metrics(questions, answers)
            out.update({k: mc[k] for k in ("accuracy", "accuracy_lenient", "parse_failures")})
        if any(q.references for q in questions):  # open-ended items (docs/evaluation.md §6)
            out.update(_open_ended(questions, answers))
        return out

    def scores(self, questions: Sequence[Question], results: Iterable[Mapping[str, Any]]) -> list[QuestionScore]:
        """Per-question outcomes in question order (for plots and the per-type table)."""
        answers = index_results(results)
        return [_score(q, answers.get(q.id)) for q in questions]


def index_results(results: Iterable[Mapping[str, Any]]) -> dict[str, GroundedAnswer]:
    """``{question id: GroundedAnswer}`` from result lines (the first line per id wins)."""
    out: dict[str, GroundedAnswer] = {}
    for line in results:
        key = str(line["id"])
        if key not in out:
            out[key] = GroundedAnswer.model_validate(line["result"])
    return out


# --- answers and spans of one result --------------------------------------------------


def strict_answer(result: GroundedAnswer | None) -> str | None:
    """The graph's answer letter (strict ``<answer>X</answer>`` parse), if it answered."""
    return result.answer if result is not None and result.status == "answered" else None


def lenient_answer(question: Question, result: GroundedAnswer | None) -> str | None:
    """The strict answer, or for an unanswered question the lenient parse of its last turn."""
    if result is None or result.status == "error":
        return None
    if result.status == "answered":
        return result.answer
    if not result.turns:
        return None
    return protocol.extract_answer_lenient(result.turns[-1].text, question.letters or "ABCDE")


def first_span(result: GroundedAnswer | None) -> tuple[float, float] | None:
    """The first predicted span of an answered result (the one grounding scores)."""
    if result is None or result.status != "answered" or not result.spans:
        return None
    return result.spans[0].as_tuple()


def _score(q: Question, r: GroundedAnswer | None) -> QuestionScore:
    span = first_span(r)
    iou: float | None = None
    if q.gt_spans:
        iou = 0.0 if span is None else max(spans.iou(span, g) for g in q.gt_spans)
    return QuestionScore(
        id=q.id,
        qtype=q.qtype,
        status="missing" if r is None else r.status,
        correct=None if q.answer is None else strict_answer(r) == q.answer_letter,
        iou=iou,
        has_span=span is not None,
        rounds=None if r is None else r.rounds,
    )


# --- metric sets ----------------------------------------------------------------------


def _choice_metrics(questions: Sequence[Question], answers: Mapping[str, GroundedAnswer]) -> dict[str, Any]:
    gt = {q.id: q.answer_letter for q in questions if q.answer_letter is not None}
    strict = {q.id: strict_answer(answers[q.id]) for q in questions if q.id in answers}
    lenient = {q.id: lenient_answer(q, answers[q.id]) for q in questions if q.id in answers}
    return metrics.multiple_choice_metrics(gt, strict, lenient)


def _grounded_qa(questions: Sequence[Question], answers: Mapping[str, GroundedAnswer]) -> dict[str, Any]:
    official = all(q.task == "nextgqa" for q in questions)
    if official:  # keys f"{video_id}_{qid}" and the gsub grouping, as eval_ground.py sees them
        gt = metrics.nextgqa_gt_from_questions(questions)
        key = {q.id: q.id for q in questions}
    else:  # synthetic ids carry no video/qid split: one pseudo video holds every question
        location = {q.id: [s.as_tuple() for s in q.gt_spans] for q in questions}
        gt = {"all": {"duration": None, "location": location}}
        key = {q.id: f"all_{q.id}" for q in questions}
    predictions: dict[str, tuple[float, float]] = {}
    correct: dict[str, bool] = {}
    multi: list[float] = []
    for q in questions:
        r = answers.get(q.id)
        span = first_span(r)
        if span is not None:
            predictions[key[q.id]] = span
        if r is not None:
            correct[key[q.id]] = q.answer is not None and strict_answer(r) == q.answer_letter
        all_spans = r.spans if r is not None and r.status == "answered" else ()
        multi.append(spans.multi_iou(all_spans, q.gt_spans))
    out: dict[str, Any] = metrics.nextgqa_metrics(gt, predictions, correct)
    out["mIoU_all"] = sum(multi) / len(multi) * 100 if multi else math.nan
    return out


def _rextime(questions: Sequence[Question], answers: Mapping[str, GroundedAnswer]) -> dict[str, Any]:
    gt = metrics.rextime_gt_from_questions(questions)
    predictions: dict[str, dict[str, Any]] = {}
    for q in questions:
        if q.id in answers:
            span = first_span(answers[q.id])
            predictions[q.id] = {
                "pred_relevant_windows": [list(span)] if span is not None else [],
                "ans": strict_answer(answers[q.id]),
            }
    out = metrics.rextime_metrics(gt, predictions)
    if not any(q.answer is not None for q in questions):  # grounding-only: no options file
        out = {k: v for k, v in out.items() if k not in ("Acc", "Acc@IoU0.5")}
    return out


def _charades(questions: Sequence[Question], answers: Mapping[str, GroundedAnswer]) -> dict[str, Any]:
    gt = {q.id: q.gt_spans[0].as_tuple() for q in questions if q.gt_spans}
    predictions = {}
    for q in questions:
        span = first_span(answers.get(q.id))
        if span is not None:
            predictions[q.id] = span
    return metrics.charades_metrics(gt, predictions)


def _open_ended(questions: Sequence[Question], answers: Mapping[str, GroundedAnswer]) -> dict[str, Any]:
    """Normalised exact match and token F1 of the free-text answers (``open_EM``, ``open_F1``,
    ``open_n``, ``open_unanswered``) over the questions that carry reference answers."""
    gt = {q.id: q.references for q in questions if q.references}
    predictions = {key: strict_answer(answers[key]) for key in gt if key in answers}
    scored = metrics.open_ended_metrics(gt, predictions)
    return {f"open_{k}": scored[k] for k in ("EM", "F1", "n", "unanswered")}


_METRICS: dict[Kind, Callable[[Sequence[Question], Mapping[str, GroundedAnswer]], dict[str, Any]]] = {
    "grounded_qa": _grounded_qa,
    "rextime": _rextime,
    "charades": _charades,
    "multiple_choice": _choice_metrics,
}


# --- the registry ---------------------------------------------------------------------


def _need(args: Mapping[str, Any], name: str, task: str, what: str) -> Any:
    value = args.get(name)
    if value is None:
        raise ValueError(f"task {task!r} needs {name}: {what}")
    return value


def _synthetic(a: dict[str, Any]) -> Task:
    from zoom_agent.datasets.synthetic import make_synthetic_task

    root = Path(_need(a, "video_root", "synthetic", "the folder its videos are written to (or reused from)"))
    num_videos, seed = int(a.get("num_videos", SYNTHETIC_VIDEOS)), int(a.get("seed", 0))  # 0 is a value, not "unset"
    if num_videos < 1:
        raise ValueError(f"task 'synthetic': num_videos (--num-videos) must be >= 1, got {num_videos}")
    args = {"video_root": str(root), "num_videos": num_videos, "seed": seed}
    return Task("synthetic", "grounded_qa", lambda: make_synthetic_task(root, num_videos=num_videos, seed=seed), args)


def _synthetic_gqa(a: dict[str, Any]) -> Task:
    from zoom_agent.datasets.synthetic_gqa import GQA_TASK, SPLITS, make_gqa_split

    root = Path(_need(a, "video_root", GQA_TASK, "the folder its splits are written to (or reused from)"))
    split = a.get("split") or "test"
    if split not in SPLITS:
        raise ValueError(f"task {GQA_TASK!r}: split must be one of {', '.join(SPLITS)}, got {split!r}")
    num_videos = None if a.get("num_videos") is None else int(a["num_videos"])
    seed = int(a.get("seed") or 0)
    args = {"video_root": str(root), "split": split, "num_videos": num_videos, "seed": seed}
    return Task(GQA_TASK, "grounded_qa", lambda: make_gqa_split(root, split, num_videos=num_videos, seed=seed), args)


def _nextgqa(a: dict[str, Any]) -> Task:
    from zoom_agent.datasets import load_nextgqa

    ann = _need(a, "ann", "nextgqa", "the folder with {split}.csv and gsub_{split}.json")
    root = _need(a, "video_root", "nextgqa", "the folder the videos live under")
    split = a.get("split") or NEXTGQA_SPLITS[0]
    if split not in NEXTGQA_SPLITS:
        raise ValueError(f"task 'nextgqa': split must be one of {', '.join(NEXTGQA_SPLITS)}, got {split!r}")
    extra = {k: a[k] for k in ("video_pattern", "id_map") if a.get(k) is not None}
    args = {"ann": str(ann), "video_root": str(root), "split": split, **extra}
    which: Literal["val", "test"] = "val" if split == "val" else "test"
    return Task("nextgqa", "grounded_qa", lambda: load_nextgqa(ann, which, root, **extra), args)


def _rextime_task(a: dict[str, Any]) -> Task:
    from zoom_agent.datasets import load_rextime

    ann = _need(a, "ann", "rextime", "the benchmark jsonl, e.g. rextime_val.jsonl")
    root = _need(a, "video_root", "rextime", "the folder the videos live under")
    extra: dict[str, Any] = {}
    if a.get("options") is not None:
        extra["options_path"] = a["options"]
    if a.get("video_pattern") is not None:
        extra["video_pattern"] = a["video_pattern"]
    args = {"ann": str(ann), "video_root": str(root), **{k: str(v) for k, v in extra.items()}}
    return Task("rextime", "rextime", lambda: load_rextime(ann, root, **extra), args)


def _charades_task(a: dict[str, Any]) -> Task:
    from zoom_agent.datasets import load_charades

    ann = _need(a, "ann", "charades", "the 'vid start end##sentence' annotation file")
    durations = _need(a, "durations", "charades", "a CSV or JSON file of video durations")
    root = _need(a, "video_root", "charades", "the folder the videos live under")
    extra = {"video_pattern": a["video_pattern"]} if a.get("video_pattern") is not None else {}
    args = {"ann": str(ann), "durations": str(durations), "video_root": str(root), **extra}
    return Task("charades", "charades", lambda: load_charades(ann, durations, root, **extra), args)


def _multiple_choice(name: str) -> Callable[[dict[str, Any]], Task]:
    def build(a: dict[str, Any]) -> Task:
        from zoom_agent.datasets import load_multiple_choice

        ann = _need(a, "ann", name, "the question file (.json or .jsonl)")
        root = _need(a, "video_root", name, "the folder the videos live under")
        args = {"ann": str(ann), "video_root": str(root)}
        return Task(name, "multiple_choice", lambda: load_multiple_choice(ann, root, name), args)

    return build


TASKS: dict[str, Callable[[dict[str, Any]], Task]] = {
    "synthetic": _synthetic,
    "synthetic-gqa": _synthetic_gqa,
    "nextgqa": _nextgqa,
    "rextime": _rextime_task,
    "charades": _charades_task,
    "videomme": _multiple_choice("videomme"),
    "mlvu": _multiple_choice("mlvu"),
    "lvbench": _multiple_choice("lvbench"),
}
NEXTGQA_SPLITS = ("val", "test")  # the official annotation splits; the first is the default
SYNTHETIC_VIDEOS = 8  # ours: videos of the synthetic task unless told (about 13 questions each)

TASK_ARGS = frozenset(
    {
        "ann",
        "video_root",
        "split",
        "video_pattern",
        "id_map",
        "options",
        "durations",
        "num_videos",
        "seed",
    }
)


def get_task(name: str, **paths: Any) -> Task:
    """Build a task by name.

    Args:
        name: one of `TASKS`: synthetic, nextgqa, rextime, charades, videomme, mlvu, lvbench.
        **paths: ``ann`` (annotation folder for nextgqa, file otherwise), ``video_root``,
            ``split`` (nextgqa: val/test), ``video_pattern``, ``id_map`` (nextgqa),
            ``options`` (rextime options file), ``durations`` (charades), ``num_videos`` and
            ``seed`` (synthetic). None values are ignored.

    Returns:
        The `Task` (questions load lazily on the first ``questions()`` call).

    Raises:
        ValueError: unknown task, unknown argument, or a required path missing.

    Example:
        >>> task = get_task("synthetic", video_root="/tmp/synth", num_videos=2)
        >>> task.kind
        'grounded_qa'
    """
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
    unknown = set(paths) - TASK_ARGS
    if unknown:
        raise ValueError(f"task {name!r}: unknown arguments {sorted(unknown)}; known: {sorted(TASK_ARGS)}")
    return TASKS[name]({k: v for k, v in paths.items() if v is not None})
