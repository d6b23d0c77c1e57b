"""Benchmark metrics identical to the official evaluators (docs/method.md §5).

Every percentage is returned unrounded (the official scripts print one or two decimals).
Each function also reports how many questions it scored (``n``) and how many had no
prediction (``missing``): by default a missing prediction counts as 0, never silently
shrinking the denominator; ``missing="drop"`` reproduces the official scripts that skip them.
With nothing to score, the percentages are NaN.

What was matched, and where our choices differ, per benchmark:

NExT-GQA — ``code/TempGQA/eval_ground.py`` (doc-doc/NExT-GQA), ``get_tIoU`` + ``eval_ground``:
- per question, max IoU and max IoP over the gt segments, separately, each starting at 0;
- a zero-length prediction scores IoU 0 and IoP 1 inside a gt segment (closed ends), else 0;
- the official overlap is not clamped (negative when apart), but the running max starts at
  0, so a negative value never counts: the same as `zoom_agent.spans` (which clamps at 0);
- a reversed prediction (start > end) scores IoU 0 and IoP 0 there (its IoP branch needs
  end > start); `spans.iop` would treat it as a point, so it is special-cased here;
- thresholds ``>=``; Acc@GQA = answer correct AND IoP >= 0.5; sums run in gt order and are
  divided as ``total / n * 100``, as the script does, so values match to the last bit;
- the script skips questions without a prediction (``missing="drop"``); predictions beyond
  the duration are scored as they are (no clamping), as there.

ReXTime — ``evaluation/rextime_eval.py`` (ReXTime/ReXTime, from Moment-DETR):
- only the first predicted window (``[:2]`` drops a score); the gt window is the argmax of
  the IoU with it, then that pair's IoU is scored. For valid windows this equals the max IoU
  over gt windows (the two IoU forms it uses agree whenever the windows overlap, and are 0
  otherwise), which is what is computed here;
- means via ``numpy.mean`` in the predictions' order, as there (pairwise summation);
- the script prints mIoU and R1 in percent (rounded to 2 decimals) but VQA accuracy and
  "VQA,mIoU@t" (answer correct AND IoU >= t) as fractions: all are percent here;
- the script reports VQA accuracy only for answer-only submissions; ``Acc`` is always given;
- it asserts that submission and gt qids match; here missing ones count 0 (or "drop").

Open-ended questions (no options) have no official script either: normalised exact match and
token F1 as SQuAD's ``evaluate-v1.1.py`` computes them (lower case, punctuation and articles
removed), the best over the reference answers, as open-ended VideoQA evaluations report them.

Charades-STA has no official script; the usual R1@{0.3,0.5,0.7} and mIoU of the top-1 window
(IoU as in Moment-DETR, ``>=``; 2D-TAN's code uses ``>``: ``inclusive=False``).
"""

from __future__ import annotations

import math
import numbers
import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from zoom_agent import spans
from zoom_agent.types import OPTION_LETTERS, Question

__all__ = [
    "answer_f1",
    "charades_metrics",
    "multiple_choice_metrics",
    "nextgqa_gt_from_questions",
    "nextgqa_metrics",
    "nextgqa_question_scores",
    "normalize_answer",
    "open_ended_metrics",
    "rextime_gt_from_questions",
    "rextime_metrics",
]

Missing = Literal["zero", "drop"]
Interval = tuple[float, float]


