"""Confidences from token logprobs, and coarse-vs-fine arbitration (docs/method.md §2).

The paper keeps the fine (zoomed) answer only if its answer-token probability beats the
coarse one, and the fine spans only if neither the answer nor the span confidence drops.
Without logprobs (scripted or hosted models) the last valid answer wins.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from zoom_agent.config import ConfidenceMethod
from zoom_agent.models.base import Completion
from zoom_agent.protocol import Parsed, Region
from zoom_agent.types import TurnTrace

OFFICIAL_TOP_K = 20  # their confidence_score(topk=20)


def _token_logprobs(completion: Completion, start: int, end: int) -> list[float]:
    """Logprobs of the sampled tokens whose characters overlap ``[start, end)``."""
    if completion.logprobs is None or completion.token_offsets is None:
        return []
    return [
        lp for (a, b), lp in zip(completion.token_offsets, completion.logprobs, strict=False) if a < end and start < b
    ]


def _letter_range(region: Region, letter: str) -> tuple[int, int]:
    """Character range of the answer letter inside an answer region (tags excluded)."""
    body_from = region.text.find(">") + 1 if region.text.startswith("<") else 0
    i = region.text.find(letter, body_from)
    i = body_from if i < 0 else i
    return region.start + i, region.start + i + len(letter)


def answer_confidence(completion: Completion, parsed: Parsed, method: ConfidenceMethod = "sampled") -> float | None:
    """How sure the reply is of its answer; None without logprobs or an answer.

    ``sampled`` (ours): the probability of the answer letter's token(s). ``official`` (their
    ``confidence_score``): the probability of the one token right after the text
    ``<answer`` of the last answer element.
    """
    if parsed.answer is None:
        return None
    regions = parsed.answer_regions()
    if not regions:
        return None
    if method == "official":
        return _official_answer_confidence(completion, regions[-1])
    logprobs = _token_logprobs(completion, *_letter_range(regions[-1], parsed.answer))
    return math.exp(sum(logprobs)) if logprobs else None


def _official_answer_confidence(completion: Completion, region: Region) -> float | None:
    if completion.logprobs is None or completion.token_offsets is None:
        return None
    tag_end = region.start + len("<answer")
    for i, (a, b) in enumerate(completion.token_offsets):
        if a < tag_end <= b:  # the token holding the tag's last character ('answer' in Qwen's '<', 'answer')
            return math.exp(completion.logprobs[i + 1]) if i + 1 < len(completion.logprobs) else None
    return None


def span_confidence(completion: Completion, parsed: Parsed, method: ConfidenceMethod = "sampled") -> float | None:
    """How sure the reply is of its evidence spans (the glue element); None without them.

    ``sampled`` (ours): the geometric-mean probability of the glue's tokens. ``official``
    (their ``confidence_score``): over the tokens of the glue's content, the mean of
    ``-mean(log p)`` of each step's top-20 probabilities (needs ``top_logprobs``; higher
    = a more peaked distribution; their long-video filter keeps spans above 10).
    """
    glue = [r for r in parsed.regions if r.kind == "glue"]
    if not glue or not parsed.spans:
        return None
    if method == "official":
        return _official_span_confidence(completion, glue[-1])
    logprobs = [lp for r in glue for lp in _token_logprobs(completion, r.start, r.end)]
    return math.exp(sum(logprobs) / len(logprobs)) if logprobs else None


def _official_span_confidence(completion: Completion, region: Region) -> float | None:
    top, offsets = completion.top_logprobs, completion.token_offsets
    if not top or offsets is None:
        return None
    start, end = region.start + len("<glue>"), region.end - len("</glue>")
    steps = [-sum(k) / len(k) for (a, b), k in zip(offsets, top, strict=False) if a < end and start < b and k]
    return sum(steps) / len(steps) if steps else None


def arbitrate(turns: Sequence[TurnTrace], *, use_confidence: bool = True) -> tuple[TurnTrace, TurnTrace] | None:
    """Pick the turn whose answer and the turn whose spans become the final result.

    Args:
        turns: the model turns of one question, in order.
        use_confidence: compare the first (coarse) and last (fine) answering turns by
            confidence as the paper does; otherwise the last valid answer wins.

    Returns:
        ``(answer_turn, span_turn)``, or None when no turn gave a valid answer.
    """
    answering = [t for t in turns if t.answer is not None]
    if not answering:
        return None
    coarse, fine = answering[0], answering[-1]
    fine_spans = fine if fine.spans else _last_with_spans(answering) or fine
    if coarse is fine or not use_confidence:
        return fine, fine_spans
    ca, fa = coarse.answer_confidence, fine.answer_confidence
    if ca is None or fa is None:
        return fine, fine_spans
    answer_turn = fine if fa > ca else coarse
    cs, fs = coarse.span_confidence, fine.span_confidence
    spans_ok = fine.spans and fa >= ca and (cs is None or fs is None or fs >= cs)
    span_turn = fine if spans_ok else (coarse if coarse.spans else fine_spans)
    return answer_turn, span_turn


def _last_with_spans(turns: Sequence[TurnTrace]) -> TurnTrace | None:
    return next((t for t in reversed(turns) if t.spans), None)
