"""Every command and snippet of README.md runs as written (issue 12; CI runs this file).

The README's fenced blocks are read in order. A ``bash`` or ``python`` block runs unless
the line before it is a marker ``<!-- ci: skip (why) -->``; every other block must name
its language (``text``). The runnable blocks run one after another in one empty folder, as a
new user would from a fresh clone (the clone's ``langgraph.json`` is copied in), with the
virtual environment's commands first on ``PATH`` and ``ZOOM_AGENT_SMOKE=1``
(`zoom_agent.cli.smoke`: ``eval`` answers a few questions, ``train`` runs a few steps).
Bash blocks run with ``bash -euo pipefail``; Python blocks run in their own interpreter.

What the README cannot show a fake: a snippet that uses ``model`` (any LangChain chat
model) gets a scripted fake one defined before it (`PREAMBLES`), and a few snippets get
checks after them (`CHECKS`). The block that starts ``langgraph dev`` stays up, on a free
port instead of the README's, for the SDK snippet after it.

`test_readme_block_runs_here_or_says_why` lists each skipped block with its reason in
pytest's summary (``-ra``) and fails when a block that cannot run here (it installs
packages, names a hub model, a ``/data`` path or a ``...`` placeholder) has no marker.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from fake_vllm import free_port

from zoom_agent.cli import main
from zoom_agent.cli.smoke import SMOKE_ENV, SMOKE_QUESTIONS, SMOKE_STEPS, smoke_mode
from zoom_agent.eval.report import REPORT_FILE

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
README_PORT = "2025"
RUNS = ("bash", "python")
BLOCK = re.compile(
    r"^(?:<!--\s*ci:\s*skip\s*(?:\((?P<reason>[^)]*)\))?\s*-->\n)?```(?P<lang>[\w-]*)\n(?P<code>.*?)^```\s*$",
    re.S | re.M,
)
HUB = "it names a hub model"
# What marks a block that cannot run on a CI machine (no GPU, no hub, no datasets).
CANNOT_RUN_HERE = {
    r"\bpip install\b": "it installs packages (CI's own set-up does that)",
    r"(?<![\w.])/data/": "it reads a dataset under /data",
    r"\.\.\.": "it has a '...' placeholder",
    r"\b(?:Qwen|OpenGVLab|llava-hf)/[\w.-]+": HUB,
    r"\btorchrun\b|\baccelerate launch\b": "it needs several processes or GPUs",
}


@dataclass(frozen=True)
class Block:
    """One fenced block of the README."""

    line: int
    lang: str
    code: str
    skip: str | None  # the marker's reason; None when the block runs

    @property
    def where(self) -> str:
        return f"README.md:{self.line}"


def readme_blocks(text: str) -> list[Block]:
    """The fenced blocks of ``text``, in order, with their skip markers."""
    blocks = []
    for m in BLOCK.finditer(text):
        line = text.count("\n", 0, m.start("lang")) + 1
        skip = None
        if m.group(0).startswith("<!--"):
            skip = (m.group("reason") or "").strip()
        blocks.append(Block(line, m.group("lang"), m.group("code"), skip))
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))


HUB_OK = "--dry-run"  # a command that only prints what it would run may name a hub model


def cannot_run_here(code: str) -> list[str]:
    """Why ``code`` cannot run on a CI machine (empty: it can), in `CANNOT_RUN_HERE` order."""
    commands = code.replace("\\\n", " ").splitlines()  # one logical line per command
    found = set()
    for pattern, why in CANNOT_RUN_HERE.items():
        for command in commands:
            if re.search(pattern, command) and not (why == HUB and HUB_OK in command):
                found.add(why)
    return [why for why in CANNOT_RUN_HERE.values() if why in found]


def test_the_parser_reads_markers_and_languages() -> None:
    text = "a\n<!-- ci: skip (needs a GPU) -->\n```bash\nnvidia-smi\n```\n\n```python\nprint(1)\n```\n"
    assert readme_blocks(text) == [
        Block(3, "bash", "nvidia-smi\n", "needs a GPU"),
        Block(7, "python", "print(1)\n", None),
    ]
    assert readme_blocks("<!-- ci: skip -->\n```bash\nx\n```\n")[0].skip == ""  # no reason: a failure below
    assert cannot_run_here("pip install vllm\nzoom-agent ask /data/x.mp4 ...") == [
        CANNOT_RUN_HERE[r"\bpip install\b"],
        CANNOT_RUN_HERE[r"(?<![\w.])/data/"],
        CANNOT_RUN_HERE[r"\.\.\."],
    ]
    assert cannot_run_here("zoom-agent eval synthetic --out runs/data/x") == []
    assert cannot_run_here("zoom-agent serve Qwen/Qwen2.5-VL-7B-Instruct \\\n  --dry-run") == []
    assert cannot_run_here("zoom-agent serve Qwen/Qwen2.5-VL-7B-Instruct") == [HUB]


def test_every_fake_and_check_finds_its_snippet() -> None:
    python = [b.code for b in BLOCKS if b.lang == "python" and b.skip is None]
    for phrase in [*PREAMBLES, *CHECKS]:
        assert any(phrase in code for code in python), f"no README snippet has {phrase!r}: update the test"


def test_every_fence_of_the_readme_is_a_block() -> None:
    fences = sum(1 for line in README.read_text(encoding="utf-8").splitlines() if line.startswith("```"))
    assert fences == 2 * len(BLOCKS), "a fence the parser did not pair: indented, or inside another block?"
    unnamed = [b.where for b in BLOCKS if not b.lang]
    assert not unnamed, f"blocks without a language (write ```text for non-code): {unnamed}"


@pytest.mark.parametrize("block", BLOCKS, ids=[b.where for b in BLOCKS])
def test_readme_block_runs_here_or_says_why(block: Block) -> None:
    if block.skip is not None:
        assert block.skip, f"{block.where}: a ci: skip marker needs its reason: <!-- ci: skip (why) -->"
        pytest.skip(f"{block.where} ({block.lang}) not run in CI: {block.skip}")
    if block.lang not in RUNS:
        pytest.skip(f"{block.where} is {block.lang}, not code")
    reasons = cannot_run_here(block.code)
    assert not reasons, (
        f"{block.where} runs in CI but {'; '.join(reasons)}: make it run here, or put "
        "'<!-- ci: skip (why) -->' on the line before it"
    )


# --- running the README -----------------------------------------------------------------


@pytest.mark.parametrize(("value", "on"), [("1", True), ("yes", True), ("", False), ("0", False), ("false", False)])
def test_smoke_mode_reads_the_variable(monkeypatch: pytest.MonkeyPatch, value: str, on: bool) -> None:
    monkeypatch.setenv(SMOKE_ENV, value)
    assert smoke_mode() is on


def test_smoke_mode_shrinks_an_eval_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(SMOKE_ENV, "1")
    out = tmp_path / "run"
    assert (
        main(["eval", "synthetic", "--model", "oracle", "--num-videos", "3", "--out", str(out), "--no-progress"]) == 0
    )
    err = capsys.readouterr().err
    assert f"{SMOKE_ENV} is set: --limit all -> {SMOKE_QUESTIONS}" in err and "--num-videos 3 -> 1" in err
    assert len(list((out / "videos").glob("*.mp4"))) == 1
    assert len((out / "results.jsonl").read_text().splitlines()) == SMOKE_QUESTIONS


_FAKE = """from langchain_core.messages import AIMessage
from tests.lc_fakes import scripted_chat
from zoom_agent.protocol import format_answer

