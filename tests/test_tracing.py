"""The zoom graph's steps reach LangChain callbacks as tool runs and LangGraph's custom
stream as progress events (issue 13 §6), with any backend (here the scripted model)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import AsyncCallbackHandler

from zoom_agent.agent import ZoomAgent, make_question
from zoom_agent.config import AgentConfig, Budget
from zoom_agent.datasets.synthetic_video import write_synthetic_video
from zoom_agent.models import ScriptedVLM
from zoom_agent.protocol import format_answer, format_tool_call

CONFIG = AgentConfig(budget=Budget(visual_tokens=256))


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("trace") / "v.mp4"
    write_synthetic_video(path, duration=8.0, fps=5.0, size=(96, 64), num_events=1)
    return path


class ToolRuns(AsyncCallbackHandler):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    async def on_tool_start(self, serialized: Any, input_str: str, **kwargs: Any) -> None:
        self.events.append(("start", kwargs.get("inputs")))

    async def on_tool_end(self, output: Any, **kwargs: Any) -> None:
        self.events.append(("end", output))

    async def on_tool_error(self, error: BaseException, **kwargs: Any) -> None:
        self.events.append(("error", str(error)))


def test_zooms_are_tool_runs_and_progress_streams(video: Path):
    script = [format_tool_call(2.0, 5.0) + format_tool_call(7.0, 3.0), format_answer("A", [(2.0, 5.0)])]
    agent = ZoomAgent(ScriptedVLM(script), CONFIG)
    question = make_question(video, "Which shape?", ["circle", "square"])
    handler = ToolRuns()
    run = agent._run_kwargs(None)
    run["config"]["callbacks"] = [handler]

    async def stream() -> list[dict[str, Any]]:
        return [e async for e in agent.graph.astream({"question": question}, stream_mode="custom", **run)]

    events = asyncio.run(stream())
    starts = sorted(str(e[1]) for e in handler.events if e[0] == "start")
    assert starts == sorted([str({"start": 2.0, "end": 5.0}), str({"start": 7.0, "end": 3.0})])
    (end,) = [e[1] for e in handler.events if e[0] == "end"]
    assert end.name == "temporal_zoom" and end.artifact["clip"]["span"] == {"start": 2.0, "end": 5.0}
    error = next(e[1] for e in handler.events if e[0] == "error")
    assert "frame_indices" in end.artifact["clip"] and "after end" in error
    zooms = sorted((e for e in events if e["step"] == "zoom"), key=lambda e: e["call"])
    assert [z["window"] for z in zooms] == [[2.0, 5.0], None] and zooms[1]["error"]
    models = [e for e in events if e["step"] == "model"]
    assert [(m["round"], m["zoom_calls"], m["answer"]) for m in models] == [(0, 2, None), (1, 0, "A")]
