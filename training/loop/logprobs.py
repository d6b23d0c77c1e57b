"""The training forward pass: log-probs (and entropy) of the policy's tokens under a model.

One forward pass of a re-rendered trajectory (`training.rollout.render.replay_inputs`)
scores every policy token in the context it was sampled in. The banned placeholder tokens
are masked exactly as in sampling, so the log-probs are those of the policy that sampled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch


def policy_logprobs(
    model: Any,
    inputs: Mapping[str, Any],
    positions: Sequence[int],
    banned_ids: Sequence[int],
    *,
    entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs (with grad if enabled) of the tokens at ``positions`` under the policy.

    Only the logits that predict those tokens are computed (``logits_to_keep``), so memory
    grows with the reply, not the prompt.

    Args:
        model: the Qwen-VL model.
        inputs: batch-of-one inputs (`render.replay_inputs`).
        positions: indices of the policy's tokens in ``input_ids`` (all >= 1).
        banned_ids: masked like in sampling.
        entropy: also return each position's entropy.

    Returns:
        ``(logprobs (P,), entropy (P,) or None)`` in float32.
    """
    ids = inputs["input_ids"]
    pos = torch.tensor(positions, dtype=torch.long, device=ids.device)
    if pos.numel() == 0 or int(pos.min()) < 1:
        raise ValueError("positions must be non-empty token indices >= 1 (token 0 has no prefix)")
    out = model(**inputs, logits_to_keep=pos - 1, use_cache=False)
    logits = out.logits[0].float()  # (P, V)
    if banned_ids:
        logits = logits.index_fill(-1, torch.tensor(list(banned_ids), device=logits.device), float("-inf"))
    logp_all = torch.log_softmax(logits, dim=-1)
    logp = logp_all.gather(-1, ids[0, pos].unsqueeze(-1)).squeeze(-1)
    ent = None
    if entropy:
        probs = logp_all.exp()
        ent = -(probs * torch.where(probs > 0, logp_all, torch.zeros_like(logp_all))).sum(-1)
    return logp, ent
