"""Target 2 of docs/quality.md: the graph's own cost per question.

An instant scripted model (zoom once, then answer) on a metadata-only video: what is left
is the graph (LangGraph, planning, parsing, the zoom tool, arbitration). Printed beside,
from the same run: one frame decode (real mp4v file) and one tiny-model call.

    python benchmarks/bench_agent.py [--questions 500]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from zoom_agent.agent import ZoomAgent
from zoom_agent.config import AgentConfig, Budget
from zoom_agent.models.base import VLMRequest
from zoom_agent.models.scripted import ScriptedVLM
from zoom_agent.types import Question, VideoInfo

INFO = VideoInfo(path="/bench/video.mp4", duration=120.0, fps=30.0, num_frames=3600, width=1280, height=720)
ZOOM = (
    "<think>at <time>(40.0, 52.0)</time></think>\n"
    '<tool_call>{"name": "temporal_zoom", "arguments": {"start": 40, "end": 52}}</tool_call>'
)
ANSWER = "<think>I see it now.</think>\n<answer>C</answer>\n<glue>[(41.0, 50.5)]</glue>"


def instant(request: VLMRequest) -> str:
    return ANSWER if any(t.role == "tool" for t in request.turns) else ZOOM


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def graph_overhead(n: int) -> list[float]:
    agent = ZoomAgent(ScriptedVLM(instant), AgentConfig(budget=Budget()))
    question = Question(id="b", video=INFO.path, question="Which one?", options=("a", "b", "c", "d"))
    for _ in range(20):  # warm-up: imports, first compile paths
        await agent.arun(question, info=INFO)
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        result = await agent.arun(question.model_copy(update={"id": f"b{i}"}), info=INFO)
        times.append(time.perf_counter() - t0)
        assert result.answer == "C" and result.rounds == 1
    return times


def decode_cost(tmp: Path) -> float:
    from zoom_agent.datasets.synthetic import write_synthetic_video
    from zoom_agent.video import VideoSource

    path = tmp / "clip.mp4"
    write_synthetic_video(path, duration=20.0, fps=10.0, size=(640, 480))
    times = []
    for i in range(20):
        source = VideoSource(path)  # fresh cache each time
        t0 = time.perf_counter()
        source.read_indices([10 + 7 * i])
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def model_cost(tmp: Path) -> float:
    from zoom_agent.models.base import Sampling, Turn
    from zoom_agent.models.hf import TransformersVLM
    from zoom_agent.models.tiny import build_tiny_model
    from zoom_agent.planning import plan_clip
    from zoom_agent.video import open_video

    vlm = TransformersVLM(build_tiny_model(tmp / "tiny", "qwen2_5_vl"))
    info = open_video(tmp / "clip.mp4").info
    clip = plan_clip(info, info.whole, Budget(visual_tokens=512), vlm.geometry)
    request = VLMRequest(
        turns=(Turn(role="user", content=("Video:", clip, "Which one?")),), sampling=Sampling(max_tokens=32)
    )
    asyncio.run(vlm.generate(request))
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        asyncio.run(vlm.generate(request))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", type=int, default=500)
    args = parser.parse_args()
    times = asyncio.run(graph_overhead(args.questions))
    with tempfile.TemporaryDirectory() as tmp:
        decode = decode_cost(Path(tmp))
        model = model_cost(Path(tmp))
    p50, p95 = percentile(times, 0.5), percentile(times, 0.95)
    print(f"\n{args.questions} questions, 2 model turns + 1 zoom each (instant scripted model)\n")
    print("| what | ms | note |")
    print("|---|---:|---|")
    print(f"| graph overhead per question, p50 | {p50 * 1e3:.2f} | target < 5 ms |")
    print(f"| graph overhead per question, p95 | {p95 * 1e3:.2f} | target < 5 ms |")
    print(f"| one frame decode (640x480 mp4v, cold) | {decode * 1e3:.2f} | same run |")
    print(f"| one tiny-model call (32 tokens, 512 visual tokens) | {model * 1e3:.2f} | same run |")
    print(f"| overhead / tiny-model call | {p50 / model:.3f} | |")


if __name__ == "__main__":
    main()
