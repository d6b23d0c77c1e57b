"""A `GroundedAnswer` against the ground truth of its `Question`: answer, spans and zooms.

    from zoom_agent.comparison import compare_answer
    report = compare_answer(result, question)
    report.correct, report.span_iou, [z.iou for z in report.zooms]

Scores use the project's interval math (`zoom_agent.spans`, docs/method.md §3): the
predicted spans against the true ones as sets (``multi_iou``), the first predicted span
against its best true span (IoU and IoP, as NExT-GQA and ReXTime score it), and each zoom
window against its best true span: did the model look where the evidence is?
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from zoom_agent import spans
from zoom_agent.types import GroundedAnswer, Question, Span


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ZoomScore(_Frozen):
    """One zoom window against the ground truth (None where there is no true span)."""

    round: int
    window: Span | None = Field(description="the zoomed window; None for a failed call")
    iou: float | None = None
    iop: float | None = Field(None, description="share of the window inside a true span")


class Comparison(_Frozen):
    """How a result compares with its question's ground truth."""

    question_id: str
    correct: bool | None = Field(description="the answer letter is the true one; None when no answer is known")
    span_iou: float | None = Field(description="IoU of the predicted spans and the true spans, each merged")
    first_iou: float | None = Field(description="IoU of the first predicted span with its best true span")
    first_iop: float | None = Field(description="IoP of the first predicted span with its best true span")
    zooms: tuple[ZoomScore, ...] = ()

    @property
    def best_zoom_iou(self) -> float | None:
        """The best IoU of any zoom window (None without zooms or true spans)."""
        values = [z.iou for z in self.zooms if z.iou is not None]
        return max(values) if values else None


def compare_answer(result: GroundedAnswer, question: Question) -> Comparison:
    """Score ``result`` against ``question``'s answer and true spans.

    Raises:
        ValueError: the result answers another question (the ids differ).
    """
    if result.question_id != question.id:
        raise ValueError(f"result {result.question_id!r} does not answer question {question.id!r}")
    truth = [s.as_tuple() for s in question.gt_spans]
    correct = None if question.answer is None else result.answer == question.answer_letter
    first = result.spans[0].as_tuple() if result.status == "answered" and result.spans else None
    span_iou = first_iou = first_iop = None
    if truth:
        span_iou = spans.multi_iou([s.as_tuple() for s in result.spans], truth) if first else 0.0
        first_iou = max(spans.iou(first, g) for g in truth) if first else 0.0
        first_iop = max(spans.iop(first, g) for g in truth) if first else 0.0
    zooms = []
    for z in result.zooms:
        window = z.clip.span if z.clip is not None else None
        iou = iop = None
        if truth and window is not None:
            iou = max(spans.iou(window.as_tuple(), g) for g in truth)
            iop = max(spans.iop(window.as_tuple(), g) for g in truth)
        zooms.append(ZoomScore(round=z.round, window=window, iou=iou, iop=iop))
    return Comparison(
        question_id=question.id,
        correct=correct,
        span_iou=span_iou,
        first_iou=first_iou,
        first_iop=first_iop,
        zooms=tuple(zooms),
    )
