"""The ``zoom-agent`` command: one module per sub-command.

``ask`` (`zoom_agent.cli.ask`), ``eval`` (`.eval`), ``train`` (`.train`), ``serve``
(`.serve`), ``mcp`` (`.mcp`), ``view`` (`.view`), ``demo`` (`.demo`), ``tiny-model`` (`.tiny_model`). Each module has
``register(subparsers)``, which adds its parser and sets ``run(args) -> exit status``.
Usage errors exit 2 with one line; a bad input found while running (a missing file, an
unknown model family, ...) exits 1 with one line; heavy libraries load only when a
command runs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from zoom_agent.cli import ask, demo, eval, mcp, serve, tiny_model, train, view
from zoom_agent.cli.options import UsageParser, command_usage

__all__ = ["build_parser", "main"]

COMMANDS = (ask, eval, train, serve, mcp, view, demo, tiny_model)


def build_parser() -> UsageParser:
    """The ``zoom-agent`` parser with every command registered."""
    parser = UsageParser(
        prog="zoom-agent",
        description="Answer questions about videos by zooming in on the evidence, evaluate, train and serve.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    parser.set_defaults(run=command_usage(parser, "ask, eval, train, serve, mcp, view, demo, tiny-model"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``zoom-agent ARGV``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError, KeyError) as exc:  # bad input: one line
        print(f"zoom-agent {args.command}: error: {exc}", file=sys.stderr)
        return 1
