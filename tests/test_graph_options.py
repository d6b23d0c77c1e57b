"""Build options of the zoom graph (issue 13 §4): compile options pass through, an optional
human approval of each zoom round (``interrupt``), and checkpoints that load without
"unregistered type" warnings."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from zoom_agent.agent import ZoomAgent, make_question
from zoom_agent.config import AgentConfig, Budget
from zoom_agent.datasets.synthetic_video import write_synthetic_video
from zoom_agent.graphs import ZoomContext, build_zoom_graph
from zoom_agent.graphs.approval import decided_calls
from zoom_agent.models import ScriptedVLM
from zoom_agent.protocol import format_answer, format_tool_call
from zoom_agent.types import GroundedAnswer, Question

CONFIG = AgentConfig(budget=Budget(visual_tokens=256))


class Parent(TypedDict, total=False):
    """An application's graph state that embeds the zoom graph as a node."""

    question: Question
    result: GroundedAnswer


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("options") / "v.mp4"
    write_synthetic_video(path, duration=8.0, fps=5.0, size=(96, 64), num_events=1)
    return path


def zoom_then_answer() -> ScriptedVLM:
    return ScriptedVLM([format_tool_call(2.0, 5.0), format_answer("A", [(2.0, 5.0)])])


@pytest.mark.parametrize(
    ("decision", "windows"),
    [(True, [(2.0, 5.0)]), ([{"start": 6.0, "end": 7.5}], [(6.0, 7.5)]), (False, [])],
)
def test_zoom_rounds_wait_for_approval(video: Path, decision: object, windows: list[tuple[float, float]]):
    agent = ZoomAgent(zoom_then_answer(), CONFIG, checkpointer=InMemorySaver(), approve_zooms=True)
    question = make_question(video, "Which shape?", ["a", "b"])

    async def run() -> tuple[str | None, object]:
        paused = await agent.arun(question, thread_id="t")
        return paused.error, await agent.resume("t", decision)

    error, result = asyncio.run(run())
    assert error is not None and "paused for zoom approval" in error and "'start': 2.0" in error
    assert [z.clip.span.as_tuple() for z in result.zooms if z.clip] == windows
    assert result.status == "answered" and result.answer == "A"


def test_bad_decisions_and_approval_without_checkpointer_are_refused():
    with pytest.raises(ValueError, match="True, False or a list"):
        decided_calls([{"name": "temporal_zoom", "arguments": {}}], "yes")
    with pytest.raises(ValueError, match="checkpointer"):
        ZoomAgent(zoom_then_answer(), CONFIG, approve_zooms=True)


def test_compile_options_pass_through(video: Path):
    graph = build_zoom_graph(checkpointer=InMemorySaver(), interrupt_before=["zoom"], name="my-zoom")
    assert graph.name == "my-zoom"
    run = {
        "config": {"configurable": {"thread_id": "t"}},
        "context": ZoomContext(model=zoom_then_answer(), config=CONFIG),
    }
    asyncio.run(graph.ainvoke({"question": make_question(video, "q", ["a", "b"])}, **run))
    assert graph.get_state(run["config"]).next == ("zoom",)


def test_checkpoints_load_without_unregistered_type_warnings(video: Path, caplog: pytest.LogCaptureFixture):
    saver = InMemorySaver()
    agent = ZoomAgent(zoom_then_answer(), CONFIG, checkpointer=saver)
    with caplog.at_level(logging.WARNING):
        result = asyncio.run(agent.arun(make_question(video, "q", ["a", "b"]), thread_id="t"))
        state = agent.graph.get_state({"configurable": {"thread_id": "t"}})
    assert result.status == "answered" and state.values["result"] == result
    assert not [r for r in caplog.records if "unregistered type" in r.getMessage()]


def test_a_parent_graph_can_invoke_the_zoom_graph_synchronously(video: Path):
    builder = StateGraph(Parent, context_schema=ZoomContext)
    builder.add_node("zoom_agent", build_zoom_graph())
    builder.add_edge(START, "zoom_agent")
    builder.add_edge("zoom_agent", END)
    parent = builder.compile()
    context = ZoomContext(model=zoom_then_answer(), config=CONFIG)
    question = make_question(video, "q", ["a", "b"])
    parts = list(
        parent.stream({"question": question}, stream_mode=["custom", "values"], subgraphs=True, context=context)
    )
    result = [chunk for _, mode, chunk in parts if mode == "values"][-1]["result"]
    assert result.status == "answered" and [z.clip.span.as_tuple() for z in result.zooms] == [(2.0, 5.0)]
    custom = [chunk for _, mode, chunk in parts if mode == "custom"]
    assert [e["step"] for e in custom] == ["model", "zoom", "model"]  # run config reached the nodes
