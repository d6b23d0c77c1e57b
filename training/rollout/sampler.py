"""Samplers: who samples a rollout's replies from a rendered prompt, recording log-probs.

`TokenSampler` is what the rollout recorder calls; `TransformersSampler` samples with the
policy's own ``model.generate`` (the default), `vllm_engine.VLLMSampler` with a
colocated vLLM engine. Both sample from the exact token ids of the rendered prompt and
never sample `render.BANNED_TOKENS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from zoom_agent.models.base import Sampling
from zoom_agent.training.rollout.render import RenderedPrompt, RolloutError
from zoom_agent.training.rollout.trajectory import PolicyCall

if TYPE_CHECKING:
    from zoom_agent.models.hf import TransformersVLM


class TokenSampler(Protocol):
    """Samples one reply from a rendered prompt (transformers here; vLLM in `vllm_engine`).

    ``sample`` is called from worker threads, concurrently: a sampler serialises or batches
    as its engine needs. Optional hooks the trainer calls when present:
    ``before_rollouts()``, ``after_rollouts()``, ``sync_weights(model)``.
    """

    def sample(self, prompt: RenderedPrompt, sampling: Sampling, seed: int) -> PolicyCall: ...


class TransformersSampler:
    """Samples with the policy's own `TransformersVLM.generate_from_inputs` from spliced token
    ids, recording policy log-probs; `BANNED_TOKENS` are never sampled.

    Args:
        vlm: the policy backend.
        banned_ids: token ids the policy may not sample (`BANNED_TOKENS`).
    """

    def __init__(self, vlm: TransformersVLM, banned_ids: Sequence[int]) -> None:
        self.vlm = vlm
        self.banned_ids = tuple(banned_ids)

    def sample(self, prompt: RenderedPrompt, sampling: Sampling, seed: int) -> PolicyCall:
        # seeded per call: the G samples of a group differ, and runs repeat
        per_call = sampling.model_copy(update={"seed": seed, "n": 1})
        inputs = prompt.model_inputs(device=self.vlm.device)
        (done,) = self.vlm.generate_from_inputs(inputs, per_call, banned_token_ids=self.banned_ids)
        if done.logprobs is None or len(done.logprobs) != len(done.token_ids or ()):
            raise RolloutError("the policy returned no log-prob for some sampled token")
        return PolicyCall(
            prompt_ids=tuple(prompt.input_ids),
            token_ids=tuple(done.token_ids or ()),
            logprobs=tuple(done.logprobs),
            text=done.text,
            finish_reason=done.finish_reason or "stop",
        )
