"""Advantages for GRPO: sequence-level, per channel, and token-selective (docs/method.md §4).

Plain GRPO gives every token of a response the same advantage. Zoom-Zero's token-selective
credit ("TokenAdv" in their code) gives each reward channel only to the tokens responsible
for it: the grounding channel (temporal IoU) to reasoning and span tokens, the answer channel
to answer tokens, the shared channels (format, zoom-in accuracy) to every policy token.

Shapes: rewards (B,), group ids (B,), masks and advantages (B, T).

Why it is fast: a token's advantage depends only on its sequence and on which regions it lies
in. With two region masks (span, answer) under the loss mask a token falls in one of four
classes (reasoning, span, answer, span+answer) or none; so both variants are computed on a
(B, 5) table of per-class values and spread to (B, T) by one gather. Group statistics are
weighted by how many tokens each (sequence, class) cell holds, which is exactly the mean and
unbiased variance over all loss-masked tokens of a group. No Python loop touches sequences
or tokens. Statistics are computed in float64 so that near-equal rewards are not turned into
float32 rounding noise divided by eps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

import torch
from torch import Tensor

from zoom_agent.training.core.rewards import PAPER_WEIGHTS

CHANNELS: tuple[str, ...] = tuple(PAPER_WEIGHTS)
"""The reward channels token-selective credit distributes: the paper's parts (docs/method.md §3)."""

REGION_MASKS: tuple[str, ...] = ("span", "answer")
"""Region masks a caller provides (from `training.core.masks`): span/timestamp and answer tokens."""

REGIONS: tuple[str, ...] = ("all", "reasoning", "span", "answer")
"""Regions a channel may credit; all = loss_mask, reasoning = loss_mask & ~span & ~answer."""

DEFAULT_CHANNEL_REGIONS: Mapping[str, tuple[str, ...]] = {
    # Their code: m_iou covers reasoning + span tokens, m_acc the answer tokens, and the
    # format and zoom-in channels are shared by every policy token.
    "format": ("all",),
    "zoom": ("all",),
    "iou": ("reasoning", "span"),
    "answer": ("answer",),
}

# Their code's constants: variant A divides by the at most 3 channels a token receives by
# default (iou and answer are disjoint), variant B by the 4 channels.
VARIANT_A_SCALE = 1.0 / 3.0
VARIANT_B_SCALE = 1.0 / 4.0

# Token classes of the (B, 5) table; a class is the set of regions the token lies in.
_REASONING, _SPAN, _ANSWER, _SPAN_ANSWER, _OUTSIDE = 0, 1, 2, 3, 4
_CLASS_REGIONS: tuple[frozenset[str], ...] = (
    frozenset({"all", "reasoning"}),
    frozenset({"all", "span"}),
    frozenset({"all", "answer"}),
    frozenset({"all", "span", "answer"}),
)
_NUM_CLASSES = 5

Variant = Literal["A", "B"]
SingleResponse = Literal["zero", "raw"]
"""A group of one response: ``zero`` = advantage 0 (ours: nothing to compare it with);
``raw`` = their code's group statistics for it, mean 0 and std 1, so the advantage is the
reward (variant B: the token score s_t) divided by 1 + eps."""


def grpo_advantages(
    rewards: Tensor,
    group: Tensor,
    *,
    eps: float = 1e-6,
    normalize_std: bool = True,
    single_response: SingleResponse = "zero",
) -> Tensor:
    """Sequence-level GRPO advantage: ``(r - mean_g) / (std_g + eps)`` within each group.

    Args:
        rewards: (B,) reward of each sampled response.
        group: (B,) integer id of the prompt each response belongs to (G samples per prompt
            share an id; ids need not be contiguous or sorted).
        eps: added to the std (their code: 1e-6).
        normalize_std: divide by the unbiased group std; False gives Dr.GRPO's ``r - mean``.
        single_response: a group of one: ``"zero"`` (ours) or ``"raw"`` (their code: mean 0,
            std 1, so ``r / (1 + eps)``; ``r`` without ``normalize_std``).

    Returns:
        (B,) advantages in the rewards' floating dtype (float32 for integer/bool rewards).
        A group whose rewards are all equal gets exactly 0, never NaN; so does a group of
        one unless ``single_response="raw"``.

    Example:
        >>> grpo_advantages(torch.tensor([1.0, 0.0, 0.5, 0.5]), torch.tensor([0, 0, 1, 1]))
        tensor([ 0.7071, -0.7071,  0.0000,  0.0000])
    """
    batch = _check_group(group)
    values = _check_reward(rewards, "rewards", batch)
    inverse, num_groups = _group_index(group)
    out = _group_zscore(values.double()[:, None], None, inverse, num_groups, eps, normalize_std)
    if _check_single(single_response) == "raw":
        scale = 1.0 / (1.0 + eps) if normalize_std else 1.0
        out = torch.where(_single_rows(inverse, num_groups)[:, None], values.double()[:, None] * scale, out)
    return out[:, 0].to(_out_dtype([rewards]))


