"""The model families this project serves and their vision geometry: the one home of both.

A Qwen-VL vision tower cuts each frame into ``patch_size`` pixel squares, merges
``merge_size`` x ``merge_size`` of them into one visual token, and groups
``temporal_patch`` consecutive frames into one temporal token. So one visual token covers a
``token_side`` = patch_size * merge_size pixel square of ``temporal_patch`` frames:
28 pixels for Qwen2.5-VL (14 * 2), 32 for Qwen3-VL (16 * 2).

Floor 1 (no imports beyond the standard library): every backend, the planner, the
launcher, the trainer and the tiny-model builder read the family set and the geometry here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

Family = Literal["qwen2_5_vl", "qwen3_vl"]
FAMILIES: tuple[Family, ...] = get_args(Family)


@dataclass(frozen=True)
class VisionGeometry:
    """How a vision tower turns pixels into tokens (see the module docstring)."""

    family: Family
    patch_size: int
    merge_size: int = 2
    temporal_patch: int = 2

    def __post_init__(self) -> None:
        for name in ("patch_size", "merge_size", "temporal_patch"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"VisionGeometry.{name} must be a positive integer, got {value!r}")

    @property
    def token_side(self) -> int:
        """Pixels per visual-token side after merging (28 Qwen2.5-VL, 32 Qwen3-VL)."""
        return self.patch_size * self.merge_size

    @classmethod
    def from_hf_config(cls, config: Any) -> VisionGeometry:
        """The geometry a transformers model config states (``model.config`` or a dict).

        Raises:
            ValueError: the config is not a Qwen2.5-VL or Qwen3-VL one.
        """
        get = config.get if isinstance(config, Mapping) else lambda k, d=None: getattr(config, k, d)
        family = family_of(get("model_type"), source="config.model_type")
        vision = get("vision_config") or {}
        vget = vision.get if isinstance(vision, Mapping) else lambda k, d=None: getattr(vision, k, d)
        default = GEOMETRY[family]
        return cls(
            family=family,
            patch_size=int(vget("patch_size", default.patch_size)),
            merge_size=int(vget("spatial_merge_size", default.merge_size)),
            temporal_patch=int(vget("temporal_patch_size", default.temporal_patch)),
        )


# The released checkpoints' geometry (their config.json, vision_config).
GEOMETRY: dict[Family, VisionGeometry] = {
    "qwen2_5_vl": VisionGeometry("qwen2_5_vl", patch_size=14),
    "qwen3_vl": VisionGeometry("qwen3_vl", patch_size=16),
}

# The geometry of the paper's model (Zoom-Zero trains Qwen2.5-VL-7B): the stated default of
# what has no vision tower of its own (scripted and oracle models, tool adapters).
PAPER_GEOMETRY = GEOMETRY["qwen2_5_vl"]

# model_type values of transformers configs that belong to a family.
_MODEL_TYPES: dict[str, Family] = {
    "qwen2_5_vl": "qwen2_5_vl",
    "qwen3_vl": "qwen3_vl",
    "qwen3_vl_moe": "qwen3_vl",
}


def family_of(name: object, *, source: str = "family") -> Family:
    """The family a ``model_type`` or family name denotes.

    Raises:
        ValueError: an unknown name; the message lists the names that work.
    """
    if isinstance(name, str) and name in _MODEL_TYPES:
        return _MODEL_TYPES[name]
    raise ValueError(f"{source} {name!r} is not a supported model family; expected one of {', '.join(FAMILIES)}")


def family_from_model_name(model: str) -> Family | None:
    """The family a hub name spells (``Qwen/Qwen2.5-VL-7B-Instruct`` -> qwen2_5_vl), else None."""
    name = model.lower().replace("_", "-").replace(".", "-")
    if "qwen3-vl" in name:
        return "qwen3_vl"
    if "qwen2-5-vl" in name:
        return "qwen2_5_vl"
    return None


def detect_geometry(model: str) -> VisionGeometry:
    """The vision geometry of a checkpoint: a local folder's ``config.json``, else its hub name.

    Args:
        model: a local model folder, or a hub id / served model name such as
            ``Qwen/Qwen3-VL-8B-Instruct`` (then the released checkpoints' geometry).

    Raises:
        ValueError: a folder whose config is not a supported family, or a name that spells
            no family; the message says how to name the family explicitly.
    """
    config = Path(model).expanduser() / "config.json"
    if config.is_file():
        try:
            return VisionGeometry.from_hf_config(json.loads(config.read_text(encoding="utf-8")))
        except ValueError as e:
            raise ValueError(f"{config}: {e}") from None
    family = family_from_model_name(model)
    if family is None:
        raise ValueError(
            f"cannot tell the model family of {model!r} (neither a model folder with config.json nor a "
            f"Qwen2.5-VL / Qwen3-VL hub name); name it explicitly: family={' or '.join(map(repr, FAMILIES))} "
            "(CLI: --family)"
        )
    return GEOMETRY[family]
