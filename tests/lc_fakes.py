"""A recording fake chat model for the LangChain tests (after LangGraph's FakeToolCallingModel).

langchain_core's ``GenericFakeChatModel`` replies from a list and streams its text token
by token, but refuses ``bind_tools``; this one accepts tools (it replies from its script
whatever they are) and records every message list it was called with.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatResult
from pydantic import Field


class RecordingChatModel(GenericFakeChatModel):
    """Scripted replies; ``seen`` holds the messages of every call; tools are accepted."""

    seen: list[list[BaseMessage]] = Field(default_factory=list)
    bound_tools: list[Any] = Field(default_factory=list)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> RecordingChatModel:
        self.bound_tools = list(tools)
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self.seen.append(list(messages))
        return super()._generate(messages, *args, **kwargs)


def scripted_chat(replies: Sequence[AIMessage | str]) -> RecordingChatModel:
    """A `RecordingChatModel` answering with ``replies`` in order."""
    items: Iterator[AIMessage | str] = iter(list(replies))
    return RecordingChatModel(messages=items)
