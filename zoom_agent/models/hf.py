"""The transformers backend: Qwen2.5-VL and Qwen3-VL on CPU or GPU (docs/architecture.md).

Named ``hf.py`` so it never shadows the ``transformers`` package. Only the heavy path
imports this module (``zoom_agent.models`` loads it lazily), so torch is imported here at
module level.

Timing: clips go in as `zoom_agent.models.hf_render` renders them (the reasons are there).
``mm_token_type_ids`` comes from the processor and goes to the model; without it the
positions change silently.

Log-probabilities: each completion's ``logprobs`` are ``log_softmax`` of the model's *raw*
logits at temperature 1, gathered at the sampled tokens, i.e. the policy's own log-prob
``log pi(token | prefix)`` that GRPO/PPO ratios need, whatever temperature and top_p were
used to sample. A recompute with one forward pass over prompt + completion matches them
(tested to 1e-4).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from zoom_agent.geometry import Family, VisionGeometry
from zoom_agent.models.base import Completion, ModelError, Sampling, VLMRequest, VLMResponse
from zoom_agent.models.hf_render import (
    chat_messages,
    clip_metadata,
    pad_frames,
    processor_size_bounds,
    read_clip_frames,
)
from zoom_agent.models.qwen25_positions import follow_reference_positions
from zoom_agent.models.tiny import quiet_progress_bars
from zoom_agent.models.token_offsets import token_offsets, token_pieces
from zoom_agent.types import ClipRef

if TYPE_CHECKING:
    from transformers import BatchFeature, PreTrainedModel, PreTrainedTokenizerBase, ProcessorMixin


class TransformersVLM:
    """A Qwen2.5-VL / Qwen3-VL model behind the `VLM` protocol, via transformers.

    One model, one forward at a time: `generate` runs the blocking ``model.generate`` in a
    worker thread behind a lock, so the event loop stays free for other questions.

    Args:
        path_or_model: a model directory (loaded with ``AutoModelForImageTextToText``) or
            an already loaded model (then ``processor`` or a model directory in
            ``model.name_or_path`` is needed).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
        dtype: ``"auto"`` (the checkpoint's dtype), a name such as ``"bfloat16"``, or a
            ``torch.dtype``.
        processor: the ``AutoProcessor`` to use instead of loading one.
        max_batch: most sequences per ``generate`` call; ``n`` above it runs in chunks.

    Example:
        >>> vlm = TransformersVLM(build_tiny_model(tmp, "qwen3_vl"))  # doctest: +SKIP
        >>> reply = await vlm.generate(VLMRequest(turns=(Turn(role="user", content=("Hi",)),)))
    """

    def __init__(
        self,
        path_or_model: str | os.PathLike[str] | PreTrainedModel,
        *,
        device: str = "cpu",
        dtype: str | torch.dtype = "auto",
        processor: ProcessorMixin | None = None,
        max_batch: int = 8,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.model, self.name = _load_model(path_or_model, device, dtype)
        self.processor = processor if processor is not None else _load_processor(self.model, self.name)
        self.tokenizer: PreTrainedTokenizerBase = self.processor.tokenizer
        self.geometry: VisionGeometry = VisionGeometry.from_hf_config(self.model.config)
        if self.geometry.family == "qwen2_5_vl":  # text after a video where Qwen's reference and vLLM put it
            follow_reference_positions(self.model)
        self.max_batch = max_batch
        self._lock = threading.Lock()  # a thread lock works across event loops; asyncio.Lock does not
        gen = self.model.generation_config
        eos = gen.eos_token_id if gen.eos_token_id is not None else self.tokenizer.eos_token_id
        self.eos_token_ids: tuple[int, ...] = tuple(eos) if isinstance(eos, list | tuple) else (int(eos),)
        pad = gen.pad_token_id if gen.pad_token_id is not None else self.tokenizer.pad_token_id
        self.pad_token_id = int(pad if pad is not None else self.eos_token_ids[0])

    @property
    def family(self) -> Family:
        return self.geometry.family

    @property
    def device(self) -> torch.device:
        return self.model.device

    async def generate(self, request: VLMRequest) -> VLMResponse:
        """Sample completions for a conversation (the `VLM` protocol).

        Args:
            request: turns, sampling settings (temperature 0 = greedy), stop strings.

        Returns:
            One completion per ``request.sampling.n`` with text (special tokens skipped,
            this project's tags kept), token ids (the EOS token included when sampled),
            policy log-probs and finish reason; and the prompt's token ids.

        Raises:
            ModelError: when rendering or generation fails.
        """
        return await asyncio.to_thread(self.generate_sync, request)

    def generate_sync(self, request: VLMRequest) -> VLMResponse:
        """The blocking form of `generate` (for synchronous callers and benchmarks)."""
        t0 = time.perf_counter()
        try:
            # Decoding and preprocessing run outside the lock: they overlap another
            # request's generate (on a GPU fully, on CPU as far as the cores allow).
            inputs = self.render_inputs(request)
            completions = self.generate_from_inputs(inputs, request.sampling, top_logprobs=request.top_logprobs)
        except ModelError:
            raise
        except Exception as exc:  # a backend reports every failure as ModelError (base.py)
            raise ModelError(f"transformers generate failed for {self.name}: {exc}") from exc
        if not request.want_logprobs:
            completions = [c.model_copy(update={"logprobs": None}) for c in completions]
        return VLMResponse(
            completions=tuple(completions),
            prompt_token_ids=tuple(int(i) for i in inputs["input_ids"][0].tolist()),
            model=self.name,
            latency_s=time.perf_counter() - t0,
        )

    def render_text(self, request: VLMRequest) -> str:
        """The prompt text from the family's chat template (video pads not yet expanded).

        A final assistant turn is a prefix to continue: it is appended after the
        generation prompt instead of being closed.
        """
        turns = request.turns
        prefix = ""
        if turns[-1].role == "assistant":
            turns, prefix = turns[:-1], turns[-1].text
        messages, _ = chat_messages(turns)
        text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return str(text) + prefix

    def render_inputs(self, request: VLMRequest) -> BatchFeature:
        """The processor inputs for a request, on the model's device.

        ``input_ids``, ``attention_mask``, ``mm_token_type_ids`` and, with clips,
        ``pixel_values_videos``, ``video_grid_thw`` (+ ``second_per_grid_ts`` for
        Qwen2.5-VL). The trainer re-renders conversations with this for its forward pass.

        Args:
            request: the conversation (sampling settings are ignored here).

        Returns:
            A ``BatchFeature`` of batch size 1.
        """
        text = self.render_text(request)
        _, clips = chat_messages(request.turns)
        kwargs: dict[str, Any] = {"text": [text], "return_tensors": "pt"}
        if clips:
            kwargs.update(self.video_kwargs(clips))
        inputs = self.processor(**kwargs)
        if "mm_token_type_ids" not in inputs:  # a processor that leaves it out for text-only prompts
            inputs["mm_token_type_ids"] = torch.zeros_like(inputs["input_ids"])
        return inputs.to(self.device)

    def video_kwargs(self, clips: Sequence[ClipRef]) -> dict[str, Any]:
        """The processor's video arguments for ``clips``: frames (padded to a whole temporal
        patch), their ``video_metadata``, ``size`` bounds that keep the planned sizes, and no
        resampling. The vLLM rollout engine hands vLLM the same ones."""
        vp = self.processor.video_processor
        videos, metadata = [], []
        for ref in clips:
            frames, indices = pad_frames(read_clip_frames(ref), list(ref.frame_indices), self.geometry.temporal_patch)
            videos.append(frames)
            metadata.append(clip_metadata(ref, self.family, len(frames), indices))
        kwargs: dict[str, Any] = {
            "videos": videos,
            "video_metadata": metadata,
            "do_sample_frames": False,  # frames are pre-sampled by plan_clip
            "size": processor_size_bounds(videos, self.geometry),
        }
        if hasattr(vp, "cap_pixels_per_frame"):
            kwargs["cap_pixels_per_frame"] = False  # the budget is already spent by plan_clip
        return kwargs

    def generate_from_inputs(
        self,
        inputs: Mapping[str, Any],
        sampling: Sampling,
        *,
        banned_token_ids: Sequence[int] = (),
        top_logprobs: int = 0,
    ) -> list[Completion]:
        """Sample from already-rendered processor inputs (a batch of one), under the model lock.

        The trainer uses it to sample from the exact token ids of a replayed conversation.

        Args:
            inputs: processor outputs (``input_ids``, ``attention_mask``, pixel values, ...)
                on the model's device.
            sampling: temperature (0 = greedy), top_p, max_tokens, n, seed, stop strings.
            banned_token_ids: ids the policy may never sample (masked before sampling and in
                the recorded log-probs, e.g. vision placeholders).
            top_logprobs: also record the k largest log-probs of every step (0: none).

        Returns:
            ``sampling.n`` completions with token ids, policy log-probs (log_softmax of the
            raw, masked logits) and character offsets.
        """
        greedy = sampling.temperature == 0
        todo = 1 if greedy else sampling.n  # greedy samples are identical: decode once, copy
        out: list[Completion] = []
        # A seed gives reproducible samples without touching the caller's RNG; without one,
        # the global RNG advances so that successive calls differ.
        seeded = (
            torch.random.fork_rng(devices=_rng_devices(self.device)) if sampling.seed is not None else nullcontext()
        )
        with self._lock, seeded:
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)
            while len(out) < todo:
                chunk = min(self.max_batch, todo - len(out))
                out.extend(self._generate_chunk(inputs, sampling, chunk, banned_token_ids, top_logprobs))
        return out * sampling.n if greedy else out

    def _generate_chunk(
        self, inputs: Mapping[str, Any], s: Sampling, n: int, banned: Sequence[int], top_k: int = 0
    ) -> list[Completion]:
        from transformers import GenerationConfig

        sample = s.temperature > 0
        # Unset fields are filled from the checkpoint's generation_config (Qwen ships
        # top_k, top_p, temperature, repetition_penalty there): set every one that changes
        # the distribution, so the policy samples exactly softmax(logits / T) within top_p.
        warpers = {"temperature": s.temperature, "top_p": s.top_p, "top_k": 0} if sample else {}
        config = GenerationConfig(
            max_new_tokens=s.max_tokens,
            do_sample=sample,
            repetition_penalty=1.0,
            num_return_sequences=n,
            eos_token_id=list(self.eos_token_ids),
            pad_token_id=self.pad_token_id,
            stop_strings=list(s.stop) or None,
            **warpers,
        )
        recorder = _PolicyLogprobs(banned, top_k)
        with torch.inference_mode():
            sequences = cast(Any, self.model).generate(
                **inputs,
                generation_config=config,
                logits_processor=LogitsProcessorList([recorder]),
                tokenizer=self.tokenizer if s.stop else None,
            )
        prompt_len = inputs["input_ids"].shape[1]
        new = sequences[:, prompt_len:]
        logprobs = recorder.finish(new)
        top = recorder.top()
        return [
            self._completion(new[i].tolist(), logprobs[i].tolist(), s.stop, None if top is None else top[i].tolist())
            for i in range(new.shape[0])
        ]

    def _completion(
        self, ids: list[int], logprobs: list[float], stop: Sequence[str], top: list[list[float]] | None = None
    ) -> Completion:
        cut = _trim(ids, self.eos_token_ids, stop, self._decode)
        kept = ids[: cut.n_tokens]
        text = self._decode(kept) if cut.text is None else cut.text
        return Completion(
            text=text,
            token_ids=tuple(kept),
            logprobs=tuple(logprobs[: cut.n_tokens]),
            top_logprobs=None if top is None else tuple(tuple(step) for step in top[: cut.n_tokens]),
            token_offsets=token_offsets(text, token_pieces(self.tokenizer, kept)),
            finish_reason=cut.finish_reason,
        )

    def _decode(self, ids: Sequence[int]) -> str:
        # Qwen's specials (<|im_end|>, <|vision_*|>) are skipped; the project's tags and
        # <tool_call> are plain added tokens and stay in the text.
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=True))


class _PolicyLogprobs(LogitsProcessor):
    """Records log_softmax(raw logits)[sampled token] at every step, in O(batch x vocab).

    Passed as the only custom logits processor with no default processors before it, it
    sees the raw logits (temperature and top_p warpers run after it). The token sampled at
    step t is read from ``input_ids`` at step t + 1, and from the final sequences at the
    end, so no per-step vocabulary-sized tensor is kept.
    """

    def __init__(self, banned_ids: Sequence[int] = (), top_k: int = 0) -> None:
        self.banned = list(banned_ids)
        self.top_k = top_k  # also keep the k largest log-probs of each step (their confidence_score)
        self._pending: torch.Tensor | None = None
        self._steps: list[torch.Tensor] = []
        self._top: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._pending is not None:
            self._steps.append(self._pending.gather(-1, input_ids[:, -1:]).squeeze(-1))
        if self.banned:  # never sampled, and absent from the policy's distribution
            scores = scores.clone()  # type: ignore[assignment]
            scores[:, self.banned] = float("-inf")
        self._pending = torch.log_softmax(scores.float(), dim=-1)
        if self.top_k:
            self._top.append(torch.topk(self._pending, min(self.top_k, self._pending.shape[-1]), dim=-1).values.cpu())
        return scores

    def top(self) -> torch.Tensor | None:
        """The k largest log-probs of every step, (batch, steps, k), largest first; None when not asked."""
        if not self.top_k:
            return None
        if not self._top:
            return torch.zeros((0, 0, self.top_k))
        return torch.stack(self._top, dim=1)

    def finish(self, new_tokens: torch.Tensor) -> torch.Tensor:
        """Log-probs of ``new_tokens`` (batch, steps) as a CPU float tensor of that shape."""
        steps = list(self._steps)
        if self._pending is not None:
            steps.append(self._pending.gather(-1, new_tokens[:, -1:]).squeeze(-1))
        if len(steps) != new_tokens.shape[1]:
            raise RuntimeError(f"recorded {len(steps)} steps for {new_tokens.shape[1]} new tokens")
        if not steps:
            return torch.zeros(new_tokens.shape, dtype=torch.float32)
        return torch.stack(steps, dim=1).cpu()


@dataclass(frozen=True)
class _Cut:
    n_tokens: int
    finish_reason: str
    text: str | None = None  # set when a stop string cut the decoded text


def _trim(ids: list[int], eos: Sequence[int], stops: Sequence[str], decode: Callable[[Sequence[int]], str]) -> _Cut:
    """Where a completion ends: its first EOS (kept), else a stop string, else the limit.

    A stop string ends the text before it (OpenAI/vLLM semantics); the token ids keep the
    shortest prefix whose text contains it, so ids and log-probs stay aligned.
    """
    end = next((i + 1 for i, t in enumerate(ids) if t in eos), None)
    body = ids if end is None else ids[: end - 1]
    text = decode(body) if stops else ""
    hits = [(text.find(s), s) for s in stops if s and s in text]
    if hits:
        _, stop = min(hits)
        lo, hi = 1, len(body)  # shortest prefix containing `stop`: "contains" grows with the prefix
        while lo < hi:
            mid = (lo + hi) // 2
            if stop in decode(body[:mid]):
                hi = mid
            else:
                lo = mid + 1
        prefix = decode(body[:lo])
        return _Cut(n_tokens=lo, finish_reason="stop", text=prefix[: prefix.find(stop)])
    if end is not None:
        return _Cut(n_tokens=end, finish_reason="stop")
    return _Cut(n_tokens=len(ids), finish_reason="length")


def _rng_devices(device: torch.device) -> list[int]:
    return [device.index or 0] if device.type == "cuda" else []


def _load_model(
    path_or_model: str | os.PathLike[str] | PreTrainedModel, device: str, dtype: str | torch.dtype
) -> tuple[PreTrainedModel, str]:
    model: Any
    if isinstance(path_or_model, str | os.PathLike):
        from transformers import AutoModelForImageTextToText

        path = Path(path_or_model).expanduser()
        torch_dtype = _torch_dtype(dtype)
        try:
            with quiet_progress_bars():
                model = AutoModelForImageTextToText.from_pretrained(str(path), dtype=torch_dtype)
        except Exception as exc:  # damaged weights (SafetensorError), a config of no known model, ...
            raise ValueError(f"model folder {path} does not load: {_damaged(exc)}") from exc
        name = str(path)
    else:
        model = path_or_model
        if dtype != "auto":
            model = model.to(dtype=_torch_dtype(dtype))
        name = str(getattr(model, "name_or_path", "") or type(model).__name__)
    return model.to(device).eval(), name


def _torch_dtype(dtype: str | torch.dtype) -> str | torch.dtype:
    if isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    value = getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"dtype must be 'auto', a torch dtype or its name (e.g. 'bfloat16'), got {dtype!r}")
    return value


def _load_processor(model: PreTrainedModel, name: str) -> ProcessorMixin:
    from transformers import AutoProcessor

    source = getattr(model, "name_or_path", "") or name
    if not source or not Path(source).is_dir():
        raise ValueError(f"no processor given and model.name_or_path {source!r} is not a model directory")
    try:
        return AutoProcessor.from_pretrained(source)
    except Exception as exc:  # a damaged tokenizer.json or processor config
        raise ValueError(f"the processor of model folder {source} does not load: {_damaged(exc)}") from exc


def _damaged(exc: Exception) -> str:
    """What a failed load says, on one line, with what to do about it."""
    text = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}: {text} (a damaged or partial copy? build or download it again)"
