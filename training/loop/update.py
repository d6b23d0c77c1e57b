"""One optimiser update of the policy from a batch of trajectories and their advantages.

For each trajectory, one sequence at a time: re-render it (`render.replay_inputs`, checked
to reproduce the sampled tokens), score its policy tokens under the frozen reference (for
the KL) and under the policy (`logprobs.policy_logprobs`), and back-propagate the PPO-clip
loss (`training.core.loss`) aggregated with the batch's global token and sequence counts, so
the accumulated gradient is the batch loss's. Then gradients are summed across ranks,
clipped, and AdamW steps.

Optimiser steps per rollout step (``optim.mini_batch_size``):

- None (ours): one update per batch of rollouts. The policy that sampled is the current
  one, so the "old" log-probs are the current ones detached (the ratio is 1).
- their code (64 of 512 responses): the old log-probs are computed once, without gradient,
  before any update; then the batch is cut into ``ceil(P * G / mini_batch_size)``
  mini-batches (every rank cuts its own share into as many), each one optimiser step, so
  from the second on the ratio moves and the clip acts.

Either way the schedule steps once per rollout step. The recomputed log-probs of the first
pass are compared with the sampled ones (``rollout/logprob_diff``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from zoom_agent.training.config import TrainConfig
from zoom_agent.training.core.loss import policy_loss
from zoom_agent.training.loop import distributed as dist
from zoom_agent.training.loop import fsdp
from zoom_agent.training.loop.logprobs import policy_logprobs
from zoom_agent.training.loop.metrics import Timings
from zoom_agent.training.loop.optim import mini_batches
from zoom_agent.training.rollout.render import RolloutError, replay_inputs
from zoom_agent.training.rollout.trajectory import Trajectory

if TYPE_CHECKING:
    from zoom_agent.models.hf import TransformersVLM

STAT_NAMES = ("loss", "pg_loss", "kl", "clip_frac", "entropy", "approx_kl", "advantage", "advantage_sq")
"""Statistics of the batch (``actor/*``, ``advantage/*``): each sequence adds its share."""


class PolicyUpdate:
    """Runs one update: forward/backward every trajectory, all-reduce, clip, step.

    Args:
        policy: the policy being trained (its processor re-renders, its model is trained).
        ref_model: the frozen reference for the KL term, or None.
        banned_ids: token ids masked in sampling, masked the same way here.
        optimizer: the policy's optimiser.
        scheduler: its learning-rate schedule (stepped once per update).
        config: the run's configuration (loss, optimiser, agent limits).
        ctx: the distributed context.
        model: the module trained, when it is not ``policy.model`` (FSDP: the sharded copy,
            ``policy.model`` being the full rollout copy); under FSDP every rank makes as
            many passes as the busiest, padding with zero-weight ones (`fsdp.padding_passes`).
    """

    def __init__(
        self,
        policy: TransformersVLM,
        ref_model: Any | None,
        banned_ids: Sequence[int],
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        config: TrainConfig,
        ctx: dist.DistContext,
        model: torch.nn.Module | None = None,
    ) -> None:
        self.policy, self.ref_model = policy, ref_model
        self.model = policy.model if model is None else model
        self.sharded = fsdp.is_sharded(self.model)
        self.pad: Trajectory | None = None  # FSDP: a trajectory of this rank's to pad with
        self.banned_ids = tuple(banned_ids)
        self.optimizer, self.scheduler = optimizer, scheduler
        self.config, self.ctx = config, ctx
        self.max_len = config.agent.max_tokens * config.agent.max_model_calls  # Dr.GRPO's constant

    def __call__(
        self, trajs: Sequence[Trajectory], advantages: Sequence[torch.Tensor], timer: Timings
    ) -> dict[str, float]:
        """Update the policy on ``trajs`` (their policy tokens weighted by ``advantages``).

        Args:
            trajs: this rank's trajectories with policy tokens.
            advantages: one (P_b,) tensor per trajectory (`advantages.policy_token_advantages`).
            timer: the step's timings (``render`` and ``ref`` are recorded here).

        Returns:
            ``actor/*``, ``advantage/*`` and ``rollout/logprob_diff`` metrics, over all ranks.

        Raises:
            RolloutError: a trajectory does not replay, or (with ``check_logprobs_atol``) its
                recomputed log-probs differ from the sampled ones.
        """
        self.model.train()
        if trajs:
            self.pad = trajs[0]
        mb = self.config.optim.mini_batch_size
        if mb is None:
            steps = [self._update(trajs, advantages, None, timer)]
        else:
            old, diff = self._old_logprobs(trajs, timer)
            n = mini_batches(self.config)
            steps = [
                self._update([trajs[i] for i in idx], [advantages[i] for i in idx], [old[i] for i in idx], timer)
                for idx in _split(len(trajs), n)
            ]
            steps[0]["rollout/logprob_diff"] = dist.all_reduce_max([diff], self.ctx)[0]
        self.scheduler.step()  # once per rollout step, however many optimiser steps
        return _combine(steps)

    def _old_logprobs(self, trajs: Sequence[Trajectory], timer: Timings) -> tuple[list[torch.Tensor], float]:
        """Each trajectory's policy-token log-probs before any update (no gradient), and
        their max |recomputed - sampled|."""
        old, diff = [], 0.0
        padding = self._padding(len(trajs))
        with torch.no_grad():
            for traj in trajs:
                with timer("render"):
                    inputs = replay_inputs(self.policy, traj)
                with timer("old"):
                    logp, _ = policy_logprobs(self.model, inputs, traj.policy_positions, self.banned_ids)
                diff = max(diff, self._check_sampled(traj, logp))
                old.append(logp.detach())
            self._pad(padding, backward=False)
        return old, diff

    def _update(
        self,
        trajs: Sequence[Trajectory],
        advantages: Sequence[torch.Tensor],
        old: Sequence[torch.Tensor] | None,
        timer: Timings,
    ) -> dict[str, float]:
        """One optimiser step on ``trajs`` (this rank's part of one mini-batch)."""
        local = [float(sum(len(a) for a in advantages)), float(len(trajs))]
        tokens, sequences = dist.all_reduce_sum(local, self.ctx)
        padding = self._padding(len(trajs))
        self.optimizer.zero_grad(set_to_none=True)
        sums = dict.fromkeys(STAT_NAMES, 0.0)
        diff = adv_max = 0.0
        for i, (traj, adv) in enumerate(zip(trajs, advantages, strict=True)):
            with timer("render"):
                inputs = replay_inputs(self.policy, traj)
            stats, seq_diff = self._backward(
                traj, inputs, adv, (tokens, sequences), timer, None if old is None else old[i]
            )
            for k in sums:
                sums[k] += stats[k]
            diff = max(diff, seq_diff)
            adv_max = max(adv_max, float(adv.abs().max()))
        self._pad(padding, backward=True)
        return self._step(sums, tokens, [diff, adv_max])

    def _padding(self, count: int) -> int:
        """FSDP: how many zero-weight passes bring this rank's ``count`` up to the busiest
        rank's. Agreed (a collective) before any pass: FSDP's own collectives run inside the
        passes, so ranks must not meet in another one between them."""
        return fsdp.padding_passes(count, self.pad is not None, self.ctx) if self.sharded else 0

    def _pad(self, passes: int, *, backward: bool) -> None:
        """FSDP: ``passes`` zero-weight passes: a forward of ``self.pad``, and a backward of
        0 times its log-probs."""
        for _ in range(passes):
            assert self.pad is not None  # padding_passes raised otherwise
            inputs = replay_inputs(self.policy, self.pad)
            logp, _ = policy_logprobs(self.model, inputs, self.pad.policy_positions, self.banned_ids)
            if backward:
                (logp.sum() * 0.0).backward()

    def _backward(
        self,
        traj: Trajectory,
        inputs: dict[str, Any],
        adv: torch.Tensor,
        counts: tuple[float, float],
        timer: Timings,
        old: torch.Tensor | None = None,
    ) -> tuple[dict[str, float], float]:
        """Back-propagate one sequence's share of the batch loss; returns its share of the
        statistics and its max |recomputed - sampled| log-prob (0 when ``old`` is given: the
        old pass compared them)."""
        c = self.config
        positions = traj.policy_positions
        ref = None
        if self.ref_model is not None and c.loss.kl_coef > 0:
            with timer("ref"), torch.no_grad():
                ref, _ = policy_logprobs(self.ref_model, inputs, positions, self.banned_ids)
        logp, ent = policy_logprobs(self.model, inputs, positions, self.banned_ids, entropy=True)
        diff = self._check_sampled(traj, logp) if old is None else 0.0
        tokens, sequences = counts
        out = policy_loss(
            logp[None],
            (logp.detach() if old is None else old.to(logp.device))[None],  # None: old = current
            adv.to(logp.device)[None],
            torch.ones_like(logp, dtype=torch.bool)[None],
            ref_logprobs=None if ref is None else ref[None],
            clip_low=c.loss.clip_low,
            clip_high=c.loss.clip_high,
            kl_coef=c.loss.kl_coef,
            entropy=None if ent is None else ent[None],
            entropy_coef=c.loss.entropy_coef,
            aggregation=c.loss.aggregation,
            max_len=self.max_len,
            tokens=tokens,
            sequences=sequences,
            kl_value_clamp=c.loss.kl_value_clamp,
        )
        out.loss.backward()
        stats = out.metrics(prefix="") | {
            "advantage": float(adv.sum()) / max(tokens, 1.0),
            "advantage_sq": float((adv * adv).sum()) / max(tokens, 1.0),
        }
        return stats, diff

    def _check_sampled(self, traj: Trajectory, logp: torch.Tensor) -> float:
        """Max |recomputed - sampled| log-prob; raises past ``check_logprobs_atol``."""
        sampled = torch.tensor(traj.masks.sampled_logprobs(), device=logp.device)
        diff = float((logp.detach() - sampled).abs().max())
        atol = self.config.check_logprobs_atol
        if atol is not None and diff > atol:
            raise RolloutError(
                f"recomputed log-probs of {traj.question.id} differ from the sampled ones by {diff:.3g} "
                f"(> check_logprobs_atol {atol}): training does not see what was sampled"
            )
        return diff

    def _step(self, sums: dict[str, float], tokens: float, maxima: list[float]) -> dict[str, float]:
        """All-reduce gradients, clip, step; returns the batch statistics and the maxima."""
        dist.all_reduce_gradients(self.model, self.ctx)
        params = [p for p in self.model.parameters() if p.requires_grad]
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, self.config.optim.grad_clip)) if tokens else 0.0
        if tokens:
            self.optimizer.step()
        keys = list(sums)
        batch = dict(zip(keys, dist.all_reduce_sum([sums[k] for k in keys], self.ctx), strict=True))
        adv_mean, adv_sq = batch.pop("advantage"), batch.pop("advantage_sq")
        diff, adv_max = dist.all_reduce_max(maxima, self.ctx)
        return {f"actor/{k}": v for k, v in batch.items()} | {
            "actor/grad_norm": grad_norm,
            "advantage/mean": adv_mean,
            "advantage/std": math.sqrt(max(adv_sq - adv_mean**2, 0.0)),
            "advantage/abs_max": adv_max,
            "rollout/logprob_diff": diff,  # max |recomputed - sampled| over policy tokens
        }


def _split(count: int, parts: int) -> list[list[int]]:
    """``range(count)`` cut into ``parts`` consecutive pieces whose sizes differ by at most
    one (empty pieces when ``count < parts``: the rank still joins every step)."""
    base, extra = divmod(count, parts)
    out, start = [], 0
    for k in range(parts):
        size = base + (1 if k < extra else 0)
        out.append(list(range(start, start + size)))
        start += size
    return out


_MAXIMA = ("advantage/abs_max", "rollout/logprob_diff")


def _combine(steps: Sequence[dict[str, float]]) -> dict[str, float]:
    """One rollout step's metrics from its optimiser steps: means, maxima for the maxima,
    and ``actor/optimizer_steps``."""
    out = {k: max(s[k] for s in steps) if k in _MAXIMA else sum(s[k] for s in steps) / len(steps) for k in steps[0]}
    return out | {"actor/optimizer_steps": float(len(steps))}
