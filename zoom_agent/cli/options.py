"""What the commands share: the parser that reports usage errors in one line, flags whose
defaults are read from where the project states them (pydantic fields, function
signatures), and the agent options of ``ask`` and ``eval``.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from pydantic import BaseModel

from zoom_agent.config import AgentConfig, Budget
from zoom_agent.geometry import FAMILIES


class DefaultsHelp(argparse.HelpFormatter):
    """Help that ends each option with its default, unless the help states it in words
    (``(default: ...)``), the option is required, it is an on/off switch (off), or the
    default is empty."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        switch = isinstance(action.const, bool) and action.nargs == 0
        if "(default" in text or action.required or not action.option_strings or switch:
            return text
        if action.default in (None, "", []) or action.default is argparse.SUPPRESS:
            return text
        return f"{text} (default: %(default)s)"


class ExamplesHelp(DefaultsHelp, argparse.RawDescriptionHelpFormatter):
    """`DefaultsHelp` that keeps the description and examples as written."""


class UsageParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr and exit status 2;
    ``--help`` shows each option's default (`DefaultsHelp`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", DefaultsHelp)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def field_default(model: type[BaseModel], name: str) -> Any:
    """The default of a pydantic field, the one place the number is stated."""
    return model.model_fields[name].get_default(call_default_factory=True)


def parameter_default(function: Callable[..., Any], name: str) -> Any:
    """The default of a function's keyword argument, the one place the value is stated."""
    return inspect.signature(function).parameters[name].default


def command_usage(parser: argparse.ArgumentParser, choices: str) -> Callable[[argparse.Namespace], int]:
    """A ``run`` for a command whose sub-command is missing: one usage line, status 2."""

    def run(_args: argparse.Namespace) -> int:
        print(f"{parser.prog}: error: choose one of {choices} (see {parser.prog} --help)", file=sys.stderr)
        return 2

    return run


def add_agent_options(p: argparse.ArgumentParser) -> None:
    """The agent's options (``ask`` and ``eval``); defaults are `AgentConfig`'s and `Budget`'s."""
    g = p.add_argument_group("agent")
    g.add_argument(
        "--dialect",
        choices=["tool", "zoomzero"],
        default=field_default(AgentConfig, "dialect"),
        help="answer layout: tool (zoom by a tool call) or zoomzero (the paper's one-shot layout)",
    )
    g.add_argument(
        "--visual-tokens",
        type=int,
        default=field_default(Budget, "visual_tokens"),
        help="visual-token budget of each view",
    )
    g.add_argument(
        "--zoom-rounds",
        type=int,
        default=field_default(AgentConfig, "max_zoom_rounds"),
        help="zoom rounds before the model must answer",
    )
    g.add_argument(
        "--global-context",
        action="store_true",
        default=field_default(AgentConfig, "global_context"),
        help="add low-resolution frames of the whole video to zoomed turns",
    )
    g.add_argument(
        "--family",
        choices=FAMILIES,
        default=None,
        help="family of a served model whose name does not tell it (default: detected from the server)",
    )


def agent_config(args: argparse.Namespace) -> AgentConfig:
    """The `AgentConfig` the agent options describe (every other field at its default)."""
    return AgentConfig(
        dialect=args.dialect,
        budget=Budget(visual_tokens=args.visual_tokens),
        max_zoom_rounds=args.zoom_rounds,
        global_context=args.global_context,
    )
