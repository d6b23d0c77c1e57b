"""A fake vLLM OpenAI-compatible server for tests and benchmarks (aiohttp, 127.0.0.1).

It checks requests the way vLLM does, as far as this project relies on it: content part
types per role (a ``role: tool`` message with an image or video is rejected), frame-list
videos ``data:video/jpeg;base64,f1,f2,...`` whose frames must decode as JPEGs of one
size, ``media_io_kwargs`` (vLLM's keys and types; without ``num_frames: -1`` a list is
cut to 32 frames, as vLLM does, and ``frames_used`` records it), ``mm_processor_kwargs``
and ``media_io_kwargs`` (both 400 unless started with ``trust_request_mm_kwargs``, which
is on by default, as `zoom-agent serve` sets it), ``--limit-mm-per-prompt``, local
file URLs (only under ``allowed_local_media_path``), the model name (404) and the API key
(401). Replies carry byte-level tokens (non-ASCII characters split into U+FFFD pieces,
EOS included), logprobs, and with ``return_token_ids`` the token ids and prompt ids.

Faults come from a rule ``Arrival -> Fault | None``: HTTP status (429, 500, 503, with an
optional Retry-After), slow responses, a dropped connection, or the whole server dying.
``latency`` and ``capacity`` (a server-side semaphore) model a GPU server's throughput.

    server = FakeVLLM(latency=0.05, faults=lambda a: Fault("status", 503) if a.attempt == 0 else None)
    url = await server.start()          # http://127.0.0.1:PORT/v1
    ...
    await server.stop()

``python tests/fake_vllm.py --latency 0.2 --capacity 32`` serves in the foreground and
prints ``READY <url>`` (used by benchmarks/bench_served.py).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import hashlib
import json
import re
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NoReturn

from aiohttp import web

from zoom_agent.types import VideoInfo

Reply = Callable[[dict[str, Any]], str]
PART_TYPES = {"text", "image_url", "video_url"}
EOS = "<|im_end|>"


class BadRequest(ValueError):
    """A request vLLM would answer with HTTP 400."""


@dataclass(frozen=True)
class Fault:
    """What the server does instead of answering: ``status`` (HTTP ``code``, optional
    ``retry_after``), ``slow`` (answer after ``seconds``), ``drop`` (close the connection)
    or ``die`` (drop, then stop the whole server: from that moment it answers nothing, as a
    crashed process would: requests in flight or arriving on open connections are dropped,
    new connections are refused)."""

    kind: Literal["status", "slow", "drop", "die"]
    code: int = 500
    seconds: float = 0.0
    retry_after: float | None = None


@dataclass(frozen=True)
class Arrival:
    """One incoming chat request: arrival order, how often this exact body came before
    (0 = first try), and all its text (to key faults on a question)."""

    index: int
    attempt: int
    text: str


@dataclass
class Media:
    """What one request carried: videos (frames sent, frames vLLM would keep, size) and images."""

    videos: list[tuple[int, int, tuple[int, int]]] = field(default_factory=list)
    images: list[tuple[int, int]] = field(default_factory=list)


# --------------------------------------------------------------------------- validation


def _jpeg(b64: str, decode: bool) -> tuple[int, int]:
    try:
        data = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError) as e:
        raise BadRequest(f"frame is not valid base64: {e}") from e
    if not (data.startswith(b"\xff\xd8\xff") and data.rstrip(b"\0").endswith(b"\xff\xd9")):
        raise BadRequest("frame is not a JPEG (no SOI/EOI markers)")
    if not decode:
        return (0, 0)
    import cv2
    import numpy as np

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise BadRequest("frame does not decode as a JPEG image")
    return (int(img.shape[0]), int(img.shape[1]))


def _video_kwargs(body: dict[str, Any], server_default: dict[str, Any]) -> dict[str, Any]:
    mio = body.get("media_io_kwargs") or {}
    if not isinstance(mio, dict) or any(not isinstance(v, dict) for v in mio.values()):
        raise BadRequest("media_io_kwargs must be an object keyed by modality")
    if set(mio) - {"video", "image"}:
        raise BadRequest(f"media_io_kwargs has unknown modalities {sorted(set(mio) - {'video', 'image'})}")
    runtime = dict(mio.get("video", {}))
    allowed = {"num_frames", "fps", "frames_indices", "total_num_frames", "duration", "do_sample_frames"}
    if set(runtime) - allowed:
        raise BadRequest(f"media_io_kwargs.video has unknown keys {sorted(set(runtime) - allowed)}")
    merged = {**server_default, **runtime}
    if "fps" in runtime and "num_frames" not in runtime:  # vLLM drops the default num_frames then
        merged.pop("num_frames", None)
    num = merged.get("num_frames", 32)
    if not isinstance(num, int) or num == 0:
        raise BadRequest("num_frames must be greater than 0 or -1")
    fps = merged.get("fps", 1)
    if not isinstance(fps, int | float) or fps <= 0:
        raise BadRequest(f"media_io_kwargs.video.fps must be a positive number, got {fps!r}")
    return merged | {"num_frames": num}


def _video(url: str, kw: dict[str, Any], decode: bool) -> tuple[int, int, tuple[int, int]]:
    frames = url.split(",")
    sizes = {_jpeg(f, decode) for f in frames}
    if len(sizes) > 1:
        raise BadRequest(f"frames of one video differ in size: {sorted(sizes)}")
    kept = len(frames) if kw["num_frames"] < 0 else min(len(frames), kw["num_frames"])
    idx = kw.get("frames_indices")
    if idx is not None and (not isinstance(idx, list) or len(idx) != kept):
        raise BadRequest(f"frames_indices length ({len(idx or [])}) must match number of frames sent ({kept})")
    return (len(frames), kept, sizes.pop())


def _media_url(part: dict[str, Any], key: str, prefix: str, root: str | None) -> str:
    url = (part.get(key) or {}).get("url")
    if not isinstance(url, str):
        raise BadRequest(f"{part['type']} part needs {{'{key}': {{'url': str}}}}")
    if url.startswith("file://"):
        path = url[len("file://") :]
        if root is None or not path.startswith(root.rstrip("/") + "/"):
            raise BadRequest(f"cannot load local files without --allowed-local-media-path covering {path}")
        return ""
    if not url.startswith(prefix):
        raise BadRequest(f"{part['type']} URL must be a {prefix}... data URL here, got {url[:40]!r}")
    return url[len(prefix) :]


def validate(body: Any, server: FakeVLLM) -> Media:
    """Check a chat request as vLLM would; raise BadRequest with vLLM-like messages."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
        raise BadRequest("messages must be a non-empty list")
    for key in ("mm_processor_kwargs", "media_io_kwargs"):  # vLLM 0.32 refuses both untrusted
        if body.get(key) and not server.trust_request_mm_kwargs:
            raise BadRequest(f"Per-request {key} are disabled by default: start with --trust-request-mm-kwargs")
    if body.get("top_logprobs") is not None and not body.get("logprobs"):
        raise BadRequest("when using `top_logprobs`, `logprobs` must be set to true")
    for key, ok in (("n", lambda v: isinstance(v, int) and v >= 1), ("max_tokens", lambda v: v > 0)):
        if key in body and not ok(body[key]):
            raise BadRequest(f"{key} is invalid: {body[key]!r}")
    if body.get("continue_final_message") and body.get("add_generation_prompt", True):
        raise BadRequest("Cannot set both `continue_final_message` and `add_generation_prompt` to True")
    kw = _video_kwargs(body, server.media_io_kwargs)
    media = Media()
    for i, msg in enumerate(body["messages"]):
        role, content = msg.get("role"), msg.get("content")
        if role not in ("system", "user", "assistant", "tool"):
            raise BadRequest(f"messages[{i}].role {role!r} is not supported")
        if isinstance(content, str) or (content is None and role == "assistant"):
            continue
        if not isinstance(content, list):
            raise BadRequest(f"messages[{i}].content must be a string or a list of parts")
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in PART_TYPES:
                raise BadRequest(f"messages[{i}]: unknown content part type {kind!r}")
            if kind != "text" and role != "user":
                raise BadRequest(f"messages[{i}] ({role}) may not carry {kind} parts")
            if kind == "text" and not isinstance(part.get("text"), str):
                raise BadRequest(f"messages[{i}]: a text part needs a string 'text'")
            root = server.allowed_local_media_path
            if kind == "video_url":
                data = _media_url(part, "video_url", "data:video/jpeg;base64,", root)
                media.videos.append(_video(data, kw, server.decode_jpeg) if data else (0, 0, (0, 0)))
            elif kind == "image_url":
                data = _media_url(part, "image_url", "data:image/jpeg;base64,", root)
                media.images.append(_jpeg(data, server.decode_jpeg) if data else (0, 0))
    for modality, count in (("video", len(media.videos)), ("image", len(media.images))):
        limit = server.limit_mm_per_prompt.get(modality, 0)
        if count > limit:
            raise BadRequest(f"At most {limit} {modality}(s) may be provided in one prompt, got {count}")
    return media


