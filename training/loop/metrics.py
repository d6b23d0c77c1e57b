"""Step metrics: phase timings, rollout and reward statistics, the per-step log.

Every step writes one JSON object to ``OUTPUT_DIR/metrics.jsonl`` (and to TensorBoard and
W&B when the recipe asks). Rollout and reward statistics are all-reduced over ranks, so
the main rank logs the whole batch.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from zoom_agent.training.config import TrainConfig
from zoom_agent.training.core.rewards import PARTS
from zoom_agent.training.loop import distributed as dist
from zoom_agent.training.rollout.trajectory import Trajectory

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


def resume_log(path: Path, step: int) -> list[int]:
    """Cut the metrics file after its last line of a step <= ``step`` (the checkpoint a run
    resumes from); return the steps of the lines cut, which the run logs again.

    The file is truncated, never rewritten: the lines that stay keep their bytes. A torn
    last line (a kill mid-write) is cut too; a line that does not parse before the end means
    something else edited the file, and raises instead of guessing.
    """
    if not path.is_file():
        return []
    lines = path.read_bytes().splitlines(keepends=True)
    keep = 0
    dropped: list[int] = []
    for number, raw in enumerate(lines, start=1):
        logged = _step_of(raw)
        if logged is None and number < len(lines):
            raise ValueError(f"{path}: line {number} is not a metrics line but more lines follow it: fix or remove it")
        if logged is None:
            break
        if logged > step or dropped:
            dropped.append(logged)
        else:
            keep += len(raw)
    if keep < path.stat().st_size:
        os.truncate(path, keep)
    return sorted(set(dropped))


def _step_of(raw: bytes) -> int | None:
    """The step of a whole metrics line, or None (torn or not a metrics object)."""
    try:
        return int(json.loads(raw)["step"]) if raw.endswith(b"\n") else None
    except (ValueError, KeyError, TypeError):
        return None


def rollout_metrics(
    trajs: Sequence[Trajectory], parts: Sequence[dict[str, float]], ctx: dist.DistContext
) -> dict[str, float]:
    """Mean reward parts and rollout shape statistics of a step, over all ranks.

    Args:
        trajs: this rank's trajectories of the step (failed ones included).
        parts: their reward parts (`rewards.trajectory_rewards`).
        ctx: the distributed context (sums are all-reduced).

    Returns:
        ``reward/*``, ``rollout/*`` and ``response/*`` metrics.
    """
    keys = [*PARTS, "total"]
    sums = [sum(p[k] for p in parts) for k in keys]
    sq = sum(p["total"] ** 2 for p in parts)
    calls = [c for t in trajs for c in t.calls]
    local = [
        float(len(trajs)),
        sq,
        float(sum(t.failed for t in trajs)),
        float(sum(len(t.policy_positions) for t in trajs)),
        float(len(calls)),
        float(sum(c.finish_reason == "length" for c in calls)),
        float(sum(t.result.rounds for t in trajs)),
    ]
    reduced = dist.all_reduce_sum([*sums, *local], ctx)
    n = max(reduced[len(keys)], 1.0)
    out = {f"reward/{k}": v / n for k, v in zip(keys, reduced, strict=False)}
    count, sq_sum, failed, tokens, n_calls, cut, rounds = reduced[len(keys) :]
    out["reward/total_std"] = math.sqrt(max(sq_sum / n - out["reward/total"] ** 2, 0.0))
    out |= {
        "rollout/count": count,
        "rollout/failed": failed,
        "response/policy_tokens": tokens / n,
        "response/turns": n_calls / n,
        "response/truncated": cut / max(n_calls, 1.0),
        "response/zoom_rounds": rounds / n,
    }
    return out


class Timings:
    """Wall-clock seconds per named phase of a step (``time/<name>``)."""

    def __init__(self) -> None:
        self._t: dict[str, float] = {}
        self._start = time.perf_counter()

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._t[name] = self._t.get(name, 0.0) + time.perf_counter() - t0

    def metrics(self) -> dict[str, float]:
        return {f"time/{k}": v for k, v in self._t.items()} | {"time/step": time.perf_counter() - self._start}


class MetricsLog:
    """One JSON object per step appended to ``OUTPUT_DIR/metrics.jsonl`` (+ TensorBoard, W&B if asked).

    On resume from step k the file is cut after its last line of step k (`resume_log`): the
    lines of steps 1..k stay byte for byte, the steps logged after the checkpoint (to be
    run again) and a torn last line go, and the resumed steps are appended.
    """

    def __init__(self, out: Path, config: TrainConfig, *, enabled: bool, resume_step: int) -> None:
        self.enabled = enabled
        self.path = out / METRICS_FILE
        self.dropped: list[int] = []  # steps logged after the checkpoint, run again
        self._tb: Any = None
        self._wandb: Any = None
        if not enabled:
            return
        self.dropped = resume_log(self.path, resume_step)
        if config.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(out / TENSORBOARD_DIR))
        if config.wandb_project:
            import wandb

            self._wandb = wandb.init(project=config.wandb_project, config=config.model_dump(), dir=str(out))

    def write(self, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(metrics) + "\n")
        step = int(metrics["step"])
        if self._tb is not None:
            for k, v in metrics.items():
                self._tb.add_scalar(k, v, step)
        if self._wandb is not None:
            self._wandb.log(metrics, step=step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def progress_bar(total: int, done: int, *, enabled: bool) -> Any:
    """A tqdm bar over the run's steps, starting at ``done`` (disabled: a no-op bar)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, disable=not enabled, desc="train", unit="step")
