"""Target 4 of docs/quality.md §1: vectorised token-selective advantages vs the reference loop.

64 sequences x 2,048 tokens in groups of 8 (G = 8, their code), variants A and B. Each
sequence gets a realistic layout: a sampled response of random length with tool-result
stretches (loss mask 0) in between, time tags / zoom-call arguments (span region) and an
answer tag at the end. Both implementations run on the same inputs in the same process;
the results are checked equal (allclose 1e-6) before any time is reported.

Run: ``python benchmarks/bench_credit.py [--repeats 50] [--ref-repeats 3]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypedDict

import torch

from zoom_agent.training.core.credit import CHANNELS, token_selective_advantages

# The reference loop is the tests' oracle (tests/credit_reference.py); the benchmark times against it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from credit_reference import reference_token_selective_advantages


class CreditBatch(TypedDict):
    """Keyword arguments of `token_selective_advantages` (and of the reference)."""

    rewards: dict[str, torch.Tensor]
    regions: dict[str, torch.Tensor]
    loss_mask: torch.Tensor
    group: torch.Tensor


def make_batch(batch: int = 64, length: int = 2048, group_size: int = 8, seed: int = 0) -> CreditBatch:
    """Rewards, region masks, loss mask and group ids shaped like multi-turn zoom rollouts."""
    gen = torch.Generator().manual_seed(seed)
    loss_mask = torch.zeros(batch, length, dtype=torch.bool)
    span = torch.zeros_like(loss_mask)
    answer = torch.zeros_like(loss_mask)
    for b in range(batch):
        end = int(torch.randint(length // 4, length + 1, (1,), generator=gen))
        loss_mask[b, :end] = True
        for _ in range(int(torch.randint(0, 4, (1,), generator=gen))):  # tool results: mask 0
            start = int(torch.randint(0, max(1, end - 200), (1,), generator=gen))
            loss_mask[b, start : start + 150] = False
        for _ in range(int(torch.randint(1, 6, (1,), generator=gen))):  # <time>/<glue>/zoom args
            start = int(torch.randint(0, max(1, end - 12), (1,), generator=gen))
            span[b, start : start + 12] = True
        answer[b, max(0, end - 8) : end] = True  # <answer>X</answer> at the end
    rewards = {k: torch.rand(batch, generator=gen) for k in CHANNELS}
    rewards["answer"] = (rewards["answer"] > 0.5).float()  # answer accuracy is 0/1
    group = torch.arange(batch) // group_size
    return {
        "rewards": rewards,
        "regions": {"span": span, "answer": answer},
        "loss_mask": loss_mask,
        "group": group,
    }


def _time_ms(fn: Callable[[], torch.Tensor], repeats: int) -> tuple[float, torch.Tensor]:
    out = fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--length", type=int, default=2048)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=50, help="timed runs of the vectorised code")
    parser.add_argument("--ref-repeats", type=int, default=3, help="timed runs of the reference loop")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (1: like the single-threaded loop, and robust on shared cores)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    inputs = make_batch(args.batch, args.length, args.group_size)
    mask = inputs["loss_mask"]
    print(
        f"# {args.batch} sequences x {args.length} tokens, groups of {args.group_size}, "
        f"{int(mask.sum())} loss-masked tokens, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    rows = []
    for variant in ("A", "B"):
        ref_ms, ref = _time_ms(
            partial(reference_token_selective_advantages, **inputs, variant=variant), args.ref_repeats
        )
        fast_ms, fast = _time_ms(partial(token_selective_advantages, **inputs, variant=variant), args.repeats)
        if not torch.allclose(fast.double(), ref, rtol=1e-6, atol=1e-6):
            raise SystemExit(f"variant {variant}: results differ, max |diff| {(fast.double() - ref).abs().max()}")
        rows.append((f"reference loop, variant {variant}", ref_ms, 1.0))
        rows.append((f"vectorised, variant {variant}", fast_ms, ref_ms / fast_ms))
    print("results identical (allclose rtol=atol=1e-6) for both variants\n")
    print("| method | ms (median) | speedup |")
    print("|---|---:|---:|")
    for name, ms, speedup in rows:
        print(f"| {name} | {ms:.2f} | {speedup:.0f}x |")
    step_time_split()


def step_time_split(steps: int = 6) -> None:
    """The tiny model's GRPO step time, split into rollout, rewards, credit, forward/backward.

    Runs the ``tiny-cpu`` recipe (8 rollouts of one question per step, 16-token replies, the
    KL reference on) for ``steps + 1`` steps in a temporary folder and averages the
    ``time/*`` metrics of all but the first step (it fills the frame cache and warms up).
    ``fwd_bwd`` includes re-rendering the trajectories (``render``) and the reference's
    forward pass (``ref``), shown indented.
    """
    import tempfile

    from zoom_agent.training.config import load_recipe
    from zoom_agent.training.loop.trainer import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        config = load_recipe("tiny-cpu", [f"output_dir={tmp}", f"max_steps={steps + 1}", "progress=false"])
        history = Trainer(config).train()[1:]
    mean = {k: statistics.mean(m.get(f"time/{k}", 0.0) for m in history) for k in _STEP_PHASES}
    print(
        f"\n# tiny-cpu GRPO step ({config.group_size} rollouts x 1 question, <= {config.agent.max_tokens} "
        f"tokens each), mean of {len(history)} steps, {torch.get_num_threads()} threads\n"
    )
    print("| phase | ms per step | share |")
    print("|---|---:|---:|")
    for name in _STEP_PHASES:
        label = f"  {name} (in fwd_bwd)" if name in ("render", "ref") else name
        print(f"| {label} | {mean[name] * 1e3:.0f} | {mean[name] / mean['step']:.0%} |")


_STEP_PHASES = ("rollout", "rewards", "credit", "fwd_bwd", "render", "ref", "step")


if __name__ == "__main__":
    main()
