"""A grounded answer as the servers return it: JSON, no file paths, no pixels."""

from __future__ import annotations

from typing import Any

from zoom_agent.types import GroundedAnswer


def answer_summary(result: GroundedAnswer) -> dict[str, Any]:
    """The JSON an MCP client gets for one answered question (no file paths, no pixels)."""
    return {
        "status": result.status,
        "answer": result.answer,
        "answer_text": result.answer_text,
        "spans": [list(s.as_tuple()) for s in result.spans],
        "answer_confidence": result.answer_confidence,
        "span_confidence": result.span_confidence,
        "rounds": result.rounds,
        "zooms": [
            {"round": z.round, "window": list(z.clip.span.as_tuple()) if z.clip else None, "text": z.text}
            for z in result.zooms
        ],
        "error": result.error,
    }
