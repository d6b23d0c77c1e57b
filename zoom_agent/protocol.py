"""Prompt templates and the response parser for the two output dialects (DESIGN.md §4).

Dialects:

- ``tool`` (default): a turn either calls the zoom tool, Hermes style, one or more times
  (several calls in one turn = parallel zoom)::

      <think> ... <time>(5.2, 10.4)</time> ... </think>
      <tool_call>{"name": "temporal_zoom", "arguments": {"start": 5.2, "end": 10.4}}</tool_call>

  or answers::

      <think> ... </think>
      <answer>B</answer>
      <glue>[(5.2, 10.4), (20.0, 23.5)]</glue>

  ``<think>`` is optional in both forms.
- ``zoomzero``: the paper's one-shot layout (docs/METHOD.md §2): ``<think>`` (required) with
  ``<time>`` tags inside, then ``<answer>``, then ``<glue>``; the graph zooms on the glue spans.

Regions: every `Region` covers a whole tagged element, opening tag through closing tag
(``<answer>B</answer>``, ``<glue>[...]</glue>``, ``<time>(1, 2)</time>``, one
``<tool_call>...</tool_call>``, one ``<think>...</think>``). BPE tokenizers merge tag
characters with their content (``>B<``, ``>(5``), so a token mask built from these offsets,
by overlap or by containment, always includes the content tokens; the paper's fixed
5-token answer window likewise covered the tag tokens. An unclosed ``<think>`` (a reply cut
at the token limit) still yields a reasoning region up to the end of the text.

Safety (docs/QUALITY.md): model output is data. `parse` never raises and never evaluates:
only the first `MAX_PARSE_CHARS` characters are read, tags are found with ``str.find``,
numbers with bounded regexes, tool calls with ``json.loads`` (at most
`MAX_TOOL_CALL_CHARS` each), and at most `MAX_SPANS` glue spans are read.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from zoom_agent.types import OPTION_LETTERS, ClipRef

Dialect = Literal["tool", "zoomzero"]
RegionKind = Literal["reasoning", "time", "tool_call", "answer", "glue"]
Interval = tuple[float, float]

MAX_PARSE_CHARS = 200_000  # ours: a 512-token reply is ~2 KB; anything past 200 KB is garbage
MAX_SPANS = 64  # ours: more glue spans than this are cut, with a note
MAX_TOOL_CALL_CHARS = 8_192  # ours: a zoom call is ~80 chars; bounds json.loads work
ZOOM_TOOL_NAME = "temporal_zoom"
SPAN_KINDS: tuple[RegionKind, ...] = ("time", "tool_call", "glue")
_TAGS = ("think", "time", "tool_call", "answer", "glue")

# Bounded number grammar: no nested quantifiers, so no catastrophic backtracking.
_NUMBER = re.compile(r"[-+]?(?:\d{1,20}(?:\.\d{0,20})?|\.\d{1,20})(?:[eE][-+]?\d{1,4})?")
_NON_FINITE = {"nan", "inf", "infinity"}
_GLUE_PAIR = re.compile(r"\s{0,64}[(\[]([^,()\[\]]{0,48}),([^,()\[\]]{0,48})[)\]]\s{0,64}(,?)")
_TIME_SPLIT = re.compile(r",|\bto\b|(?<=[\d.s])\s{0,8}[-–]")
_UNIT = re.compile(r"\s{0,8}(?:s|sec|secs|seconds)$")
_LETTER_FORM = re.compile(r"\s{0,64}\(?([A-Z])\)?\.?\s{0,64}")


@dataclass(frozen=True)
class Region:
    """A parsed element of a response: ``text == source[start:end]`` (tags included)."""

    kind: RegionKind
    start: int
    end: int
    text: str

    @property
    def content(self) -> str:
        """The text between the opening and the closing tag (either may be missing)."""
        tag = "think" if self.kind == "reasoning" else self.kind
        inner = self.text.removeprefix(f"<{tag}>")
        return inner.removesuffix(f"</{tag}>")


@dataclass(frozen=True)
class ToolCall:
    """One ``<tool_call>`` whose JSON parsed; ``arguments`` is kept as written (extra keys too)."""

    name: str
    arguments: dict[str, Any]
    region: Region

    @property
    def span_error(self) -> str | None:
        """Why the arguments are not a valid ``temporal_zoom`` window, or None."""
        return check_zoom_arguments(self.arguments)[1]

    @property
    def span(self) -> Interval | None:
        """``(start, end)`` in seconds when the arguments are a valid window, else None."""
        return check_zoom_arguments(self.arguments)[0]


@dataclass
class Parsed:
    """Everything read from one model turn. Offsets refer to `text` (the capped input)."""

    text: str
    dialect: Dialect
    reasoning: str | None = None
    times: list[Interval] = field(default_factory=list)
    time_errors: list[str] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_errors: list[str] = field(default_factory=list)
    answer: str | None = None
    answer_text: str | None = None
    spans: list[Interval] = field(default_factory=list)
    spans_valid: bool = False
    span_errors: list[str] = field(default_factory=list)
    regions: list[Region] = field(default_factory=list)
    format_ok: bool = False
    format_score: float = 0.0
    notes: list[str] = field(default_factory=list)

    def span_regions(self, *, include_reasoning: bool = False) -> list[Region]:
        """Regions the IoU channel credits: time tags, tool calls, glue.

        Args:
            include_reasoning: also the reasoning regions (the paper's m_iou does this).
        """
        kinds = (*SPAN_KINDS, "reasoning") if include_reasoning else SPAN_KINDS
        return [r for r in self.regions if r.kind in kinds]

    def answer_regions(self) -> list[Region]:
        """Regions the answer-accuracy channel credits: each ``<answer>...</answer>``."""
        return [r for r in self.regions if r.kind == "answer"]


@dataclass(frozen=True)
class _Element:
    name: str
    start: int
    end: int
    inner_start: int
    inner_end: int


def _find_elements(text: str, name: str, notes: list[str]) -> tuple[list[_Element], int | None]:
    """Pair ``<name>`` with the next ``</name>``; returns elements and an unclosed open's offset."""
    open_tag, close_tag = f"<{name}>", f"</{name}>"
    found: list[_Element] = []
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
        found.append(_Element(name, start, close + len(close_tag), start + len(open_tag), close))
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


def _check_pair(s_tok: str, e_tok: str) -> tuple[Interval | None, str | None]:
    start, err_s = _number(s_tok)
    end, err_e = _number(e_tok)
    if start is None or end is None:
        return None, err_s or err_e
    if start < 0:
        return None, f"start {start:g} is negative"
    if start > end:
        return None, f"start {start:g} is after end {end:g}"
    return (start, end), None


def check_zoom_arguments(arguments: dict[str, Any]) -> tuple[Interval | None, str | None]:
    """Validate ``temporal_zoom`` arguments as the parser sees them (no video duration).

    Returns:
        ``((start, end), None)`` when ``{"start": s, "end": e}`` holds finite numbers with
        ``0 <= s <= e``, else ``(None, reason)``; the reason is text the model can be shown.
    """
    extra = sorted(str(k) for k in arguments if k not in ("start", "end"))
    missing = [k for k in ("start", "end") if k not in arguments]
    if missing:
        return None, f"missing argument(s): {', '.join(missing)}; expected start and end in seconds"
    if extra:
        return None, f"unexpected argument(s): {', '.join(extra)[:200]}; temporal_zoom takes start, end"
    values = []
    for key in ("start", "end"):
        v = arguments[key]
        if isinstance(v, bool) or not isinstance(v, int | float):
            return None, f"{key} must be a number of seconds, got {json.dumps(v)[:40]}"
        try:
            values.append(repr(float(v)))
        except OverflowError:  # a JSON integer with hundreds of digits
            return None, f"{key} is not finite"
    return _check_pair(values[0], values[1])


def _parse_glue(content: str, notes: list[str]) -> tuple[list[Interval], list[str], bool]:
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
        span, err = _check_pair(m.group(1), m.group(2))
        if span is None:
            errors.append(f"glue span {count}: {err}")
        else:
            spans.append(span)
        pos, comma = m.end(), m.group(3)
    well_formed = count > 0 and not body[pos:].strip()
    if not well_formed:
        errors.append("glue must hold a list of (start, end) pairs in seconds, e.g. [(5.2, 10.4)]")
    return spans, errors, well_formed


def _parse_time(content: str) -> tuple[Interval | None, str | None]:
    """Read one ``<time>`` tag: ``(s, e)``, ``[s, e]``, ``s - e s``, ``s to e``."""
    inner = content.strip()
    if len(inner) > 120:
        return None, "time tag too long; expected (start, end)"
    if inner[:1] in "([" and inner[-1:] in ")]":
        inner = inner[1:-1]
    parts = _TIME_SPLIT.split(inner, maxsplit=2)
    if len(parts) != 2:
        return None, f"time tag {content.strip()[:40]!r} is not (start, end)"
    return _check_pair(_UNIT.sub("", parts[0].strip()), _UNIT.sub("", parts[1].strip()))


def _parse_tool_call(text: str, el: _Element) -> tuple[ToolCall | None, str | None]:
    """One ``<tool_call>`` element -> ToolCall, or an error the model can be shown."""
    raw = text[el.inner_start : el.inner_end].strip()
    where = f"tool call at char {el.start}"
    if len(raw) > MAX_TOOL_CALL_CHARS:
        return None, f"{where}: longer than {MAX_TOOL_CALL_CHARS} characters"
    try:
        obj = json.loads(raw)
        if isinstance(obj, dict) and isinstance(obj.get("arguments"), str):
            obj["arguments"] = json.loads(obj["arguments"])  # some models double-encode
    except (ValueError, RecursionError) as exc:
        return None, f"{where}: invalid JSON ({str(exc)[:120]})"
    if not (isinstance(obj, dict) and isinstance(obj.get("name"), str)):
        return None, f'{where}: expected {{"name": "{ZOOM_TOOL_NAME}", "arguments": {{...}}}}'
    args = obj.get("arguments", {})
    if not isinstance(args, dict):
        return None, f"{where}: arguments must be a JSON object"
    region = Region("tool_call", el.start, el.end, text[el.start : el.end])
    return ToolCall(obj["name"], args, region), None


def _letter(content: str) -> str | None:
    """The letter of a strict answer body: ``B``, ``(B)``, ``B.``, blanks around."""
    if len(content) > 256:
        return None
    m = _LETTER_FORM.fullmatch(content)
    return m.group(1) if m else None


def _check_letters(letters: str) -> None:
    if not letters or any(c not in OPTION_LETTERS for c in letters):
        raise ValueError(f"letters must be uppercase option letters such as 'ABCDE', got {letters!r}")


def _strict_from(text: str, elements: Sequence[_Element], letters: str) -> str | None:
    found = {_letter(text[e.inner_start : e.inner_end]) for e in elements}
    if len(found) != 1:
        return None
    (letter,) = found
    return letter if letter is not None and letter in letters else None


def extract_answer_strict(text: str, letters: str = "ABCDE") -> str | None:
    """The option letter from ``<answer>X</answer>`` only.

    The body may be ``B``, ``(B)``, ``B.`` or ``(B).`` with blanks around; anything else
    (``B. The man``, ``b``) does not count. Repeated answer tags must all give the same
    letter. Never guesses.

    Args:
        text: the model's reply.
        letters: the valid option letters, e.g. ``"ABCD"``.

    Returns:
        The letter, or None when there is no such tag, the tags disagree, or the letter is
        not one of ``letters``.
    """
    _check_letters(letters)
    elements, _ = _find_elements(text[:MAX_PARSE_CHARS], "answer", [])
    return _strict_from(text[:MAX_PARSE_CHARS], elements, letters) if elements else None


# --- lenient answers ---------------------------------------------------------------------

_LENIENT_TAG = re.compile(r"\s{0,64}\*{0,2}\(?([A-Z])")
_ANSWER_PHRASE = re.compile(
    r"\b(?i:(?:final |correct )?answer)(?i:\s{1,3}(?:is|would be|should be|will be))?"
    r"\s{0,3}[:=-]?\s{0,3}\*{0,2}\s{0,2}(?i:option\s{1,3})?\(?([A-Z])"
)
_START_LETTER = re.compile(r"\s{0,64}\*{0,2}\(?([A-Z])")
_PAREN_LETTER = re.compile(r"\(([A-Z])\)")
_AFTER_LETTER = ".,:;!?)]'\"*\n"


def _stands_alone(text: str, idx: int, end: int | None = None) -> bool:
    """Is the capital at ``idx`` an option letter rather than part of a word?

    "A" and "I" followed by a lowercase word read as English ("A person walks"), so they
    never count there; other letters do ("Answer: C is correct").
    """
    if idx > 0 and (text[idx - 1].isalnum() or text[idx - 1] == "_"):
        return False
    after = text[idx + 1 : idx + 40 if end is None else min(idx + 40, end)]
    if not after or after[0] in _AFTER_LETTER:
        return True
    if not after[0].isspace():
        return False
    rest = after.lstrip()
    return not rest or not (rest[0].islower() and text[idx] in "AI")


def _tier_tags(text: str) -> set[str]:
    elements, _ = _find_elements(text, "answer", [])
    found = set()
    for el in elements:
        m = _LENIENT_TAG.match(text, el.inner_start, el.inner_end)
        if m and _stands_alone(text, m.start(1), el.inner_end):
            found.add(m.group(1))
        if len(found) > 1:
            break
    return found


def _tier_start(text: str) -> set[str]:
    m = _START_LETTER.match(text)
    return {m.group(1)} if m and _stands_alone(text, m.start(1)) else set()


def _tier_regex(pattern: re.Pattern[str], text: str) -> set[str]:
    found = set()
    for m in pattern.finditer(text):
        if _stands_alone(text, m.start(1)):
            found.add(m.group(1))
        if len(found) > 1:
            break
    return found


def extract_answer_lenient(text: str, letters: str = "ABCDE") -> str | None:
    """The option letter read leniently, for the secondary multiple-choice figure.

    Tried in order; the first rule that finds any letter decides, and if it finds two
    different letters (or one outside ``letters``) the result is None, never a guess:
    1. ``<answer>`` bodies starting with a letter (``<answer>B. The man</answer>``);
    2. "answer is B", "Answer: (B)", "final answer: B";
    3. a letter opening the reply ("B", "(B) ...", "B. ...", "C is correct") together
       with every "(B)" anywhere: "(A) and (B) look alike" is ambiguous.
    A bare "A" or "I" before a lowercase word is English, not an option ("A person...").

    Args:
        text: the model's reply.
        letters: the valid option letters.

    Returns:
        The letter, or None.
    """
    _check_letters(letters)
    text = text[:MAX_PARSE_CHARS]
    tiers = (
        lambda: _tier_tags(text),
        lambda: _tier_regex(_ANSWER_PHRASE, text),
        lambda: _tier_start(text) | _tier_regex(_PAREN_LETTER, text),
    )
    for tier in tiers:
        found = tier()
        if found:
            letter = found.pop()
            return letter if not found and letter in letters else None
    return None


# --- the parser --------------------------------------------------------------------------


def _region(kind: RegionKind, text: str, start: int, end: int) -> Region:
    return Region(kind, start, end, text[start:end])


def _read_think(out: Parsed, think: list[_Element], unclosed: int | None) -> None:
    parts = [out.text[e.inner_start : e.inner_end].strip() for e in think]
    out.regions += [_region("reasoning", out.text, e.start, e.end) for e in think]
    if unclosed is not None and all(e.start < unclosed for e in think):
        # A reply cut at the token limit still has reasoning worth crediting.
        parts.append(out.text[unclosed + len("<think>") :].strip())
        out.regions.append(_region("reasoning", out.text, unclosed, len(out.text)))
    out.reasoning = "\n".join(parts) if parts else None


def _read_spans(out: Parsed, times: list[_Element], glue: list[_Element]) -> bool:
    """Time tags and glue; returns whether the first glue is a well-formed list."""
    for e in times:
        span, err = _parse_time(out.text[e.inner_start : e.inner_end])
        out.regions.append(_region("time", out.text, e.start, e.end))
        if span is None:
            out.time_errors.append(f"time tag at char {e.start}: {err}")
        else:
            out.times.append(span)
    if not glue:
        return False
    if len(glue) > 1:
        out.notes.append(f"{len(glue)} <glue> tags; only the first was read")
    out.regions += [_region("glue", out.text, e.start, e.end) for e in glue]
    spans, errors, well_formed = _parse_glue(out.text[glue[0].inner_start : glue[0].inner_end], out.notes)
    out.spans, out.span_errors = spans, errors
    out.spans_valid = well_formed and not errors
    return well_formed


def _read_answer(out: Parsed, answers: list[_Element], letters: str) -> bool:
    """Strict answer; returns whether every answer body has the expected form."""
    out.regions += [_region("answer", out.text, e.start, e.end) for e in answers]
    if not answers:
        return False
    bodies = [out.text[e.inner_start : e.inner_end].strip() for e in answers]
    out.answer_text = bodies[0][:1000]
    if not letters:  # open-ended question: any non-empty text
        return all(bodies)
    out.answer = _strict_from(out.text, answers, letters)
    return all(_letter(b) is not None for b in bodies)


def _top_level(elements: list[_Element]) -> list[_Element] | None:
    """Elements not inside ``<think>``; None when tags nest or overlap in any other way."""
    top: list[_Element] = []
    for e in sorted(elements, key=lambda x: x.start):
        if top and e.start < top[-1].end:
            if e.name == "time" and top[-1].name == "think" and e.end <= top[-1].end:
                continue
            return None
        top.append(e)
    return top


def _layout_ok(out: Parsed, elements: list[_Element], dialect: Dialect) -> bool:
    """Does the sequence of top-level elements, with only blanks between, fit the dialect?"""
    top = _top_level(elements)
    if top is None:
        return False
    pos = 0
    for e in top:
        if out.text[pos : e.start].strip():
            return False
        pos = e.end
    if out.text[pos:].strip():
        return False
    names = [e.name for e in top]
    if dialect == "zoomzero":
        return names == ["think", "answer", "glue"]
    if names[:1] == ["think"]:
        names = names[1:]
    return names == ["answer", "glue"] or (bool(names) and set(names) == {"tool_call"})


def parse(text: str, dialect: Dialect = "tool", *, letters: str = "ABCDE") -> Parsed:
    """Parse one model turn into answer, spans, tool calls and regions with char offsets.

    Never raises on any ``text`` and never evaluates it; only the first `MAX_PARSE_CHARS`
    characters are read (with a note). Format score (docs/METHOD.md §3): 1 when the turn
    fits its dialect's layout; 0.5 when it fits but spans are present and invalid (a time
    tag, a glue span or zoom arguments with start > end, a negative start, NaN, a string,
    extra keys); else 0. The answer body must be a letter form (``B``, ``(B)``, ``B.``),
    though a letter outside ``letters`` still fits the layout (it scores on accuracy).

    Args:
        text: the reply.
        dialect: ``"tool"`` or ``"zoomzero"``.
        letters: valid option letters; ``""`` for an open-ended question (then ``answer``
            stays None, ``answer_text`` holds the body and any non-empty body fits).

    Returns:
        A `Parsed`.
    """
    if dialect not in ("tool", "zoomzero"):
        raise ValueError(f"dialect must be 'tool' or 'zoomzero', got {dialect!r}")
    if letters:
        _check_letters(letters)
    if not isinstance(text, str):
        return Parsed(text="", dialect=dialect, notes=[f"expected text, got {type(text).__name__}"])
    notes: list[str] = []
    if len(text) > MAX_PARSE_CHARS:
        notes.append(f"reply is {len(text)} characters; only the first {MAX_PARSE_CHARS} were read")
        text = text[:MAX_PARSE_CHARS]
    out = Parsed(text=text, dialect=dialect)
    problems: list[str] = []
    found = {name: _find_elements(text, name, problems) for name in _TAGS}
    _read_think(out, found["think"][0], found["think"][1])
    glue_ok = _read_spans(out, found["time"][0], found["glue"][0])
    answer_ok = _read_answer(out, found["answer"][0], letters)
    for el in found["tool_call"][0]:
        call, err = _parse_tool_call(text, el)
        if call is None:
            out.regions.append(_region("tool_call", text, el.start, el.end))
            out.tool_call_errors.append(str(err))
        else:
            out.regions.append(call.region)
            out.tool_calls.append(call)
    out.regions.sort(key=lambda r: (r.start, r.end))
    out.notes = notes + problems + out.notes
    layout = not problems and _layout_ok(out, [e for v in found.values() for e in v[0]], dialect)
    if found["answer"][0]:
        layout = layout and answer_ok and glue_ok
    calls_ok = not out.tool_call_errors and all(c.name == ZOOM_TOOL_NAME for c in out.tool_calls)
    if layout and calls_ok:
        invalid = out.time_errors or out.span_errors or any(c.span_error for c in out.tool_calls)
        out.format_score = 0.5 if invalid else 1.0
    out.format_ok = out.format_score == 1.0
    return out


# --- prompts -----------------------------------------------------------------------------

ZOOM_TOOL_SCHEMA: dict[str, Any] = {
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
                "start": {"type": "number", "description": "window start, seconds from the video start"},
                "end": {"type": "number", "description": "window end, seconds from the video start"},
            },
            "required": ["start", "end"],
            "additionalProperties": False,
        },
    },
}

