"""Value types shared by every floor of the project.

Times are seconds from the start of the video. Everything here is a frozen pydantic
model, so values can travel through LangGraph state, JSONL result files and
checkpoints unchanged. Pixels never live in these types: a `ClipRef` names frames
(path, frame indices, target size), and the video engine materialises them on demand.
"""

from __future__ import annotations

import itertools
import math
import statistics
import string
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

OPTION_LETTERS = string.ascii_uppercase


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Span(_Frozen):
    """A closed time interval ``[start, end]`` in seconds (finite, ``start <= end``)."""

    start: float
    end: float

    @model_validator(mode="after")
    def _check(self) -> Span:
        if not (math.isfinite(self.start) and math.isfinite(self.end)):
            raise ValueError(f"span bounds must be finite numbers, got ({self.start}, {self.end})")
        if self.start > self.end:
            raise ValueError(f"span start must be <= end, got ({self.start}, {self.end})")
        return self

    @property
    def length(self) -> float:
        return self.end - self.start

    def as_tuple(self) -> tuple[float, float]:
        return (self.start, self.end)

    def __str__(self) -> str:
        return f"{self.start:.1f}-{self.end:.1f} s"


class VideoInfo(_Frozen):
    """Container metadata of one video file, read without decoding it."""

    path: str
    duration: float = Field(gt=0, description="seconds, num_frames / fps")
    fps: float = Field(gt=0)
    num_frames: int = Field(gt=0)
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    warnings: tuple[str, ...] = Field(
        (),
        description="what makes answers about this file suspect, each naming it: the file holds fewer "
        "frames than its container claims (truncated), so it reads as a shorter video",
    )

    @property
    def whole(self) -> Span:
        return Span(start=0.0, end=self.duration)


class ClipRef(_Frozen):
    """A planned clip: which source frames, at which size, costing how many visual tokens.

    This is what `video.plan_clip` returns, what the zoom tool hands to the graph and
    what the graph state keeps. It carries no pixels; `VideoSource.read_clip` decodes it.
    """

    path: str
    span: Span = Field(description="the requested time window (clamped to the video)")
    frame_indices: tuple[int, ...] = Field(min_length=1)
    timestamps: tuple[float, ...] = Field(description="frame_index / fps for each frame, seconds")
    fps: float = Field(gt=0, description="the source video's frame rate")
    num_source_frames: int = Field(gt=0, description="frame count of the whole source video")
    width: int = Field(gt=0, description="target width after resizing, a multiple of the patch")
    height: int = Field(gt=0, description="target height after resizing, a multiple of the patch")
    visual_tokens: int = Field(ge=0, description="tokens this clip costs the model")
    role: Literal["coarse", "zoom", "context"] = "coarse"
    windows: tuple[Span, ...] = Field(
        (),
        description="a pooled clip (`zoom_agent.planning.plan_pooled_clip`): the disjoint windows, in time "
        "order, whose frames it holds; empty: the one window ``span``",
    )
    keyframe_tolerance: float | None = Field(
        None,
        ge=0,
        description="approximate mode (docs/video.md §5): frames were snapped to keyframes within this "
        "many seconds; frame_indices and timestamps are the frames returned. None: exact sampling",
    )

    @model_validator(mode="after")
    def _check(self) -> ClipRef:
        if len(self.timestamps) != len(self.frame_indices):
            raise ValueError("timestamps and frame_indices must have the same length")
        return self

    @property
    def num_frames(self) -> int:
        return len(self.frame_indices)

    @property
    def frame_spacing(self) -> float:
        """Mean seconds between consecutive frames (one source frame for a single frame); for
        a pooled clip of several windows, the median step, so the gaps between windows do not
        stretch the time the model sees (docs/method.md §7)."""
        ts = self.timestamps
        if len(ts) >= 2 and ts[-1] > ts[0]:
            if len(self.windows) > 1:
                return float(statistics.median(b - a for a, b in itertools.pairwise(ts)))
            return (ts[-1] - ts[0]) / (len(ts) - 1)
        return 1.0 / self.fps

    def describe(self) -> str:
        """One line for prompts and logs, e.g. ``12.0-18.5 s: 16 frames at 448x252``."""
        return f"{self.span}: {self.num_frames} frames at {self.width}x{self.height}"


