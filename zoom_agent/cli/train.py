"""``zoom-agent train RECIPE_OR_YAML [--override key=value ...] [--dry-run [--json]]``: GRPO
training from a recipe (``--dry-run``: what the run would do, nothing loaded).

The heavy modules (torch, transformers) load only when the command runs. Several
processes: ``torchrun --nproc_per_node N -m zoom_agent.cli train ...``; FSDP:
``accelerate launch --use_fsdp --fsdp_version 2 --num_processes N -m zoom_agent.cli train ...``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from zoom_agent.cli.errors import UsageError
from zoom_agent.cli.smoke import SMOKE_STEPS, smaller, smoke_mode


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
        action="extend",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="set a recipe field, dotted for nesting (e.g. --override output_dir=runs/a optim.lr=1e-5); repeatable",
    )
    train.add_argument(
        "--dry-run",
        action="store_true",
        help="print the resolved configuration, optimiser steps per rollout step and the learning rate "
        "at rollout steps 0, 10, 200 and 500, then exit (loads no model and no data)",
    )
    train.add_argument("--json", action="store_true", help="with --dry-run: one JSON object")
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="OUTPUT_DIR holds a run with other settings: remove its checkpoints, metrics and models and "
        "start afresh (default: refuse, naming the settings that differ; a rerun with the same settings resumes)",
    )
    train.set_defaults(run=run)
    return train


LR_STEPS = (0, 10, 200, 500)
"""Rollout steps whose learning rate ``--dry-run`` shows."""


def dry_run(config: Any) -> dict[str, Any]:
    """What a run of ``config`` would do, without loading anything: the resolved
    configuration, optimiser steps per rollout step, the learning rate at `LR_STEPS`."""
    from zoom_agent.training.loop.optim import lr_at, mini_batches

    return {
        "config": config.model_dump(mode="json"),
        "optimizer_steps_per_rollout_step": mini_batches(config),
        "lr": {str(k): v for k, v in lr_at(config, LR_STEPS).items()},
    }


def run(args: argparse.Namespace) -> int:
    """Load the recipe, train, print where the results are; returns the exit status."""
    from zoom_agent.cli.options import check_dotted_keys
    from zoom_agent.training.config import TrainConfig, load_recipe

    check_dotted_keys([item.partition("=")[0].strip() for item in args.override], TrainConfig, "--override")
    config = load_recipe(args.recipe, args.override)
    if smoke_mode() and not args.dry_run:  # CI runs the README's commands at smoke sizes
        steps = smaller("train", "max_steps", config.max_steps, SMOKE_STEPS)
        config = load_recipe(args.recipe, [*args.override, f"max_steps={steps}"])
    if args.dry_run:
        plan = dry_run(config)
        if args.json:
            print(json.dumps(plan, indent=2))
        else:
            print(f"optimizer steps per rollout step: {plan['optimizer_steps_per_rollout_step']}")
            print("lr at rollout steps: " + ", ".join(f"{k}: {v}" for k, v in plan["lr"].items()))
            print(json.dumps(plan["config"], indent=2))
        return 0
    from zoom_agent.training.loop.metrics import METRICS_FILE
    from zoom_agent.training.loop.preflight import RunSetupError
    from zoom_agent.training.loop.sft import SFTTrainer
    from zoom_agent.training.loop.trainer import Trainer

    try:
        trainer = (SFTTrainer if config.algorithm == "sft" else Trainer)(config, overwrite=args.overwrite)
    except RunSetupError as exc:  # found before anything was built or loaded
        raise UsageError(str(exc)) from None
    out = config.output_dir
    if trainer.ctx.is_main and trainer.step_count:
        again = f"; steps {trainer.log.dropped} logged after it run again" if trainer.log.dropped else ""
        print(f"resuming {out} from its checkpoint at step {trainer.step_count}/{trainer.total_steps}{again}")
    if trainer.ctx.is_main and getattr(trainer, "sharded", False):
        print(f"FSDP: the policy is sharded over {trainer.ctx.world} processes, rollouts run on a full copy")
    history = trainer.train()
    if trainer.ctx.is_main:
        if history:
            key = "sft/loss" if config.algorithm == "sft" else "reward/total"
            first, last = history[0][key], history[-1][key]
            print(
                f"trained {len(history)} steps (step {trainer.step_count}/{trainer.total_steps}); "
                f"{key} {first:.3f} -> {last:.3f}"
            )
        else:
            print(f"nothing to do: {out} already holds step {trainer.step_count}/{trainer.total_steps}")
        print(f"metrics: {out}/{METRICS_FILE}; checkpoints: {out}/checkpoints; final model: {out}/final_model")
    return 0
