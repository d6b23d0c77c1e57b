"""One zoom-call contract: parser, prompt schema, tool and rewards agree on every case.

`zoom_agent.protocol.zoom_call` states the rule once; this table checks each reader of a
zoom call against it side by side: the parser's format score and span, the JSON schema the
prompt shows the model (validated with a standard JSON Schema validator), the tool's verdict
on a 60 s video, and the training rewards (format, and the IoU reward's span validity).
"""

from __future__ import annotations

import json
import math
from typing import Any

import jsonschema
import pytest

from zoom_agent import protocol
from zoom_agent.config import Budget
from zoom_agent.geometry import PAPER_GEOMETRY
from zoom_agent.spans import multi_iou
from zoom_agent.tools import TemporalZoom
from zoom_agent.training import trajectory_rewards
from zoom_agent.types import GroundedAnswer, Question, Span, TurnTrace, VideoInfo

INFO = VideoInfo(path="v.mp4", duration=60.0, fps=10.0, num_frames=600, width=640, height=480)
PARAMETERS = protocol.ZOOM_TOOL_SCHEMA["function"]["parameters"]

# (arguments, the window when valid else None, whether a JSON Schema can state the rule)
CASES: list[tuple[dict[str, Any], tuple[float, float] | None, bool]] = [
    ({"start": 3, "end": 7.5}, (3.0, 7.5), True),
    ({"start": 4, "end": 4}, (4.0, 4.0), True),  # a moment: valid, the tool widens it
    ({"start": 0, "end": 0}, (0.0, 0.0), True),
    ({"start": 0.0, "end": 1e6}, (0.0, 1e6), True),  # past the end: the tool clamps it
    ({"start": -2, "end": 5}, None, True),  # negative start: invalid everywhere
    ({"start": -0.5, "end": -0.1}, None, True),
    ({"start": "3", "end": 5}, None, True),
    ({"start": True, "end": 5}, None, True),
    ({"start": None, "end": 5}, None, True),
    ({"start": 3}, None, True),
    ({"start": 3, "end": 5, "fps": 2}, None, True),
    ({"begin": 3, "end": 5}, None, True),
    ({"start": 9, "end": 2}, None, False),  # order between two fields: no JSON Schema keyword
    ({"start": math.nan, "end": 5}, None, False),  # not JSON: schema validators take NaN as a number
    ({"start": 1, "end": math.inf}, None, False),
    ({"start": 10**400, "end": 10**401}, None, False),  # a JSON integer beyond any float
]


def call_text(arguments: dict[str, Any]) -> str:
    return f"<tool_call>{json.dumps({'name': protocol.ZOOM_TOOL_NAME, 'arguments': arguments})}</tool_call>"


@pytest.mark.parametrize(("arguments", "window", "_"), CASES)
def test_the_contract_and_the_parser_agree(arguments, window, _):
    assert protocol.check_zoom_arguments(arguments)[0] == window
    parsed = protocol.parse(call_text(arguments), "tool")
    (call,) = parsed.tool_calls
    assert call.span == window and (call.span_error is None) == (window is not None)
    assert parsed.format_score == (1.0 if window is not None else 0.5)


@pytest.mark.parametrize(("arguments", "window", "schema_states_it"), CASES)
def test_the_prompt_schema_agrees_wherever_json_schema_can_state_the_rule(arguments, window, schema_states_it):
    errors = list(jsonschema.Draft202012Validator(PARAMETERS).iter_errors(arguments))
    if schema_states_it:
        assert (not errors) == (window is not None), errors
    else:
        assert not errors  # the schema cannot say it: the parser, tool and rewards do


@pytest.mark.parametrize(("arguments", "window", "_"), CASES)
def test_the_tool_agrees_and_only_adds_what_needs_the_video(arguments, window, _):
    tool = TemporalZoom(INFO, Budget(visual_tokens=1024), geometry=PAPER_GEOMETRY, min_seconds=1.0)
    result = tool(arguments)
    assert (result.error is None) == (result.clip is not None) == (window is not None)
    if window is None:
        assert result.error == protocol.check_zoom_arguments(arguments)[1]  # the same words as the parser
    else:
        assert result.clip is not None
        span = result.clip.span
        start, end = min(window[0], INFO.duration), min(window[1], INFO.duration)
        assert span.start <= start and end <= span.end  # clamped, widened, never narrowed
        assert span.length >= 1.0 and span.end <= INFO.duration


QUESTION = Question(
    id="q", video="v.mp4", question="Q?", options=("a", "b"), answer=0, gt_spans=(Span(start=0.0, end=8.0),)
)


def finite_number(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond any float
        return False


def rewards(text: str, spans: tuple[Span, ...]) -> dict[str, float]:
    turn = TurnTrace(round=0, text=text)
    result = GroundedAnswer(question_id="q", status="answered", answer="A", spans=spans, turns=(turn,))
    return trajectory_rewards(QUESTION, result, zoom=0.0, weights={"format": 1.0, "iou": 1.0})


@pytest.mark.parametrize(("arguments", "window", "_"), CASES)
def test_the_rewards_agree(arguments, window, _):
    assert rewards(call_text(arguments), ())["format"] == (1.0 if window is not None else 0.5)
    values = [arguments.get("start"), arguments.get("end")]
    if set(arguments) != set(protocol.ZOOM_ARGUMENTS) or not all(finite_number(v) for v in values):
        return  # evidence spans are two finite numbers
    glue = protocol.parse(f"<answer>A</answer>\n<glue>[({values[0]!r}, {values[1]!r})]</glue>", "tool")
    assert glue.spans_valid == (window is not None)
    if values[0] <= values[1]:  # a Span holds it, so the IoU reward can be given it
        span = Span(start=float(values[0]), end=float(values[1]))
        expected = multi_iou([span.as_tuple()], QUESTION.gt_spans) if window is not None else 0.0
        assert rewards("", (span,))["iou"] == expected


def test_the_table_tells_the_decisions_apart():
    # a negative start scores IoU 0 even where its overlap would count, and a moment is kept
    assert multi_iou([(-2.0, 5.0)], [Span(start=0.0, end=8.0)]) > 0
    assert protocol.check_window(4.0, 4.0) is None and protocol.check_window(-2.0, 5.0) == "start -2 is negative"


def test_every_reader_names_the_same_tool_and_arguments():
    assert protocol.ZOOM_TOOL_SCHEMA["function"]["name"] == protocol.ZOOM_TOOL_NAME == "temporal_zoom"
    assert set(PARAMETERS["properties"]) == set(PARAMETERS["required"]) == set(protocol.ZOOM_ARGUMENTS)
    assert protocol.ZOOM_TOOL_NAME in protocol.system_prompt("tool", max_zoom_rounds=1)
    assert json.dumps(protocol.ZOOM_TOOL_SCHEMA) in protocol.question_prompt("Q?", ["a", "b"], dialect="tool")
    assert protocol.parse(protocol.format_tool_call(2, 6), "tool").tool_calls[0].span == (2.0, 6.0)
