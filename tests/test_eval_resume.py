"""Resuming an evaluation: torn last lines, damaged files, cancellation and SIGKILL.

The scenario (questions on metadata-only videos, a scripted model that zooms then answers,
deterministic per question) is source text, so a child process and this one run the
exact same thing.

Interruptions happen at a known point, never on a timer: with ``hold_after=K`` the model
answers the first K questions it sees and holds every later one forever. Each worker of
the runner finishes (and writes) its question before it takes the next, so once every
worker holds one, exactly K result lines are on disk and nothing else can change; then
``on_all_held`` fires and the test cancels or kills. A loaded machine only makes that
point come later.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from zoom_agent.eval import read_results, run_eval, write_report
from zoom_agent.eval.results import RESULTS_FILE, merge_results
from zoom_agent.eval.tasks import Task

SCENARIO = """
import asyncio
import json
import re
from zoom_agent.agent import ZoomAgent
from zoom_agent.config import AgentConfig, Budget
from zoom_agent.models.scripted import ScriptedVLM
from zoom_agent.types import OPTION_LETTERS, Question, Span, VideoInfo

NUMBER = re.compile(r"Question number (\\d+)\\?")


def scenario(n=40, latency=0.0, hold_after=None, workers=1, on_all_held=None):
    infos = {
        f"/videos/v{k}.mp4": VideoInfo(
            path=f"/videos/v{k}.mp4", duration=60.0, fps=10.0, num_frames=600, width=320, height=240
        )
        for k in range(4)
    }
    questions = [
        Question(
            id=f"q{i:03d}", video=f"/videos/v{i % 4}.mp4", question=f"Question number {i}?",
            options=("a", "b", "c", "d"), answer=i % 4,
            gt_spans=(Span(start=float(i), end=float(i) + 6.0),), duration=60.0,
            qtype=f"type{i % 3}", task="synthetic",
        )
        for i in range(n)
    ]

    def number(request):
        return int(NUMBER.search("\\n".join(t.text for t in request.turns if t.role == "user")).group(1))

    def reply(request):
        i = number(request)
        if not any(t.role == "tool" for t in request.turns):  # coarse turn: zoom first
            call = {"name": "temporal_zoom", "arguments": {"start": i, "end": i + 8}}
            return f"<tool_call>{json.dumps(call)}</tool_call>"
        letter = OPTION_LETTERS[i % 4 if i % 5 else (i + 2) % 4]
        return f"<answer>{letter}</answer>\\n<glue>[({i + 1}.0, {i + 5 + i % 3}.0)]</glue>"

    seen, held = [], []

    async def reply_or_hold(request):
        i = number(request)
        if i not in seen:
            seen.append(i)
        if hold_after is not None and seen.index(i) >= hold_after:
            held.append(i)
            if len(held) == workers:
                on_all_held()
            await asyncio.Event().wait()  # never set: in flight until cancelled or killed
        return reply(request)

    model = ScriptedVLM(reply_or_hold, latency=latency)
    agent = ZoomAgent(model, AgentConfig(budget=Budget(visual_tokens=512)))
    return agent, questions, infos
