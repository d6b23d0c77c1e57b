"""Model backends behind one protocol (`VLM`). Heavy backends are imported on demand."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, cast

from zoom_agent.geometry import Family
from zoom_agent.models.base import (
    VLM,
    Completion,
    ModelError,
    Sampling,
    Turn,
    VLMRequest,
    VLMResponse,
)
from zoom_agent.models.scripted import ScriptedVLM

__all__ = [
    "VLM",
    "Completion",
    "ModelError",
    "Sampling",
    "ScriptedVLM",
    "Turn",
    "VLMRequest",
    "VLMResponse",
    "load_model",
]


def load_model(spec: VLM | str | Path | Any, *, family: Family | None = None) -> VLM:
    """Turn a model spec into a backend.

    Args:
        spec: a `VLM` (returned as is); a local model directory (transformers backend);
            an ``http(s)://host:port/v1`` URL of an OpenAI-compatible server such as vLLM
            (`OpenAIVLM`; several replicas comma-separated; key from ``OPENAI_API_KEY``).

        family: the model family where the spec cannot tell it (a served model whose
            name spells none); a spec whose own family differs is an error.

    Raises:
        ValueError: the spec names nothing this function can load.
    """
    # Not isinstance(spec, VLM): on Python 3.11 that reads every protocol member, and a
    # served model's ``geometry`` may raise until its family is known (ZoomAgent checks it).
    if inspect.iscoroutinefunction(getattr(spec, "generate", None)):
        return cast(VLM, spec)
    if not isinstance(spec, str | Path):
        raise TypeError(f"model must be a VLM, a model directory or a URL, got {type(spec).__name__}")
    text = str(spec)
    if text.startswith(("http://", "https://")):  # an OpenAI-compatible server; commas: replicas
        from zoom_agent.models.served import OpenAIVLM, served_family

        urls = [u for u in text.split(",") if u.strip()]
        return OpenAIVLM(urls, family=family or (served_family(urls[0]) if urls else None))
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"model directory {path} has no config.json: expected a transformers model folder")
        from zoom_agent.models.hf import TransformersVLM

        vlm = TransformersVLM(path)
        if family is not None and vlm.family != family:
            raise ValueError(f"model directory {path} holds a {vlm.family} model, not the {family} named")
        return vlm
    raise ValueError(f"cannot load model {text!r}: expected a VLM object, a local model directory or an http(s):// URL")
