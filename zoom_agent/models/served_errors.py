"""How the served client classifies and reports a failed attempt (`zoom_agent.models.served`).

Kinds feed `ServedStats.errors`; descriptions go into `ModelError` messages. Neither ever
holds request content or the API key: only exception types, HTTP statuses and messages.
"""

from __future__ import annotations

import math


def retry_after(exc: Exception | None) -> float | None:
    """Seconds the server asked to wait (a finite, non-negative ``Retry-After``), else None."""
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and math.isfinite(seconds) and seconds >= 0 else None


def root_cause(exc: BaseException) -> BaseException:
    """The innermost cause: transports re-wrap errors (the SDK's aiohttp transport reports
    a refused connection as a connect *timeout*), the root says what happened."""
    seen = {id(exc)}
    while exc.__cause__ is not None and id(exc.__cause__) not in seen:
        exc = exc.__cause__
        seen.add(id(exc))
    return exc


def error_kind(exc: BaseException | None) -> str:
    """A short failure class for `ServedStats.errors`, e.g. ``HTTP 503``, ``ConnectionRefusedError``."""
    status = getattr(exc, "status_code", None)
    if status is not None:
        return f"HTTP {status}"
    if exc is None or isinstance(exc, TimeoutError):
        return "TimeoutError"
    return type(root_cause(exc)).__name__


def describe_error(exc: BaseException | None) -> str:
    """``Kind: message`` of a failure, short (HTTP bodies can be long), with its root cause."""
    if exc is None:
        return "unknown error"
    if isinstance(exc, TimeoutError):
        return "TimeoutError: no complete response within the timeout"
    text = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    root = root_cause(exc)
    if root is not exc:
        text += f" (cause: {type(root).__name__}: {' '.join(str(root).split())[:200]})"
    return text