_ROLE = "You answer questions about a video and point to the evidence in time."
_TIMES = (
    "Each clip is preceded by a line giving its absolute start and end in seconds; "
    "always give times as seconds from the start of the whole video."
)
_THINK = "Think inside <think> </think> and mark each moment you refer to as <time>(start, end)</time>."
_CALL = '<tool_call>{"name": "temporal_zoom", "arguments": {"start": START, "end": END}}</tool_call>'
_ANSWER = "<answer>LETTER</answer>\n<glue>[(START, END), ...]</glue>"
_GLUE = "<glue> lists the time windows, in seconds, that show the evidence."
_ANSWER_WHAT = "the option's letter (or a short answer when there are no options)"


def _check_dialect(dialect: str) -> None:
    if dialect not in ("tool", "zoomzero"):
        raise ValueError(f"dialect must be 'tool' or 'zoomzero', got {dialect!r}")


def _layout_text(dialect: Dialect, *, open_ended: bool = False, allow_zoom: bool = True) -> str:
    answer = _ANSWER.replace("LETTER", "YOUR ANSWER" if open_ended else "LETTER")
    if dialect == "zoomzero":
        return f"Reply in exactly this layout:\n<think> ... </think>\n{answer}"
    if not allow_zoom:
        return f"Reply with:\n<think> ... </think>\n{answer}"
    return f"To zoom, reply with one call per window:\n{_CALL}\nTo answer, reply with:\n{answer}"


