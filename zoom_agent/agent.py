"""`ZoomAgent`: the facade an application embeds.

    agent = ZoomAgent("./tiny-model")                    # or any VLM, e.g. ScriptedVLM
    result = agent.ask("clip.mp4", "What colour is the square?", ["red", "green", "blue"])
    print(result.answer, result.spans)

Every call runs the same LangGraph state machine that evaluation and training use.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from zoom_agent.config import AgentConfig
from zoom_agent.geometry import VisionGeometry
from zoom_agent.models.base import VLM
from zoom_agent.types import GroundedAnswer, Question, VideoInfo, repeated_options


class ZoomAgent:
    """Answers questions about videos by grounding, zooming in, and answering with evidence.

    Args:
        model: a `VLM`, or a spec `zoom_agent.models.load_model` understands (a local
            model folder, a server URL, a ``provider:model`` string: `zoom_agent.models.MODEL_FORMS`).
        config: how the agent runs (dialect, budget, zoom rounds, ...).
        checkpointer: optional LangGraph checkpointer, so a ``thread_id`` can be resumed.
        approve_zooms: pause before each zoom round until `resume` gives a decision
            (`zoom_agent.graphs.approval`; needs a checkpointer).

    Raises:
        ValueError: the model's family is unknown (a served model whose name spells none:
            give its ``family``).
        TypeError: the model exposes no vision geometry.
    """

    def __init__(
        self,
        model: VLM | str | Path,
        config: AgentConfig | None = None,
        *,
        checkpointer: Any = None,
        approve_zooms: bool = False,
    ):
        from zoom_agent.graphs import build_zoom_graph
        from zoom_agent.models import load_model

        self.model: VLM = load_model(model)
        self.geometry: VisionGeometry = model_geometry(self.model)
        self.config = config or AgentConfig()
        self.checkpointer = checkpointer
        if approve_zooms and checkpointer is None:
            raise ValueError("approve_zooms pauses runs with interrupts: give the agent a checkpointer")
        self.graph = build_zoom_graph(checkpointer=checkpointer, approve_zooms=approve_zooms)

    # -- one question -----------------------------------------------------------------
    async def arun(
        self,
        question: Question,
        *,
        info: VideoInfo | None = None,
        thread_id: str | None = None,
        on_step: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> GroundedAnswer:
        """Run one `Question` through the graph. Never raises for a bad video or model
        failure: those come back as ``status="error"`` with the reason. ``on_step(node,
        update)`` is called as each step of the graph finishes (progress for a caller)."""
        from zoom_agent.graphs.run import run_question

        self._check_thread(thread_id)
        return await run_question(
            self.graph,
            question,
            model=self.model,
            config=self.config,
            info=info,
            thread_id=thread_id,
            on_step=on_step,
        )

    async def resume(self, thread_id: str, decision: Any = None) -> GroundedAnswer:
        """Continue a run from its last checkpoint (needs a checkpointer).

        Args:
            thread_id: the run's thread.
            decision: for a run paused for zoom approval, the decision
                (`zoom_agent.graphs.approval`: True, False or a list of windows); else None.
        """
        from langgraph.types import Command

        from zoom_agent.graphs.run import result_of

        if self.checkpointer is None:
            raise ValueError("resume needs an agent built with a checkpointer")
        state = await self.graph.aget_state(self._run_kwargs(thread_id)["config"])
        paused = any(task.interrupts for task in state.tasks)
        command: Command[Any] | None = Command(resume=decision) if paused else None
        final = await self.graph.ainvoke(command, **self._run_kwargs(thread_id))
        question_id = state.values["question"].id if "question" in state.values else thread_id
        return result_of(question_id, final)

    async def aask(
        self, video: str | Path, question: str, options: Sequence[str] | None = None, **kwargs: Any
    ) -> GroundedAnswer:
        """Ask one question about a video (async)."""
        return await self.arun(make_question(video, question, options), **kwargs)

    def ask(
        self, video: str | Path, question: str, options: Sequence[str] | None = None, **kwargs: Any
    ) -> GroundedAnswer:
        """Ask one question about a video (blocking). Runs on one persistent background event
        loop (`zoom_agent.sync`), so it works repeatedly with async clients and inside a
        running loop such as Jupyter's (where ``await agent.aask(...)`` is the better call)."""
        from zoom_agent.sync import shared_loop

        return shared_loop().run(self.aask(video, question, options, **kwargs))

    async def astream(
        self, question: Question, *, thread_id: str | None = None
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Yield ``(node, update)`` as each node of the graph finishes."""
        async for chunk in self.graph.astream(
            self._input(question, None), stream_mode="updates", **self._run_kwargs(thread_id)
        ):
            for node, update in chunk.items():
                yield node, update or {}

    def stream(
        self, video: str | Path, question: str, options: Sequence[str] | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Blocking version of `astream` for scripts: yields node updates as they happen."""
        q = make_question(video, question, options)
        return _iterate_in_thread(lambda: self.astream(q))

    # -- many questions ---------------------------------------------------------------
    async def abatch(self, questions: Iterable[Question], **options: Any) -> list[GroundedAnswer]:
        """Answer many questions at once; results in input order; one failing or timed-out
        item gives an error result and never stops the others.

        Args:
            questions: the questions (every item is checked before any runs).
            options: ``concurrency`` (8), ``timeout`` (seconds per item), ``progress``
                (``(done, total, index, result)`` callback), ``thread_id`` (question ->
                thread id, with a checkpointer; default the question's id): see
                `zoom_agent.batch.answer_as_completed`.
        """
        results: dict[int, GroundedAnswer] = {}
        async for index, result in self.abatch_as_completed(questions, **options):
            results[index] = result
        return [results[i] for i in range(len(results))]

    def abatch_as_completed(
        self, questions: Iterable[Question], **options: Any
    ) -> AsyncIterator[tuple[int, GroundedAnswer]]:
        """Like `abatch`, but yield ``(index, result)`` as each question finishes, so a caller
        that stops or is cancelled keeps every result finished so far."""
        from zoom_agent.batch import answer_as_completed

        return answer_as_completed(self, questions, **options)

    # -- plumbing ---------------------------------------------------------------------
    def _input(self, question: Question, info: VideoInfo | None) -> dict[str, Any]:
        return {"question": question, **({"info": info} if info is not None else {})}

    def _check_thread(self, thread_id: str | None) -> None:
        if thread_id is None and self.checkpointer is not None:
            raise ValueError("an agent with a checkpointer needs a thread_id for every run")

    def _run_kwargs(self, thread_id: str | None) -> dict[str, Any]:
        from zoom_agent.graphs import ZoomContext
        from zoom_agent.graphs.run import run_config

        self._check_thread(thread_id)
        return {
            "config": run_config(self.config, thread_id),
            "context": ZoomContext(model=self.model, config=self.config),
        }


def model_geometry(model: object) -> VisionGeometry:
    """A model's vision geometry (``model.geometry``), checked once, up front.

    Raises:
        ValueError: the backend cannot tell its family (its message says how to name it).
        TypeError: the object has no ``geometry`` attribute of type `VisionGeometry`.
    """
    geometry = getattr(model, "geometry", None)
    if not isinstance(geometry, VisionGeometry):
        raise TypeError(
            f"{type(model).__name__} exposes no vision geometry: a VLM has a `geometry` attribute "
            f"(zoom_agent.geometry.VisionGeometry, e.g. GEOMETRY['qwen2_5_vl']), got {geometry!r}"
        )
    return geometry


def make_question(video: str | Path, question: str, options: Sequence[str] | None = None) -> Question:
    """A `Question` for an ad-hoc ask, with a stable id derived from its content.

    Raises:
        ValueError: more options than letters (26), or an option that repeats another
            (`zoom_agent.types.repeated_options`; a benchmark's question keeps them, flagged).
    """
    opts = tuple(options) if options else None
    digest = hashlib.sha1(f"{video}\0{question}\0{opts}".encode()).hexdigest()[:12]
    made = Question(id=f"q-{digest}", video=str(video), question=question, options=opts)
    repeated = repeated_options(made)
    if repeated:
        raise ValueError(f"{repeated[0]}: expected distinct options")
    return made


def _iterate_in_thread(make: Any) -> Iterator[Any]:
    """Drive an async iterator on a private event loop thread; yield its items here."""
    import queue

    items: queue.Queue[tuple[str, Any]] = queue.Queue()

    async def pump() -> None:
        try:
            async for item in make():
                items.put(("item", item))
        except BaseException as exc:
            items.put(("error", exc))
        finally:
            items.put(("done", None))

    thread = threading.Thread(target=lambda: asyncio.run(pump()), daemon=True)
    thread.start()
    while True:
        kind, value = items.get()
        if kind == "item":
            yield value
        elif kind == "error":
            raise value
        else:
            break
    thread.join()
