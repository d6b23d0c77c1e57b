"""The response protocol: both dialects, broken replies, regions, answers, prompts."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from zoom_agent import protocol as P
from zoom_agent.types import ClipRef, Span

GOLDEN = Path(__file__).resolve().parent / "golden"
ZZ = (
    "<think> The man enters at <time>(5.2, 10.4)</time> and sits. </think>\n"
    "<answer>B</answer>\n<glue>[(5.2, 10.4), (20.0, 23.5)]</glue>"
)
CALL = '<tool_call>{"name": "temporal_zoom", "arguments": {"start": 3, "end": 7.5}}</tool_call>'


def _call(args: str, name: str = "temporal_zoom") -> str:
    return f'<tool_call>{{"name": "{name}", "arguments": {args}}}</tool_call>'


def _check_regions(parsed: P.Parsed) -> None:
    for r in parsed.regions:
        assert parsed.text[r.start : r.end] == r.text
        assert r.start < r.end


# --- zoomzero ------------------------------------------------------------------------------


def test_zoomzero_paper_layout() -> None:
    p = P.parse(ZZ, "zoomzero")
    assert (p.format_ok, p.format_score) == (True, 1.0)
    assert p.answer == "B" and p.answer_text == "B"
    assert p.spans == [(5.2, 10.4), (20.0, 23.5)] and p.spans_valid
    assert p.times == [(5.2, 10.4)]
    assert p.reasoning is not None and p.reasoning.startswith("The man enters")
    assert [r.kind for r in p.regions] == ["reasoning", "time", "answer", "glue"]
    _check_regions(p)


def test_answer_region_covers_tags_and_content() -> None:
    p = P.parse(ZZ, "zoomzero")
    (ans,) = p.answer_regions()
    assert ans.text == "<answer>B</answer>" and ans.content == "B"
    assert ZZ[ans.start : ans.end] == "<answer>B</answer>"
    kinds = [r.kind for r in p.span_regions()]
    assert kinds == ["time", "glue"]
    assert [r.kind for r in p.span_regions(include_reasoning=True)] == ["reasoning", "time", "glue"]
    assert p.span_regions()[1].content == "[(5.2, 10.4), (20.0, 23.5)]"


def test_answer_region_holds_tokens_that_merge_tag_and_letter() -> None:
    """A BPE token like ">B</" straddles tag and letter: it lies inside the region."""
    p = P.parse(ZZ, "zoomzero")
    (ans,) = p.answer_regions()
    for piece in (">B</", "<answer>", "B", "</answer>"):
        tok_start = ZZ.index(piece, ans.start)
        assert ans.start <= tok_start and tok_start + len(piece) <= ans.end


@pytest.mark.parametrize(
    "text",
    [
        "<answer>B</answer>\n<glue>[(1, 2)]</glue>",  # think is required in zoomzero
        "<think>x</think><glue>[(1, 2)]</glue><answer>B</answer>",  # order
        "<think>x</think><answer>B</answer>",  # no glue
        "<think>x</think> stray words <answer>B</answer><glue>[(1, 2)]</glue>",
        "<think>x</think><answer>B</answer><glue>[(1, 2)]</glue> trailing",
        "<think>x</think><answer>the man</answer><glue>[(1, 2)]</glue>",
        "<think>x</think><answer>B</answer><glue>hello</glue>",
        "<think>x</think><answer>B</answer><glue>[]</glue>",
        "<think>x</think><answer>B</answer><glue>[(1, 2), (3,</glue>",
        "<think>x</think><answer>B</answer><answer>B</answer><glue>[(1, 2)]</glue>",
        "<think>x <answer>B</answer></think><answer>B</answer><glue>[(1, 2)]</glue>",
        "<think>x <think>y</think><answer>B</answer><glue>[(1, 2)]</glue>",
        "<think>x</think></think><answer>B</answer><glue>[(1, 2)]</glue>",
        "<think>x<answer></think>B</answer><glue>[(1, 2)]</glue>",
        "<Think>x</Think><answer>B</answer><glue>[(1, 2)]</glue>",
    ],
)
def test_zoomzero_layout_violations_score_zero(text: str) -> None:
    p = P.parse(text, "zoomzero")
    assert (p.format_ok, p.format_score) == (False, 0.0)
    _check_regions(p)


@pytest.mark.parametrize(
    ("glue", "why"),
    [
        ("[(12.0, 5.0)]", "after end"),
        ("[(nan, 5.0)]", "not finite"),
        ("[(1.0, inf)]", "not finite"),
        ("[(1e999, 2e999)]", "not finite"),
        ("[(-3, 5.0)]", "negative"),
        ('[("1", "5")]', "not a number"),
        ("[(a, b)]", "not a number"),
        ("[(1, 2), (9, 3)]", "after end"),
    ],
)
def test_invalid_glue_spans_score_half(glue: str, why: str) -> None:
    p = P.parse(f"<think>x</think>\n<answer>A</answer>\n<glue>{glue}</glue>", "zoomzero")
    assert p.format_score == 0.5 and not p.format_ok
    assert not p.spans_valid
    assert any(why in e for e in p.span_errors), p.span_errors
    assert all(math.isfinite(s) and s <= e for s, e in p.spans)
    assert p.answer == "A"


def test_invalid_time_tag_scores_half() -> None:
    p = P.parse("<think>at <time>(9, 3)</time></think><answer>A</answer><glue>[(1, 2)]</glue>", "zoomzero")
    assert p.format_score == 0.5 and p.times == [] and "after end" in p.time_errors[0]
    assert p.spans_valid  # glue itself is fine


@pytest.mark.parametrize(
    ("content", "span"),
    [
        ("(5.2, 10.4)", (5.2, 10.4)),
        ("[5.2, 10.4]", (5.2, 10.4)),
        ("5.2s - 10.4s", (5.2, 10.4)),
        ("5 to 10 seconds", (5.0, 10.0)),
        (" 3,4 ", (3.0, 4.0)),
    ],
)
def test_time_tag_forms(content: str, span: tuple[float, float]) -> None:
    p = P.parse(f"<think><time>{content}</time></think><answer>A</answer><glue>[(1, 2)]</glue>", "zoomzero")
    assert p.times == [span] and p.format_ok


def test_glue_forms_and_whitespace() -> None:
    p = P.parse("<think>x</think>\n\n <answer> (C) </answer>\n<glue> [ (1,2) , [3.5, 4] , ] </glue>\n", "zoomzero")
    assert p.format_ok and p.answer == "C" and p.spans == [(1.0, 2.0), (3.5, 4.0)]
    single = P.parse("<think>x</think><answer>A</answer><glue>(1, 2)</glue>", "zoomzero")
    assert single.format_ok and single.spans == [(1.0, 2.0)]
    bare_list = P.parse("<think>x</think><answer>A</answer><glue>[1, 2]</glue>", "zoomzero")
    assert bare_list.format_ok and bare_list.spans == [(1.0, 2.0)]


def test_huge_number_of_spans_is_capped_with_a_note() -> None:
    glue = "[" + ", ".join(f"({i}, {i + 0.5})" for i in range(500)) + "]"
    p = P.parse(f"<think>x</think><answer>A</answer><glue>{glue}</glue>", "zoomzero")
    assert len(p.spans) == P.MAX_SPANS
    assert any("more than 64 spans" in n for n in p.notes)


# --- tool dialect --------------------------------------------------------------------------


def test_tool_call_turn() -> None:
    text = f"<think>Look at <time>(3, 7.5)</time> closer.</think>\n{CALL}"
    p = P.parse(text)
    assert p.format_ok and p.answer is None
    (call,) = p.tool_calls
    assert call.name == "temporal_zoom" and call.arguments == {"start": 3, "end": 7.5}
    assert call.span == (3.0, 7.5) and call.span_error is None
    assert call.region.text == CALL
    assert [r.kind for r in p.span_regions()] == ["time", "tool_call"]
    _check_regions(p)


def test_parallel_tool_calls_without_think() -> None:
    text = CALL + "\n" + _call('{"start": 10, "end": 12}')
    p = P.parse(text)
    assert p.format_ok and [c.span for c in p.tool_calls] == [(3.0, 7.5), (10.0, 12.0)]
    assert p.reasoning is None


def test_tool_dialect_answer_turn() -> None:
    p = P.parse("<think>it is blue</think>\n<answer>D</answer>\n<glue>[(2, 4)]</glue>")
    assert p.format_ok and p.answer == "D" and p.spans == [(2.0, 4.0)]
    assert P.parse("<answer>D</answer><glue>[(2, 4)]</glue>").format_ok  # think optional


@pytest.mark.parametrize(
    ("args", "why"),
    [
        ('{"start": 9, "end": 2}', "after end"),
        ('{"start": NaN, "end": 2}', "not finite"),
        ('{"start": -Infinity, "end": 2}', "not finite"),
        ('{"start": -1, "end": 2}', "negative"),
        ('{"start": "3", "end": "5"}', "must be a number"),
        ('{"start": true, "end": 5}', "must be a number"),
        ('{"start": 3}', "missing argument(s): end"),
        ('{"start": 1' + "0" * 400 + ', "end": 2}', "not finite"),
        ('{"start": 1, "end": 1e400}', "not finite"),
        ('{"start": 3, "end": 5, "fps": 30}', "unexpected argument(s): fps"),
    ],
)
def test_bad_zoom_arguments_are_kept_and_score_half(args: str, why: str) -> None:
    p = P.parse(_call(args))
    (call,) = p.tool_calls
    assert call.span is None and call.span_error is not None and why in call.span_error
    assert p.format_score == 0.5
    if "fps" in args:
        assert call.arguments["fps"] == 30  # visible for the tool to reject


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ('{"name": "temporal_zoom", "arguments": {"start": 3, "end": }}', "invalid JSON"),
        ("not json at all", "invalid JSON"),
        ('["temporal_zoom", 3, 5]', "expected"),
        ('{"name": "temporal_zoom", "arguments": [3, 5]}', "arguments must be a JSON object"),
        ("[" * 4000 + "]" * 4000, "invalid JSON"),
        ("[" * 5000 + "]" * 5000, "longer than"),
        ('{"name": "zoom", "arguments": "{bad"}', "invalid JSON"),
    ],
)
def test_broken_tool_calls_are_errors_as_text(body: str, why: str) -> None:
    p = P.parse(f"<tool_call>{body}</tool_call>")
    assert p.tool_calls == [] and p.format_score == 0.0
    assert len(p.tool_call_errors) == 1 and why in p.tool_call_errors[0]
    assert [r.kind for r in p.regions] == ["tool_call"]  # still credited as a span region


def test_double_encoded_arguments_and_unknown_tool() -> None:
    p = P.parse('<tool_call>{"name": "temporal_zoom", "arguments": "{\\"start\\": 1, \\"end\\": 2}"}</tool_call>')
    assert p.format_ok and p.tool_calls[0].span == (1.0, 2.0)
    other = P.parse(_call('{"start": 1, "end": 2}', name="search"))
    assert other.tool_calls[0].name == "search" and other.format_score == 0.0


@pytest.mark.parametrize(
    "text",
    [
        f"Let me zoom. {CALL}",  # free text outside <think>
        f"{CALL}\n<answer>A</answer><glue>[(1, 2)]</glue>",  # both call and answer
        "<think>x</think><answer>A</answer>",  # answer without glue
        f"<think>x</think>{CALL}<think>y</think>",
        "<tool_call>{",  # truncated mid-tag
        "<think>thinking about the clip at <time>(1,",  # truncated reasoning
        "",
        "   ",
    ],
)
def test_tool_dialect_layout_violations(text: str) -> None:
    p = P.parse(text)
    assert p.format_score == 0.0
    _check_regions(p)


def test_truncated_reply_keeps_reasoning_region() -> None:
    text = "<think>the dog runs at <time>(4, 6)</time>"
    p = P.parse(text)
    assert p.reasoning == "the dog runs at <time>(4, 6)</time>"
    assert [r.kind for r in p.regions] == ["reasoning", "time"]
    assert p.regions[0].end == len(text) and p.regions[0].content == p.reasoning
    assert any("never closed" in n for n in p.notes)


# --- answers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "strict", "lenient"),
    [
        ("<answer>B</answer>", "B", "B"),
        ("<answer> (B). </answer>", "B", "B"),
        ("<answer>B.</answer>", "B", "B"),
        ("<answer>B. The man sits</answer>", None, "B"),
        ("<answer>b</answer>", None, None),
        ("<answer>F</answer>", None, None),  # outside the options
        ("<answer>B</answer> <answer>C</answer>", None, None),  # disagreeing repeats
        ("<answer>B</answer> <answer>B</answer>", "B", "B"),
        ("<answer>B", None, None),  # truncated
        ("<answer>A person walks</answer>", None, None),
        ("A person walks into the room.", None, None),
        ("I think the dog is brown.", None, None),
        ("The answer is A person", None, None),
        ("Answer: B", None, "B"),
        ("The final answer is (C).", None, "C"),
        ("answer: C is correct", None, "C"),
        ("(B)", None, "B"),
        ("B.", None, "B"),
        ("B", None, "B"),
        ("  D  ", None, "D"),
        ("A. A person walks", None, "A"),
        ("(A) and (B) both look plausible", None, None),  # ambiguous
        ("I pick (C) here", None, "C"),
        ("B. The dog, not (C).", None, None),  # a leading letter and another in parentheses
        ("Answer: F", None, None),
        ("<answer>E</answer>", "E", "E"),
        ("", None, None),
        ("BBC news is on", None, None),
        ("<answer>the man</answer> so the answer is D", None, "D"),
    ],
)
def test_strict_and_lenient_answers(text: str, strict: str | None, lenient: str | None) -> None:
    assert P.extract_answer_strict(text, "ABCDE") == strict
    assert P.extract_answer_lenient(text, "ABCDE") == lenient


def test_answer_outside_options_keeps_layout() -> None:
    p = P.parse("<think>x</think><answer>E</answer><glue>[(1, 2)]</glue>", "zoomzero", letters="ABCD")
    assert p.answer is None and p.answer_text == "E" and p.format_ok


def test_open_ended_answers() -> None:
    # an open-ended question's answer is the free text (blanks collapsed), not only a letter
    p = P.parse("<answer> a red\n ball </answer><glue>[(1, 2)]</glue>", letters="")
    assert p.format_ok and p.answer == "a red ball" and p.answer_text == "a red\n ball"
    # repeated answer tags must agree, as for letters; an empty body is no answer
    two = P.parse("<answer>red</answer><answer>blue</answer>", letters="")
    assert two.answer is None
    assert P.parse("<answer>red</answer> <answer>red </answer>", letters="").answer == "red"
    empty = P.parse("<answer> </answer><glue>[(1, 2)]</glue>", letters="")
    assert empty.answer is None and not empty.format_ok
    long = P.parse(f"<answer>{'x' * 5000}</answer>", letters="")
    assert long.answer is not None and len(long.answer) == P.MAX_ANSWER_CHARS


def test_bad_api_arguments_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="dialect"):
        P.parse("x", "paper")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="letters"):
        P.extract_answer_strict("x", "abc")
    assert P.parse(None).notes == ["expected text, got NoneType"]  # type: ignore[arg-type]


def test_oversized_input_is_capped_with_a_note() -> None:
    p = P.parse("x" * (P.MAX_PARSE_CHARS + 10) + ZZ, "zoomzero")
    assert len(p.text) == P.MAX_PARSE_CHARS and p.answer is None
    assert any("only the first" in n for n in p.notes)


# --- strip_timestamps ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("He sits at <time>(5.2, 10.4)</time> then leaves.", "He sits at then leaves."),
        ("Between (5.2, 10.4) and [1,2] the dog runs.", "Between and the dog runs."),
        ("At 12.3 s, and 4s later, he waves.", "At, and later, he waves."),
        ("From 5-10 seconds and 3 to 4 s he waits.", "From and he waits."),
        ("At 01:23 the cat jumps.", "At the cat jumps."),
        ("Option B shows 3 people.", "Option B shows 3 people."),
        ("nested <time>(1, 2) <time>(3, 4)</time> end", "nested end"),
    ],
)
def test_strip_timestamps(text: str, expected: str) -> None:
    assert P.strip_timestamps(text) == expected


# --- prompts (golden snapshots) ------------------------------------------------------------


def _clip(role: str, start: float, end: float, n: int) -> ClipRef:
    idx = tuple(range(n))
    return ClipRef(
        path="v.mp4",
        span=Span(start=start, end=end),
        frame_indices=idx,
        timestamps=tuple(i / 10 for i in idx),
        fps=10.0,
        num_source_frames=200,
        width=448,
        height=252,
        visual_tokens=576,
        role=role,  # type: ignore[arg-type]
    )


def _golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("ZOOM_AGENT_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    assert path.exists(), f"{path} missing: run with ZOOM_AGENT_UPDATE_GOLDEN=1 once and review it"
    assert actual == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("dialect", ["tool", "zoomzero"])
def test_prompt_snapshots(dialect: P.Dialect) -> None:
    options = ["The man sits down.", "The dog  runs\naway.", "Nothing happens.", "A car passes."]
    parts = [
        P.system_prompt(dialect, max_zoom_rounds=2),
        P.system_prompt(dialect, max_zoom_rounds=0),
        P.question_prompt("What happens after the  man enters?", options, dialect=dialect),
        P.question_prompt("What does the man hold?", None, dialect=dialect, allow_zoom=False),
        P.format_reminder(dialect),
        P.follow_up_prompt(dialect, rounds_left=1),
        P.follow_up_prompt(dialect, rounds_left=0),
    ]
    _golden(f"prompts_{dialect}.txt", "\n\n=====\n\n".join(parts) + "\n")


def test_clip_caption_snapshots() -> None:
    zoom = _clip("zoom", 12.0, 18.5, 16)
    parts = [
        P.clip_caption(_clip("coarse", 0.0, 60.0, 32)),
        P.clip_caption(zoom),
        P.clip_caption(_clip("context", 0.0, 60.0, 4)),
    ]
    _golden("clip_captions.txt", "\n".join(parts) + "\n")
    assert P.clip_caption(zoom) == "Zoomed video 12.0-18.5 s (16 frames, 448x252):"


def test_prompt_bad_inputs() -> None:
    with pytest.raises(ValueError, match="max_zoom_rounds"):
        P.system_prompt("tool", max_zoom_rounds=-1)
    with pytest.raises(ValueError, match="question"):
        P.question_prompt("  ", None)
    with pytest.raises(ValueError, match="options"):
        P.question_prompt("Why?", "ABCD")


def test_prompt_layout_round_trips_through_the_parser() -> None:
    """The layout the prompt shows, filled in, parses with full format score."""
    example = P.question_prompt("Q?", ["a", "b"], dialect="zoomzero").split("layout:\n", 1)[1]
    filled = example.replace("...", "x", 1).replace("LETTER", "B").replace("(START, END), ...", "(1, 2)")
    assert P.parse(filled, "zoomzero").format_ok
    call = P.question_prompt("Q?", ["a"]).split("window:\n", 1)[1].split("\n", 1)[0]
    assert P.parse(call.replace("START", "1").replace("END", "2")).format_ok


@pytest.mark.parametrize("dialect", ["tool", "zoomzero"])
def test_rendered_replies_parse_back(dialect: P.Dialect) -> None:
    answer = P.format_answer("C", [(1.234, 5.0), (7.5, 9.25)], dialect=dialect)
    p = P.parse(answer, dialect)
    assert p.format_ok and p.answer == "C" and p.spans == [(1.23, 5.0), (7.5, 9.25)]
    if dialect == "zoomzero":
        assert p.times == p.spans
    call = P.format_tool_call(3, 7.456, reasoning="look closer")
    q = P.parse(call)
    assert q.format_ok and q.tool_calls[0].span == (3.0, 7.46) and q.reasoning == "look closer"
    assert P.parse(P.format_tool_call(9, 2)).format_score == 0.5


def test_follow_up_prompt_without_rounds_offers_no_tool() -> None:
    assert "tool_call" not in P.follow_up_prompt("tool", rounds_left=0)
    assert "tool_call" in P.follow_up_prompt("tool", rounds_left=2)
