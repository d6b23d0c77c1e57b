"""Batch evaluation throughput and memory (docs/quality.md, target 3).

A model stub answers after a fixed latency with a fixed capacity: an ``asyncio.Semaphore``
of size C inside the model, so at most C requests are in service, like a served model
with C slots. Its ideal throughput is C / latency model calls per second. Each question
takes two model calls through the real graph (the coarse turn zooms, the fine turn
answers), with `VideoInfo` passed in so nothing is decoded.

1. Throughput: 1,000 questions through `run_eval` (results written, flushed, fsync'd);
   achieved model calls/s against the ideal (target >= 90%), beside a bare loop that
   sends the same number of calls straight to the stub (no graph, no runner).
2. Memory: 10,000 questions with an instant stub, RSS and live Python objects after 1,000
   and after 10,000 questions (target: flat), beside `ZoomAgent.abatch` (gather every
   question at once, keep every result), each in a fresh process.

    python benchmarks/bench_eval.py                     # defaults below
    python benchmarks/bench_eval.py --capacity 32 --latency 0.2 --questions 2000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any

from zoom_agent.agent import ZoomAgent
from zoom_agent.config import AgentConfig
from zoom_agent.eval import run_eval
from zoom_agent.geometry import PAPER_GEOMETRY
from zoom_agent.models.base import Completion, Turn, VLMRequest, VLMResponse
from zoom_agent.types import Question, Span, VideoInfo

INFO = VideoInfo(path="/videos/long.mp4", duration=600.0, fps=30.0, num_frames=18000, width=1280, height=720)
ZOOM = '<tool_call>{"name": "temporal_zoom", "arguments": {"start": 120.0, "end": 135.0}}</tool_call>'
ANSWER = "<think>The card shows a 7.</think>\n<answer>C</answer>\n<glue>[(121.0, 133.5)]</glue>"


class CapacityModel:
    """Answers after ``latency`` seconds, at most ``capacity`` requests in service at once."""

    def __init__(self, latency: float, capacity: int) -> None:
        self.latency = latency
        self.gate = asyncio.Semaphore(capacity)
        self.calls = 0
        self.answers = 0  # fine turns: one per question that reached its answer
        self.geometry = PAPER_GEOMETRY  # views are planned as for Qwen2.5-VL
        self.family = PAPER_GEOMETRY.family

    async def generate(self, request: VLMRequest) -> VLMResponse:
        async with self.gate:
            if self.latency:
                await asyncio.sleep(self.latency)
        self.calls += 1
        zoomed = any(t.role == "tool" for t in request.turns)
        self.answers += zoomed
        return VLMResponse(completions=(Completion(text=ANSWER if zoomed else ZOOM, finish_reason="stop"),))


def questions(n: int) -> list[Question]:
    return [
        Question(
            id=f"q{i:06d}",
            video=INFO.path,
            question=f"Which digit is on the card, question {i}?",
            options=("3", "5", "7", "9"),
            answer=2,
            gt_spans=(Span(start=120.0, end=134.0),),
            duration=INFO.duration,
        )
        for i in range(n)
    ]


def rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # not Linux: the peak is the best there is
        return peak_rss_mb()


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


# --- 1. throughput --------------------------------------------------------------------


async def throughput(n: int, capacity: int, latency: float) -> dict[str, float]:
    model = CapacityModel(latency, capacity)
    agent = ZoomAgent(model, AgentConfig())
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        summary = await run_eval(
            agent, questions(n), out, concurrency=2 * capacity, progress=False, infos={INFO.path: INFO}
        )
        elapsed = time.perf_counter() - t0
    assert summary.answered == n, summary
    return {"calls": model.calls, "seconds": elapsed, "calls_per_s": model.calls / elapsed}


async def bare_loop(calls: int, capacity: int, latency: float) -> dict[str, float]:
    """The same calls sent straight to the stub: what the stub itself allows."""
    model = CapacityModel(latency, capacity)
    request = VLMRequest(turns=(Turn(role="user", content=("hi",)),))
    pending = iter(range(calls))

    async def worker() -> None:
        for _ in pending:
            await model.generate(request)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(2 * capacity)))
    elapsed = time.perf_counter() - t0
    return {"calls": model.calls, "seconds": elapsed, "calls_per_s": model.calls / elapsed}


# --- 2. memory (each mode in a fresh process) -----------------------------------------


async def memory(mode: str, n: int, checkpoint: int) -> dict[str, float]:
    model = CapacityModel(0.0, 64)
    agent = ZoomAgent(model, AgentConfig())
    marks: dict[str, float] = {}

    async def sample() -> None:
        # Two readings in the same state (mid-run, a full wave in flight, no forced gc):
        # after `checkpoint` questions and in the last wave before the end.
        for tag, at in (("first", checkpoint), ("last", n - 64)):
            while model.answers < at:
                await asyncio.sleep(0.005)
            marks[f"rss_{tag}"] = rss_mb()
            marks[f"objects_{tag}"] = len(gc.get_objects())
            marks[f"questions_{tag}"] = model.answers

    sampler = asyncio.create_task(sample())
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        if mode == "runner":
            await run_eval(agent, questions(n), out, concurrency=32, progress=False, infos={INFO.path: INFO})
            kept = None
        else:  # the naive way: every question scheduled at once, every result kept
            kept = await _abatch_with_info(agent, questions(n))
        await sampler
    marks["peak_rss"] = peak_rss_mb()
    marks["seconds"] = time.perf_counter() - t0
    del kept
    return marks


async def _abatch_with_info(agent: ZoomAgent, qs: list[Question]) -> list[Any]:
    gate = asyncio.Semaphore(32)

    async def one(q: Question) -> Any:
        async with gate:
            return await agent.arun(q, info=INFO)

    return list(await asyncio.gather(*(one(q) for q in qs)))


def memory_in_child(mode: str, n: int, checkpoint: int) -> dict[str, float]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--memory-questions",
        str(n),
        "--checkpoint",
        str(checkpoint),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the table ------------------------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--questions", type=int, default=1000)
    p.add_argument("--capacity", type=int, default=16, help="C: requests the stub serves at once")
    p.add_argument("--latency", type=float, default=0.1, help="seconds per request")
    p.add_argument("--memory-questions", type=int, default=10_000)
    p.add_argument("--checkpoint", type=int, default=1000, help="questions done at the first memory reading")
    p.add_argument("--child", choices=["runner", "abatch"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(memory(args.child, args.memory_questions, args.checkpoint))))
        return

    ideal = args.capacity / args.latency
    run = asyncio.run(throughput(args.questions, args.capacity, args.latency))
    bare = asyncio.run(bare_loop(int(run["calls"]), args.capacity, args.latency))
    print(f"run_eval: {run['calls']:.0f} calls in {run['seconds']:.2f} s; bare loop {bare['seconds']:.2f} s")
    mem = {mode: memory_in_child(mode, args.memory_questions, args.checkpoint) for mode in ("runner", "abatch")}
    print(json.dumps(mem, indent=1))

    setup = f"{args.questions:,} q, C={args.capacity}, {args.latency * 1000:.0f} ms"
    rows = [
        ("model calls/s, run_eval (" + setup + ")", f"{run['calls_per_s']:.1f}", f"ideal {ideal:.1f}",
         f"{run['calls_per_s'] / ideal:.1%}"),
        ("model calls/s, bare loop (no graph)", f"{bare['calls_per_s']:.1f}", f"ideal {ideal:.1f}",
         f"{bare['calls_per_s'] / ideal:.1%}"),
        ("run_eval vs bare loop", f"{run['calls_per_s']:.1f}", f"{bare['calls_per_s']:.1f}",
         f"{run['calls_per_s'] / bare['calls_per_s']:.1%}"),
    ]  # fmt: skip
    r, b = mem["runner"], mem["abatch"]
    at = f"{r['questions_first']:,.0f} -> {r['questions_last']:,.0f} q"
    for label, key, unit in (("RSS MB", "rss", ".0f"), ("live Python objects", "objects", ",.0f")):
        grow_r, grow_b = r[f"{key}_last"] - r[f"{key}_first"], b[f"{key}_last"] - b[f"{key}_first"]
        rows.append(
            (
                f"{label} at {at}: run_eval vs abatch",
                f"{r[key + '_first']:{unit}} -> {r[key + '_last']:{unit}} ({grow_r:+{unit}})",
                f"{b[key + '_first']:{unit}} -> {b[key + '_last']:{unit}} ({grow_b:+{unit}})",
                f"{grow_r / grow_b:.2f}x growth" if grow_b > 0 else "–",
            )
        )
    peak = (f"{r['peak_rss']:.0f}", f"{b['peak_rss']:.0f}", f"{r['peak_rss'] / b['peak_rss']:.2f}x")
    rows.append(("peak RSS MB over the whole run: run_eval vs abatch", *peak))
    print("\n| measure | zoom-agent | baseline | ratio |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
