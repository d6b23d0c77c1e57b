"""Validation on held-out questions every ``val_every`` rollout steps, the best model kept
(their code validates every 5 steps; docs/training.md §4).

The validation score is the mean of every reward part over one rollout per question (the
rollouts' own sampling settings), summed over ranks. `BestModel` keeps the model of the
highest ``val/total`` so far in ``OUTPUT_DIR/best_model`` with ``OUTPUT_DIR/best.json``
(``{"step", "val/total"}``), which a resumed run reads back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from zoom_agent.training.core.rewards import PARTS
from zoom_agent.training.loop import checkpoint as ckpt
from zoom_agent.training.loop import distributed as dist

BEST_DIR = "best_model"
BEST_FILE = "best.json"
SCORE = "val/total"
"""The metric the best model is chosen by."""


def validation_metrics(parts: Sequence[Mapping[str, float]], ctx: dist.DistContext) -> dict[str, float]:
    """``val/<part>``: each reward part's mean over every rank's validation rollouts.

    Raises:
        ValueError: no rollout on any rank.
    """
    names = (*PARTS, "total")  # the same on every rank, whatever it rolled out
    sums = dist.all_reduce_sum([float(len(parts)), *(sum(p[k] for p in parts) for k in names)], ctx)
    count = sums[0]
    if count == 0:
        raise ValueError("validation produced no rollout: check val_data")
    return {f"val/{k}": v / count for k, v in zip(names, sums[1:], strict=True)}


class BestModel:
    """The best validation score so far, and the model that reached it.

    Args:
        out: the run's output folder.
    """

    def __init__(self, out: Path) -> None:
        self.folder, self.file = out / BEST_DIR, out / BEST_FILE
        record = json.loads(self.file.read_text()) if self.file.is_file() else None
        self.step: int | None = None if record is None else int(record["step"])
        self.score: float | None = None if record is None else float(record[SCORE])

    def offer(self, step: int, metrics: Mapping[str, float], model: Any, processor: Any, *, write: bool) -> bool:
        """Keep ``model`` when ``metrics[SCORE]`` beats the best so far (ties keep the older).

        Args:
            step: the rollout step validated.
            metrics: `validation_metrics`' output.
            model, processor: saved with `checkpoint.save_model` when better.
            write: this process writes the files (the main rank).

        Returns:
            True when this step is the new best.
        """
        score = metrics[SCORE]
        if self.score is not None and score <= self.score:
            return False
        self.step, self.score = step, score
        if write:
            ckpt.save_model(model, processor, self.folder)
            self.file.write_text(json.dumps({"step": step, SCORE: score}) + "\n")
        return True
