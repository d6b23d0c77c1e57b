"""The report of an evaluation run: ``metrics.json``, ``report.md`` and plots (PNG).

``metrics.json``::

    {"task": "nextgqa", "model": "...", "pipeline_check": null | "oracle model: ...",
     "counts": {"n", "answered", "unanswered", "errors", "missing"},
     "metrics": {official metric dict of the task, percent, unrounded},
     "by_type": {qtype: {"n", "accuracy", "mIoU"}},
     "rounds": {"0": count, "1": count, ...},
     "timing": {"mean_s", "p50_s", "p95_s"}, "plots": [file names]}

``report.md`` leads with a pipeline-check banner when the model is the oracle, then a
table like the paper's (one decimal, as the official scripts print), the counts, the
per-type table and the plots. Plots use matplotlib's Agg canvas directly (no pyplot, no
global backend switch), so reports can be written from any thread or server.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from zoom_agent.eval.tasks import QuestionScore, Task
from zoom_agent.types import Question

__all__ = ["METRICS_FILE", "REPORT_FILE", "write_report"]

METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"
PLOT_IOU, PLOT_TYPES, PLOT_ROUNDS = "iou_hist.png", "accuracy_by_type.png", "zoom_rounds.png"


def write_report(
    out_dir: str | os.PathLike[str],
    task: Task,
    questions: Sequence[Question],
    results: Iterable[Mapping[str, Any]],
    *,
    model_label: str,
    pipeline_check: str | None = None,
    plots: bool = True,
) -> dict[str, Any]:
    """Score ``results`` on ``questions`` and write the report files into ``out_dir``.

    Args:
        out_dir: the run folder.
        task: the task (its metric set scores the results).
        questions: the questions meant to be answered: the denominator. Results for other
            ids are ignored; questions without a result count as missing (0 / wrong).
        results: result lines as `run_eval` writes them (``read_results(out_dir)``).
        model_label: names the model in the report.
        pipeline_check: set for a model that is a pipeline check (the oracle): the label
            is written at the top of ``report.md`` and into ``metrics.json``.
        plots: also write the PNG plots.

    Returns:
        The dict written to ``metrics.json`` (NaN metrics, with nothing to score, as None).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = list(results)
    wanted = {q.id for q in questions}
    lines = [line for line in lines if str(line["id"]) in wanted]
    scores = task.scores(questions, lines)
    doc: dict[str, Any] = {
        "task": task.name,
        "model": model_label,
        "pipeline_check": pipeline_check,
        "counts": _counts(scores),
        "metrics": task.metrics(questions, lines),
        "by_type": _by_type(scores),
        "rounds": _rounds(scores),
        "timing": _timing(lines),
        "plots": _write_plots(out, task, scores) if plots else [],
    }
    _write_text(out / REPORT_FILE, _markdown(task, doc))
    doc = _no_nan(doc)  # strict JSON: a metric with nothing to score is null, not NaN
    _write_text(out / METRICS_FILE, json.dumps(doc, indent=1, allow_nan=False) + "\n")
    return doc


