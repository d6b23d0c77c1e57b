"""Which characters of a completion each of its tokens produced: one function, both backends.

A backend returns a completion's text and, per token, the string that token decodes to:
vLLM in its logprobs (``logprobs.content[i].token``), transformers through `token_pieces`.
`token_offsets` maps those strings back onto the text, so a token mask can be built from
character regions (training) and an answer's confidence read from its letter's token
(`zoom_agent.graphs.arbitration`).

Token strings decoded one at a time do not always concatenate to the text:

- a character split over byte-level tokens decodes as U+FFFD pieces (``" \\ufffd"``,
  ``"\\ufffd0"``): a run of U+FFFD matches the non-ASCII characters up to the next literal
  and gives them to the run's last token, the one completing them (a U+FFFD the text holds
  itself, for bytes that never became a character, matches one to one);
- vLLM reports a token that ends inside an incomplete UTF-8 sequence as ``""`` (its text
  is held back until a later token completes the character), while the text holds U+FFFD
  for bytes that never completed: a U+FFFD that no token spells, and a held-back tail of
  the text ending in one, belong to the last such silent token before them;
- EOS may show as ``<|im_end|>`` (a token whose first character does not match the text is
  left out of it: an empty range), or as ``""`` when special tokens are skipped;
- a stop string cuts the text inside a token: the tokens past the cut end there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

REPLACEMENT = "\ufffd"  # what a decoder writes for bytes that are not (yet) a UTF-8 character


class Decoder(Protocol):
    """What `token_pieces` needs of a tokenizer (a transformers tokenizer has it)."""

    def batch_decode(self, sequences: list[list[int]], *, skip_special_tokens: bool) -> list[str]: ...


def token_pieces(tokenizer: Decoder, ids: Sequence[int]) -> list[str]:
    """Each token decoded on its own, special tokens skipped (as the completion text is)."""
    return list(tokenizer.batch_decode([[int(i)] for i in ids], skip_special_tokens=True))


def _silent_token(tokens: Sequence[str], before: int, ends: dict[int, int]) -> int | None:
    """The last token reported as ``""`` before token ``before`` and after every placed one."""
    floor = max(ends, default=-1)
    return next((j for j in range(before - 1, floor, -1) if tokens[j] == ""), None)


def token_offsets(text: str, tokens: Sequence[str]) -> tuple[tuple[int, int], ...] | None:
    """``[start, end)`` of each token's string in ``text`` (see the module notes).

    Args:
        text: the completion text (special tokens skipped; maybe cut by a stop string).
        tokens: the string of each generated token, in order.

    Returns:
        One range per token, contiguous from 0; tokens past the text end there. None when
        the strings do not spell the text (e.g. ``token_id:N`` strings).

    Example:
        >>> token_offsets("gé a", ["g", "\\ufffd", "\\ufffd", " a"])
        ((0, 1), (1, 1), (1, 2), (2, 4))
        >>> token_offsets("ab\\ufffd", ["ab", "", "<|im_end|>"])  # vLLM: an incomplete byte token
        ((0, 2), (2, 3), (3, 3))
    """
    stream = [(i, ch) for i, tok in enumerate(tokens) for ch in tok]
    ends: dict[int, int] = {}
    p = q = 0
    while q < len(stream) and p < len(text):
        i, ch = stream[q]
        if text[p] == ch:  # U+FFFD included: bytes that never became a character, in both
            p += 1
            ends[i] = p
            q += 1
        elif ch == REPLACEMENT:
            run_end = q
            while run_end < len(stream) and stream[run_end][1] == REPLACEMENT:
                run_end += 1
            after = stream[run_end][1] if run_end < len(stream) else None
            if not text[p].isascii():  # else: the text wrote fewer U+FFFD than the tokens did
                p += 1
                while p < len(text) and not text[p].isascii() and text[p] != after:
                    p += 1
                ends[stream[run_end - 1][0]] = p
            q = run_end
        elif text[p] == REPLACEMENT and (silent := _silent_token(tokens, i, ends)) is not None:
            while p < len(text) and text[p] == REPLACEMENT:
                p += 1
            ends[silent] = p
        elif i in ends or (q > 0 and stream[q - 1][0] == i):
            return None  # a mismatch inside a token
        else:
            while q < len(stream) and stream[q][0] == i:
                q += 1
    if p < len(text) and text.endswith(REPLACEMENT):  # the tail vLLM held back, never completed
        silent = _silent_token(tokens, len(tokens), ends)
        if silent is not None:
            ends[silent] = p = len(text)
    if p < len(text):
        return None
    offsets, start = [], 0
    for i in range(len(tokens)):
        end = max(ends.get(i, start), start)
        offsets.append((start, end))
        start = end
    return tuple(offsets)
