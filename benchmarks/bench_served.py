"""Target 3 of docs/quality.md, the served path: batch evaluation through `OpenAIVLM`.

A local OpenAI-compatible server with a fixed latency and capacity (tests/fake_vllm.py in
its own process, as a real server would be: it answers after ``--latency`` seconds, at most
``--capacity`` at once) answers the zoom agent. Each question is two requests (the coarse
turn calls the zoom tool with a frame-list video; the fine turn answers with both clips).
Printed side by side, from one run:

- ideal: capacity / latency requests per second;
- baseline: the same two request bodies per question sent by a bare ``openai.AsyncOpenAI``
  loop (the HTTP transport and the server alone, no agent, no frame encoding);
- served: ``run_eval(ZoomAgent(OpenAIVLM(url)))`` on ``--questions`` questions over real
  mp4v clips (decode, JPEG encoding, graph, parsing, JSONL results all included).

Then memory: the resident set size of this process over ``--memory-questions`` questions
(a faster server so it takes about a minute), sampled as questions finish; flat means the
growth over the second half stays under 5%.

    python benchmarks/bench_served.py [--questions 1000] [--memory-questions 10000]

With ``--vllm`` it measures a real server instead: the eval runner on vLLM's CPU build vs a
synchronous transformers loop (bench_served_vllm.py; docs/serving.md §6).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from zoom_agent import protocol
from zoom_agent.agent import ZoomAgent
from zoom_agent.config import AgentConfig, Budget
from zoom_agent.eval import run_eval
from zoom_agent.geometry import PAPER_GEOMETRY
from zoom_agent.models.base import Turn
from zoom_agent.models.chat_format import encode_clip, render_messages
from zoom_agent.models.served import OpenAIVLM, _http_client
from zoom_agent.planning import plan_clip
from zoom_agent.types import GroundedAnswer, Question, Span, VideoInfo

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))
from fake_vllm import make_videos  # noqa: E402

CONFIG = AgentConfig(budget=Budget(visual_tokens=512))


@contextmanager
def fake_server(latency: float, capacity: int) -> Iterator[str]:
    """The fake vLLM in a child process; yields its URL; stops it (SIGTERM) afterwards."""
    cmd = [
        sys.executable,
        str(TESTS / "fake_vllm.py"),
        "--latency",
        str(latency),
        "--capacity",
        str(capacity),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        if line[:1] != ["READY"]:
            raise RuntimeError(f"fake server did not start: {line}")
        yield line[1]
    finally:
        proc.terminate()
        proc.wait(10)


def make_questions(infos: list[VideoInfo], n: int) -> list[Question]:
    return [
        Question(
            id=f"b{i}",
            video=infos[i % len(infos)].path,
            question=f"Question {i}: what colour is the square?",
            options=("red", "green", "blue", "yellow"),
        )
        for i in range(n)
    ]


class Counting:
    """The agent, counting finished questions (for the memory samples)."""

    def __init__(self, agent: ZoomAgent) -> None:
        self.agent, self.done = agent, 0

    async def arun(self, question: Question, info: VideoInfo | None = None) -> GroundedAnswer:
        result = await self.agent.arun(question, info=info)
        self.done += 1
        return result


@dataclass
class Run:
    """One run_eval pass: wall and CPU seconds of this process, answers, RSS samples."""

    wall: float
    cpu: float
    answered: int
    attempts: int
    retries: int
    samples: list[tuple[int, float]]  # (questions finished, RSS MiB)


async def served_run(url: str, questions: list[Question], infos: list[VideoInfo], concurrency: int, out: Path) -> Run:
    """The questions through run_eval(ZoomAgent(OpenAIVLM)), RSS sampled every 0.25 s."""
    vlm = OpenAIVLM(url, family=PAPER_GEOMETRY.family, concurrency=concurrency, timeout=60)  # the fake server
    agent = Counting(ZoomAgent(vlm, CONFIG))
    samples: list[tuple[int, float]] = []
    me = psutil.Process()

    async def sample() -> None:
        while True:
            samples.append((agent.done, me.memory_info().rss / 2**20))
            await asyncio.sleep(0.25)

    sampler = asyncio.create_task(sample())
    by_path = {i.path: i for i in infos}
    cpu0, t0 = time.process_time(), time.perf_counter()
    summary = await run_eval(agent, questions, out, concurrency=concurrency, progress=False, infos=by_path)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    sampler.cancel()
    samples.append((agent.done, me.memory_info().rss / 2**20))
    await vlm.aclose()
    return Run(wall, cpu, summary.answered, vlm.stats.attempts, vlm.stats.retries, samples)


async def baseline_run(url: str, infos: list[VideoInfo], n: int, concurrency: int) -> float:
    """The agent's two request bodies per question, sent by a bare openai client."""
    from openai import AsyncOpenAI

    info = infos[0]
    coarse = plan_clip(info, info.whole, CONFIG.budget, PAPER_GEOMETRY)
    zoom = plan_clip(info, Span(start=1.0, end=3.0), CONFIG.budget, PAPER_GEOMETRY, role="zoom")
    encoded = {c: encode_clip(c, 90) for c in (coarse, zoom)}
    first = (Turn(role="system", content=("sys",)), Turn(role="user", content=("Video:", coarse, "Q?")))
    second = (
        *first,
        Turn(role="assistant", content=(protocol.format_tool_call(1.0, 3.0),)),
        Turn(role="tool", content=("Zoomed in on 1.0-3.0 s; the frames follow.",)),
        Turn(role="user", content=("Zoomed:", zoom, "Answer.")),
    )
    bodies = [render_messages(turns, encoded, "frames") for turns in (first, second)]
    client = AsyncOpenAI(base_url=url, api_key="EMPTY", max_retries=0, http_client=_http_client())
    model = (await client.models.list()).data[0].id
    gate = asyncio.Semaphore(concurrency)

    async def question() -> None:
        for messages, extra in bodies:
            body = {"model": model, "messages": messages, "max_tokens": 512, **extra}
            body |= {"logprobs": True, "top_logprobs": 0, "return_token_ids": True}
            async with gate:
                await client.post("/chat/completions", cast_to=object, body=body)

    t0 = time.perf_counter()
    await asyncio.gather(*(question() for _ in range(n)))
    wall = time.perf_counter() - t0
    await client.close()
    return wall


