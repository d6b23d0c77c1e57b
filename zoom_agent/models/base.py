"""The one protocol every model backend implements (docs/architecture.md).

A request is a conversation of turns. A turn's ``content`` is an ordered tuple of parts:
plain text, or a `ClipRef` (a clip of frames, materialised by the backend at call time
from the shared video cache). Tool turns carry text only: the frames a tool produced
travel in the user turn that follows it (vLLM drops images inside ``role: tool``).
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from zoom_agent.geometry import Family, VisionGeometry
from zoom_agent.types import ClipRef

Role = Literal["system", "user", "assistant", "tool"]
Part = str | ClipRef


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Turn(_Frozen):
    role: Role
    content: tuple[Part, ...] = ()
    name: str | None = Field(None, description="tool name, for role='tool'")

    @property
    def text(self) -> str:
        """The turn's text parts joined (clips left out)."""
        return "".join(p for p in self.content if isinstance(p, str))

    @property
    def clips(self) -> tuple[ClipRef, ...]:
        return tuple(p for p in self.content if isinstance(p, ClipRef))


class Sampling(_Frozen):
    temperature: float = Field(0.0, ge=0, description="0 = greedy")
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int = Field(512, gt=0, description="their code: 512 response tokens")
    n: int = Field(1, gt=0, description="completions per request (G in GRPO)")
    seed: int | None = None
    stop: tuple[str, ...] = ()


class VLMRequest(_Frozen):
    turns: tuple[Turn, ...] = Field(min_length=1)
    sampling: Sampling = Sampling()
    want_logprobs: bool = Field(True, description="ask for per-token logprobs and token ids")
    top_logprobs: int = Field(
        0, ge=0, le=20, description="also the k largest logprobs at each step (their span confidence: 20)"
    )


class Completion(_Frozen):
    text: str
    token_ids: tuple[int, ...] | None = None
    logprobs: tuple[float, ...] | None = Field(None, description="logprob of each sampled token")
    token_offsets: tuple[tuple[int, int], ...] | None = Field(
        None, description="[start, end) character range of each token in `text` (for confidences)"
    )
    top_logprobs: tuple[tuple[float, ...], ...] | None = Field(
        None, description="the k largest logprobs at each step, largest first (when the request asked)"
    )
    finish_reason: str | None = None
    completion_tokens: int | None = Field(None, description="tokens generated, as a backend reports it without ids")


class VLMResponse(_Frozen):
    completions: tuple[Completion, ...] = Field(min_length=1)
    prompt_token_ids: tuple[int, ...] | None = None
    prompt_tokens: int | None = Field(None, description="prompt length, as a backend reports it without ids")
    model: str = ""
    latency_s: float = 0.0

    @property
    def text(self) -> str:
        return self.completions[0].text


@runtime_checkable
class VLM(Protocol):
    """A video-language model: one async call from a conversation to completions.

    The model owns its vision geometry: every view of a question is planned with
    ``geometry`` (`zoom_agent.planning.plan_clip`), so the frames sent are the frames the
    model's vision tower tokenises as planned.
    """

    @property
    def family(self) -> Family:
        """The model family (``geometry.family``)."""
        ...

    @property
    def geometry(self) -> VisionGeometry:
        """How the model's vision tower turns pixels into tokens."""
        ...

    async def generate(self, request: VLMRequest) -> VLMResponse: ...


class ModelError(RuntimeError):
    """A backend failed to produce a response (after its own retries, if any)."""


MODEL_FAILURE = "model failed: "  # how a result's error starts when the model call failed


def model_failure(exc: BaseException) -> str:
    """The error text of a result whose model call raised ``exc`` (the graph writes it).

    Evaluation reads it back with `is_model_failure`: such an error is the
    infrastructure's (server down, timeout, refused request), not the question's, so a
    rerun retries it (`zoom_agent.eval.results.error_kind`).
    """
    return f"{MODEL_FAILURE}{type(exc).__name__}: {exc}"


def is_model_failure(error: str | None) -> bool:
    """Whether a result's error text says its model call failed (see `model_failure`)."""
    return bool(error) and str(error).startswith(MODEL_FAILURE)
