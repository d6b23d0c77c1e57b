"""The deployment graph under ``langgraph dev`` (in-memory, offline, a free loopback port),
driven through the LangGraph SDK client (issue 13 §4, §5, §6): typed schemas, a JSON-able
context, progress in ``stream_mode="custom"``, and refused path escapes and oversized
requests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_vllm import free_port
from langgraph_sdk import get_sync_client

from zoom_agent.datasets.synthetic_video import write_synthetic_video

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
LANGGRAPH = str(Path(sys.executable).with_name("langgraph"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from zoom_agent.models.tiny import build_tiny_model

    base = tmp_path_factory.mktemp("lgserver")
    videos = base / "videos"
    videos.mkdir()
    write_synthetic_video(videos / "v.mp4", duration=8.0, fps=5.0, size=(96, 64), num_events=1, seed=5)
    write_synthetic_video(base / "secret.mp4", duration=2.0, fps=5.0, size=(64, 48), num_events=1)
    model = build_tiny_model(base / "tiny", "qwen2_5_vl")
    port = free_port()
    env = dict(os.environ, ZOOM_AGENT_VIDEO_ROOT=str(videos), ZOOM_AGENT_MODELS=str(model))
    env |= {"LANGSMITH_TRACING": "false", "LANGCHAIN_TRACING_V2": "false", "HF_HUB_OFFLINE": "1"}
    log = (base / "server.log").open("wb")
    args = [LANGGRAPH, "dev", "--config", str(ROOT / "langgraph.json"), "--no-browser", "--no-reload"]
    args += ["--host", "127.0.0.1", "--port", str(port)]
    # the in-memory server keeps its state in .langgraph_api/ under its working folder
    proc = subprocess.Popen(args, cwd=base, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        client = get_sync_client(url=url)
        deadline = time.monotonic() + 180
        while True:
            try:
                assistants = client.assistants.search(graph_id="zoom_agent")
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    raise RuntimeError((base / "server.log").read_text()[-3000:]) from None
                time.sleep(0.5)
        yield client, model, assistants[0]["assistant_id"]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_schemas_are_typed(server: Any):
    client, _, assistant = server
    schemas = client.assistants.get_schemas(assistant)
    assert set(schemas["input_schema"]["properties"]) == {"video", "question", "options"}
    assert set(schemas["input_schema"]["required"]) == {"video", "question"}
    assert {"answer", "spans", "zooms", "status"} <= set(schemas["output_schema"]["properties"])
    assert set(schemas["context_schema"]["properties"]) == {"model", "visual_tokens", "max_zoom_rounds", "max_tokens"}


def test_a_run_answers_and_streams_progress(server: Any):
    client, model, _ = server
    question = {"video": "v.mp4", "question": "Which shape crosses?", "options": ["circle", "square"]}
    parts = list(
        client.runs.stream(
            None,
            "zoom_agent",
            input=question,
            context={"model": str(model), "visual_tokens": 256, "max_zoom_rounds": 1, "max_tokens": 16},
            stream_mode=["custom", "values"],
        )
    )
    custom = [p.data for p in parts if p.event == "custom"]
    assert custom[0] == {"step": "prepare"} and custom[-1] == {"step": "finalize"}
    assert any(e["step"] == "model" for e in custom)
    final = [p.data for p in parts if p.event == "values"][-1]
    assert final["status"] in ("answered", "unanswered"), final
    assert isinstance(final["zooms"], list) and isinstance(final["spans"], list)


@pytest.mark.parametrize(
    ("video", "context", "reason"),
    [
        ("../secret.mp4", {}, "escapes the video root"),
        ("/etc/hostname", {}, "escapes the video root"),
        ("v.mp4", {"max_zoom_rounds": 99}, "max_zoom_rounds must be"),
        ("v.mp4", {"max_tokens": 10**6}, "max_tokens must be"),
        ("v.mp4", {"visual_tokens": 10**9}, "visual_tokens must be"),
        ("v.mp4", {"model": "/some/other/folder"}, "is not served here"),
    ],
)
def test_escapes_and_oversized_requests_are_refused(server: Any, video: str, context: dict[str, Any], reason: str):
    client, _, _ = server
    out = client.runs.wait(None, "zoom_agent", input={"video": video, "question": "q?"}, context=context)
    assert out["status"] == "error" and reason in out["error"], out


def test_an_oversized_question_is_refused(server: Any):
    client, _, _ = server
    out = client.runs.wait(None, "zoom_agent", input={"video": "v.mp4", "question": "x" * 10_000})
    assert out["status"] == "error" and "question must have" in out["error"]


def test_repeated_options_are_an_error_status_not_a_crash(server: Any):
    client, _, _ = server
    request = {"video": "v.mp4", "question": "Which shape?", "options": ["circle", "circle"]}
    out = client.runs.wait(None, "zoom_agent", input=request)
    assert out["status"] == "error" and "expected distinct options" in out["error"], out
