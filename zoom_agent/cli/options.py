"""What the commands share: the parser that reports usage errors in one line, flags whose
defaults are read from where the project states them (pydantic fields, function
signatures), and the agent options of ``ask`` and ``eval``.
"""

from __future__ import annotations

import argparse
import inspect
import math
import sys
import typing
from collections.abc import Callable
from typing import Any, NoReturn

from pydantic import BaseModel, ValidationError

from zoom_agent.cli.errors import UsageError, unknown_key, validation_line
from zoom_agent.config import AgentConfig
from zoom_agent.geometry import FAMILIES
from zoom_agent.presets import PRESET_NAMES, preset


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


def positive_int(text: str) -> int:
    """An argparse type for counts that must be at least 1 (``--num-videos``): 0 and negative
    numbers are usage errors, never read as "unset"."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def command_usage(parser: argparse.ArgumentParser, choices: str) -> Callable[[argparse.Namespace], int]:
    """A ``run`` for a command whose sub-command is missing: one usage line, status 2."""

    def run(_args: argparse.Namespace) -> int:
        print(f"{parser.prog}: error: choose one of {choices} (see {parser.prog} --help)", file=sys.stderr)
        return 2

    return run


def add_agent_options(p: argparse.ArgumentParser) -> None:
    """The agent's options (``ask`` and ``eval``): a `zoom_agent.presets` preset, then
    flags that override single fields of it. A flag left out keeps the preset's value; the
    ``ours`` preset's values are `AgentConfig`'s and `Budget`'s defaults, shown in the help."""
    ours = preset("ours").agent
    g = p.add_argument_group("agent")
    g.add_argument(
        "--preset",
        choices=PRESET_NAMES,
        default="ours",
        help="named configuration: ours (this project's defaults) or zoomzero (the authors' released code, "
        "docs/method.md §7); the flags below override single fields of it",
    )

    def flag(name: str, help_text: str, value: Any, *, unset: str = "none", **kwargs: Any) -> None:
        shown = unset if value is None else value  # ``unset``: what a None value means
        g.add_argument(name, default=None, help=f"{help_text} (default: the preset's; ours: {shown})", **kwargs)

    flag(
        "--dialect",
        "answer layout: tool (zoom by a tool call) or zoomzero (the paper's one-shot layout)",
        ours.dialect,
        choices=["tool", "zoomzero"],
    )
    flag("--visual-tokens", "visual-token budget of each view", ours.budget.visual_tokens, type=int)
    flag("--fps", "frames per second sampled in a view", ours.budget.fps, type=float)
    flag("--min-frames", "fewest frames of a view", ours.budget.min_frames, type=int)
    flag("--max-frames", "most frames of a coarse view", ours.budget.max_frames, type=int)
    flag("--zoom-max-frames", "most frames of a zoomed view", ours.budget.zoom_max_frames, type=int)
    flag("--zoom-rounds", "zoom rounds before the model must answer", ours.max_zoom_rounds, type=int)
    flag("--max-tokens", "response tokens one model turn may generate", ours.max_tokens, type=int)
    flag("--zoom-pad", "seconds added around each zoom window", ours.zoom_pad, type=float)
    flag(
        "--fine-pass",
        "fine turn: continue the conversation or a fresh pooled request",
        ours.fine_pass,
        choices=["continue", "fresh"],
    )
    flag("--confidence", "how answer and span confidences are read", ours.confidence, choices=["sampled", "official"])
    flag("--prompts", "prompt structure", ours.prompts, choices=["ours", "official"])
    flag(
        "--prompt-file",
        "a prompt-template file (TOML) replacing the built-in wording",
        ours.prompt_file,
        unset="the built-in wording",
    )
    flag("--divide", "divide-and-conquer variant for long videos", ours.divide, choices=["ours", "official"])
    flag(
        "--long-video-tokens",
        "visual-token budget of divide and conquer",
        ours.long_video_tokens,
        unset="--visual-tokens",
        type=int,
    )
    flag(
        "--long-video-fps",
        "frames per second sampled by divide and conquer",
        ours.long_video_fps,
        unset="--fps",
        type=float,
    )
    flag(
        "--request-token-cap",
        "most visual tokens one model request may hold",
        ours.request_token_cap,
        unset="no cap",
        type=int,
    )
    g.add_argument(
        "--global-context",
        action="store_true",
        default=None,
        help="add low-resolution frames of the whole video to zoomed turns",
    )
    g.add_argument(
        "--family",
        choices=FAMILIES,
        default=None,
        help="family of a served model whose name does not tell it (default: detected from the server)",
    )


