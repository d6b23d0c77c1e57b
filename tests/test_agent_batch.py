"""Batches (issue 13 §7): items checked up front, results as completed, a per-item timeout,
progress, early stop without losing results, and default thread ids with a checkpointer.

Ordering is forced with events, never with sleeps, so the tests hold on a loaded machine.
"""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from zoom_agent.agent import ZoomAgent, make_question
from zoom_agent.config import AgentConfig, Budget
from zoom_agent.datasets.synthetic_video import write_synthetic_video
from zoom_agent.models import ScriptedVLM, VLMRequest
from zoom_agent.protocol import format_answer

CONFIG = AgentConfig(budget=Budget(visual_tokens=256))


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("batch") / "v.mp4"
    write_synthetic_video(path, duration=4.0, fps=5.0, size=(96, 64), num_events=1)
    return path


class Gated:
    """A script that answers at once, except for questions whose text names a gate."""

    def __init__(self) -> None:
        self.gates: dict[str, asyncio.Event] = {}

    async def __call__(self, request: VLMRequest) -> str:
        text = request.turns[1].text
        for name, gate in self.gates.items():
            if name in text:
                await gate.wait()
        return format_answer("A", [(0.5, 1.5)])


def test_items_are_checked_before_anything_runs(video: Path):
    model = ScriptedVLM(lambda r: format_answer("A", [(0, 1)]))
    items = [make_question(video, "q0", ["a", "b"]), {"video": str(video), "question": "q1"}]
    with pytest.raises(TypeError, match=r"batch item 1 is a dict, expected a zoom_agent.types.Question"):
        asyncio.run(ZoomAgent(model, CONFIG).abatch(items))  # type: ignore[arg-type]
    assert model.requests == []


def test_results_come_as_completed_with_progress_and_a_timeout(video: Path):
    script = Gated()
    agent = ZoomAgent(ScriptedVLM(script), CONFIG)
    questions = [make_question(video, f"q{i}: {name}", ["a", "b"]) for i, name in enumerate(["late", "", "hang"])]
    seen: list[tuple[int, int, int]] = []

    async def run() -> list[tuple[int, str]]:
        script.gates = {"late": asyncio.Event(), "hang": asyncio.Event()}  # "hang" is never set
        order = []
        progress = lambda done, total, index, result: seen.append((done, total, index))  # noqa: E731
        async for index, result in agent.abatch_as_completed(questions, timeout=8, progress=progress):
            order.append((index, result.status if result.status != "error" else str(result.error)))
            if index == 1:
                script.gates["late"].set()  # q0 may finish only after q1 did
        return order

    order = asyncio.run(run())
    assert order == [(1, "answered"), (0, "answered"), (2, "timed out after 8 s")]
    assert seen == [(1, 3, 1), (2, 3, 0), (3, 3, 2)]


def test_stopping_early_keeps_what_finished_and_cancels_the_rest(video: Path):
    script = Gated()
    agent = ZoomAgent(ScriptedVLM(script), CONFIG)
    questions = [make_question(video, f"q{i}: {name}", ["a", "b"]) for i, name in enumerate(["hang", "", "hang"])]

    async def run() -> list[int]:
        script.gates = {"hang": asyncio.Event()}
        kept = []
        async with aclosing(agent.abatch_as_completed(questions, concurrency=3)) as results:
            async for index, _ in results:
                kept.append(index)
                break
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert pending == []  # the hanging workers were cancelled, not left behind
        return kept

    assert asyncio.run(run()) == [1]


def test_a_checkpointer_gets_one_thread_per_question_by_default(video: Path):
    saver = InMemorySaver()
    agent = ZoomAgent(ScriptedVLM(lambda r: format_answer("B", [(1, 2)])), CONFIG, checkpointer=saver)
    questions = [make_question(video, f"q{i}", ["a", "b"]) for i in range(3)]
    results = asyncio.run(agent.abatch(questions))
    assert [r.status for r in results] == ["answered"] * 3
    for q in questions:
        assert saver.get_tuple({"configurable": {"thread_id": q.id, "checkpoint_ns": ""}}) is not None


def test_bad_batch_settings_are_refused(video: Path):
    agent = ZoomAgent(ScriptedVLM(["x"]), CONFIG)
    with pytest.raises(ValueError, match="concurrency"):
        asyncio.run(agent.abatch([make_question(video, "q", None)], concurrency=0))
    with pytest.raises(ValueError, match="timeout"):
        asyncio.run(agent.abatch([make_question(video, "q", None)], timeout=-1))
