"""What a server lets one call ask for, and which videos it may read (docs/quality.md §3).

Both servers (MCP and the LangGraph deployment) read only videos under one configured
video root, by the dataset loaders' rule (`zoom_agent.datasets.paths.resolve_video`: no
``..`` out, no absolute path elsewhere, no symlink out), bind loopback unless told
otherwise, and bound the work of one call: frames per zoom, zoom rounds and windows per
round, response tokens per model turn, question and option sizes, and calls running at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from zoom_agent.config import AgentConfig, Budget
from zoom_agent.datasets.paths import resolve_video

LOOPBACK = "127.0.0.1"


class RequestRefused(ValueError):
    """A request asks for a video outside the root or for more work than the limits allow."""


class ServerLimits(BaseModel):
    """The bounds one server call runs under."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    video_root: Path = Field(description="the only folder whose videos the server reads")
    max_zoom_frames: int = Field(32, ge=1, le=256, description="frames one zoomed view may hold")
    max_zoom_rounds: int = Field(2, ge=0, le=8, description="zoom rounds one question may take")
    max_windows: int = Field(4, ge=1, le=16, description="zoom windows one round may open")
    max_question_chars: int = Field(2000, ge=1, description="longest question text")
    max_option_chars: int = Field(500, ge=1, description="longest option text")
    visual_tokens: int = Field(8192, ge=64, le=65536, description="visual-token budget of one view")
    max_tokens: int = Field(512, ge=1, le=8192, description="response tokens one model turn may generate")
    max_concurrent: int = Field(4, ge=1, description="questions answered at once; later calls wait")

    def video(self, relative: str) -> str:
        """The absolute path of an existing video under the root.

        Raises:
            RequestRefused: the path escapes the root or names no file.
        """
        try:
            return resolve_video(self.video_root, relative, check_exists=True)
        except ValueError as exc:
            raise RequestRefused(str(exc)) from None

    def zoom_frames(self, frames: int) -> int:
        """``frames`` if within bounds.

        Raises:
            RequestRefused: not an integer in 1..max_zoom_frames.
        """
        if isinstance(frames, bool) or not isinstance(frames, int) or not 1 <= frames <= self.max_zoom_frames:
            raise RequestRefused(f"frames must be an integer in 1..{self.max_zoom_frames}, got {frames!r}")
        return frames

    def question(self, question: str, options: list[str] | None) -> None:
        """Check the sizes of a question and its options.

        Raises:
            RequestRefused: a text over its limit, or more than 26 options.
        """
        if not question.strip() or len(question) > self.max_question_chars:
            raise RequestRefused(f"question must have 1..{self.max_question_chars} characters, got {len(question)}")
        if options is not None:
            if not 1 <= len(options) <= 26:
                raise RequestRefused(f"options must be 1..26 strings, got {len(options)}")
            longest = max(len(o) for o in options)
            if longest > self.max_option_chars:
                raise RequestRefused(f"an option has {longest} characters; the limit is {self.max_option_chars}")

    def agent_config(self, **overrides: Any) -> AgentConfig:
        """The agent configuration a served question runs with (never above the limits).

        Args:
            overrides: ``max_zoom_rounds`` and ``max_tokens`` (each at most the limit), or
                other `AgentConfig` fields.

        Raises:
            RequestRefused: an override asks for more zoom rounds or tokens than allowed.
        """
        rounds = _bounded(
            overrides.pop("max_zoom_rounds", self.max_zoom_rounds), "max_zoom_rounds", 0, self.max_zoom_rounds
        )
        tokens = _bounded(overrides.pop("max_tokens", self.max_tokens), "max_tokens", 1, self.max_tokens)
        budget = Budget(visual_tokens=self.visual_tokens, zoom_max_frames=self.max_zoom_frames)
        return AgentConfig(
            budget=budget,
            max_zoom_rounds=rounds,
            max_tokens=tokens,
            max_parallel_zooms=self.max_windows,
            strategy="multi_step",
            **overrides,
        )


def _bounded(value: object, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise RequestRefused(f"{name} must be an integer in {lo}..{hi}, got {value!r}")
    return value
