"""Rollouts on the colocated vLLM engine (GPU only; CI skips it).

Run on a GPU machine with vLLM installed: ``pytest -m gpu tests/test_vllm_rollout.py``.
"""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="needs vllm (the 'vllm' extra)"),
]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from zoom_agent.datasets.synthetic import make_synthetic_task
    from zoom_agent.models.hf import TransformersVLM
    from zoom_agent.models.tiny import build_tiny_model
    from zoom_agent.training.rollout.engine import RolloutEngine
    from zoom_agent.training.rollout.vllm_engine import VLLMSampler

    root: Path = tmp_path_factory.mktemp("vllm")
    questions = make_synthetic_task(root / "task", num_videos=1, duration=10.0, fps=4.0, size=(160, 120), num_events=2)
    path = build_tiny_model(root / "tiny", "qwen2_5_vl")
    policy = TransformersVLM(path, device="cuda", dtype="float32")
    sampler = VLLMSampler(policy, path, gpu_memory_utilization=0.2, dtype="float32", enforce_eager=True)
    return RolloutEngine(policy, sampler), questions


def _agent():  # type: ignore[no-untyped-def]
    from zoom_agent.config import AgentConfig, Budget

    return AgentConfig(budget=Budget(visual_tokens=64, fps=0.5), temperature=1.0, max_tokens=12, format_retries=0)


def test_vllm_rollouts_replay_exactly_in_the_training_pass(engine) -> None:  # type: ignore[no-untyped-def]
    from zoom_agent.training.loop.logprobs import policy_logprobs
    from zoom_agent.training.rollout.render import replay_inputs

    rollout_engine, questions = engine
    trajs = asyncio.run(rollout_engine.rollouts(questions[:2], _agent(), group_size=4, seed=0))
    assert all(not t.failed for t in trajs)
    assert len({t.calls[0].token_ids for t in trajs[:4]}) > 1, "samples of a group differ"
    for traj in trajs:
        inputs = replay_inputs(rollout_engine.vlm, traj)  # raises if the sequence is not reproduced
        with torch.no_grad():
            lp, _ = policy_logprobs(rollout_engine.vlm.model, inputs, traj.policy_positions, rollout_engine.banned_ids)
        sampled = torch.tensor(traj.masks.sampled_logprobs(), device=lp.device)
        # vLLM reports processed log-probs (banned tokens masked), the policy's at temperature 1;
        # GPU kernels differ from the CPU's, so this is looser than tests/vllm_cpu's 1e-4.
        assert float((lp - sampled).abs().median()) < 0.05


def test_sleep_wake_and_weight_sync_reach_the_engine(engine) -> None:  # type: ignore[no-untyped-def]
    from zoom_agent.models.base import Sampling
    from zoom_agent.training.rollout.render import render_conversation

    rollout_engine, questions = engine
    sampler, policy = rollout_engine.sampler, rollout_engine.vlm
    traj = asyncio.run(rollout_engine.rollouts(questions[:1], _agent(), group_size=1, seed=1))[0]
    prompt = render_conversation(policy, traj.turns[:-1], [c.token_ids for c in traj.calls[:-1]])
    greedy = Sampling(temperature=0.0, max_tokens=8)
    sampler.after_rollouts()
    assert sampler.asleep
    with torch.no_grad():
        for p in policy.model.parameters():
            p.add_(torch.randn_like(p) * 0.5)  # a very different policy
    sampler.sync_weights(policy.model)
    assert not sampler.asleep
    got = sampler.sample(prompt, greedy, seed=0).token_ids
    inputs = prompt.model_inputs(device=policy.device)
    with torch.no_grad():
        out = policy.model.generate(  # type: ignore[operator]
            **inputs, max_new_tokens=8, do_sample=False, suppress_tokens=list(rollout_engine.banned_ids)
        )
    want = tuple(int(t) for t in out[0, len(prompt.input_ids) :].tolist())
    assert got[:4] == want[:4], "vLLM must sample from the synced weights"
