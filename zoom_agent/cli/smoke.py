"""Smoke sizes: ``ZOOM_AGENT_SMOKE=1`` shrinks the long commands to a few items.

CI runs every command of the README as written (tests/test_readme.py); with this variable
set, ``eval`` answers at most `SMOKE_QUESTIONS` questions (and the synthetic task writes
`SMOKE_VIDEOS` video), ``ask`` writes at most `SMOKE_TOKENS` tokens per model turn and
``train`` stops after `SMOKE_STEPS` rollout steps, so the whole
README runs in minutes. Each command says on stderr what it shrank; the numbers it prints
are then a smoke test's, not a result.
"""

from __future__ import annotations

import os
import sys

__all__ = ["SMOKE_ENV", "SMOKE_QUESTIONS", "SMOKE_STEPS", "SMOKE_TOKENS", "SMOKE_VIDEOS", "smaller", "smoke_mode"]

SMOKE_ENV = "ZOOM_AGENT_SMOKE"
SMOKE_QUESTIONS = 4  # ours: eval questions per run
SMOKE_VIDEOS = 1  # ours: videos of the synthetic task
SMOKE_STEPS = 2  # ours: train rollout steps
SMOKE_TOKENS = 32  # ours: ask's new tokens per model turn


def smoke_mode() -> bool:
    """True when ``ZOOM_AGENT_SMOKE`` is set to anything but empty, ``0`` or ``false``."""
    return os.environ.get(SMOKE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def smaller(command: str, what: str, value: int | None, cap: int) -> int:
    """``value`` capped at ``cap`` (``None`` means no limit), saying so on stderr.

    Args:
        command: the command, for the message (``eval``, ``train``).
        what: the flag or field capped (``--limit``, ``max_steps``).
        value: the value asked for; ``None`` for "all".
        cap: the smoke size.
    """
    new = cap if value is None else min(value, cap)
    if new != value:
        print(f"zoom-agent {command}: {SMOKE_ENV} is set: {what} {value if value is not None else 'all'} -> {new}",
              file=sys.stderr)  # fmt: skip
    return new