def token_selective_advantages(
    rewards: Mapping[str, Tensor],
    regions: Mapping[str, Tensor],
    loss_mask: Tensor,
    group: Tensor,
    *,
    variant: Variant = "B",
    channel_regions: Mapping[str, Iterable[str]] | None = None,
    eps: float = 1e-6,
    zero_constant_groups: bool = True,
    single_response: SingleResponse = "zero",
) -> Tensor:
    """Token-selective advantages (Zoom-Zero's TokenAdv), variants A and B of docs/method.md §4.

    m_k(t) = 1 where token t lies in one of channel k's regions.

    - Variant A (normalise per channel, then mask):
      ``A_t = (1/3) * sum_k m_k(t) * Â_k``, Â_k the per-group GRPO advantage of channel k
      (`grpo_advantages` of its rewards).
    - Variant B (mask raw rewards, then normalise): ``s_t = (1/4) * sum_k m_k(t) * r_k``, then
      ``A_t = (s_t - mean) / (std + eps)`` with mean and unbiased std over all loss-masked
      tokens of the group.

    Args:
        rewards: exactly the `CHANNELS` -> (B,) rewards.
        regions: exactly "span" (time tags, glue, zoom-call arguments) and "answer" -> (B, T)
            bool masks (see `training.core.masks`). Tokens outside loss_mask are ignored.
        loss_mask: (B, T) bool (or 0/1), 1 on tokens the policy sampled.
        group: (B,) integer group ids (one id per prompt).
        variant: "A" or "B" (their code's default is B).
        channel_regions: channel -> regions among "all", "reasoning", "span", "answer";
            channels left out keep the default (format, zoom -> all; iou -> reasoning + span;
            answer -> answer). An empty list credits the channel to no token.
        eps: added to the std.
        zero_constant_groups: variant B only (ours): 0 for a group whose responses all have
            the same rewards; False = their formula, which still z-scores such a group's
            tokens by class (A is 0 there either way: each channel is constant).
        single_response: a group of one response: ``"zero"`` (ours) gives its tokens 0;
            ``"raw"`` (their code: the group's mean 0 and std 1) gives variant A
            ``(1/3) * sum_k m_k(t) * r_k / (1 + eps)`` and variant B ``s_t / (1 + eps)``.
            Either way it holds whatever ``zero_constant_groups`` says (before this option,
            B z-scored a lone response's tokens by class when that was False).

    Returns:
        (B, T) advantages in the rewards' floating dtype; never NaN. Exactly 0 wherever
        loss_mask is 0, and for every token of a group whose responses all have the same
        rewards (zero variance; a group of one included unless ``single_response="raw"``)
        in both variants. Also 0: a channel's term in A when that channel is constant over
        the group; all of a group's tokens in B when its loss-masked tokens all share one
        s_t or number fewer than two.
    """
    if variant not in ("A", "B"):
        raise ValueError(f"variant must be 'A' or 'B', got {variant!r}")
    batch, _ = _check_mask(loss_mask, "loss_mask", None)
    _check_group(group, batch)
    device = loss_mask.device  # the (B, T) work happens where the masks live
    stacked = _check_channels(rewards, batch).to(device)  # (B, C) float64
    span, answer = _check_regions(regions, loss_mask.shape)
    member = _channel_class_membership(channel_regions, device)  # (C, 4)

    cls = _token_classes(loss_mask.bool(), span.to(device), answer.to(device)).long()  # (B, T) in [0, 5)
    inverse, num_groups = _group_index(group.to(device))
    raw = _check_single(single_response) == "raw"
    single = _single_rows(inverse, num_groups)[:, None]
    if variant == "A":
        channel_adv = _group_zscore(stacked, None, inverse, num_groups, eps, True)  # Â_k, (B, C)
        if raw:  # their mean 0, std 1: the raw channel rewards
            channel_adv = torch.where(single, stacked / (1.0 + eps), channel_adv)
        table = _class_table(channel_adv, member, VARIANT_A_SCALE)  # (B, 4): A_t of each class
    else:
        table = _variant_b_table(stacked, member, cls, inverse, num_groups, eps, zero_constant_groups)
        # A lone response's tokens would otherwise be z-scored against each other by class.
        alone = _class_table(stacked, member, VARIANT_B_SCALE) / (1.0 + eps) if raw else torch.zeros_like(table)
        table = torch.where(single, alone, table)  # theirs: the raw token scores s_t; ours: 0
    table = torch.cat([table, table.new_zeros(batch, 1)], 1).to(_out_dtype(list(rewards.values())))
    return torch.gather(table, 1, cls)  # class 4 (outside the loss mask) reads the 0 column


