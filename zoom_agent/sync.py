"""One persistent event loop on a daemon thread, for the blocking facade (`ZoomAgent.ask`)
and for graph nodes run from LangGraph's synchronous API (`allow_sync`).

``asyncio.run`` per call closes its loop each time, so an async client created on the
first call (httpx, openai, a LangChain chat model's session) fails on the second with
"Event loop is closed", and it refuses to run at all inside a running loop (Jupyter).
Running every blocking call on one long-lived loop in its own thread avoids both.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class BackgroundLoop:
    """An event loop running forever on a daemon thread; `run` blocks on one coroutine."""

    def __init__(self, name: str = "zoom-agent-loop") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def run(self, coro: Coroutine[Any, Any, T], *, context: contextvars.Context | None = None) -> T:
        """Run ``coro`` on the background loop and return its result (blocking the caller).

        Args:
            coro: the coroutine.
            context: the context variables it runs with (default: a fresh copy of none);
                pass ``contextvars.copy_context()`` to keep the caller's (LangGraph's run
                config, stream writer and runtime live there).

        Raises:
            RuntimeError: called from the background loop itself (it would deadlock).
        """
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a blocking call was made from the agent's own event loop; await the async method")
        if context is None:
            return asyncio.run_coroutine_threadsafe(coro, self._loop).result()
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def start() -> None:
            task = self._loop.create_task(coro, context=context)
            task.add_done_callback(lambda t: _settle(t, done))

        self._loop.call_soon_threadsafe(start)
        return done.result()


_shared: BackgroundLoop | None = None
_lock = threading.Lock()


def shared_loop() -> BackgroundLoop:
    """The process's one background loop (started on first use)."""
    global _shared
    with _lock:
        if _shared is None:
            _shared = BackgroundLoop()
        return _shared


def _settle(task: asyncio.Task[T], done: concurrent.futures.Future[T]) -> None:
    if task.cancelled():
        done.cancel()
    elif task.exception() is not None:
        done.set_exception(task.exception())  # type: ignore[arg-type]
    else:
        done.set_result(task.result())


def allow_sync(runnable: Any) -> None:
    """Let a graph node built from an ``async def`` run from LangGraph's synchronous API too.

    LangGraph refuses to run an async-only node from ``invoke``/``stream`` ("No synchronous
    function provided"), so a parent graph that embeds the zoom graph and calls ``.invoke()``
    fails. This gives the node's runnable a sync side that runs the same coroutine on the
    shared background loop, with the caller's context variables (run config, stream writer,
    runtime), blocking until it is done. Nodes that already have one are left alone.
    """
    from langgraph._internal._runnable import RunnableCallable

    if not isinstance(runnable, RunnableCallable) or runnable.func is not None or runnable.afunc is None:
        return
    node = runnable.afunc

    @functools.wraps(node)
    def blocking(*args: Any, **kwargs: Any) -> Any:
        async def call() -> Any:
            return await node(*args, **kwargs)

        return shared_loop().run(call(), context=contextvars.copy_context())

    runnable.func = blocking
