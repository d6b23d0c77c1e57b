"""Which run an output folder holds, so that a rerun continues only the run it started.

``OUTPUT_DIR/train_config.json`` records a run's settings; it is written once, when the run
starts in an empty folder, and never replaced. A rerun into a folder that holds a run
compares its settings with it (`differing_keys`): when every key that shapes the results
agrees, it resumes (from ``checkpoints/latest``, appending to ``metrics.jsonl``); keys in
`config.RESULT_NEUTRAL` (logging, progress, checkpoint cadence, concurrency) may differ.
Otherwise it is refused with the differing keys: train in another ``output_dir``, or
``overwrite`` (``zoom-agent train --overwrite``), which removes the old run's files first.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from zoom_agent.training.config import RESULT_NEUTRAL, TrainConfig
from zoom_agent.training.loop.checkpoint import CHECKPOINTS_DIR, FINAL_MODEL_DIR, LATEST
from zoom_agent.training.loop.difficulty import FILTER_FILE
from zoom_agent.training.loop.metrics import METRICS_FILE, TENSORBOARD_DIR
from zoom_agent.training.loop.preflight import RunSetupError
from zoom_agent.training.loop.validation import BEST_DIR, BEST_FILE

TRAIN_CONFIG_FILE = "train_config.json"
TINY_MODEL_DIR = "tiny-model"
"""Under OUTPUT_DIR: the tiny random model a run without ``policy.path`` builds."""

RUN_MARKERS = (TRAIN_CONFIG_FILE, METRICS_FILE, f"{CHECKPOINTS_DIR}/{LATEST}", FINAL_MODEL_DIR, BEST_FILE)
"""Files whose presence means the folder holds a run."""
RUN_FILES = (
    TRAIN_CONFIG_FILE,
    METRICS_FILE,
    CHECKPOINTS_DIR,
    FINAL_MODEL_DIR,
    BEST_DIR,
    BEST_FILE,
    FILTER_FILE,
    TENSORBOARD_DIR,
    TINY_MODEL_DIR,
)
"""What a run writes and overwriting removes (the synthetic task's videos stay: they are
rewritten when their parameters change)."""
SHOWN = 6  # differing keys named in the message


class RunFolderError(RunSetupError):
    """The output folder holds another run (or one whose settings are unknown)."""


def open_run_folder(out: Path, config: TrainConfig, *, overwrite: bool = False, write: bool = True) -> bool:
    """Make ``out`` hold this run: check the run it holds, or start it afresh.

    Args:
        out: the run's output folder (created).
        config: this run's settings.
        overwrite: remove the files of the run ``out`` holds first (`RUN_FILES`).
        write: this process writes files (the main rank; the others only check).

    Returns:
        True when ``out`` already held this run (resume), False for a fresh start.

    Raises:
        RunFolderError: ``out`` holds a run with other settings, a run without
            ``train_config.json``, or a run while ``resume`` is off.
    """
    held = [name for name in RUN_MARKERS if (out / name).exists()]
    fresh = "train in another output_dir, or start afresh with --overwrite (removes its checkpoints and metrics)"
    if held and overwrite:
        if write:
            for name in RUN_FILES:
                _remove(out / name)
        held = []
    if held and not config.resume:
        raise RunFolderError(f"{out} holds a run ({', '.join(held)}) and resume is off: {fresh}")
    if held:
        recorded = out / TRAIN_CONFIG_FILE
        if not recorded.is_file():
            raise RunFolderError(f"{out} holds a run ({', '.join(held)}) without {TRAIN_CONFIG_FILE}: {fresh}")
        differ = differing_keys(_recorded_settings(recorded, fresh), _settings(config))
        if differ:
            shown = ", ".join(differ[:SHOWN]) + (f" and {len(differ) - SHOWN} more" if len(differ) > SHOWN else "")
            raise RunFolderError(
                f"{out} holds a run with other settings ({shown}; see its {TRAIN_CONFIG_FILE}): resume it with "
                f"the same settings, or {fresh}"
            )
        return True
    if write:
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / f".{TRAIN_CONFIG_FILE}.tmp"
        tmp.write_text(config.model_dump_json(indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, out / TRAIN_CONFIG_FILE)
    return False


def differing_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two settings dumps, as ``key old -> new``,
    leaving out `RESULT_NEUTRAL` keys (and keys under them)."""
    a, b = _flatten(old), _flatten(new)
    out = []
    for key in sorted(set(a) | set(b)):
        if _neutral(key) or a.get(key, _UNSET) == b.get(key, _UNSET):
            continue
        out.append(f"{key} {_show(a.get(key, _UNSET))} -> {_show(b.get(key, _UNSET))}")
    return out


_UNSET = object()


def _show(value: Any) -> str:
    return "unset" if value is _UNSET else json.dumps(value)


def _neutral(key: str) -> bool:
    parts = key.split(".")
    return any(".".join(parts[:n]) in RESULT_NEUTRAL for n in range(1, len(parts) + 1))


def _flatten(doc: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat |= _flatten(value, f"{name}.")
        else:
            flat[name] = value
    return flat


def _settings(config: TrainConfig) -> dict[str, Any]:
    return json.loads(config.model_dump_json())  # type: ignore[no-any-return]


def _recorded_settings(path: Path, fresh: str) -> dict[str, Any]:
    """The recorded settings, completed with today's defaults for keys added since."""
    try:
        return _settings(TrainConfig.model_validate(json.loads(path.read_text(encoding="utf-8"))))
    except (ValueError, ValidationError) as exc:
        first = str(exc).splitlines()[0]
        raise RunFolderError(f"{path} does not load as the settings of a run ({first}): {fresh}") from None


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
