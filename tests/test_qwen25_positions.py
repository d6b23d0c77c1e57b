"""Qwen2.5-VL text after a video starts at max(video positions) + 1, as in Qwen's reference and vLLM.

The real-vLLM check is tests/vllm_cpu/test_rollout_engine.py (log-probs of a 4-group clip
equal vLLM's); these run without vLLM.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from zoom_agent.models.qwen25_positions import follow_reference_positions, reference_text_positions


def test_text_after_a_video_moves_past_its_time_axis() -> None:
    # text(3) | video: 2 temporal groups of 1x1 tokens, time step 5 | text(2); as transformers 5.x gives them
    t = [0, 1, 2, 3, 8, 4, 5]
    hw = [0, 1, 2, 3, 3, 4, 5]
    positions = torch.tensor([t, hw, hw]).unsqueeze(1)
    kinds = torch.tensor([[0, 0, 0, 2, 2, 0, 0]])
    fixed, deltas = reference_text_positions(positions, kinds)
    assert fixed[:, 0].tolist() == [[0, 1, 2, 3, 8, 9, 10], [0, 1, 2, 3, 3, 9, 10], [0, 1, 2, 3, 3, 9, 10]]
    assert deltas.tolist() == [[11 - 7]]


def test_padding_is_skipped_and_text_only_rows_are_unchanged() -> None:
    positions = torch.tensor([[[1, 0, 1, 2, 6, 3]], [[1, 0, 1, 2, 2, 3]], [[1, 0, 1, 2, 2, 3]]]).expand(3, 2, 6).clone()
    positions[:, 1] = torch.tensor([1, 0, 1, 2, 3, 4])  # row 1: left padding then text only
    kinds = torch.tensor([[0, 0, 0, 2, 2, 0], [0, 0, 0, 0, 0, 0]])
    mask = torch.tensor([[0, 1, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1]])
    fixed, deltas = reference_text_positions(positions, kinds, mask)
    assert fixed[0, 0].tolist() == [1, 0, 1, 2, 6, 7]  # the padded slot keeps its value
    assert fixed[:, 1].tolist() == positions[:, 1].tolist()
    assert deltas.tolist() == [[8 - 5], [5 - 5]]


def test_the_transformers_backend_uses_the_reference_positions(tmp_path: Path) -> None:
    from zoom_agent.config import Budget
    from zoom_agent.datasets.synthetic import make_synthetic_task
    from zoom_agent.models.base import Turn, VLMRequest
    from zoom_agent.models.hf import TransformersVLM
    from zoom_agent.models.tiny import build_tiny_model
    from zoom_agent.planning import plan_clip
    from zoom_agent.types import Span
    from zoom_agent.video import open_video

    vlm = TransformersVLM(build_tiny_model(tmp_path / "model", "qwen2_5_vl"), dtype="float32")
    video = make_synthetic_task(tmp_path / "task", num_videos=1, duration=10.0, fps=4.0, size=(160, 120))[0].video
    info = open_video(video).info
    clip = plan_clip(info, Span(start=0.0, end=10.0), Budget(visual_tokens=64), vlm.geometry, max_frames=8)
    inputs = vlm.render_inputs(VLMRequest(turns=(Turn(role="user", content=("Look:", clip, "What is it?")),)))
    assert int(inputs["video_grid_thw"][0, 0]) > 1, "a clip of several temporal groups"
    positions, _ = vlm.model.model.get_rope_index(
        inputs["input_ids"],
        mm_token_type_ids=inputs["mm_token_type_ids"],
        video_grid_thw=inputs["video_grid_thw"],
        second_per_grid_ts=inputs["second_per_grid_ts"],
        attention_mask=inputs["attention_mask"],
    )
    kinds = inputs["mm_token_type_ids"][0]
    video = kinds.nonzero().flatten()
    after = int(video[-1]) + 1
    assert int(positions[0, 0, after]) == int(positions[:, 0, video].max()) + 1
    assert int(positions[0, 0, after]) > int(positions[1, 0, video].max()) + 1, "the time axis outran the side"


def test_a_model_without_the_method_is_refused() -> None:
    with pytest.raises(TypeError, match="get_rope_index"):
        follow_reference_positions(torch.nn.Linear(1, 1))