def _variant_b_table(
    stacked: Tensor, member: Tensor, cls: Tensor, inverse: Tensor, num_groups: int, eps: float, zero_constant: bool
) -> Tensor:
    """(B, 4) variant-B advantage of each token class: s_t z-scored over the group's tokens."""
    batch = stacked.shape[0]
    scores = _class_table(stacked, member, VARIANT_B_SCALE)  # (B, 4): s_t of each class
    ones = torch.ones((), dtype=torch.int64, device=cls.device).expand(cls.shape)
    counts = cls.new_zeros(batch, _NUM_CLASSES).scatter_add_(1, cls, ones)[:, :4].double()
    # One pool per group over all its tokens: flatten the (sequence, class) cells, each
    # weighted by how many tokens it holds.
    cells = inverse.repeat_interleave(4)
    flat = _group_zscore(scores.reshape(-1, 1), counts.reshape(-1, 1), cells, num_groups, eps, True)
    # Token-level normalisation alone would still rank a group's answer tokens against its
    # reasoning tokens when every response scored the same; with no difference between
    # responses (zero reward variance, or a group of one) there is no signal: 0 (ours).
    if not zero_constant:
        return flat.view(batch, 4)
    constant = _rewards_constant_in_group(stacked, inverse, num_groups)
    return flat.view(batch, 4).masked_fill(constant[:, None], 0.0)


def _class_table(per_channel: Tensor, member: Tensor, scale: float) -> Tensor:
    """(B, 4): ``scale * sum_k m_k(c) * x_k`` for each token class c, channels summed in order."""
    total = per_channel[:, :1] * member[0]
    for k in range(1, member.shape[0]):  # over the 4 channels, not over sequences or tokens
        total = total + per_channel[:, k : k + 1] * member[k]
    return scale * total


def _group_zscore(
    values: Tensor,
    weights: Tensor | None,
    inverse: Tensor,
    num_groups: int,
    eps: float,
    normalize_std: bool,
) -> Tensor:
    """Weighted per-group z-score of each column of ``values`` (N, C), in float64.

    Row n belongs to group ``inverse[n]``; ``weights`` (N, C) counts how many items a cell
    stands for (None = 1 each), so the statistics are those of the expanded items: mean,
    and unbiased variance with divisor ``sum(w) - 1``. Cells of groups with fewer than two
    items, or whose weighted items are all equal, get exactly 0.
    """
    w = torch.ones_like(values) if weights is None else weights
    cols = values.shape[1]
    n = values.new_zeros(num_groups, cols).index_add_(0, inverse, w)
    total = values.new_zeros(num_groups, cols).index_add_(0, inverse, w * values)
    mean = total / n.clamp_min(1.0)
    centred = values - mean[inverse]
    out = centred
    if normalize_std:
        sq = values.new_zeros(num_groups, cols).index_add_(0, inverse, w * centred * centred)
        std = (sq / (n - 1.0).clamp_min(1.0)).sqrt()
        out = centred / (std[inverse] + eps)
    # Exactly-equal values (max == min) mean zero variance: 0, not rounding noise / eps.
    present = w > 0
    index = inverse[:, None].expand(-1, cols)
    hi = values.new_full((num_groups, cols), -torch.inf).scatter_reduce(
        0, index, values.masked_fill(~present, -torch.inf), "amax"
    )
    lo = values.new_full((num_groups, cols), torch.inf).scatter_reduce(
        0, index, values.masked_fill(~present, torch.inf), "amin"
    )
    degenerate = (n < 2.0) | (hi <= lo)
    return out.masked_fill(degenerate[inverse] | ~present, 0.0)


def _rewards_constant_in_group(stacked: Tensor, inverse: Tensor, num_groups: int) -> Tensor:
    """(B,) bool: every channel's reward is the same for all responses of this row's group."""
    index = inverse[:, None].expand_as(stacked)
    shape = (num_groups, stacked.shape[1])
    hi = stacked.new_full(shape, -torch.inf).scatter_reduce(0, index, stacked, "amax")
    lo = stacked.new_full(shape, torch.inf).scatter_reduce(0, index, stacked, "amin")
    return (hi == lo).all(1)[inverse]


def _single_rows(inverse: Tensor, num_groups: int) -> Tensor:
    """(B,) bool: this row is the only response of its group."""
    sizes = torch.bincount(inverse, minlength=num_groups)
    return sizes[inverse] == 1


def _check_single(single_response: str) -> str:
    if single_response not in ("zero", "raw"):
        raise ValueError(f"single_response must be 'zero' or 'raw', got {single_response!r}")
    return single_response


