"""Many questions through one agent: as completed, bounded, timed, with progress.

`answer_as_completed` is what `ZoomAgent.abatch` and `ZoomAgent.abatch_as_completed` run:

- every item is checked before any runs (a non-`Question` is a ``TypeError`` naming its
  position), so a bad item never costs a half-finished batch;
- a fixed pool of ``concurrency`` workers pulls the questions, so memory stays flat;
- each question gets at most ``timeout`` seconds; past it, that item alone becomes an
  error result ("timed out after ...") and the others go on;
- results come out as they finish, as ``(index, result)``, so a caller that stops early (or
  is cancelled) keeps everything finished so far; the workers left are cancelled;
- ``progress(done, total, index, result)`` is called after each one;
- with a checkpointer, each question runs in thread ``thread_id(question)`` (default: the
  question's id), so a batch can be resumed item by item.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Protocol

from zoom_agent.types import GroundedAnswer, Question

Progress = Callable[[int, int, int, GroundedAnswer], None]  # (done, total, index, result)


class Runner(Protocol):
    checkpointer: object

    async def arun(self, question: Question, *, thread_id: str | None = None) -> GroundedAnswer: ...


def checked_questions(items: Iterable[object]) -> list[Question]:
    """The items as a list, every one a `Question`.

    Raises:
        TypeError: an item is not a `Question` (the message gives its position and type).
    """
    questions = list(items)
    for i, item in enumerate(questions):
        if not isinstance(item, Question):
            raise TypeError(
                f"batch item {i} is a {type(item).__name__}, expected a zoom_agent.types.Question "
                "(make one with zoom_agent.agent.make_question)"
            )
    return questions  # type: ignore[return-value]


async def answer_as_completed(
    agent: Runner,
    items: Iterable[object],
    *,
    concurrency: int = 8,
    timeout: float | None = None,
    progress: Progress | None = None,
    thread_id: Callable[[Question], str] | None = None,
) -> AsyncIterator[tuple[int, GroundedAnswer]]:
    """Answer ``items``, yielding ``(index, result)`` in order of completion (module notes).

    Raises:
        TypeError: an item is not a `Question` (before anything runs).
        ValueError: ``concurrency`` < 1 or ``timeout`` <= 0.
    """
    questions = checked_questions(items)
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout}")
    name = thread_id or (lambda q: q.id)
    use_threads = agent.checkpointer is not None
    todo = iter(enumerate(questions))
    done: asyncio.Queue[tuple[int, GroundedAnswer]] = asyncio.Queue()

    async def one(q: Question) -> GroundedAnswer:
        try:
            return await asyncio.wait_for(agent.arun(q, thread_id=name(q) if use_threads else None), timeout)
        except TimeoutError:
            return GroundedAnswer(question_id=q.id, status="error", error=f"timed out after {timeout:g} s")
        except Exception as exc:  # arun records its own errors; this keeps the batch alive regardless
            return GroundedAnswer(question_id=q.id, status="error", error=f"{type(exc).__name__}: {exc}")

    async def worker() -> None:
        for index, question in todo:
            await done.put((index, await one(question)))

    workers = [asyncio.create_task(worker()) for _ in range(min(concurrency, len(questions)))]
    try:
        for count in range(1, len(questions) + 1):
            index, result = await done.get()
            if progress is not None:
                progress(count, len(questions), index, result)
            yield index, result
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
