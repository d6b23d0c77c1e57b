"""Core value types and the budget config."""

import pytest
from pydantic import ValidationError

from zoom_agent.config import AgentConfig, Budget
from zoom_agent.types import ClipRef, Question, Span, VideoInfo


def test_question_answer_must_index_an_option():
    q = Question(id="q", video="v.mp4", question="?", options=("a", "b", "c"), answer=2)
    assert q.answer_letter == "C" and q.letters == "ABC"
    with pytest.raises(ValidationError, match="outside the 3 options"):
        Question(id="q", video="v.mp4", question="?", options=("a", "b", "c"), answer=3)
    with pytest.raises(ValidationError, match="outside the 0 options"):
        Question(id="q", video="v.mp4", question="?", answer=0)


def test_values_are_frozen_and_round_trip_json():
    span = Span(start=1.0, end=2.5)
    with pytest.raises(ValidationError):
        span.start = 3.0  # type: ignore[misc]
    ref = ClipRef(
        path="v.mp4",
        span=span,
        frame_indices=(10, 20),
        timestamps=(1.0, 2.0),
        fps=10,
        num_source_frames=100,
        width=56,
        height=28,
        visual_tokens=2,
        role="zoom",
    )
    assert ClipRef.model_validate_json(ref.model_dump_json()) == ref
    assert ref.describe() == "1.0-2.5 s: 2 frames at 56x28"


def test_clipref_lengths_must_agree():
    with pytest.raises(ValidationError, match="same length"):
        ClipRef(
            path="v",
            span=Span(start=0, end=1),
            frame_indices=(0, 1),
            timestamps=(0.0,),
            fps=1,
            num_source_frames=2,
            width=28,
            height=28,
            visual_tokens=1,
        )


def test_videoinfo_rejects_nonpositive():
    with pytest.raises(ValidationError):
        VideoInfo(path="v", duration=0, fps=25, num_frames=0, width=1, height=1)


def test_budget_defaults_follow_their_code():
    from zoom_agent.geometry import GEOMETRY

    b = Budget()
    assert b.visual_tokens == 8192
    # their code's pixel bounds for Qwen2.5-VL (28-px tokens), the same token counts at 32 px
    assert b.pixel_bounds(GEOMETRY["qwen2_5_vl"]) == (int(1.05 * 16 * 28 * 28), 768 * 28 * 28)
    assert b.pixel_bounds(GEOMETRY["qwen3_vl"]) == (int(1.05 * 16 * 32 * 32), 768 * 32 * 32)
    assert not {"patch", "temporal_patch"} & set(Budget.model_fields)  # the geometry is the model's


def test_derived_views_share_one_factory():
    b = Budget()
    assert b.view(0.25).visual_tokens == 2048 and b.view(0.25).zoom_max_frames == b.zoom_max_frames
    pooled = b.view(1 / 3, zoom_max_frames=85)
    assert (pooled.visual_tokens, pooled.zoom_max_frames, pooled.fps) == (2730, 85, b.fps)
    assert Budget(visual_tokens=3).view(0.1).visual_tokens == 1  # never below one token
    with pytest.raises(ValueError, match="share"):
        b.view(0)
    with pytest.raises(ValueError, match="zoom_max_frames"):
        b.view(0.5, zoom_max_frames=0)
    with pytest.raises(ValidationError, match="min_frame_tokens"):
        Budget(min_frame_tokens=10, max_frame_tokens=5)
    config = AgentConfig(budget=b, global_context=True, context_share=0.25)
    assert config.zoom_budget().visual_tokens == 6144 and config.context_budget().visual_tokens == 2048
    assert AgentConfig(budget=b).zoom_budget() == b
