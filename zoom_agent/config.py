"""Typed configuration. Every default number names its source.

Sources: "paper" = arXiv 2512.14273; "their code" = the authors' EasyR1/verl fork;
"qwen-vl-utils" = Qwen's reference video loader; "ours" = this project's choice.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from zoom_agent.geometry import VisionGeometry

# How answer and span confidences are read from a reply (graphs/arbitration.py).
ConfidenceMethod = Literal["sampled", "official"]


class Budget(BaseModel):
    """The visual-token budget L_v and the rules that turn it into frames and pixels.

    Only the budget: how pixels become tokens belongs to the model (its
    `zoom_agent.geometry.VisionGeometry`, ``vlm.geometry``), so one budget serves every
    family. ``plan_clip`` spends it as V_res = L_v / N (docs/method.md §2): per-frame pixels
    = clamp(temporal_patch * L_v * token_side^2 / N, min_pixels, max_pixels), capped at the
    source's native size. The per-frame pixel bounds are stated in token squares
    (token_side^2 pixels each), so each family gets its code's bounds: their code's
    ``1.05 * 16 * 28^2`` and ``768 * 28^2`` pixels for Qwen2.5-VL (28-pixel tokens), the
    same 16.8 and 768 tokens in 32-pixel squares for Qwen3-VL.

    Every number must be finite: NaN and infinity are refused, naming the field.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    visual_tokens: int = Field(8192, gt=0, description="L_v; their code: 8192 GVQA, 16384 long video")
    min_frame_tokens: float = Field(
        1.05 * 16, gt=0, description="per-frame pixel floor in token squares; their code: 1.05 * 16 * 28^2 px"
    )
    max_frame_tokens: float = Field(
        768, gt=0, description="per-frame pixel ceiling in token squares; their code: 768 * 28^2 px"
    )
    fps: float = Field(2.0, gt=0, description="sampling rate of a view; qwen-vl-utils FPS = 2")
    min_frames: int = Field(4, gt=0, description="qwen-vl-utils FPS_MIN_FRAMES = 4")
    max_frames: int = Field(768, gt=0, description="coarse cap; qwen-vl-utils FPS_MAX_FRAMES = 768")
    zoom_max_frames: int = Field(256, gt=0, description="zoomed-view cap; their eval: 256")
    floor_frame_cap: bool = Field(
        False,
        description="their fetch_video: at most int(2 * L_v / min_frame_tokens) frames (975 at 8,192), "
        "so the per-frame pixel floor never lifts a view above L_v (ours: off)",
    )

    @model_validator(mode="after")
    def _check(self) -> Budget:
        if self.min_frame_tokens > self.max_frame_tokens:
            raise ValueError(f"min_frame_tokens {self.min_frame_tokens} > max_frame_tokens {self.max_frame_tokens}")
        if self.min_frames > self.max_frames:
            raise ValueError(f"min_frames {self.min_frames} > max_frames {self.max_frames}")
        return self

    def pixel_bounds(self, geometry: VisionGeometry) -> tuple[int, int]:
        """``(min_pixels, max_pixels)`` per frame for a model's geometry.

        >>> from zoom_agent.geometry import GEOMETRY
        >>> Budget().pixel_bounds(GEOMETRY["qwen2_5_vl"]), Budget().pixel_bounds(GEOMETRY["qwen3_vl"])
        ((13171, 602112), (17203, 786432))
        """
        square = geometry.token_side**2
        return int(self.min_frame_tokens * square), int(self.max_frame_tokens * square)

    def view(self, share: float, *, zoom_max_frames: int | None = None) -> Budget:
        """The budget of a derived view: ``share`` of the visual tokens (at least 1).

        The one factory for views cut from a question's budget: the zoom beside a global
        context (`AgentConfig.zoom_budget`), the global context (`AgentConfig.context_budget`),
        each window of a pooled zoom (`zoom_agent.tools.TemporalZoom.zoom_spans`) and the
        zoom verifier's view (training).

        Args:
            share: fraction of ``visual_tokens``, in (0, 1].
            zoom_max_frames: the view's own cap on zoomed frames (default: unchanged).

        Raises:
            ValueError: ``share`` outside (0, 1] or ``zoom_max_frames`` below 1.
        """
        if not 0 < share <= 1:
            raise ValueError(f"budget share must be in (0, 1], got {share}")
        update: dict[str, int] = {"visual_tokens": max(1, int(self.visual_tokens * share))}
        if zoom_max_frames is not None:
            if zoom_max_frames < 1:
                raise ValueError(f"zoom_max_frames must be >= 1, got {zoom_max_frames}")
            update["zoom_max_frames"] = zoom_max_frames
        return self.model_copy(update=update)


