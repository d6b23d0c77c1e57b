"""The README's "In LangChain and LangGraph apps" snippets run as written (issue 13).

They run in order from a folder holding ``videos/clip.mp4`` and ``./tiny-model``, with the
virtual environment's commands on ``PATH``. Python snippets get ``model``, a fake chat
model scripted for that snippet; shell lines run with bash, and the one that starts
``langgraph dev`` stays up (on a free port instead of the README's) for the SDK snippet after it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_vllm import free_port
from langchain_core.messages import AIMessage, ToolMessage

from tests.lc_fakes import scripted_chat
from zoom_agent.datasets.synthetic_video import write_synthetic_video
from zoom_agent.protocol import format_answer

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
SECTION = "### In LangChain and LangGraph apps"
README_PORT = "2025"


def snippets() -> list[tuple[str, str]]:
    """``(language, code)`` of each fenced block of the section, in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.index("\n### ", start + len(SECTION))
    return re.findall(r"```(python|bash)\n(.*?)```", text[start:end], flags=re.S)


def tool_call(name: str, args: dict[str, Any]) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": "c1", "type": "tool_call"}])


SCRIPTS = {  # what the fake chat model answers, by a phrase of the snippet
    "create_agent": lambda: [tool_call("temporal_zoom", {"video": "clip.mp4", "start": 2, "end": 5}), "It is 3."],
    "LangChainVLM": lambda: [tool_call("temporal_zoom", {"start": 2, "end": 5}), format_answer("A", [(2.0, 5.0)])],
}


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    from zoom_agent.models.tiny import build_tiny_model

    (tmp_path / "videos").mkdir()
    write_synthetic_video(tmp_path / "videos" / "clip.mp4", duration=8.0, fps=5.0, size=(96, 64), num_events=1)
    build_tiny_model(tmp_path / "tiny-model", "qwen2_5_vl")
    shutil.copy(ROOT / "langgraph.json", tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LANGSMITH_TRACING", "false")
    yield tmp_path


def start_server(line: str, port: int) -> subprocess.Popen[bytes]:
    from langgraph_sdk import get_sync_client

    proc = subprocess.Popen(["bash", "-c", line], start_new_session=True, stdout=subprocess.DEVNULL)
    client, deadline = get_sync_client(url=f"http://127.0.0.1:{port}"), time.monotonic() + 180
    while True:
        try:
            client.assistants.search(graph_id="zoom_agent")
            return proc
        except Exception:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{line!r} did not start a server") from None
            time.sleep(0.5)


def test_readme_snippets_run(folder: Path):
    blocks = snippets()
    assert [lang for lang, _ in blocks] == ["python", "python", "bash", "python", "bash", "python", "bash"]
    port = str(free_port())
    servers: list[subprocess.Popen[bytes]] = []
    try:
        for lang, code in blocks:
            code = code.replace(README_PORT, port)
            if lang == "bash":
                for line in filter(None, (raw.split("  #")[0].strip() for raw in code.splitlines())):
                    if "langgraph dev" in line:
                        servers.append(start_server(line, int(port)))
                    else:
                        subprocess.run(["bash", "-c", line], check=True, timeout=600)
                continue
            namespace: dict[str, Any] = {"__name__": "readme"}
            for phrase, script in SCRIPTS.items():
                if phrase in code:
                    namespace["model"] = scripted_chat(script())
            exec(compile(code, "README.md", "exec"), namespace)
            if "create_agent" in code:
                tool_message = next(m for m in namespace["reply"]["messages"] if isinstance(m, ToolMessage))
                assert tool_message.status == "success" and "zoomed 2.0-5.0 s" in tool_message.content
            if "LangChainVLM" in code:
                assert namespace["result"].status == "answered" and len(namespace["result"].zooms) == 1
            if "runs.wait" in code:
                assert namespace["answer"]["status"] in ("answered", "unanswered"), namespace["answer"]
            if "MultiServerMCPClient" in code:
                assert {t.name for t in namespace["tools"]} == {"temporal_zoom"}
    finally:
        for proc in servers:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    assert (folder / "runs" / "synth" / "view" / "index.html").is_file()
