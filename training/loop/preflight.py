"""What a run needs before anything is built or loaded: a model to train and its device.

`check_runnable` runs first in `Trainer` (so ``zoom-agent train`` says what is missing in
one line, exit status 2, before it builds a tiny model, writes data or loads weights).
``--dry-run`` does not call it: a recipe can be inspected before its paths are set.
"""

from __future__ import annotations

from pathlib import Path

from zoom_agent.training.config import TrainConfig

MODEL_FOLDER = "a Qwen2.5-VL or Qwen3-VL folder in transformers format"
"""What ``policy.path`` names."""


class RunSetupError(ValueError):
    """The run cannot start as configured; the message names the key and what it expects."""


def check_runnable(config: TrainConfig) -> None:
    """Refuse a run whose model is not set or whose device this machine lacks.

    Raises:
        RunSetupError: ``policy.path`` unset (and no ``policy.tiny_family``), a local
            ``policy.path`` that is not a model folder, or a CUDA device without CUDA.
    """
    p = config.policy
    if p.path is None and p.tiny_family is None:
        raise RunSetupError(
            f"policy.path is not set: give the model to train, {MODEL_FOLDER} (--override policy.path=PATH), "
            "or policy.tiny_family=qwen2_5_vl for a tiny random model (what the tiny-cpu recipe does)"
        )
    if p.path is not None:
        _check_model_folder(p.path)
    if p.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise RunSetupError(
                f"policy.device is {p.device!r} but this machine has no usable CUDA GPU (torch {torch.__version__}): "
                "run on a GPU machine, or --override policy.device=cpu policy.dtype=float32 engine=transformers "
                "for a (slow) CPU run"
            )


def _check_model_folder(path: str) -> None:
    folder = Path(path).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise RunSetupError(f"policy.path {path!r} holds no config.json: expected {MODEL_FOLDER}")
        return
    if folder.exists():
        raise RunSetupError(f"policy.path {path!r} is a file: expected {MODEL_FOLDER}")
    if not _hub_id(path):
        raise RunSetupError(f"policy.path {path!r} does not exist: expected {MODEL_FOLDER}")


def _hub_id(path: str) -> bool:
    """``org/name`` as a model hub names a model (transformers may download it)."""
    parts = path.split("/")
    return len(parts) == 2 and all(parts) and not path.startswith((".", "~"))
