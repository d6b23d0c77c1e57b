"""A scripted model: replies from a list or from a function of the request.

Used by graph tests and the offline demo (LangGraph's prebuilt tests drive agents the
same way with a fake tool-calling model).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable

from zoom_agent.geometry import PAPER_GEOMETRY, Family, VisionGeometry
from zoom_agent.models.base import Completion, ModelError, VLMRequest, VLMResponse

Reply = str | Completion
Script = Iterable[Reply] | Callable[[VLMRequest], Reply | Awaitable[Reply]]


class ScriptedVLM:
    """Returns scripted replies in order, or computes each reply from the request.

    Args:
        script: a sequence of replies (used in order, shared across calls) or a function
            ``request -> reply`` (sync or async). A reply is text or a full `Completion`.
        latency: seconds to sleep per call (to simulate a served model).
        name: reported as the response's model name.
        geometry: the vision geometry views are planned with (default
            `zoom_agent.geometry.PAPER_GEOMETRY`, Qwen2.5-VL's).

    The ``requests`` list records every request, so tests can assert what the model saw.
    """

    def __init__(
        self,
        script: Script,
        *,
        latency: float = 0.0,
        name: str = "scripted",
        geometry: VisionGeometry = PAPER_GEOMETRY,
    ) -> None:
        self.geometry = geometry
        self._fn = script if callable(script) else None
        self._queue = [] if callable(script) else list(script)
        self.latency = latency
        self.name = name
        self.requests: list[VLMRequest] = []

    @property
    def family(self) -> Family:
        return self.geometry.family

    async def generate(self, request: VLMRequest) -> VLMResponse:
        self.requests.append(request)
        if self.latency:
            await asyncio.sleep(self.latency)
        completions = [_completion(await self._next(request)) for _ in range(request.sampling.n)]
        return VLMResponse(completions=tuple(completions), model=self.name, latency_s=self.latency)

    async def _next(self, request: VLMRequest) -> Reply:
        if self._fn is not None:
            reply = self._fn(request)
            return await reply if inspect.isawaitable(reply) else reply
        if not self._queue:
            raise ModelError(f"{self.name}: the script has no replies left ({len(self.requests)} calls made)")
        return self._queue.pop(0)


def _completion(reply: Reply) -> Completion:
    if isinstance(reply, Completion):
        return reply
    if isinstance(reply, str):
        return Completion(text=reply, finish_reason="stop")
    raise TypeError(f"a scripted reply must be str or Completion, got {type(reply).__name__}")
