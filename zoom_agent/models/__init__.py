"""Model backends behind one protocol (`VLM`). Heavy backends are imported on demand."""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard, cast

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

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

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
    "model_spec_problem",
]

MODEL_FORMS = (
    "a local model folder (transformers), an http(s)://HOST:PORT/v1 URL of an OpenAI-compatible server "
    "(comma-separated for replicas) or a LangChain 'provider:model' string"
)
"""The strings `load_model` accepts as a model (the CLI's ``--model`` says the same)."""


def load_model(spec: VLM | str | Path | Any, *, family: Family | None = None) -> VLM:
    """Turn a model spec into a backend.

    Args:
        spec: a `VLM` (an object whose ``generate`` is ``async``; returned as is); a
            LangChain chat model (wrapped in `LangChainVLM`); a local model directory
            (transformers backend); an ``http(s)://host:port/v1`` URL of an
            OpenAI-compatible server such as vLLM (`OpenAIVLM`; several replicas
            comma-separated; key from ``OPENAI_API_KEY``); a ``provider:model`` string
            (``init_chat_model``, e.g. ``openai:gpt-4.1-mini``).

        family: the model family where the spec cannot tell it (a served model whose
            name spells none); a spec whose own family differs is an error.

    Raises:
        TypeError: an object that is neither a VLM nor a chat model.
        ValueError: the spec names nothing this function can load.
    """
    if _is_chat_model(spec):
        from zoom_agent.models.langchain import LangChainVLM

        return LangChainVLM(spec)
    # Not isinstance(spec, VLM): on Python 3.11 that reads every protocol member, and a
    # served model's ``geometry`` may raise until its family is known (ZoomAgent checks it).
    if inspect.iscoroutinefunction(getattr(spec, "generate", None)):
        return cast(VLM, spec)
    if not isinstance(spec, str | Path):
        raise TypeError(
            f"model must be a VLM (an object with 'async def generate(request)'), a LangChain chat model, "
            f"a model directory, a URL or a 'provider:model' string; got {type(spec).__name__}"
        )
    text = str(spec)
    if PROVIDER_SPEC.fullmatch(text) and not Path(text).expanduser().exists():
        from zoom_agent.models.langchain import LangChainVLM

        return LangChainVLM(text)
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
    raise ValueError(f"cannot load model {model_spec_problem(text) or repr(text)}")


PROVIDER_SPEC = re.compile(r"[a-z][a-z0-9_-]*:[^/\\:][^\s]*")  # init_chat_model's "provider:model"
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # a Hugging Face hub id such as Qwen/Qwen2.5-VL-7B-Instruct


def model_spec_problem(spec: str) -> str | None:
    """What is wrong with a model spec string, found without loading anything (the CLI checks
    ``--model`` with it before any work); None when `load_model` would try to load it.

    >>> model_spec_problem("http://127.0.0.1:8000/v1") is None
    True
    >>> model_spec_problem("Qwen/No-Such-Model-Here").split(":")[0]
    "'Qwen/No-Such-Model-Here' is not a local folder, and hub ids are not downloaded"
    """
    text = spec.strip()
    path = Path(text).expanduser()
    if text.startswith(("http://", "https://")) or path.is_dir() or PROVIDER_SPEC.fullmatch(text):
        return None
    if path.exists():
        return f"{text!r} is a file: expected {MODEL_FORMS}"
    if HUB_ID.fullmatch(text):
        return (
            f"{text!r} is not a local folder, and hub ids are not downloaded: download it first "
            f"(huggingface-cli download {text} --local-dir DIR) and give DIR, or serve it "
            f"(zoom-agent serve {text} ...) and give the server's URL"
        )
    return f"{text!r} is not a local folder: expected {MODEL_FORMS}"


def _is_chat_model(spec: object) -> TypeGuard[BaseChatModel]:
    """A LangChain chat model, checked without importing langchain_core when it is not loaded."""
    module = sys.modules.get("langchain_core.language_models")
    return module is not None and isinstance(spec, module.BaseChatModel)