def system_prompt(dialect: Dialect = "tool", *, max_zoom_rounds: int) -> str:
    """The system turn: task, timing convention, and the dialect's output rules.

    Args:
        dialect: ``"tool"`` or ``"zoomzero"``.
        max_zoom_rounds: how many zoom turns the graph allows (0 = answer at once).

    Returns:
        The prompt text.
    """
    _check_dialect(dialect)
    if isinstance(max_zoom_rounds, bool) or not isinstance(max_zoom_rounds, int) or max_zoom_rounds < 0:
        raise ValueError(f"max_zoom_rounds must be an int >= 0, got {max_zoom_rounds!r}")
    lines = [_ROLE, "You first see the whole video at a low resolution. " + _TIMES, _THINK]
    if dialect == "tool" and max_zoom_rounds:
        lines.append(
            f"To look closer, call the {ZOOM_TOOL_NAME} tool with a window in seconds; it returns "
            f"that window's frames at a higher resolution. You have at most {max_zoom_rounds} "
            "zoom turn(s); several calls in one turn zoom several windows at once."
        )
    elif dialect == "tool":
        lines.append("Zooming is not available: answer from what you see.")
    lines.append(f"To answer, give {_ANSWER_WHAT} inside <answer> </answer>; {_GLUE}")
    if dialect == "zoomzero" and max_zoom_rounds:
        lines.append(
            "You may then be shown your evidence windows at a higher resolution; answer again in the same layout."
        )
    return "\n".join(lines)


