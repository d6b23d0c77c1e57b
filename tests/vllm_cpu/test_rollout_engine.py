"""The vLLM rollout engine on a REAL vLLM (the CPU build): weight sync, caches, sleep mode, GRPO.

`training/rollout/vllm_engine.py` runs vLLM in-process, so its checks run in the vLLM
environment's interpreter: ``engine_probe.py`` (this folder) measures, these tests judge. The
env is built by ``install.sh``; a missing or broken env FAILS (`harness.vllm_python`).

Tolerance: vLLM's and the transformers policy's log-probs (both fp32, CPU) of the same
tokens agree to ``TOL`` = 1e-4. Measured: at most 1.5e-6 on every prompt and stage. A sync
that missed any weight would be off by ``moved`` (how far the policy's own log-probs moved),
measured 0.9-1.4, i.e. 10,000x ``TOL``. For Qwen2.5-VL clips of several temporal groups this
needs the policy's text positions to follow Qwen's reference as vLLM's do
(`zoom_agent.models.qwen25_positions`); without it they were 0.05 apart.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from harness import CPU_ENV, vllm_python

from zoom_agent.geometry import FAMILIES

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

PROBE = Path(__file__).resolve().parent / "engine_probe.py"
TOL = 1e-4
PROBE_TIMEOUT_S = 1200  # measured 80-90 s per probe on 2 loaded cores; vLLM start-up varies


def _run_probe(check: str, family: str, work: Path) -> dict[str, Any]:
    env = os.environ | CPU_ENV
    proc = subprocess.run(
        [str(vllm_python()), str(PROBE), check, family, str(work)],
        capture_output=True,
        text=True,
        env=env,
        timeout=PROBE_TIMEOUT_S,
    )
    (work / "probe.log").write_text(proc.stdout + proc.stderr)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        pytest.fail(f"engine_probe.py {check} {family} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


@pytest.fixture(scope="module", params=FAMILIES)
def parity(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _run_probe("parity", request.param, tmp_path_factory.mktemp(f"parity-{request.param}"))


def test_engine_logprobs_equal_the_policys_before_and_after_every_sync(parity: dict[str, Any]) -> None:
    stages = parity["stages"]
    assert list(stages) == ["initial", "all", "vision"] and parity["syncs"] == 2
    for stage, rows in stages.items():
        for prompt, row in rows.items():
            assert row["score_diff"] <= TOL, (stage, prompt, row)
    for prompt, row in stages["all"].items():  # the check can fail: a stale engine is off by `moved`
        assert row["moved"] > 100 * TOL, (prompt, row)


def test_a_vision_tower_only_change_reaches_the_engine(parity: dict[str, Any]) -> None:
    """Only the vision tower moved: video prompts moved, text did not, and vLLM followed.

    vLLM's encoder cache holds embeddings of the very clips scored one stage earlier, so
    this also shows that the sync dropped them (stale embeddings would be off by `moved`).
    """
    rows = parity["stages"]["vision"]
    assert rows["text"]["moved"] <= TOL, rows["text"]
    for prompt in ("one_clip", "two_clips", "four_groups"):
        assert rows[prompt]["moved"] > 100 * TOL, (prompt, rows[prompt])
        assert rows[prompt]["score_diff"] <= TOL, (prompt, rows[prompt])


def test_sampled_logprobs_are_the_policys_masked_logprobs(parity: dict[str, Any]) -> None:
    for stage, rows in parity["stages"].items():
        for prompt, row in rows.items():
            assert row["sampled_tokens"] > 0, (stage, prompt)
            assert row["sample_diff"] <= TOL, (stage, prompt, row)


def test_two_clip_prompts_expand_to_the_policys_tokens(parity: dict[str, Any]) -> None:
    """vLLM expands each clip's placeholder itself; the engine fails unless it equals the policy's.

    Reaching this point means every request passed that check; here, the prompts held what
    they should: a coarse clip and a zoom in one prompt, and one clip of 4 temporal groups.
    """
    grids = parity["video_grids"]
    assert len(grids["two_clips"]) == 2 and len(grids["one_clip"]) == 1
    assert grids["one_clip"][0][0] == 1 and grids["four_groups"][0][0] == 4


def test_sleep_mode_is_detected_off_on_the_cpu_build(parity: dict[str, Any]) -> None:
    assert parity["sleep_mode"] is False
    refusal = parity["sleep_mode_true_refused"]
    assert refusal is not None and "no sleep mode" in refusal and "CPU build" in refusal


def test_grpo_with_the_vllm_engine_samples_from_the_synced_weights(tmp_path: Path) -> None:
    """tiny-cpu as shipped (Qwen2.5-VL, 4-frame clips of 2 groups) with ``engine: vllm``, 4 steps.

    Every step's sampled log-probs equal the current policy's recompute (the run itself
    also enforces 1e-3 through ``check_logprobs_atol``), and once the policy has moved away
    from its initial weights, the initial weights (what an engine that never synced holds)
    are far off the sampled log-probs.
    """
    result = _run_probe("grpo", "qwen2_5_vl", tmp_path)
    steps = result["steps"]
    assert result["sampler"] == "VLLMSampler" and result["syncs"] == len(steps) == 4
    for row in steps:
        assert row["trajectories"] > 0 and row["policy_tokens"] > 0, row
        assert row["logprob_diff"] <= TOL, row
    assert max(row["stale_diff"] for row in steps) > 100 * TOL, steps
