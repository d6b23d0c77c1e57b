"""Token masks from character spans, through a tokenizer's offset mapping, for any tokenizer.

`protocol.parse` reports each region of a response (time tags, glue, zoom-call arguments,
the answer) as character offsets into the response text. A fast tokenizer reports, for each
token, the character range ``[a, b)`` it came from (``return_offsets_mapping=True``). This
module joins the two: token t is in a region's mask when its characters overlap the region.
Their code found answer tokens by hard-coded ids and a fixed 5-token window, which breaks
with any other tokenizer or layout; offsets do not.

The partial-overlap rule: token ``[a, b)`` is in the mask of span ``[s, e)`` when they share
at least one character, i.e. ``a < e and s < b``. So
- a token that only partly overlaps the region counts (BPE may merge a region's first or
  last character with its neighbour, e.g. ``">B"``; that token still carries the region's
  credit, and the mask always covers every character of the region);
- a token that merely touches the region (``b == s`` or ``a == e``) does not count;
- a zero-width token (``a == b``, e.g. special tokens an offset mapping reports as (0, 0))
  never counts, and neither does an empty span (``s == e``).
Two regions may therefore share a boundary token; `credit` handles tokens that lie
in several regions.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence

from torch import Tensor

from zoom_agent.spans import merge


def char_spans_to_token_mask(offsets: Sequence[tuple[int, int]], char_spans: Sequence[tuple[int, int]]) -> list[bool]:
    """Which tokens overlap any of the character spans (the partial-overlap rule above).

    Args:
        offsets: per token, its character range ``(a, b)`` in the text, ``0 <= a <= b``
            (a fast tokenizer's ``offset_mapping`` for one sequence).
        char_spans: character ranges ``(s, e)``, ``0 <= s <= e``, end exclusive.

    Returns:
        One bool per token: True when ``a < e and s < b`` for some span.

    Example:
        >>> char_spans_to_token_mask([(0, 0), (0, 3), (3, 8), (8, 9)], [(4, 8)])
        [False, False, True, False]
    """
    tokens = _check_pairs(offsets, "offsets")
    merged = _merge(_check_pairs(char_spans, "char_spans"))
    ends = [e for _, e in merged]
    mask = []
    for a, b in tokens:
        # The first merged span ending after a is the only one that can start before b.
        i = bisect.bisect_right(ends, a)
        mask.append(a < b and i < len(merged) and merged[i][0] < b)
    return mask


def region_token_masks(
    offsets: Sequence[tuple[int, int]], regions: Mapping[str, Sequence[tuple[int, int]]]
) -> dict[str, list[bool]]:
    """One token mask per named region (e.g. ``{"span": [...], "answer": [...]}``).

    Args:
        offsets: per token, its character range ``(a, b)``.
        regions: region name -> its character spans.

    Returns:
        region name -> one bool per token (see `char_spans_to_token_mask`).
    """
    return {name: char_spans_to_token_mask(offsets, spans) for name, spans in regions.items()}


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted union of the non-empty spans (touching spans join: same characters covered)."""
    return [(int(s), int(e)) for s, e in merge(p for p in spans if p[0] < p[1])]


def _check_pairs(pairs: Sequence[tuple[int, int]], name: str) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for i, pair in enumerate(pairs):
        try:
            start, end = pair
        except (TypeError, ValueError):
            raise ValueError(f"{name}[{i}] must be a (start, end) pair, got {pair!r}") from None
        if isinstance(start, bool) or isinstance(end, bool):
            raise ValueError(f"{name}[{i}] must hold integers, got {pair!r}")
        start, end = _as_int(start, name, i, pair), _as_int(end, name, i, pair)
        if not 0 <= start <= end:
            raise ValueError(f"{name}[{i}] must satisfy 0 <= start <= end, got {pair!r}")
        out.append((start, end))
    return out


def _as_int(value: object, name: str, i: int, pair: object) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, Tensor) and value.ndim == 0 and not value.dtype.is_floating_point:
        return int(value)
    index = getattr(value, "__index__", None)  # numpy integers
    if index is not None:
        return int(index())
    raise ValueError(f"{name}[{i}] must hold integers, got {pair!r}")
