"""Fuzzing the parser (docs/quality.md): it never raises and never hangs.

Hypothesis's ``deadline`` (10 s per example, thousands of times what a parse takes, so a
loaded machine cannot trip it) is only a hang guard against catastrophic backtracking,
not a performance claim.
"""

from __future__ import annotations

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zoom_agent import protocol as P

HANG_GUARD = settings(deadline=10_000, suppress_health_check=[HealthCheck.too_slow], derandomize=True)

FRAGMENTS = [
    "<think>", "</think>", "<time>", "</time>", "<answer>", "</answer>", "<glue>", "</glue>",
    "<tool_call>", "</tool_call>", "<", ">", "</", "think", "answer", "(", ")", "[", "]", ",",
    " ", "\n", "\t", "1.5", "-3", "nan", "inf", "1e999", "e9", ".", "A", "B", "(C)", "I", "Answer: ",
    "answer is ", '{"name": "temporal_zoom", "arguments": {"start": ', '"end": ', "}", "{", '"',
    "\\", "s", " to ", "12.3 s", "00:12", "\u00e9", "\x00", "\ud7ff",
]  # fmt: skip
PATHOLOGICAL = [
    "Answer:" + " " * 150_000 + "x",
    "answer " * 30_000,
    "<answer>" * 25_000,
    "<answer>B" * 20_000 + "</answer>",
    "(" * 200_000,
    "[(1," * 50_000,
    "<glue>[" + "(1, 2)," * 30_000 + "]</glue>",
    "<time>" * 30_000 + "</time>" * 30_000,
    "1" * 200_000,
    "1." * 100_000,
    " " * 100_000 + ", " + " " * 100_000,
    "<tool_call>" + "{" * 8000 + "</tool_call>",
    "<tool_call>" + '{"a":' * 1500 + "</tool_call>",
    "<tool_call>{}</tool_call>" * 10_000,
    "(A) " * 50_000,
    "<think>" + "<time>(1, 2)</time>" * 10_000 + "</think>",
    "5 - " * 50_000 + "s",
    "x" * 300_000,
]

fragment_soup = st.lists(st.sampled_from(FRAGMENTS), max_size=60).map("".join)
garbage_100k = st.tuples(st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=12), st.text(max_size=20)).map(
    lambda parts: ("".join(parts[0]) + parts[1]) * (100_000 // (len("".join(parts[0]) + parts[1]) or 1) + 1)
)


def _check_invariants(text: str, parsed: P.Parsed, letters: str) -> None:
    assert parsed.format_score in (0.0, 0.5, 1.0)
    assert parsed.format_ok == (parsed.format_score == 1.0)
    assert len(parsed.text) <= P.MAX_PARSE_CHARS and text.startswith(parsed.text)
    for r in parsed.regions:
        assert 0 <= r.start < r.end <= len(parsed.text)
        assert parsed.text[r.start : r.end] == r.text
    for s, e in [*parsed.spans, *parsed.times, *(c.span for c in parsed.tool_calls if c.span)]:
        assert math.isfinite(s) and math.isfinite(e) and 0 <= s <= e
    assert len(parsed.spans) <= P.MAX_SPANS
    assert parsed.answer is None or parsed.answer in letters
    assert parsed.spans_valid <= bool(parsed.spans)


def _exercise(text: str, letters: str = "ABCDE") -> None:
    for dialect in ("tool", "zoomzero"):
        _check_invariants(text, P.parse(text, dialect, letters=letters), letters)  # type: ignore[arg-type]
    for extract in (P.extract_answer_strict, P.extract_answer_lenient):
        got = extract(text, letters)
        assert got is None or got in letters
    assert isinstance(P.strip_timestamps(text), str)


@HANG_GUARD
@given(st.text(max_size=2000))
def test_any_text_never_raises(text: str) -> None:
    _exercise(text)


@HANG_GUARD
@given(fragment_soup, st.sampled_from(["ABCDE", "ABCD", "AB"]))
def test_near_miss_tag_soup(text: str, letters: str) -> None:
    _exercise(text, letters)


@settings(HANG_GUARD, max_examples=25)
@given(garbage_100k)
def test_100kb_garbage_finishes(text: str) -> None:
    assert len(text) >= 100_000
    _exercise(text)


@settings(HANG_GUARD, max_examples=len(PATHOLOGICAL) * 2)
@given(st.sampled_from(PATHOLOGICAL))
def test_pathological_inputs_finish(text: str) -> None:
    _exercise(text)


spans = st.tuples(st.floats(0, 3600, allow_nan=False, allow_infinity=False), st.floats(0, 600, allow_nan=False)).map(
    lambda p: (p[0], p[0] + p[1])
)


@HANG_GUARD
@given(st.lists(spans, min_size=1, max_size=8), st.sampled_from("ABCDE"), st.text("abc xyz.", max_size=80))
def test_well_formed_replies_round_trip(glue: list[tuple[float, float]], letter: str, thought: str) -> None:
    pairs = ", ".join(f"({s!r}, {e!r})" for s, e in glue)
    first = glue[0]
    text = f"<think>{thought} <time>({first[0]!r}, {first[1]!r})</time></think>\n<answer>{letter}</answer>\n"
    text += f"<glue>[{pairs}]</glue>"
    for dialect in ("tool", "zoomzero"):
        p = P.parse(text, dialect)  # type: ignore[arg-type]
        assert p.format_ok and p.answer == letter and p.spans == glue and p.times == [first]
        _check_invariants(text, p, "ABCDE")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**500), 10**500) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


@HANG_GUARD
@given(st.dictionaries(st.sampled_from(["start", "end", "fps"]) | st.text(max_size=4), json_values, max_size=4))
def test_any_zoom_arguments_are_judged_not_raised(arguments: dict[str, object]) -> None:
    body = json.dumps({"name": "temporal_zoom", "arguments": arguments})  # NaN/Infinity allowed
    p = P.parse(f"<tool_call>{body}</tool_call>")
    (call,) = p.tool_calls
    assert call.arguments.keys() == arguments.keys()
    assert (call.span is None) == (call.span_error is not None)
    assert p.format_score == (1.0 if call.span is not None else 0.5)
