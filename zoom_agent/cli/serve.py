"""``zoom-agent serve``: start vLLM for a Qwen-VL model with the flags this project needs.

The launcher and why each flag is set: `zoom_agent.serve`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from zoom_agent.cli.errors import UsageError, validation_line
from zoom_agent.cli.options import parameter_default
from zoom_agent.config import Budget
from zoom_agent.geometry import FAMILIES
from zoom_agent.serve import DEFAULT_LIMIT_MM, SERVE_VISUAL_TOKENS, ServeError, build_vllm_command, serve


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``serve`` to the ``zoom-agent`` sub-commands."""
    p = subparsers.add_parser(
        "serve",
        help="start vLLM for a Qwen-VL model (OpenAI-compatible server)",
        description=(
            "Start vLLM's OpenAI-compatible server for a Qwen2.5-VL or Qwen3-VL model, bound to this "
            "machine and reading local media only under --video-root; Ctrl-C stops it. It runs vLLM with "
            "--trust-request-mm-kwargs, which the client needs (each request states its frames' timing), "
            "and which lets a client choose media decoding settings. That is safe because the server "
            "binds a loopback address (only this machine's users reach it), reads local files only under "
            "--video-root, fetches no remote media, and caps videos per request and tokens per video; "
            "binding elsewhere needs an API key in VLLM_API_KEY. The encoder cache is sized so the largest "
            "clip of --visual-tokens fits, and a budget above the context length is refused before start. "
            "See docs/serving.md."
        ),
    )
    default = parameter_default  # the launcher's own defaults, stated once in its signature
    p.add_argument("model", help="hub id or local folder of a Qwen2.5-VL / Qwen3-VL checkpoint")
    p.add_argument("--video-root", type=Path, required=True, help="the only folder requests may read")
    p.add_argument(
        "--host",
        default=default(build_vllm_command, "host"),
        help="listen address (loopback: this machine; others need VLLM_API_KEY)",
    )
    p.add_argument("--port", type=int, default=default(build_vllm_command, "port"), help="listen port")
    p.add_argument(
        "--data-parallel", type=int, default=default(build_vllm_command, "data_parallel"), help="replicas, one per GPU"
    )
    p.add_argument("--max-model-len", type=int, default=None, help="context length (default: the checkpoint's)")
    p.add_argument("--max-videos", type=int, default=DEFAULT_LIMIT_MM["video"], help="videos per request")
    p.add_argument("--max-images", type=int, default=DEFAULT_LIMIT_MM["image"], help="images per request")
    p.add_argument("--family", choices=FAMILIES, default=None, help="model family (default: detected from the model)")
    p.add_argument("--visual-tokens", type=int, default=SERVE_VISUAL_TOKENS, help="the largest budget clients use")
    p.add_argument("--chat-template", type=Path, default=None, help="a chat template file (default: the model's)")
    p.add_argument("--served-model-name", default=None, help="the name clients send (default: the model)")
    p.add_argument("--python", default=sys.executable, help="interpreter of the vLLM environment")
    p.add_argument("--vllm-args", default="", help='more vLLM flags, e.g. --vllm-args="--enforce-eager"')
    p.add_argument(
        "--startup-timeout", type=float, default=default(serve, "startup_timeout"), help="seconds to wait for /health"
    )
    p.add_argument("--dry-run", action="store_true", help="print the vLLM command and exit")
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Build the vLLM command; print it (``--dry-run``) or run vLLM in the foreground."""
    if not args.video_root.expanduser().is_dir():
        raise UsageError(f"--video-root: {args.video_root} is not a folder; expected the folder holding the videos")
    try:
        budget = Budget(visual_tokens=args.visual_tokens)
    except ValidationError as exc:
        raise UsageError(validation_line(exc, {"visual_tokens": "--visual-tokens"})) from None
    cmd = build_vllm_command(
        args.model,
        video_root=args.video_root,
        host=args.host,
        port=args.port,
        data_parallel=args.data_parallel,
        max_model_len=args.max_model_len,
        limit_mm_per_prompt={"image": args.max_images, "video": args.max_videos},
        chat_template=args.chat_template,
        family=args.family,
        budget=budget,
        served_model_name=args.served_model_name,
        python=args.python,
        extra=shlex.split(args.vllm_args),
    )
    if args.dry_run:
        print(shlex.join(cmd))
        return 0
    try:
        return serve(cmd, host=args.host, port=args.port, startup_timeout=args.startup_timeout)
    except ServeError as e:
        raise ValueError(str(e)) from e  # the CLI prints one line for user-facing errors
