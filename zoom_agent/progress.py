"""Feedback on long work: a tqdm bar on a terminal, plain-text lines elsewhere, stage lines.

- `progress_bar` counts items (questions, videos): a tqdm bar when stderr is a terminal;
  when it is not (a log file, CI, a pipe), a plain line every tenth of the work or every
  `PLAIN_INTERVAL_S` seconds, and a last one at the end, such as
  ``eval: 12/50 done, 1 errors, 3.2 s/item``.
- `stage` says which step of a task without a count has begun (``loading model ./tiny``).

Both write to stderr, so stdout stays the command's result (``--json`` output, a pipe).
``ZOOM_AGENT_PROGRESS`` chooses: ``bar``, ``plain`` or ``off`` (default: ``bar`` on a
terminal, else ``plain``).
"""

from __future__ import annotations

import math
import os
import sys
import time
from types import TracebackType
from typing import Any, Literal, TextIO

ENV_VAR = "ZOOM_AGENT_PROGRESS"
Mode = Literal["bar", "plain", "off"]
MODES: tuple[Mode, ...] = ("bar", "plain", "off")
PLAIN_INTERVAL_S = 10.0
"""The longest a plain-text progress report stays silent between items."""


def progress_mode() -> Mode:
    """How feedback is shown: ``ZOOM_AGENT_PROGRESS``, else a bar on a terminal, else plain.

    Raises:
        ValueError: ``ZOOM_AGENT_PROGRESS`` holds another value.
    """
    chosen = os.environ.get(ENV_VAR, "").strip().lower()
    if chosen:
        if chosen not in MODES:
            raise ValueError(f"{ENV_VAR}={chosen!r}: expected one of {', '.join(MODES)}")
        return chosen  # type: ignore[return-value]
    return "bar" if sys.stderr.isatty() else "plain"


def stage(text: str) -> None:
    """Say on stderr that a step has begun (one line; nothing when progress is off)."""
    if progress_mode() != "off":
        print(text, file=sys.stderr, flush=True)


class PlainProgress:
    """The plain-text form of a tqdm bar (`update`, `set_postfix`, `close`): a line every
    ``every`` items or `PLAIN_INTERVAL_S` seconds, and one at the end."""

    def __init__(self, total: int, *, desc: str, unit: str, initial: int = 0, file: TextIO | None = None) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.n = initial
        self._initial = initial
        self._every = max(1, math.ceil((total - initial) / 10))
        self._file = file
        self._postfix: dict[str, Any] = {}
        self._start = self._last = time.monotonic()
        self._shown = initial

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if self.n - self._shown >= self._every or now - self._last >= PLAIN_INTERVAL_S:
            self._show(now)

    def set_postfix(self, refresh: bool = True, **counts: Any) -> None:
        self._postfix = counts

    def close(self) -> None:
        if self.n != self._shown:
            self._show(time.monotonic())

    def line(self, now: float) -> str:
        """``desc: n/total done[, k name...][, s/unit]``."""
        parts = [f"{self.desc}: {self.n}/{self.total} done"]
        parts += [f"{v} {k}" for k, v in self._postfix.items() if v]
        ran = self.n - self._initial
        if ran:
            parts.append(f"{(now - self._start) / ran:.1f} s/{self.unit}")
        return ", ".join(parts)

    def _show(self, now: float) -> None:
        print(self.line(now), file=self._file or sys.stderr, flush=True)
        self._shown, self._last = self.n, now

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def progress_bar(total: int, *, desc: str, unit: str = "item", initial: int = 0, enabled: bool = True) -> Any:
    """A progress report over ``total`` items on stderr: a tqdm bar (rate, ETA) on a
    terminal, `PlainProgress` lines elsewhere, nothing when ``enabled`` is false or the
    mode is ``off`` (`progress_mode`). Use it as tqdm: ``update``, ``set_postfix``, ``close``
    or a ``with`` block."""
    mode = progress_mode() if enabled else "off"
    if mode == "plain":
        return PlainProgress(total, desc=desc, unit=unit, initial=initial)
    from tqdm.auto import tqdm

    return tqdm(
        total=total, initial=initial, unit=unit, desc=desc, dynamic_ncols=True, disable=mode == "off", file=sys.stderr
    )