class AgentConfig(BaseModel):
    """How the zoom agent runs one question. Every number must be finite: NaN and infinity
    (``zoom_pad=inf``) are refused, naming the field."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

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
    fine_pass: Literal["continue", "fresh"] = Field(
        "continue",
        description="continue: the fine turn extends the conversation (coarse view, reply, zoomed clips; ours); "
        "fresh: a new request with only the padded spans pooled into one clip at fine_share of the budget, "
        "plus the coarse reasoning with its time tags removed (their eval; docs/method.md §7)",
    )
    fine_share: float = Field(0.5, gt=0, le=1, description="budget share of the fresh fine pass; their eval: 4096/8192")
    confidence: ConfidenceMethod = Field(
        "sampled",
        description="sampled: answer = probability of the letter's tokens, spans = geometric-mean probability "
        "of the glue tokens (ours); official: answer = probability of the token after '<answer', spans = "
        "mean -log of the top-20 probabilities over the glue (their confidence_score)",
    )
    prompts: Literal["ours", "official"] = Field(
        "ours",
        description="ours: a system turn, captions, one option per line; official: no system turn, a duration "
        "sentence, options on one line, text before the video (docs/method.md §7)",
    )
    prompt_file: str | None = Field(
        None, description="a prompt-template file (TOML) replacing the built-in wording (zoom_agent.protocol.templates)"
    )
    divide: Literal["ours", "official"] = Field(
        "ours",
        description="divide and conquer: ours (chunks over the whole video, top_k_chunks) or official (video cut "
        "to 1,024 frames, 256-frame chunks, a whole-video answer pass, agreement/confidence shortcuts)",
    )
    long_video_tokens: int | None = Field(
        None, gt=0, description="L_v of divide and conquer; their long-video eval: 16,384; None = budget's"
    )
    long_video_fps: float | None = Field(
        None, gt=0, description="sampling rate of divide and conquer; their long-video eval: 2.0; None = budget's"
    )
    request_token_cap: int | None = Field(
        None,
        gt=0,
        description="most visual tokens one model request may hold, all its clips together: parallel zooms "
        "share one zoom budget, older views are dropped (oldest first) and budget.floor_frame_cap is on "
        "(docs/method.md §8). None: no cap (ours)",
    )
    approximate_coarse: float | None = Field(
        None,
        ge=0,
        allow_inf_nan=False,
        description="approximate mode (ours, docs/video.md §5): coarse views read the nearest keyframe "
        "within this many seconds of each planned frame; the clips carry the true times. None: exact",
    )

    @model_validator(mode="before")
    @classmethod
    def _cap_needs_the_floor_cap(cls, data: Any) -> Any:
        """A declared request cap turns on `Budget.floor_frame_cap`: otherwise the per-frame
        pixel floor could lift a view above its budget (docs/method.md §8)."""
        if not isinstance(data, dict) or data.get("request_token_cap") is None:
            return data
        budget = data.get("budget", Budget())
        if isinstance(budget, Budget):
            budget = budget.model_copy(update={"floor_frame_cap": True})
        elif isinstance(budget, dict):
            budget = {**budget, "floor_frame_cap": True}
        return {**data, "budget": budget}

    @model_validator(mode="after")
    def _check_cap(self) -> AgentConfig:
        views = [self.budget.visual_tokens, self.long_video_tokens or 0]
        if self.request_token_cap is not None and self.request_token_cap < max(views):
            raise ValueError(
                f"request_token_cap {self.request_token_cap} is below one view's budget {max(views)}: "
                "expected a cap of at least budget.visual_tokens (and long_video_tokens)"
            )
        return self

    def long_budget(self) -> Budget:
        """The budget of divide and conquer's views (``long_video_tokens`` and ``long_video_fps``
        where set, else ``budget``'s)."""
        update: dict[str, Any] = {}
        if self.long_video_tokens is not None:
            update["visual_tokens"] = self.long_video_tokens
        if self.long_video_fps is not None:
            update["fps"] = self.long_video_fps
        return self.budget.model_copy(update=update)

    def fine_budget(self) -> Budget:
        """The budget of the fresh fine pass's one pooled clip: ``fine_share`` of L_v."""
        return self.budget.view(self.fine_share)

    def resolved_strategy(self, duration: float) -> str:
        """The strategy for a video of this length (``auto`` decided by duration)."""
        if self.strategy != "auto":
            return self.strategy
        return "divide_and_conquer" if duration > self.long_video_seconds else "multi_step"

    def zoom_budget(self) -> Budget:
        """The budget of a zoomed view: all of it, or what the global context leaves."""
        return self.budget.view(1 - self.context_share) if self.global_context else self.budget

    def context_budget(self) -> Budget:
        """The budget of the low-resolution global context view."""
        return self.budget.view(self.context_share)

    def zoom_rounds(self) -> int:
        """Zoom rounds the graph allows: the paper's layout and ``single`` zoom once."""
        if self.dialect == "zoomzero" or self.strategy == "single":
            return min(self.max_zoom_rounds, 1)
        return self.max_zoom_rounds

    @property
    def max_model_calls(self) -> int:
        """The turn budget of one question: the most model calls it can take (the first turn,
        one per zoom round, and the format retries of each). Bounds the graph's steps and a
        training sequence's length."""
        return 1 + self.max_zoom_rounds + (self.max_zoom_rounds + 1) * self.format_retries

    @property
    def recursion_limit(self) -> int:
        """LangGraph steps one question can take (its default of 10,007 would hide loops)."""
        return 4 * self.max_model_calls + 16
