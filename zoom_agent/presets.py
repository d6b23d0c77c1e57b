"""Named presets: whole configurations under one name (docs/method.md §7).

- ``ours``: this project's defaults (`AgentConfig()` as it stands).
- ``zoomzero``: the system as the authors' released code runs it (their EasyR1/verl fork,
  ``src_eval/`` for inference, ``examples/train_stage*.sh`` for training). Every place
  where this project departs from their code is a named option of `AgentConfig` /
  `Budget` (or of training's config) that this preset turns off; docs/method.md §7 lists
  them side by side.

A preset resolves to the configuration objects: ``agent`` (inference: what ``ask`` and
``eval`` run), ``train_budget`` (the visual budget of training rollouts, which their code
samples differently from evaluation) and ``training`` (dotted ``key=value`` overrides of
`zoom_agent.training.config.TrainConfig`, applied as a recipe's ``--override`` would be;
the training half owns those keys).
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from zoom_agent.config import AgentConfig, Budget

PresetName = Literal["ours", "zoomzero"]
PRESET_NAMES: tuple[PresetName, ...] = get_args(PresetName)

# Their evaluation (src_eval/my_qwen_utils.py, eval_gqa_tts.py): fps 1.0, at least 128 and at
# most 1,024 frames, total pixels 8,192 tokens, at most int(2 * L_v / 16.8) frames.
ZOOMZERO_EVAL_BUDGET = Budget(
    visual_tokens=8192, fps=1.0, min_frames=128, max_frames=1024, zoom_max_frames=256, floor_frame_cap=True
)
# Their training (verl/utils/vision_process.py): fps 2.0, at least 96 and at most 1,024 frames,
# then the same floor cap (975 frames at 8,192 tokens).
ZOOMZERO_TRAIN_BUDGET = Budget(
    visual_tokens=8192, fps=2.0, min_frames=96, max_frames=1024, zoom_max_frames=256, floor_frame_cap=True
)
# Their long-video evaluation (eval_*_zoom.py): 16,384 tokens for the whole video.
ZOOMZERO_LONG_VIDEO_TOKENS = 16384


# Their training (verl/utils/reward_score/tvg_zoom.py, the stage scripts' compute_score=tvg_zoom):
# TrainConfig overrides, the training half's departures turned off (docs/training.md §3).
ZOOMZERO_TRAINING: dict[str, Any] = {
    "agent.budget": ZOOMZERO_TRAIN_BUDGET.model_dump(),  # the rollouts' (and the verifier's) sampling
    "reward.rules": "official",
    "reward.invalid_glue_format": 0.0,
    "reward.parts_need_answer": False,
    # examples/train_stage*.sh, dp_actor.update_policy, torch_functional.py, core_algos.py
    "optim.horizon": 500,
    "optim.warmup_from_zero": True,
    "optim.mini_batch_size": 64,
    "loss.aggregation": "seq-mean-token-mean",
    "loss.kl_value_clamp": 10.0,
    "credit.zero_constant_groups": False,
    "credit.single_response": "raw",
    "credit.answer_on_reasoning_in_a": True,
    "difficulty_keep_all_wrong": True,
    "reward.verifier_view": "pooled",
    "reward.verifier_prompt": "official",
    "reward.verifier_gate": "glue",
}


class Preset(BaseModel):
    """One named configuration: inference, training rollouts' budget, training overrides."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: PresetName
    summary: str
    agent: AgentConfig = Field(description="inference: the agent's configuration (ask, eval)")
    train_budget: Budget = Field(description="visual budget of training rollouts")
    training: dict[str, Any] = Field(
        default_factory=dict,
        description="dotted TrainConfig overrides (as `load_recipe` applies them); owned by zoom_agent.training",
    )


def _ours() -> Preset:
    agent = AgentConfig()
    return Preset(name="ours", summary="this project's defaults", agent=agent, train_budget=agent.budget)


def _zoomzero() -> Preset:
    agent = AgentConfig(
        dialect="zoomzero",
        budget=ZOOMZERO_EVAL_BUDGET,
        max_zoom_rounds=1,  # one fixed zoom
        zoom_pad=10.0,  # eval_gqa_tts.py: max(start - 10, 0), end + 10
        format_retries=0,  # no re-asks in their evaluation
        temperature=0.0,
        max_tokens=512,
        fine_pass="fresh",
        fine_share=0.5,  # total_pixels=4096 for the fine request
        confidence="official",
        prompts="official",
        divide="official",
        long_video_tokens=ZOOMZERO_LONG_VIDEO_TOKENS,
        long_video_fps=2.0,  # eval_*_zoom.py: --fps 2.0
        request_token_cap=ZOOMZERO_LONG_VIDEO_TOKENS,
    )
    return Preset(
        name="zoomzero",
        summary="the authors' released code (xiaoqian-shen/Zoom-Zero), every departure of ours off",
        agent=agent,
        train_budget=ZOOMZERO_TRAIN_BUDGET,
        training=ZOOMZERO_TRAINING,
    )


_BUILDERS = {"ours": _ours, "zoomzero": _zoomzero}


def preset(name: str) -> Preset:
    """The preset called ``name``.

    Raises:
        ValueError: an unknown name; the message lists the known ones.

    Example:
        >>> preset("zoomzero").agent.fine_pass
        'fresh'
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown preset {name!r}; expected one of {', '.join(PRESET_NAMES)}")
    return _BUILDERS[name]()
