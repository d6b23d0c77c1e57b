"""Qwen2.5-VL text positions after a video, as Qwen's reference places them.

Qwen2.5-VL gives vision tokens 3-D M-RoPE positions (time, height, width); the time axis of
a video advances ``second_per_grid_ts * tokens_per_second`` per temporal group. Qwen's
reference implementation (transformers' original Qwen2.5-VL, PR #35569; vLLM does the same)
starts the text after a vision block at ``max(vision positions) + 1``. transformers 5.x
(measured: 5.19 and 5.24) starts it at ``block start + max(h, w) / merge`` instead, which is
lower whenever the time axis outruns the frame's side, i.e. for most multi-group videos.
Then the transformers policy and vLLM score the same tokens at different positions: 0.05
apart in log-prob on the tiny model (docs/training.md §6).

`follow_reference_positions` wraps a loaded model's ``get_rope_index`` (used by the forward
pass and by ``generate``) so every text segment after a vision block starts at the
reference position. Vision positions are transformers' own; only the text is moved.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import torch


def reference_text_positions(
    positions: torch.Tensor, mm_token_type_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each text segment that follows a vision block to ``max(earlier positions) + 1``.

    Args:
        positions: ``(3, batch, length)`` M-RoPE positions as transformers computed them.
        mm_token_type_ids: ``(batch, length)``: 0 text, 1 image, 2 video.
        attention_mask: ``(batch, length)``; positions of masked tokens are left as they are.

    Returns:
        ``(positions, rope_deltas)``, the deltas ``(batch, 1)`` as transformers defines them
        (``max position + 1 - tokens``), which ``generate`` uses for the tokens it appends.
    """
    out = positions.clone()
    deltas = []
    for b in range(out.shape[1]):
        keep = (
            attention_mask[b].bool()
            if attention_mask is not None
            else torch.ones_like(mm_token_type_ids[b], dtype=torch.bool)
        )
        where = keep.nonzero().flatten()
        row = out[:, b, where]
        kinds = mm_token_type_ids[b, where].tolist()
        shift, previous_max, start = 0, None, 0
        while start < len(kinds):
            end = start
            while end < len(kinds) and kinds[end] == kinds[start]:
                end += 1
            row[:, start:end] += shift
            if kinds[start] == 0 and previous_max is not None:
                gap = int(previous_max) + 1 - int(row[0, start])
                row[:, start:end] += gap
                shift += gap
            previous_max = row[:, start:end].max()
            start = end
        out[:, b, where] = row
        deltas.append(int(row.max()) + 1 - len(kinds) if len(kinds) else 0)
    return out, torch.tensor(deltas, device=positions.device).unsqueeze(1)


def follow_reference_positions(model: Any) -> None:
    """Make a loaded Qwen2.5-VL (``...ForConditionalGeneration``) use the reference text positions.

    Raises:
        TypeError: the model has no ``model.get_rope_index`` taking ``mm_token_type_ids``
            (not a transformers 5.x Qwen2.5-VL).
    """
    inner: Any = getattr(model, "model", None)
    original = getattr(inner, "get_rope_index", None)
    if original is None or "mm_token_type_ids" not in inspect.signature(original).parameters:
        raise TypeError(f"{type(model).__name__} has no transformers 5.x Qwen2.5-VL get_rope_index to wrap")
    if getattr(original, "follows_reference", False):
        return
    signature = inspect.signature(original)

    @functools.wraps(original)
    def get_rope_index(*args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        positions, _ = original(*args, **kwargs)
        bound = signature.bind(*args, **kwargs).arguments
        return reference_text_positions(positions, bound["mm_token_type_ids"], bound.get("attention_mask"))

    get_rope_index.follows_reference = True  # type: ignore[attr-defined]
    inner.get_rope_index = get_rope_index