def question_prompt(
    question: str, options: Sequence[str] | None, *, dialect: Dialect = "tool", allow_zoom: bool = True
) -> str:
    """The user text that follows the coarse clip: question, lettered options, layout.

    Args:
        question: the question text.
        options: option texts (lettered A, B, ...), or None for an open-ended question.
        dialect: ``"tool"`` (adds the ``temporal_zoom`` JSON schema) or ``"zoomzero"``.
        allow_zoom: ``tool`` dialect only; False leaves out the tool (no zoom rounds left).

    Returns:
        The prompt text.
    """
    _check_dialect(dialect)
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"question must be non-empty text, got {question!r}")
    lines = [f"Question: {' '.join(question.split())}"]
    if options is not None:
        if isinstance(options, str) or not 1 <= len(options) <= len(OPTION_LETTERS):
            raise ValueError(f"options must be a sequence of 1..26 strings, got {options!r}")
        lines.append("Options:")
        lines += [f"{OPTION_LETTERS[i]}. {' '.join(str(o).split())}" for i, o in enumerate(options)]
    if dialect == "tool" and allow_zoom:
        lines.append("Tool:\n<tools>\n" + json.dumps(ZOOM_TOOL_SCHEMA) + "\n</tools>")
    lines.append(_layout_text(dialect, open_ended=options is None, allow_zoom=allow_zoom))
    return "\n".join(lines)


