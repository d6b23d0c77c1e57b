"""Checkpoints that load without "unregistered type" warnings (and under strict msgpack).

LangGraph's checkpoint serializer deserializes only the types on its msgpack allowlist
(others warn today and will be refused). `state_types` walks a graph's state schema (its
type hints, and the fields of every pydantic model they name) and collects the project's
types; `with_state_types` gives a graph's checkpointer an allowlist with them.
"""

from __future__ import annotations

import copy
import typing
from typing import Any

from pydantic import BaseModel


def state_types(schema: type, *, package: str = "zoom_agent") -> set[tuple[str, str]]:
    """``(module, name)`` of every pydantic model of ``package`` the schema can hold."""
    found: set[tuple[str, str]] = set()
    seen: set[int] = set()

    def walk(tp: Any) -> None:
        if id(tp) in seen:
            return
        seen.add(id(tp))
        for arg in typing.get_args(tp):
            walk(arg)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if tp.__module__.split(".")[0] == package:
                found.add((tp.__module__, tp.__name__))
            for field in tp.model_fields.values():
                walk(field.annotation)
        elif isinstance(tp, type) and hasattr(tp, "__annotations__") and tp.__module__.split(".")[0] == package:
            for hint in typing.get_type_hints(tp, include_extras=True).values():
                walk(hint)

    walk(schema)
    return found


def with_state_types(checkpointer: Any, *schemas: type) -> Any:
    """The checkpointer with the schemas' types on its serializer's allowlist: a shallow
    clone sharing the same storage, or the checkpointer as given when it has none (None).

    LangGraph's default serializer allows every type with a warning; the clone's serializer
    instead allows LangGraph's own types and the schemas' (anything else is refused), so
    this graph's checkpoints load silently today and under strict msgpack later.
    """
    from langgraph.checkpoint.base import BaseCheckpointSaver
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    if not isinstance(checkpointer, BaseCheckpointSaver):
        return checkpointer
    allow: set[tuple[str, ...]] = set()
    for schema in schemas:
        allow |= state_types(schema)
    serde = checkpointer.serde
    if type(serde) is JsonPlusSerializer and getattr(serde, "_allowed_msgpack_modules", None) is True:
        clone = copy.copy(checkpointer)
        clone.serde = JsonPlusSerializer(
            pickle_fallback=serde.pickle_fallback, allowed_msgpack_modules=sorted(allow | _langgraph_types())
        )
        return clone
    return checkpointer.with_allowlist(sorted(allow))


def _langgraph_types() -> set[tuple[str, ...]]:
    """The types LangGraph itself allows in strict mode (messages, Send, Interrupt, ...)."""
    try:
        from langgraph._internal._serde import curated_core_allowlist
    except ImportError:  # a LangGraph without it: its safe types are always allowed anyway
        return set()
    return set(curated_core_allowlist())
