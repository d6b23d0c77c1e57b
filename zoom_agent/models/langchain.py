"""`LangChainVLM`: any LangChain chat model as the agent's `VLM` (docs/architecture.md §3, §8).

    from langchain_openai import ChatOpenAI
    agent = ZoomAgent(LangChainVLM(ChatOpenAI(model="gpt-4.1-mini")))
    agent = ZoomAgent("openai:gpt-4.1-mini")        # a "provider:model" string, via init_chat_model

- The conversation goes out as LangChain messages (`zoom_agent.models.lc_messages`): clips
  as caption + timed JPEG image blocks, earlier ``<tool_call>`` tags as native tool calls.
- The zoom tool's schema is bound with ``bind_tools`` when the model supports it; native
  ``tool_calls`` in the reply are written back as ``<tool_call>`` tags, so the graph's one
  parser (`zoom_agent.protocol`) routes them onto the zoom like any other backend's.
- Each call is an ordinary chat-model run: LangChain callbacks and tracers see it (with
  the clips it was shown as metadata, and its token usage), and LangGraph's
  ``stream_mode="messages"`` streams its tokens.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage

from zoom_agent.geometry import GEOMETRY, PAPER_GEOMETRY, Family, VisionGeometry, family_from_model_name
from zoom_agent.models.base import Completion, ModelError, VLMRequest, VLMResponse
from zoom_agent.models.lc_messages import JPEG_QUALITY, to_messages


def chat_model_from_spec(spec: str) -> BaseChatModel:
    """A chat model from a ``"provider:model"`` string, through LangChain's ``init_chat_model``.

    Raises:
        ValueError: ``langchain`` (or the provider's package) is not installed, or the
            provider is unknown; the message names the spec.
    """
    try:
        from langchain.chat_models import init_chat_model
    except ImportError as exc:
        raise ValueError(f"model {spec!r}: 'provider:model' specs need the langchain package ({exc})") from None
    try:
        return init_chat_model(spec)
    except (ImportError, ValueError) as exc:
        raise ValueError(f"model {spec!r}: init_chat_model could not build it: {exc}") from None


def _model_name(chat: BaseChatModel) -> str:
    for attr in ("model_name", "model", "model_id"):
        value = getattr(chat, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(chat).__name__


def reply_text(message: AIMessage) -> str:
    """A chat model's reply in the project's text protocol: its text, then each native tool
    call as a ``<tool_call>`` tag (broken calls keep their raw arguments, so the parser
    reports them to the model)."""
    text = message.text if isinstance(message.text, str) else str(message.text)
    tags = [json.dumps({"name": c["name"], "arguments": c["args"]}) for c in message.tool_calls]
    tags += [
        f'{{"name": {json.dumps(c.get("name"))}, "arguments": {c.get("args") or ""}}}'
        for c in message.invalid_tool_calls
    ]
    return "".join([text, *(f"<tool_call>{t}</tool_call>" for t in tags)])


class LangChainVLM:
    """Any LangChain ``BaseChatModel`` (or ``"provider:model"`` string) as a `VLM`.

    Args:
        model: a chat model, or a spec for ``init_chat_model``.
        native_tools: bind the zoom tool's schema with ``bind_tools`` (skipped when the
            model does not support tools; the prompt's ``<tool_call>`` layout still works).
        family: the vision geometry to plan clips with (default: from the model's name,
            else `zoom_agent.geometry.PAPER_GEOMETRY`).
        quality: JPEG quality of the frames sent.
        pass_sampling: send the request's temperature / max tokens / stop as call arguments.

    Raises:
        TypeError: ``model`` is neither a chat model nor a string.
    """

    def __init__(
        self,
        model: BaseChatModel | str,
        *,
        native_tools: bool = True,
        family: Family | None = None,
        quality: int = JPEG_QUALITY,
        pass_sampling: bool = True,
    ) -> None:
        chat = chat_model_from_spec(model) if isinstance(model, str) else model
        if not isinstance(chat, BaseChatModel):
            raise TypeError(f"LangChainVLM needs a LangChain BaseChatModel or a 'provider:model' string, got {model!r}")
        self.chat = chat
        self.name = _model_name(chat)
        family = family or family_from_model_name(self.name)
        self.geometry: VisionGeometry = GEOMETRY[family] if family else PAPER_GEOMETRY
        self.quality = quality
        self.pass_sampling = pass_sampling
        self.runnable: Any = _with_zoom_tool(chat) if native_tools else chat

    @property
    def family(self) -> Family:
        return self.geometry.family

    def __repr__(self) -> str:
        return f"LangChainVLM({self.name!r})"

    async def generate(self, request: VLMRequest) -> VLMResponse:
        """Call the chat model ``request.sampling.n`` times on the conversation.

        Raises:
            ModelError: the chat model raised.
        """
        messages = await asyncio.to_thread(to_messages, request.turns, quality=self.quality)
        clips = [c.describe() for t in request.turns for c in t.clips]
        config = {"run_name": "vlm", "metadata": {"zoom_agent_clips": clips, "zoom_agent_model": self.name}}
        kwargs = self._sampling(request) if self.pass_sampling else {}
        t0 = time.perf_counter()
        replies: list[AIMessage] = []
        for _ in range(request.sampling.n):
            try:
                reply = await self.runnable.ainvoke(messages, config=config, **kwargs)
            except Exception as exc:
                raise ModelError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
            replies.append(reply)
        usage = [r.usage_metadata for r in replies]
        return VLMResponse(
            completions=tuple(
                Completion(
                    text=reply_text(r),
                    finish_reason=(r.response_metadata or {}).get("finish_reason"),
                    completion_tokens=u["output_tokens"] if u else None,
                )
                for r, u in zip(replies, usage, strict=True)
            ),
            prompt_tokens=usage[0]["input_tokens"] if usage[0] else None,
            model=self.name,
            latency_s=time.perf_counter() - t0,
        )

    @staticmethod
    def _sampling(request: VLMRequest) -> dict[str, Any]:
        s = request.sampling
        kwargs: dict[str, Any] = {"temperature": s.temperature, "max_tokens": s.max_tokens}
        if s.stop:
            kwargs["stop"] = list(s.stop)
        return kwargs


def _with_zoom_tool(chat: BaseChatModel) -> Any:
    """The chat model with the zoom tool's schema (`protocol.ZOOM_TOOL_SCHEMA`) bound, or as
    is when it takes no tools."""
    from zoom_agent.protocol import ZOOM_TOOL_SCHEMA

    try:
        return chat.bind_tools([ZOOM_TOOL_SCHEMA])
    except NotImplementedError:
        return chat
