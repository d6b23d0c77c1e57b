"""Metrics against slow references written from the official evaluators' semantics.

The references below restate, plainly and independently of zoom_agent, what the official
scripts compute: NExT-GQA ``code/TempGQA/eval_ground.py`` (get_tIoU + eval_ground) and
ReXTime ``evaluation/rextime_eval.py`` (compute_gqa_r1 with Moment-DETR's IoU helpers).
They run on the real annotation files in ../shared/data with seeded random predictions,
and the results must be equal to the last bit.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import SHARED_DATA

from zoom_agent.metrics import (
    charades_metrics,
    multiple_choice_metrics,
    nextgqa_metrics,
    rextime_metrics,
)

DATA = SHARED_DATA
LETTERS = "ABCDE"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared data folder is not in this checkout)")
    return path


def _gsub(split: str) -> dict[str, Any]:
    return json.loads(_need(DATA / "nextgqa" / f"gsub_{split}.json").read_text())


def _rextime_rows() -> list[dict[str, Any]]:
    path = _need(DATA / "rextime" / "rextime_val.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------- random predictions
def _random_span(rng: random.Random, duration: float, gts: list[list[float]]) -> list[float]:
    """A mix that reaches every branch: random, zero-length, reversed, on gt edges, past the end."""
    kind = rng.random()
    g = rng.choice(gts)
    if kind < 0.10:
        return list(g)  # exact hit
    if kind < 0.18:
        t = rng.choice([g[0], g[1], rng.uniform(-2, duration + 2)])
        return [t, t]  # zero length, sometimes on a closed gt edge
    if kind < 0.24:
        a, b = sorted(rng.uniform(0, duration) for _ in range(2))
        return [b, a]  # reversed
    if kind < 0.34:
        return [round(rng.uniform(0, duration), 1), round(duration + rng.uniform(0, 10), 1)]
    if kind < 0.50:  # near a gt segment, on the 0.1 s grid the annotations use
        return [round(g[0] + rng.uniform(-3, 3), 1), round(g[1] + rng.uniform(-3, 3), 1)]
    a, b = sorted(rng.uniform(-3, duration + 3) for _ in range(2))
    return [a, b]


def _nextgqa_predictions(gt: dict[str, Any], seed: int, p_missing: float) -> tuple[dict, dict]:
    rng = random.Random(seed)
    preds: dict[str, list[float]] = {}
    correct: dict[str, bool] = {}
    for vid, entry in gt.items():
        for qid, segs in entry["location"].items():
            key = f"{vid}_{qid}"
            correct[key] = rng.random() < 0.6
            if rng.random() >= p_missing:
                preds[key] = _random_span(rng, entry["duration"], segs)
    return preds, correct


# ---------------------------------------------------------------- NExT-GQA reference
def _official_tiou(loc: list[float], span: list[float]) -> tuple[float, float]:
    """IoU and IoP of one prediction against one gt segment, as the official get_tIoU."""
    if span[0] == span[-1]:
        inside = loc[0] <= span[0] and span[0] <= loc[1]
        return (0, 1) if inside else (0, 0)
    union_lo, union_hi = min(loc[0], span[0]), max(loc[-1], span[-1])
    overlap = min(loc[-1], span[-1]) - max(loc[0], span[0])  # not clamped: may be negative
    iou = overlap / (union_hi - union_lo) if union_hi > union_lo else 0.0
    iop = overlap / (span[-1] - span[0]) if span[-1] > span[0] else 0.0
    return iou, iop


def _official_nextgqa(gt: dict, preds: dict, correct: dict, count_missing: bool) -> dict[str, float]:
    total_iou: float = 0  # ints first, as there
    total_iop: float = 0
    cnt = gqa = qa = iou3 = iou5 = iop3 = iop5 = 0
    for vid, anno in gt.items():
        for qid, locs in anno["location"].items():
            key = f"{vid}_{qid}"
            if key not in preds and not count_missing:
                continue  # the official script skips questions without a prediction
            best_iou: float = 0  # int 0 first, as there
            best_iop: float = 0
            if key in preds:
                for loc in locs:
                    iou, iop = _official_tiou(loc, preds[key])
                    if iou > best_iou:
                        best_iou = iou
                    if iop > best_iop:
                        best_iop = iop
            if best_iop >= 0.3:
                iop3 += 1
                if best_iop >= 0.5:
                    iop5 += 1
                    if correct[key]:
                        gqa += 1
            if best_iou >= 0.3:
                iou3 += 1
                if best_iou >= 0.5:
                    iou5 += 1
            qa += correct[key]
            cnt += 1
            total_iou += best_iou
            total_iop += best_iop
    return {
        "mIoU": total_iou / cnt * 100,
        "mIoP": total_iop / cnt * 100,
        "IoP@0.3": iop3 * 1.0 / cnt * 100,
        "IoP@0.5": iop5 * 1.0 / cnt * 100,
        "IoU@0.3": iou3 * 1.0 / cnt * 100,
        "IoU@0.5": iou5 * 1.0 / cnt * 100,
        "Acc@GQA": gqa * 1.0 / cnt * 100,
        "Acc@QA": qa * 1.0 / cnt * 100,
        "n": cnt,
    }


@pytest.mark.parametrize("split", ["val", "test"])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("mode", ["drop", "zero"])
def test_nextgqa_matches_official(split: str, seed: int, mode: str) -> None:
    gt = _gsub(split)
    preds, correct = _nextgqa_predictions(gt, seed, p_missing=0.15)
    ours = nextgqa_metrics(gt, preds, correct, missing=mode)  # type: ignore[arg-type]
    ref = _official_nextgqa(gt, preds, correct, count_missing=mode == "zero")
    for name, value in ref.items():
        assert ours[name] == value, name  # exact: same operations in the same order
    total = sum(len(e["location"]) for e in gt.values())
    assert ours["missing"] == total - len(preds) > 0
    assert ours["n"] == (total if mode == "zero" else len(preds))
    # the official printout (one decimal) is reproduced too
    assert f"{ours['Acc@GQA']:.1f}" == f"{ref['Acc@GQA']:.1f}"


def test_nextgqa_full_coverage_modes_agree() -> None:
    gt = _gsub("val")
    preds, correct = _nextgqa_predictions(gt, seed=7, p_missing=0.0)
    assert nextgqa_metrics(gt, preds, correct, missing="zero") == nextgqa_metrics(gt, preds, correct, missing="drop")


# ---------------------------------------------------------------- ReXTime reference
def _cross_iou(spans1: np.ndarray, spans2: np.ndarray) -> np.ndarray:
    """Moment-DETR's compute_temporal_iou_batch_cross (true union; no zero guard)."""
    areas1 = spans1[:, 1] - spans1[:, 0]
    areas2 = spans2[:, 1] - spans2[:, 0]
    left = np.maximum(spans1[:, None, 0], spans2[None, :, 0])
    right = np.minimum(spans1[:, None, 1], spans2[None, :, 1])
    inter = np.clip(right - left, 0, None)
    union = areas1[:, None] + areas2[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / union


def _paired_iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Moment-DETR's compute_temporal_iou_batch_paired (hull as the union; 0 when empty)."""
    inter = np.maximum(0, np.minimum(pred[:, 1], gt[:, 1]) - np.maximum(pred[:, 0], gt[:, 0]))
    union = np.maximum(pred[:, 1], gt[:, 1]) - np.minimum(pred[:, 0], gt[:, 0])
    return np.divide(inter, union, out=np.zeros_like(inter), where=union != 0)


def _official_rextime(rows: list[dict], submission: list[dict]) -> dict[str, float]:
    pred_window = {d["qid"]: d["pred_relevant_windows"][0][:2] for d in submission}
    pred_ans = {d["qid"]: d["ans"] for d in submission}
    gt_window = {}
    for d in rows:
        ious = _cross_iou(np.array([pred_window[d["qid"]]]), np.array(d["relevant_windows"]))[0]
        gt_window[d["qid"]] = d["relevant_windows"][int(np.argmax(ious))]
    qids = list(pred_window)
    gt_ans = {d["qid"]: d["ans"] for d in rows}
    iou = _paired_iou(
        np.array([pred_window[q] for q in qids]).astype(float),
        np.array([gt_window[q] for q in qids]).astype(float),
    )
    hits = [pred_ans[q] == gt_ans[q] for q in qids]
    return {
        "mIoU": float(np.mean(iou) * 100),
        "R1@0.3": float(np.mean(iou >= 0.3) * 100),
        "R1@0.5": float(np.mean(iou >= 0.5) * 100),
        "R1@0.7": float(np.mean(iou >= 0.7) * 100),
        "Acc": sum(hits) / len(hits) * 100,  # the script's vqa_acc, as a fraction there
        "Acc@IoU0.5": sum(h and i >= 0.5 for h, i in zip(hits, iou, strict=True)) / len(hits) * 100,
    }


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_rextime_matches_official(seed: int) -> None:
    rows = _rextime_rows()
    rng = random.Random(seed)
    submission = []
    for d in rows:
        windows = []
        for _ in range(rng.randint(1, 3)):
            s, e = _random_span(rng, d["duration"], d["relevant_windows"])
            windows.append([s, e, rng.random()])  # with a score, as Moment-DETR writes
        submission.append({"qid": d["qid"], "pred_relevant_windows": windows, "ans": rng.choice("ABCD")})
    rng.shuffle(submission)  # the official mean follows the submission order
    ours = rextime_metrics(rows, {d["qid"]: d for d in submission})
    ref = _official_rextime(rows, submission)
    for name, value in ref.items():
        assert ours[name] == value, name
    assert ours["n"] == len(rows) == 921 and ours["missing"] == 0
    # what the official script prints: mIoU/R1 with 2 decimals
    assert float(f"{ours['mIoU']:.2f}") == float(f"{ref['mIoU']:.2f}")


def test_rextime_matches_official_with_several_gt_windows() -> None:
    """ReXTime's val windows are single; NExT-GQA's real multi-segment gt exercises the argmax."""
    gsub = _gsub("test")
    rows = [
        {"qid": f"{vid}_{qid}", "relevant_windows": segs, "ans": "A", "duration": e["duration"]}
        for vid, e in gsub.items()
        for qid, segs in e["location"].items()
        if len(segs) > 1
    ]
    assert len(rows) == 591
    rng = random.Random(9)
    submission = [
        {
            "qid": d["qid"],
            "pred_relevant_windows": [_random_span(rng, d["duration"], d["relevant_windows"])],
            "ans": rng.choice("AB"),
        }
        for d in rows
    ]
    ours = rextime_metrics(rows, {d["qid"]: d for d in submission})
    ref = _official_rextime(rows, submission)
    for name, value in ref.items():
        assert ours[name] == value, name


# ---------------------------------------------------------------- Charades, multiple choice
def test_charades_metrics_on_real_spans() -> None:
    """No Charades file is kept here: ReXTime's real windows serve as single-span gt."""
    rows = _rextime_rows()
    rng = random.Random(5)
    gt = {d["qid"]: d["relevant_windows"][0] for d in rows}
    preds = {d["qid"]: sorted(_random_span(rng, d["duration"], d["relevant_windows"])) for d in rows}
    ious = []
    for qid, (gs, ge) in gt.items():  # IoU with the hull as union, as Moment-DETR's paired IoU
        ps, pe = preds[qid]
        inter = max(0.0, min(pe, ge) - max(ps, gs))
        union = max(pe, ge) - min(ps, gs)
        ious.append(inter / union if union > 0 else 0.0)
    ours = charades_metrics(gt, preds)
    assert ours["mIoU"] == float(np.mean(np.array(ious)) * 100)
    for t in (0.3, 0.5, 0.7):
        assert ours[f"R1@{t}"] == sum(i >= t for i in ious) / len(ious) * 100
    strict = charades_metrics(gt, preds, inclusive=False)
    assert strict["R1@0.5"] == sum(i > 0.5 for i in ious) / len(ious) * 100


def test_multiple_choice_on_real_answers() -> None:
    import csv

    with _need(DATA / "nextgqa" / "test.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    gt = {}
    for r in rows:
        options = [r[f"a{i}"] for i in range(5)]
        gt[f"{r['video_id']}_{r['qid']}"] = LETTERS[options.index(r["answer"])]
    rng = random.Random(11)
    strict = {k: (None if rng.random() < 0.2 else rng.choice(LETTERS)) for k in gt}
    lenient = {k: (v if v is not None else rng.choice([None, *LETTERS])) for k, v in strict.items()}
    ours = multiple_choice_metrics(gt, strict, lenient)
    assert ours["accuracy"] == sum(strict[k] == v for k, v in gt.items()) / len(gt) * 100
    assert ours["accuracy_lenient"] == sum(lenient[k] == v for k, v in gt.items()) / len(gt) * 100
    assert ours["parse_failures"] == sum(v is None for v in strict.values())
    assert ours["parse_failures_lenient"] == sum(v is None for v in lenient.values())
    assert ours["n"] == len(gt) == 5553 and ours["missing"] == 0
