"""Rollouts on a colocated vLLM engine, with weight sync after each step (GPU or vLLM's CPU build).

`VLLMSampler` is a `training.rollout.sampler.TokenSampler`: the rollout recorder renders each
prompt with the policy's own processor (earlier replies spliced in as sampled ids, video
placeholders already expanded) and vLLM samples from those exact token ids with the same
frames, frame timing and size bounds as multimodal data (`TransformersVLM.video_kwargs`), so
the training pass and vLLM see the same sequence. Requests arriving from concurrent
rollouts are gathered into one ``LLM.generate`` call (vLLM's continuous batching does the
rest). Sampled log-probs are vLLM's *processed* log-probs (after the banned-token mask,
temperature and top-p): at temperature 1 and top_p 1, the training setting, they are the
policy's log-probs that the training pass recomputes (`check_logprobs_atol` compares them).

Per training step the trainer calls the hooks (docs/training.md §6):

- ``before_rollouts`` wakes the engine; ``after_rollouts`` puts it to sleep (level 1:
  weights to host memory, KV cache freed) so the optimiser step has the GPU memory. Sleep
  mode exists only where vLLM's platform has it (CUDA, ROCm, XPU); elsewhere (the CPU build)
  the hooks do nothing. It is detected, not assumed (`sleep_mode_available`).
- ``sync_weights`` loads the policy's current weights, every parameter, vision tower
  included, through vLLM's in-place reload (``collective_rpc("reload_weights")`` with the
  weights as an iterator of HF-named tensors: vLLM maps the names, restores each layer to
  checkpoint format, loads, and re-runs its post-load processing, e.g. the CPU build's
  repacked GEMM weights). ``model.load_weights`` alone is not enough: on the CPU build the
  vision tower's parameters have no ``weight_loader`` after loading and it raises. Then both
  caches built from the old weights are dropped: the encoder cache (vision embeddings; the
  engine-level reset clears the scheduler's record too, else the next request fails with
  "Encoder cache miss") and the prefix cache (KV of cached prompt prefixes).

vLLM is imported lazily (an optional extra, in its own environment: it pins torch and
transformers). The engine core runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``) so
the weights reach it as tensors, without serialising them.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoom_agent.models.base import Sampling
from zoom_agent.training.rollout.render import RenderedPrompt, RolloutError, banned_token_ids
from zoom_agent.training.rollout.trajectory import PolicyCall

if TYPE_CHECKING:
    import torch

    from zoom_agent.models.hf import TransformersVLM

LOGPROBS_MODE = "processed_logprobs"
"""vLLM reports the log-prob of the distribution it sampled from (banned tokens masked)."""


@dataclass
class _Job:
    request: dict[str, Any]
    params: Any
    prompt: RenderedPrompt
    future: Future[PolicyCall]


def sleep_mode_available() -> bool:
    """Whether this vLLM build's platform supports ``enable_sleep_mode`` (not the CPU build)."""
    from vllm.platforms import current_platform

    return bool(current_platform.is_sleep_mode_available())