# flag dest -> AgentConfig field; _BUDGET_FLAGS: flag dest -> Budget field.
_AGENT_FLAGS = {
    "dialect": "dialect",
    "zoom_rounds": "max_zoom_rounds",
    "max_tokens": "max_tokens",
    "zoom_pad": "zoom_pad",
    "fine_pass": "fine_pass",
    "confidence": "confidence",
    "prompts": "prompts",
    "prompt_file": "prompt_file",
    "divide": "divide",
    "long_video_tokens": "long_video_tokens",
    "long_video_fps": "long_video_fps",
    "request_token_cap": "request_token_cap",
    "global_context": "global_context",
}
_BUDGET_FLAGS = ("visual_tokens", "fps", "min_frames", "max_frames", "zoom_max_frames")


# AgentConfig field path -> the flag that sets it, for error messages.
_FLAG_OF = {field: f"--{dest.replace('_', '-')}" for dest, field in _AGENT_FLAGS.items()} | {
    f"budget.{dest}": f"--{dest.replace('_', '-')}" for dest in _BUDGET_FLAGS
}


def agent_config(args: argparse.Namespace) -> AgentConfig:
    """The `AgentConfig` the agent options describe: the preset, with the flags given on top.

    Raises:
        UsageError: the combination is invalid (the message names the flag), or
            ``--visual-tokens`` cannot pay for one frame.
    """
    base = preset(args.preset).agent
    budget = {name: getattr(args, name) for name in _BUDGET_FLAGS if getattr(args, name) is not None}
    fields = {field: getattr(args, dest) for dest, field in _AGENT_FLAGS.items() if getattr(args, dest) is not None}
    data = base.model_dump()
    data["budget"] = base.budget.model_dump() | budget
    try:
        config = AgentConfig.model_validate(data | fields)
    except ValidationError as exc:
        raise UsageError(validation_line(exc, _FLAG_OF)) from None
    floor = math.ceil(config.budget.min_frame_tokens)
    if config.budget.visual_tokens < floor:
        raise UsageError(
            f"--visual-tokens {config.budget.visual_tokens} is too small for one frame: a frame at the smallest "
            f"size takes {config.budget.min_frame_tokens:g} tokens (Budget.min_frame_tokens); give at least {floor}"
        )
    return config


def dotted_fields(model: type[BaseModel], prefix: str = "") -> dict[str, str]:
    """Every field of a pydantic model and of its nested models by dotted path, mapped to
    its kind: ``"model"`` (has fields below it), ``"mapping"`` (takes any key below it) or
    ``"value"``."""
    out: dict[str, str] = {}
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        kinds = [field.annotation, *typing.get_args(field.annotation)]
        nested = next((k for k in kinds if isinstance(k, type) and issubclass(k, BaseModel)), None)
        if nested is not None:
            out[path] = "model"
            out |= dotted_fields(nested, f"{path}.")
        else:
            out[path] = "mapping" if any(k is dict or typing.get_origin(k) is dict for k in kinds) else "value"
    return out


def check_dotted_keys(keys: list[str], model: type[BaseModel], flag: str) -> None:
    """Refuse a dotted key that names no field of ``model``, naming the closest one.

    Raises:
        UsageError: e.g. ``--override: unknown key 'trainer.lrr': did you mean 'optim.lr'?``.
    """
    fields = dotted_fields(model)
    settable = [path for path, kind in fields.items() if kind != "model"]
    for key in keys:
        parts = key.split(".")
        for i in range(1, len(parts) + 1):
            kind = fields.get(".".join(parts[:i]))
            if kind is None or (kind == "value" and i < len(parts)):
                raise unknown_key(key, settable, flag)
            if kind == "mapping":
                break


def check_model_spec(spec: str, *, oracle: bool) -> None:
    """Refuse a ``--model`` of no known form before any work starts (nothing is loaded).

    Args:
        spec: the flag's value.
        oracle: whether ``oracle[:NOISE]`` (a pipeline check answering from a task's ground
            truth) makes sense for the command.

    Raises:
        UsageError: the message says which forms ``--model`` takes.
    """
    from zoom_agent.models import MODEL_FORMS, model_spec_problem

    if spec == "oracle" or spec.startswith("oracle:"):
        if oracle:
            return
        raise UsageError(
            f"--model {spec}: the oracle answers from a task's ground truth (a pipeline check), so only "
            f"'zoom-agent eval' takes it; here give {MODEL_FORMS}"
        )
    problem = model_spec_problem(spec)
    if problem is not None:
        forms = "; or oracle[:NOISE] for a pipeline check" if oracle else ""
        raise UsageError(f"--model {problem}{forms}")
