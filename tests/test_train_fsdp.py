"""FSDP under ``accelerate launch``: two CPU processes (gloo) train as one process does.

The same recipe, data, seeds and global batch run twice: once as ``zoom-agent train`` alone,
once as ``accelerate launch --use_fsdp --fsdp_version 2 --num_processes 2 -m zoom_agent.cli
train`` (the policy sharded with FSDP2, each rank rolling out half the questions). Every
step's rewards must be equal and its losses equal within `LOSS_TOL`; the final models (the
FSDP run's written by rank 0 from the gathered weights, loaded here in one process) equal
within `WEIGHT_TOL`. Then the FSDP run is cut back to its step-2 checkpoint (as if killed
after it) and relaunched: it resumes, the gathered optimiser state scattered back onto the
shards, and ends with the uninterrupted run's weights.

Why not bit-exact: the two runs add the same per-sequence gradients in a different order
(one process accumulates all of them; under FSDP each rank accumulates its own and the
reduce-scatter adds the ranks' sums), so gradients agree to fp32 rounding. Losses and the
gradient norm then agree to 3e-6 relative or better (measured; `LOSS_TOL`). AdamW divides each gradient by
its own running RMS, so where a gradient element is a near-cancelling sum (about 0), its
rounding error becomes a visible share of a step of size up to lr (1e-2 here): measured
after 3 steps, the weights differ by 2.6e-9 on average and 1.3e-5 at most over 240k elements
(2.4e-5 in another run), while training moved them by 1.0e-2 on average (docs/training.md §5). `WEIGHT_TOL` bounds the
largest difference at 2% of one step's size and the mean at 1e-7. A real difference (a
rank's gradient missing or a different batch) turns Adam's steps and moves most weights by
~lr; gradients averaged instead of summed (which Adam's scale invariance would hide in the
weights) halve ``actor/grad_norm``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fake_vllm import free_port

from zoom_agent.training.loop import checkpoint as ckpt

STEPS = 3
SAVE_EVERY = 2
LOSS_TOL = {"rtol": 1e-4, "atol": 1e-6}
WEIGHT_TOL = {"rtol": 0.0, "atol": 2e-4}
MEAN_WEIGHT_TOL = 1e-7
COMPARED = ("actor/loss", "actor/pg_loss", "actor/kl", "actor/entropy", "actor/grad_norm")
EXACT = ("reward/total", "rollout/count", "response/policy_tokens")
LAUNCH_TIMEOUT_S = 1200  # generous: the machine may be shared; the run takes about a minute alone


def _overrides(out: Path, model: Path, data: Path) -> list[str]:
    return [
        f"output_dir={out}",
        f"policy.path={model}",
        f"data.synthetic_dir={data}",
        "data.synthetic_videos=1",
        "data.synthetic_video={duration: 10.0, fps: 4.0, size: [160, 120], num_events: 2}",
        "group_size=2",
        "prompts_per_step=3",  # 2 questions on rank 0, 1 on rank 1: rank 1 pads with zero-weight passes
        f"max_steps={STEPS}",
        f"save_every={SAVE_EVERY}",
        "agent.max_tokens=8",
        "loss.entropy_coef=0.01",  # a loss that is not 0 when a group's rewards are equal
        "progress=false",
    ]


def _launch() -> list[str]:
    """``accelerate launch`` with FSDP2 over 2 processes (on CPU: gloo), on a free port."""
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--num_machines", "1"]
    launch += ["--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port())]
    return [*launch, "--use_fsdp", "--fsdp_version", "2"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "ACCELERATE_USE_FSDP")}
    return env | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def _run(command: list[str], cwd: Path) -> str:
    done = subprocess.run(
        command, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S, check=False
    )
    assert done.returncode == 0, f"{command[:6]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    return done.stdout


def _metrics(out: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    tensors: dict[str, torch.Tensor] = {}
    for file in sorted(folder.glob("*.safetensors")):
        tensors |= load_file(file)
    return tensors


def _assert_same_training(a: Path, b: Path, steps: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Runs ``a`` and ``b`` logged the same rewards and token counts, losses within
    `LOSS_TOL`, and wrote final models within `WEIGHT_TOL`; returns both models' weights."""
    one, two = _metrics(a), _metrics(b)  # rank 0 writes the global metrics once
    assert [m["step"] for m in one] == [m["step"] for m in two] == list(range(1, steps + 1))
    for x, y in zip(one, two, strict=True):
        assert {k: x[k] for k in EXACT} == {k: y[k] for k in EXACT}, "the same rollouts, rewards and tokens"
        got, want = torch.tensor([y[k] for k in COMPARED]), torch.tensor([x[k] for k in COMPARED])
        torch.testing.assert_close(got, want, **LOSS_TOL, msg=lambda m, s=x["step"]: f"step {s}: {m}")
    assert any(m["actor/grad_norm"] > 0 for m in one), "the run must train"
    final_one, final_two = _weights(a / ckpt.FINAL_MODEL_DIR), _weights(b / ckpt.FINAL_MODEL_DIR)
    assert final_two.keys() == final_one.keys()
    for name, want in final_one.items():
        assert final_two[name].shape == want.shape, f"{name}: a full tensor, not a shard"
        torch.testing.assert_close(final_two[name], want, **WEIGHT_TOL, msg=lambda m, n=name: f"{n}: {m}")
    diffs = torch.cat([(final_two[n] - w).abs().flatten() for n, w in final_one.items()])
    assert float(diffs.mean()) <= MEAN_WEIGHT_TOL
    return final_one, final_two


