"""The response parser: one model turn -> answer, spans, tool calls and regions (docs/architecture.md §4).

The two dialects and the region convention are described in `zoom_agent.protocol`. `parse`
never raises and never evaluates: only the first `MAX_PARSE_CHARS` characters are read and
tool calls go through ``json.loads`` (at most `MAX_TOOL_CALL_CHARS` each).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from zoom_agent.protocol.scan import (
    MAX_ANSWER_CHARS,
    MAX_PARSE_CHARS,
    MAX_TOOL_CALL_CHARS,
    Element,
    Interval,
    check_letters,
    find_elements,
    option_letter,
    parse_glue,
    parse_time,
    strict_letter,
)
from zoom_agent.protocol.zoom_call import ZOOM_TOOL_NAME, check_zoom_arguments

Dialect = Literal["tool", "zoomzero"]
RegionKind = Literal["reasoning", "time", "tool_call", "answer", "glue"]

SPAN_KINDS: tuple[RegionKind, ...] = ("time", "tool_call", "glue")
_TAGS = ("think", "time", "tool_call", "answer", "glue")


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
        """Why the arguments are not a valid ``temporal_zoom`` window (`zoom_call`), or None."""
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


def _parse_tool_call(text: str, el: Element) -> tuple[ToolCall | None, str | None]:
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


# --- the parser --------------------------------------------------------------------------


def _region(kind: RegionKind, text: str, start: int, end: int) -> Region:
    return Region(kind, start, end, text[start:end])


def _read_think(out: Parsed, think: list[Element], unclosed: int | None) -> None:
    parts = [out.text[e.inner_start : e.inner_end].strip() for e in think]
    out.regions += [_region("reasoning", out.text, e.start, e.end) for e in think]
    if unclosed is not None and all(e.start < unclosed for e in think):
        # A reply cut at the token limit still has reasoning worth crediting.
        parts.append(out.text[unclosed + len("<think>") :].strip())
        out.regions.append(_region("reasoning", out.text, unclosed, len(out.text)))
    out.reasoning = "\n".join(parts) if parts else None


def _read_spans(out: Parsed, times: list[Element], glue: list[Element]) -> bool:
    """Time tags and glue; returns whether the first glue is a well-formed list."""
    for e in times:
        span, err = parse_time(out.text[e.inner_start : e.inner_end])
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
    spans, errors, well_formed = parse_glue(out.text[glue[0].inner_start : glue[0].inner_end], out.notes)
    out.spans, out.span_errors = spans, errors
    out.spans_valid = well_formed and not errors
    return well_formed


def _read_answer(out: Parsed, answers: list[Element], letters: str) -> bool:
    """Strict answer; returns whether every answer body has the expected form."""
    out.regions += [_region("answer", out.text, e.start, e.end) for e in answers]
    if not answers:
        return False
    bodies = [out.text[e.inner_start : e.inner_end].strip() for e in answers]
    out.answer_text = bodies[0][:MAX_ANSWER_CHARS]
    if not letters:  # open-ended question: the free text, when every answer tag agrees
        texts = {" ".join(b.split())[:MAX_ANSWER_CHARS] for b in bodies}
        (only,) = texts if len(texts) == 1 else ("",)
        out.answer = only or None
        return all(bodies)
    out.answer = strict_letter(out.text, answers, letters)
    return all(option_letter(b) is not None for b in bodies)


def _top_level(elements: list[Element]) -> list[Element] | None:
    """Elements not inside ``<think>``; None when tags nest or overlap in any other way."""
    top: list[Element] = []
    for e in sorted(elements, key=lambda x: x.start):
        if top and e.start < top[-1].end:
            if e.name == "time" and top[-1].name == "think" and e.end <= top[-1].end:
                continue
            return None
        top.append(e)
    return top


def _layout_ok(out: Parsed, elements: list[Element], dialect: Dialect) -> bool:
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
    characters are read (with a note). Format score (docs/method.md §3): 1 when the turn
    fits its dialect's layout; 0.5 when it fits but spans are present and invalid (a time
    tag, a glue span or zoom arguments with start > end, a negative start, NaN, a string,
    extra keys); else 0. The answer body must be a letter form (``B``, ``(B)``, ``B.``),
    though a letter outside ``letters`` still fits the layout (it scores on accuracy); an
    open-ended question (``letters=""``) takes free text.

    Args:
        text: the reply.
        dialect: ``"tool"`` or ``"zoomzero"``.
        letters: valid option letters; ``""`` for an open-ended question: then ``answer``
            is the free text of ``<answer>`` (blanks collapsed, at most `MAX_ANSWER_CHARS`;
            None when empty or when repeated answer tags disagree) and any non-empty body
            fits the layout.

    Returns:
        A `Parsed`.
    """
    if dialect not in ("tool", "zoomzero"):
        raise ValueError(f"dialect must be 'tool' or 'zoomzero', got {dialect!r}")
    if letters:
        check_letters(letters)
    if not isinstance(text, str):
        return Parsed(text="", dialect=dialect, notes=[f"expected text, got {type(text).__name__}"])
    notes: list[str] = []
    if len(text) > MAX_PARSE_CHARS:
        notes.append(f"reply is {len(text)} characters; only the first {MAX_PARSE_CHARS} were read")
        text = text[:MAX_PARSE_CHARS]
    out = Parsed(text=text, dialect=dialect)
    problems: list[str] = []
    found = {name: find_elements(text, name, problems) for name in _TAGS}
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
