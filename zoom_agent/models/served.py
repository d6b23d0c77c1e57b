"""The OpenAI-compatible backend, vLLM first: `OpenAIVLM` (docs/serving.md §1).

Named ``served.py`` so it never shadows the ``openai`` package. Only the served path
imports it (``load_model`` does so lazily for ``http(s)://`` specs).

This module is the client: endpoints, connections per event loop, retries, concurrency
and a bounded cache of encoded clips (each encoded once in a worker thread, however many
requests wait for it, so the coarse clip every later turn repeats is encoded once). The
wire format (messages, video parts, frame timing, JSON body, replies) is
`zoom_agent.models.chat_format`.

Reliability: least-outstanding-requests over the endpoints, a concurrency limit, a
per-attempt timeout, retries with exponential backoff and jitter on connection errors,
timeouts, 429 and 5xx (honouring ``Retry-After`` up to the cap); other HTTP errors are
not retried. After the last try a `ModelError` names the endpoint and the last error.
The API key is read from the environment only, and never appears in repr, logs or errors.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
import weakref
from collections import Counter
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit, urlunsplit

from zoom_agent.geometry import GEOMETRY, Family, VisionGeometry, detect_geometry, family_of
from zoom_agent.lru import ByteLRU
from zoom_agent.models.base import ModelError, VLMRequest, VLMResponse
from zoom_agent.models.chat_format import (
    EncodedClip,
    VideoMode,
    encode_clip,
    parse_completion,
    render_messages,
    request_body,
)
from zoom_agent.models.served_errors import describe_error, error_kind, retry_after
from zoom_agent.types import ClipRef

if TYPE_CHECKING:
    from openai import AsyncOpenAI

CACHE_BYTES = 256 * 2**20  # ours: encoded clips kept per OpenAIVLM
_NO_KEY = "EMPTY"  # what vLLM expects when it runs without --api-key


def normalize_endpoint(url: str) -> str:
    """The base URL of an OpenAI-compatible API: ``http(s)://host:port/v1`` style.

    A URL without a path gets ``/v1`` (vLLM's prefix); a trailing slash is dropped.

    Raises:
        ValueError: not an http(s) URL with a host.
    """
    parts = urlsplit(str(url).strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"endpoint {url!r} is not a URL like http://127.0.0.1:8000/v1")
    path = parts.path.rstrip("/") or "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


# --------------------------------------------------------------------------- clients


@dataclass
class _Endpoint:
    url: str
    client: AsyncOpenAI
    outstanding: int = 0
    model: str | None = None


@dataclass
class _LoopState:
    """Clients and gates of one event loop (httpx pools and semaphores bind to a loop)."""

    endpoints: list[_Endpoint]
    gate: asyncio.Semaphore
    encoding: dict[ClipRef, asyncio.Future[EncodedClip]] = field(default_factory=dict)
    turn: int = 0
    closer: AsyncGenerator[None, None] | None = None

    def pick(self, avoid: str | None) -> _Endpoint:
        """Least outstanding requests; ties rotate; avoid the endpoint that just failed."""
        pool = [e for e in self.endpoints if e.url != avoid] or self.endpoints
        low = min(e.outstanding for e in pool)
        ties = [e for e in pool if e.outstanding == low]
        self.turn += 1
        return ties[self.turn % len(ties)]


@dataclass
class ServedStats:
    """Counters for tests, benchmarks and logs (no request content, no secrets)."""

    requests: int = 0
    attempts: int = 0
    retries: int = 0
    failures: int = 0
    backoff_total_s: float = 0.0
    backoff_max_s: float = 0.0
    per_endpoint: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


class OpenAIVLM:
    """A VLM behind one or more OpenAI-compatible chat endpoints (vLLM replicas).

    Args:
        endpoints: base URL(s), e.g. ``"http://127.0.0.1:8000/v1"`` (``/v1`` is added to
            a URL without a path).
        model: the served model name; None asks each endpoint's ``/v1/models`` once.
        family: the served model's family (its released geometry), when the ``model`` name
            does not spell it; `load_model` detects it from the server's model list.
        api_key_env: the environment variable holding the API key (read once, here);
            unset means no key (vLLM without ``--api-key``).
        concurrency: requests in flight at once over all endpoints.
        timeout: seconds per attempt (connect to last byte).
        max_retries: further attempts after a retryable failure.
        backoff: ``(base, cap)`` seconds: attempt k waits ``min(cap, base * 2**k)`` scaled
            by a random factor in [0.5, 1] (jitter), or the server's ``Retry-After`` up to cap.
        video_mode: ``"frames"`` (a JPEG frame-list video per clip) or ``"images"``.
        jpeg_quality: 1..100.
        cache_bytes: bound on the encoded-clip cache.

    ``stats`` counts requests, attempts, retries, failures and backoff per instance.
    Connections belong to an event loop: each loop gets its own, closed when
    ``asyncio.run`` ends it (or by ``await vlm.aclose()``); a loop closed by hand without
    finalising its async generators leaves them to the garbage collector (a warning).

    Example:
        >>> vlm = OpenAIVLM(["http://gpu1:8000/v1", "http://gpu2:8000/v1"])  # doctest: +SKIP
        >>> agent = ZoomAgent(vlm)  # or ZoomAgent("http://gpu1:8000/v1")  # doctest: +SKIP
    """

    def __init__(
        self,
        endpoints: str | Sequence[str],
        *,
        model: str | None = None,
        family: Family | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 16,
        timeout: float = 120.0,
        max_retries: int = 5,
        backoff: tuple[float, float] = (0.5, 8.0),
        video_mode: VideoMode = "frames",
        jpeg_quality: int = 90,
        cache_bytes: int = CACHE_BYTES,
    ) -> None:
        urls = [endpoints] if isinstance(endpoints, str) else list(endpoints)
        if not urls:
            raise ValueError("OpenAIVLM needs at least one endpoint URL")
        self.endpoints: tuple[str, ...] = tuple(dict.fromkeys(normalize_endpoint(u) for u in urls))
        _check_settings(concurrency, timeout, max_retries, backoff, video_mode, jpeg_quality)
        self.model = model
        self._family = None if family is None else family_of(family, source="OpenAIVLM family")
        self._geometry: VisionGeometry | None = None
        self.api_key_env = api_key_env
        self._api_key = os.environ.get(api_key_env) or None
        self.concurrency, self.timeout, self.max_retries = concurrency, float(timeout), max_retries
        self.backoff = (float(backoff[0]), float(backoff[1]))
        self.video_mode: VideoMode = video_mode
        self.jpeg_quality = jpeg_quality
        self.stats = ServedStats()
        self._cache = ByteLRU[tuple[ClipRef, int], EncodedClip](cache_bytes)
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = weakref.WeakKeyDictionary()
        self._random = random.Random()

    def __repr__(self) -> str:  # no key, ever
        return (
            f"OpenAIVLM({list(self.endpoints)!r}, model={self.model!r}, video_mode={self.video_mode!r}, "
            f"concurrency={self.concurrency})"
        )

    # -- the VLM protocol -------------------------------------------------------------
    @property
    def geometry(self) -> VisionGeometry:
        """The served model's geometry: from ``family``, else from the ``model`` name.

        Raises:
            ValueError: neither names a supported family; the message says how to name it.
        """
        if self._geometry is None:  # found once: every view of every question is planned with it
            if self._family is not None:
                self._geometry = GEOMETRY[self._family]
            elif self.model is None:
                raise ValueError(
                    f"the family of the model served at {self.endpoints[0]} is unknown: pass "
                    "family='qwen2_5_vl' or 'qwen3_vl' (CLI: --family), or a model= name that spells it"
                )
            else:
                self._geometry = detect_geometry(self.model)
        return self._geometry

    @property
    def family(self) -> Family:
        return self.geometry.family

    async def generate(self, request: VLMRequest) -> VLMResponse:
        """Send one conversation; retry transient failures; parse text, ids and logprobs.

        Raises:
            ModelError: a clip could not be read or encoded, the server rejected the
                request (4xx other than 429), or every attempt failed.
        """
        t0 = time.perf_counter()
        self.stats.requests += 1
        state = await self._state()
        try:
            encoded = await self._encode_all(state, [c for t in request.turns for c in t.clips])
            messages, extra = render_messages(request.turns, encoded, self.video_mode, self._timing_family())
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(f"could not prepare the request's frames: {type(exc).__name__}: {exc}") from exc
        s = request.sampling
        repeat = s.n if s.temperature == 0 else 1  # greedy samples are identical: ask once, copy
        body = request_body(request, messages, extra, n=s.n // repeat)
        raw, url = await self._send(state, body)
        choices = raw.get("choices") if isinstance(raw, dict) else None
        if not choices or not isinstance(choices, list):
            raise ModelError(f"{url}: the response has no choices")
        ordered = sorted(choices, key=lambda c: int(c.get("index") or 0) if isinstance(c, dict) else 0)
        completions = [parse_completion(c, request.want_logprobs) for c in ordered]
        ids = raw.get("prompt_token_ids")
        return VLMResponse(
            completions=tuple(completions * repeat),
            prompt_token_ids=tuple(int(i) for i in ids) if ids is not None else None,
            model=str(raw.get("model") or ""),
            latency_s=time.perf_counter() - t0,
        )

    def _timing_family(self) -> Family | None:
        """The family that decides frame timing (chat_format); None when unknown (shared rate)."""
        try:
            return self.family
        except ValueError:
            return None

    async def aclose(self) -> None:
        """Close this event loop's HTTP connections (the object stays usable)."""
        state = self._states.pop(asyncio.get_running_loop(), None)
        if state is not None and state.closer is not None:
            await state.closer.aclose()

    # -- plumbing ---------------------------------------------------------------------
    async def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            from openai import AsyncOpenAI

            for old in [old for old in self._states if old.is_closed()]:
                del self._states[old]
            clients = [
                _Endpoint(
                    u,
                    AsyncOpenAI(
                        base_url=u,
                        api_key=self._api_key or _NO_KEY,
                        max_retries=0,
                        http_client=_http_client(),
                    ),
                )
                for u in self.endpoints
            ]
            state = self._states[loop] = _LoopState(clients, asyncio.Semaphore(self.concurrency))
            # asyncio.run finalises async generators before it closes the loop: this one
            # closes the connections there (pytest-asyncio loops do the same).
            state.closer = _closer(clients)
            await state.closer.__anext__()
        return state

    async def _encode_all(self, state: _LoopState, clips: list[ClipRef]) -> dict[ClipRef, EncodedClip]:
        unique = list(dict.fromkeys(clips))
        done = await asyncio.gather(*(self._encode(state, c) for c in unique))
        return dict(zip(unique, done, strict=True))

    async def _encode(self, state: _LoopState, ref: ClipRef) -> EncodedClip:
        key = (ref, self.jpeg_quality)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        pending = state.encoding.get(ref)
        if pending is None:  # one encode per clip, however many requests wait for it
            pending = state.encoding[ref] = asyncio.ensure_future(
                asyncio.to_thread(encode_clip, ref, self.jpeg_quality)
            )
            pending.add_done_callback(lambda _: state.encoding.pop(ref, None))
        value = await asyncio.shield(pending)
        self._cache.put(key, value)
        return value

    async def _send(self, state: _LoopState, body: dict[str, Any]) -> tuple[Any, str]:
        """POST the body with retries; the parsed JSON and the endpoint that answered.

        The SDK's raw ``post`` sends the body as it is: its typed ``create`` walks every
        content part of every message (about 5 ms a request here, the bottleneck).
        """
        import openai

        last: Exception | None = None
        endpoint: _Endpoint | None = None
        t0 = time.perf_counter()
        for attempt in range(self.max_retries + 1):
            async with state.gate:
                endpoint = state.pick(avoid=endpoint.url if endpoint and last else None)
                endpoint.outstanding += 1
                self.stats.attempts += 1
                self.stats.per_endpoint[endpoint.url] += 1
                try:
                    async with asyncio.timeout(self.timeout):
                        model = self.model or await _served_model(endpoint)
                        raw = await endpoint.client.post(
                            "/chat/completions",
                            cast_to=cast(Any, object),
                            body={"model": model, **body},
                            options={"timeout": self.timeout},
                        )
                    return raw, endpoint.url
                except (openai.APIConnectionError, TimeoutError, openai.RateLimitError) as exc:
                    last = exc
                except openai.APIStatusError as exc:
                    if exc.status_code < 500:
                        self.stats.failures += 1
                        self.stats.errors[error_kind(exc)] += 1
                        raise ModelError(f"{endpoint.url} rejected the request: {describe_error(exc)}") from exc
                    last = exc
                finally:
                    endpoint.outstanding -= 1
            self.stats.errors[error_kind(last)] += 1
            if attempt < self.max_retries:
                self.stats.retries += 1
                await asyncio.sleep(self._delay(attempt, last))
        self.stats.failures += 1
        assert endpoint is not None and last is not None
        raise ModelError(
            f"{endpoint.url}: no answer after {self.max_retries + 1} attempts in "
            f"{time.perf_counter() - t0:.1f} s; last error: {describe_error(last)}"
        ) from last

    def _delay(self, attempt: int, exc: Exception | None) -> float:
        base, cap = self.backoff
        delay = min(cap, base * 2**attempt) * self._random.uniform(0.5, 1.0)
        after = retry_after(exc)
        if after is not None:
            delay = max(delay, min(cap, after))
        self.stats.backoff_total_s += delay
        self.stats.backoff_max_s = max(self.stats.backoff_max_s, delay)
        return delay


def _http_client() -> Any:
    """The SDK's aiohttp transport when aiohttp is installed (about half the CPU per request
    of httpx's pool, which scans every idle connection per request), else its httpx one.
    Never the SDK's implicit default: that one schedules its close on whatever loop runs
    when it is collected, which fails for connections of a closed loop."""
    try:
        import aiohttp  # noqa: F401
        from openai import DefaultAioHttpClient

        return DefaultAioHttpClient()
    except ImportError:
        from openai import DefaultAsyncHttpxClient

        return DefaultAsyncHttpxClient()


async def _closer(endpoints: list[_Endpoint]) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await asyncio.gather(*(e.client.close() for e in endpoints), return_exceptions=True)


async def _served_model(endpoint: _Endpoint) -> str:
    """The endpoint's first served model (asked once per endpoint and event loop)."""
    if endpoint.model is None:
        page = await endpoint.client.models.list()
        names = [m.id for m in page.data]
        if not names:
            raise ModelError(f"{endpoint.url}/models lists no model; pass model= explicitly")
        endpoint.model = names[0]
    return endpoint.model


def _check_settings(
    concurrency: int, timeout: float, max_retries: int, backoff: tuple[float, float], mode: str, quality: int
) -> None:
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    if not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout}")
    if max_retries < 0:
        raise ValueError(f"max_retries must be >= 0, got {max_retries}")
    if len(backoff) != 2 or not 0 <= backoff[0] <= backoff[1]:
        raise ValueError(f"backoff must be (base, cap) seconds with 0 <= base <= cap, got {backoff}")
    if mode not in ("frames", "images"):
        raise ValueError(f"video_mode must be 'frames' or 'images', got {mode!r}")
    if not 1 <= quality <= 100:
        raise ValueError(f"jpeg_quality must be in 1..100, got {quality}")


def served_family(endpoint: str, *, api_key_env: str = "OPENAI_API_KEY", timeout: float = 10.0) -> Family | None:
    """The family of the model an OpenAI-compatible server serves, from its ``/models`` list.

    Each listed model's ``id`` (the served name) and ``root`` (vLLM: the checkpoint it
    loaded, a hub id or a folder) is read with `zoom_agent.geometry.detect_geometry`.

    Returns:
        The family, or None when the server cannot be asked or names no supported family.
    """
    import json
    import urllib.request

    request = urllib.request.Request(f"{normalize_endpoint(endpoint)}/models")
    key = os.environ.get(api_key_env)
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            listed = json.loads(resp.read()).get("data") or []
    except (OSError, ValueError, AttributeError):
        return None
    for entry in listed if isinstance(listed, list) else []:
        for name in (entry.get("id"), entry.get("root")) if isinstance(entry, dict) else ():
            if isinstance(name, str) and name:
                try:
                    return detect_geometry(name).family
                except ValueError:
                    continue
    return None