def clip_caption(ref: ClipRef) -> str:
    """The line placed right before a clip, e.g. ``Video 12.0-18.5 s (16 frames, 448x252):``.

    Qwen2.5-VL restarts its time positions at each clip, so the absolute window is stated.
    """
    prefix = {"coarse": "Video", "zoom": "Zoomed video", "context": "Whole-video overview"}[ref.role]
    size = f"{ref.num_frames} frames, {ref.width}x{ref.height}"
    return f"{prefix} {ref.span.start:.1f}-{ref.span.end:.1f} s ({size}):"


def format_reminder(dialect: Dialect = "tool") -> str:
    """The user text sent back when a turn could not be parsed."""
    _check_dialect(dialect)
    return "Your reply could not be read. " + _layout_text(dialect)


def follow_up_prompt(dialect: Dialect = "tool", *, rounds_left: int) -> str:
    """The user text after the zoomed clips: zoom again (while rounds are left) or answer.

    Args:
        dialect: ``"tool"`` or ``"zoomzero"``.
        rounds_left: zoom turns still allowed after this one (0 or less = answer now).

    Returns:
        The prompt text.
    """
    _check_dialect(dialect)
    if dialect == "zoomzero":
        return "Answer again from the zoomed frames. " + _layout_text(dialect)
    if rounds_left > 0:
        return f"You may zoom again ({rounds_left} zoom turn(s) left) or answer. " + _layout_text(dialect)
    return "No zoom turns left: answer now. " + _layout_text(dialect, allow_zoom=False)


