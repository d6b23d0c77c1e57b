"""Any LangChain chat model drives the zoom agent (issue 13 §2, §3, §6).

A recording fake chat model (langchain_core's GenericFakeChatModel underneath) stands in
for ChatOpenAI & co: it sees the frames as image blocks, its native tool calls become
zooms, its usage is counted, its runs reach callbacks and its tokens stream.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.utils.function_calling import convert_to_openai_tool

from tests.lc_fakes import scripted_chat
from zoom_agent.agent import ZoomAgent, make_question
from zoom_agent.config import AgentConfig, Budget
from zoom_agent.datasets.synthetic_video import write_synthetic_video
from zoom_agent.models import ScriptedVLM, load_model
from zoom_agent.models.langchain import LangChainVLM, reply_text
from zoom_agent.models.lc_messages import image_count
from zoom_agent.protocol import format_answer

CONFIG = AgentConfig(budget=Budget(visual_tokens=256))
USAGE = {"input_tokens": 321, "output_tokens": 7, "total_tokens": 328}


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("lcm") / "v.mp4"
    write_synthetic_video(path, duration=8.0, fps=5.0, size=(96, 64), num_events=1, seed=3)
    return str(path)


def zoom_then_answer() -> list[AIMessage]:
    native_call = {"name": "temporal_zoom", "args": {"start": 2.0, "end": 5.0}, "id": "z1", "type": "tool_call"}
    return [
        AIMessage(content="Let me look closer.", tool_calls=[native_call], usage_metadata=USAGE),
        AIMessage(content=format_answer("B", [(2.0, 5.0)]), usage_metadata=USAGE),
    ]


def test_native_tool_calls_zoom_and_the_model_sees_the_frames(video: str):
    chat = scripted_chat(zoom_then_answer())
    result = ZoomAgent(LangChainVLM(chat), CONFIG).ask(video, "Which shape?", ["circle", "square"])
    assert result.status == "answered" and result.answer == "B"
    assert len(result.zooms) == 1 and result.zooms[0].clip is not None
    first, second = chat.seen
    assert sum(image_count(m) for m in first) == result.turns[0].clips[0].num_frames
    # second call: the earlier call as a native tool call answered by a ToolMessage, then the zoomed frames
    ai = next(m for m in second if isinstance(m, AIMessage))
    tool = next(m for m in second if isinstance(m, ToolMessage))
    assert ai.tool_calls[0]["args"] == {"start": 2.0, "end": 5.0} and tool.tool_call_id == ai.tool_calls[0]["id"]
    assert image_count(second[-1]) == result.zooms[0].clip.num_frames
    assert [convert_to_openai_tool(t)["function"]["name"] for t in chat.bound_tools] == ["temporal_zoom"]
    assert (result.prompt_tokens, result.completion_tokens) == (2 * 321, 2 * 7)  # usage counted


def test_reply_text_writes_native_calls_as_protocol_tags():
    message = AIMessage(content="x", tool_calls=[{"name": "temporal_zoom", "args": {"start": 1, "end": 2}, "id": "a"}])
    assert (
        reply_text(message) == 'x<tool_call>{"name": "temporal_zoom", "arguments": {"start": 1, "end": 2}}</tool_call>'
    )


def test_load_model_wraps_chat_models_and_refuses_what_is_not_a_vlm():
    assert isinstance(load_model(scripted_chat(["x"])), LangChainVLM)

    class SyncGenerate:  # what a ChatOpenAI looked like to the old runtime Protocol check
        def generate(self, messages: Any) -> Any:
            return None

    with pytest.raises(TypeError, match="async def generate"):
        load_model(SyncGenerate())
    with pytest.raises(ValueError, match="nosuchprovider:model"):
        load_model("nosuchprovider:model")
    scripted = ScriptedVLM(["x"])
    assert load_model(scripted) is scripted


def test_model_runs_reach_callbacks_with_the_clips_and_tokens_stream(video: str):
    class Recorder(BaseCallbackHandler):
        def __init__(self) -> None:
            self.starts: list[dict[str, Any]] = []

        def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
            self.starts.append(kwargs.get("metadata") or {})

    recorder = Recorder()
    agent = ZoomAgent(LangChainVLM(scripted_chat(zoom_then_answer())), CONFIG)
    question = make_question(video, "Which shape?", ["circle", "square"])
    run = agent._run_kwargs(None)
    run["config"]["callbacks"] = [recorder]

    async def stream() -> list[Any]:
        chunks = []
        async for _mode, chunk in agent.graph.astream({"question": question}, stream_mode=["messages"], **run):
            chunks.append(chunk)
        return chunks

    chunks = asyncio.run(stream())
    assert len(recorder.starts) == 2
    assert recorder.starts[0]["zoom_agent_clips"][0].startswith("0.0-8.0 s")
    assert any("2.0-5.0 s" in c for c in recorder.starts[1]["zoom_agent_clips"])
    tokens = "".join(str(message.content) for message, meta in chunks if meta.get("langgraph_node") == "model")
    assert "Let me look closer." in tokens and len(chunks) > 4  # token by token


class LoopBoundVLM(ScriptedVLM):
    """Like an httpx/openai async client: bound to the loop of its first call."""

    loop: asyncio.AbstractEventLoop | None = None

    async def generate(self, request: Any) -> Any:
        loop = asyncio.get_running_loop()
        if self.loop is not None and (self.loop is not loop or loop.is_closed()):
            raise RuntimeError("Event loop is closed")
        self.loop = loop
        return await super().generate(request)


def test_ask_works_repeatedly_and_inside_a_running_loop(video: str):
    answer = format_answer("A", [(1.0, 2.0)])
    agent = ZoomAgent(LoopBoundVLM(lambda request: answer), CONFIG)
    first = agent.ask(video, "q1", ["a", "b"])
    second = agent.ask(video, "q2", ["a", "b"])
    assert first.status == second.status == "answered", (first.error, second.error)

    async def from_a_notebook_cell() -> str:
        return agent.ask(video, "q3", ["a", "b"]).status

    assert asyncio.run(from_a_notebook_cell()) == "answered"
    assert Path(video).exists()
