"""The evaluation runner: one line per question, per-item errors, concurrency, shards, merge."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from zoom_agent.agent import ZoomAgent
from zoom_agent.config import AgentConfig, Budget
from zoom_agent.eval import get_task, merge_results, read_results, run_eval, select
from zoom_agent.eval.results import RESULTS_FILE
from zoom_agent.eval.tasks import Task
from zoom_agent.models.base import ModelError, VLMRequest
from zoom_agent.models.scripted import ScriptedVLM
from zoom_agent.types import OPTION_LETTERS, GroundedAnswer, Question, Span, VideoInfo

CONFIG = AgentConfig(budget=Budget(visual_tokens=512))
NUMBER = re.compile(r"Question number (\d+)\?")


def make_questions(n: int, videos: int = 5) -> tuple[list[Question], dict[str, VideoInfo]]:
    """Questions on metadata-only videos (no file is ever opened: infos are passed)."""
    infos = {
        f"/videos/v{k}.mp4": VideoInfo(
            path=f"/videos/v{k}.mp4", duration=60.0, fps=10.0, num_frames=600, width=320, height=240
        )
        for k in range(videos)
    }
    questions = [
        Question(
            id=f"q{i:03d}",
            video=f"/videos/v{i % videos}.mp4",
            question=f"Question number {i}?",
            options=("a", "b", "c", "d"),
            answer=i % 4,
            gt_spans=(Span(start=float(i % 50), end=float(i % 50) + 5.0),),
            duration=60.0,
            qtype=f"type{i % 3}",
            task="synthetic",
        )
        for i in range(n)
    ]
    return questions, infos


def number_of(request: VLMRequest) -> int:
    text = "\n".join(t.text for t in request.turns if t.role == "user")
    match = NUMBER.search(text)
    assert match, "the question text is in the prompt"
    return int(match.group(1))


def reply(request: VLMRequest) -> str:
    """Right on two of three questions; a span overlapping the gt span by 4 of 6 s."""
    i = number_of(request)
    letter = OPTION_LETTERS[i % 4 if i % 3 else (i + 1) % 4]
    start = float(i % 50) + 1.0
    return f"<answer>{letter}</answer>\n<glue>[({start}, {start + 4.0})]</glue>"


def agent(script=reply, latency: float = 0.0) -> ZoomAgent:
    return ZoomAgent(ScriptedVLM(script, latency=latency), CONFIG)


def lines_of(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / RESULTS_FILE).read_text().splitlines()]


def synthetic_task() -> Task:
    """A task over the metadata questions, scored with the synthetic (grounded QA) metric set."""
    return Task("synthetic", "grounded_qa", lambda: make_questions(30)[0])


async def test_one_line_per_question_with_trace_and_timings(tmp_path: Path) -> None:
    questions, infos = make_questions(30)
    summary = await run_eval(agent(), questions, tmp_path, concurrency=4, progress=False, infos=infos)
    lines = lines_of(tmp_path)
    assert sorted(line["id"] for line in lines) == [q.id for q in questions]
    assert summary.selected == summary.ran == summary.answered == 30
    assert (summary.resumed, summary.errors, summary.missing, summary.duplicates) == (0, 0, 0, 0)
    first = next(line for line in lines if line["id"] == "q001")
    result = GroundedAnswer.model_validate(first["result"])
    assert result.answer == "B" and result.spans == (Span(start=2.0, end=6.0),)
    clip = first["result"]["turns"][0]["clips"][0]  # the trace keeps clip refs, never pixels
    assert clip["path"] == "/videos/v1.mp4" and clip["frame_indices"] and "pixels" not in json.dumps(clip)
    assert first["wall_s"] >= 0 and first["index"] == 1 and first["status"] == "answered"


async def test_limit_and_shard_select_the_right_questions(tmp_path: Path) -> None:
    questions, infos = make_questions(30)
    summary = await run_eval(agent(), questions, tmp_path, limit=10, shard=(1, 3), progress=False, infos=infos)
    assert sorted(line["id"] for line in lines_of(tmp_path)) == ["q001", "q004", "q007"]
    assert summary.selected == 3
    assert [i for i, _ in select(questions, limit=10, shard=(1, 3))] == [1, 4, 7]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"shard": (3, 3)}, "0 <= k < n"), ({"shard": (0, 0)}, "0 <= k < n"), ({"limit": -1}, "limit")],
)
def test_bad_selection_is_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        select(make_questions(3)[0], **kwargs)


def test_repeated_question_ids_are_refused() -> None:
    q = make_questions(1)[0][0]
    with pytest.raises(ValueError, match="unique"):
        select([q, q])


async def test_per_item_errors_are_recorded_and_counted_never_fatal(tmp_path: Path) -> None:
    questions, infos = make_questions(12)
    missing_video = questions[3].model_copy(update={"video": str(tmp_path / "no-such-video.mp4")})
    questions[3] = missing_video  # no info for it: the graph opens the file and fails

    def flaky(request: VLMRequest) -> str:
        if number_of(request) == 5:
            raise ModelError("server said 503 after retries")
        return reply(request)

    class RaisesForOne:  # an agent that breaks its promise never to raise
        def __init__(self) -> None:
            self.inner = agent(flaky)

        async def arun(self, question: Question, *, info: VideoInfo | None = None) -> GroundedAnswer:
            if question.id == "q008":
                raise RuntimeError("boom")
            return await self.inner.arun(question, info=info)

    summary = await run_eval(RaisesForOne(), questions, tmp_path, concurrency=3, progress=False, infos=infos)
    by_id = {line["id"]: line for line in lines_of(tmp_path)}
    assert len(by_id) == 12 and summary.answered == 9
    assert summary.errors == 2 and summary.infra_errors == 1  # counted apart
    assert by_id["q003"]["status"] == "error" and "no-such-video.mp4" in by_id["q003"]["error"]
    assert by_id["q003"]["error_kind"] == "item"
    assert by_id["q005"]["status"] == "error" and "503" in by_id["q005"]["error"]
    assert by_id["q005"]["error_kind"] == "infra"  # the model call failed
    assert by_id["q008"]["error"] == "RuntimeError: boom" and by_id["q008"]["error_kind"] == "item"
    assert by_id["q008"]["result"]["status"] == "error"


async def test_a_rerun_retries_infra_errors_once_and_keeps_item_errors(tmp_path: Path) -> None:
    """The server failed two questions; a rerun (server back) answers exactly those two,
    and a broken video stays an item error; the standing line of each id is one answer."""
    questions, infos = make_questions(8)
    questions[3] = questions[3].model_copy(update={"video": str(tmp_path / "no-such-video.mp4")})
    down = {2, 5}
    calls: list[int] = []

    def failing(request: VLMRequest) -> str:
        calls.append(number_of(request))
        if number_of(request) in down:
            raise ModelError("http://127.0.0.1:8000/v1: no answer after 6 attempts; last error: connection refused")
        return reply(request)

    first = await run_eval(agent(failing), questions, tmp_path, concurrency=2, progress=False, infos=infos)
    assert (first.answered, first.errors, first.infra_errors, first.retried) == (5, 1, 2, 0)
    down.clear()
    calls.clear()
    second = await run_eval(agent(failing), questions, tmp_path, concurrency=2, progress=False, infos=infos)
    assert sorted(set(calls)) == [2, 5]  # only the infra errors ran again; the broken video did not
    assert (second.ran, second.retried, second.resumed) == (2, 2, 6)
    assert (second.answered, second.errors, second.infra_errors, second.missing) == (7, 1, 0, 0)
    standing = read_results(tmp_path)
    assert len(standing) == 8 and len(lines_of(tmp_path)) == 10  # two superseded lines stay in the file
    assert {x["id"]: x["status"] for x in standing}["q005"] == "answered"
    assert [x["id"] for x in standing if x["status"] == "error"] == ["q003"]
    third = await run_eval(
        agent(failing), questions, tmp_path, concurrency=2, progress=False, infos=infos, retry_infra_errors=False
    )
    assert third.ran == 0 and third.answered == 7


async def test_without_retry_an_infra_error_stands_and_is_counted(tmp_path: Path) -> None:
    questions, infos = make_questions(3)

    def down(request: VLMRequest) -> str:
        raise ModelError("server down")

    await run_eval(agent(down), questions, tmp_path, concurrency=1, progress=False, infos=infos)
    again = await run_eval(
        agent(down), questions, tmp_path, concurrency=1, progress=False, infos=infos, retry_infra_errors=False
    )
    assert (again.ran, again.infra_errors, again.retried) == (0, 3, 0)


async def test_concurrency_limit_is_respected_and_used(tmp_path: Path) -> None:
    questions, infos = make_questions(24)
    in_flight = peak = 0

    async def tracked(request: VLMRequest) -> str:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return reply(request)

    await run_eval(agent(tracked), questions, tmp_path, concurrency=5, progress=False, infos=infos)
    assert peak == 5


async def test_bad_concurrency_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="concurrency"):
        await run_eval(agent(), make_questions(1)[0], tmp_path, concurrency=0)


async def test_a_second_runner_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    questions, infos = make_questions(8)
    slow = run_eval(agent(latency=0.05), questions, tmp_path, concurrency=1, progress=False, infos=infos)
    first = asyncio.ensure_future(slow)
    await asyncio.sleep(0.02)
    with pytest.raises(RuntimeError, match="another evaluation"):
        await run_eval(agent(), questions, tmp_path, progress=False, infos=infos)
    assert (await first).ran == 8


async def test_a_folder_of_another_run_is_refused(tmp_path: Path) -> None:
    questions, infos = make_questions(2)
    meta = {"identity": {"task": "synthetic", "model": "a"}}
    await run_eval(agent(), questions, tmp_path, progress=False, infos=infos, meta=meta)
    other = {"identity": {"task": "synthetic", "model": "b"}}
    with pytest.raises(ValueError, match="another run"):
        await run_eval(agent(), questions, tmp_path, progress=False, infos=infos, meta=other)


async def test_shards_then_merge_equal_the_unsharded_run(tmp_path: Path) -> None:
    task = synthetic_task()
    questions = task.questions()
    infos = make_questions(30)[1]
    await run_eval(agent(), questions, tmp_path / "all", concurrency=4, progress=False, infos=infos)
    shard_dirs = [tmp_path / f"shard{k}" for k in range(3)]
    for k, folder in enumerate(shard_dirs):
        await run_eval(agent(), questions, folder, shard=(k, 3), progress=False, infos=infos)
    summary = merge_results(shard_dirs, tmp_path / "merged")
    assert (summary.lines, summary.duplicates, summary.conflicts, summary.torn_lines) == (30, 0, [], 0)

    def content(folder: Path) -> dict[str, tuple]:
        return {
            line["id"]: (line["status"], line["result"]["answer"], line["result"]["spans"])
            for line in read_results(folder)
        }

    assert content(tmp_path / "merged") == content(tmp_path / "all")
    merged = task.metrics(questions, read_results(tmp_path / "merged"))
    assert merged == task.metrics(questions, read_results(tmp_path / "all"))
    assert merged["n"] == 30 and merged["missing"] == 0


async def test_merge_counts_duplicates_and_conflicts_and_keeps_one_line_per_id(tmp_path: Path) -> None:
    questions, infos = make_questions(6)
    await run_eval(agent(), questions, tmp_path / "a", progress=False, infos=infos)
    await run_eval(agent(), questions[:3], tmp_path / "b", progress=False, infos=infos)  # same answers

    def wrong(request: VLMRequest) -> str:
        return "<answer>D</answer>\n<glue>[(0.0, 1.0)]</glue>"

    await run_eval(agent(wrong), questions[4:], tmp_path / "c", progress=False, infos=infos)
    with (tmp_path / "c" / RESULTS_FILE).open("a") as f:
        f.write('{"id": "torn')
    summary = merge_results([tmp_path / d for d in "abc"], tmp_path / "m")
    assert summary.lines == 6 and summary.duplicates == 3
    assert summary.conflicts == ["q004", "q005"]  # other spans (and answers): kept out, listed
    assert summary.torn_lines == 1
    merged = {line["id"]: line for line in lines_of(tmp_path / "m")}
    assert len(merged) == 6
    assert merged["q005"]["result"]["spans"] == [{"start": 6.0, "end": 10.0}]  # the first folder's line won


def test_merge_refuses_bad_folders(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no results\.jsonl"):
        merge_results([tmp_path], tmp_path / "m")
    (tmp_path / RESULTS_FILE).write_text("")
    with pytest.raises(ValueError, match="also a shard"):
        merge_results([tmp_path], tmp_path)
    with pytest.raises(ValueError, match="at least one"):
        merge_results([], tmp_path / "m")


def test_task_registry_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        get_task("nope")
    with pytest.raises(ValueError, match="needs ann"):
        get_task("nextgqa", video_root=str(tmp_path))
    with pytest.raises(ValueError, match="unknown arguments"):
        get_task("synthetic", video_root=str(tmp_path), colour="red")
    task = get_task("charades", ann="a.txt", durations="d.csv", video_root=str(tmp_path))
    assert task.kind == "charades" and task.args["durations"] == "d.csv"
