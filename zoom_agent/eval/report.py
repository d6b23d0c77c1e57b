"""The report of an evaluation run: ``metrics.json``, ``report.md`` and plots (PNG).

``metrics.json``::

    {"task": "nextgqa", "model": "...", "run_kind": "real model",
     "pipeline_check": null | "oracle model: ...",
     "notes": ["what the reader must know before reading a number", ...],
     "counts": {"n", "answered", "unanswered", "errors", "missing"},
     "metrics": {official metric dict of the task, percent, unrounded},
     "intervals": {"accuracy": [lo, hi], "mIoU": [lo, hi]},   # 95%, percent
     "chance_accuracy": 25.0 | null,    # mean of 1 / options over questions with options
     "by_type": {qtype: {"n", "accuracy", "accuracy_ci95", "mIoU", "mIoU_ci95"}},
     "zoom": {"n", "mean_iou", "mean_iou_ci95"},   # zoom-vs-truth IoU, percent
     "rounds": {"0": count, ...}, "zoom_calls": {"0": count, ...},
     "warnings": {"questions": count, "examples": [...]},
     "timing": {"mean_s", "p50_s", "p95_s"}, "plots": [file names]}

Accuracy intervals are Wilson intervals, mean-IoU intervals a seeded bootstrap
(`zoom_agent.eval.intervals`). The zoom-vs-truth IoU of a question is the IoU of its best
zoomed window against the true spans (`zoom_agent.comparison.compare_answer`: did the model
look where the evidence is?); questions without a zoom or without true spans are left out
of its mean, and ``zoom.n`` says how many are in. ``report.md`` leads with the notes (a
pipeline check, errors, missing questions), then a table like the paper's (one decimal, as
the official scripts print), the counts, the per-type table with intervals, the zoom figures
and the plots (`zoom_agent.eval.plots`).
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from zoom_agent.comparison import compare_answer
from zoom_agent.eval.intervals import mean_interval, wilson_interval
from zoom_agent.eval.tasks import QuestionScore, Task, index_results
from zoom_agent.types import GroundedAnswer, Question

__all__ = ["METRICS_FILE", "REPORT_FILE", "RUN_KINDS", "QuestionZoom", "RunKind", "question_zooms", "write_report"]

METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"
RunKind = Literal["pipeline check", "scripted", "real model"]
RUN_KINDS: tuple[RunKind, ...] = get_args(RunKind)
WARNING_EXAMPLES = 10  # warnings quoted in the report; metrics.json counts them all


def write_report(
    out_dir: str | os.PathLike[str],
    task: Task,
    questions: Sequence[Question],
    results: Iterable[Mapping[str, Any]],
    *,
    model_label: str,
    pipeline_check: str | None = None,
    run_kind: RunKind | None = None,
    plots: bool = True,
) -> dict[str, Any]:
    """Score ``results`` on ``questions`` and write the report files into ``out_dir``.

    Args:
        out_dir: the run folder.
        task: the task (its metric set scores the results).
        questions: the questions meant to be answered: the denominator. Results for other
            ids are ignored; questions without a result count as missing (0 / wrong).
        results: result lines as `run_eval` writes them (``read_results(out_dir)``).
        model_label: names the model in the report and on every plot.
        pipeline_check: set for a model that is a pipeline check (the oracle): the label
            is written at the top of ``report.md`` and into ``metrics.json``.
        run_kind: what answered, named on every plot: ``pipeline check`` (the oracle),
            ``scripted`` or ``real model``; default: ``pipeline check`` with
            ``pipeline_check`` set, else ``real model``.
        plots: also write the PNG plots.

    Returns:
        The dict written to ``metrics.json`` (NaN metrics, with nothing to score, as None).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    wanted = {q.id for q in questions}
    lines = [line for line in results if str(line["id"]) in wanted]
    kind: RunKind = run_kind or ("pipeline check" if pipeline_check else "real model")
    if kind not in RUN_KINDS:
        raise ValueError(f"run_kind must be one of {', '.join(RUN_KINDS)}, got {kind!r}")
    scores = task.scores(questions, lines)
    zooms = question_zooms(questions, index_results(lines))
    counts = _counts(scores)
    metrics = task.metrics(questions, lines)
    doc: dict[str, Any] = {
        "task": task.name,
        "model": model_label,
        "run_kind": kind,
        "pipeline_check": pipeline_check,
        "notes": _notes(counts, pipeline_check),
        "counts": counts,
        "metrics": metrics,
        "intervals": _intervals(scores),
        "chance_accuracy": _chance(questions),
        "by_type": _by_type(scores),
        "zoom": _zoom_summary(zooms),
        "rounds": _histogram(s.rounds for s in scores),
        "zoom_calls": _histogram(z.calls for z in zooms),
        "warnings": _warnings(lines),
        "timing": _timing(lines),
        "plots": [],
    }
    if plots:
        from zoom_agent.eval.plots import write_plots

        doc["plots"] = write_plots(out, doc, scores, zooms)
    _write_text(out / REPORT_FILE, _markdown(task, doc))
    doc = _no_nan(doc)  # strict JSON: a metric with nothing to score is null, not NaN
    _write_text(out / METRICS_FILE, json.dumps(doc, indent=1, allow_nan=False) + "\n")
    return doc