def tool_call(name, args):
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": "c1", "type": "tool_call"}])

"""
# A fake chat model for the snippets that take "any LangChain chat model", by a phrase of the snippet.
PREAMBLES = {
    "create_agent": _FAKE
    + 'model = scripted_chat([tool_call("temporal_zoom", {"video": "clip.mp4", "start": 2, "end": 5}), "It is 3."])\n',
    "LangChainVLM": _FAKE
    + 'model = scripted_chat([tool_call("temporal_zoom", {"start": 2, "end": 5}), format_answer("A", [(2.0, 5.0)])])\n',
}
# What must hold after a snippet, by a phrase of the snippet.
CHECKS = {
    'ZoomAgent("./tiny-model"': 'assert result.status != "error", result.error\n',
    "create_agent": (
        "from langchain_core.messages import ToolMessage\n"
        'm = next(m for m in reply["messages"] if isinstance(m, ToolMessage))\n'
        'assert m.status == "success" and "zoomed 2.0-5.0 s" in m.content, m\n'
    ),
    "LangChainVLM": 'assert result.status == "answered" and len(result.zooms) == 1, result\n',
    "runs.wait": 'assert answer["status"] in ("answered", "unanswered"), answer\n',
    "MultiServerMCPClient": 'assert {t.name for t in tools} == {"temporal_zoom"}, tools\n',
}


def start_server(line: str, port: int, env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    """Start ``line`` (a ``langgraph dev``) in the background; return once it serves the graph."""
    from langgraph_sdk import get_sync_client

    proc = subprocess.Popen(["bash", "-c", line], cwd=cwd, env=env, start_new_session=True, stdout=subprocess.DEVNULL)
    client, deadline = get_sync_client(url=f"http://127.0.0.1:{port}"), time.monotonic() + 300
    while True:
        try:
            client.assistants.search(graph_id="zoom_agent")
            return proc
        except Exception:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{line!r} did not start a server") from None
            time.sleep(0.5)


def run_block(block: Block, folder: Path, env: dict[str, str]) -> None:
    """Run one block in ``folder``; raise with its output when it fails."""
    if block.lang == "bash":
        argv = ["bash", "-euo", "pipefail", "-c", block.code]
    else:
        before = "".join(code for phrase, code in PREAMBLES.items() if phrase in block.code)
        after = "".join(code for phrase, code in CHECKS.items() if phrase in block.code)
        script = folder / f"readme_{block.line}.py"
        script.write_text(before + block.code + after, encoding="utf-8")
        argv = [sys.executable, script.name]
    done = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, timeout=1200)
    if done.returncode != 0:
        raise AssertionError(
            f"{block.where} ({block.lang}) failed with exit status {done.returncode}:\n{block.code}\n"
            f"--- stdout ---\n{done.stdout[-4000:]}\n--- stderr ---\n{done.stderr[-4000:]}"
        )


@pytest.mark.slow
def test_the_readme_runs_as_written(tmp_path: Path) -> None:
    shutil.copy(ROOT / "langgraph.json", tmp_path)
    env = dict(os.environ)
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
            "PYTHONPATH": str(ROOT),  # the fakes in tests/
            SMOKE_ENV: "1",
            "HF_HUB_OFFLINE": "1",
            "LANGSMITH_TRACING": "false",
        }
    )
    port = str(free_port())
    servers: list[subprocess.Popen[bytes]] = []
    ran: list[str] = []
    try:
        for block in BLOCKS:
            if block.skip is not None:
                print(f"{block.where}: skipped: {block.skip}")
            if block.skip is not None or block.lang not in RUNS:
                continue
            block = Block(block.line, block.lang, block.code.replace(README_PORT, port), None)
            t0 = time.monotonic()
            if "langgraph dev" in block.code:
                servers.append(start_server(block.code.strip(), int(port), env, tmp_path))
            else:
                run_block(block, tmp_path, env)
            ran.append(block.where)
            print(f"{block.where}: ran in {time.monotonic() - t0:.0f} s ({block.lang})")  # pytest -s shows them
    finally:
        for proc in servers:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
    assert len(ran) >= 10, ran  # the README's own commands ran, not just a few
    made_by_readme = ["tiny-model/config.json", f"runs/synth/{REPORT_FILE}", f"runs/merged/{REPORT_FILE}"]
    for made in [*made_by_readme, "runs/tiny/metrics.jsonl"]:
        assert (tmp_path / made).is_file(), f"the README's commands did not make {made}"
    assert (tmp_path / "runs" / "synth" / "view" / "index.html").is_file()
    steps = (tmp_path / "runs" / "tiny" / "metrics.jsonl").read_text().count('"reward/total"')
    assert steps == SMOKE_STEPS  # the smoke size, not the recipe's 24 steps