# --------------------------------------------------------------------------- replies


_PIECE = re.compile(r"\s?\w+|\s?[^\w\s]+|\s+", re.UNICODE)


def tokenize(text: str) -> list[tuple[int, str]]:
    """Byte-level-like tokens ``(id, decoded string)``: ASCII words and punctuation whole,
    non-ASCII pieces as 2-byte chunks decoded alone (U+FFFD where a character is split)."""
    out = []
    for piece in _PIECE.findall(text):
        raw = piece.encode()
        chunks = [raw] if piece.isascii() else [raw[i : i + 2] for i in range(0, len(raw), 2)]
        for c in chunks:
            out.append(
                (
                    int.from_bytes(hashlib.blake2b(c, digest_size=3).digest()) + 1000,
                    c.decode(errors="replace"),
                )
            )
    return out


def zoom_then_answer(body: dict[str, Any]) -> str:
    """A well-behaved tool-dialect policy: zoom on 1-3 s first, answer B after a tool turn."""
    from zoom_agent import protocol

    if any(m.get("role") == "tool" for m in body["messages"]):
        return protocol.format_answer("B", [(1.2, 2.8)], reasoning="Im Zoom ist der Würfel grün — sicher.")
    return protocol.format_tool_call(1.0, 3.0, reasoning="Früh, bei <time>(1.0, 3.0)</time>, passiert es.")


