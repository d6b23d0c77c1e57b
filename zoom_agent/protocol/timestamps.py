"""Timestamps out of reasoning, for the zoom verifier (docs/method.md §3)."""

from __future__ import annotations

import re

from zoom_agent.protocol.scan import MAX_PARSE_CHARS, find_elements

_N = r"\d{1,7}(?:\.\d{1,6})?"
_U = r"(?:s|secs?|seconds)\b"
_BARE_TIME = re.compile(
    rf"[(\[] {{0,4}}{_N} {{0,4}}(?:{_U})? {{0,4}}, {{0,4}}{_N} {{0,4}}(?:{_U})? {{0,4}}[)\]]"
    rf"|\b{_N} {{0,4}}(?:-|–|to|and) {{0,4}}{_N} {{0,4}}{_U}"
    rf"|\b{_N} {{0,4}}{_U}"
    r"|\b\d{1,2}:\d{2}(?::\d{2})?(?:\.\d{1,3})?\b"
)


def strip_time_tags(reasoning: str) -> str:
    """Remove only the ``<time>...</time>`` elements, as their fine pass does
    (``re.sub(r'<time>.*?</time>', '', think)``); other text, bare times included, stays.

    Args:
        reasoning: the text (only the first `MAX_PARSE_CHARS` characters are kept).

    Returns:
        The text without time tags, stripped.
    """
    return _without_time_elements(reasoning).strip()


def _without_time_elements(reasoning: str) -> str:
    text = reasoning[:MAX_PARSE_CHARS]
    elements, _ = find_elements(text, "time", [])
    pieces, pos = [], 0
    for e in elements:
        pieces.append(text[pos : e.start])
        pos = e.end
    return "".join([*pieces, text[pos:]])


def strip_timestamps(reasoning: str) -> str:
    """Remove time tags (with their content) and bare times from reasoning.

    The zoom verifier re-answers from the zoomed frames with the policy's reasoning minus
    its timestamps (docs/method.md §3), so it cannot copy times it was not shown.
    Removes ``<time>...</time>``, ``(5.2, 10.4)``, ``5-10 s``, ``12.3 s``, ``01:23``.

    Args:
        reasoning: the text (only the first `MAX_PARSE_CHARS` characters are kept).

    Returns:
        The text without timestamps, blanks tidied.
    """
    text = _without_time_elements(reasoning).replace("<time>", "").replace("</time>", "")
    text = _BARE_TIME.sub("", text)
    text = re.sub(r"[ \t]{2,}", " ", text)
    text = re.sub(r"[ \t]+([,.;:!?])", r"\1", text)
    return "\n".join(line.strip() for line in text.split("\n")).strip()
