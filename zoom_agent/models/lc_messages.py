"""The project's conversation as LangChain messages, and clips as LangChain content blocks.

Pure translation (the JPEG encoding is `chat_format.encode_clip`, the same one the served
backend uses):

- A `ClipRef` becomes its caption (`protocol.clip_caption`) and, per frame, a time stamp
  (``<12.5 seconds>``) and an image block ``{"type": "image", "base64": ..., "mime_type":
  "image/jpeg"}``: LangChain's standard block, which every multimodal chat model reads.
- An assistant turn that wrote ``<tool_call>`` tags becomes an ``AIMessage`` with native
  ``tool_calls`` (ids ``call_<turn>_<k>``), and the tool turns after it become
  ``ToolMessage``s answering those ids in order, so a tool-calling chat model sees its own
  calls the way its API expects. Tool turns carry text only; the frames follow in the user
  turn (vLLM drops images inside ``role: tool``, docs/method.md §2).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from zoom_agent import protocol
from zoom_agent.models.base import Turn
from zoom_agent.types import ClipRef

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage

JPEG_QUALITY = 85  # frames shown to a LangChain chat model


@functools.lru_cache(maxsize=256)
def frame_blocks(ref: ClipRef, quality: int = JPEG_QUALITY) -> tuple[dict[str, Any], ...]:
    """A clip's frames as content blocks: each frame's time, then its JPEG image.

    Decodes through the shared video cache (blocking); cached per ``(clip, quality)``.
    """
    from zoom_agent.models.chat_format import encode_clip

    encoded = encode_clip(ref, quality)
    blocks: list[dict[str, Any]] = []
    for t, frame in zip(encoded.timestamps, encoded.frames, strict=True):
        blocks.append({"type": "text", "text": f"<{t:.1f} seconds>"})
        blocks.append({"type": "image", "base64": frame, "mime_type": "image/jpeg"})
    return tuple(blocks)


def clip_blocks(ref: ClipRef, quality: int = JPEG_QUALITY) -> list[dict[str, Any]]:
    """One clip as content blocks: its caption (`protocol.clip_caption`), then its frames."""
    return [{"type": "text", "text": protocol.clip_caption(ref)}, *frame_blocks(ref, quality)]


def image_count(message: BaseMessage) -> int:
    """How many image blocks a message carries (what a multimodal model would see)."""
    content = message.content
    if isinstance(content, str):
        return 0
    return sum(1 for b in content if isinstance(b, dict) and b.get("type") in ("image", "image_url"))


def to_messages(turns: Sequence[Turn], *, quality: int = JPEG_QUALITY) -> list[BaseMessage]:
    """The conversation as LangChain messages (see the module notes for the mapping).

    Raises:
        ValueError: a clip in a system, assistant or tool turn (those roles take text only).
    """
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

    messages: list[BaseMessage] = []
    open_calls: list[str] = []  # ids of the last assistant turn's calls not yet answered
    for i, turn in enumerate(turns):
        if turn.role != "user" and turn.clips:
            raise ValueError(f"turn {i} ({turn.role}) carries a clip; {turn.role} turns take text only")
        if turn.role == "system":
            messages.append(SystemMessage(content=turn.text))
        elif turn.role == "assistant":
            text, calls = _split_tool_calls(turn.text, i)
            messages.append(AIMessage(content=text, tool_calls=calls))
            open_calls = [c["id"] for c in calls]
        elif turn.role == "tool":
            if open_calls:
                messages.append(ToolMessage(content=turn.text, tool_call_id=open_calls.pop(0), name=turn.name))
            else:  # a tool result with no native call to answer: show it as text
                messages.append(HumanMessage(content=f"[{turn.name or 'tool'} result] {turn.text}"))
        else:
            open_calls = []
            blocks: list[dict[str, Any]] = []
            for part in turn.content:  # the graph already wrote each clip's caption before it
                blocks += [{"type": "text", "text": part}] if isinstance(part, str) else frame_blocks(part, quality)
            messages.append(HumanMessage(content=blocks))  # type: ignore[arg-type]
    return messages


def _split_tool_calls(text: str, turn: int) -> tuple[str, list[Any]]:
    """An assistant text without its ``<tool_call>`` tags, and those calls as native calls."""
    parsed = protocol.parse(text, "tool")
    if not parsed.tool_calls:
        return text, []
    kept, cut = [], 0
    calls = []
    for k, call in enumerate(parsed.tool_calls):
        kept.append(text[cut : call.region.start])
        cut = call.region.end
        calls.append({"name": call.name, "args": dict(call.arguments), "id": f"call_{turn}_{k}", "type": "tool_call"})
    kept.append(text[cut:])
    return "".join(kept).strip(), calls
