"""The zoom graph's state and run-time context.

State holds clip references, never pixels, so checkpoints stay small. Runtime objects
(the model, the config) travel in LangGraph's ``context_schema``, not in the state.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Annotated, Any, NotRequired

# typing.TypedDict breaks LangGraph's schema endpoints (get_input_jsonschema, as_tool) on 3.11.
from typing_extensions import TypedDict

from zoom_agent.config import AgentConfig
from zoom_agent.geometry import VisionGeometry
from zoom_agent.models.base import VLM, Turn
from zoom_agent.types import ClipRef, GroundedAnswer, Question, TurnTrace, VideoInfo, ZoomTrace


class ZoomState(TypedDict, total=False):
    question: Question
    info: VideoInfo  # give it to skip opening the video (metadata-only runs)
    coarse: ClipRef
    turns: Annotated[list[Turn], operator.add]  # the conversation the model sees
    trace: Annotated[list[TurnTrace], operator.add]  # one entry per model turn
    candidates: list[TurnTrace]  # divide and conquer: [best chunk turn, fine turn] to arbitrate
    overview: TurnTrace  # divide and conquer, divide="official": the whole-video answer pass
    zooms: Annotated[list[ZoomTrace], operator.add]  # one entry per zoom call
    retries: int  # format reminders sent so far (advanced by the retry node only)
    calls: list[dict[str, Any]]  # zoom calls of the latest model turn (run while rounds are left)
    error: str | None
    warnings: Annotated[list[str], operator.add]  # what may make the result wrong (GroundedAnswer.warnings)
    started: float
    result: GroundedAnswer


class ZoomInput(TypedDict):
    """What a caller gives the zoom graph: the question, and optionally the video's metadata."""

    question: Question
    info: NotRequired[VideoInfo]


class ZoomOutput(TypedDict, total=False):
    """What the zoom graph returns: the answer, and the record of how it got there."""

    result: GroundedAnswer
    trace: list[TurnTrace]
    zooms: list[ZoomTrace]
    calls: list[dict[str, Any]]
    error: str | None


def rounds_taken(state: ZoomState) -> int:
    """Zoom rounds taken so far: the round of the latest zoom call (each call leaves a
    `ZoomTrace`, errors included), so the count has one source and no node advances it."""
    return max((z.round for z in state.get("zooms", [])), default=0)


class ZoomTask(TypedDict):
    """The input of one parallel zoom branch (sent with `Send`)."""

    call: dict[str, Any]
    index: int
    count: int  # zoom calls run in this round (they share one budget under a request cap)
    round: int
    info: VideoInfo


@dataclass
class ZoomContext:
    """Run-scoped objects: the model and the agent's configuration."""

    model: VLM
    config: AgentConfig = field(default_factory=AgentConfig)

    @property
    def geometry(self) -> VisionGeometry:
        """The model's vision geometry: every view of the run is planned with it."""
        return self.model.geometry
