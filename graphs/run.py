"""Running the zoom graph on one question: the one place that builds a run's config, calls
the graph and guards it. `ZoomAgent` (applications, evaluation) and the training rollout
engine both run questions through `run_question`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zoom_agent.config import AgentConfig
from zoom_agent.graphs.state import ZoomContext
from zoom_agent.types import GroundedAnswer, Question, VideoInfo


def run_config(config: AgentConfig, thread_id: str | None = None) -> dict[str, Any]:
    """LangGraph's run config for one question: the step budget and, with a checkpointer,
    the thread."""
    run: dict[str, Any] = {"recursion_limit": config.recursion_limit}
    if thread_id is not None:
        run["configurable"] = {"thread_id": thread_id}
    return run


def result_of(question_id: str, final: dict[str, Any]) -> GroundedAnswer:
    """The run's `GroundedAnswer`, or an error result saying the run is paused for approval."""
    if "result" in final:
        return final["result"]  # type: ignore[no-any-return]
    if final.get("__interrupt__"):
        waiting = final["__interrupt__"][0].value
        return GroundedAnswer(
            question_id=question_id,
            status="error",
            error=f"paused for zoom approval of {waiting.get('calls')}: call resume(thread_id, decision)",
        )
    raise RuntimeError(f"the zoom graph ended without a result (keys {sorted(final)})")


async def run_question(
    graph: Any,
    question: Question,
    *,
    model: Any,
    config: AgentConfig,
    info: VideoInfo | None = None,
    thread_id: str | None = None,
    reraise: tuple[type[BaseException], ...] = (),
    on_step: Callable[[str, dict[str, Any]], None] | None = None,
) -> GroundedAnswer:
    """Run one question through a compiled zoom graph.

    Never raises for a bad video or a model failure: the graph's nodes record those, and any
    other exception escaping the graph becomes a ``status="error"`` result (the last guard),
    except the types in ``reraise`` (e.g. training's `RolloutError`, which must stop a step).
    ``on_step(node, update)`` is called as each node finishes (``zoom-agent ask`` shows
    its stages with it).
    """
    state = {"question": question, **({"info": info} if info is not None else {})}
    run = {"config": run_config(config, thread_id), "context": ZoomContext(model=model, config=config)}
    try:
        if on_step is None:
            final = await graph.ainvoke(state, **run)
        else:
            final = {}
            async for mode, chunk in graph.astream(state, stream_mode=["updates", "values"], **run):
                if mode == "values":
                    final = chunk
                    continue
                for node, update in chunk.items():
                    on_step(node, update or {})
        return result_of(question.id, final)
    except reraise:
        raise
    except Exception as exc:
        return GroundedAnswer(question_id=question.id, status="error", error=f"{type(exc).__name__}: {exc}")
