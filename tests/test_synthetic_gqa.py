"""The learnable grounded-QA task (splits, kinds, legibility), its eval task and data source,
and the small model preset."""

from __future__ import annotations

from pathlib import Path

import pytest

from zoom_agent.datasets.synthetic_gqa import GQA_TASK, SPLITS, legibility, make_gqa_split
from zoom_agent.eval.tasks import get_task
from zoom_agent.geometry import GEOMETRY


def test_splits_have_three_kinds_and_their_own_videos(tmp_path: Path) -> None:
    by_split = {split: make_gqa_split(tmp_path, split, num_videos=2) for split in SPLITS}
    for split, questions in by_split.items():
        assert {q.qtype for q in questions} == {"grounding", "coarse", "fine"}
        assert all(q.id.startswith(f"{split}-") and q.task == GQA_TASK for q in questions)
        assert all(q.options is not None and len(q.options) == 4 and q.gt_spans for q in questions)
        assert all(Path(q.video).parent == tmp_path / split for q in questions)
    # different seeds: the same question slot asks about different events in each split
    events = {split: tuple(q.question for q in qs) + tuple(q.gt_spans for q in qs) for split, qs in by_split.items()}
    assert len(set(events.values())) == len(SPLITS)
    again = make_gqa_split(tmp_path, "test", num_videos=2)  # cached videos reused, same questions
    assert again == by_split["test"]


def test_unknown_split_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="split must be one of train, validation, test"):
        make_gqa_split(tmp_path, "dev", num_videos=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="split must be one of"):
        get_task(GQA_TASK, video_root=str(tmp_path), split="dev").questions()


@pytest.mark.parametrize("family", sorted(GEOMETRY))
def test_digit_is_legible_only_in_a_zoom(family: str) -> None:
    """The coarse view keeps under 3/4 of a pixel per font dot; a zoom on one event about one."""
    seen = legibility(GEOMETRY[family])  # type: ignore[index]
    assert seen.coarse_dot < 0.75, seen
    assert seen.zoom_dot >= 0.95, seen


def test_eval_task_and_training_data_source(tmp_path: Path) -> None:
    from zoom_agent.training.config import DataConfig
    from zoom_agent.training.loop.data import load_questions

    task = get_task(GQA_TASK, video_root=str(tmp_path), split="validation", num_videos=1)
    assert task.kind == "grounded_qa" and len(task.questions()) == 8
    data = DataConfig(kind="synthetic-gqa", synthetic_split="validation", split_videos=1, synthetic_dir=str(tmp_path))
    assert load_questions(data, tmp_path) == task.questions()


def test_small_size_preset_is_the_real_architecture_with_millions_of_parameters() -> None:
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from zoom_agent.models.tiny import _model_config, build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    counts = {}
    for size in ("tiny", "small"):
        config = _model_config("qwen2_5_vl", tok, size)
        with torch.device("meta"):
            counts[size] = sum(p.numel() for p in Qwen2_5_VLForConditionalGeneration(config).parameters())
    assert counts["tiny"] < 500_000
    assert counts["small"] == 1_012_672  # measured, docs/training.md §8