def _interval(value: Any, what: str, *, exact: bool = True) -> Interval:
    """A finite ``(start, end)`` pair (``exact=False``: extra items, e.g. a score, ignored)."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or len(value) < 2:
        raise ValueError(f"{what}: expected [start, end] in seconds, got {value!r}")
    if exact and len(value) != 2:
        raise ValueError(f"{what}: expected exactly [start, end], got {value!r}")
    start, end = value[0], value[1]
    for v in (start, end):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            raise ValueError(f"{what}: bounds must be finite numbers, got {value!r}")
    return float(start), float(end)


def _check_mode(missing: str) -> None:
    if missing not in ("zero", "drop"):
        raise ValueError(f"missing must be 'zero' or 'drop', got {missing!r}")


def _percent(count: float, n: int) -> float:
    return count / n * 100 if n else math.nan


def nextgqa_question_scores(gt_segments: Iterable[Sequence[float]], pred: Sequence[float]) -> Interval:
    """Max IoU and max IoP of one predicted span over a question's gt segments.

    Args:
        gt_segments: the question's ``[[start, end], ...]`` from gsub.
        pred: the predicted ``[start, end]`` in seconds.

    Returns:
        ``(iou, iop)``, each in [0, 1], with the official semantics (module docstring).
    """
    p = _interval(pred, "NExT-GQA prediction")
    if p[0] > p[1]:  # official IoP needs end > start; its IoU is negative, so max stays 0
        return 0.0, 0.0
    best_iou = best_iop = 0.0
    for seg in gt_segments:
        g = _interval(seg, "NExT-GQA gt segment")
        best_iou = max(best_iou, spans.iou(p, g))
        best_iop = max(best_iop, spans.iop(p, g))
    return best_iou, best_iop


def nextgqa_metrics(
    gt: Mapping[str, Mapping[str, Any]],
    predictions: Mapping[str, Sequence[float]],
    correct: Mapping[str, bool],
    *,
    missing: Missing = "zero",
) -> dict[str, float]:
    """NExT-GQA grounding and QA metrics, as ``eval_ground.py`` computes them.

    Args:
        gt: the gsub JSON: ``{video_id: {"duration", "location": {qid: [[s, e], ...]}}}``.
        predictions: ``{f"{video_id}_{qid}": [start, end]}`` in seconds (one span each).
        correct: ``{key: bool}``, whether the answer was right; an absent key counts wrong
            and is counted in ``missing_answers``.
        missing: "zero" scores a question without a prediction as 0; "drop" skips it, as
            the official script does (its answer then is not counted either).

    Returns:
        ``mIoU, IoU@0.3, IoU@0.5, mIoP, IoP@0.3, IoP@0.5, Acc@QA, Acc@GQA`` in percent, and
        ``n`` (questions scored), ``missing`` (without a prediction), ``missing_answers``,
        ``extra`` (prediction keys not in gt).
    """
    _check_mode(missing)
    n = n_missing = no_answer = 0
    sum_iou = sum_iop = 0.0
    iou3 = iou5 = iop3 = iop5 = qa = gqa = 0
    keys: set[str] = set()
    for vid, entry in gt.items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("location"), Mapping):
            raise ValueError(f"gt[{vid!r}]: expected the gsub shape {{'location': {{qid: [[s, e]]}}}}")
        for qid, segments in entry["location"].items():
            key = f"{vid}_{qid}"
            keys.add(key)
            if key not in predictions:
                n_missing += 1
                if missing == "drop":
                    continue
                iou, iop = 0.0, 0.0
            else:
                iou, iop = nextgqa_question_scores(segments, predictions[key])
            ok = correct.get(key)
            if ok is None:
                no_answer += 1
            elif ok not in (True, False):  # bool, numpy bool or 0/1
                raise ValueError(f"correct[{key!r}] must be a bool, got {ok!r}")
            n += 1
            sum_iou += iou
            sum_iop += iop
            iou3, iou5 = iou3 + (iou >= 0.3), iou5 + (iou >= 0.5)
            iop3, iop5 = iop3 + (iop >= 0.3), iop5 + (iop >= 0.5)
            qa += bool(ok)
            gqa += bool(ok) and iop >= 0.5
    return {
        "mIoU": _percent(sum_iou, n),
        "IoU@0.3": _percent(iou3, n),
        "IoU@0.5": _percent(iou5, n),
        "mIoP": _percent(sum_iop, n),
        "IoP@0.3": _percent(iop3, n),
        "IoP@0.5": _percent(iop5, n),
        "Acc@QA": _percent(qa, n),
        "Acc@GQA": _percent(gqa, n),
        "n": n,
        "missing": n_missing,
        "missing_answers": no_answer,
        "extra": sum(1 for k in predictions if k not in keys),
    }


def _best_iou(pred: Interval, gts: Iterable[Interval]) -> float:
    return max((spans.iou(pred, g) for g in gts), default=0.0)


def _mean_percent(values: list[float]) -> float:
    import numpy as np  # the official scripts average with numpy (pairwise summation)

    return float(np.mean(np.asarray(values, dtype=np.float64)) * 100) if values else math.nan


def _first_window(row: Mapping[str, Any], qid: str) -> Interval | None:
    windows = row.get("pred_relevant_windows")
    if windows is None or (isinstance(windows, Sequence) and len(windows) == 0):
        return None
    if not isinstance(windows, Sequence) or isinstance(windows, str):
        raise ValueError(f"prediction {qid!r}: 'pred_relevant_windows' must be a list of [start, end]")
    return _interval(windows[0], f"prediction {qid!r} first window", exact=False)


def rextime_metrics(
    gt_items: Iterable[Mapping[str, Any]],
    predictions: Mapping[str, Mapping[str, Any]],
    *,
    missing: Missing = "zero",
) -> dict[str, float]:
    """ReXTime grounding + answer metrics, as ``rextime_eval.py`` computes them.

    Args:
        gt_items: rows of the benchmark jsonl: ``qid``, ``relevant_windows``, ``ans`` (letter).
        predictions: ``{qid: {"pred_relevant_windows": [[s, e, (score)], ...], "ans": "A"}}``,
            the official submission rows keyed by qid. No window scores IoU 0; no ``ans``
            (or None) is a wrong answer.
        missing: "zero" scores an absent qid as IoU 0 and wrong; "drop" skips it (the
            official ``match_number=False``).

    Returns:
        ``mIoU, R1@0.3, R1@0.5, R1@0.7, Acc, Acc@IoU0.5`` in percent, ``n``, ``missing``, ``extra``.
    """
    _check_mode(missing)
    gt = {str(row["qid"]): row for row in gt_items}
    # Official order: the submission's (np.mean's pairwise sum depends on it); absent ones last.
    order = [q for q in predictions if q in gt]
    absent = [q for q in gt if q not in predictions]
    ious: list[float] = []
    right = right_at5 = 0
    for qid in order + ([] if missing == "drop" else absent):
        row = predictions.get(qid, {})
        window = _first_window(row, qid)
        gts = [_interval(w, f"gt {qid!r} window") for w in gt[qid]["relevant_windows"]]
        iou = 0.0 if window is None else _best_iou(window, gts)
        ok = row.get("ans") is not None and row.get("ans") == gt[qid].get("ans")
        ious.append(iou)
        right += ok
        right_at5 += ok and iou >= 0.5
    n = len(ious)
    return {
        "mIoU": _mean_percent(ious),
        "R1@0.3": _percent(sum(i >= 0.3 for i in ious), n),
        "R1@0.5": _percent(sum(i >= 0.5 for i in ious), n),
        "R1@0.7": _percent(sum(i >= 0.7 for i in ious), n),
        "Acc": _percent(right, n),
        "Acc@IoU0.5": _percent(right_at5, n),
        "n": n,
        "missing": len(absent),
        "extra": sum(1 for q in predictions if q not in gt),
    }


def charades_metrics(
    gt: Mapping[str, Sequence[float]],
    predictions: Mapping[str, Sequence[float]],
    *,
    missing: Missing = "zero",
    inclusive: bool = True,
) -> dict[str, float]:
    """Charades-STA top-1 recall at IoU thresholds and mean IoU.

    Args:
        gt: ``{id: [start, end]}`` (the annotated span).
        predictions: ``{id: [start, end]}`` (the top-1 predicted span).
        missing: "zero" scores an absent id as IoU 0; "drop" skips it.
        inclusive: thresholds as ``IoU >= t`` (Moment-DETR style); False for ``>`` (2D-TAN).

    Returns:
        ``R1@0.3, R1@0.5, R1@0.7, mIoU`` in percent, ``n``, ``missing``, ``extra``.
    """
    _check_mode(missing)
    ious: list[float] = []
    n_missing = 0
    for key, span in gt.items():
        g = _interval(span, f"gt {key!r}")
        if key not in predictions:
            n_missing += 1
            if missing == "zero":
                ious.append(0.0)
            continue
        ious.append(spans.iou(_interval(predictions[key], f"prediction {key!r}"), g))

    def recall(t: float) -> float:
        return _percent(sum((i >= t) if inclusive else (i > t) for i in ious), len(ious))

    return {
        "R1@0.3": recall(0.3),
        "R1@0.5": recall(0.5),
        "R1@0.7": recall(0.7),
        "mIoU": _mean_percent(ious),
        "n": len(ious),
        "missing": n_missing,
        "extra": sum(1 for k in predictions if k not in gt),
    }


def multiple_choice_metrics(
    gt: Mapping[str, str],
    strict: Mapping[str, str | None],
    lenient: Mapping[str, str | None],
) -> dict[str, float]:
    """Multiple-choice accuracy: strict parse as the headline, lenient beside it.

    A parse failure (None) is wrong and counted; nothing is ever guessed.

    Args:
        gt: ``{id: letter}`` of every question.
        strict: ``{id: letter or None}`` from the strict ``<answer>X</answer>`` parse.
        lenient: ``{id: letter or None}`` from the lenient parse.

    Returns:
        ``accuracy`` (strict) and ``accuracy_lenient`` in percent, ``n``,
        ``parse_failures`` / ``parse_failures_lenient`` (None answers), ``missing`` (ids with
        no entry in ``strict`` or ``lenient``, counted wrong), ``extra``.
    """
    for key, letter in gt.items():
        if not (isinstance(letter, str) and len(letter) == 1 and letter in OPTION_LETTERS):
            raise ValueError(f"gt[{key!r}] must be one option letter A-Z, got {letter!r}")
    n = len(gt)
    return {
        "accuracy": _percent(sum(strict.get(k) == v for k, v in gt.items()), n),
        "accuracy_lenient": _percent(sum(lenient.get(k) == v for k, v in gt.items()), n),
        "n": n,
        "parse_failures": sum(1 for k in gt if k in strict and strict[k] is None),
        "parse_failures_lenient": sum(1 for k in gt if k in lenient and lenient[k] is None),
        "missing": sum(1 for k in gt if k not in strict or k not in lenient),
        "extra": sum(1 for k in {*strict, *lenient} if k not in gt),
    }


_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD's answer normalisation: lower case, punctuation and the articles a/an/the
    removed, blanks collapsed (``"The Red car!"`` -> ``"red car"``)."""
    text = "".join(ch for ch in text.lower() if ch not in string.punctuation)
    return " ".join(_ARTICLES.sub(" ", text).split())


