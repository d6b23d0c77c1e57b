"""Measures the vLLM rollout engine (`training/rollout/vllm_engine.py`) on vLLM's CPU build.

Runs in the vLLM environment's interpreter (tests/vllm_cpu/install.sh), importing this
checkout's source (`project_path`), and prints ONE JSON object of measurements on its last
stdout line; ``tests/vllm_cpu/test_rollout_engine.py`` asserts on them. Two checks:

``parity FAMILY WORKDIR``
    A tiny random policy (fp32) and a `VLLMSampler` started from the same folder. For fixed
    prompts (text only; one clip; two clips, coarse + zoom, after a tool turn; one clip of
    four temporal groups) and a fixed 24-token continuation, vLLM's prompt log-probs and the
    transformers policy's are compared, and a reply sampled by vLLM is re-scored by the
    policy (banned tokens masked). Stages: the initial weights; after noise on EVERY
    parameter and a sync; after noise on the vision tower only and a sync. ``moved`` is how
    far the policy's own log-probs moved at that stage (a stale engine would be off by that).

``grpo FAMILY WORKDIR``
    The tiny-cpu recipe with ``engine: vllm`` for a few steps. Per step: the trainer's
    ``rollout/logprob_diff`` (sampled vs recomputed by the current policy, which the run also
    enforces with ``check_logprobs_atol``) and ``stale_diff``: the same rollouts re-scored by
    the initial weights, i.e. what an engine that never synced would have sampled with.

    $ENV/bin/python tests/vllm_cpu/engine_probe.py parity qwen3_vl /tmp/probe
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import project_path

project_path.install()

import torch  # noqa: E402

from zoom_agent import protocol  # noqa: E402
from zoom_agent.config import Budget  # noqa: E402
from zoom_agent.models.base import Sampling, Turn  # noqa: E402
from zoom_agent.types import Span  # noqa: E402

# CPU-build settings of the harness (docs/serving.md §5): no CUDA graphs, a 1 GiB KV cache.
ENGINE_KWARGS: dict[str, Any] = {"enforce_eager": True, "max_model_len": 4096, "kv_cache_memory_bytes": 1 << 30}
CONTINUATION_TOKENS = 24
NOISE = {"all": 0.05, "vision": 0.2}  # std of the weight noise per stage (random tiny weights ~0.02)


def _policy_logprobs(policy: Any, prompt: Any, tokens: list[int], banned: tuple[int, ...]) -> torch.Tensor:
    from zoom_agent.training.loop.logprobs import policy_logprobs

    start = len(prompt.input_ids)
    with torch.no_grad():
        logp, _ = policy_logprobs(
            policy.model, prompt.model_inputs(tokens), list(range(start, start + len(tokens))), banned
        )
    return logp


def _prompts(policy: Any, video: Path) -> dict[str, Any]:
    """Rendered prompts: text only, one clip, coarse + zoom clips, one clip of 4 temporal groups."""
    from zoom_agent.planning import plan_clip
    from zoom_agent.training.rollout.render import render_conversation
    from zoom_agent.video import open_video

    info = open_video(video).info
    budget = Budget(visual_tokens=64, min_frames=2)
    tp = policy.geometry.temporal_patch

    def clip(start: float, end: float, groups: int, role: Any = "coarse") -> Any:
        frames = groups * tp
        span = Span(start=start, end=end)
        return plan_clip(info, span, budget, policy.geometry, fps=4.0, max_frames=frames, role=role)

    system = Turn(role="system", content=("Answer questions about the video.",))
    ask = "What colour is the square? Answer with a letter."
    coarse, zoom, long = clip(0.0, info.duration, 1), clip(2.0, 4.0, 1, "zoom"), clip(0.0, info.duration, 4)
    call = protocol.format_tool_call(2.0, 4.0)
    end = policy.tokenizer.convert_tokens_to_ids("<|im_end|>")
    reply = [*policy.tokenizer.encode(call, add_special_tokens=False), end]
    conversations = {
        "text": ((system, Turn(role="user", content=(ask,))), []),
        "one_clip": ((system, Turn(role="user", content=(protocol.clip_caption(coarse), coarse, ask))), []),
        "two_clips": (
            (
                system,
                Turn(role="user", content=(protocol.clip_caption(coarse), coarse, ask)),
                Turn(role="assistant", content=(call,)),
                Turn(role="tool", name="temporal_zoom", content=("Zoomed in on 2.0-4.0 s; the frames follow.",)),
                Turn(role="user", content=(protocol.clip_caption(zoom), zoom, "Answer now.")),
            ),
            [reply],
        ),
        "four_groups": ((system, Turn(role="user", content=(protocol.clip_caption(long), long, ask))), []),
    }
    return {name: render_conversation(policy, turns, replies) for name, (turns, replies) in conversations.items()}


def _perturb(model: torch.nn.Module, std: float, *, vision_only: bool, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if not vision_only or ".visual." in f".{name}":
                param.add_(torch.randn(param.shape, generator=generator) * std)


def parity(family: str, work: Path) -> dict[str, Any]:
    from zoom_agent.datasets.synthetic import make_synthetic_task
    from zoom_agent.models.hf import TransformersVLM
    from zoom_agent.models.tiny import build_tiny_model
    from zoom_agent.training.rollout.vllm_engine import VLLMSampler

    model = build_tiny_model(work / "model", family, overwrite=True)
    question = make_synthetic_task(work / "task", num_videos=1, duration=10.0, fps=8.0, size=(320, 240))[0]
    policy = TransformersVLM(model, device="cpu", dtype="float32")
    out: dict[str, Any] = {"family": family}
    try:
        VLLMSampler(policy, model, sleep_mode=True, **ENGINE_KWARGS)
        out["sleep_mode_true_refused"] = None
    except ValueError as exc:
        out["sleep_mode_true_refused"] = str(exc)
    started = time.perf_counter()
    sampler = VLLMSampler(policy, model, **ENGINE_KWARGS)
    out["startup_s"] = time.perf_counter() - started
    out["sleep_mode"] = sampler.sleep_mode
    prompts = _prompts(policy, Path(question.video))
    out["prompt_tokens"] = {name: len(p.input_ids) for name, p in prompts.items()}
    out["video_grids"] = {name: p.features["video_grid_thw"].tolist() for name, p in prompts.items() if p.clips}
    generator = torch.Generator().manual_seed(1)
    picks = torch.randint(0, len(sampler.allowed), (CONTINUATION_TOKENS,), generator=generator)
    continuation = [sampler.allowed[int(i)] for i in picks]
    sampling = Sampling(temperature=1.0, max_tokens=8)
    previous: dict[str, torch.Tensor] = {}
    stages: dict[str, Any] = {}
    sync_s = []
    for stage in ("initial", "all", "vision"):
        if stage != "initial":
            _perturb(policy.model, NOISE[stage], vision_only=stage == "vision", seed=len(stages))
            started = time.perf_counter()
            sampler.sync_weights(policy.model)
            sync_s.append(time.perf_counter() - started)
        rows = {}
        for name, prompt in prompts.items():
            want = _policy_logprobs(policy, prompt, continuation, ())
            got = torch.tensor(sampler.score(prompt, continuation))
            call = sampler.sample(prompt, sampling, seed=7)
            rescored = _policy_logprobs(policy, prompt, list(call.token_ids), sampler.banned_ids)
            rows[name] = {
                "score_diff": float((got - want).abs().max()),
                "sample_diff": float((torch.tensor(call.logprobs) - rescored).abs().max()),
                "sampled_tokens": len(call.token_ids),
                "moved": float((want - previous[name]).abs().max()) if name in previous else None,
            }
            previous[name] = want
        stages[stage] = rows
    out["stages"] = stages
    out["sync_s"] = sync_s
    out["syncs"] = sampler.syncs
    return out


def grpo(family: str, work: Path) -> dict[str, Any]:
    from zoom_agent.training.config import load_recipe
    from zoom_agent.training.loop.logprobs import policy_logprobs
    from zoom_agent.training.loop.trainer import Trainer
    from zoom_agent.training.rollout.render import replay_inputs

    steps = 4
    overrides = [
        f"output_dir={work / 'run'}",
        f"policy.tiny_family={family}",
        f"max_steps={steps}",
        "group_size=4",
        "engine=vllm",
        "progress=false",
        "check_logprobs_atol=1.0e-3",
        *(f"vllm.{k}={json.dumps(v)}" for k, v in ENGINE_KWARGS.items()),
    ]
    config = load_recipe("tiny-cpu", overrides)
    started = time.perf_counter()
    trainer = Trainer(config)
    out: dict[str, Any] = {"family": family, "setup_s": time.perf_counter() - started}
    seen: list[Any] = []
    update = trainer.update

    def recording_update(trajs: Any, advantages: Any, timer: Any) -> dict[str, float]:
        seen[:] = list(trajs)
        return update(trajs, advantages, timer)

    trainer.update = recording_update  # type: ignore[method-assign]
    assert trainer.ref is not None, "the tiny-cpu recipe keeps a frozen reference (the initial weights)"
    rows = []
    started = time.perf_counter()
    for _ in range(steps):
        metrics = trainer.step()
        stale = 0.0
        for traj in seen:
            inputs = replay_inputs(trainer.policy, traj)
            with torch.no_grad():
                initial, _ = policy_logprobs(trainer.ref.model, inputs, traj.masks.positions, trainer.engine.banned_ids)
            sampled = torch.tensor(traj.masks.sampled_logprobs())
            stale = max(stale, float((initial - sampled).abs().max()))
        rows.append(
            {
                "step": int(metrics["step"]),
                "logprob_diff": float(metrics["rollout/logprob_diff"]),
                "stale_diff": stale,
                "trajectories": len(seen),
                "policy_tokens": sum(len(t.masks.positions) for t in seen),
            }
        )
    out["train_s"] = time.perf_counter() - started
    out["steps"] = rows
    out["syncs"] = trainer.engine.sampler.syncs
    out["sampler"] = type(trainer.engine.sampler).__name__
    return out


def main(argv: list[str]) -> None:
    if len(argv) != 3 or argv[0] not in ("parity", "grpo"):
        raise SystemExit("usage: engine_probe.py {parity|grpo} FAMILY WORKDIR")
    check, family, work = argv[0], argv[1], Path(argv[2])
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    result = parity(family, work) if check == "parity" else grpo(family, work)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
