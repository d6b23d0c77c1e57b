"""``zoom-agent mcp`` through a real MCP client (langchain-mcp-adapters), over stdio and
streamable HTTP on loopback (issue 13 §5): frames come back as images, errors as tool
errors, and path escapes and oversized requests are refused."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_vllm import free_port
from langchain_mcp_adapters.client import MultiServerMCPClient
from langchain_mcp_adapters.tools import load_mcp_tools

from zoom_agent.datasets.synthetic_video import write_synthetic_video
from zoom_agent.models.lc_messages import image_count

pytestmark = pytest.mark.slow
CLI = str(Path(sys.executable).with_name("zoom-agent"))


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("mcp")
    folder = base / "videos"
    folder.mkdir()
    write_synthetic_video(folder / "v.mp4", duration=8.0, fps=5.0, size=(96, 64), num_events=1, seed=4)
    write_synthetic_video(base / "secret.mp4", duration=2.0, fps=5.0, size=(64, 48), num_events=1)
    os.symlink(base / "secret.mp4", folder / "link.mp4")
    return folder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from zoom_agent.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "m", "qwen2_5_vl")


def server_args(root: Path, model: Path, *extra: str) -> list[str]:
    return [
        "mcp",
        "--video-root",
        str(root),
        "--model",
        str(model),
        "--max-zoom-frames",
        "6",
        "--max-tokens",
        "16",
        *extra,
    ]


def call(name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_call", "id": "c1", "name": name, "args": args}


async def exercise(tools: dict[str, Any], root: Path) -> None:
    zoom, ask = tools["temporal_zoom"], tools["ask_video"]
    ok = await zoom.ainvoke(call("temporal_zoom", {"video": "v.mp4", "start": 2, "end": 5, "frames": 4}))
    assert ok.status == "success" and image_count(ok) == 4, ok.content
    assert "zoomed 2.0-5.0 s" in str(ok.content)
    refused = {
        "../secret.mp4": "escapes the video root",
        str(root / ".." / "secret.mp4"): "escapes the video root",
        "/etc/hostname": "escapes the video root",
        "link.mp4": "outside the video root",
    }
    for video, reason in refused.items():
        bad = await zoom.ainvoke(call("temporal_zoom", {"video": video, "start": 0, "end": 1}))
        assert bad.status == "error" and reason in str(bad.content), (video, bad.content)
    too_many = await zoom.ainvoke(call("temporal_zoom", {"video": "v.mp4", "start": 0, "end": 8, "frames": 500}))
    assert too_many.status == "error" and "1..6" in str(too_many.content)
    backwards = await zoom.ainvoke(call("temporal_zoom", {"video": "v.mp4", "start": 5, "end": 2}))
    assert backwards.status == "error" and "after end" in str(backwards.content)
    long_question = await ask.ainvoke(call("ask_video", {"video": "v.mp4", "question": "x" * 5000}))
    assert long_question.status == "error" and "question must have" in str(long_question.content)
    rounds = await ask.ainvoke(call("ask_video", {"video": "v.mp4", "question": "q?", "max_zoom_rounds": 50}))
    assert rounds.status == "error" and "max_zoom_rounds" in str(rounds.content)
    answered = await ask.ainvoke(
        call("ask_video", {"video": "v.mp4", "question": "Which shape?", "options": ["a", "b"]})
    )
    assert answered.status == "success" and '"status"' in str(answered.content), answered.content


def test_stdio(root: Path, tiny_model: Path):
    client = MultiServerMCPClient(
        {"zoom": {"transport": "stdio", "command": CLI, "args": server_args(root, tiny_model), "env": dict(os.environ)}}
    )

    async def run() -> None:
        async with client.session("zoom") as session:
            tools = {t.name: t for t in await load_mcp_tools(session)}
            assert set(tools) == {"temporal_zoom", "ask_video"}
            await exercise(tools, root)

    asyncio.run(run())


@pytest.fixture
def http_server(root: Path, tiny_model: Path, tmp_path: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    args = [CLI, *server_args(root, tiny_model, "--transport", "http", "--port", str(port))]
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"the MCP server did not start: {log.read_text()[-2000:]}") from None
                    time.sleep(0.2)
            yield f"http://127.0.0.1:{port}/mcp", proc.pid
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def test_streamable_http_on_loopback(root: Path, http_server: tuple[str, int]):
    import psutil

    url, pid = http_server
    client = MultiServerMCPClient({"zoom": {"transport": "streamable_http", "url": url}})

    async def run() -> None:
        async with client.session("zoom") as session:
            await exercise({t.name: t for t in await load_mcp_tools(session)}, root)

    asyncio.run(run())
    listening = [c.laddr for c in psutil.Process(pid).net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening)  # loopback only
