"""The named presets: ``ours`` is the defaults; ``zoomzero`` reproduces the numbers of the
authors' released code (docs/method.md §7; derived from their
``src_eval/my_qwen_utils.py``, ``verl/utils/vision_process.py`` and ``eval_gqa_tts.py``)."""

from __future__ import annotations

import pytest

from zoom_agent.cli import build_parser
from zoom_agent.cli.options import agent_config
from zoom_agent.config import AgentConfig, Budget
from zoom_agent.geometry import GEOMETRY
from zoom_agent.planning import plan_clip, plan_pooled_clip
from zoom_agent.presets import PRESET_NAMES, preset
from zoom_agent.types import Span, VideoInfo

QWEN25 = GEOMETRY["qwen2_5_vl"]


def _video(seconds: int, width: int = 640, height: int = 360) -> VideoInfo:
    return VideoInfo(path="v.mp4", duration=seconds, fps=30, num_frames=30 * seconds, width=width, height=height)


def test_ours_is_the_defaults() -> None:
    ours = preset("ours")
    assert ours.agent == AgentConfig()
    assert ours.train_budget == Budget()


def test_unknown_preset_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown preset 'paper'; expected one of ours, zoomzero"):
        preset("paper")
    assert PRESET_NAMES == ("ours", "zoomzero")


@pytest.mark.parametrize(
    ("seconds", "which", "frames", "tokens"),
    [
        # 10 s, 640x360: their eval 128 frames (fps 1, min 128) at 420x224 = 7,680 tokens;
        # their training 96 frames (min 96) at 476x252 = 7,344; ours 20 frames, 2,990 tokens.
        (10, "eval", 128, 7680),
        (10, "train", 96, 7344),
        (10, "ours", 20, 2990),
        # 600 s: their eval 600 frames (fps 1, max 1,024); training 1,024 then the floor cap
        # int(8192 / 16.8 * 2) = 975; ours 768 (qwen-vl-utils' FPS_MAX_FRAMES).
        (600, "eval", 600, None),
        (600, "train", 975, None),
        (600, "ours", 768, None),
    ],
)
def test_frame_counts_equal_their_code(seconds: int, which: str, frames: int, tokens: int | None) -> None:
    budget = {
        "eval": preset("zoomzero").agent.budget,
        "train": preset("zoomzero").train_budget,
        "ours": preset("ours").agent.budget,
    }[which]
    info = _video(seconds)
    clip = plan_clip(info, info.whole, budget, QWEN25)
    assert clip.num_frames == frames
    assert len(set(clip.frame_indices)) == frames
    if tokens is not None:
        assert clip.visual_tokens == tokens


def test_floor_cap_is_a_named_option() -> None:
    info = _video(600)
    train = preset("zoomzero").train_budget
    off = plan_clip(info, info.whole, train.model_copy(update={"floor_frame_cap": False}), QWEN25)
    on = plan_clip(info, info.whole, train, QWEN25)
    assert (off.num_frames, on.num_frames) == (1024, 975)
    assert set(on.frame_indices) <= set(off.frame_indices)  # picked from the planned frames, as theirs
    assert on.visual_tokens <= train.visual_tokens


def test_fine_pass_pooled_clip_holds_at_most_half_the_budget() -> None:
    config = preset("zoomzero").agent
    info = _video(60)
    coarse = plan_clip(info, info.whole, config.budget, QWEN25)
    padded = [Span(start=0, end=18), Span(start=10, end=45)]  # (5, 8) and (20, 35) padded by 10 s
    clip = plan_pooled_clip(info, padded, coarse, config.fine_budget(), QWEN25)
    assert config.fine_budget().visual_tokens == 4096
    assert clip.visual_tokens <= 4096
    assert clip.windows == (Span(start=0, end=45),)
    assert set(clip.frame_indices) <= set(coarse.frame_indices)


def test_verifier_clip_pools_spans_at_one_size() -> None:
    # their verifier on a 60 s video, spans (5, 8) and (20, 35), their training sampling (2 fps),
    # half the budget: about 3,960 tokens, every frame about 560x308.
    train = preset("zoomzero").train_budget
    info = _video(60)
    coarse = plan_clip(info, info.whole, train, QWEN25)
    clip = plan_pooled_clip(info, [Span(start=5, end=8), Span(start=20, end=35)], coarse, train.view(0.5), QWEN25)
    assert (clip.width, clip.height, clip.visual_tokens) == (560, 308, 3960)
    assert clip.num_frames == 36
    assert all(5 <= t <= 8 or 20 <= t <= 35 for t in clip.timestamps)


def test_pooled_clip_caps_frames_and_rejects_no_window() -> None:
    config = preset("zoomzero").agent
    info = _video(3600)
    coarse = plan_clip(info, info.whole, config.budget, QWEN25)
    clip = plan_pooled_clip(info, [Span(start=0, end=3600)], coarse, config.fine_budget(), QWEN25)
    assert clip.num_frames == 256
    with pytest.raises(ValueError, match="at least one window"):
        plan_pooled_clip(info, [], coarse, config.fine_budget(), QWEN25)


def test_cli_preset_then_flags() -> None:
    parser = build_parser()
    args = parser.parse_args(["ask", "v.mp4", "q?", "--model", "m", "--preset", "zoomzero"])
    assert agent_config(args) == preset("zoomzero").agent
    args = parser.parse_args(
        ["ask", "v.mp4", "q?", "--model", "m", "--preset", "zoomzero", "--fps", "2", "--min-frames", "96"]
    )
    config = agent_config(args)
    assert (config.budget.fps, config.budget.min_frames, config.budget.max_frames) == (2.0, 96, 1024)
    assert config.fine_pass == "fresh"
    args = parser.parse_args(
        ["ask", "v.mp4", "q?", "--model", "m", "--fine-pass", "fresh", "--long-video-tokens", "16384"]
    )
    config = agent_config(args)
    assert (config.fine_pass, config.long_video_tokens, config.dialect) == ("fresh", 16384, "tool")


def test_request_cap_below_a_view_is_refused() -> None:
    with pytest.raises(ValueError, match="request_token_cap 4096 is below one view's budget 8192"):
        AgentConfig(request_token_cap=4096)


def test_long_video_budget_in_both_settings() -> None:
    ours = AgentConfig()
    assert ours.long_budget() == ours.budget  # ours: divide and conquer uses the view's budget
    theirs = preset("zoomzero").agent.long_budget()
    assert (theirs.visual_tokens, theirs.fps, theirs.max_frames) == (16384, 2.0, 1024)
    info = _video(3600)
    whole = plan_clip(info, info.whole, theirs, QWEN25)
    assert whole.num_frames == 1024 and whole.visual_tokens <= 16384