def answer_f1(prediction: str, reference: str) -> float:
    """SQuAD's token F1 of two answers after `normalize_answer`: precision and recall of the
    shared tokens (with multiplicity); 1 when both are empty, 0 when one is."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def open_ended_metrics(
    gt: Mapping[str, Sequence[str]], predictions: Mapping[str, str | None], *, missing: Missing = "zero"
) -> dict[str, float]:
    """Open-ended answers scored as in SQuAD-style open-ended VideoQA: normalised exact match
    and token F1 (`normalize_answer`, `answer_f1`), each the best over a question's
    reference answers, averaged over the questions.

    Args:
        gt: ``{id: reference answers}`` (at least one each).
        predictions: ``{id: free-text answer, or None when unanswered}`` (None scores 0).
        missing: ``"zero"`` (an id without a prediction scores 0) or ``"drop"``.

    Returns:
        ``EM`` and ``F1`` in percent, ``n`` (questions scored), ``unanswered`` (None
        predictions), ``missing``, ``extra``.
    """
    _check_mode(missing)
    em: list[float] = []
    f1: list[float] = []
    for key, refs in gt.items():
        if isinstance(refs, str) or not refs or not all(isinstance(r, str) for r in refs):
            raise ValueError(f"gt[{key!r}] must be a non-empty list of reference answers, got {refs!r}")
        if key not in predictions and missing == "drop":
            continue
        pred = predictions.get(key)
        em.append(0.0 if pred is None else max(float(normalize_answer(pred) == normalize_answer(r)) for r in refs))
        f1.append(0.0 if pred is None else max(answer_f1(pred, r) for r in refs))
    return {
        "EM": _percent(sum(em), len(em)),
        "F1": _percent(sum(f1), len(f1)),
        "n": len(em),
        "unanswered": sum(1 for k in gt if k in predictions and predictions[k] is None),
        "missing": sum(1 for k in gt if k not in predictions),
        "extra": sum(1 for k in predictions if k not in gt),
    }


def nextgqa_gt_from_questions(questions: Iterable[Question]) -> dict[str, dict[str, Any]]:
    """Rebuild the gsub shape from loaded NExT-GQA questions (id ``f"{video_id}_{qid}"``).

    Videos and qids follow the questions' order, not gsub's; since the official mean is a
    running sum, values can differ from a run on the gsub file in the last bits (~1e-14).

    Args:
        questions: NExT-GQA questions with gt spans and duration.

    Returns:
        ``{video_id: {"duration": d, "location": {qid: [[s, e], ...]}}}``.
    """
    out: dict[str, dict[str, Any]] = {}
    for q in questions:
        vid, sep, qid = q.id.rpartition("_")
        if not sep or not q.gt_spans:
            raise ValueError(f"question {q.id!r}: expected id 'videoid_qid' and gt spans")
        entry = out.setdefault(vid, {"duration": q.duration, "location": {}})
        entry["location"][qid] = [[s.start, s.end] for s in q.gt_spans]
    return out


def rextime_gt_from_questions(questions: Iterable[Question]) -> list[dict[str, Any]]:
    """ReXTime gt rows (``qid``, ``relevant_windows``, ``ans`` when the answer is known).

    Args:
        questions: ReXTime questions; without options their answer letter is unknown, and
            ``Acc`` then counts every answer wrong (use the benchmark jsonl as gt instead).

    Returns:
        Rows for `rextime_metrics`.
    """
    return [
        {
            "qid": q.id,
            "relevant_windows": [[s.start, s.end] for s in q.gt_spans],
            "ans": q.answer_letter,
        }
        for q in questions
    ]
