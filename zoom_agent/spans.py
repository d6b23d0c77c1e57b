"""Interval math on time spans: one implementation for metrics AND rewards.

All functions are pure. They accept `Span` values or plain ``(start, end)`` pairs so the
metrics can run on raw annotation numbers exactly as the official evaluators do.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from zoom_agent.types import Span

Interval = tuple[float, float]
SpanLike = Span | Sequence[float]


def _pair(span: SpanLike) -> Interval:
    if isinstance(span, Span):
        return span.start, span.end
    start, end = span
    return float(start), float(end)


def intersection(a: SpanLike, b: SpanLike) -> float:
    """Length of the overlap of two intervals (0 when they do not overlap)."""
    (s1, e1), (s2, e2) = _pair(a), _pair(b)
    return max(0.0, min(e1, e2) - max(s1, s2))


def iou(a: SpanLike, b: SpanLike) -> float:
    """Temporal intersection over union of two intervals; 0 when the union is empty."""
    (s1, e1), (s2, e2) = _pair(a), _pair(b)
    inter = intersection((s1, e1), (s2, e2))
    union = max(e1, e2) - min(s1, s2)
    return inter / union if union > 0 else 0.0


def iop(pred: SpanLike, gt: SpanLike) -> float:
    """Intersection over the predicted length (NExT-GQA's IoP).

    A zero-length prediction that lies inside ``gt`` has IoP 1; outside, 0.
    """
    (ps, pe), (gs, ge) = _pair(pred), _pair(gt)
    length = pe - ps
    if length <= 0:
        return 1.0 if gs <= ps <= ge else 0.0
    return intersection((ps, pe), (gs, ge)) / length


def merge(spans: Iterable[SpanLike]) -> list[Interval]:
    """Sort intervals and merge the ones that overlap or touch."""
    out: list[list[float]] = []
    for s, e in sorted(_pair(x) for x in spans):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def multi_iou(preds: Iterable[SpanLike], gts: Iterable[SpanLike]) -> float:
    """IoU of two sets of intervals, each merged first (docs/method.md §3).

    ``|P ∩ G| / (|P| + |G| - |P ∩ G|)``; 0 when either side is empty or the union is empty.
    """
    p, g = merge(preds), merge(gts)
    if not p or not g:
        return 0.0
    inter = 0.0
    i = j = 0
    while i < len(p) and j < len(g):  # two-pointer sweep over sorted disjoint intervals
        inter += intersection(p[i], g[j])
        if p[i][1] < g[j][1]:
            i += 1
        else:
            j += 1
    union = sum(e - s for s, e in p) + sum(e - s for s, e in g) - inter
    return inter / union if union > 0 else 0.0


def clamp(span: SpanLike, duration: float) -> Span:
    """Clip an interval to ``[0, duration]``; an interval wholly outside collapses to an edge."""
    s, e = _pair(span)
    s = min(max(s, 0.0), duration)
    e = min(max(e, 0.0), duration)
    return Span(start=min(s, e), end=max(s, e))


def pad(span: SpanLike, seconds: float, duration: float) -> Span:
    """Widen an interval by ``seconds`` on both sides, clamped to the video."""
    s, e = _pair(span)
    return clamp((s - seconds, e + seconds), duration)


def fit_to_video(spans: Iterable[SpanLike], duration: float) -> tuple[tuple[Span, ...], list[str]]:
    """Evidence spans made to lie in the video ``[0, duration]``, and what was changed.

    The rule (docs/evaluation.md §6): a span that reaches outside the video is clamped to
    it; a span with nothing inside the video (wholly before 0 or after ``duration``, or
    touching it only at an edge) is dropped. Each change is one warning naming the span.
    A moment (``start == end``) inside the video is kept.

    Args:
        spans: predicted spans, in their order.
        duration: the video's length in seconds.

    Returns:
        ``(kept spans in order, warnings)``.
    """
    kept: list[Span] = []
    warnings: list[str] = []
    for span in spans:
        s, e = _pair(span)
        inside = min(e, duration) - max(s, 0.0)
        if inside < 0 or (inside == 0 and e > s):
            warnings.append(f"evidence span {s:g}-{e:g} s lies outside the video (0-{duration:g} s): dropped")
            continue
        fitted = clamp((s, e), duration)
        if fitted.as_tuple() != (s, e):
            warnings.append(
                f"evidence span {s:g}-{e:g} s reaches outside the video (0-{duration:g} s): "
                f"clamped to {fitted.start:g}-{fitted.end:g} s"
            )
        kept.append(fitted)
    return tuple(kept), warnings
