"""The policy loss: per-token PPO-clip with an asymmetric clip, k3 KL, aggregation modes.

docs/method.md §4 (their code): clip range [1 - 0.2, 1 + 0.28] (DAPO's "clip higher"), KL to
the frozen reference with the k3 estimator and beta = 0.01, token-mean aggregation, entropy
bonus 0. Tool results, frames and the prompt carry loss mask 0.

Aggregation lives here only (`aggregate`, after verl's ``agg_loss``). A batch is often
scored in pieces (one sequence at a time, several ranks); each piece passes the *whole*
batch's counts (``tokens``, ``sequences``), so the pieces' losses and statistics simply add
up to the batch's: summing gradients over pieces and ranks gives the batch loss's gradient.

Masks are applied before any arithmetic: values at masked-out positions (padding, environment
tokens) may be anything, even inf or NaN, and still neither change the loss nor get a
gradient. An all-zero mask gives a loss of exactly 0 that is still part of the autograd graph
(``backward()`` works and yields zero gradients).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor

Aggregation = Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"]
AGGREGATIONS: tuple[str, ...] = get_args(Aggregation)

# Log-ratios are clamped before exp so that one wild token cannot overflow to inf
# (verl clamps the same way); within +-20 the values are exact.
_LOG_RATIO_CLAMP = 20.0


@dataclass(frozen=True)
class LossOutput:
    """The loss to back-propagate and detached statistics for logging.

    With batch counts passed to `policy_loss`, every field is this piece's share of the
    batch value: the fields of all pieces (and ranks) add up to the batch's.

    Attributes:
        loss: scalar, pg_loss + kl_coef * kl - entropy_coef * entropy (aggregated).
        pg_loss: the clipped policy-gradient term, aggregated like the loss.
        kl: k3 KL to the reference, aggregated like the loss (0 without a reference).
        clip_frac: fraction of masked tokens where the clipped branch is taken.
        entropy: mean per-token entropy over masked tokens (0 when not given).
        approx_kl: k3 estimate of KL(old || current) over masked tokens (drift in this update).
    """

    loss: Tensor
    pg_loss: Tensor
    kl: Tensor
    clip_frac: Tensor
    entropy: Tensor
    approx_kl: Tensor

    def metrics(self, prefix: str = "actor/") -> dict[str, float]:
        """Plain floats for logging (one device sync), keys ``prefix + name``."""
        names = ("loss", "pg_loss", "kl", "clip_frac", "entropy", "approx_kl")
        values = torch.stack([getattr(self, n).detach().float() for n in names]).tolist()
        return {prefix + n: float(v) for n, v in zip(names, values, strict=True)}


def policy_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    loss_mask: Tensor,
    *,
    ref_logprobs: Tensor | None = None,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    kl_coef: float = 0.01,
    entropy: Tensor | None = None,
    entropy_coef: float = 0.0,
    aggregation: Aggregation = "token-mean",
    max_len: int | None = None,
    tokens: float | None = None,
    sequences: float | None = None,
    kl_value_clamp: float | None = None,
) -> LossOutput:
    """PPO-clip loss per token, ``-min(ratio * A, clip(ratio, 1 - clip_low, 1 + clip_high) * A)``.

    Args:
        logprobs: (B, T) log-probabilities of the sampled tokens under the current policy
            (carries the gradient).
        old_logprobs: (B, T) the same under the policy that sampled them.
        advantages: (B, T) per-token advantages, or (B,) broadcast over each sequence.
        loss_mask: (B, T) bool or 0/1; 1 on tokens the policy sampled.
        ref_logprobs: (B, T) under the frozen reference; None = no KL term (kl_coef unused).
        clip_low: the ratio's lower clip is ``1 - clip_low`` (their code: 0.2).
        clip_high: the ratio's upper clip is ``1 + clip_high`` (their code: 0.28).
        kl_coef: beta of the k3 KL ``exp(ref - pi) - (ref - pi) - 1`` (their code: 0.01).
        entropy: (B, T) per-token entropy of the current policy, needed if entropy_coef != 0.
        entropy_coef: weight of the entropy bonus (subtracted from the loss; their code: 0).
        aggregation: "token-mean" (mean over all masked tokens of the batch),
            "seq-mean-token-mean" (mean over each sequence's masked tokens, then over the
            sequences that have any), "seq-mean-token-sum-norm" (Dr.GRPO: each sequence's
            token sum divided by the constant ``max_len``, then mean over all B sequences).
        max_len: the constant divisor of Dr.GRPO (e.g. the response-length limit);
            required for that mode.
        tokens, sequences: policy tokens and sequences of the whole batch this call is a
            piece of (all pieces, all ranks); None = this call's own (see `aggregate`).
        kl_value_clamp: clamp each token's k3 value to ``[-c, c]`` (their code: 10; a
            clamped token's KL carries no gradient); None = no clamp (ours).

    Returns:
        LossOutput with the scalar loss and detached statistics.
    """
    mask = _check_inputs(logprobs, old_logprobs, advantages, loss_mask, ref_logprobs, entropy)
    _check_settings(clip_low, clip_high, kl_coef, entropy, entropy_coef, aggregation, max_len)
    adv = advantages[:, None].expand_as(logprobs) if advantages.ndim == 1 else advantages

    zero = torch.zeros((), dtype=logprobs.dtype, device=logprobs.device)
    logp = torch.where(mask, logprobs, zero)  # the gradient reaches masked-in tokens only
    old = torch.where(mask, old_logprobs.detach(), zero)
    adv = torch.where(mask, adv.detach(), zero)

    log_ratio = (logp - old).clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP)
    ratio = log_ratio.exp()
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    pg = torch.maximum(unclipped, clipped)  # = -min(ratio * A, clip(ratio) * A)
    per_token = pg

    kl = torch.zeros_like(logp)
    if ref_logprobs is not None:
        ref = torch.where(mask, ref_logprobs.detach(), zero)
        delta = (ref - logp).clamp(-_LOG_RATIO_CLAMP, _LOG_RATIO_CLAMP)
        kl = delta.exp() - delta - 1.0  # k3: unbiased, always >= 0
        if kl_value_clamp is not None:
            kl = kl.clamp(-kl_value_clamp, kl_value_clamp)
        per_token = per_token + kl_coef * kl
    ent = torch.zeros_like(logp) if entropy is None else torch.where(mask, entropy, zero)
    if entropy_coef != 0.0:
        per_token = per_token - entropy_coef * ent

    def batch_share(values: Tensor) -> Tensor:
        return aggregate(values, mask, aggregation, max_len, tokens=tokens, sequences=sequences)

    loss = batch_share(per_token)
    with torch.no_grad():
        stats = {
            "pg_loss": batch_share(pg),
            "kl": batch_share(kl),
            "clip_frac": aggregate((clipped > unclipped).to(logp.dtype), mask, "token-mean", tokens=tokens),
            "entropy": aggregate(ent, mask, "token-mean", tokens=tokens),
            "approx_kl": aggregate(ratio - 1.0 - log_ratio, mask, "token-mean", tokens=tokens),
        }
    return LossOutput(loss=loss, **{k: v.detach() for k, v in stats.items()})


def aggregate(
    values: Tensor,
    mask: Tensor,
    aggregation: Aggregation,
    max_len: int | None = None,
    *,
    tokens: float | None = None,
    sequences: float | None = None,
) -> Tensor:
    """Reduce per-token values (B, T) to a scalar over the masked tokens.

    Args:
        values: (B, T) per-token values; entries outside the mask must already be finite.
        mask: (B, T) bool.
        aggregation: "token-mean" (sum over masked tokens / ``tokens``),
            "seq-mean-token-mean" (sum of the sequences' token means / ``sequences``),
            "seq-mean-token-sum-norm" (Dr.GRPO: masked sum / (``sequences`` * ``max_len``)).
        max_len: Dr.GRPO's constant divisor ("seq-mean-token-sum-norm" only).
        tokens: masked tokens of the whole batch; None = ``mask``'s.
        sequences: sequences of the whole batch; None = ``mask``'s rows that hold a token
            ("seq-mean-token-mean") or all its rows (Dr.GRPO).

    Returns:
        A scalar tensor; 0 (in the graph of ``values``) when the mask is empty.
    """
    weights = mask.to(values.dtype)
    total = (values * weights).sum()
    if aggregation == "token-mean":
        return total / (weights.sum().clamp_min(1.0) if tokens is None else max(tokens, 1.0))
    if aggregation == "seq-mean-token-mean":
        per_seq_tokens = weights.sum(-1)
        seq_means = (values * weights).sum(-1) / per_seq_tokens.clamp_min(1.0)
        has_tokens = (per_seq_tokens > 0).to(values.dtype)
        count = has_tokens.sum().clamp_min(1.0) if sequences is None else max(sequences, 1.0)
        return (seq_means * has_tokens).sum() / count
    if aggregation == "seq-mean-token-sum-norm":
        if max_len is None or max_len <= 0:
            raise ValueError(f"aggregation 'seq-mean-token-sum-norm' needs max_len > 0, got {max_len!r}")
        return total / (max(values.shape[0] if sequences is None else sequences, 1.0) * max_len)
    raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")


def _check_inputs(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    loss_mask: Tensor,
    ref_logprobs: Tensor | None,
    entropy: Tensor | None,
) -> Tensor:
    """Validate shapes and dtypes; returns the loss mask as bool."""
    if not isinstance(logprobs, Tensor) or logprobs.ndim != 2 or not logprobs.dtype.is_floating_point:
        raise ValueError(f"logprobs must be a floating (B, T) tensor, got {_describe(logprobs)}")
    shape = tuple(logprobs.shape)
    named = {"old_logprobs": old_logprobs, "loss_mask": loss_mask, "ref_logprobs": ref_logprobs}
    named["entropy"] = entropy
    for name, value in named.items():
        if value is not None and (not isinstance(value, Tensor) or tuple(value.shape) != shape):
            raise ValueError(f"{name} must have shape {shape} like logprobs, got {_describe(value)}")
    if not isinstance(advantages, Tensor) or tuple(advantages.shape) not in (shape, shape[:1]):
        raise ValueError(f"advantages must have shape {shape} or ({shape[0]},), got {_describe(advantages)}")
    if loss_mask.dtype != torch.bool and bool(((loss_mask != 0) & (loss_mask != 1)).any()):
        raise ValueError("loss_mask must be bool or hold only 0 and 1")
    return loss_mask.bool()


def _check_settings(
    clip_low: float,
    clip_high: float,
    kl_coef: float,
    entropy: Tensor | None,
    entropy_coef: float,
    aggregation: str,
    max_len: int | None,
) -> None:
    if not 0.0 <= clip_low < 1.0:
        raise ValueError(f"clip_low must be in [0, 1), got {clip_low}")
    if not clip_high >= 0.0:
        raise ValueError(f"clip_high must be >= 0, got {clip_high}")
    if not kl_coef >= 0.0:
        raise ValueError(f"kl_coef must be >= 0, got {kl_coef}")
    if entropy_coef != 0.0 and entropy is None:
        raise ValueError(f"entropy_coef is {entropy_coef} but no per-token entropy was given")
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
    if aggregation == "seq-mean-token-sum-norm" and (max_len is None or max_len <= 0):
        raise ValueError(f"aggregation 'seq-mean-token-sum-norm' (Dr.GRPO) needs max_len > 0, got {max_len!r}")


def _describe(value: object) -> str:
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    return type(value).__name__
