"""The offline difficulty filter (their data filter, docs/method.md §4), run before training.

Every question is rolled out ``group_size`` times with the initial policy and kept when its
group has spread (`rewards.difficulty_keep`). The kept ids are written to the run's folder,
so a resumed run does not filter again.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

from zoom_agent.config import AgentConfig
from zoom_agent.training.config import TrainConfig
from zoom_agent.training.core.rewards import difficulty_keep, trajectory_rewards
from zoom_agent.training.loop import distributed as dist
from zoom_agent.training.rollout.engine import RolloutEngine
from zoom_agent.types import Question

FILTER_FILE = "difficulty_filter.json"


async def filter_by_difficulty(
    engine: RolloutEngine,
    questions: Sequence[Question],
    agent: AgentConfig,
    *,
    group_size: int,
    seed: int,
    batch: int = 16,
    concurrency: int = 8,
    keep_all_wrong: bool = False,
) -> list[Question]:
    """Keep the questions whose group of rollouts has spread.

    Rolls out every question ``group_size`` times with the initial policy and keeps it when
    `rewards.difficulty_keep` holds for the group's IoU and answer rewards (the same
    `rewards.trajectory_rewards` as training; the zoom part is not needed here).
    """
    kept: list[Question] = []
    for lo in range(0, len(questions), batch):
        chunk = list(questions[lo : lo + batch])
        trajs = await engine.rollouts(
            chunk, agent, group_size=group_size, seed=seed, first_group=lo, concurrency=concurrency
        )
        for i, q in enumerate(chunk):
            parts = [
                trajectory_rewards(q, t.result, zoom=0.0, weights={}, dialect=agent.dialect)
                for t in trajs[i * group_size : (i + 1) * group_size]
            ]
            if difficulty_keep([p["iou"] for p in parts], [p["answer"] for p in parts], keep_all_wrong=keep_all_wrong):
                kept.append(q)
    return kept


def kept_questions(
    engine: RolloutEngine, questions: Sequence[Question], config: TrainConfig, ctx: dist.DistContext
) -> list[Question]:
    """The questions the filter keeps: read from ``OUTPUT_DIR/difficulty_filter.json`` when a
    run already filtered, else filtered on the main rank and written there for every rank.

    Raises:
        ValueError: the filter kept no question.
    """
    ids_file = Path(config.output_dir) / FILTER_FILE
    if ctx.is_main and load_question_ids(ids_file, questions) is None:
        group = config.filter_group_size or config.group_size
        kept = asyncio.run(
            filter_by_difficulty(
                engine,
                questions,
                config.agent,
                group_size=group,
                seed=config.seed,
                keep_all_wrong=config.difficulty_keep_all_wrong,
            )
        )
        save_question_ids(ids_file, kept)
    dist.barrier(ctx)
    kept = load_question_ids(ids_file, questions) or []
    if not kept:
        raise ValueError("the difficulty filter kept no question: every group was too easy or too hard")
    return kept


def save_question_ids(path: Path, questions: Sequence[Question]) -> None:
    """Write the kept question ids (so a resumed run does not filter again)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([q.id for q in questions]) + "\n")


def load_question_ids(path: Path, questions: Sequence[Question]) -> list[Question] | None:
    """The questions whose ids `save_question_ids` wrote, in the given order; None if absent."""
    if not path.is_file():
        return None
    ids = set(json.loads(path.read_text()))
    return [q for q in questions if q.id in ids]
