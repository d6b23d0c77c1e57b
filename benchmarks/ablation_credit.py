"""Mini reproduction of the paper's credit ablation on the synthetic grounded-QA task (CPU).

    python benchmarks/ablation_credit.py --profile quick --out runs/ablation

1. SFT warm start: ``zoom-agent train synthetic-sft`` (a small random Qwen2.5-VL, 4 steps of
   data per conversation kind; docs/training.md §8).
2. From that same SFT model, GRPO (``zoom-agent train synthetic-grpo``) in four credit
   settings, each with every seed of the profile: (a) plain sequence advantage
   (``credit.mode=grpo``), (b) token-selective variant A, (c) variant B, (d) B without the
   zoom reward (``reward.verifier=none reward.zoom=0``).
3. Every model (the SFT one and each run's ``final_model``) evaluated on the test split by
   ``zoom-agent eval synthetic-gqa`` with the rollouts' graph and budget, with the zoom
   (one round) and without it (``--zoom-rounds 0``): mIoU, IoU@0.5, accuracy per question
   kind (grounding / coarse / fine) and Acc@GQA; mean and spread (sample std) over seeds.
4. ``table.md`` (the table) and ``curves.png`` under OUT (SFT loss; format, IoU and answer
   reward per GRPO step, one line per setting, seeds averaged).

Every stage is a ``zoom-agent`` command run as a subprocess (printed before it runs), and
each resumes: rerun the same command to continue an interrupted ablation.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from zoom_agent.datasets.synthetic_gqa import GQA_TASK, make_gqa_split
from zoom_agent.training.config import load_recipe


@dataclass(frozen=True)
class Profile:
    sft_steps: int
    sft_batch: int
    train_videos: int  # videos of the train split (8 questions each)
    grpo_steps: int
    prompts_per_step: int
    group_size: int
    seeds: tuple[int, ...]
    test_videos: int
    val_videos: int  # validation videos scored at the end of SFT


PROFILES = {
    # Measured at load about 1 on 2 cores (2026-11-30): an SFT step of 8 conversations about
    # 1 s, a GRPO step of 8 rollouts about 6 s, an eval of 16 questions about 20 s with the
    # process start; the quick profile took 432 s on a fresh clone. Each table's header has
    # its run's wall time.
    "quick": Profile(
        sft_steps=150,
        sft_batch=8,
        train_videos=300,
        grpo_steps=5,
        prompts_per_step=2,
        group_size=4,
        seeds=(0,),
        test_videos=2,
        val_videos=2,
    ),
    "full": Profile(
        sft_steps=400,
        sft_batch=8,
        train_videos=300,
        grpo_steps=20,
        prompts_per_step=2,
        group_size=4,
        seeds=(0, 1, 2),
        test_videos=4,
        val_videos=2,
    ),
}
SETTINGS: dict[str, tuple[str, ...]] = {
    "plain GRPO": ("credit.mode=grpo",),
    "token-selective A": ("credit.mode=token-selective", "credit.variant=A"),
    "token-selective B": ("credit.mode=token-selective", "credit.variant=B"),
    "B without zoom reward": (
        "credit.mode=token-selective",
        "credit.variant=B",
        "reward.verifier=none",
        "reward.zoom=0",
    ),
}
KINDS = ("grounding", "coarse", "fine")
COLUMNS = ("mIoU", "IoU@0.5", *(f"Acc {k}" for k in KINDS), "Acc@GQA")


def zoom_agent(*args: str) -> None:
    """Run one ``zoom-agent`` command (this interpreter's), echoing it; fail loudly."""
    cmd = [sys.executable, "-m", "zoom_agent.cli", *args]
    print("$ zoom-agent " + " ".join(args), flush=True)
    subprocess.run(cmd, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})


def slug(name: str) -> str:
    return name.lower().replace(" ", "-")


def train_sft(out: Path, p: Profile) -> Path:
    zoom_agent(
        "train", "synthetic-sft", "--override",
        f"output_dir={out / 'sft'}", f"max_steps={p.sft_steps}", f"val_every={p.sft_steps}",
        f"prompts_per_step={p.sft_batch}", f"data.synthetic_dir={out / 'data'}", f"data.split_videos={p.train_videos}",
        f"val_data.synthetic_dir={out / 'data'}",
        f"val_data.split_videos={p.val_videos}", "progress=false",
    )  # fmt: skip
    return out / "sft" / "final_model"


def train_grpo(out: Path, p: Profile, sft: Path, setting: str, seed: int) -> Path:
    run = out / f"{slug(setting)}-seed{seed}"
    zoom_agent(
        "train", "synthetic-grpo", "--override",
        f"output_dir={run}", f"policy.path={sft}", f"seed={seed}", f"max_steps={p.grpo_steps}",
        f"prompts_per_step={p.prompts_per_step}", f"group_size={p.group_size}",
        f"data.synthetic_dir={out / 'data'}", f"data.split_videos={p.train_videos}", "progress=false",
        *SETTINGS[setting],
    )  # fmt: skip
    return run


