"""The same-budget guarantee at request time (docs/method.md §8).

Every model request's visual tokens are the sum over the clips it holds. With a declared
cap (`AgentConfig.request_token_cap`), `fit_request` drops the OLDEST clips of the
conversation first (the coarse view, then the earliest zoomed views), each replaced by one
text line naming the window it showed, until the request fits; the views of the newest
turn stay, since they answer the latest zoom calls (under a cap they share one budget).
The graph's state keeps every clip: only the request sent is trimmed, so each request is
fitted afresh.
"""

from __future__ import annotations

from collections.abc import Sequence

from zoom_agent.models.base import Turn
from zoom_agent.types import ClipRef


class RequestBudgetError(ValueError):
    """A single clip exceeds the per-request cap: nothing older is left to drop."""


def request_visual_tokens(turns: Sequence[Turn]) -> int:
    """Visual tokens of every clip in a conversation."""
    return sum(clip.visual_tokens for turn in turns for clip in turn.clips)


def fit_request(turns: Sequence[Turn], cap: int | None) -> list[Turn]:
    """The conversation with its oldest clips replaced by notes until it holds at most ``cap``
    visual tokens (unchanged when ``cap`` is None or it already fits).

    Raises:
        RequestBudgetError: the newest turn's clips alone exceed ``cap``.
    """
    out = list(turns)
    total = request_visual_tokens(out)
    if cap is None or total <= cap:
        return out
    last = len(out) - 1  # the newest turn's clips are never dropped
    positions = [
        (t, p) for t, turn in enumerate(out[:last]) for p, part in enumerate(turn.content) if isinstance(part, ClipRef)
    ]
    for t, p in positions:  # oldest first
        if total <= cap:
            break
        turn = out[t]
        clip = turn.content[p]
        assert isinstance(clip, ClipRef)
        note = f"[the earlier view of {clip.span} was removed to keep this request within {cap} visual tokens]"
        out[t] = turn.model_copy(update={"content": (*turn.content[:p], note, *turn.content[p + 1 :])})
        total -= clip.visual_tokens
    if total > cap:
        raise RequestBudgetError(
            f"request_token_cap {cap}: the newest turn's views alone hold {total} visual tokens; "
            "expected a cap of at least one view's budget"
        )
    return out