def _seconds(value: float) -> str:
    """A time for a reply: at most 2 decimals, always a float literal (``5.0``, ``12.25``)."""
    return repr(round(float(value), 2))


def format_tool_call(start: float, end: float, *, reasoning: str | None = None) -> str:
    """A ``tool``-dialect zoom turn, as a well-behaved policy writes it (scripted models, tests).

    Args:
        start: window start, seconds.
        end: window end, seconds.
        reasoning: put inside ``<think>`` first, if given.

    Returns:
        The reply text; `parse` reads it back with format score 1 for a valid window.
    """
    args = json.dumps({"start": round(float(start), 2), "end": round(float(end), 2)})
    call = f'<tool_call>{{"name": "{ZOOM_TOOL_NAME}", "arguments": {args}}}</tool_call>'
    return call if reasoning is None else f"<think>{reasoning}</think>\n{call}"


def format_answer(
    answer: str, spans: Sequence[Interval], *, reasoning: str | None = None, dialect: Dialect = "tool"
) -> str:
    """An answering turn: optional ``<think>``, then ``<answer>`` and ``<glue>``.

    Args:
        answer: the option letter (or a short answer).
        spans: evidence windows ``(start, end)`` in seconds.
        reasoning: text for ``<think>``; ``zoomzero`` requires one, so None there writes a
            sentence citing the spans with ``<time>`` tags.
        dialect: ``"tool"`` or ``"zoomzero"``.

    Returns:
        The reply text; `parse` reads it back with format score 1 for valid spans.
    """
    _check_dialect(dialect)
    pairs = [f"({_seconds(s)}, {_seconds(e)})" for s, e in spans]
    if reasoning is None and dialect == "zoomzero":
        cited = " and ".join(f"<time>{p}</time>" for p in pairs) or "no clear moment"
        reasoning = f"The evidence is at {cited}."
    head = "" if reasoning is None else f"<think>{reasoning}</think>\n"
    return f"{head}<answer>{answer}</answer>\n<glue>[{', '.join(pairs)}]</glue>"


