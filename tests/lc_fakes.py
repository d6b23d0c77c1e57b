"""A recording fake chat model for the LangChain tests (after LangGraph's FakeToolCallingModel).

langchain_core's ``GenericFakeChatModel`` replies from a list and streams its text token
by token, but refuses ``bind_tools`` and drops tool calls and usage when streaming; this
one accepts tools (it replies from its script whatever they are), streams tool calls and
usage in a last chunk as real providers do, and records every message list it was called with.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from pydantic import Field


class RecordingChatModel(GenericFakeChatModel):
    """Scripted replies; ``seen`` holds the messages of every call; tools are accepted."""

    seen: list[list[BaseMessage]] = Field(default_factory=list)
    bound_tools: list[Any] = Field(default_factory=list)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> RecordingChatModel:
        self.bound_tools = list(tools)
        return self

    last_reply: AIMessage | None = None

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self.seen.append(list(messages))
        result = super()._generate(messages, *args, **kwargs)
        reply = result.generations[0].message
        self.last_reply = reply if isinstance(reply, AIMessage) else None
        return result

    def _stream(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        # The parent streams only the text; real providers also stream tool calls and usage last.
        yield from super()._stream(messages, *args, **kwargs)
        reply = self.last_reply
        if reply is not None and (reply.tool_calls or reply.usage_metadata):
            chunks = [
                {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i, "type": "tool_call_chunk"}
                for i, c in enumerate(reply.tool_calls)
            ]
            tail = AIMessageChunk(content="", id=reply.id, tool_call_chunks=chunks, usage_metadata=reply.usage_metadata)
            yield ChatGenerationChunk(message=tail)


def scripted_chat(replies: Sequence[AIMessage | str]) -> RecordingChatModel:
    """A `RecordingChatModel` answering with ``replies`` in order."""
    items: Iterator[AIMessage | str] = iter(list(replies))
    return RecordingChatModel(messages=items)
