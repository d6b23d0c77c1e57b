"""``zoom-agent train RECIPE_OR_YAML [--override key=value ...]``: GRPO training from a recipe.

The heavy modules (torch, transformers) load only when the command runs. Several
processes: ``torchrun --nproc_per_node N -m zoom_agent.cli train ...``.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``train`` to the ``zoom-agent`` sub-commands."""
    from zoom_agent.training.config import available_recipes

    names = ", ".join(sorted(available_recipes()))
    train = subparsers.add_parser(
        "train",
        help="GRPO training of the zoom policy from a recipe",
        description=(
            "Train the zoom policy with GRPO and token-selective credit; metrics go to "
            "OUTPUT_DIR/metrics.jsonl, checkpoints to OUTPUT_DIR/checkpoints, and a rerun resumes."
        ),
    )
    train.add_argument("recipe", help=f"a shipped recipe ({names}) or a YAML file")
    train.add_argument(
        "--override",
        "-o",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a recipe field, dotted for nesting (e.g. output_dir=runs/a optim.lr=1e-5); repeatable",
    )
    train.set_defaults(run=run)
    return train


def run(args: argparse.Namespace) -> int:
    """Load the recipe, train, print where the results are; returns the exit status."""
    from zoom_agent.training.config import load_recipe
    from zoom_agent.training.loop.metrics import METRICS_FILE
    from zoom_agent.training.loop.trainer import Trainer

    config = load_recipe(args.recipe, args.override)
    trainer = Trainer(config)
    history = trainer.train()
    if trainer.ctx.is_main:
        out = config.output_dir
        if history:
            first, last = history[0]["reward/total"], history[-1]["reward/total"]
            print(
                f"trained {len(history)} steps (step {trainer.step_count}/{trainer.total_steps}); "
                f"reward/total {first:.3f} -> {last:.3f}"
            )
        else:
            print(f"nothing to do: {out} already holds step {trainer.step_count}/{trainer.total_steps}")
        print(f"metrics: {out}/{METRICS_FILE}; checkpoints: {out}/checkpoints; final model: {out}/final_model")
    return 0