def rss_at(samples: list[tuple[int, float]], done: int) -> float:
    """RSS (MiB) at the first sample with at least ``done`` questions finished."""
    return next((rss for d, rss in samples if d >= done), samples[-1][1])


def main() -> None:
    if "--vllm" in sys.argv[1:]:  # the real-vLLM mode: bench_served_vllm.py
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_served_vllm import main as real_vllm

        real_vllm(sys.argv[1:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per answer on the server")
    parser.add_argument("--capacity", type=int, default=32, help="answers in progress at once")
    parser.add_argument("--memory-questions", type=int, default=10000)
    parser.add_argument("--memory-latency", type=float, default=0.01)
    parser.add_argument("--memory-capacity", type=int, default=64)
    args = parser.parse_args()
    concurrency = 2 * args.capacity  # questions in flight: enough to keep the server full
    with tempfile.TemporaryDirectory() as tmp:
        infos = make_videos(Path(tmp), 4)
        with fake_server(args.latency, args.capacity) as url:
            warm = make_questions(infos, 2 * concurrency)  # imports, first encodes, connections
            asyncio.run(served_run(url, warm, infos, concurrency, Path(tmp) / "warm"))
            base_wall = asyncio.run(baseline_run(url, infos, args.questions, concurrency))
            qs = make_questions(infos, args.questions)
            run = asyncio.run(served_run(url, qs, infos, concurrency, Path(tmp) / "run"))
        with fake_server(args.memory_latency, args.memory_capacity) as url:
            qs = make_questions(infos, args.memory_questions)
            memory = asyncio.run(served_run(url, qs, infos, 2 * args.memory_capacity, Path(tmp) / "memory"))
    report(args, base_wall, run, memory)


def report(args: Any, base_wall: float, run: Run, memory: Run) -> None:
    requests, n = 2 * args.questions, args.memory_questions
    ideal = args.capacity / args.latency
    print(f"served: {run.answered}/{args.questions} answered, {run.attempts} requests, {run.retries} retries")
    print(f"memory: {memory.answered}/{n} answered in {memory.wall:.1f} s")
    print(f"\n| {args.questions} questions = {requests} requests | wall s | req/s | of ideal |")
    print("|---|---:|---:|---:|")
    label = f"ideal: capacity {args.capacity} / latency {args.latency} s"
    print(f"| {label} | {requests / ideal:.2f} | {ideal:.1f} | 100% |")
    rows = (
        ("baseline: bare openai client, same bodies", base_wall),
        ("served: run_eval + agent + OpenAIVLM", run.wall),
    )
    for name, wall in rows:
        print(f"| {name} | {wall:.2f} | {requests / wall:.1f} | {requests / wall / ideal:.1%} |")
    busy = run.cpu / run.wall
    print(
        f"| client CPU (all of it: graph, frames, HTTP, JSONL) | {run.cpu:.2f} | {busy:.0%} of a core | "
        f"{run.cpu / args.questions * 1000:.1f} ms/question |"
    )
    first, half, last = (rss_at(memory.samples, k) for k in (n // 10, n // 2, n))
    growth = (last - half) / half
    print(f"\n| memory over {n} questions | RSS MiB |")
    print("|---|---:|")
    print(f"| after {n // 10} | {first:.1f} |\n| after {n // 2} | {half:.1f} |\n| after {n} | {last:.1f} |")
    print(f"| growth over the second half | {last - half:+.1f} ({growth:+.1%}; flat: {abs(growth) < 0.05}) |")


if __name__ == "__main__":
    main()
