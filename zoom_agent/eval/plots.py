"""The report's plots (PNG): what a researcher checks before trusting a number.

Every title names the task, the model and the run kind (pipeline check, scripted, real
model); every bar carries its n and a 95% interval (`zoom_agent.eval.intervals`); accuracy
plots draw the chance line of multiple choice (the mean of 1 / options). Plots use
matplotlib's Agg canvas directly (no pyplot, no global backend switch), so reports can be
written from any thread or server. Each plot is written only when it has data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zoom_agent.eval.report import QuestionZoom
    from zoom_agent.eval.tasks import QuestionScore

__all__ = ["PLOT_IOU", "PLOT_ROUNDS", "PLOT_TYPES", "write_plots"]

PLOT_IOU, PLOT_TYPES, PLOT_ROUNDS = "iou_hist.png", "accuracy_by_type.png", "zoom_rounds.png"
MODEL_CHARS = 60  # a longer model label is shortened on the plots (kept whole in the report)
_BINS = [i / 20 for i in range(21)]


def write_plots(
    out: Path, doc: Mapping[str, Any], scores: Sequence[QuestionScore], zooms: Sequence[QuestionZoom]
) -> list[str]:
    """Write the plots of a report ``doc`` (`zoom_agent.eval.report`) into ``out``; their file names."""
    written = []
    for name, draw in ((PLOT_IOU, _iou_hist), (PLOT_TYPES, _by_type), (PLOT_ROUNDS, _zoom_rounds)):
        fig = draw(doc, scores, zooms)
        if fig is not None:
            _save(fig, out / name)
            written.append(name)
    return written


def _who(doc: Mapping[str, Any]) -> str:
    model = str(doc["model"])
    if len(model) > MODEL_CHARS:
        model = "…" + model[-(MODEL_CHARS - 1) :]
    return f"{model} ({doc['run_kind']})"


def _figure(doc: Mapping[str, Any], what: str, panels: int = 1) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6 * panels, 3.8), dpi=100, layout="constrained")
    axes = [fig.add_subplot(1, panels, i + 1) for i in range(panels)]
    fig.suptitle(f"{doc['task']}: {what}\n{_who(doc)}", fontsize=10)
    return fig, axes


def _save(fig: Any, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.savefig(path)


def _iou_hist(doc: Mapping[str, Any], scores: Sequence[QuestionScore], _zooms: Sequence[QuestionZoom]) -> Any:
    ious = [s.iou for s in scores if s.iou is not None]
    if not ious:
        return None
    no_span = sum(1 for s in scores if s.iou is not None and not s.has_span)
    miou, ci = doc["metrics"].get("mIoU"), doc["intervals"]["mIoU"]
    fig, (ax,) = _figure(doc, f"IoU of the first span, n={len(ious)} ({no_span} without a span = 0)")
    ax.hist(ious, bins=_BINS, color="#4c72b0", edgecolor="white")
    if miou is not None and not math.isnan(miou):
        label = f"mIoU {miou:.1f}" + (f" [{ci[0]:.1f}, {ci[1]:.1f}] 95% CI" if ci else "")
        ax.axvline(miou / 100, color="black", linestyle="--", linewidth=1, label=label)
        ax.legend(fontsize=8)
    ax.set_xlabel("IoU")
    ax.set_ylabel("questions")
    return fig


def _bars(ax: Any, names: list[str], groups: Mapping[str, Any], key: str, colour: str) -> None:
    """Bars of ``groups[name][key]`` with their 95% intervals and n."""
    values = [groups[n][key] for n in names]
    low = [v - (groups[n][f"{key}_ci95"] or [v, v])[0] for n, v in zip(names, values, strict=True)]
    high = [(groups[n][f"{key}_ci95"] or [v, v])[1] - v for n, v in zip(names, values, strict=True)]
    ax.bar(range(len(names)), values, color=colour, yerr=[low, high], capsize=3, ecolor="#333333")
    ax.set_xticks(range(len(names)), [f"{n}\n(n={groups[n]['n']})" for n in names], fontsize=7)
    ax.set_ylim(0, 100)


def _by_type(doc: Mapping[str, Any], _scores: Sequence[QuestionScore], _zooms: Sequence[QuestionZoom]) -> Any:
    by_type = doc["by_type"]
    acc = [t for t, v in by_type.items() if not math.isnan(v["accuracy"])]
    miou = [t for t, v in by_type.items() if not math.isnan(v["mIoU"])]
    if not acc and not miou:
        return None
    panels = [(names, key) for names, key in ((acc, "accuracy"), (miou, "mIoU")) if names]
    fig, axes = _figure(doc, "by question type, 95% intervals (Wilson; bootstrap)", len(panels))
    for ax, (names, key) in zip(axes, panels, strict=True):
        _bars(ax, names, by_type, key, "#55a868" if key == "accuracy" else "#4c72b0")
        ax.set_ylabel("accuracy, strict (%)" if key == "accuracy" else "mIoU (%)")
        chance = doc["chance_accuracy"]
        if key == "accuracy" and chance is not None:
            ax.axhline(chance, color="#c44e52", linestyle="--", linewidth=1, label=f"chance {chance:.1f}%")
            ax.legend(fontsize=8)
    return fig


def _zoom_rounds(doc: Mapping[str, Any], scores: Sequence[QuestionScore], zooms: Sequence[QuestionZoom]) -> Any:
    rounds = {int(k): v for k, v in doc["rounds"].items()}
    calls = {int(k): v for k, v in doc["zoom_calls"].items()}
    if not rounds and not calls:
        return None
    n = sum(rounds.values())
    fig, (left, right) = _figure(doc, f"zooms per question, n={n}", 2)
    top = max([*rounds, *calls, 1])
    xs = list(range(top + 1))
    width = 0.4
    for offset, counts, label, colour in ((-width / 2, rounds, "zoom rounds", "#c44e52"),
                                           (width / 2, calls, "zoom calls (windows)", "#8172b3")):  # fmt: skip
        heights = [counts.get(x, 0) for x in xs]
        bars = left.bar([x + offset for x in xs], heights, width=width, color=colour, label=label)
        left.bar_label(bars, labels=[str(h) if h else "" for h in heights], fontsize=7)
    left.set_xticks(xs)
    left.set_ylim(0, max([*rounds.values(), *calls.values()]) * 1.12)  # room for the count labels
    left.set_xlabel("per question")
    left.set_ylabel("questions")
    left.legend(fontsize=8)
    ious = [z.iou for z in zooms if z.iou is not None]
    right.hist(ious, bins=_BINS, color="#8172b3", edgecolor="white")
    z = doc["zoom"]
    if ious:
        ci = z["mean_iou_ci95"]
        label = f"mean {z['mean_iou']:.1f}" + (f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else "")
        right.axvline(z["mean_iou"] / 100, color="black", linestyle="--", linewidth=1, label=label)
        right.legend(fontsize=8)
    right.set_xlim(0, 1)
    right.set_xlabel(f"best zoom window vs truth, IoU (n={len(ious)})")
    right.set_ylabel("questions")
    return fig
