"""Checkpoints of a GRPO run: model, optimiser, scheduler, data position and RNG state.

Layout under ``OUTPUT_DIR/checkpoints`` (`CHECKPOINTS_DIR`)::

    step_000010/model/           save_pretrained model + processor (loads like any model dir)
    step_000010/optimizer.pt     optimiser and scheduler state
    step_000010/trainer_state.pt step, data position, RNG states (python, numpy, torch)
    step_000010/trainer_state.json  the same position, readable
    latest                       the name of the newest complete checkpoint

A checkpoint is written into a temporary folder and renamed into place, and ``latest`` is
replaced atomically afterwards, so a run killed mid-save resumes from the previous one.
Everything is loaded with ``torch.load(weights_only=True)``: no pickled code runs.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINTS_DIR = "checkpoints"
"""Under OUTPUT_DIR: the checkpoints of a run."""
FINAL_MODEL_DIR = "final_model"
"""Under OUTPUT_DIR: the model at the end of a run (a model folder)."""
LATEST = "latest"


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states, as plain containers and tensors."""
    np_state: tuple[Any, ...] = tuple(np.random.get_state())
    return {
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    root: str | os.PathLike[str],
    step: int,
    *,
    model: Any,
    processor: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    position: dict[str, int],
    keep: int = 2,
) -> Path:
    """Write a complete checkpoint for ``step`` and point ``latest`` at it.

    Args:
        root: the checkpoints folder (created if missing).
        step: optimiser steps done.
        model, processor: saved with ``save_pretrained`` into ``model/``.
        optimizer, scheduler: their ``state_dict``.
        position: where the data stream stands (e.g. ``{"step": 10, "consumed": 640}``).
        keep: newest checkpoints to keep; older ones are removed.

    Returns:
        The checkpoint folder.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:06d}"
    tmp = root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(model, processor, tmp / "model")
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / "optimizer.pt")
    torch.save({"position": position, "rng": rng_state()}, tmp / "trainer_state.pt")
    (tmp / "trainer_state.json").write_text(json.dumps({"step": step, **position}, indent=1) + "\n")
    final = root / name
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    pointer = root / f".{LATEST}.tmp"
    pointer.write_text(name + "\n")
    os.replace(pointer, root / LATEST)
    _prune(root, keep)
    return final


def save_model(model: Any, processor: Any, folder: str | os.PathLike[str]) -> None:
    """``save_pretrained`` the model and its processor into one loadable folder, quietly."""
    from zoom_agent.models.tiny import quiet_progress_bars

    with quiet_progress_bars():
        model.save_pretrained(folder)
    processor.save_pretrained(folder)


def latest_checkpoint(root: str | os.PathLike[str]) -> Path | None:
    """The newest complete checkpoint under ``root``, or None."""
    pointer = Path(root) / LATEST
    if not pointer.is_file():
        return None
    path = Path(root) / pointer.read_text().strip()
    return path if (path / "trainer_state.pt").is_file() else None


def load_training_state(
    path: str | os.PathLike[str], optimizer: torch.optim.Optimizer, scheduler: Any
) -> dict[str, int]:
    """Restore optimiser, scheduler and RNG from a checkpoint; returns the data position.

    The model itself is loaded from ``path/model`` by the caller (it is a model folder).
    """
    path = Path(path)
    opt = torch.load(path / "optimizer.pt", weights_only=True, map_location="cpu")
    optimizer.load_state_dict(opt["optimizer"])
    scheduler.load_state_dict(opt["scheduler"])
    state = torch.load(path / "trainer_state.pt", weights_only=True, map_location="cpu")
    set_rng_state(state["rng"])
    return {k: int(v) for k, v in state["position"].items()}


def _prune(root: Path, keep: int) -> None:
    done = sorted(p for p in root.glob("step_*") if p.is_dir() and (p / "trainer_state.pt").is_file())
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
