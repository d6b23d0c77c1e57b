"""Samplers: who samples a rollout's replies from a rendered prompt, recording log-probs.

`TokenSampler` is what the rollout recorder calls; `TransformersSampler` samples with the
policy's own ``model.generate`` (the default), `training.vllm_engine.VLLMSampler` with a
colocated vLLM engine. Both sample from the exact token ids of the rendered prompt and
never sample `replay.BANNED_TOKENS`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from zoom_agent.models.base import Sampling
from zoom_agent.training.replay import RenderedPrompt, RolloutError
from zoom_agent.training.trajectory import PolicyCall

if TYPE_CHECKING:
    import torch

    from zoom_agent.models.hf import TransformersVLM


class TokenSampler(Protocol):
    """Samples one reply from a rendered prompt (transformers here; vLLM in `vllm_engine`).

    ``sample`` is called from worker threads, concurrently: a sampler serialises or batches
    as its engine needs. Optional hooks the trainer calls when present:
    ``before_rollouts()``, ``after_rollouts()``, ``sync_weights(model)``.
    """

    def sample(self, prompt: RenderedPrompt, sampling: Sampling, seed: int) -> PolicyCall: ...


class TransformersSampler:
    """Samples with ``model.generate`` from spliced token ids, recording policy log-probs.

    Args:
        vlm: the policy backend (model, tokenizer, EOS and pad ids).
        banned_ids: token ids the policy may not sample (`BANNED_TOKENS`).
    """

    def __init__(self, vlm: TransformersVLM, banned_ids: Sequence[int]) -> None:
        self.vlm = vlm
        self.banned_ids = tuple(banned_ids)
        self._lock = threading.Lock()  # one generate at a time on one model

    def sample(self, prompt: RenderedPrompt, sampling: Sampling, seed: int) -> PolicyCall:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList

        sample = sampling.temperature > 0
        warpers = {"temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": 0} if sample else {}
        config = GenerationConfig(
            max_new_tokens=sampling.max_tokens,
            do_sample=sample,
            repetition_penalty=1.0,
            eos_token_id=list(self.vlm.eos_token_ids),
            pad_token_id=self.vlm.pad_token_id,
            **warpers,
        )
        recorder = _MaskedPolicyLogprobs(self.banned_ids)
        inputs = prompt.model_inputs(device=self.vlm.device)
        devices = [self.vlm.device.index or 0] if self.vlm.device.type == "cuda" else []
        with self._lock, torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(seed)  # per call: the G samples of a group differ, and runs repeat
            out = self.vlm.model.generate(  # type: ignore[operator]
                **inputs, generation_config=config, logits_processor=LogitsProcessorList([recorder])
            )
        new = [int(t) for t in out[0, len(prompt.input_ids) :].tolist()]
        logprobs = recorder.finish(new)
        eos = set(self.vlm.eos_token_ids)
        cut = next((i + 1 for i, t in enumerate(new) if t in eos), None)
        ids = new if cut is None else new[:cut]
        text = str(self.vlm.tokenizer.decode(ids, skip_special_tokens=True))
        return PolicyCall(
            prompt_ids=tuple(prompt.input_ids),
            token_ids=tuple(ids),
            logprobs=tuple(logprobs[: len(ids)]),
            text=text,
            finish_reason="length" if cut is None else "stop",
        )


class _MaskedPolicyLogprobs:
    """A logits processor: masks the banned ids, records log_softmax at each sampled token.

    It runs before temperature and top-p (custom processors come first in transformers), so
    it records the policy's own log pi(token | prefix), as `policy_logprobs` computes it.
    """

    def __init__(self, banned_ids: Sequence[int]) -> None:
        self.banned = list(banned_ids)
        self._pending: torch.Tensor | None = None
        self._steps: list[float] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self._pending is not None:
            self._steps.append(float(self._pending[0, int(input_ids[0, -1])]))
        if self.banned:
            scores = scores.clone()
            scores[:, self.banned] = float("-inf")
        import torch

        self._pending = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def finish(self, new_tokens: Sequence[int]) -> list[float]:
        steps = list(self._steps)
        if self._pending is not None and new_tokens:
            steps.append(float(self._pending[0, new_tokens[-1]]))
        if len(steps) != len(new_tokens):
            raise RolloutError(f"recorded {len(steps)} log-probs for {len(new_tokens)} sampled tokens")
        return steps
