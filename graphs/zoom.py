"""The coarse-to-fine zoom graph (docs/architecture.md).

```
prepare -> model -> (zoom x k, in parallel) -> observe -> model -> ... -> finalize
        |        |-> refine (fresh fine pass on the pooled spans) -> finalize
        |        `-> retry (format reminder) -> model
        `-> (chunk x n, in parallel) -> fine -> finalize        divide and conquer (long videos)
```
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph

from zoom_agent.checkpoints import with_state_types
from zoom_agent.graphs import approval, divide, fine, nodes, routes
from zoom_agent.graphs.state import ZoomContext, ZoomInput, ZoomOutput, ZoomState, ZoomTask
from zoom_agent.sync import allow_sync


def build_zoom_graph(*, checkpointer: Any = None, approve_zooms: bool = False, **compile_options: Any) -> Any:
    """Build and compile the zoom agent's state machine.

    Args:
        checkpointer: an optional LangGraph checkpointer (e.g. ``InMemorySaver`` or
            ``AsyncSqliteSaver``) so a thread can be resumed; the state's types are put on
            its serializer's allowlist (`zoom_agent.checkpoints`).
        approve_zooms: pause before each zoom round for a human decision
            (`zoom_agent.graphs.approval`; needs a checkpointer).
        compile_options: passed to ``StateGraph.compile`` (``interrupt_before``,
            ``interrupt_after``, ``store``, ``cache``, ``name``, ``debug``).

    Returns:
        A compiled graph. Run it with ``context=ZoomContext(model, config)`` and an input
        ``{"question": Question}`` (optionally ``"info": VideoInfo`` to skip opening the
        video); the output's ``"result"`` is a `GroundedAnswer`.

    Example:
        >>> from zoom_agent.models.scripted import ScriptedVLM
        >>> graph = build_zoom_graph()
        >>> sorted(graph.get_graph().nodes)  # doctest: +NORMALIZE_WHITESPACE
        ['__end__', '__start__', 'chunk', 'finalize', 'fine', 'model', 'observe', 'prepare', 'refine', 'retry', 'zoom']
    """
    graph = StateGraph(ZoomState, context_schema=ZoomContext, input_schema=ZoomInput, output_schema=ZoomOutput)
    graph.add_node("prepare", nodes.prepare)
    graph.add_node("model", nodes.call_model)
    graph.add_node("zoom", nodes.zoom)
    graph.add_node("observe", nodes.observe)
    graph.add_node("retry", nodes.remind)
    graph.add_node("finalize", nodes.finalize)
    graph.add_edge(START, "prepare")
    graph.add_node("chunk", divide.run_chunk)
    graph.add_node("fine", divide.fine_pass)
    graph.add_conditional_edges("prepare", routes.after_prepare, ["model", "chunk", "finalize"])
    graph.add_edge("chunk", "fine")
    graph.add_edge("fine", "finalize")
    if approve_zooms:
        graph.add_node("approve", approval.approve_zooms)
        graph.add_edge("model", "approve")
        graph.add_conditional_edges("approve", routes.after_model, ["zoom", "refine", "retry", "finalize"])
    else:
        graph.add_conditional_edges("model", routes.after_model, ["zoom", "refine", "retry", "finalize"])
    graph.add_node("refine", fine.fresh_fine_pass)
    graph.add_edge("refine", "finalize")
    graph.add_edge("zoom", "observe")
    graph.add_edge("observe", "model")
    graph.add_edge("retry", "model")
    graph.add_edge("finalize", END)
    for spec in graph.nodes.values():  # async nodes run from the sync API too (parent.invoke)
        allow_sync(spec.runnable)
    compile_options.setdefault("name", "zoom_graph")
    saver = with_state_types(checkpointer, ZoomState, ZoomTask)
    return graph.compile(checkpointer=saver, **compile_options)
