"""Train the tiny model with the ``tiny-cpu`` recipe and plot its reward curve.

    python examples/train_tiny.py --out runs/tiny-example --png examples/reward_curve.png

The same as ``zoom-agent train tiny-cpu --override output_dir=runs/tiny-example``, plus the
plot. Fully offline on CPU (a tiny random Qwen2.5-VL and synthetic videos are built first);
under a minute on two cores. The recipe's target is the CI probe (reward.number, see
training/recipes/tiny-cpu.yaml): a random model never writes the paper's layout, so its
reward parts stay 0 in a run this short.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def plot_reward_curve(metrics_path: Path, png: Path, *, window: int = 5) -> tuple[float, float]:
    """Plot reward/total per step and its moving average; returns (first, last) window means."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    steps = [int(r["step"]) for r in rows]
    total = [r["reward/total"] for r in rows]
    smooth = [
        sum(total[max(0, i - window + 1) : i + 1]) / len(total[max(0, i - window + 1) : i + 1])
        for i in range(len(total))
    ]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    ax.plot(steps, total, "o", ms=3, alpha=0.5, label="reward/total (per step)")
    ax.plot(steps, smooth, "-", lw=2, label=f"{window}-step mean")
    for part in ("format", "iou", "answer", "zoom"):
        ax.plot(steps, [r[f"reward/{part}"] for r in rows], lw=0.8, alpha=0.6, label=f"reward/{part}")
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("reward")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("tiny-cpu: tiny random Qwen2.5-VL, synthetic task (probe target)", fontsize=9)
    ax.legend(fontsize=7, loc="center right")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    plt.close(fig)
    head, tail = total[:window], total[-window:]
    return sum(head) / len(head), sum(tail) / len(tail)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/tiny-example"), help="the run's output_dir")
    parser.add_argument("--png", type=Path, default=Path("examples/reward_curve.png"))
    parser.add_argument("--override", "-o", action="append", default=[], help="recipe overrides, key=value")
    args = parser.parse_args(argv)

    from zoom_agent.training.config import load_recipe
    from zoom_agent.training.loop.metrics import METRICS_FILE
    from zoom_agent.training.loop.trainer import Trainer

    config = load_recipe("tiny-cpu", [f"output_dir={args.out}", *args.override])
    Trainer(config).train()
    first, last = plot_reward_curve(args.out / METRICS_FILE, args.png)
    print(f"reward/total, mean of the first vs last 5 steps: {first:.3f} -> {last:.3f}; plot: {args.png}")


if __name__ == "__main__":
    main()