def _no_nan(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
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


def _percent(values: list[float]) -> float:
    return sum(values) / len(values) * 100 if values else math.nan


def _by_type(scores: Sequence[QuestionScore]) -> dict[str, dict[str, float]]:
    groups: dict[str, list[QuestionScore]] = {}
    for s in scores:
        groups.setdefault(s.qtype or "(none)", []).append(s)
    out = {}
    for qtype in sorted(groups):
        group = groups[qtype]
        out[qtype] = {
            "n": len(group),
            "accuracy": _percent([float(s.correct) for s in group if s.correct is not None]),
            "mIoU": _percent([s.iou for s in group if s.iou is not None]),
        }
    return out


def _rounds(scores: Sequence[QuestionScore]) -> dict[str, int]:
    counts = Counter(s.rounds for s in scores if s.rounds is not None)
    return {str(k): counts[k] for k in sorted(counts)}


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
    return "–" if value is None else str(value)


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def _markdown(task: Task, doc: Mapping[str, Any]) -> str:
    m, c = doc["metrics"], doc["counts"]
    cols = [(title, key) for title, key in task.headline if key in m]
    lines = [f"# Evaluation: {task.name}", ""]
    if doc["pipeline_check"]:
        lines += [
            f"> **{doc['pipeline_check']}.** These numbers check the pipeline; they are not results.",
            "",
        ]
    lines += _table(["Task", "Model", *(t for t, _ in cols)], [[task.name, doc["model"], *(m[k] for _, k in cols)]])
    lines += [
        "",
        "Percent, one decimal. Grounding scores the first predicted span; questions without a "
        "result or a span count as 0 (never dropped).",
        "",
        "## Counts",
        "",
        *_table(["n", "answered", "unanswered", "errors", "missing"], [[c[k] for k in c]]),
        "",
    ]
    if doc["by_type"]:
        rows = [[t, v["n"], v["accuracy"], v["mIoU"]] for t, v in doc["by_type"].items()]
        lines += ["## By question type", "", *_table(["type", "n", "Acc", "mIoU"], rows), ""]
    t = doc["timing"]
    lines += [
        "## Zoom rounds and time",
        "",
        "rounds: " + (", ".join(f"{k}: {v}" for k, v in doc["rounds"].items()) or "–"),
        "",
        "wall time per question: " + ", ".join(f"{k[:-2]} {_cell(t[k], 3)} s" for k in ("mean_s", "p50_s", "p95_s")),
        "",
    ]
    lines += [f"![{name}]({name})" for name in doc["plots"]]
    return "\n".join(lines).rstrip() + "\n"


# --- plots ----------------------------------------------------------------------------


def _figure(title: str) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.6), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=10)
    return fig, ax


def _save(fig: Any, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.savefig(path)


def _write_plots(out: Path, task: Task, scores: Sequence[QuestionScore]) -> list[str]:
    """IoU histogram, accuracy by type, zoom-round histogram; each only when it has data."""
    written = []
    ious = [s.iou for s in scores if s.iou is not None]
    if ious:
        no_span = sum(1 for s in scores if s.iou is not None and not s.has_span)
        fig, ax = _figure(f"{task.name}: IoU of the first span ({len(ious)} questions, {no_span} without a span = 0)")
        ax.hist(ious, bins=[i / 20 for i in range(21)], color="#4c72b0", edgecolor="white")
        ax.set_xlabel("IoU")
        ax.set_ylabel("questions")
        _save(fig, out / PLOT_IOU)
        written.append(PLOT_IOU)
    by_type = {t: v for t, v in _by_type(scores).items() if not math.isnan(v["accuracy"])}
    if by_type:
        fig, ax = _figure(f"{task.name}: accuracy by question type (strict)")
        names = list(by_type)
        ax.bar(range(len(names)), [by_type[n]["accuracy"] for n in names], color="#55a868")
        ax.set_xticks(range(len(names)), [f"{n}\n(n={by_type[n]['n']})" for n in names], fontsize=7)
        ax.set_ylim(0, 100)
        ax.set_ylabel("accuracy (%)")
        _save(fig, out / PLOT_TYPES)
        written.append(PLOT_TYPES)
    rounds = [s.rounds for s in scores if s.rounds is not None]
    if rounds:
        fig, ax = _figure(f"{task.name}: zoom rounds per question")
        top = max(rounds)
        ax.hist(rounds, bins=[r - 0.5 for r in range(top + 2)], color="#c44e52", edgecolor="white")
        ax.set_xticks(range(top + 1))
        ax.set_xlabel("zoom rounds")
        ax.set_ylabel("questions")
        _save(fig, out / PLOT_ROUNDS)
        written.append(PLOT_ROUNDS)
    return written
