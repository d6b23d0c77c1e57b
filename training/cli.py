"""``zoom-agent train RECIPE_OR_YAML [--override key=value ...]``.

`zoom_agent.cli` registers it with ``add_train_parser(subparsers)``. The heavy modules
(torch, transformers) load only when the command runs.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_train_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``train`` command on an argparse sub-parser collection.

    Args:
        subparsers: what ``ArgumentParser.add_subparsers()`` returned.

    Returns:
        The ``train`` parser (its ``run`` default runs the training).
    """
    from zoom_agent.training.config import available_recipes

    names = ", ".join(sorted(available_recipes()))
    train = subparsers.add_parser(
        "train",
        help="GRPO training of the zoom policy from a recipe",
        description=(
            "Train the zoom policy with GRPO and token-selective credit. Metrics go to "
            "OUTPUT_DIR/metrics.jsonl, checkpoints to OUTPUT_DIR/checkpoints (a rerun resumes). "
            "Several processes: torchrun --nproc_per_node N -m zoom_agent.cli train ..."
        ),
    )
    train.add_argument("recipe", help=f"a shipped recipe ({names}) or a YAML file")
    train.add_argument(
        "--override",
        "-o",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a field, dotted for nesting (e.g. output_dir=runs/a optim.lr=1e-5); repeatable",
    )
    train.set_defaults(run=run_train)
    return train


def run_train(args: argparse.Namespace) -> int:
    """Load the recipe, train, print where the results are; returns the exit code."""
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