"""


def scenario(n: int = 40, latency: float = 0.0, **hold: Any) -> tuple[Any, list, dict]:
    namespace: dict[str, Any] = {}
    exec(SCENARIO, namespace)  # the same source the child process runs
    return namespace["scenario"](n, latency, **hold)


def result_ids(out: Path) -> list[str]:
    return [json.loads(line)["id"] for line in (out / RESULTS_FILE).read_text().splitlines()]


def report(out: Path, questions: list) -> dict:
    task = Task("synthetic", "grounded_qa", lambda: questions)
    doc = write_report(out, task, questions, read_results(out), model_label="scripted", plots=False)
    return {k: doc[k] for k in ("counts", "metrics", "by_type", "rounds")}


async def test_resume_after_a_torn_last_line_redoes_it_and_runs_only_the_rest(tmp_path: Path) -> None:
    agent, questions, infos = scenario(12)
    await run_eval(agent, questions[:5], tmp_path, progress=False, infos=infos)
    path = tmp_path / RESULTS_FILE
    lines = path.read_bytes().splitlines(keepends=True)
    torn = lines[4][: len(lines[4]) // 2]  # a kill in the middle of writing line 5
    path.write_bytes(b"".join(lines[:4]) + torn)
    calls_before = len(agent.model.requests)
    summary = await run_eval(agent, questions, tmp_path, progress=False, infos=infos)
    assert summary.torn_bytes == len(torn) and summary.resumed == 4 and summary.ran == 8
    assert len(agent.model.requests) - calls_before == 8 * 2  # zoom + answer, only for the 8 not done
    assert sorted(result_ids(tmp_path)) == [q.id for q in questions]
    assert all(line.endswith(b"\n") for line in path.read_bytes().splitlines(keepends=True))


async def test_a_whole_json_line_without_its_newline_is_torn_too(tmp_path: Path) -> None:
    agent, questions, infos = scenario(3)
    await run_eval(agent, questions, tmp_path, progress=False, infos=infos)
    path = tmp_path / RESULTS_FILE
    path.write_bytes(path.read_bytes()[:-1])  # the write stopped just before "\n"
    summary = await run_eval(agent, questions, tmp_path, progress=False, infos=infos)
    assert summary.ran == 1 and sorted(result_ids(tmp_path)) == [q.id for q in questions]


async def test_a_damaged_line_before_the_end_stops_with_a_clear_error(tmp_path: Path) -> None:
    agent, questions, infos = scenario(4)
    await run_eval(agent, questions[:3], tmp_path, progress=False, infos=infos)
    path = tmp_path / RESULTS_FILE
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + "garbage\n" + "".join(lines[1:]))
    with pytest.raises(ValueError, match=r"results.jsonl: line 2 is not a result line"):
        await run_eval(agent, questions, tmp_path, progress=False, infos=infos)


async def test_errors_are_done_and_duplicates_are_counted_once(tmp_path: Path) -> None:
    agent, questions, infos = scenario(4)
    await run_eval(agent, questions, tmp_path, progress=False, infos={})  # no info, no files: all errors
    path = tmp_path / RESULTS_FILE
    path.write_text(path.read_text() + path.read_text().splitlines(keepends=True)[0])
    summary = await run_eval(agent, questions, tmp_path, progress=False, infos=infos)
    assert (summary.ran, summary.errors, summary.duplicates, summary.missing) == (0, 4, 1, 0)
    assert len(read_results(tmp_path)) == 4


async def test_cancelled_mid_run_then_resumed_gives_every_question_once(tmp_path: Path) -> None:
    all_held = asyncio.Event()
    agent, questions, infos = scenario(30, latency=0.01, hold_after=5, workers=3, on_all_held=all_held.set)
    run = asyncio.ensure_future(run_eval(agent, questions, tmp_path, concurrency=3, progress=False, infos=infos))
    await asyncio.wait_for(all_held.wait(), timeout=300)  # a guard against a hang, not a race
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert len(result_ids(tmp_path)) == 5  # the three questions in flight left nothing behind
    fresh, _, _ = scenario(30, latency=0.01)
    summary = await run_eval(fresh, questions, tmp_path, concurrency=3, progress=False, infos=infos)
    assert summary.resumed == 5 and summary.ran == 25
    assert sorted(result_ids(tmp_path)) == [q.id for q in questions]


CHILD = (
    SCENARIO
    + """
import asyncio, pathlib, sys
from zoom_agent.eval import run_eval

out, hold = sys.argv[1], {}
if len(sys.argv) > 2:  # MARKER K: hold every question after the first K; touch MARKER once both workers hold
    hold = {"hold_after": int(sys.argv[3]), "workers": 2, "on_all_held": pathlib.Path(sys.argv[2]).touch}
