"""Bounded readers under the parser: tag pairing, numbers, time pairs, glue lists, letters.

Internal to `zoom_agent.protocol`. Model output is data (docs/quality.md): tags are found
with ``str.find``, numbers with bounded regexes (no nested quantifiers, so no catastrophic
backtracking), and at most `MAX_SPANS` glue spans are read.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from zoom_agent.types import OPTION_LETTERS

Interval = tuple[float, float]

MAX_PARSE_CHARS = 200_000  # ours: a 512-token reply is ~2 KB; anything past 200 KB is garbage
MAX_SPANS = 64  # ours: more glue spans than this are cut, with a note
MAX_ANSWER_CHARS = 1_000  # ours: a free-text answer (open-ended question) is kept up to this length
MAX_TOOL_CALL_CHARS = 8_192  # ours: a zoom call is ~80 chars; bounds json.loads work

# Bounded number grammar: no nested quantifiers, so no catastrophic backtracking.
_NUMBER = re.compile(r"[-+]?(?:\d{1,20}(?:\.\d{0,20})?|\.\d{1,20})(?:[eE][-+]?\d{1,4})?")
_NON_FINITE = {"nan", "inf", "infinity"}
_GLUE_PAIR = re.compile(r"\s{0,64}[(\[]([^,()\[\]]{0,48}),([^,()\[\]]{0,48})[)\]]\s{0,64}(,?)")
_TIME_SPLIT = re.compile(r",|\bto\b|(?<=[\d.s])\s{0,8}[-–]")
_UNIT = re.compile(r"\s{0,8}(?:s|sec|secs|seconds)$")
_LETTER_FORM = re.compile(r"\s{0,64}\(?([A-Z])\)?\.?\s{0,64}")


@dataclass(frozen=True)
class Element:
    """One ``<name>...</name>`` pair: outer offsets (tags included) and inner offsets."""

    name: str
    start: int
    end: int
    inner_start: int
    inner_end: int


def find_elements(text: str, name: str, notes: list[str]) -> tuple[list[Element], int | None]:
    """Pair ``<name>`` with the next ``</name>``; returns elements and an unclosed open's offset."""
    open_tag, close_tag = f"<{name}>", f"</{name}>"
    found: list[Element] = []
    pos, unclosed = 0, None
    while (start := text.find(open_tag, pos)) >= 0:
        close = text.find(close_tag, start + len(open_tag))
        if close < 0:
            notes.append(f"<{name}> at char {start} is never closed")
            unclosed = start
            break
        reopened = text.rfind(open_tag, start + len(open_tag), close)
        if reopened >= 0:  # nested or repeated open: keep the innermost pair
            notes.append(f"<{name}> at char {start} is opened again before it closes")
            start = reopened
        found.append(Element(name, start, close + len(close_tag), start + len(open_tag), close))
        pos = close + len(close_tag)
    stray = text.count(close_tag) - len(found)
    if stray > 0:
        notes.append(f"{stray} stray </{name}> tag(s)")
    return found, unclosed


def _number(token: str) -> tuple[float | None, str | None]:
    """A finite float from a bounded numeric token, else an error naming the token."""
    tok = token.strip()
    if len(tok) <= 48 and _NUMBER.fullmatch(tok):
        value = float(tok)
        return (value, None) if math.isfinite(value) else (None, f"{tok!r} is not finite")
    if tok.lstrip("+-").lower() in _NON_FINITE:
        return None, f"{tok!r} is not finite"
    return None, f"{tok[:24]!r} is not a number"


def check_window(start: float, end: float) -> str | None:
    """Why ``(start, end)`` is not a time window of a reply, or None when it is one.

    The one rule for every window a model writes (zoom arguments, glue spans, time tags):
    finite seconds with ``0 <= start <= end``; ``start == end`` is a moment, and valid.
    """
    for name, value in (("start", start), ("end", end)):
        if not math.isfinite(value):
            return f"{name} {value} is not finite"
    if start < 0:
        return f"start {start:g} is negative"
    if start > end:
        return f"start {start:g} is after end {end:g}"
    return None


def check_pair(s_tok: str, e_tok: str) -> tuple[Interval | None, str | None]:
    """A ``(start, end)`` window in seconds from two tokens, else an error the model can be shown."""
    start, err_s = _number(s_tok)
    end, err_e = _number(e_tok)
    if start is None or end is None:
        return None, err_s or err_e
    error = check_window(start, end)
    return (None, error) if error else ((start, end), None)


def parse_glue(content: str, notes: list[str]) -> tuple[list[Interval], list[str], bool]:
    """Read ``[(s, e), ...]`` (or one bare pair); returns valid spans, errors, well-formedness."""
    body = content.strip()
    if body.startswith("[") and body.endswith("]") and not _GLUE_PAIR.fullmatch(body):
        body = body[1:-1]
    spans: list[Interval] = []
    errors: list[str] = []
    pos, count, comma = 0, 0, ","
    while comma and (m := _GLUE_PAIR.match(body, pos)):
        count += 1
        if count > MAX_SPANS:
            notes.append(f"glue holds more than {MAX_SPANS} spans; only the first {MAX_SPANS} were read")
            return spans, errors, True
        span, err = check_pair(m.group(1), m.group(2))
        if span is None:
            errors.append(f"glue span {count}: {err}")
        else:
            spans.append(span)
        pos, comma = m.end(), m.group(3)
    well_formed = count > 0 and not body[pos:].strip()
    if not well_formed:
        errors.append("glue must hold a list of (start, end) pairs in seconds, e.g. [(5.2, 10.4)]")
    return spans, errors, well_formed


def parse_time(content: str) -> tuple[Interval | None, str | None]:
    """Read one ``<time>`` tag: ``(s, e)``, ``[s, e]``, ``s - e s``, ``s to e``."""
    inner = content.strip()
    if len(inner) > 120:
        return None, "time tag too long; expected (start, end)"
    if inner[:1] in "([" and inner[-1:] in ")]":
        inner = inner[1:-1]
    parts = _TIME_SPLIT.split(inner, maxsplit=2)
    if len(parts) != 2:
        return None, f"time tag {content.strip()[:40]!r} is not (start, end)"
    return check_pair(_UNIT.sub("", parts[0].strip()), _UNIT.sub("", parts[1].strip()))


def option_letter(content: str) -> str | None:
    """The letter of a strict answer body: ``B``, ``(B)``, ``B.``, blanks around."""
    if len(content) > 256:
        return None
    m = _LETTER_FORM.fullmatch(content)
    return m.group(1) if m else None


def check_letters(letters: str) -> None:
    """Raise ValueError unless ``letters`` is a non-empty run of option letters (caller error)."""
    if not letters or any(c not in OPTION_LETTERS for c in letters):
        raise ValueError(f"letters must be uppercase option letters such as 'ABCDE', got {letters!r}")


def strict_letter(text: str, elements: Sequence[Element], letters: str) -> str | None:
    """The one letter all ``<answer>`` bodies agree on, if it is in ``letters``; else None."""
    found = {option_letter(text[e.inner_start : e.inner_end]) for e in elements}
    if len(found) != 1:
        return None
    (letter,) = found
    return letter if letter is not None and letter in letters else None