# --- timestamps out of reasoning ---------------------------------------------------------

_N = r"\d{1,7}(?:\.\d{1,6})?"
_U = r"(?:s|secs?|seconds)\b"
_BARE_TIME = re.compile(
    rf"[(\[] {{0,4}}{_N} {{0,4}}(?:{_U})? {{0,4}}, {{0,4}}{_N} {{0,4}}(?:{_U})? {{0,4}}[)\]]"
    rf"|\b{_N} {{0,4}}(?:-|–|to|and) {{0,4}}{_N} {{0,4}}{_U}"
    rf"|\b{_N} {{0,4}}{_U}"
    r"|\b\d{1,2}:\d{2}(?::\d{2})?(?:\.\d{1,3})?\b"
)


def strip_timestamps(reasoning: str) -> str:
    """Remove time tags (with their content) and bare times from reasoning.

    The zoom verifier re-answers from the zoomed frames with the policy's reasoning minus
    its timestamps (docs/METHOD.md §3), so it cannot copy times it was not shown.
    Removes ``<time>...</time>``, ``(5.2, 10.4)``, ``5-10 s``, ``12.3 s``, ``01:23``.

    Args:
        reasoning: the text (only the first `MAX_PARSE_CHARS` characters are kept).

    Returns:
        The text without timestamps, blanks tidied.
    """
    text = reasoning[:MAX_PARSE_CHARS]
    elements, _ = _find_elements(text, "time", [])
    pieces, pos = [], 0
    for e in elements:
        pieces.append(text[pos : e.start])
        pos = e.end
    text = "".join([*pieces, text[pos:]]).replace("<time>", "").replace("</time>", "")
    text = _BARE_TIME.sub("", text)
    text = re.sub(r"[ \t]{2,}", " ", text)
    text = re.sub(r"[ \t]+([,.;:!?])", r"\1", text)
    return "\n".join(line.strip() for line in text.split("\n")).strip()
