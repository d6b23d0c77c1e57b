"""``zoom-agent mcp``: serve ``temporal_zoom`` (and ``ask_video``) over MCP.

The server and its tools: `zoom_agent.server.mcp`; the bounds of one call:
`zoom_agent.server.limits.ServerLimits` (the flags' defaults are its fields').
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from zoom_agent.cli.errors import UsageError
from zoom_agent.cli.options import check_model_spec, field_default
from zoom_agent.server.limits import LOOPBACK, ServerLimits


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``mcp`` to the ``zoom-agent`` sub-commands."""
    p = subparsers.add_parser(
        "mcp",
        help="serve temporal_zoom (and ask_video) over MCP: stdio or streamable HTTP",
        description=(
            "Serve the temporal zoom tool (frames as MCP images) and, with --model, the whole agent "
            "(ask_video) over MCP. Only videos under --video-root are read; HTTP binds loopback by default."
        ),
    )
    p.add_argument("--video-root", type=Path, required=True, help="the only folder whose videos are served")
    p.add_argument(
        "--model", default=None, help="model for ask_video, as for ask (default: none, only the zoom tool is served)"
    )
    p.add_argument("--transport", choices=["stdio", "http"], default="stdio", help="stdio, or streamable HTTP")
    p.add_argument("--host", default=LOOPBACK, help="HTTP listen address (loopback: this machine only)")
    p.add_argument("--port", type=int, default=8765, help="HTTP listen port")
    for flag, help_ in (
        ("max_zoom_frames", "frames one zoom may return"),
        ("max_zoom_rounds", "zoom rounds one ask_video may take"),
        ("max_tokens", "response tokens one model turn may generate"),
        ("max_concurrent", "calls served at once"),
    ):
        p.add_argument(f"--{flag.replace('_', '-')}", type=int, default=field_default(ServerLimits, flag), help=help_)
    p.set_defaults(run=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Serve until the client disconnects (stdio) or Ctrl-C (HTTP)."""
    from zoom_agent.server.mcp import build_mcp_server

    if not args.video_root.is_dir():
        raise UsageError(f"--video-root {args.video_root} is not a folder: expected the folder of the videos to serve")
    if args.model is not None:
        check_model_spec(args.model, oracle=False)
    limits = ServerLimits(
        video_root=args.video_root,
        max_zoom_frames=args.max_zoom_frames,
        max_zoom_rounds=args.max_zoom_rounds,
        max_tokens=args.max_tokens,
        max_concurrent=args.max_concurrent,
    )
    server = build_mcp_server(limits, args.model, host=args.host, port=args.port)
    server.run("streamable-http" if args.transport == "http" else "stdio")
    return 0
