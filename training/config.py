"""`TrainConfig`: every knob of a GRPO run, typed, with its source; YAML recipes load into it.

Sources, as in `zoom_agent.config`: "paper" = arXiv 2512.14273 (docs/method.md); "their code"
= the authors' EasyR1/verl fork; "ours" = this project's choice. Recipes ship in
``zoom_agent/training/recipes/*.yaml`` (`available_recipes`); `load_recipe` reads one by name
or path and applies ``key=value`` overrides with dotted keys, e.g.
``optim.lr=1e-5`` or ``agent.budget.visual_tokens=1024``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from zoom_agent.config import AgentConfig
from zoom_agent.geometry import Family
from zoom_agent.presets import PresetName
from zoom_agent.training.core.rewards import PAPER_WEIGHTS, PARTS

RECIPE_SUFFIXES = (".yaml", ".yml")
_FLOAT = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PolicyConfig(_Strict):
    """The policy model (the reference and, by default, the verifier start from it too)."""

    path: str | None = Field(
        None, description="model directory (transformers format); None = build a tiny random model"
    )
    tiny_family: Family | None = Field(
        "qwen2_5_vl",
        description="family of the tiny model built into OUTPUT_DIR/tiny-model when path is None; "
        "None = no tiny model, path is required (the stage recipes)",
    )
    tiny_seed: int = Field(0, description="weight seed of the tiny model (ours)")
    tiny_size: Literal["tiny", "small"] = Field(
        "tiny", description="size preset of the built model (zoom_agent.models.tiny.SIZES); small learns synthetic-gqa"
    )
    device: str = Field("cpu", description="'cpu', 'cuda', 'cuda:1', ...; under torchrun each rank uses its own GPU")
    dtype: str = Field("float32", description="parameter dtype; bfloat16 on GPUs (their code trains in bf16)")
    train_vision_tower: bool = Field(True, description="their code: the vision tower is trainable")


class DataConfig(_Strict):
    """Where the training questions come from."""

    kind: Literal["synthetic", "synthetic-gqa", "jsonl", "nextgqa", "rextime", "stage"] = Field(
        "synthetic",
        description="synthetic = videos with known events, written offline (the toy task); synthetic-gqa = "
        "the learnable grounded-QA task's split (zoom_agent.datasets.synthetic_gqa); stage = their "
        "stage data manifest (zoom_agent.datasets.stage_data)",
    )
    path: str | None = Field(
        None,
        description="jsonl: a file of Question JSON lines; nextgqa: the annotation folder; rextime: jsonl; "
        "stage: the manifest YAML (datasets: [{json_path, data_folder}])",
    )
    video_root: str | None = Field(None, description="folder the videos live under (jsonl/nextgqa/rextime)")
    split: Literal["val", "test"] = Field("val", description="NExT-GQA split")
    options_path: str | None = Field(None, description="ReXTime options file (multiple choice)")
    synthetic_dir: str | None = Field(None, description="synthetic task folder; default OUTPUT_DIR/data")
    synthetic_videos: int = Field(4, ge=1, description="synthetic videos to write (ours)")
    synthetic_seed: int = Field(0, description="seed of the synthetic task (ours)")
    synthetic_video: dict[str, Any] = Field(
        default_factory=dict, description="duration, fps, size, num_events for the synthetic videos"
    )
    synthetic_split: Literal["train", "validation", "test"] = Field(
        "train", description="synthetic-gqa: the split (each has its own video seeds)"
    )
    split_videos: int | None = Field(
        None, ge=1, description="synthetic-gqa: videos of the split (8 questions each); None = the split's default"
    )
    qtypes: tuple[str, ...] | None = Field(None, description="keep only these question types (e.g. ['digit'])")
    limit: int | None = Field(None, ge=1, description="use at most this many questions (after qtypes)")
    shuffle: bool = Field(True, description="reshuffle the questions every epoch (seeded)")


class RewardConfig(_Strict):
    """Reward weights and the zoom-in verifier (docs/method.md §3).

    The scalar total is ``sum_k weight_k * r_k``; the defaults give the paper's
    ``((answer + zoom) / 2 + format + iou) / 3``. Token-selective credit uses the four
    channels themselves; the total drives sequence-level GRPO and the logs.
    """

    format: float = Field(PAPER_WEIGHTS["format"], ge=0, description="weight of the format reward (paper: 1/3)")
    iou: float = Field(PAPER_WEIGHTS["iou"], ge=0, description="weight of the multi-span temporal IoU (paper: 1/3)")
    answer: float = Field(PAPER_WEIGHTS["answer"], ge=0, description="weight of answer accuracy (paper: 1/6)")
    zoom: float = Field(PAPER_WEIGHTS["zoom"], ge=0, description="weight of zoom-in accuracy (paper: 1/6)")
    number: float = Field(
        0.0,
        ge=0,
        description="CI probe (ours), off by default: 1 when a reply holds a digit; a target random "
        "weights reach, so a short CPU run shows that the loop learns",
    )
    verifier: Literal["reference", "policy", "none"] = Field(
        "reference", description="who re-answers from the zoomed frames; their code: the frozen reference"
    )
    verifier_budget_fraction: float = Field(
        0.5, gt=0, le=1, description="share of the visual budget for the verifier's view; their code: 1/2"
    )
    verifier_max_frames: int = Field(256, ge=1, description="frames of the verifier's view; their code: 256")
    verifier_view: Literal["per-span", "pooled"] = Field(
        "per-span",
        description="per-span = one zoom per span, the budget split (ours); pooled = one clip of the spans' "
        "coarse frames at one size (their code)",
    )
    verifier_prompt: Literal["ours", "official"] = Field(
        "ours",
        description="ours: the dialect's turns, the reasoning as an assistant prefix; official: one user turn "
        "(question, options on one line, 'the letter only', the reasoning without <time> tags)",
    )
    verifier_gate: Literal["answered", "glue"] = Field(
        "answered",
        description="which rollouts the zoom verifier sees: answered = those our parser answered, with its "
        "spans (ours); glue = every reply with a valid glue list by their regex, answer parsed or not (their code)",
    )
    rules: Literal["ours", "official"] = Field(
        "ours",
        description="how a reply's text is judged (docs/training.md §3): ours = `protocol.parse` (any "
        "whitespace, a letter of the question, the valid subset of the spans, time tags judged); "
        "official = their tvg_zoom regexes (`zoom_agent.training.rewards`)",
    )
    invalid_glue_format: float = Field(
        0.5,
        ge=0,
        le=1,
        description="official rules: format of a well-laid-out reply whose glue list is invalid; their "
        "stage scripts (tvg_zoom): 0, their train.sh (tvg_sep_zoom): 0.5",
    )
    parts_need_answer: bool = Field(
        True,
        description="ours: IoU and zoom are 0 when no answer parsed; their code scores them from the glue regardless",
    )

    def weights(self) -> dict[str, float]:
        """Part name -> weight in the total, for every part of `rewards.PARTS` (one field each)."""
        return {k: getattr(self, k) for k in PARTS}


class CreditConfig(_Strict):
    """How rewards become per-token advantages (docs/method.md §4, `training.core.credit`)."""

    mode: Literal["token-selective", "grpo"] = Field(
        "token-selective", description="token-selective = their TokenAdv; grpo = the total, broadcast"
    )
    variant: Literal["A", "B"] = Field("B", description="token-selective variant; their code: B")
    channel_regions: dict[str, tuple[str, ...]] | None = Field(
        None, description="channel -> regions it credits; default their code's (see training.core.credit)"
    )
    eps: float = Field(1e-6, gt=0, description="added to the group std; their code: 1e-6")
    zero_constant_groups: bool = Field(
        True,
        description="variant B: a group whose rewards are equal in every channel gets 0 (ours); their "
        "formula still z-scores its tokens by class",
    )
    single_response: Literal["zero", "raw"] = Field(
        "zero",
        description="a group of one response (group_size 1): zero = advantage 0 (ours, nothing to compare "
        "with); raw = their code's mean 0 and std 1 for it, so the advantage is its reward / (1 + eps)",
    )
    answer_on_reasoning_in_a: bool = Field(
        False,
        description="variant A: the answer channel also covers the reasoning tokens (their code, commit "
        "a8352aa5: t < m_glue); ours: the answer tokens only",
    )

    def regions(self) -> dict[str, tuple[str, ...]] | None:
        """The channel regions credit uses: ``channel_regions``, with variant A's answer channel
        on reasoning + answer when ``answer_on_reasoning_in_a`` (unless set explicitly)."""
        resolved = dict(self.channel_regions or {})
        if self.variant == "A" and self.answer_on_reasoning_in_a:
            resolved.setdefault("answer", ("reasoning", "answer"))
        return resolved or None


class LossConfig(_Strict):
    """The PPO-clip loss (`training.core.loss.policy_loss`)."""

    clip_low: float = Field(0.2, ge=0, lt=1, description="ratio clip 1 - clip_low; their code: 0.2")
    clip_high: float = Field(0.28, ge=0, description="ratio clip 1 + clip_high; their code: 0.28")
    kl_coef: float = Field(0.01, ge=0, description="beta of the k3 KL to the reference; their code: 0.01")
    entropy_coef: float = Field(0.0, ge=0, description="entropy bonus; their code: 0")
    aggregation: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"] = Field(
        "token-mean",
        description="ours: token-mean; their code: micro-batch 1 with masked_mean, accumulated and "
        "averaged over GPUs = seq-mean-token-mean",
    )
    kl_value_clamp: float | None = Field(
        None, gt=0, description="clamp the k3 KL value to +-this (their code: 10); None = no clamp (ours)"
    )


class OptimConfig(_Strict):
    """AdamW with warm-up and cosine decay."""

    lr: float = Field(1e-6, gt=0, description="their code: 1e-6")
    weight_decay: float = Field(0.01, ge=0, description="their code: 0.01")
    betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas (torch default)")
    warmup_steps: int = Field(10, ge=0, description="linear warm-up steps; their code: 10")
    schedule: Literal["cosine", "constant"] = Field("cosine", description="after warm-up; their code: cosine")
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="cosine floor as a share of lr (ours)")
    horizon: int | None = Field(
        None,
        ge=1,
        description="rollout steps the schedule spans; None = the run's own length (ours); their code: "
        "500 (get_cosine_schedule_with_warmup's default training steps)",
    )
    warmup_from_zero: bool = Field(
        False,
        description="warm-up factor step / warmup_steps, step 0 at lr 0 (their code); "
        "ours: (step + 1) / (warmup_steps + 1), so step 0 already trains",
    )
    mini_batch_size: int | None = Field(
        None,
        ge=1,
        description="responses per optimiser step; None = one step per rollout step (ours, ratio 1); "
        "their code: 64, with old log-probs computed once per rollout step (8 steps of 512 responses)",
    )
    grad_clip: float = Field(1.0, gt=0, description="max global grad norm; their code: 1.0")


class SFTConfig(_Strict):
    """The SFT warm start (`training.loop.sft`, docs/training.md §8)."""

    no_zoom_share: float = Field(
        0.25,
        ge=0,
        le=1,
        description="share of the target conversations run with no zoom round (the teacher answers in the "
        "coarse turn), so the model also knows that case (ours)",
    )


class TrainConfig(_Strict):
    """A whole GRPO run: policy, data, rollouts, rewards, credit, loss, optimiser, logging."""

    preset: PresetName | None = Field(
        None,
        description="a `zoom_agent.presets` preset whose training overrides lie under the recipe "
        "(zoomzero: their code's rules, docs/training.md §3)",
    )
    output_dir: str = Field("runs/zoom-grpo", description="metrics.jsonl, checkpoints, the tiny model go here")
    algorithm: Literal["grpo", "sft"] = Field(
        "grpo",
        description="grpo = the paper's RL stage; sft = cross-entropy on generated target replies, the warm "
        "start a model trained from scratch needs (ours, training.loop.sft)",
    )
    sft: SFTConfig = Field(default_factory=SFTConfig, description="the SFT warm start (algorithm: sft)")
    seed: int = Field(0, description="seeds data order, sampling and initialisation")
    policy: PolicyConfig = Field(default_factory=PolicyConfig, description="the model trained")
    data: DataConfig = Field(default_factory=DataConfig, description="the training questions")
    agent: AgentConfig = Field(
        default_factory=lambda: AgentConfig(temperature=1.0),
        description="the zoom graph of the rollouts (the inference graph); temperature 1.0 (their code)",
    )
    group_size: int = Field(8, ge=1, description="G: samples per question; paper: 8")
    prompts_per_step: int = Field(64, ge=1, description="questions per optimiser step (all ranks); their code: 64")
    epochs: int = Field(1, ge=1, description="passes over the questions; their code: 1")
    max_steps: int | None = Field(None, ge=1, description="stop after this many steps (None = epochs decide)")
    reward: RewardConfig = Field(default_factory=RewardConfig, description="weights and the verifier")
    credit: CreditConfig = Field(default_factory=CreditConfig, description="rewards -> advantages")
    loss: LossConfig = Field(default_factory=LossConfig, description="the PPO-clip loss")
    optim: OptimConfig = Field(default_factory=OptimConfig, description="AdamW and its schedule")
    difficulty_filter: bool = Field(
        False, description="offline filter of docs/method.md §4 before training (their data filter)"
    )
    filter_group_size: int | None = Field(None, ge=2, description="samples per question for the filter; None = G")
    difficulty_keep_all_wrong: bool = Field(
        False,
        description="the filter keeps 0 <= hit rate < 1 (their filter_variance.py); ours: 0 < hit rate < 1",
    )
    check_logprobs_atol: float | None = Field(
        None,
        ge=0,
        description="fail if recomputed and sampled log-probs differ more (CPU fp32: 1e-3); None = log",
    )
    rollout_concurrency: int = Field(8, ge=1, description="rollouts in flight at once (ours)")
    distributed: Literal["data-parallel", "fsdp"] = Field(
        "data-parallel",
        description="several processes: data-parallel = every rank holds the whole policy, gradients summed; "
        "fsdp = the trained policy sharded with FSDP2, a full copy for rollouts (their code: FSDP on 8 GPUs); "
        "accelerate launch --use_fsdp selects fsdp too (docs/training.md §5)",
    )
    engine: Literal["transformers", "vllm"] = Field("transformers", description="rollout engine")
    vllm: dict[str, Any] = Field(
        default_factory=dict,
        description="VLLMSampler arguments (sleep_mode, gpu_memory_utilization, ...) and more vllm.LLM ones; "
        "GPU or vLLM's CPU build (docs/training.md §6)",
    )
    save_every: int = Field(
        10, ge=0, description="checkpoint every N steps, so a rerun resumes from there (0 = only at the end)"
    )
    val_every: int = Field(
        0, ge=0, description="validate on val_data every N rollout steps, keeping the best model; their code: 5"
    )
    val_data: DataConfig | None = Field(
        None, description="held-out questions for validation (one rollout each); None = no validation"
    )
    keep_checkpoints: int = Field(2, ge=1, description="newest checkpoints kept on disk")
    resume: bool = Field(True, description="continue from OUTPUT_DIR/checkpoints/latest when present")
    tensorboard: bool = Field(False, description="also log to OUTPUT_DIR/tensorboard (needs tensorboard)")
    wandb_project: str | None = Field(None, description="also log to this W&B project (needs wandb)")
    progress: bool = Field(True, description="show a progress bar")

    @model_validator(mode="before")
    @classmethod
    def _resolve(cls, data: Any) -> Any:
        """The preset's overrides lie under the given values; an agent section given as a
        mapping samples at temperature 1.0 unless it says otherwise (their code)."""
        if not isinstance(data, Mapping):
            return data
        merged = dict(data)
        if merged.get("preset") is not None:
            merged = _deep_merge(preset_training(str(merged["preset"])), merged)
        if isinstance(merged.get("agent"), Mapping):
            merged["agent"] = {"temperature": 1.0, **merged["agent"]}
        return merged

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.val_every and self.val_data is None:
            raise ValueError("val_every needs val_data: the held-out questions to validate on")
        if self.group_size == 1 and self.credit.single_response == "zero":
            raise ValueError(
                "group_size 1 trains at zero advantage: a response is credited against the rest of its "
                "group (credit.single_response 'zero' gives a group of one 0); use group_size >= 2, or "
                "credit.single_response=raw (their code: mean 0, std 1)"
            )
        if getattr(self.agent, "strategy", "multi_step") == "divide_and_conquer":
            raise ValueError(
                "agent.strategy 'divide_and_conquer' runs several conversations per question; "
                "training rollouts need one: use 'single' or 'multi_step'"
            )
        return self


RESULT_NEUTRAL = frozenset(
    {
        "output_dir",
        "progress",
        "tensorboard",
        "wandb_project",
        "save_every",
        "keep_checkpoints",
        "resume",
        "check_logprobs_atol",
        "rollout_concurrency",  # every rollout samples with its own seed
        "vllm.gpu_memory_utilization",
    }
)
"""`TrainConfig` keys (dotted) that do not change what a run computes: logging, progress,
checkpoint cadence, concurrency. A run resumed in its folder may change them; any other key
makes it another run (`training.loop.run_folder`)."""


def available_recipes() -> dict[str, Path]:
    """Recipe name -> file, for the recipes that ship in the package."""
    folder = Path(__file__).resolve().parent / "recipes"
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix in RECIPE_SUFFIXES}


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """``["optim.lr=1e-5", "agent.max_zoom_rounds=1"]`` -> a nested dict.

    Values are read as YAML scalars or flow collections (``1e-5``, ``true``, ``[1, 2]``,
    ``null``); anything else stays a string.

    Raises:
        ValueError: an item without ``=`` or with an empty key.
    """
    import yaml

    nested: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise ValueError(f"override {item!r} must look like key=value (dotted keys for nesting)")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads "1e-5" (no dot) as text
        _set_dotted(nested, parts, value, item)
    return nested


def _set_dotted(nested: dict[str, Any], parts: Sequence[str], value: Any, item: str) -> None:
    node = nested
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ValueError(f"override {item!r} conflicts with an earlier override of {part!r}")
        node = child
    node[parts[-1]] = value


def preset_training(name: str) -> dict[str, Any]:
    """The nested `TrainConfig` overrides of a `zoom_agent.presets` preset (its ``training``).

    Raises:
        ValueError: an unknown preset name (the message lists the known ones).
    """
    from zoom_agent.presets import preset

    nested: dict[str, Any] = {}
    for key, value in preset(name).training.items():
        _set_dotted(nested, key.split("."), value, f"{name}: {key}")
    return nested


def _deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_recipe(name_or_path: str | Path, overrides: Sequence[str] | Mapping[str, Any] = ()) -> TrainConfig:
    """A `TrainConfig` from a shipped recipe (by name) or a YAML file, with overrides.

    Args:
        name_or_path: a recipe name such as ``"tiny-cpu"`` or a path to a YAML file.
        overrides: ``key=value`` strings (dotted keys) or an already nested mapping.

    Returns:
        The validated config.

    Raises:
        FileNotFoundError: neither a shipped recipe nor an existing file.
        ValueError: the YAML is not a mapping, or a field is unknown or invalid.

    Example:
        >>> load_recipe("tiny-cpu", ["output_dir=/tmp/run", "max_steps=3"]).max_steps
        3
    """
    import yaml
    from pydantic import ValidationError

    path = Path(name_or_path).expanduser()
    recipes = available_recipes()
    if str(name_or_path) in recipes:
        path = recipes[str(name_or_path)]
    elif not path.is_file():
        raise FileNotFoundError(
            f"no recipe {str(name_or_path)!r}: expected one of {sorted(recipes)} or a YAML file path"
        )
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"recipe {path} must hold a YAML mapping, got {type(raw).__name__}")
    update = parse_overrides(overrides) if not isinstance(overrides, Mapping) else dict(overrides)
    merged = _deep_merge(raw, update)  # TrainConfig puts the preset under it
    try:
        return TrainConfig.model_validate(merged)
    except ValidationError as exc:
        raise ValueError(f"recipe {path} (with overrides) is invalid:\n{exc}") from None
