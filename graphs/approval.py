"""An optional human step before each zoom round: ``build_zoom_graph(approve_zooms=True)``.

The run pauses with LangGraph's ``interrupt`` showing the calls the model made
(``{"question_id", "round", "calls": [{"name", "arguments"}, ...]}``) and goes on with the
value it is resumed with (``Command(resume=...)``, or ``ZoomAgent.resume(thread_id, decision)``):

- ``True`` (or ``None``): run the calls as they are;
- ``False``: run none (the model is reminded to answer);
- a list of ``{"start": s, "end": e}`` windows: run these instead (an edited zoom).

Interrupts need a checkpointer.
"""

from __future__ import annotations

from typing import Any

from langgraph.types import interrupt

from zoom_agent import protocol
from zoom_agent.graphs.state import ZoomState, rounds_taken


def approve_zooms(state: ZoomState) -> dict[str, Any]:
    """Pause for a decision on the latest turn's zoom calls (no calls: no pause)."""
    calls = state.get("calls", [])
    if not calls or state.get("error"):
        return {}
    decision = interrupt({"question_id": state["question"].id, "round": rounds_taken(state) + 1, "calls": calls})
    return {"calls": decided_calls(calls, decision)}


def decided_calls(calls: list[dict[str, Any]], decision: object) -> list[dict[str, Any]]:
    """The calls to run after a decision (see the module notes).

    Raises:
        ValueError: a decision that is none of the accepted forms.
    """
    if decision is None or decision is True:
        return calls
    if decision is False:
        return []
    if isinstance(decision, list) and all(isinstance(w, dict) for w in decision):
        return [{"name": protocol.ZOOM_TOOL_NAME, "arguments": dict(w)} for w in decision]
    raise ValueError(f"a zoom approval is True, False or a list of {{'start': s, 'end': e}} windows, got {decision!r}")
