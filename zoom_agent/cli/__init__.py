"""The ``zoom-agent`` command: one module per sub-command.

``ask`` (`zoom_agent.cli.ask`), ``eval`` (`.eval`), ``train`` (`.train`), ``serve``
(`.serve`), ``mcp`` (`.mcp`), ``view`` (`.view`), ``demo`` (`.demo`), ``tiny-model`` (`.tiny_model`),
``synthetic-video`` (`.synthetic_video`). Each module has
``register(subparsers)``, which adds its parser and sets ``run(args) -> exit status``.
Expected errors are one line on stderr (`zoom_agent.cli.errors`): usage errors, bad flag
values and inputs checked before any work starts (a missing video or ``--video-root``, a
``--model`` of no known form) exit 2; a bad input found while running (a video that does not
decode, model weights that do not load, ...) exits 1; a closed stdout (``| head -1``) exits
quietly. Every command checks its inputs before loading a model, and shows progress on
steps that take more than a moment (`zoom_agent.progress`). Heavy libraries load only when a
command runs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from zoom_agent.cli import ask, demo, eval, mcp, serve, synthetic_video, tiny_model, train, view
from zoom_agent.cli.errors import ERRORS, quiet_broken_pipe, report
from zoom_agent.cli.options import UsageParser, command_usage

__all__ = ["build_parser", "main"]

COMMANDS = (ask, eval, train, serve, mcp, view, demo, tiny_model, synthetic_video)


def build_parser() -> UsageParser:
    """The ``zoom-agent`` parser with every command registered."""
    parser = UsageParser(
        prog="zoom-agent",
        description="Answer questions about videos by zooming in on the evidence, evaluate, train and serve.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    parser.set_defaults(
        run=command_usage(parser, "ask, eval, train, serve, mcp, view, demo, tiny-model, synthetic-video")
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``zoom-agent ARGV``; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        try:
            status = int(args.run(args) or 0)
            if not sys.stdout.closed:  # `mcp` over stdio closes it when the client leaves
                sys.stdout.flush()  # a reader that left shows here, not in the interpreter's last flush
            return status
        except BrokenPipeError:
            raise
        except ERRORS as exc:  # expected: one line (zoom_agent.cli.errors)
            return report(f"zoom-agent {args.command}", exc)
    except BrokenPipeError:  # `zoom-agent ... | head -1`: the reader left; what was written stays
        return quiet_broken_pipe()