class VLLMSampler:
    """Samples rollout replies with ``vllm.LLM`` from token ids (colocated with training).

    Args:
        policy: the training policy (its processor renders frames; its tokenizer decodes).
        model_path: the weights vLLM starts from (the policy's initial folder).
        sleep_mode: put the engine to sleep between rollouts; None = where the platform
            supports it (`sleep_mode_available`).
        gpu_memory_utilization: vLLM's share of the GPU (the rest is the trainer's).
        max_batch: most requests per ``generate`` call.
        max_videos: most clips per prompt.
        **llm_kwargs: more ``vllm.LLM`` arguments (``dtype`` defaults to the policy's).

    Raises:
        ValueError: ``sleep_mode=True`` where the platform has no sleep mode, another
            ``logprobs_mode``, or vLLM's engine configured to run in a subprocess.
    """

    def __init__(
        self,
        policy: TransformersVLM,
        model_path: str | os.PathLike[str],
        *,
        sleep_mode: bool | None = None,
        gpu_memory_utilization: float = 0.4,
        max_batch: int = 256,
        max_videos: int = 8,
        **llm_kwargs: Any,
    ) -> None:
        multiprocessing = os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        if multiprocessing != "0":
            raise ValueError(
                "VLLMSampler runs vLLM's engine in this process (weight sync hands it tensors): "
                f"unset VLLM_ENABLE_V1_MULTIPROCESSING or set it to 0, not {multiprocessing!r}"
            )
        if llm_kwargs.setdefault("logprobs_mode", LOGPROBS_MODE) != LOGPROBS_MODE:
            raise ValueError(
                f"vllm.logprobs_mode must be {LOGPROBS_MODE!r} (sampled log-probs are the policy's), "
                f"got {llm_kwargs['logprobs_mode']!r}"
            )
        from vllm import LLM

        available = sleep_mode_available()
        if sleep_mode and not available:
            raise ValueError(
                "vllm.sleep_mode=true, but this vLLM platform has no sleep mode (CUDA, ROCm and XPU "
                "have it; the CPU build does not): leave sleep_mode unset to detect it"
            )
        self.sleep_mode = available if sleep_mode is None else sleep_mode
        self.policy = policy
        self.banned_ids = banned_token_ids(policy.tokenizer)
        llm_kwargs.setdefault("dtype", str(policy.model.dtype).removeprefix("torch."))
        self.llm = LLM(
            model=str(Path(model_path)),
            enable_sleep_mode=self.sleep_mode,
            gpu_memory_utilization=gpu_memory_utilization,
            limit_mm_per_prompt={"video": max_videos, "image": 0},
            **llm_kwargs,
        )
        _check_sync_support(self.llm)
        # every id of the model's logits (the tokenizer may have fewer), as the policy samples them
        vocab = int(self.llm.llm_engine.model_config.get_vocab_size())
        banned = set(self.banned_ids)
        self.allowed = [i for i in range(vocab) if i not in banned]
        self.max_batch = max_batch
        self.asleep = False
        self.syncs = 0
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
        job = _Job(self.request(prompt), params, prompt, Future())
        self._queue.put(job)
        return job.future.result()

    def score(self, prompt: RenderedPrompt, continuation: Sequence[int]) -> list[float]:
        """Log-probs of ``continuation`` after ``prompt`` under the engine's current weights.

        Raw log-probs (no banned-token mask), position by position, from vLLM's prompt
        log-probs: what `render.policy_logprobs` with no banned ids gives on the policy.
        """
        from vllm import SamplingParams

        if not continuation:
            raise ValueError("score needs a non-empty continuation")
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        with self._engine_lock:
            self._wake()
            (out,) = self.llm.generate([self.request(prompt, continuation)], [params], use_tqdm=False)
        _check_expansion(out, [*prompt.input_ids, *continuation])
        steps = out.prompt_logprobs[len(prompt.input_ids) :]
        return [float(step[int(t)].logprob) for step, t in zip(steps, continuation, strict=True)]

    def request(self, prompt: RenderedPrompt, extra: Sequence[int] = ()) -> dict[str, Any]:
        """The vLLM prompt: the template's token ids (+ ``extra``) and the clips as the policy saw them.

        vLLM expands each clip's one ``<|video_pad|>`` itself (it does not recognise a prompt
        whose placeholders are already expanded: it would expand the first pad again), so it
        gets `RenderedPrompt.template_ids`; `_check_expansion` then holds its expansion to the
        policy's ``input_ids``.
        """
        request: dict[str, Any] = {"prompt_token_ids": [*prompt.template_ids, *extra]}
        if prompt.clips:
            video = self.policy.video_kwargs(prompt.clips)
            frames, metadata = video.pop("videos"), video.pop("video_metadata")
            request["multi_modal_data"] = {"video": [(f, _as_dict(m)) for f, m in zip(frames, metadata, strict=True)]}
            request["mm_processor_kwargs"] = video  # size bounds, do_sample_frames=False, ...
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
                    _check_expansion(out, job.prompt.input_ids)
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

    # -- the trainer's hooks -----------------------------------------------------------
    def before_rollouts(self) -> None:
        with self._engine_lock:
            self._wake()

    def after_rollouts(self) -> None:
        """Sleep (weights to host memory, KV cache freed) so training has the GPU memory."""
        with self._engine_lock:
            if self.sleep_mode and not self.asleep:
                self.llm.sleep(level=1)
                self.asleep = True

    def sync_weights(self, model: torch.nn.Module) -> None:
        """Load every weight of ``model`` (HF names) into the engine; drop what the old ones built."""
        with self._engine_lock:
            self._wake()
            weights = ((name, tensor.detach()) for name, tensor in model.state_dict().items())
            self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
            self.llm.llm_engine.reset_encoder_cache()  # vision embeddings (scheduler and runner)
            self.llm.reset_prefix_cache()  # KV of cached prompt prefixes
            self.syncs += 1

    def _wake(self) -> None:
        if self.asleep:
            self.llm.wake_up()
            self.asleep = False


def _check_sync_support(llm: Any) -> None:
    """Fail at start-up, not at the first sync, on a vLLM without what `sync_weights` calls."""
    import inspect

    def reload_takes_tensors(worker: Any) -> bool:
        return "weights_iterator" in inspect.signature(worker.model_runner.reload_weights).parameters

    if not hasattr(llm.llm_engine, "reset_encoder_cache") or not all(llm.collective_rpc(reload_takes_tensors)):
        version = getattr(sys.modules.get("vllm"), "__version__", "(unknown version)")
        raise RuntimeError(
            f"vLLM {version} lacks LLMEngine.reset_encoder_cache or an in-place "
            "reload_weights(weights_iterator=...); the rollout engine's weight sync needs both (tested: 0.32)"
        )


def _check_expansion(out: Any, expected: Sequence[int]) -> None:
    """vLLM's prompt after its placeholder expansion must be the policy's, token for token."""
    got = [int(t) for t in out.prompt_token_ids]
    if got != list(expected):
        at = next(
            (i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b), min(len(got), len(expected))
        )
        raise RolloutError(
            f"vLLM expanded the prompt to {len(got)} tokens, the policy's processor to {len(expected)}; first "
            f"difference at token {at}: vLLM's frames, sizes or timing differ from the policy's"
        )


def _as_dict(meta: Any) -> dict[str, Any]:
    """transformers' ``VideoMetadata`` as the plain dict vLLM takes beside the frames."""
    return {
        "fps": float(meta.fps),
        "total_num_frames": int(meta.total_num_frames),
        "frames_indices": [int(i) for i in meta.frames_indices],
        "duration": float(meta.total_num_frames / meta.fps),
        "video_backend": "opencv",
        "do_sample_frames": False,
    }
