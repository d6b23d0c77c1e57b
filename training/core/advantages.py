"""From a step's reward parts to an advantage on every policy token of every sequence.

The sequences of a step are ragged (each has its own number of policy tokens); this module
packs their region masks into one padded (B, P) batch, applies `credit` (token-selective or
plain GRPO, docs/method.md §4) and unpacks one (P_b,) tensor per sequence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

import torch
from torch import Tensor

from zoom_agent.training.core.credit import (
    CHANNELS,
    REGION_MASKS,
    SingleResponse,
    Variant,
    grpo_advantages,
    token_selective_advantages,
)

CreditMode = Literal["token-selective", "grpo"]


def policy_token_advantages(
    parts: Sequence[Mapping[str, float]],
    regions: Sequence[Mapping[str, Sequence[bool]]],
    group: Sequence[int],
    *,
    weights: Mapping[str, float],
    mode: CreditMode = "token-selective",
    variant: Variant = "B",
    channel_regions: Mapping[str, Iterable[str]] | None = None,
    eps: float = 1e-6,
    zero_constant_groups: bool = True,
    single_response: SingleResponse = "zero",
) -> list[Tensor]:
    """Per-token advantages of each sequence's policy tokens.

    Token-selective mode: `credit.token_selective_advantages` on the paper's channels (their
    weights in the total do not enter; the variant's own 1/3 or 1/4 does), plus, for any
    other part with a weight (the CI probe), that weight times its sequence-level GRPO
    advantage on every policy token (a shared channel). GRPO mode: the sequence-level
    advantage of the weighted total on every policy token.

    Args:
        parts: each sequence's reward parts, ``total`` included (`rewards.trajectory_rewards`).
        regions: each sequence's ``span`` and ``answer`` masks over its policy tokens only.
        group: each sequence's group id (its question).
        weights: part -> weight of the total.
        mode: ``"token-selective"`` or ``"grpo"``.
        variant, channel_regions, eps, zero_constant_groups, single_response: as
            `credit.token_selective_advantages` (``single_response`` also in GRPO mode and
            for the extra shared channels).

    Returns:
        One (P_b,) float32 tensor per sequence, P_b its number of policy tokens.
    """
    if not len(parts) == len(regions) == len(group):
        raise ValueError(f"need parts, regions and group per sequence, got {len(parts)}, {len(regions)}, {len(group)}")
    if not parts:
        return []
    lengths = [len(r["span"]) for r in regions]
    batch, width = len(parts), max(lengths)
    mask = torch.zeros(batch, width, dtype=torch.bool)
    packed = {name: torch.zeros_like(mask) for name in REGION_MASKS}
    for b, (r, n) in enumerate(zip(regions, lengths, strict=True)):
        mask[b, :n] = True
        for name in REGION_MASKS:
            packed[name][b, :n] = torch.tensor(list(r[name]), dtype=torch.bool)
    ids = torch.tensor(list(group))
    column = {k: torch.tensor([p[k] for p in parts], dtype=torch.float32) for k in (*CHANNELS, *weights, "total")}
    if mode == "grpo":
        adv = grpo_advantages(column["total"], ids, eps=eps, single_response=single_response)[:, None] * mask
    else:
        adv = token_selective_advantages(
            {k: column[k] for k in CHANNELS},
            packed,
            mask,
            ids,
            variant=variant,
            channel_regions=channel_regions,
            eps=eps,
            zero_constant_groups=zero_constant_groups,
            single_response=single_response,
        )
        for name, weight in weights.items():
            if name not in CHANNELS and weight > 0:  # extra shared channels (the CI probe)
                shared = grpo_advantages(column[name], ids, eps=eps, single_response=single_response)
                adv = adv + weight * shared[:, None] * mask
    return [adv[b, :n] for b, n in enumerate(lengths)]