def _completion(body: dict[str, Any], text: str, index: int, media: Media) -> dict[str, Any]:
    tokens = [*tokenize(text), (2, EOS)]
    seed = hashlib.blake2b(f"{index}:{text}".encode(), digest_size=8).digest()
    lps = [-((seed[i % 8] + 7 * i) % 97) / 40 - 0.01 for i in range(len(tokens))]
    choice: dict[str, Any] = {
        "index": index,
        "message": {"role": "assistant", "content": text},
        "finish_reason": "stop",
        "logprobs": None,
    }
    if body.get("logprobs"):
        content = [
            {"token": t, "logprob": lp, "bytes": list(t.encode()), "top_logprobs": []}
            for (_, t), lp in zip(tokens, lps, strict=True)
        ]
        choice["logprobs"] = {"content": content}
    if body.get("return_token_ids"):
        choice["token_ids"] = [i for i, _ in tokens]
    return choice


def _prompt_ids(body: dict[str, Any], media: Media) -> list[int]:
    """Plausible prompt ids: text tokens, then 1 id per visual token (28x28 patches, 2 frames)."""
    texts = []
    for m in body["messages"]:
        c = m.get("content")
        texts += [c] if isinstance(c, str) else [p.get("text", "") for p in c or [] if p.get("type") == "text"]
    ids = [i for t in texts for i, _ in tokenize(t)]
    visual = sum(-(-kept // 2) * (h // 28) * (w // 28) for _, kept, (h, w) in media.videos)
    visual += sum((h // 28) * (w // 28) for h, w in media.images)
    return ids + [151656] * visual


# --------------------------------------------------------------------------- the server


def _drop(request: web.Request) -> NoReturn:
    """Close the connection without a response (the client sees it drop)."""
    if request.transport is not None:
        request.transport.abort()
    raise asyncio.CancelledError


async def _health(_: web.Request) -> web.Response:
    return web.Response(text="")


class FakeVLLM:
    """A local OpenAI-compatible server that behaves like vLLM for this project's requests.

    Args:
        model: the served model name (``/v1/models``; other names get 404).
        api_key: required as ``Authorization: Bearer <key>`` when set (else 401).
        latency: seconds each answer takes inside the capacity gate.
        capacity: answers in progress at once (None: unlimited), like a GPU's batch.
        faults: ``Arrival -> Fault | None``, consulted before anything else.
        reply: ``request body -> text`` (default `zoom_then_answer`).
        limit_mm_per_prompt: ``--limit-mm-per-prompt``.
        media_io_kwargs: server-level ``--media-io-kwargs`` for videos.
        allowed_local_media_path: ``--allowed-local-media-path``.
        trust_request_mm_kwargs: ``--trust-request-mm-kwargs``.
        decode_jpeg: fully decode every frame (else check JPEG markers only; benchmarks).
        record: keep every valid request body in ``requests`` (tests; off for benchmarks).
    """

    def __init__(
        self,
        *,
        model: str = "fake-qwen-vl",
        api_key: str | None = None,
        latency: float = 0.0,
        capacity: int | None = None,
        faults: Callable[[Arrival], Fault | None] | None = None,
        reply: Reply | None = None,
        limit_mm_per_prompt: dict[str, int] | None = None,
        media_io_kwargs: dict[str, Any] | None = None,
        allowed_local_media_path: str | None = None,
        trust_request_mm_kwargs: bool = True,
        decode_jpeg: bool = True,
        record: bool = True,
    ) -> None:
        self.model, self.api_key, self.latency, self.faults = model, api_key, latency, faults
        self.reply = reply or zoom_then_answer
        self.limit_mm_per_prompt = limit_mm_per_prompt or {"video": 16, "image": 256}
        self.media_io_kwargs = media_io_kwargs if media_io_kwargs is not None else {"num_frames": -1}
        self.allowed_local_media_path = allowed_local_media_path
        self.trust_request_mm_kwargs, self.decode_jpeg, self.record = (
            trust_request_mm_kwargs,
            decode_jpeg,
            record,
        )
        self._gate = asyncio.Semaphore(capacity) if capacity else None
        self.requests: list[dict[str, Any]] = []
        self.media: list[Media] = []
        self.rejected: list[str] = []
        self.statuses: Counter[int] = Counter()
        self.arrivals = 0
        self.dead = False  # a "die" fault happened
        self.in_flight = self.max_in_flight = 0
        self._seen: Counter[bytes] = Counter()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self, port: int = 0) -> str:
        """Listen on 127.0.0.1 (``port`` 0: a free one); returns the ``/v1`` base URL."""
        app = web.Application(client_max_size=1 << 30)
        app.router.add_get("/health", _health)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        # handler_cancellation: like vLLM, abandon work whose client went away (timeouts)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{bound}/v1"
        return self.url

    async def stop(self) -> None:
        """Stop listening and drop open connections (later requests: connection refused)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def running(self) -> bool:
        return self._runner is not None

    async def __aenter__(self) -> FakeVLLM:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- handlers ---------------------------------------------------------------------
    def _error(self, code: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
        self.statuses[code] += 1
        body = {"error": {"message": message, "type": "BadRequestError" if code == 400 else "Error", "code": code}}
        return web.json_response(body, status=code, headers=headers)

    def _authorized(self, request: web.Request) -> bool:
        return self.api_key is None or request.headers.get("Authorization") == f"Bearer {self.api_key}"

    async def _models(self, request: web.Request) -> web.Response:
        if self.dead:
            _drop(request)
        if not self._authorized(request):
            return self._error(401, "Unauthorized")
        return web.json_response({"object": "list", "data": [{"id": self.model, "object": "model"}]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        if self.dead:
            _drop(request)
        digest = hashlib.sha1(raw).digest()
        arrival = Arrival(self.arrivals, self._seen[digest], raw.decode(errors="replace"))
        self.arrivals += 1
        self._seen[digest] += 1
        fault = self.faults(arrival) if self.faults else None
        if fault is not None and fault.kind != "slow":
            return await self._inject(request, fault)
        if not self._authorized(request):
            return self._error(401, "Unauthorized")
        try:
            body = json.loads(raw)
            media = validate(body, self)
        except (BadRequest, json.JSONDecodeError) as e:
            self.rejected.append(str(e))
            return self._error(400, str(e))
        if body.get("model") != self.model:
            return self._error(404, f"The model `{body.get('model')}` does not exist.")
        await self._work(fault.seconds if fault is not None else self.latency)
        if self.dead:  # died while this one was being worked on
            _drop(request)
        if self.record:
            self.requests.append(body)
            self.media.append(media)
        return web.json_response(self._response(body, media))

    async def _inject(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        if fault.kind == "status":
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else None
            return self._error(fault.code, f"injected HTTP {fault.code}", headers)
        if fault.kind == "die":
            self.dead = True
            asyncio.get_running_loop().create_task(self.stop())
        _drop(request)

    async def _work(self, seconds: float) -> None:
        if self._gate is None:
            await self._hold(seconds)
        else:
            async with self._gate:
                await self._hold(seconds)

    async def _hold(self, seconds: float) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(seconds)
        finally:
            self.in_flight -= 1

    def _response(self, body: dict[str, Any], media: Media) -> dict[str, Any]:
        self.statuses[200] += 1
        n = int(body.get("n", 1))
        texts = [self.reply(body) for _ in range(n)]
        choices = [_completion(body, t, i, media) for i, t in enumerate(texts)]
        prompt = _prompt_ids(body, media)
        out: dict[str, Any] = {
            "id": f"chatcmpl-{self.arrivals}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": choices,
            "usage": {
                "prompt_tokens": len(prompt),
                "completion_tokens": sum(len(tokenize(t)) + 1 for t in texts),
            },
        }
        if body.get("return_token_ids"):
            out["prompt_token_ids"] = prompt
        return out


@contextlib.contextmanager
def serve_in_thread(server: FakeVLLM) -> Iterator[str]:
    """Run ``server`` on its own event loop in a daemon thread (for sync tests); yields its URL."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def make_videos(folder: Path, count: int, *, duration: float = 6.0) -> list[VideoInfo]:
    """``count`` small real mp4v videos (160x120, 10 fps) and their metadata."""
    from zoom_agent.datasets.synthetic import write_synthetic_video
    from zoom_agent.video import open_video

    infos = []
    for i in range(count):
        path = folder / f"clip{i}.mp4"
        if not path.exists():
            write_synthetic_video(path, duration=duration, fps=10.0, size=(160, 120), seed=i)
        infos.append(open_video(path).info)
    return infos


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _main() -> None:
    parser = argparse.ArgumentParser(description="serve the fake vLLM in the foreground")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--capacity", type=int, default=None)
    args = parser.parse_args()

    async def serve() -> None:
        server = FakeVLLM(latency=args.latency, capacity=args.capacity, decode_jpeg=False, record=False)
        print("READY", await server.start(args.port), flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        print(
            "SERVED",
            json.dumps({"arrivals": server.arrivals, "max_in_flight": server.max_in_flight}),
            flush=True,
        )
        await server.stop()

    asyncio.run(serve())


if __name__ == "__main__":
    _main()