def _prebuilt(tmp_path: Path) -> tuple[Path, Path]:
    """The tiny model and the synthetic task every run of a test shares."""
    from zoom_agent.datasets.synthetic import make_synthetic_task
    from zoom_agent.models.tiny import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny", "qwen2_5_vl")
    data = tmp_path / "data"
    make_synthetic_task(data, num_videos=1, duration=10.0, fps=4.0, size=(160, 120), num_events=2)
    return model, data


def _load_model(folder: Path) -> torch.nn.Module:
    from transformers import AutoModelForImageTextToText

    from zoom_agent.models.tiny import quiet_progress_bars

    with quiet_progress_bars():
        return AutoModelForImageTextToText.from_pretrained(folder)


@pytest.mark.slow
def test_fsdp_two_processes_train_like_one(tmp_path: Path) -> None:
    model, data = _prebuilt(tmp_path)
    alone, sharded = tmp_path / "alone", tmp_path / "fsdp"
    train = ["-m", "zoom_agent.cli", "train", "tiny-cpu", "--override"]
    _run([sys.executable, *train, *_overrides(alone, model, data)], tmp_path)
    stdout = _run([*_launch(), *train, *_overrides(sharded, model, data)], tmp_path)
    assert "FSDP: the policy is sharded over 2 processes" in stdout

    final_one, final_two = _assert_same_training(alone, sharded, STEPS)
    initial = _weights(model)
    moved = max(float((final_one[n] - initial[n]).abs().max()) for n in initial if n in final_one)
    assert moved > 10 * WEIGHT_TOL["atol"], "the weights must move far more than the tolerance"

    # The checkpoint's optimiser state is the gathered one, keyed by parameter name.
    checkpoints = sharded / ckpt.CHECKPOINTS_DIR
    state = torch.load(checkpoints / f"step_{STEPS:06d}" / "optimizer.pt", weights_only=True)["optimizer"]["state"]
    loaded = dict(_load_model(sharded / ckpt.FINAL_MODEL_DIR).named_parameters())  # in one process
    assert state and set(state) <= set(loaded)
    assert all(v["exp_avg"].shape == loaded[n].shape for n, v in state.items())

    # Killed after the step-2 checkpoint: the same launch resumes there and ends where the
    # uninterrupted run did (same mode, same order of sums: equal to fp32 rounding).
    shutil.rmtree(checkpoints / f"step_{STEPS:06d}")
    (checkpoints / ckpt.LATEST).write_text(f"step_{SAVE_EVERY:06d}\n")
    stdout = _run([*_launch(), *train, *_overrides(sharded, model, data)], tmp_path)
    assert f"from its checkpoint at step {SAVE_EVERY}/{STEPS}" in stdout
    resumed = _weights(sharded / "final_model")
    for name, want in final_two.items():
        torch.testing.assert_close(resumed[name], want, rtol=0, atol=1e-6, msg=lambda m, n=name: f"{n}: {m}")
    assert [m["step"] for m in _metrics(sharded)] == list(range(1, STEPS + 1))


@pytest.mark.slow
def test_fsdp_with_mini_batches_trains_like_data_parallel(tmp_path: Path) -> None:
    """Their optimiser (old log-probs once, then mini-batches, each rank cutting its share
    into as many) under FSDP via the recipe key and torchrun, against data parallel: 3
    questions on 2 ranks cut into 3 mini-batches of [2, 1, 1] and [1, 1, 0] sequences, so
    rank 1 pads the old-log-prob pass and two mini-batches, one of them from nothing."""
    model, data = _prebuilt(tmp_path)
    plain, sharded = tmp_path / "data-parallel", tmp_path / "fsdp"
    train = ["-m", "zoom_agent.cli", "train", "tiny-cpu", "--override"]
    extra = ["max_steps=1", "optim.mini_batch_size=2"]
    for out, mode in ((plain, "data-parallel"), (sharded, "fsdp")):
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2"]
        torchrun += ["--master_addr", "127.0.0.1", "--master_port", str(free_port())]
        _run([*torchrun, *train, *_overrides(out, model, data), *extra, f"distributed={mode}"], tmp_path)
    _assert_same_training(plain, sharded, 1)
    assert _metrics(sharded)[0]["actor/optimizer_steps"] == 3


def test_fsdp_is_chosen_by_the_recipe_or_by_accelerate_launch(monkeypatch: pytest.MonkeyPatch) -> None:
    from zoom_agent.training.config import TrainConfig
    from zoom_agent.training.loop.distributed import DistContext
    from zoom_agent.training.loop.fsdp import FSDP_ENV, fsdp_requested
    from zoom_agent.training.loop.preflight import RunSetupError

    monkeypatch.delenv(FSDP_ENV, raising=False)
    monkeypatch.delenv("FSDP_VERSION", raising=False)
    assert TrainConfig().distributed == "data-parallel" and not fsdp_requested("data-parallel")
    assert fsdp_requested(TrainConfig.model_validate({"distributed": "fsdp"}).distributed)
    monkeypatch.setenv(FSDP_ENV, "true")  # accelerate launch --use_fsdp --fsdp_version 2
    monkeypatch.setenv("FSDP_VERSION", "2")
    assert fsdp_requested("data-parallel")
    monkeypatch.setenv("FSDP_VERSION", "1")  # accelerate launch --use_fsdp (its default version)
    with pytest.raises(ValueError, match=r"FSDP version 1.*--fsdp_version 2"):
        fsdp_requested("data-parallel")
    with pytest.raises(ValueError, match="distributed"):
        TrainConfig.model_validate({"distributed": "ddp"})
    monkeypatch.delenv(FSDP_ENV)
    four = DistContext(rank=0, world=4)
    assert fsdp_requested("fsdp", 4, four) and not fsdp_requested("data-parallel", 2, four)
    with pytest.raises(RunSetupError, match="prompts_per_step >= the number of processes \\(4\\), got 2"):
        fsdp_requested("fsdp", 2, four)
