"""Answer extraction: the strict ``<answer>`` letter and the lenient secondary reading.

The strict form is what accuracy counts (docs/method.md §3); the lenient one only feeds the
secondary multiple-choice figure. Neither ever guesses: disagreeing letters give None.
"""

from __future__ import annotations

import re

from zoom_agent.protocol.scan import MAX_PARSE_CHARS, check_letters, find_elements, strict_letter


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
    check_letters(letters)
    elements, _ = find_elements(text[:MAX_PARSE_CHARS], "answer", [])
    return strict_letter(text[:MAX_PARSE_CHARS], elements, letters) if elements else None


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
    elements, _ = find_elements(text, "answer", [])
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
    check_letters(letters)
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
