"""Model backends behind one protocol (`VLM`). Heavy backends are imported on demand."""

from __future__ import annotations

from pathlib import Path

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


def load_model(spec: VLM | str | Path) -> VLM:
    """Turn a model spec into a backend.

    Args:
        spec: a `VLM` (returned as is); a local model directory (transformers backend);
            an ``http(s)://host:port/v1`` URL of an OpenAI-compatible server such as vLLM
            (`OpenAIVLM`; several replicas comma-separated; key from ``OPENAI_API_KEY``).

    Raises:
        ValueError: the spec names nothing this function can load.
    """
    if isinstance(spec, VLM):
        return spec
    if not isinstance(spec, str | Path):
        raise TypeError(f"model must be a VLM, a model directory or a URL, got {type(spec).__name__}")
    text = str(spec)
    if text.startswith(("http://", "https://")):  # an OpenAI-compatible server; commas: replicas
        from zoom_agent.models.served import OpenAIVLM

        return OpenAIVLM([u for u in text.split(",") if u.strip()])
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"model directory {path} has no config.json: expected a transformers model folder")
        from zoom_agent.models.hf import TransformersVLM

        return TransformersVLM(path)
    raise ValueError(f"cannot load model {text!r}: expected a VLM object, a local model directory or an http(s):// URL")