agent, questions, infos = scenario(40, latency=0.05, **hold)
asyncio.run(run_eval(agent, questions, out, concurrency=2, progress=False, infos=infos))
"""
)
HOLD_AFTER = 7


def run_child(out: Path, *hold: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, str(out), *hold], stderr=subprocess.PIPE)


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    killed, clean, marker = tmp_path / "killed", tmp_path / "clean", tmp_path / "all-held"
    child = run_child(killed, str(marker), str(HOLD_AFTER))
    deadline = time.monotonic() + 300  # a guard against a hang, not a race: the marker comes when it comes
    while not marker.exists():
        assert child.poll() is None, f"the child ended early: {child.stderr.read().decode() if child.stderr else ''}"
        assert time.monotonic() < deadline, "the child did not reach its hold point in 300 s"
        time.sleep(0.05)
    done = (killed / RESULTS_FILE).read_bytes()
    assert done.count(b"\n") == HOLD_AFTER and done.endswith(b"\n")  # two questions in flight
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    assert (killed / RESULTS_FILE).read_bytes() == done

    rerun = run_child(killed)
    _, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err.decode()
    agent, questions, infos = scenario(40)
    asyncio.run(run_eval(agent, questions, clean, concurrency=8, progress=False, infos=infos))

    ids = result_ids(killed)
    assert sorted(ids) == [q.id for q in questions]  # every question exactly once
    assert (killed / RESULTS_FILE).read_bytes().startswith(done.rsplit(b"\n", 1)[0])  # nothing rewritten
    assert report(killed, questions) == report(clean, questions)
    assert report(clean, questions)["counts"] == {
        "n": 40,
        "answered": 40,
        "unanswered": 0,
        "errors": 0,
        "missing": 0,
    }


# -- merging into a folder: nothing of another run is replaced --------------------------


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


async def test_merge_refuses_a_folder_of_another_run_and_redoes_its_own_merge(tmp_path: Path) -> None:
    agent, questions, infos = scenario(8)
    await run_eval(agent, questions, tmp_path / "all", progress=False, infos=infos)
    shards = [tmp_path / f"s{k}" for k in range(2)]
    for k, folder in enumerate(shards):
        await run_eval(agent, questions, folder, shard=(k, 2), progress=False, infos=infos)
    before = (tmp_path / "all" / RESULTS_FILE).read_bytes()
    with pytest.raises(FileExistsError, match=r"holds another run's results \(8 lines .*--overwrite"):
        merge_results(shards, tmp_path / "all")  # the unsharded run: same questions, its own lines
    assert (tmp_path / "all" / RESULTS_FILE).read_bytes() == before

    first = merge_results(shards, tmp_path / "m")
    merged = (tmp_path / "m" / RESULTS_FILE).read_bytes()
    again = merge_results(shards, tmp_path / "m")  # the same shards into their own merge
    assert (first.lines, again.lines) == (8, 8) and (tmp_path / "m" / RESULTS_FILE).read_bytes() == merged
    with pytest.raises(FileExistsError, match="4 lines"):  # it would drop shard 1's lines
        merge_results(shards[:1], tmp_path / "m")
    assert merge_results(shards, tmp_path / "all", overwrite=True).lines == 8
    assert sorted(result_ids(tmp_path / "all")) == [q.id for q in questions]


@pytest.mark.slow
def test_eval_merge_command_refuses_another_runs_folder_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's old example: one full run in runs/nextgqa, then its shards merged into it."""
    from zoom_agent.cli import main

    def synthetic(out: Path, *extra: str) -> list[str]:
        return ["eval", "synthetic", "--model", "oracle:0.3", "--out", str(out), "--video-root",
                str(tmp_path / "videos"), "--num-videos", "1", "--limit", "4", "--no-progress", *extra]  # fmt: skip

    assert main(synthetic(tmp_path / "run")) == 0
    shards = [str(tmp_path / f"s{k}") for k in range(2)]
    for k, folder in enumerate(shards):
        assert main(synthetic(Path(folder), "--shard", f"{k}/2")) == 0
    before = _files(tmp_path / "run")
    capsys.readouterr()
    assert main(["eval", "merge", str(tmp_path / "run"), *shards]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a run of its own" in err and "--overwrite" in err, err
    assert _files(tmp_path / "run") == before  # results.jsonl, run.json, report.md, metrics.json, plots

    other = synthetic(tmp_path / "other", "--shard", "0/2")
    other[other.index("oracle:0.3")] = "oracle:0.5"
    assert main(other) == 0
    assert main(["eval", "merge", str(tmp_path / "other"), *shards]) == 1
    assert "holds another run (task, model or agent config differ)" in capsys.readouterr().err

    assert main(["eval", "merge", str(tmp_path / "m"), *shards]) == 0
    assert main(["eval", "merge", str(tmp_path / "m"), *shards]) == 0  # re-merge in place
    assert main(["eval", "merge", str(tmp_path / "run"), *shards, "--overwrite"]) == 0
    assert json.loads((tmp_path / "run" / "run.json").read_text())["selection"]["merged_from"] == shards
