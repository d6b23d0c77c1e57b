"""The one token-offset function, fed as vLLM feeds it and as the transformers backend does.

vLLM reports each token's string in its logprobs: a token that ends inside an incomplete
UTF-8 sequence comes back as ``""`` while the text holds U+FFFD (issue 10, item 4: answer
confidences were lost). The transformers backend decodes each token on its own
(`token_pieces`). Both go through `token_offsets`.
"""

from __future__ import annotations

import doctest
import functools
import itertools
from typing import Any

import pytest
from fake_vllm import EOS, tokenize
from hypothesis import example, given
from hypothesis import strategies as st

from zoom_agent.models import token_offsets as module
from zoom_agent.models.token_offsets import token_offsets, token_pieces


@pytest.mark.parametrize(
    ("text", "tokens", "expected"),
    [
        ("Hello", ["Hel", "lo"], ((0, 3), (3, 5))),
        ("gé a", ["g", "\ufffd", "\ufffd", " a"], ((0, 1), (1, 1), (1, 2), (2, 4))),  # split character
        ("ab", ["ab", EOS], ((0, 2), (2, 2))),  # EOS past the text
        ("hello wor", ["hello", " world"], ((0, 5), (5, 9))),  # a stop string cut the last token
        ("", [EOS], ((0, 0),)),
        ("hi there", ["token_id:5", "token_id:6"], None),  # not this text's tokens
        ("\ufffd\ufffdG", ["\ufffd", "\ufffd", "G"], ((0, 1), (1, 2), (2, 3))),  # bytes that never joined
        ("\ufffd returned", ["\ufffd", "\ufffd", " returned"], ((0, 1), (1, 1), (1, 10))),  # 2 bytes, 1 U+FFFD
        # vLLM: an incomplete byte token is reported as "" and the text holds U+FFFD
        ("<answer>B</answer>\ufffd", ["<answer>", "B", "</answer>", ""], ((0, 8), (8, 9), (9, 18), (18, 19))),
        ("ab\ufffd", ["ab", "", "", EOS], ((0, 2), (2, 2), (2, 3), (3, 3))),  # the last silent token owns it
        ("a\ufffdb", ["a", "", "b"], ((0, 1), (1, 2), (2, 3))),  # mid-text: never completed
        ("ab\ufffd", ["ab"], None),  # a U+FFFD that no token reported, silent or not
        ("ab\ufffd", ["a", "b"], None),
    ],
)
def test_token_offsets_cases(text, tokens, expected):
    assert token_offsets(text, tokens) == expected


def check_cover(text: str, tokens: list[str], offsets: Any) -> None:
    assert offsets is not None and len(offsets) == len(tokens)
    assert offsets[0][0] == 0 and offsets[-1][1] == len(text)
    assert all(a[1] == b[0] and a[0] <= a[1] for a, b in itertools.pairwise(offsets))


@given(st.text(max_size=60))
def test_token_offsets_cover_any_text_for_byte_level_tokens(text: str):
    tokens = [t for _, t in tokenize(text)] + [EOS]
    offsets = token_offsets(text, tokens)
    check_cover(text, tokens, offsets)
    assert all(text[a:b] == t for (a, b), t in zip(offsets, tokens, strict=False) if "\ufffd" not in t and t != EOS)


def vllm_report(chunks: list[bytes]) -> tuple[str, list[str]]:
    """Text and per-token strings as vLLM's incremental detokenizer reports them: a token
    whose bytes leave the text ending in an incomplete character reports ``""`` (held
    back); the final text decodes what is left with U+FFFD."""
    shown, tokens, data = "", [], b""
    for chunk in chunks:
        data += chunk
        now = data.decode(errors="replace")
        if now.endswith("\ufffd"):
            tokens.append("")  # maybe a character still to come: held back
            continue
        tokens.append(now[len(shown) :])
        shown = now
    return data.decode(errors="replace"), tokens


@given(st.text(min_size=1, max_size=40), st.lists(st.integers(1, 4), min_size=1, max_size=80), st.booleans())
@example("ab€", [2, 1, 1], True)  # ends inside "€": tokens "ab", "", "" and the text "ab\ufffd"
@example("<answer>B</answer>漢", [8, 1, 9, 2], True)
@example("00\x80\x80\x80", [1, 2, 1], True)  # a held-back tail holding a whole character too
def test_vllm_reports_of_incomplete_byte_tokens_still_get_offsets(text: str, sizes: list[int], cut: bool):
    data = text.encode()
    if cut and len(data) > 1:
        data = data[:-1]  # generation stopped inside the last character (or after it)
    chunks, pos = [], 0
    for size in itertools.cycle(sizes):
        if pos >= len(data):
            break
        chunks.append(data[pos : pos + size])
        pos += size
    full, tokens = vllm_report(chunks)
    offsets = token_offsets(full, tokens)
    check_cover(full, tokens, offsets)
    assert all(full[a:b] == t for (a, b), t in zip(offsets, tokens, strict=True) if t)


@functools.cache
def tiny_tokenizer() -> Any:
    from zoom_agent.models.tiny import build_tiny_tokenizer

    return build_tiny_tokenizer()


def test_transformers_pieces_map_tokens_to_characters() -> None:
    from zoom_agent.models.tiny import token_id

    tok = tiny_tokenizer()
    text = "<think>é 漢 at 12.5 s</think>\n<answer>B</answer>"
    ids = [*tok(text)["input_ids"], token_id(tok, "<|im_end|>")]
    offsets = token_offsets(text, token_pieces(tok, ids))
    assert offsets is not None
    assert offsets[0] == (0, len("<think>")) and offsets[-1] == (len(text), len(text))  # EOS: empty
    assert [text[a:b] for a, b in offsets if text[a:b] in ("<answer>", "B", "</answer>")] == [
        "<answer>",
        "B",
        "</answer>",
    ]
    # "漢" is three bytes, split over byte-level tokens: the token completing it owns it.
    han = text.index("漢")
    owners = [i for i, (a, b) in enumerate(offsets) if a <= han < b]
    assert len(owners) == 1 and "".join(text[a:b] for a, b in offsets) == text
    cut = token_offsets(text[:10], token_pieces(tok, ids))  # text cut by a stop string
    assert cut is not None and cut[-1] == (10, 10) and "".join(text[:10][a:b] for a, b in cut) == text[:10]


@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=30))
def test_any_token_ids_of_the_tiny_tokenizer_get_offsets(ids: list[int]):
    tok = tiny_tokenizer()
    ids = [i % len(tok) for i in ids]
    text = tok.decode(ids, skip_special_tokens=True)
    pieces = token_pieces(tok, ids)
    offsets = token_offsets(text, pieces)
    check_cover(text, pieces, offsets)
    assert all(text[a:b] == p for (a, b), p in zip(offsets, pieces, strict=True) if p.isascii())


def test_the_docstring_examples_run():
    assert doctest.testmod(module, raise_on_error=True).attempted > 0
