"""Data parallel training in two processes (torch.distributed, gloo on CPU).

Checks: the summed gradients equal the whole batch's gradient (one process, all the data);
after a real GRPO step on different questions per rank, every rank holds the same weights,
and they moved; metrics are global and written once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from fake_vllm import free_port

pytestmark = pytest.mark.slow

WORLD = 2


def _toy_data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(10, 4, generator=g), torch.randn(10, 1, generator=g)


def _toy_model() -> torch.nn.Linear:
    torch.manual_seed(1)
    return torch.nn.Linear(4, 1)


def _worker(rank: int, port: int, paths: dict[str, str]) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(WORLD),
        LOCAL_RANK=str(rank),
    )
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    torch.set_num_threads(1)
    from zoom_agent.training.config import load_recipe
    from zoom_agent.training.loop import distributed as dist
    from zoom_agent.training.loop.trainer import Trainer

    ctx = dist.init_from_env("cpu")
    assert (ctx.rank, ctx.world) == (rank, WORLD)
    # 1. Gradient sum over ranks == the whole batch's gradient (each rank weighs by global counts).
    x, y = _toy_data()
    mine = dist.shard(list(range(len(x))), ctx)
    model = _toy_model()
    (((model(x[mine]) - y[mine]) ** 2).sum() / len(x)).backward()
    dist.all_reduce_gradients(model, ctx)
    grads = [p.grad.clone() for p in model.parameters()]  # type: ignore[union-attr]
    # 2. One real GRPO step on the tiny model, different questions per rank.
    config = load_recipe(
        "tiny-cpu",
        [
            f"output_dir={paths['out']}",
            f"policy.path={paths['model']}",
            f"data.synthetic_dir={paths['data']}",
            "data.synthetic_videos=1",
            "data.synthetic_video={duration: 10.0, fps: 4.0, size: [160, 120], num_events: 2}",
            "group_size=2",
            "prompts_per_step=2",
            "max_steps=1",
            "agent.max_tokens=8",
            "progress=false",
            "loss.entropy_coef=0.01",
        ],
    )
    trainer = Trainer(config, ctx=ctx)
    before = torch.cat([p.detach().reshape(-1) for p in trainer.model.parameters()]).clone()
    seen: list[str] = []
    original = trainer.engine.rollouts

    async def spy(questions, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.extend(q.id for q in questions)
        return await original(questions, *args, **kwargs)

    trainer.engine.rollouts = spy  # type: ignore[method-assign]
    metrics = trainer.step()
    after = torch.cat([p.detach().reshape(-1) for p in trainer.model.parameters()])
    torch.save(
        {"grads": grads, "before": before, "after": after, "seen": seen, "metrics": metrics},
        Path(paths["results"]) / f"rank{rank}.pt",
    )
    from torch import distributed as tdist

    tdist.destroy_process_group()


def test_two_ranks_average_gradients_and_stay_identical(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    from zoom_agent.datasets.synthetic import make_synthetic_task
    from zoom_agent.models.tiny import build_tiny_model

    make_synthetic_task(tmp_path / "data", num_videos=1, duration=10.0, fps=4.0, size=(160, 120), num_events=2)
    paths = {
        "out": str(tmp_path / "run"),
        "model": str(build_tiny_model(tmp_path / "tiny", "qwen2_5_vl")),
        "data": str(tmp_path / "data"),
        "results": str(tmp_path),
    }
    mp.spawn(_worker, args=(free_port(), paths), nprocs=WORLD, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]

    x, y = _toy_data()
    model = _toy_model()
    (((model(x) - y) ** 2).sum() / len(x)).backward()
    for r in results:
        for got, want in zip(r["grads"], [p.grad for p in model.parameters()], strict=True):
            torch.testing.assert_close(got, want)

    torch.testing.assert_close(results[0]["before"], results[1]["before"], rtol=0, atol=0)
    torch.testing.assert_close(results[0]["after"], results[1]["after"], rtol=0, atol=0)
    assert not torch.equal(results[0]["before"], results[0]["after"]), "the step must move the weights"
    assert results[0]["seen"] and results[1]["seen"] and not set(results[0]["seen"]) & set(results[1]["seen"])
    assert results[0]["metrics"]["rollout/count"] == results[1]["metrics"]["rollout/count"] == 4  # global
    (line,) = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()  # written once, by rank 0
    assert json.loads(line)["step"] == 1
