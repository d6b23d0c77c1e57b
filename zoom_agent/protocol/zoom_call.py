"""The ``temporal_zoom`` call on the wire: its name, its JSON schema and its argument rule.

This is the one home of the zoom call's contract. The parser (format score), the prompt
(the schema the model reads), the zoom tool (`zoom_agent.tools.TemporalZoom`) and the
rewards read a call through it, so they agree on every case (``tests/test_zoom_contract.py``
checks them side by side):

- The name is `ZOOM_TOOL_NAME`; the arguments are exactly ``start`` and ``end``. A missing
  or an extra key makes the call invalid.
- Each is a JSON number of seconds: not a string, not a boolean, and finite (NaN, infinity
  and integers too large for a float are invalid).
- ``start >= 0``. Times are seconds from the start of the whole video, so a negative start
  means the model misread the timeline: the call is invalid (format score 0.5) and the tool
  says so rather than silently clamping. Glue spans and ``<time>`` tags follow the same
  rule (`check_window`).
- ``start <= end``. A start after the end is invalid. ``start == end`` is valid: it names a
  moment, and the tool widens it to its minimum window around that moment, exactly as it
  widens any window shorter than that minimum.
- An ``end`` past the video's end is valid on the wire: the duration is not known here.

What needs the video stays with the tool: clamping the window to the duration, its minimum
width, padding (`zoom_agent.spans.pad`), and refusing a window that starts at or after the
video's end.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from zoom_agent.protocol.scan import Interval, check_window

ZOOM_TOOL_NAME: Final = "temporal_zoom"

ZOOM_TOOL_SCHEMA: Final[dict[str, Any]] = {
    "type": "function",
    "function": {
        "name": ZOOM_TOOL_NAME,
        "description": (
            "Look closer at one time window of the video: returns the frames between start "
            "and end at a higher resolution."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "start": {"type": "number", "minimum": 0, "description": "window start, seconds from the video start"},
                "end": {"type": "number", "minimum": 0, "description": "window end, seconds from the video start"},
            },
            "required": ["start", "end"],
            "additionalProperties": False,
        },
    },
}
"""The tool as the prompt shows it (OpenAI function format); its ``parameters`` are a JSON
schema that any tool-calling framework can take as the argument schema."""

ZOOM_ARGUMENTS: Final[tuple[str, ...]] = tuple(ZOOM_TOOL_SCHEMA["function"]["parameters"]["required"])
"""The argument names, in order: ``("start", "end")``."""


def _shown(value: object) -> str:
    """A short rendering of a bad value for an error text (JSON where it can be)."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text[:40]


def check_zoom_arguments(arguments: object) -> tuple[Interval | None, str | None]:
    """Validate the arguments of one ``temporal_zoom`` call (see the module notes).

    Args:
        arguments: the call's arguments as written (a JSON object, or anything else).

    Returns:
        ``((start, end), None)`` for a valid window, else ``(None, reason)``; the reason is
        text the model can be shown.

    Example:
        >>> check_zoom_arguments({"start": 5, "end": 5})
        ((5.0, 5.0), None)
        >>> check_zoom_arguments({"start": -1, "end": 5})
        (None, 'start -1 is negative')
    """
    names = " and ".join(ZOOM_ARGUMENTS)
    if not isinstance(arguments, Mapping):
        return None, f"arguments must be a JSON object with {names} in seconds, got {_shown(arguments)}"
    missing = [k for k in ZOOM_ARGUMENTS if k not in arguments]
    if missing:
        return None, f"missing argument(s): {', '.join(missing)}; expected {names} in seconds"
    extra = sorted(str(k) for k in arguments if k not in ZOOM_ARGUMENTS)
    if extra:
        return None, f"unexpected argument(s): {', '.join(extra)[:200]}; {ZOOM_TOOL_NAME} takes {names}"
    values: list[float] = []
    for key in ZOOM_ARGUMENTS:
        value = arguments[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, f"{key} must be a number of seconds, got {_shown(value)}"
        try:
            values.append(float(value))
        except OverflowError:  # a JSON integer with hundreds of digits
            return None, f"{key} is not finite"
    start, end = values
    error = check_window(start, end)
    return (None, error) if error else ((start, end), None)
