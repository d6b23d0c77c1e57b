"""Hand-made edge cases for the benchmark metrics (official semantics, docs/method.md §5)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from zoom_agent.metrics import (
    charades_metrics,
    multiple_choice_metrics,
    nextgqa_gt_from_questions,
    nextgqa_metrics,
    nextgqa_question_scores,
    rextime_gt_from_questions,
    rextime_metrics,
)
from zoom_agent.types import Question, Span


def _gt(**questions: list[list[float]]) -> dict:
    """One video "v" whose qids are the keyword names: {"v": {"location": {...}}}."""
    return {"v": {"duration": 30, "fps": 30.0, "location": dict(questions)}}


# ---------------------------------------------------------------- NExT-GQA, one question
@pytest.mark.parametrize(
    ("pred", "expected"),
    [
        ([5.0, 5.0], (0.0, 1.0)),  # zero length inside: IoU 0, IoP 1
        ([4.0, 4.0], (0.0, 1.0)),  # on the closed start edge
        ([8.0, 8.0], (0.0, 1.0)),  # on the closed end edge
        ([9.0, 9.0], (0.0, 0.0)),  # zero length outside
        ([10.0, 12.0], (0.0, 0.0)),  # no overlap
        ([8.0, 12.0], (0.0, 0.0)),  # touching: zero overlap
        ([4.0, 8.0], (1.0, 1.0)),  # exact
        ([6.0, 10.0], (2 / 6, 0.5)),  # IoP exactly 0.5
        ([2.0, 6.0], (2 / 6, 0.5)),
        ([5.0, 6.0], (0.25, 1.0)),  # inside
        ([6.0, 5.0], (0.0, 0.0)),  # reversed: the official IoP needs end > start
    ],
)
def test_nextgqa_question_scores_one_segment(pred: list[float], expected: tuple[float, float]) -> None:
    assert nextgqa_question_scores([[4.0, 8.0]], pred) == expected


def test_nextgqa_max_over_segments_taken_separately() -> None:
    # pred [3, 5.5] vs [0, 4]: IoU 1/5.5, IoP 1/2.5; vs [5, 5.5]: IoU 0.5/2.5, IoP 0.5/2.5.
    # The best IoU comes from the second segment, the best IoP from the first.
    assert nextgqa_question_scores([[0.0, 4.0]], [3.0, 5.5]) == (1 / 5.5, 1 / 2.5)
    assert nextgqa_question_scores([[5.0, 5.5]], [3.0, 5.5]) == (0.5 / 2.5, 0.5 / 2.5)
    assert nextgqa_question_scores([[0.0, 4.0], [5.0, 5.5]], [3.0, 5.5]) == (0.5 / 2.5, 1 / 2.5)


def test_nextgqa_prediction_beyond_duration_is_not_clamped() -> None:
    # gt ends at the 30 s duration; a prediction to 40 s keeps its full length, as there
    assert nextgqa_question_scores([[20.0, 30.0]], [25.0, 40.0]) == (5 / 20, 5 / 15)


@pytest.mark.parametrize("pred", [[1.0], [1.0, 2.0, 3.0], "1-2", [math.nan, 2.0], [0.0, math.inf], [True, 2.0], None])
def test_nextgqa_bad_prediction_is_a_clear_error(pred: object) -> None:
    with pytest.raises(ValueError, match="NExT-GQA prediction"):
        nextgqa_question_scores([[0.0, 1.0]], pred)  # type: ignore[arg-type]


# ---------------------------------------------------------------- NExT-GQA, aggregate
def test_nextgqa_aggregate_by_hand() -> None:
    gt = _gt(**{"0": [[4.0, 8.0]], "1": [[0.0, 10.0]], "2": [[0.0, 10.0], [20.0, 30.0]], "3": [[1.0, 2.0]]})
    preds = {"v_0": [6.0, 10.0], "v_1": [0.0, 10.0], "v_2": [25.0, 26.0]}  # v_3 missing
    correct = {"v_0": True, "v_1": False, "v_2": True, "v_3": True}
    zero = nextgqa_metrics(gt, preds, correct)
    # per question (IoU, IoP): v_0 (1/3, 0.5), v_1 (1, 1), v_2 (0.1, 1), v_3 missing (0, 0)
    assert zero["n"] == 4 and zero["missing"] == 1 and zero["extra"] == 0
    assert zero["mIoU"] == (1 / 3 + 1 + 0.1) / 4 * 100
    assert zero["mIoP"] == (0.5 + 1 + 1) / 4 * 100
    assert zero["IoU@0.3"] == 50.0 and zero["IoU@0.5"] == 25.0
    assert zero["IoP@0.3"] == 75.0 and zero["IoP@0.5"] == 75.0
    assert zero["Acc@QA"] == 75.0  # v_3's answer is right though its span is missing
    assert zero["Acc@GQA"] == 50.0  # v_0 (IoP exactly 0.5) and v_2
    drop = nextgqa_metrics(gt, preds, correct, missing="drop")
    assert drop["n"] == 3 and drop["missing"] == 1
    assert drop["mIoU"] == (1 / 3 + 1 + 0.1) / 3 * 100
    assert drop["Acc@QA"] == pytest.approx(200 / 3) and drop["Acc@GQA"] == pytest.approx(200 / 3)


def test_nextgqa_missing_answers_and_extra_keys_are_counted() -> None:
    gt = _gt(**{"1": [[0.0, 1.0]]})
    out = nextgqa_metrics(gt, {"v_1": [0.0, 1.0], "w_9": [0.0, 1.0]}, {})
    assert out["missing_answers"] == 1 and out["Acc@QA"] == 0.0 and out["Acc@GQA"] == 0.0
    assert out["mIoU"] == 100.0 and out["extra"] == 1


def test_nextgqa_nothing_to_score_gives_nan_not_an_error() -> None:
    out = nextgqa_metrics(_gt(**{"1": [[0.0, 1.0]]}), {}, {}, missing="drop")
    assert out["n"] == 0 and out["missing"] == 1 and math.isnan(out["mIoU"])


def test_nextgqa_rejects_bad_inputs() -> None:
    gt = _gt(**{"1": [[0.0, 1.0]]})
    with pytest.raises(ValueError, match="must be a bool"):
        nextgqa_metrics(gt, {"v_1": [0.0, 1.0]}, {"v_1": "yes"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="missing must be"):
        nextgqa_metrics(gt, {}, {}, missing="skip")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="gsub shape"):
        nextgqa_metrics({"v": {"duration": 3}}, {}, {})
    numpy_answers: dict[str, Any] = {"v_1": np.bool_(True)}
    assert nextgqa_metrics(gt, {"v_1": [0.0, 1.0]}, numpy_answers)["Acc@QA"] == 100.0


def test_nextgqa_gt_from_questions_round_trip() -> None:
    qs = [
        Question(id="123_4", video="/v.mp4", question="q", gt_spans=(Span(start=1, end=2),), duration=9),
        Question(id="123_7", video="/v.mp4", question="q", gt_spans=(Span(start=0, end=1), Span(start=3, end=4))),
    ]
    gt = nextgqa_gt_from_questions(qs)
    assert gt == {"123": {"duration": 9.0, "location": {"4": [[1.0, 2.0]], "7": [[0.0, 1.0], [3.0, 4.0]]}}}
    with pytest.raises(ValueError, match="videoid_qid"):
        nextgqa_gt_from_questions([Question(id="nounderscore", video="/v", question="q")])


# ---------------------------------------------------------------- ReXTime
def _rx(qid: str, windows: list[list[float]], ans: str = "A") -> dict:
    return {"qid": qid, "relevant_windows": windows, "ans": ans, "duration": 100, "vid": "x", "query": "?"}


def test_rextime_first_window_and_best_gt_window() -> None:
    gt = [_rx("a", [[0.0, 10.0], [20.0, 30.0]]), _rx("b", [[0.0, 10.0]], "B")]
    preds: dict[str, dict[str, Any]] = {
        # first window hits the second gt window exactly; the later perfect window is ignored
        "a": {"pred_relevant_windows": [[20.0, 30.0, 0.9], [0.0, 10.0, 0.1]], "ans": "A"},
        "b": {"pred_relevant_windows": [[5.0, 10.0], [0.0, 10.0]], "ans": "C"},
    }
    out = rextime_metrics(gt, preds)
    assert out["mIoU"] == (1.0 + 0.5) / 2 * 100
    assert out["R1@0.3"] == 100.0 and out["R1@0.5"] == 100.0 and out["R1@0.7"] == 50.0
    assert out["Acc"] == 50.0 and out["Acc@IoU0.5"] == 50.0
    assert out["n"] == 2 and out["missing"] == 0


def test_rextime_missing_modes_and_empty_or_unanswered_predictions() -> None:
    gt = [_rx("a", [[0.0, 10.0]]), _rx("b", [[0.0, 10.0]]), _rx("c", [[0.0, 10.0]])]
    preds: dict[str, dict[str, Any]] = {
        "a": {"pred_relevant_windows": [[0.0, 10.0]], "ans": None},
        "b": {"pred_relevant_windows": []},
    }
    zero = rextime_metrics(gt, preds)
    assert zero["n"] == 3 and zero["missing"] == 1
    assert zero["mIoU"] == pytest.approx(100 / 3) and zero["Acc"] == 0.0
    drop = rextime_metrics(gt, preds, missing="drop")
    assert drop["n"] == 2 and drop["mIoU"] == 50.0
    with pytest.raises(ValueError, match="first window"):
        rextime_metrics(gt, {"a": {"pred_relevant_windows": [["x", 1]]}})


def test_rextime_zero_length_and_reversed_windows() -> None:
    gt = [_rx("a", [[5.0, 5.0]]), _rx("b", [[0.0, 10.0]])]
    preds: dict[str, dict[str, Any]] = {
        "a": {"pred_relevant_windows": [[5.0, 5.0]], "ans": "A"},
        "b": {"pred_relevant_windows": [[8, 2]]},
    }
    out = rextime_metrics(gt, preds)
    assert out["mIoU"] == 0.0 and out["Acc"] == 50.0 and out["Acc@IoU0.5"] == 0.0


def test_rextime_gt_from_questions() -> None:
    q = Question(id="anet_1", video="/v", question="?", options=("x", "y"), answer=1, gt_spans=(Span(start=1, end=2),))
    assert rextime_gt_from_questions([q]) == [{"qid": "anet_1", "relevant_windows": [[1.0, 2.0]], "ans": "B"}]


# ---------------------------------------------------------------- Charades-STA
def test_charades_thresholds_inclusive_and_strict() -> None:
    gt = {"a": [0.0, 10.0], "b": [0.0, 10.0], "c": [0.0, 10.0]}
    preds = {"a": [0.0, 5.0], "b": [0.0, 10.0]}  # IoU exactly 0.5 and 1; c missing
    out = charades_metrics(gt, preds)
    assert out["R1@0.5"] == pytest.approx(200 / 3) and out["R1@0.7"] == pytest.approx(100 / 3)
    assert out["mIoU"] == 50.0 and out["missing"] == 1 and out["n"] == 3
    strict = charades_metrics(gt, preds, inclusive=False)
    assert strict["R1@0.5"] == pytest.approx(100 / 3)
    drop = charades_metrics(gt, preds, missing="drop")
    assert drop["n"] == 2 and drop["mIoU"] == 75.0
    beyond = charades_metrics({"a": [20.0, 30.0]}, {"a": [25.0, 40.0]})  # not clamped
    assert beyond["mIoU"] == pytest.approx(25.0)
    with pytest.raises(ValueError, match="prediction 'a'"):
        charades_metrics(gt, {"a": [0.0, math.nan]})


# ---------------------------------------------------------------- multiple choice
def test_multiple_choice_counts_failures_and_never_guesses() -> None:
    gt = {"1": "A", "2": "B", "3": "C", "4": "D"}
    strict = {"1": "A", "2": None, "3": "C"}  # 4 missing
    lenient = {"1": "A", "2": "B", "3": None, "4": "D"}
    out = multiple_choice_metrics(gt, strict, lenient)
    assert out["accuracy"] == 50.0 and out["accuracy_lenient"] == 75.0
    assert out["parse_failures"] == 1 and out["parse_failures_lenient"] == 1
    assert out["missing"] == 1 and out["n"] == 4 and out["extra"] == 0
    with pytest.raises(ValueError, match="one option letter"):
        multiple_choice_metrics({"1": "AB"}, {}, {})
    assert math.isnan(multiple_choice_metrics({}, {}, {})["accuracy"])
