"""Training questions: loading them, and the seeded order of the data stream.

The stream is the questions in a seeded order per epoch, one epoch after another; step k
takes items ``[k * P, (k + 1) * P)`` of it (P = prompts per step). So the data position is
one number (items consumed) and a resumed run sees exactly the questions it would have.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from zoom_agent.training.config import DataConfig
from zoom_agent.types import Question


def load_questions(config: DataConfig, output_dir: str | Path, *, write: bool = True) -> list[Question]:
    """The training questions a `DataConfig` names.

    Args:
        config: the data section of the recipe.
        output_dir: the run's folder (the synthetic task goes to ``output_dir/data`` by default).
        write: may write the synthetic task (False on ranks other than 0: they read it).

    Returns:
        The questions, filtered by ``qtypes`` and cut to ``limit``.

    Raises:
        ValueError: a required path is missing, or no question is left.
    """
    if config.kind == "synthetic":
        from zoom_agent.datasets.synthetic import load_synthetic_task, make_synthetic_task

        folder = Path(config.synthetic_dir or Path(output_dir) / "data")
        if write:
            questions = make_synthetic_task(
                folder,
                num_videos=config.synthetic_videos,
                seed=config.synthetic_seed,
                **config.synthetic_video,
            )
        else:
            questions = load_synthetic_task(folder)
    elif config.kind == "synthetic-gqa":
        from zoom_agent.datasets.synthetic_gqa import make_gqa_split

        folder = Path(config.synthetic_dir or Path(output_dir) / "data")
        # Every rank may call this: videos whose sidecars match are reused, never rewritten.
        questions = make_gqa_split(
            folder, config.synthetic_split, num_videos=config.split_videos, seed=config.synthetic_seed
        )
    else:
        questions = _load_files(config)
    if config.qtypes is not None:
        questions = [q for q in questions if q.qtype in config.qtypes]
    if config.limit is not None:
        questions = questions[: config.limit]
    if not questions:
        raise ValueError(f"the data config leaves no question to train on: {config.model_dump(exclude_defaults=True)}")
    return questions


def _load_files(config: DataConfig) -> list[Question]:
    if config.kind == "stage":  # each data file names its own video folder
        from zoom_agent.datasets.stage_data import load_stage_data

        if config.path is None:
            raise ValueError("data.kind 'stage' needs data.path (the manifest YAML)")
        return load_stage_data(config.path)
    if config.path is None or config.video_root is None:
        raise ValueError(f"data.kind {config.kind!r} needs data.path and data.video_root")
    if config.kind == "nextgqa":
        from zoom_agent.datasets import load_nextgqa

        return load_nextgqa(config.path, config.split, config.video_root)
    if config.kind == "rextime":
        from zoom_agent.datasets import load_rextime

        return load_rextime(config.path, config.video_root, options_path=config.options_path)
    from zoom_agent.datasets.paths import DatasetFormatError, read_jsonl, resolve_video

    questions = []
    for n, record in read_jsonl(config.path):
        try:
            q = Question.model_validate(record)
        except ValueError as exc:
            raise DatasetFormatError(config.path, f"line {n}", f"not a Question ({exc})") from None
        questions.append(q.model_copy(update={"video": resolve_video(config.video_root, q.video)}))
    return questions


def epoch_order(num_items: int, epoch: int, seed: int, shuffle: bool) -> list[int]:
    """The item order of one epoch (seeded by ``(seed, epoch)``)."""
    order = list(range(num_items))
    if shuffle:
        random.Random(f"{seed}:{epoch}").shuffle(order)
    return order


def step_items(questions: Sequence[Question], consumed: int, count: int, *, seed: int, shuffle: bool) -> list[Question]:
    """The ``count`` questions after ``consumed`` items of the stream (epochs chained)."""
    n = len(questions)
    orders: dict[int, list[int]] = {}
    out = []
    for k in range(consumed, consumed + count):
        epoch, offset = divmod(k, n)
        if epoch not in orders:
            orders[epoch] = epoch_order(n, epoch, seed, shuffle)
        out.append(questions[orders[epoch][offset]])
    return out
