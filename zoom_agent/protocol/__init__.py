"""Prompt templates and the response parser for the two output dialects (docs/architecture.md §4).

This package is the public face; import from here (``from zoom_agent import protocol``).
Modules: `scan` (bounded readers: tags, numbers, spans, letters; `check_window`, the rule
for every time window a reply holds), `zoom_call` (the ``temporal_zoom`` call's contract:
name, JSON schema, `check_zoom_arguments`), `parser` (`parse` and the result types),
`answers` (strict and lenient answer letters), `prompts` (prompt templates and well-formed
replies), `timestamps` (`strip_timestamps`).

Dialects:

- ``tool`` (default): a turn either calls the zoom tool, Hermes style, one or more times
  (several calls in one turn = parallel zoom)::

      <think> ... <time>(5.2, 10.4)</time> ... </think>
      <tool_call>{"name": "temporal_zoom", "arguments": {"start": 5.2, "end": 10.4}}</tool_call>

  or answers::

      <think> ... </think>
      <answer>B</answer>
      <glue>[(5.2, 10.4), (20.0, 23.5)]</glue>

  ``<think>`` is optional in both forms. A question without options (open-ended) is
  answered in free text: ``<answer>a red bicycle</answer>``.
- ``zoomzero``: the paper's one-shot layout (docs/method.md §2): ``<think>`` (required) with
  ``<time>`` tags inside, then ``<answer>``, then ``<glue>``; the graph zooms on the glue spans.

Regions: every `Region` covers a whole tagged element, opening tag through closing tag
(``<answer>B</answer>``, ``<glue>[...]</glue>``, ``<time>(1, 2)</time>``, one
``<tool_call>...</tool_call>``, one ``<think>...</think>``). BPE tokenizers merge tag
characters with their content (``>B<``, ``>(5``), so a token mask built from these offsets,
by overlap or by containment, always includes the content tokens; the paper's fixed
5-token answer window likewise covered the tag tokens. An unclosed ``<think>`` (a reply cut
at the token limit) still yields a reasoning region up to the end of the text.

Safety (docs/quality.md): model output is data. `parse` never raises and never evaluates:
only the first `MAX_PARSE_CHARS` characters are read, tags are found with ``str.find``,
numbers with bounded regexes, tool calls with ``json.loads`` (at most
`MAX_TOOL_CALL_CHARS` each), and at most `MAX_SPANS` glue spans are read.
"""

from zoom_agent.protocol.answers import extract_answer_lenient, extract_answer_strict
from zoom_agent.protocol.parser import SPAN_KINDS, Dialect, Parsed, Region, RegionKind, ToolCall, parse
from zoom_agent.protocol.prompts import (
    clip_caption,
    dropped_calls_note,
    follow_up_prompt,
    format_answer,
    format_reminder,
    format_tool_call,
    question_prompt,
    system_prompt,
)
from zoom_agent.protocol.scan import (
    MAX_ANSWER_CHARS,
    MAX_PARSE_CHARS,
    MAX_SPANS,
    MAX_TOOL_CALL_CHARS,
    Interval,
    check_window,
)
from zoom_agent.protocol.timestamps import strip_timestamps
from zoom_agent.protocol.zoom_call import ZOOM_ARGUMENTS, ZOOM_TOOL_NAME, ZOOM_TOOL_SCHEMA, check_zoom_arguments

__all__ = [
    "MAX_ANSWER_CHARS",
    "MAX_PARSE_CHARS",
    "MAX_SPANS",
    "MAX_TOOL_CALL_CHARS",
    "SPAN_KINDS",
    "ZOOM_ARGUMENTS",
    "ZOOM_TOOL_NAME",
    "ZOOM_TOOL_SCHEMA",
    "Dialect",
    "Interval",
    "Parsed",
    "Region",
    "RegionKind",
    "ToolCall",
    "check_window",
    "check_zoom_arguments",
    "clip_caption",
    "dropped_calls_note",
    "extract_answer_lenient",
    "extract_answer_strict",
    "follow_up_prompt",
    "format_answer",
    "format_reminder",
    "format_tool_call",
    "parse",
    "question_prompt",
    "strip_timestamps",
    "system_prompt",
]
