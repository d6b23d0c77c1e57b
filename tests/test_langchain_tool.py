"""The zoom tool inside a real LangChain agent (``create_agent``) driven by a fake chat model.

Issue 13 §1: the model must see the zoomed frames, bad windows must be tool errors, one
tool must serve many videos under a root, and the artifact must survive a checkpoint.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver

from tests.lc_fakes import scripted_chat
from zoom_agent.config import Budget
from zoom_agent.datasets.synthetic_video import write_synthetic_video
from zoom_agent.models.lc_messages import image_count
from zoom_agent.tools.langchain import zoom_result, zoom_tool
from zoom_agent.tools.middleware import ZoomFramesMiddleware
from zoom_agent.types import VideoInfo

BUDGET = Budget(visual_tokens=256)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("videos")
    write_synthetic_video(folder / "a.mp4", duration=8.0, fps=5.0, size=(96, 64), num_events=1, seed=1)
    write_synthetic_video(folder / "b.mp4", duration=6.0, fps=5.0, size=(96, 64), num_events=1, seed=2)
    return folder


def call(name: str, args: dict[str, object], id_: str = "c1") -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": id_, "type": "tool_call"}])


def test_model_sees_the_zoomed_frames_and_the_checkpoint_keeps_references(root: Path):
    model = scripted_chat([call("temporal_zoom", {"video": "a.mp4", "start": 2, "end": 5}), "(A) done"])
    agent = create_agent(
        model,
        [zoom_tool(video_root=root, budget=BUDGET)],
        middleware=[ZoomFramesMiddleware()],
        checkpointer=InMemorySaver(),
    )
    config = {"configurable": {"thread_id": "t1"}}
    out = agent.invoke({"messages": [HumanMessage("what is on the card?")]}, config)
    second_call = model.seen[1]
    frames_message = second_call[-1]
    assert isinstance(frames_message, HumanMessage) and "Zoomed video 2.0-5.0 s" in frames_message.content[0]["text"]
    result = zoom_result(next(m for m in out["messages"] if isinstance(m, ToolMessage)))
    assert result is not None and result.clip is not None
    assert image_count(frames_message) == result.clip.num_frames >= 2
    # the state (and so the checkpoint) holds no image: only the reference
    assert sum(image_count(m) for m in out["messages"]) == 0
    saved = agent.get_state(config).values["messages"]
    tool_message = next(m for m in saved if isinstance(m, ToolMessage))
    assert zoom_result(tool_message) == result  # the artifact survives the round trip
    assert len(pickle.dumps(saved)) < 20_000


def test_inline_frames_travel_in_the_tool_message(root: Path):
    tool = zoom_tool(video=root / "b.mp4", budget=BUDGET, frames="inline", name="zoom_b")
    assert set(tool.args) == {"start", "end"} and tool.name == "zoom_b"
    message = tool.invoke({"type": "tool_call", "id": "c1", "name": "zoom_b", "args": {"start": 1, "end": 3}})
    assert message.status == "success" and image_count(message) == zoom_result(message).clip.num_frames


def test_bad_window_is_a_tool_error_the_model_reads(root: Path):
    model = scripted_chat([call("temporal_zoom", {"video": "a.mp4", "start": 6, "end": 2}), "(A)"])
    agent = create_agent(model, [zoom_tool(video_root=root)], middleware=[ZoomFramesMiddleware()])
    out = agent.invoke({"messages": [HumanMessage("q")]})
    tool_message = next(m for m in out["messages"] if isinstance(m, ToolMessage))
    assert tool_message.status == "error" and "start 6 is after end 2" in tool_message.content
    assert model.seen[1][-1] is not None and image_count(model.seen[1][-1]) == 0


@pytest.mark.parametrize("video", ["../outside.mp4", "/etc/passwd", "missing.mp4", "link.mp4"])
def test_paths_outside_the_root_are_refused(root: Path, tmp_path: Path, video: str):
    outside = tmp_path / "outside.mp4"
    write_synthetic_video(outside, duration=2.0, fps=5.0, size=(64, 48), num_events=1)
    link = root / "link.mp4"
    if not link.exists():
        os.symlink(outside, link)
    tool = zoom_tool(video_root=root)
    message = tool.invoke(
        {"type": "tool_call", "id": "c", "name": "temporal_zoom", "args": {"video": video, "start": 0, "end": 1}}
    )
    assert message.status == "error" and ("video root" in message.content or "not an existing file" in message.content)


def test_two_videos_two_named_tools_in_one_agent(root: Path):
    tools = [zoom_tool(video=root / "a.mp4", name="zoom_a"), zoom_tool(video=root / "b.mp4", name="zoom_b")]
    model = scripted_chat(
        [call("zoom_a", {"start": 1, "end": 3}, "x"), call("zoom_b", {"start": 1, "end": 3}, "y"), "ok"]
    )
    agent = create_agent(model, tools, middleware=[ZoomFramesMiddleware(tool_names=["zoom_a", "zoom_b"])])
    out = agent.invoke({"messages": [HumanMessage("q")]})
    paths = [zoom_result(m).clip.path for m in out["messages"] if isinstance(m, ToolMessage)]
    assert [Path(p).name for p in paths] == ["a.mp4", "b.mp4"]


def test_tool_needs_exactly_one_video_source(root: Path):
    with pytest.raises(ValueError, match="exactly one of video"):
        zoom_tool()
    with pytest.raises(ValueError, match="exactly one of video"):
        zoom_tool(video="a.mp4", video_root=root)


def test_a_video_info_plans_without_the_file():
    info = VideoInfo(path="v.mp4", duration=60, fps=10, num_frames=600, width=640, height=480)
    message = zoom_tool(video=info).invoke(
        {"type": "tool_call", "id": "c", "name": "temporal_zoom", "args": {"start": 2, "end": 6}}
    )
    assert message.content.startswith("zoomed 2.0-6.0 s") and zoom_result(message).clip.path == "v.mp4"
