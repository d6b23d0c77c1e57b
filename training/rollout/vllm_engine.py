"""Rollouts on a colocated vLLM engine (GPU), with sleep/wake and weight sync after each step.

`VLLMSampler` is a `training.sampler.TokenSampler`: the rollout recorder renders each prompt
with the policy's own processor (earlier replies spliced in as sampled ids, video
placeholders already expanded) and vLLM samples from those exact token ids with the clips'
frames as multimodal data, so the training pass and vLLM see the same sequence. Requests
arriving from concurrent rollouts are gathered into one ``LLM.generate`` call (vLLM's
continuous batching does the rest).

Colocation, per training step (the trainer calls the hooks):
``before_rollouts`` wakes the engine; ``after_rollouts`` puts it to sleep (level 1: weights
to CPU, KV cache freed) so the optimiser step has the GPU memory; ``sync_weights`` wakes it
and loads the updated policy weights (HF names; vLLM's loader maps them).

vLLM is imported lazily (an optional extra: ``pip install 'zoom-agent[vllm]'``, in its own
environment, see FIELD-NOTES.md). The engine core runs in this process
(``VLLM_ENABLE_V1_MULTIPROCESSING=0``) so weights can be loaded without serialising them.
Not exercised on CPU; ``tests/test_vllm_rollout.py`` (marked ``gpu``) checks it on a GPU.
"""

from __future__ import annotations

import os
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoom_agent.models.base import Sampling
from zoom_agent.training.rollout.render import RenderedPrompt, banned_token_ids
from zoom_agent.training.rollout.trajectory import PolicyCall

if TYPE_CHECKING:
    import torch

    from zoom_agent.models.hf import TransformersVLM


@dataclass
class _Job:
    request: dict[str, Any]
    params: Any
    prompt: RenderedPrompt
    future: Future[PolicyCall]


class VLLMSampler:
    """Samples rollout replies with ``vllm.LLM`` from token ids (colocated with training).

    Args:
        policy: the training policy (its processor renders frames; its tokenizer decodes).
        model_path: the weights vLLM starts from (the policy's initial folder).
        gpu_memory_utilization: vLLM's share of the GPU (the rest is the trainer's).
        max_batch: most requests per ``generate`` call.
        **llm_kwargs: more ``vllm.LLM`` arguments.
    """

    def __init__(
        self,
        policy: TransformersVLM,
        model_path: str | os.PathLike[str],
        *,
        gpu_memory_utilization: float = 0.4,
        max_batch: int = 256,
        **llm_kwargs: Any,
    ) -> None:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        from vllm import LLM

        self.policy = policy
        self.banned_ids = banned_token_ids(policy.tokenizer)
        self.llm = LLM(
            model=str(Path(model_path)),
            enable_sleep_mode=True,
            gpu_memory_utilization=gpu_memory_utilization,
            limit_mm_per_prompt={"video": llm_kwargs.pop("max_videos", 8), "image": 0},
            **llm_kwargs,
        )
        vocab = int(self.llm.get_tokenizer().vocab_size)
        vocab = max(vocab, len(policy.tokenizer))
        self.allowed = [i for i in range(vocab) if i not in set(self.banned_ids)]
        self.max_batch = max_batch
        self.asleep = False
        self._queue: queue.Queue[_Job] = queue.Queue()
        self._engine_lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True, name="vllm-sampler").start()

    # -- TokenSampler ------------------------------------------------------------------
    def sample(self, prompt: RenderedPrompt, sampling: Sampling, seed: int) -> PolicyCall:
        """Queue one request; blocks until the batch holding it is generated."""
        from vllm import SamplingParams

        params = SamplingParams(
            n=1,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=0 if sampling.temperature > 0 else -1,
            max_tokens=sampling.max_tokens,
            seed=seed,
            logprobs=0,  # the sampled token's log-prob
            allowed_token_ids=self.allowed,
            skip_special_tokens=True,
        )
        job = _Job(self._request(prompt), params, prompt, Future())
        self._queue.put(job)
        return job.future.result()

    def _request(self, prompt: RenderedPrompt) -> dict[str, Any]:
        from zoom_agent.models.hf_render import clip_metadata, read_clip_frames

        videos = []
        for ref in prompt.clips:
            frames = read_clip_frames(ref)
            meta = clip_metadata(ref, self.policy.family, len(frames), list(ref.frame_indices))
            videos.append((frames, {**_as_dict(meta), "do_sample_frames": False}))
        request: dict[str, Any] = {"prompt_token_ids": list(prompt.input_ids)}
        if videos:
            request["multi_modal_data"] = {"video": videos}
        return request

    def _serve(self) -> None:
        while True:
            jobs = [self._queue.get()]
            while len(jobs) < self.max_batch:
                try:
                    jobs.append(self._queue.get(timeout=0.005))
                except queue.Empty:
                    break
            try:
                with self._engine_lock:
                    self._wake()
                    outputs = self.llm.generate([j.request for j in jobs], [j.params for j in jobs], use_tqdm=False)
                for job, out in zip(jobs, outputs, strict=True):
                    job.future.set_result(self._call(job.prompt, out.outputs[0]))
            except Exception as exc:  # each waiting rollout gets the error (an item failure)
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)

    def _call(self, prompt: RenderedPrompt, out: Any) -> PolicyCall:
        ids = [int(t) for t in out.token_ids]
        logprobs = [float(step[t].logprob) for step, t in zip(out.logprobs or [], ids, strict=False)]
        if len(logprobs) != len(ids):
            raise RuntimeError(f"vLLM returned {len(logprobs)} log-probs for {len(ids)} tokens")
        text = str(self.policy.tokenizer.decode(ids, skip_special_tokens=True))
        return PolicyCall(
            prompt_ids=tuple(prompt.input_ids),
            token_ids=tuple(ids),
            logprobs=tuple(logprobs),
            text=text,
            finish_reason="length" if out.finish_reason == "length" else "stop",
        )

    # -- colocation hooks --------------------------------------------------------------
    def before_rollouts(self) -> None:
        with self._engine_lock:
            self._wake()

    def after_rollouts(self) -> None:
        """Sleep: weights to CPU, KV cache freed, so training has the GPU memory."""
        with self._engine_lock:
            if not self.asleep:
                self.llm.sleep(level=1)
                self.asleep = True

    def sync_weights(self, model: torch.nn.Module) -> None:
        """Load the policy's current weights into the engine (HF parameter names)."""
        with self._engine_lock:
            self._wake()
            state = {name: t.detach() for name, t in model.state_dict().items()}
            self.llm.apply_model(lambda m: m.load_weights(state.items()))
            self.llm.reset_prefix_cache()  # cached prefixes hold the old weights' KV

    def _wake(self) -> None:
        if self.asleep:
            self.llm.wake_up()
            self.asleep = False


def _as_dict(meta: Any) -> dict[str, Any]:
    """transformers' VideoMetadata as the plain dict vLLM takes beside the frames."""
    return {
        "fps": float(meta.fps),
        "total_num_frames": int(meta.total_num_frames),
        "frames_indices": [int(i) for i in meta.frames_indices],
        "duration": float(meta.total_num_frames / meta.fps),
        "video_backend": "opencv",
    }
