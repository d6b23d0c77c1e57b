"""Interval math on hand-computed cases (used by metrics AND rewards)."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from zoom_agent import spans
from zoom_agent.types import Span


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((0, 10), (5, 15), 5 / 15),
        ((0, 10), (0, 10), 1.0),
        ((0, 10), (10, 20), 0.0),  # touching: no overlap
        ((0, 10), (20, 30), 0.0),
        ((2, 4), (0, 10), 0.2),
        ((3, 3), (0, 10), 0.0),  # zero-length prediction: IoU 0
        ((3, 3), (3, 3), 0.0),  # empty union
    ],
)
def test_iou(a, b, expected):
    assert spans.iou(a, b) == pytest.approx(expected)
    assert spans.iou(b, a) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("pred", "gt", "expected"),
    [
        ((0, 10), (5, 15), 0.5),
        ((6, 8), (5, 15), 1.0),
        ((0, 4), (5, 15), 0.0),
        ((7, 7), (5, 15), 1.0),  # zero-length inside gt: IoP 1
        ((5, 5), (5, 15), 1.0),  # on the boundary counts as inside
        ((20, 20), (5, 15), 0.0),
    ],
)
def test_iop(pred, gt, expected):
    assert spans.iop(pred, gt) == pytest.approx(expected)


def test_merge_sorts_and_joins_overlapping_and_touching():
    assert spans.merge([(5, 7), (0, 2), (1, 3), (7, 9), (20, 21)]) == [(0, 3), (5, 9), (20, 21)]
    assert spans.merge([]) == []
    assert spans.merge([Span(start=1, end=2)]) == [(1.0, 2.0)]


def test_multi_iou_merges_both_sides_first():
    # P = [0,4] u [6,10] (length 8); G = [2,8] (length 6); P∩G = 2 + 2 = 4; union = 8 + 6 - 4 = 10
    assert spans.multi_iou([(0, 4), (6, 10)], [(2, 8)]) == pytest.approx(0.4)
    # duplicated prediction must not count twice
    assert spans.multi_iou([(0, 4), (0, 4), (1, 3)], [(0, 4)]) == pytest.approx(1.0)
    assert spans.multi_iou([], [(0, 1)]) == 0.0
    assert spans.multi_iou([(0, 1)], []) == 0.0


def test_clamp_and_pad():
    assert spans.clamp((-3, 5), 10) == Span(start=0, end=5)
    assert spans.clamp((8, 30), 10) == Span(start=8, end=10)
    assert spans.clamp((20, 30), 10) == Span(start=10, end=10)
    assert spans.pad((2, 4), 10, 30) == Span(start=0, end=14)


@pytest.mark.parametrize("bad", [(math.nan, 1), (0, math.inf), (5, 4)])
def test_span_rejects_invalid(bad):
    with pytest.raises(ValidationError):
        Span(start=bad[0], end=bad[1])


interval = st.tuples(st.floats(0, 100), st.floats(0, 100)).map(lambda t: (min(t), max(t)))


@given(st.lists(interval, max_size=8), st.lists(interval, max_size=8))
def test_multi_iou_is_a_symmetric_fraction(p, g):
    value = spans.multi_iou(p, g)
    assert 0.0 <= value <= 1.0 + 1e-12
    assert value == pytest.approx(spans.multi_iou(g, p))


@given(interval, interval)
def test_single_multi_iou_agrees_with_iou(a, b):
    assert spans.multi_iou([a], [b]) == pytest.approx(spans.iou(a, b), abs=1e-9)
