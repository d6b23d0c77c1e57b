"""The zoom graph's state and run-time context.

State holds clip references, never pixels, so checkpoints stay small. Runtime objects
(the model, the config) travel in LangGraph's ``context_schema``, not in the state.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypedDict

from zoom_agent.config import AgentConfig
from zoom_agent.models.base import VLM, Turn
from zoom_agent.types import ClipRef, GroundedAnswer, Question, TurnTrace, VideoInfo, ZoomTrace

Next = Literal["model", "chunks", "zoom", "retry", "finalize"]


class ZoomState(TypedDict, total=False):
    question: Question
    info: VideoInfo  # give it to skip opening the video (metadata-only runs)
    coarse: ClipRef
    turns: Annotated[list[Turn], operator.add]  # the conversation the model sees
    trace: Annotated[list[TurnTrace], operator.add]  # one entry per model turn
    candidates: list[TurnTrace]  # divide and conquer: [best chunk turn, fine turn] to arbitrate
    zooms: Annotated[list[ZoomTrace], operator.add]  # one entry per zoom call
    round: int  # zoom rounds taken so far
    retries: int  # format reminders sent so far
    next: Next
    pending: list[dict[str, Any]]  # zoom calls of the current turn
    error: str | None
    started: float
    result: GroundedAnswer


class ZoomTask(TypedDict):
    """The input of one parallel zoom branch (sent with `Send`)."""

    call: dict[str, Any]
    index: int
    round: int
    info: VideoInfo


@dataclass
class ZoomContext:
    """Run-scoped objects: the model and the agent's configuration."""

    model: VLM
    config: AgentConfig = field(default_factory=AgentConfig)