@dataclass(frozen=True)
class QuestionZoom:
    """One question's zooms: how many windows it inspected and the best one's IoU with the truth."""

    question_id: str
    calls: int
    iou: float | None  # None: no zoom, or no true spans


def question_zooms(questions: Sequence[Question], answers: Mapping[str, GroundedAnswer]) -> list[QuestionZoom]:
    """Each answered-or-not question's zoom count and zoom-vs-truth IoU (`compare_answer`).

    Questions without a result line are left out (they zoomed nowhere and are counted as
    missing elsewhere).
    """
    out = []
    for q in questions:
        result = answers.get(q.id)
        if result is not None:
            out.append(QuestionZoom(q.id, len(result.zooms), compare_answer(result, q).best_zoom_iou))
    return out


def _no_nan(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_no_nan(v) for v in value]
    return value


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _counts(scores: Sequence[QuestionScore]) -> dict[str, int]:
    status = Counter(s.status for s in scores)
    return {
        "n": len(scores),
        "answered": status["answered"],
        "unanswered": status["unanswered"],
        "errors": status["error"],
        "missing": status["missing"],
    }


def _notes(counts: Mapping[str, int], pipeline_check: str | None) -> list[str]:
    """What a reader must know before any number: a pipeline check, errors, missing results."""
    n, errors, missing = counts["n"], counts["errors"], counts["missing"]
    notes = []
    if pipeline_check:
        notes.append(f"{pipeline_check}. These numbers check the pipeline; they are not results.")
    if n and errors == n:
        notes.append(
            f"{errors} of {n} questions errored: every metric below is 0 because nothing was answered. "
            "These metrics are not results (see the error of each line in results.jsonl)."
        )
    elif errors:
        notes.append(f"{errors} of {n} questions errored; they count as wrong (0), never dropped.")
    if missing:
        notes.append(f"{missing} of {n} questions have no result yet; they count as wrong (0).")
    return notes


def _percent(values: list[float]) -> float:
    return sum(values) / len(values) * 100 if values else math.nan


def _accuracy_ci(correct: Sequence[bool]) -> list[float] | None:
    ci = wilson_interval(sum(correct), len(correct))
    return None if ci is None else [ci[0] * 100, ci[1] * 100]


def _iou_ci(ious: Sequence[float]) -> list[float] | None:
    ci = mean_interval(ious)
    return None if ci is None else [ci[0] * 100, ci[1] * 100]


def _group_stats(group: Sequence[QuestionScore]) -> dict[str, Any]:
    correct = [bool(s.correct) for s in group if s.correct is not None]
    ious = [s.iou for s in group if s.iou is not None]
    return {
        "n": len(group),
        "accuracy": _percent([float(c) for c in correct]),
        "accuracy_ci95": _accuracy_ci(correct),
        "mIoU": _percent(ious),
        "mIoU_ci95": _iou_ci(ious),
    }


def _intervals(scores: Sequence[QuestionScore]) -> dict[str, list[float] | None]:
    stats = _group_stats(scores)
    return {"accuracy": stats["accuracy_ci95"], "mIoU": stats["mIoU_ci95"]}


def _by_type(scores: Sequence[QuestionScore]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[QuestionScore]] = {}
    for s in scores:
        groups.setdefault(s.qtype or "(none)", []).append(s)
    return {qtype: _group_stats(groups[qtype]) for qtype in sorted(groups)}


def _chance(questions: Sequence[Question]) -> float | None:
    """Chance accuracy in percent: the mean of 1 / options over the questions that have options."""
    sizes = [len(q.options) for q in questions if q.options]
    return statistics.fmean(100 / k for k in sizes) if sizes else None


