"""The zoom agent on OpenAIVLM against a local HTTP server with faults injected:
connection refused, 429/500/503, timeouts, dropped connections, a server that dies
mid-run. Every question the fault schedule allows is answered; the rest are recorded as
failures ("error"), never lost; retries and backoff are bounded; keys never leak."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest
from fake_vllm import Arrival, FakeVLLM, Fault, free_port, make_videos

from zoom_agent.agent import ZoomAgent
from zoom_agent.config import AgentConfig, Budget
from zoom_agent.models.served import OpenAIVLM
from zoom_agent.types import GroundedAnswer, Question, VideoInfo

CONFIG = AgentConfig(budget=Budget(visual_tokens=256))
FAMILY = "qwen2_5_vl"  # the fake server's model name does not spell one
BACKOFF = (0.01, 0.05)


@pytest.fixture(scope="module")
def infos(tmp_path_factory: pytest.TempPathFactory) -> list[VideoInfo]:
    return make_videos(tmp_path_factory.mktemp("videos"), 3)


def questions(infos: list[VideoInfo], tags: list[str]) -> list[Question]:
    """One question per tag; the tag is in the question text, so fault rules can key on it."""
    return [
        Question(
            id=f"q{i}-{tag}",
            video=infos[i % len(infos)].path,
            question=f"[{tag}-{i}] What colour is the square?",
            options=("red", "green", "blue", "yellow"),
        )
        for i, tag in enumerate(tags)
    ]


async def ask_all(
    vlm: OpenAIVLM, qs: list[Question], infos: list[VideoInfo], *, concurrency: int = 8
) -> list[GroundedAnswer]:
    agent = ZoomAgent(vlm, CONFIG)
    by_path = {i.path: i for i in infos}
    gate = asyncio.Semaphore(concurrency)

    async def one(q: Question) -> GroundedAnswer:
        async with gate:
            return await agent.arun(q, info=by_path[q.video])

    return list(await asyncio.gather(*(one(q) for q in qs)))


def statuses(results: list[GroundedAnswer]) -> dict[str, str]:
    return {r.question_id: r.status for r in results}


async def test_transient_429_500_503_and_drops_are_retried_and_answered(infos):
    plan = {0: Fault("status", 429, retry_after=0.02), 1: Fault("status", 503), 2: Fault("status", 500)}

    def rule(a: Arrival) -> Fault | None:
        if "[flaky" in a.text:
            return plan.get(a.attempt)
        return Fault("drop") if "[drop" in a.text and a.attempt == 0 else None

    qs = questions(infos, ["flaky", "drop", "ok", "flaky", "ok", "drop"])
    async with FakeVLLM(faults=rule) as server:
        vlm = OpenAIVLM(server.url, max_retries=5, backoff=BACKOFF, timeout=5, family=FAMILY)
        results = await ask_all(vlm, qs, infos)
    assert [r.status for r in results] == ["answered"] * 6 and all(r.answer == "B" for r in results)
    # two turns per question; flaky turns fail 3 times, dropped turns once
    assert vlm.stats.retries == 2 * (2 * 3 + 2 * 1) and vlm.stats.failures == 0
    assert server.statuses[429] == server.statuses[503] == server.statuses[500] == 4
    assert server.statuses[200] == 12
    assert 0 < vlm.stats.backoff_max_s <= BACKOFF[1]
    assert vlm.stats.errors["HTTP 429"] == 4 and vlm.stats.errors["ServerDisconnectedError"] == 4


async def test_permanent_failures_become_error_results_and_the_rest_is_answered(infos):
    def rule(a: Arrival) -> Fault | None:
        return Fault("status", 500) if "[doomed" in a.text else None

    qs = questions(infos, ["ok", "doomed", "ok", "ok", "doomed", "ok"])
    async with FakeVLLM(faults=rule) as server:
        vlm = OpenAIVLM(server.url, max_retries=3, backoff=BACKOFF, timeout=5, family=FAMILY)
        results = await ask_all(vlm, qs, infos)
    assert [r.question_id for r in results] == [q.id for q in qs]
    assert [r.status for r in results] == ["answered", "error", "answered", "answered", "error", "answered"]
    for r in results[1::3]:
        assert r.error is not None and server.url in r.error and "4 attempts" in r.error
        assert "InternalServerError" in r.error and "500" in r.error
    assert server.statuses[500] == 2 * 4 and vlm.stats.failures == 2
    assert 0 < vlm.stats.backoff_max_s <= BACKOFF[1]  # backoff is bounded: 3 waits of at most 0.05 s each


async def test_slow_responses_time_out_and_are_retried(infos):
    # A slow answer would take 600 s; the client gives each attempt 2 s. The margins are
    # wide on purpose: a loaded machine can make a normal answer slow, never 600 s slow.
    def rule(a: Arrival) -> Fault | None:
        if "[stuck" in a.text or ("[slow" in a.text and a.attempt == 0):
            return Fault("slow", seconds=600.0)
        return None

    qs = questions(infos, ["slow", "stuck", "ok"])
    async with FakeVLLM(faults=rule) as server:
        vlm = OpenAIVLM(server.url, max_retries=2, backoff=BACKOFF, timeout=2.0, family=FAMILY)
        t0 = time.perf_counter()
        results = await ask_all(vlm, qs, infos)
        elapsed = time.perf_counter() - t0
    assert [r.status for r in results] == ["answered", "error", "answered"]
    assert "3 attempts" in (results[1].error or "") and "Timeout" in (results[1].error or "")
    # slow: each of its 2 turns timed out once; stuck: 3 attempts at its first turn
    assert vlm.stats.errors["TimeoutError"] == 2 + 3 and vlm.stats.retries == 2 + 2
    assert server.statuses[200] == 2 + 2  # no slow answer was ever finished: the client hung up
    assert elapsed < 300  # and it never waited for one


async def test_connection_refused_ends_each_question_as_an_error(infos):
    url = f"http://127.0.0.1:{free_port()}/v1"
    vlm = OpenAIVLM(url, max_retries=2, backoff=BACKOFF, timeout=2, family=FAMILY)
    results = await ask_all(vlm, questions(infos, ["a", "b", "c"]), infos)
    assert [r.status for r in results] == ["error"] * 3
    assert all(url in (r.error or "") and "ConnectionRefusedError" in (r.error or "") for r in results)
    assert vlm.stats.attempts == 9 and 0 < vlm.stats.backoff_max_s <= BACKOFF[1]


async def test_a_server_that_dies_mid_run_fails_only_the_questions_after(infos):
    def rule(a: Arrival) -> Fault | None:
        return Fault("die") if a.index == 6 else None

    qs = questions(infos, ["x"] * 8)
    async with FakeVLLM(latency=0.01, faults=rule) as server:
        vlm = OpenAIVLM(server.url, max_retries=2, backoff=BACKOFF, timeout=2, family=FAMILY)
        results = await ask_all(vlm, qs, infos, concurrency=1)  # in order: 2 turns per question
        assert not server.running
    assert [r.status for r in results] == ["answered"] * 3 + ["error"] * 5  # nothing lost
    assert server.statuses[200] == 6 and server.arrivals == 7  # later tries found no server
    assert all("ConnectionRefusedError" in (r.error or "") for r in results[3:])
    assert vlm.stats.attempts == 6 + 5 * 3  # the dying try counts as the first of q3


async def test_with_a_replica_a_dying_server_costs_no_question(infos):
    def rule(a: Arrival) -> Fault | None:
        return Fault("die") if a.index == 3 else None

    qs = questions(infos, ["x"] * 8)
    async with FakeVLLM(latency=0.01, faults=rule) as dying, FakeVLLM(latency=0.01) as healthy:
        # No timeout can fire on a loaded machine: a death drops connections, it never stalls.
        vlm = OpenAIVLM(
            [dying.url, healthy.url], max_retries=2, backoff=BACKOFF, timeout=120, concurrency=4, family=FAMILY
        )
        results = await ask_all(vlm, qs, infos)
        assert dying.dead and not dying.running
    assert [r.status for r in results] == ["answered"] * 8
    # What the dying server had answered counts; what was in flight when it died was
    # retried on the replica: each of the 16 turns answered exactly once.
    assert dying.statuses[200] <= 3 and dying.statuses[200] + healthy.statuses[200] == 16
    assert vlm.stats.failures == 0 and vlm.stats.per_endpoint[healthy.url] >= 13


async def test_the_evaluation_runner_records_every_question_once(infos, tmp_path: Path):
    from zoom_agent.eval import read_results, run_eval

    def rule(a: Arrival) -> Fault | None:
        if "[doomed" in a.text:
            return Fault("status", 503)
        return Fault("status", 429) if a.attempt == 0 and a.index % 3 == 0 else None

    qs = questions(infos, ["ok", "doomed", "ok", "ok", "ok", "doomed", "ok", "ok"])
    async with FakeVLLM(faults=rule) as server:
        vlm = OpenAIVLM(server.url, max_retries=2, backoff=BACKOFF, timeout=5, family=FAMILY)
        await run_eval(ZoomAgent(vlm, CONFIG), qs, tmp_path, concurrency=4, progress=False)
    lines = read_results(tmp_path)
    assert len(lines) == len(qs)
    got = {line["id"]: line["result"]["status"] for line in lines}
    assert got == {q.id: ("error" if "doomed" in q.id else "answered") for q in qs}
    assert vlm.stats.retries >= 2 * 3


async def test_api_keys_never_reach_logs_results_or_errors(infos, monkeypatch, caplog):
    secret = "sk-live-ZZZ-9f8e7d6c5b4a-never-log-me"
    monkeypatch.setenv("ZA_FAULT_KEY", secret)
    caplog.set_level(logging.DEBUG)  # openai, httpx and aiohttp debug logs included

    def rule(a: Arrival) -> Fault | None:
        return Fault("status", 500) if "[doomed" in a.text else None

    async with FakeVLLM(api_key=secret, faults=rule) as server:
        vlm = OpenAIVLM(server.url, api_key_env="ZA_FAULT_KEY", max_retries=1, backoff=BACKOFF, family=FAMILY)
        results = await ask_all(vlm, questions(infos, ["ok", "doomed"]), infos)
    assert [r.status for r in results] == ["answered", "error"]  # the key was sent and accepted
    assert caplog.records, "expected debug logs to inspect"
    for text in [caplog.text, repr(vlm), *(r.model_dump_json() for r in results)]:
        assert secret not in text
