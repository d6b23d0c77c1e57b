"""A slow, literal reference for `core.credit.token_selective_advantages` (tests and benchmark only).

Plain Python loops over sequences and tokens, written from the formulas of docs/method.md §4
and issue 6 §3 without the class-table trick of the vectorised code. The paper's default
channel regions are restated here on purpose (not imported), so that a change to either
copy is caught by the equivalence tests.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch
from torch import Tensor

_CHANNELS = ("format", "zoom", "iou", "answer")
_DEFAULT = {"format": ("all",), "zoom": ("all",), "iou": ("reasoning", "span"), "answer": ("answer",)}


def _zscores(values: list[float], eps: float) -> list[float]:
    """(v - mean) / (unbiased std + eps); all zeros for fewer than two values or all equal."""
    if len(values) < 2 or max(values) == min(values):
        return [0.0] * len(values)
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return [(v - mean) / (std + eps) for v in values]


def reference_token_selective_advantages(
    rewards: Mapping[str, Tensor],
    regions: Mapping[str, Tensor],
    loss_mask: Tensor,
    group: Tensor,
    *,
    variant: str = "B",
    channel_regions: Mapping[str, Iterable[str]] | None = None,
    eps: float = 1e-6,
) -> Tensor:
    """Same contract as `token_selective_advantages`, one token at a time; returns float64."""
    chosen = {**_DEFAULT, **{k: tuple(v) for k, v in (channel_regions or {}).items()}}
    r = {k: [float(x) for x in rewards[k].tolist()] for k in _CHANNELS}
    mask = [[bool(x) for x in row] for row in loss_mask.tolist()]
    span = [[bool(x) for x in row] for row in regions["span"].tolist()]
    answer = [[bool(x) for x in row] for row in regions["answer"].tolist()]
    groups = [int(g) for g in group.tolist()]
    batch, length = len(mask), len(mask[0]) if mask else 0

    def token_regions(b: int, t: int) -> set[str]:
        """The regions token t of sequence b lies in (empty outside the loss mask)."""
        if not mask[b][t]:
            return set()
        inside = {"all"}
        if span[b][t]:
            inside.add("span")
        if answer[b][t]:
            inside.add("answer")
        if not span[b][t] and not answer[b][t]:
            inside.add("reasoning")
        return inside

    def m(k: str, inside: set[str]) -> float:
        return 1.0 if inside.intersection(chosen[k]) else 0.0

    out = [[0.0] * length for _ in range(batch)]
    members: dict[int, list[int]] = {}
    for b, g in enumerate(groups):
        members.setdefault(g, []).append(b)

    if variant == "A":
        hat = {k: [0.0] * batch for k in _CHANNELS}
        for rows in members.values():
            for k in _CHANNELS:
                for b, z in zip(rows, _zscores([r[k][b] for b in rows], eps), strict=True):
                    hat[k][b] = z
        for b in range(batch):
            for t in range(length):
                if mask[b][t]:
                    inside = token_regions(b, t)
                    out[b][t] = (1.0 / 3.0) * sum(m(k, inside) * hat[k][b] for k in _CHANNELS)
    elif variant == "B":
        for rows in members.values():
            if len({tuple(r[k][b] for k in _CHANNELS) for b in rows}) == 1:
                continue  # every response scored the same (or a group of one): advantage 0
            cells = [(b, t) for b in rows for t in range(length) if mask[b][t]]
            scores = []
            for b, t in cells:
                inside = token_regions(b, t)
                scores.append((1.0 / 4.0) * sum(m(k, inside) * r[k][b] for k in _CHANNELS))
            for (b, t), z in zip(cells, _zscores(scores, eps), strict=True):
                out[b][t] = z
    else:
        raise ValueError(f"variant must be 'A' or 'B', got {variant!r}")
    return torch.tensor(out, dtype=torch.float64).reshape(batch, length)
