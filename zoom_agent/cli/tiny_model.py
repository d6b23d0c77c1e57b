"""``zoom-agent tiny-model``: build a tiny random Qwen-VL offline (for tests and demos)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from zoom_agent.cli.errors import UsageError
from zoom_agent.cli.options import parameter_default
from zoom_agent.geometry import FAMILIES
from zoom_agent.models.tiny import SIZE_NAMES, build_tiny_model
from zoom_agent.progress import stage


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``tiny-model`` to the ``zoom-agent`` sub-commands."""
    p = subparsers.add_parser(
        "tiny-model",
        help="build a tiny random Qwen-VL offline (for tests and demos)",
        description="Write a tiny, randomly initialised Qwen-VL model folder that loads offline.",
    )
    p.add_argument("out", type=Path, help="the model folder to write (must not exist or be empty, unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace the model folder OUT if it holds files")
    p.add_argument(
        "--family", choices=FAMILIES, default=parameter_default(build_tiny_model, "family"), help="model family"
    )
    p.add_argument("--seed", type=int, default=parameter_default(build_tiny_model, "seed"), help="weight seed")
    p.add_argument(
        "--size",
        choices=SIZE_NAMES,
        default=parameter_default(build_tiny_model, "size"),
        help="tiny (tests, ~0.2 M parameters) or small (1.01 M, for the synthetic-gqa task on a CPU)",
    )
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Build the model and say where it went."""
    t0 = time.perf_counter()
    try:
        path = build_tiny_model(
            args.out,
            args.family,
            seed=args.seed,
            size=args.size,
            overwrite=args.overwrite,
            on_stage=lambda step: stage(f"tiny-model: {step}"),
        )
    except FileExistsError as exc:  # refused before anything is built
        raise UsageError(f"{exc} with --overwrite") from None
    print(f"{args.size} {args.family} model written to {path} in {time.perf_counter() - t0:.1f} s (random weights)")
    return 0
