"""Typed configuration. Every default number names its source.

Sources: "paper" = arXiv 2512.14273; "their code" = the authors' EasyR1/verl fork;
"qwen-vl-utils" = Qwen's reference video loader; "ours" = this project's choice.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Family = Literal["qwen2_5_vl", "qwen3_vl"]

# One visual token = one (patch * merge)^2 pixel square per temporal patch of frames.
_PATCH = {"qwen2_5_vl": 28, "qwen3_vl": 32}  # 14*2 and 16*2


class Budget(BaseModel):
    """The visual-token budget L_v and the rules that turn it into frames and pixels.

    ``plan_clip`` spends it as V_res = L_v / N (docs/METHOD.md §2): per-frame pixels =
    clamp(temporal_patch * L_v * patch^2 / N, min_pixels, max_pixels), capped at the
    source's native size.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    visual_tokens: int = Field(8192, gt=0, description="L_v; their code: 8192 GVQA, 16384 long video")
    patch: int = Field(28, gt=0, description="pixels per token side after merge: 28 Qwen2.5-VL, 32 Qwen3-VL")
    temporal_patch: int = Field(2, gt=0, description="frames per temporal token (Qwen-VL: 2)")
    min_pixels: int = Field(int(1.05 * 16 * 28 * 28), gt=0, description="per-frame floor; their code: 1.05 * 16 * 28^2")
    max_pixels: int = Field(768 * 28 * 28, gt=0, description="per-frame ceiling; their code: 768 * 28^2")
    fps: float = Field(2.0, gt=0, description="sampling rate of a view; qwen-vl-utils FPS = 2")
    min_frames: int = Field(4, gt=0, description="qwen-vl-utils FPS_MIN_FRAMES = 4")
    max_frames: int = Field(768, gt=0, description="coarse cap; qwen-vl-utils FPS_MAX_FRAMES = 768")
    zoom_max_frames: int = Field(256, gt=0, description="zoomed-view cap; their eval: 256")

    @model_validator(mode="after")
    def _check(self) -> Budget:
        if self.min_pixels > self.max_pixels:
            raise ValueError(f"min_pixels {self.min_pixels} > max_pixels {self.max_pixels}")
        if self.min_frames > self.max_frames:
            raise ValueError(f"min_frames {self.min_frames} > max_frames {self.max_frames}")
        return self

    @classmethod
    def for_family(cls, family: Family, **overrides: object) -> Budget:
        """The defaults with the patch size (and pixel bounds) of a model family."""
        p = _PATCH[family]
        base: dict[str, object] = {
            "patch": p,
            "min_pixels": int(1.05 * 16 * p * p),
            "max_pixels": 768 * p * p,
        }
        base.update(overrides)
        return cls.model_validate(base)

    def scaled(self, fraction: float) -> Budget:
        """A copy holding ``fraction`` of the visual tokens (to split zoom vs global context)."""
        if not 0 < fraction <= 1:
            raise ValueError(f"budget fraction must be in (0, 1], got {fraction}")
        return self.model_copy(update={"visual_tokens": max(1, int(self.visual_tokens * fraction))})


class AgentConfig(BaseModel):
    """How the zoom agent runs one question."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dialect: Literal["tool", "zoomzero"] = Field(
        "tool", description="'tool': Hermes <tool_call> zoom (ours); 'zoomzero': the paper's one-shot layout"
    )
    budget: Budget = Field(default_factory=Budget, description="visual-token budget of every view")
    max_zoom_rounds: int = Field(2, ge=0, description="zoom turns before the model must answer (ours; paper: 1)")
    max_parallel_zooms: int = Field(4, ge=1, description="zoom calls honoured in one turn (ours)")
    zoom_pad: float = Field(0.0, ge=0, description="seconds added around each zoom window; their eval: 10")
    min_zoom_seconds: float = Field(1.0, gt=0, description="shorter windows are widened (ours)")
    global_context: bool = Field(False, description="add low-res frames of the whole video to zoomed turns (ours)")
    context_share: float = Field(0.25, gt=0, lt=1, description="budget share of the global context (ours)")
    context_frames: int = Field(8, ge=2, description="frames of the global context (ours)")
    format_retries: int = Field(1, ge=0, description="re-asks with a format reminder after an unparsable turn")
    temperature: float = Field(0.0, ge=0, description="0 = greedy (evaluation); 1.0 for GRPO rollouts")
    max_tokens: int = Field(512, gt=0, description="response tokens per turn; their code: 512")
    arbitrate: bool = Field(True, description="coarse vs fine by answer/span confidence (paper §2)")
    strategy: Literal["single", "multi_step", "divide_and_conquer", "auto"] = Field(
        "auto",
        description="single: at most one zoom round; multi_step: up to max_zoom_rounds; "
        "divide_and_conquer: per-chunk coarse passes, then one fine pass (paper §2 mode b); "
        "auto: divide_and_conquer above long_video_seconds, else multi_step",
    )
    long_video_seconds: float = Field(900.0, gt=0, description="auto switches to divide and conquer above (ours)")
    chunk_frames: int = Field(256, ge=2, description="frames per chunk at budget.fps; their code: 256")
    top_k_chunks: int = Field(5, ge=1, description="chunks kept by answer confidence; their code: 5")
    min_chunk_confidence: float = Field(0.0, ge=0, le=1, description="chunks below are dropped (ours)")
    approximate_coarse: float | None = Field(
        None,
        ge=0,
        allow_inf_nan=False,
        description="approximate mode (ours, docs/video.md §5): coarse views read the nearest keyframe "
        "within this many seconds of each planned frame; the clips carry the true times. None: exact",
    )

    def resolved_strategy(self, duration: float) -> str:
        """The strategy for a video of this length (``auto`` decided by duration)."""
        if self.strategy != "auto":
            return self.strategy
        return "divide_and_conquer" if duration > self.long_video_seconds else "multi_step"

    def zoom_rounds(self) -> int:
        """Zoom rounds the graph allows: the paper's layout and ``single`` zoom once."""
        if self.dialect == "zoomzero" or self.strategy == "single":
            return min(self.max_zoom_rounds, 1)
        return self.max_zoom_rounds

    @property
    def recursion_limit(self) -> int:
        """LangGraph steps one question can take (its default of 10,007 would hide loops)."""
        turns = 1 + self.max_zoom_rounds + (self.max_zoom_rounds + 1) * self.format_retries
        return 4 * turns + 16
