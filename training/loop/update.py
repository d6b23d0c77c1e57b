"""One optimiser update of the policy from a batch of scored trajectories (DESIGN.md §5).

Every trajectory is re-rendered (`RolloutEngine.training_inputs`, checked to reproduce the
sampled tokens) and scored by one forward pass of the policy (and of the frozen reference
for the KL); the PPO-clip loss (`training.loss`) is back-propagated with a weight that makes
the accumulated gradient the batch loss's (`loss_weight`); then gradients are all-reduced
across ranks, clipped, and AdamW steps. The recomputed log-probs are compared with the
sampled ones (``rollout/logprob_diff``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from zoom_agent.training.config import TrainConfig
from zoom_agent.training.core.loss import policy_loss
from zoom_agent.training.loop import distributed as dist
from zoom_agent.training.loop.metrics import Timings
from zoom_agent.training.rollout.engine import RolloutEngine
from zoom_agent.training.rollout.render import RolloutError, policy_logprobs
from zoom_agent.training.rollout.trajectory import Trajectory

STAT_NAMES = ("loss", "pg_loss", "kl", "clip_frac", "entropy", "approx_kl", "advantage", "advantage_sq")
"""Per-token statistics averaged over the batch (``actor/*``, ``advantage/*``)."""


class PolicyUpdate:
    """Runs one update: forward/backward every trajectory, all-reduce, clip, step.

    Args:
        model: the policy being trained.
        ref_model: the frozen reference for the KL term, or None.
        engine: re-renders trajectories (`RolloutEngine.training_inputs`) and names the banned ids.
        optimizer: the policy's optimiser.
        scheduler: its learning-rate schedule (stepped once per update).
        config: the run's configuration (loss, optimiser, agent limits).
        ctx: the distributed context.
    """

    def __init__(
        self,
        model: Any,
        ref_model: Any | None,
        engine: RolloutEngine,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        config: TrainConfig,
        ctx: dist.DistContext,
    ) -> None:
        self.model, self.ref_model, self.engine = model, ref_model, engine
        self.optimizer, self.scheduler = optimizer, scheduler
        self.config, self.ctx = config, ctx
        self.max_len = config.agent.max_tokens * turns_allowed(config)

    def __call__(
        self, trajs: Sequence[Trajectory], advantages: Sequence[torch.Tensor], timer: Timings
    ) -> dict[str, float]:
        """Update the policy on ``trajs`` (their policy tokens weighted by ``advantages``).

        Args:
            trajs: this rank's trajectories with policy tokens.
            advantages: one (P_b,) tensor per trajectory (`scoring.trajectory_advantages`).
            timer: the step's timings (``render`` and ``ref`` are recorded here).

        Returns:
            ``actor/*``, ``advantage/*`` and ``rollout/logprob_diff`` metrics, over all ranks.

        Raises:
            RolloutError: a trajectory does not replay, or (with ``check_logprobs_atol``) its
                recomputed log-probs differ from the sampled ones.
        """
        counts = [float(sum(len(a) for a in advantages)), float(len(trajs))]
        total_tokens, total_seqs = dist.all_reduce_sum(counts, self.ctx)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        sums = dict.fromkeys(STAT_NAMES, 0.0)
        adv_max = 0.0
        diff = 0.0
        for traj, adv in zip(trajs, advantages, strict=True):
            with timer("render"):
                inputs = self.engine.training_inputs(traj)
            n = len(traj.policy_positions)
            weight = loss_weight(self.config.loss.aggregation, n, total_tokens, total_seqs)
            stats, seq_diff = self._backward(traj, inputs, adv, weight, timer)
            diff = max(diff, seq_diff)
            for k in sums:
                sums[k] += stats[k] * n
            adv_max = max(adv_max, float(adv.abs().max()))
        return self._step(sums, total_tokens, [diff, adv_max])

    def _backward(
        self, traj: Trajectory, inputs: dict[str, Any], adv: torch.Tensor, weight: float, timer: Timings
    ) -> tuple[dict[str, float], float]:
        """Back-propagate one sequence's weighted loss; returns its stats and max |logprob diff|."""
        c = self.config
        positions = traj.policy_positions
        banned = self.engine.banned_ids
        ref = None
        if self.ref_model is not None and c.loss.kl_coef > 0:
            with timer("ref"), torch.no_grad():
                ref, _ = policy_logprobs(self.ref_model, inputs, positions, banned)
        logp, ent = policy_logprobs(self.model, inputs, positions, banned, entropy=True)
        sampled = torch.tensor([traj.sampled_logprobs[i] for i in positions], device=logp.device)
        diff = float((logp.detach() - sampled).abs().max())
        if c.check_logprobs_atol is not None and diff > c.check_logprobs_atol:
            raise RolloutError(
                f"recomputed log-probs of {traj.question.id} differ from the sampled ones by {diff:.3g} "
                f"(> check_logprobs_atol {c.check_logprobs_atol}): training does not see what was sampled"
            )
        out = policy_loss(
            logp[None],
            logp.detach()[None],
            adv.to(logp.device)[None],
            torch.ones_like(logp, dtype=torch.bool)[None],
            ref_logprobs=None if ref is None else ref[None],
            clip_low=c.loss.clip_low,
            clip_high=c.loss.clip_high,
            kl_coef=c.loss.kl_coef,
            entropy=ent[None] if c.loss.entropy_coef else None,
            entropy_coef=c.loss.entropy_coef,
            aggregation=c.loss.aggregation,
            max_len=self.max_len,
        )
        (out.loss * weight).backward()
        stats = out.metrics(prefix="") | {
            "entropy": float(ent.detach().mean()),
            "advantage": float(adv.mean()),
            "advantage_sq": float((adv * adv).mean()),
        }
        return stats, diff

    def _step(self, sums: dict[str, float], total_tokens: float, maxima: list[float]) -> dict[str, float]:
        """All-reduce gradients, clip, step; returns the batch means of ``sums`` and the maxima."""
        dist.all_reduce_gradients(self.model, self.ctx)
        params = [p for p in self.model.parameters() if p.requires_grad]
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, self.config.optim.grad_clip)) if total_tokens else 0.0
        if total_tokens:
            self.optimizer.step()
        self.scheduler.step()
        keys = list(sums)
        reduced = dist.all_reduce_sum([sums[k] for k in keys], self.ctx)
        mean = {k: v / max(total_tokens, 1.0) for k, v in zip(keys, reduced, strict=True)}
        adv_mean, adv_sq = mean.pop("advantage"), mean.pop("advantage_sq")
        out = {f"actor/{k}": v for k, v in mean.items()}
        diff, adv_max = dist.all_reduce_max(maxima, self.ctx)
        out |= {
            "actor/grad_norm": grad_norm,
            "advantage/mean": adv_mean,
            "advantage/std": math.sqrt(max(adv_sq - adv_mean**2, 0.0)),
            "advantage/abs_max": adv_max,
            "rollout/logprob_diff": diff,  # max |recomputed - sampled| over policy tokens
        }
        return out


def loss_weight(aggregation: str, tokens: int, total_tokens: float, total_seqs: float) -> float:
    """Weight of one sequence's aggregated loss so that the weighted sum is the batch's loss.

    Args:
        aggregation: the loss's aggregation mode.
        tokens: the sequence's policy tokens.
        total_tokens, total_seqs: over the whole batch (all ranks).

    Returns:
        The factor for the sequence's loss before ``backward``.
    """
    if aggregation == "token-mean":
        return tokens / max(total_tokens, 1.0)
    return 1.0 / max(total_seqs, 1.0)  # seq-mean-token-mean and Dr.GRPO average over sequences


def turns_allowed(config: TrainConfig) -> int:
    """Most model calls one rollout can make (zoom rounds and format retries): bounds ``max_len``."""
    a = config.agent
    return 1 + a.max_zoom_rounds + (1 + a.max_zoom_rounds) * a.format_retries