def _group_index(group: Tensor) -> tuple[Tensor, int]:
    """Contiguous group indices 0..G-1 for arbitrary integer ids, and G."""
    uniq, inverse = torch.unique(group, return_inverse=True)
    return inverse, int(uniq.numel())


def _token_classes(loss_mask: Tensor, span: Tensor, answer: Tensor) -> Tensor:
    """(B, T) uint8 class of each token: reasoning, span, answer, span+answer, or outside.

    Bit arithmetic on one-byte views: the (B, T) work here is the bulk of the whole cost.
    """
    code = span.view(torch.uint8) | (answer.view(torch.uint8) << 1)
    return code.masked_fill_(~loss_mask, _OUTSIDE)


def _channel_class_membership(channel_regions: Mapping[str, Iterable[str]] | None, device: torch.device) -> Tensor:
    """(C, 4) float64: 1 where channel k credits token class c (m_k for each class)."""
    resolved: dict[str, tuple[str, ...]] = dict(DEFAULT_CHANNEL_REGIONS)
    for channel, names in (channel_regions or {}).items():
        if channel not in CHANNELS:
            raise ValueError(f"channel_regions has unknown channel {channel!r}; expected one of {CHANNELS}")
        if isinstance(names, str):
            raise TypeError(f"channel_regions[{channel!r}] must be a list of region names, got a string")
        names = tuple(names)
        bad = [r for r in names if r not in REGIONS]
        if bad:
            raise ValueError(f"channel_regions[{channel!r}] has unknown regions {bad}; expected {REGIONS}")
        resolved[channel] = names
    rows = [[float(bool(set(resolved[k]) & c)) for c in _CLASS_REGIONS] for k in CHANNELS]
    return torch.tensor(rows, dtype=torch.float64, device=device)


def _check_group(group: Tensor, batch: int | None = None) -> int:
    if not isinstance(group, Tensor) or group.ndim != 1:
        raise ValueError(f"group must be a 1-D integer tensor of group ids, got {_describe(group)}")
    if group.dtype.is_floating_point or group.dtype.is_complex or group.dtype == torch.bool:
        raise ValueError(f"group must hold integer ids, got dtype {group.dtype}")
    if batch is not None and group.shape[0] != batch:
        raise ValueError(f"group must have shape ({batch},) to match the batch, got {tuple(group.shape)}")
    return int(group.shape[0])


def _check_reward(value: Tensor, name: str, batch: int) -> Tensor:
    if not isinstance(value, Tensor) or value.shape != (batch,):
        raise ValueError(f"{name} must be a tensor of shape ({batch},), got {_describe(value)}")
    if value.dtype.is_complex:
        raise ValueError(f"{name} must be real, got dtype {value.dtype}")
    if value.dtype.is_floating_point and not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name} must be finite, got NaN or inf")
    return value


def _check_channels(rewards: Mapping[str, Tensor], batch: int) -> Tensor:
    """(B, C) float64 rewards in CHANNELS order; errors name missing or unknown channels."""
    unknown = sorted(set(rewards) - set(CHANNELS))
    missing = [k for k in CHANNELS if k not in rewards]
    if unknown or missing:
        raise ValueError(f"rewards must have exactly the channels {CHANNELS}; unknown {unknown}, missing {missing}")
    return torch.stack([_check_reward(rewards[k], f"rewards[{k!r}]", batch).double() for k in CHANNELS], 1)


def _check_mask(mask: Tensor, name: str, shape: tuple[int, ...] | None) -> tuple[int, int]:
    if not isinstance(mask, Tensor) or mask.ndim != 2:
        raise ValueError(f"{name} must be a (B, T) tensor, got {_describe(mask)}")
    if shape is not None and tuple(mask.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)} like loss_mask, got {tuple(mask.shape)}")
    if mask.dtype != torch.bool and bool(((mask != 0) & (mask != 1)).any()):
        raise ValueError(f"{name} must be bool or hold only 0 and 1")
    return int(mask.shape[0]), int(mask.shape[1])


def _check_regions(regions: Mapping[str, Tensor], shape: torch.Size) -> tuple[Tensor, Tensor]:
    unknown = sorted(set(regions) - set(REGION_MASKS))
    missing = [k for k in REGION_MASKS if k not in regions]
    if unknown or missing:
        raise ValueError(f"regions must have exactly {REGION_MASKS}; unknown {unknown}, missing {missing}")
    for k in REGION_MASKS:
        _check_mask(regions[k], f"regions[{k!r}]", tuple(shape))
    return regions["span"].bool(), regions["answer"].bool()


def _out_dtype(tensors: list[Tensor]) -> torch.dtype:
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype if dtype.is_floating_point else torch.float32


def _describe(value: object) -> str:
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    return f"{type(value).__name__}"
