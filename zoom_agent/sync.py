"""One persistent event loop on a daemon thread, for the blocking facade (`ZoomAgent.ask`).

``asyncio.run`` per call closes its loop each time, so an async client created on the
first call (httpx, openai, a LangChain chat model's session) fails on the second with
"Event loop is closed", and it refuses to run at all inside a running loop (Jupyter).
Running every blocking call on one long-lived loop in its own thread avoids both.
"""

from __future__ import annotations

import asyncio
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

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the background loop and return its result (blocking the caller).

        Raises:
            RuntimeError: called from the background loop itself (it would deadlock).
        """
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a blocking call was made from the agent's own event loop; await the async method")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()


_shared: BackgroundLoop | None = None
_lock = threading.Lock()


def shared_loop() -> BackgroundLoop:
    """The process's one background loop (started on first use)."""
    global _shared
    with _lock:
        if _shared is None:
            _shared = BackgroundLoop()
        return _shared