def evaluate(out: Path, p: Profile, model: Path, name: str, zoom: bool) -> dict[str, float]:
    """The headline numbers of one model on the test split (``zoom-agent eval``)."""
    agent = load_recipe("synthetic-grpo").agent  # the rollouts' graph and budget
    folder = out / "eval" / f"{name}-{'zoom' if zoom else 'nozoom'}"
    zoom_agent(
        "eval", GQA_TASK, "--split", "test", "--num-videos", str(p.test_videos), "--video-root", str(out / "data"),
        "--model", str(model), "--out", str(folder), "--no-progress", "--concurrency", "2",
        "--visual-tokens", str(agent.budget.visual_tokens), "--fps", str(agent.budget.fps),
        "--max-tokens", str(agent.max_tokens), "--zoom-rounds", str(agent.max_zoom_rounds if zoom else 0),
    )  # fmt: skip
    report = json.loads((folder / "metrics.json").read_text())  # the eval report's numbers
    headline = report["metrics"]
    row = {"mIoU": headline["mIoU"], "IoU@0.5": headline["IoU@0.5"], "Acc@GQA": headline["Acc@GQA"]}
    return row | {f"Acc {kind}": report["by_type"][kind]["accuracy"] for kind in KINDS}


def mean_spread(rows: list[dict[str, float]]) -> dict[str, str]:
    out = {}
    for c in COLUMNS:
        values = [r[c] for r in rows]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        out[c] = f"{statistics.fmean(values):.1f} ± {spread:.1f}" if len(values) > 1 else f"{values[0]:.1f}"
    return out


def write_table(out: Path, rows: dict[tuple[str, bool], list[dict[str, float]]], header: str) -> str:
    lines = [header, "", "| model | zoom at inference | " + " | ".join(COLUMNS) + " |"]
    lines.append("|---|---|" + "---:|" * len(COLUMNS))
    for (name, zoom), values in rows.items():
        cells = mean_spread(values)
        lines.append(f"| {name} | {'yes' if zoom else 'no'} | " + " | ".join(cells[c] for c in COLUMNS) + " |")
    text = "\n".join(lines) + "\n"
    (out / "table.md").write_text(text)
    return text


def plot_curves(out: Path, sft: Path, runs: dict[str, list[Path]]) -> Path:
    """SFT loss per step, then the GRPO format, IoU and answer rewards per step (one line per
    setting, seeds averaged). Not the total: without the zoom reward a setting's total lacks a
    term, so totals do not compare across settings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    def lines(folder: Path, key: str) -> list[dict[str, float]]:
        path = folder / "metrics.jsonl"
        rows = [json.loads(x) for x in path.read_text().splitlines()] if path.is_file() else []
        return [r for r in rows if key in r]

    names = {"reward/format": "format", "reward/iou": "IoU", "reward/answer": "answer"}
    keys = tuple(names)
    fig, axes = plt.subplots(1, 1 + len(keys), figsize=(18, 3.6))
    sft_rows = lines(sft.parent, "sft/loss")
    axes[0].plot([r["step"] for r in sft_rows], [r["sft/loss"] for r in sft_rows], marker=".")
    for setting, folders in runs.items():
        per_seed = [lines(f, "reward/total") for f in folders]
        steps = min(len(s) for s in per_seed)
        for ax, key in zip(axes[1:], keys, strict=True):
            ys = [statistics.fmean(s[i][key] for s in per_seed) for i in range(steps)]
            ax.plot(range(1, steps + 1), ys, marker="o", markersize=3, label=setting)
    seeds = len(next(iter(runs.values()), []))
    over = f"mean of {seeds} seeds" if seeds > 1 else "1 seed"
    titles = ["SFT loss (reply tokens)", *(f"GRPO {names[k]} reward ({over})" for k in keys)]
    for ax, title in zip(axes, titles, strict=True):
        ax.set_xlabel("SFT step" if ax is axes[0] else "GRPO step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    if runs:
        axes[1].legend(fontsize=8)
    fig.tight_layout()
    path = out / "curves.png"
    fig.savefig(path, dpi=110)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    ap.add_argument("--out", type=Path, default=Path("runs/ablation"), help="run folder (rerun to resume)")
    args = ap.parse_args(argv)
    p, out = PROFILES[args.profile], args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    make_gqa_split(out / "data", "test", num_videos=p.test_videos)
    sft = train_sft(out, p)
    runs = {s: [train_grpo(out, p, sft, s, seed) for seed in p.seeds] for s in SETTINGS}
    rows: dict[tuple[str, bool], list[dict[str, float]]] = {}
    for zoom in (True, False):
        rows[("SFT only", zoom)] = [evaluate(out, p, sft, "sft", zoom)]
        for s, folders in runs.items():
            rows[(s, zoom)] = [evaluate(out, p, f / "final_model", f.name, zoom) for f in folders]
    load = os.getloadavg()[0]
    header = (
        f"Profile {args.profile}: {p}; wall {time.time() - t0:.0f} s; load average at the end {load:.1f} "
        f"on {os.cpu_count()} cores. Test split: {p.test_videos * 8} questions. Mean ± sample std over seeds."
    )
    print(write_table(out, rows, header))
    print(f"curves: {plot_curves(out, sft, runs)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