def _zoom_summary(zooms: Sequence[QuestionZoom]) -> dict[str, Any]:
    ious = [z.iou for z in zooms if z.iou is not None]
    return {"n": len(ious), "mean_iou": _percent(ious), "mean_iou_ci95": _iou_ci(ious)}


def _histogram(values: Iterable[int | None]) -> dict[str, int]:
    counts = Counter(v for v in values if v is not None)
    return {str(k): counts[k] for k in sorted(counts)}


def _warnings(lines: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per-question warnings the runner recorded (a line's or its result's ``warnings`` list)."""
    examples: list[str] = []
    questions = 0
    for line in lines:
        # the line's list repeats its result's (runner): each warning once
        listed = [*(line.get("warnings") or ()), *((line.get("result") or {}).get("warnings") or ())]
        found = list(dict.fromkeys(listed))
        if found:
            questions += 1
            examples += [f"{line['id']}: {w}" for w in found][: max(0, WARNING_EXAMPLES - len(examples))]
    return {"questions": questions, "examples": examples}


def _timing(lines: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    walls = sorted(float(line.get("wall_s", 0.0)) for line in lines)
    if not walls:
        return {"mean_s": math.nan, "p50_s": math.nan, "p95_s": math.nan}
    return {
        "mean_s": statistics.fmean(walls),
        "p50_s": walls[len(walls) // 2],
        "p95_s": walls[min(len(walls) - 1, math.ceil(0.95 * len(walls)) - 1)],
    }


# --- markdown -------------------------------------------------------------------------


def _cell(value: Any, digits: int = 1) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.{digits}f}"
    if isinstance(value, list) and len(value) == 2:
        return f"[{value[0]:.1f}, {value[1]:.1f}]"
    return "–" if value is None else str(value)


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def _markdown(task: Task, doc: Mapping[str, Any]) -> str:
    m, c = doc["metrics"], doc["counts"]
    cols = [(title, key) for title, key in task.headline if key in m]
    lines = [f"# Evaluation: {task.name}", "", f"Model: {doc['model']} ({doc['run_kind']}).", ""]
    lines += [f"> **{note}**\n" for note in doc["notes"]]
    lines += _table(["Task", "Model", *(t for t, _ in cols)], [[task.name, doc["model"], *(m[k] for _, k in cols)]])
    ci = doc["intervals"]
    chance = doc["chance_accuracy"]
    lines += [
        "",
        "Percent, one decimal. Grounding scores the first predicted span; questions without a "
        "result or a span count as 0 (never dropped). 95% intervals: accuracy (strict) "
        f"{_cell(ci['accuracy'])} (Wilson), mIoU {_cell(ci['mIoU'])} (bootstrap)"
        + (f"; chance accuracy {chance:.1f}." if chance is not None else "."),
        "",
        "## Counts",
        "",
        *_table(["n", "answered", "unanswered", "errors", "missing"], [[c[k] for k in c]]),
        "",
    ]
    if doc["by_type"]:
        rows = [
            [t, v["n"], v["accuracy"], v["accuracy_ci95"], v["mIoU"], v["mIoU_ci95"]] for t, v in doc["by_type"].items()
        ]
        header = ["type", "n", "Acc", "Acc 95% CI", "mIoU", "mIoU 95% CI"]
        lines += ["## By question type", "", *_table(header, rows), ""]
    z, t = doc["zoom"], doc["timing"]
    lines += [
        "## Zooms, rounds and time",
        "",
        f"zoom vs truth: IoU of the best zoomed window with the true spans, mean {_cell(z['mean_iou'])} "
        f"{_cell(z['mean_iou_ci95'])} over {z['n']} questions that zoomed and have true spans",
        "",
        "zoom rounds per question: " + (", ".join(f"{k}: {v}" for k, v in doc["rounds"].items()) or "–"),
        "",
        "zoom calls per question: " + (", ".join(f"{k}: {v}" for k, v in doc["zoom_calls"].items()) or "–"),
        "",
        "wall time per question: " + ", ".join(f"{k[:-2]} {_cell(t[k], 3)} s" for k in ("mean_s", "p50_s", "p95_s")),
        "",
    ]
    w = doc["warnings"]
    if w["questions"]:
        lines += ["## Warnings", "", f"{w['questions']} questions carry warnings (results.jsonl); the first:", ""]
        lines += [f"- {example}" for example in w["examples"]] + [""]
    lines += [f"![{name}]({name})" for name in doc["plots"]]
    return "\n".join(lines).rstrip() + "\n"
