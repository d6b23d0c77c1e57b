"""Rewards of docs/method.md §3: each part on its own, the paper's total, the data filter."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zoom_agent import protocol
from zoom_agent.training.core.rewards import (
    PAPER_WEIGHTS,
    PARTS,
    answer_reward,
    difficulty_keep,
    format_reward,
    iou_reward,
    number_probe,
    total_reward,
    trajectory_rewards,
)
from zoom_agent.types import GroundedAnswer, Question, Span, TurnTrace

Q = Question(
    id="q",
    video="v.mp4",
    question="Which digit?",
    options=("1", "2", "3", "4"),
    answer=1,
    gt_spans=(Span(start=10.0, end=20.0),),
)
GOOD = protocol.format_answer("B", [(10.0, 20.0)], reasoning="seen at <time>(10, 20)</time>")
CALL = protocol.format_tool_call(9.0, 21.0, reasoning="look closer")


def _result(
    *texts: str, answer: str | None = "B", spans: tuple[Span, ...] = (Span(start=10, end=20),)
) -> GroundedAnswer:
    turns = tuple(TurnTrace(round=i, text=t) for i, t in enumerate(texts))
    status = "answered" if answer is not None else "unanswered"
    return GroundedAnswer(question_id="q", status=status, answer=answer, spans=spans if answer else (), turns=turns)


def test_format_reward_scores_each_turn_and_averages() -> None:
    assert format_reward([GOOD]) == 1.0
    assert format_reward([CALL, GOOD]) == 1.0
    assert format_reward(["garbage"]) == 0.0
    assert format_reward([CALL, "garbage"]) == 0.5
    assert format_reward([]) == 0.0
    invalid_span = protocol.format_answer("B", [(20.0, 10.0)])  # start > end: spans present, invalid
    assert format_reward([invalid_span]) == 0.5
    assert format_reward(["<think>x</think>\n<answer>B</answer>\n<glue>[(1, 2)]</glue>"], "zoomzero") == 1.0


def test_iou_reward_is_the_multi_span_iou_and_zero_when_undefined() -> None:
    gt = [Span(start=10, end=20)]
    assert iou_reward([(10, 20)], gt) == 1.0
    assert iou_reward([Span(start=15, end=25)], gt) == pytest.approx(5 / 15)
    assert iou_reward([(0, 5)], gt) == 0.0
    assert iou_reward([(10, 12), (11, 15), (18, 20)], gt) == pytest.approx(7 / 10)  # merged first
    assert iou_reward([], gt) == 0.0
    assert iou_reward([(10, 20)], []) == 0.0
    assert iou_reward([(math.nan, 20)], gt) == 0.0
    assert iou_reward([(12, 11)], gt) == 0.0
    assert iou_reward([(-1, 11)], gt) == 0.0


def test_answer_reward_never_credits_a_missing_answer() -> None:
    assert answer_reward("B", "B") == 1.0
    assert answer_reward("C", "B") == 0.0
    assert answer_reward(None, "B") == 0.0
    assert answer_reward("B", None) == 0.0


@given(st.lists(st.floats(0, 1), min_size=4, max_size=4))
def test_default_weights_give_the_papers_total(values: list[float]) -> None:
    fmt, iou, acc, zoom = values
    parts = {"format": fmt, "iou": iou, "answer": acc, "zoom": zoom, "number": 1.0}
    assert total_reward(parts, PAPER_WEIGHTS) == pytest.approx(((acc + zoom) / 2 + fmt + iou) / 3)


def test_total_reward_refuses_weights_for_unknown_parts() -> None:
    with pytest.raises(ValueError, match="not among"):
        total_reward({"format": 1.0}, {"format": 1.0, "bonus": 2.0})


def test_trajectory_rewards_of_a_good_two_turn_rollout() -> None:
    parts = trajectory_rewards(Q, _result(CALL, GOOD), zoom=1.0, weights=PAPER_WEIGHTS)
    assert set(parts) == {*PARTS, "total"}
    assert parts["format"] == parts["iou"] == parts["answer"] == parts["zoom"] == 1.0
    assert parts["total"] == pytest.approx(1.0)
    assert parts["number"] == 1.0  # the probe is computed but weighs nothing by default


def test_trajectory_rewards_of_failed_rollouts_are_zero() -> None:
    unanswered = trajectory_rewards(Q, _result("garbage", answer=None), zoom=1.0, weights=PAPER_WEIGHTS)
    assert unanswered == {"format": 0.0, "iou": 0.0, "answer": 0.0, "zoom": 0.0, "number": 0.0, "total": 0.0}
    error = GroundedAnswer(question_id="q", status="error", error="model failed")
    assert trajectory_rewards(Q, error, zoom=0.0, weights=PAPER_WEIGHTS)["total"] == 0.0
    wrong = trajectory_rewards(Q, _result(GOOD.replace(">B<", ">C<"), answer="C"), zoom=0.0, weights=PAPER_WEIGHTS)
    assert wrong["answer"] == 0.0 and wrong["iou"] == 1.0 and wrong["format"] == 1.0
    no_spans = trajectory_rewards(Q, _result(GOOD, spans=()), zoom=1.0, weights=PAPER_WEIGHTS)
    assert no_spans["zoom"] == 0.0 and no_spans["iou"] == 0.0  # no valid span: zoom reward 0
    with pytest.raises(ValueError, match="zoom reward"):
        trajectory_rewards(Q, _result(GOOD), zoom=2.0, weights=PAPER_WEIGHTS)


def test_rewards_are_pure(capsys: pytest.CaptureFixture[str]) -> None:
    result = _result(CALL, GOOD)
    first = trajectory_rewards(Q, result, zoom=1.0, weights=PAPER_WEIGHTS)
    assert trajectory_rewards(Q, result, zoom=1.0, weights=PAPER_WEIGHTS) == first
    assert capsys.readouterr() == ("", "")


def test_number_probe() -> None:
    assert number_probe(["at 5 s"]) == 1.0
    assert number_probe(["none here", ""]) == 0.0
    assert number_probe([]) == 0.0


def test_difficulty_filter_keeps_groups_with_spread_and_mixed_answers() -> None:
    assert difficulty_keep([0.0, 0.5, 0.0, 0.0], [1, 0, 0, 1])  # max - mean = 0.375 > 0.1
    assert difficulty_keep([0.2, 0.25, 0.2, 0.2], [1, 0, 0, 0])  # min IoU > 0
    assert not difficulty_keep([0.0, 0.1, 0.0, 0.0], [1, 0, 0, 0])  # no spread
    assert not difficulty_keep([0.0, 0.9, 0.0, 0.0], [1, 1, 1, 1])  # always right: too easy
    assert not difficulty_keep([0.0, 0.9, 0.0, 0.0], [0, 0, 0, 0])  # never right: too hard
    with pytest.raises(ValueError, match="one IoU and one answer"):
        difficulty_keep([0.1], [1, 0])
