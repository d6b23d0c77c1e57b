"""How ``zoom-agent`` reports an expected error: one line on stderr and an exit status.

`main` (`zoom_agent.cli`) sends every expected error through `report`:

- `UsageError`: a flag or input refused before any work starts (a bad value, a missing
  video or folder, a ``--model`` of no known form, an existing output folder): status 2.
- A bad input or failure found while running (`ERRORS`: a video that does not decode, a
  model folder whose weights do not load, a server that refuses, ...): status 1.
- A pydantic ``ValidationError``: its errors on one line (`validation_line`), not a dump.
- `BrokenPipeError` (``zoom-agent eval ... | head -1``): the reader left; `quiet_broken_pipe`
  exits without a traceback, as command-line tools do (results already written stay).

Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Iterable, Mapping

from pydantic import ValidationError

from zoom_agent.models.base import ModelError

USAGE_STATUS = 2
ERROR_STATUS = 1
BROKEN_PIPE_STATUS = 141  # 128 + SIGPIPE, what a shell reports for a tool its reader left


class UsageError(ValueError):
    """A flag or input the command refuses before doing any work (exit status 2).

    The message names the input or flag, what it got and what was expected."""


ERRORS: tuple[type[BaseException], ...] = (
    ValueError,  # includes UsageError, ValidationError, VideoError, DatasetFormatError
    OSError,  # FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError
    KeyError,
    ModelError,
)
"""What `main` reports in one line; every other exception is a bug and keeps its traceback."""


def did_you_mean(key: str, known: Iterable[str]) -> str | None:
    """The known key closest to ``key`` (``difflib``), or None when nothing is close.

    Dotted keys are compared whole, then by their last part, so ``trainer.lrr`` finds
    ``optim.lr``.

    >>> did_you_mean("optim.lrr", ["optim.lr", "optim.warmup", "seed"])
    'optim.lr'
    >>> did_you_mean("trainer.lrr", ["optim.lr", "seed"])
    'optim.lr'
    """
    known = list(known)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return close[0]
    last = key.rsplit(".", 1)[-1]
    by_last = [k for k in known if difflib.get_close_matches(last, [k.rsplit(".", 1)[-1]], n=1, cutoff=0.6)]
    return max(by_last, key=lambda k: difflib.SequenceMatcher(None, key, k).ratio(), default=None)


def unknown_key(key: str, known: Iterable[str], where: str) -> UsageError:
    """The error for a key that names no field: ``unknown key 'x': did you mean 'y'?``."""
    known = sorted(known)
    guess = did_you_mean(key, known)
    hint = f"did you mean {guess!r}?" if guess else f"expected one of {', '.join(known)}"
    return UsageError(f"{where}: unknown key {key!r}: {hint}")


def validation_line(exc: ValidationError, names: Mapping[str, str] | None = None) -> str:
    """A pydantic ``ValidationError`` on one line: ``where: what (got value)`` per error.

    Args:
        exc: the error.
        names: dotted field path -> what the user typed for it (e.g. ``budget.visual_tokens``
            -> ``--visual-tokens``); other fields are shown by their path.
    """
    parts = []
    for error in exc.errors():
        path = ".".join(str(p) for p in error["loc"])
        where = (names or {}).get(path, path) or exc.title
        message = str(error["msg"]).removeprefix("Value error, ")
        shown = error.get("input")
        got = "" if error["type"] == "extra_forbidden" or isinstance(shown, dict) else f" (got {shown!r})"
        parts.append(f"{where}: {message}{got}")
    return "; ".join(parts)


def one_line(exc: BaseException) -> str:
    """The message of an expected error as one line."""
    if isinstance(exc, ValidationError):
        return validation_line(exc)
    wrapped = exc.__cause__ or exc.__context__  # e.g. load_recipe's "recipe ... is invalid:" + the dump
    if isinstance(wrapped, ValidationError) and "validation error" in str(exc):
        return f"{str(exc).split(chr(10), 1)[0].rstrip(': ')}: {validation_line(wrapped)}"
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(text.split()) or type(exc).__name__


def report(command: str, exc: BaseException) -> int:
    """Print ``command: error: <one line>`` on stderr; returns the exit status."""
    status = USAGE_STATUS if isinstance(exc, UsageError) else ERROR_STATUS
    hint = f" (see {command} --help)" if status == USAGE_STATUS else ""
    print(f"{command}: error: {one_line(exc)}{hint}", file=sys.stderr)
    return status


def quiet_broken_pipe() -> int:
    """After the reader of stdout left: point stdout at /dev/null (so the interpreter's last
    flush does not print a second error) and return `BROKEN_PIPE_STATUS`."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)
    return BROKEN_PIPE_STATUS