class Question(_Frozen):
    """One grounded video question, as loaded from a benchmark or asked by a user."""

    id: str
    video: str = Field(description="path of the video file")
    question: str
    options: tuple[str, ...] | None = None
    answer: int | None = Field(default=None, description="index of the correct option")
    gt_spans: tuple[Span, ...] = ()
    duration: float | None = None
    qtype: str | None = None
    task: str | None = None

    references: tuple[str, ...] = Field(
        (),
        description="reference answers of an open-ended question (no options), scored by normalised exact "
        "match and token F1 (docs/evaluation.md §6)",
    )

    @model_validator(mode="after")
    def _check_options(self) -> Question:
        if self.options is None:
            return self
        if self.references:
            raise ValueError(f"question {self.id}: references are for open-ended questions; this one has options")
        if not 1 <= len(self.options) <= len(OPTION_LETTERS):
            raise ValueError(
                f"question {self.id}: {len(self.options)} options; expected 1..{len(OPTION_LETTERS)} "
                f"(one letter A-Z each)"
            )
        return self

    @model_validator(mode="after")
    def _check_answer(self) -> Question:
        if self.answer is not None:
            n = len(self.options or ())
            if not 0 <= self.answer < n:
                raise ValueError(f"answer index {self.answer} is outside the {n} options")
        return self

    @property
    def answer_letter(self) -> str | None:
        return None if self.answer is None else OPTION_LETTERS[self.answer]

    @property
    def letters(self) -> str:
        """The option letters (``""`` for an open-ended question)."""
        return OPTION_LETTERS[: len(self.options or ())]

    @property
    def open_ended(self) -> bool:
        """No options: the answer is free text."""
        return self.options is None


def repeated_options(question: Question) -> list[str]:
    """Warnings for options of ``question`` that repeat an earlier one (blanks and case
    ignored). Benchmarks ship a few (NExT-GQA: 4 of 8,911 questions), so a loaded question
    keeps them and its result carries the warning; `zoom_agent.agent.make_question` (a
    question typed by a user) refuses them."""
    options = question.options or ()
    seen: dict[str, int] = {}
    found = []
    for i, option in enumerate(options):
        key = " ".join(option.split()).casefold()
        if key in seen:
            first = seen[key]
            found.append(
                f"question {question.id}: option {OPTION_LETTERS[i]} {option!r} repeats option "
                f"{OPTION_LETTERS[first]} {options[first]!r}"
            )
        else:
            seen[key] = i
    return found


class ZoomTrace(_Frozen):
    """One zoom call: what the model asked for and what it got."""

    round: int = Field(ge=1)
    call: int = Field(0, ge=0, description="position of the call within its turn")
    requested: dict[str, object]
    text: str = Field(description="the tool result the model read")
    clip: ClipRef | None = None
    error: str | None = None


class TurnTrace(_Frozen):
    """One model turn, as the model wrote it, with its cost."""

    round: int = Field(ge=0, description="0 = coarse view; k = after the k-th zoom round")
    text: str
    clips: tuple[ClipRef, ...] = Field((), description="the clips the model saw in the user turn before")
    answer: str | None = None
    spans: tuple[Span, ...] = ()
    answer_confidence: float | None = None
    span_confidence: float | None = None
    format_ok: bool = False
    tool_calls: int = 0
    zoom_calls_dropped: int = Field(
        0, ge=0, description="zoom calls of this turn not run: past max_parallel_zooms (the model is told)"
    )
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    request_visual_tokens: int = Field(
        0, ge=0, description="visual tokens of all the clips the request held (docs/method.md §8)"
    )
    latency_s: float = 0.0


class GroundedAnswer(_Frozen):
    """The agent's result for one question: the answer, its evidence spans, and the trace."""

    question_id: str
    status: Literal["answered", "unanswered", "error"]
    answer: str | None = Field(
        None, description="option letter; the free-text answer of an open-ended question; None when unanswered"
    )
    answer_index: int | None = None
    answer_text: str | None = Field(None, description="the chosen option's text, or the free-text answer")
    spans: tuple[Span, ...] = ()
    answer_confidence: float | None = None
    span_confidence: float | None = None
    chosen_round: int | None = Field(None, description="round whose answer won the arbitration")
    rounds: int = Field(0, description="zoom rounds taken")
    turns: tuple[TurnTrace, ...] = ()
    zooms: tuple[ZoomTrace, ...] = ()
    error: str | None = None
    warnings: tuple[str, ...] = Field(
        (),
        description="what may make this result wrong though it ran: a truncated video, evidence spans "
        "clamped to the video or dropped, zoom calls dropped (docs/evaluation.md §6)",
    )
    elapsed_s: float = 0.0

    @property
    def prompt_tokens(self) -> int:
        return sum(t.prompt_tokens or 0 for t in self.turns)

    @property
    def completion_tokens(self) -> int:
        return sum(t.completion_tokens or 0 for t in self.turns)
