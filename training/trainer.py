"""The GRPO loop (DESIGN.md §5): questions -> rollouts -> rewards -> advantages -> loss -> step.

One step: take the next P questions of the data stream (this rank's share), roll each out G
times through the zoom graph (`training.rollout`), score them (`training.rewards`, the zoom
verifier), turn rewards into per-token advantages (`training.credit`), re-render every
trajectory for one forward pass of the policy (and of the frozen reference for the KL),
back-propagate the PPO-clip loss (`training.loss`) with weights that make the accumulated
gradient the batch loss's, all-reduce across ranks, clip, AdamW step, sync weights to the
rollout engine, log one metrics line, checkpoint.

One optimiser update per batch of rollouts, so the "old" policy is the current one and the
ratio starts at 1 (strictly on-policy; the clip range bounds any later update on the same
rollouts). Re-rendering is checked to reproduce the sampled tokens; the recomputed
log-probs are compared with the sampled ones (``rollout/logprob_diff``).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from zoom_agent.training import checkpoint as ckpt
from zoom_agent.training import data as data_mod
from zoom_agent.training import distributed as dist
from zoom_agent.training.config import CreditConfig, TrainConfig
from zoom_agent.training.credit import CHANNELS, grpo_advantages, token_selective_advantages
from zoom_agent.training.loss import policy_loss
from zoom_agent.training.rewards import PARTS, trajectory_rewards
from zoom_agent.training.rollout import RolloutEngine, RolloutError, Trajectory, policy_logprobs
from zoom_agent.training.verifier import ZoomVerifier
from zoom_agent.types import Question

METRICS_FILE = "metrics.jsonl"


class Trainer:
    """A GRPO run as `TrainConfig` describes it; `train` runs it, `step` runs one step.

    Args:
        config: the run's configuration.
        questions: use these instead of loading ``config.data`` (tests, notebooks).
        ctx: the distributed context (default: from the launcher's environment).
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        questions: Sequence[Question] | None = None,
        ctx: dist.DistContext | None = None,
    ) -> None:
        self.config = config
        self.ctx = ctx or dist.init_from_env(config.policy.device)
        self.out = Path(config.output_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(config.seed)
        self.agent = config.agent
        resume_from = ckpt.latest_checkpoint(self.out / "checkpoints") if config.resume else None
        self.initial_path = self._initial_model()
        self.policy = self._load_vlm(resume_from / "model" if resume_from else self.initial_path)
        self.model = self.policy.model
        self._set_trainable()
        dist.broadcast_parameters(self.model, self.ctx)
        needs_ref = config.loss.kl_coef > 0 or config.reward.verifier == "reference"
        self.ref = self._load_vlm(self.initial_path, frozen=True) if needs_ref else None
        self.engine = RolloutEngine(self.policy, self._sampler())
        self.verifier = self._verifier()
        self.questions = list(questions) if questions is not None else self._load_questions()
        self.total_steps = config.max_steps or math.ceil(config.epochs * len(self.questions) / config.prompts_per_step)
        params = [p for p in self.model.parameters() if p.requires_grad]
        o = config.optim
        self.optimizer = torch.optim.AdamW(params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(config, self.total_steps))
        self.step_count, self.consumed = 0, 0
        if resume_from is not None:
            position = ckpt.load_training_state(resume_from, self.optimizer, self.scheduler)
            self.step_count, self.consumed = position["step"], position["consumed"]
        self.log = MetricsLog(self.out, config, enabled=self.ctx.is_main, resume_step=self.step_count)

    # -- setup -------------------------------------------------------------------------
    def _initial_model(self) -> Path:
        p = self.config.policy
        if p.path is not None:
            return Path(p.path).expanduser()
        tiny = self.out / "tiny-model"
        if self.ctx.is_main and not (tiny / "config.json").is_file():
            from zoom_agent.models.tiny import build_tiny_model

            build_tiny_model(tiny, p.tiny_family, seed=p.tiny_seed, overwrite=True)
        dist.barrier(self.ctx)
        return tiny

    def _load_vlm(self, path: Path, *, frozen: bool = False) -> Any:
        from zoom_agent.models.hf import TransformersVLM

        device = self.config.policy.device
        if device == "cuda" and self.ctx.enabled:
            device = f"cuda:{self.ctx.local_rank}"
        vlm = TransformersVLM(path, device=device, dtype=self.config.policy.dtype)
        if frozen:
            vlm.model.requires_grad_(False)
        return vlm

    def _set_trainable(self) -> None:
        for name, param in self.model.named_parameters():
            param.requires_grad_(self.config.policy.train_vision_tower or ".visual." not in f".{name}")

    def _sampler(self) -> Any:
        if self.config.engine == "vllm":
            from zoom_agent.training.vllm_engine import VLLMSampler

            return VLLMSampler(self.policy, self.engine_path(), **self.config.vllm)
        return None  # RolloutEngine's default: transformers on the policy itself

    def engine_path(self) -> Path:
        """The weights the rollout engine starts from (it is synced after every step)."""
        return self.initial_path

    def _verifier(self) -> ZoomVerifier | None:
        r = self.config.reward
        if r.verifier == "none":
            return None
        model = self.ref if r.verifier == "reference" else self.policy
        a = self.agent
        return ZoomVerifier(
            model,
            a.budget,
            dialect=a.dialect,
            fraction=r.verifier_budget_fraction,
            max_frames=r.verifier_max_frames,
            pad=a.zoom_pad,
            min_seconds=a.min_zoom_seconds,
        )

    def _load_questions(self) -> list[Question]:
        if self.ctx.is_main:  # rank 0 writes the synthetic task; the others read it
            questions = data_mod.load_questions(self.config.data, self.out, write=True)
        dist.barrier(self.ctx)
        if not self.ctx.is_main:
            questions = data_mod.load_questions(self.config.data, self.out, write=False)
        if not self.config.difficulty_filter:
            return questions
        ids_file = self.out / "difficulty_filter.json"
        kept = data_mod.load_question_ids(ids_file, questions)
        if kept is None and self.ctx.is_main:
            group = self.config.filter_group_size or self.config.group_size
            kept = asyncio.run(
                data_mod.filter_by_difficulty(
                    self.engine, questions, self.agent, group_size=group, seed=self.config.seed
                )
            )
            data_mod.save_question_ids(ids_file, kept)
        dist.barrier(self.ctx)
        kept = data_mod.load_question_ids(ids_file, questions) or []
        if not kept:
            raise ValueError("the difficulty filter kept no question: every group was too easy or too hard")
        return kept

    # -- the loop ----------------------------------------------------------------------
    def train(self) -> list[dict[str, float]]:
        """Run the remaining steps; returns each step's metrics (this process's view)."""
        history = []
        bar = _progress(self.total_steps, self.step_count, enabled=self.config.progress and self.ctx.is_main)
        while self.step_count < self.total_steps:
            metrics = self.step()
            history.append(metrics)
            bar.update(1)
            bar.set_postfix(reward=f"{metrics['reward/total']:.3f}")
            if self.config.save_every and self.step_count % self.config.save_every == 0:
                self.save()
        bar.close()
        if history:
            self.save()
            if self.ctx.is_main:
                ckpt.save_model(self.model, self.policy.processor, self.out / "final_model")
        self.log.close()
        return history

    def step(self) -> dict[str, float]:
        """One GRPO step on the next batch of the data stream; returns its metrics line."""
        c = self.config
        timer = Timings()
        batch = data_mod.step_items(
            self.questions, self.consumed, c.prompts_per_step, seed=c.seed, shuffle=c.data.shuffle
        )
        local = dist.shard(batch, self.ctx)
        offsets = dist.shard(list(range(len(batch))), self.ctx)
        first_group = self.consumed + (offsets[0] if offsets else 0)  # group ids unique across ranks
        self.model.eval()
        _hook(self.engine.sampler, "before_rollouts")
        with timer("rollout"):
            trajs = asyncio.run(
                self.engine.rollouts(
                    local,
                    self.agent,
                    group_size=c.group_size,
                    seed=c.seed * 100_003 + self.step_count,
                    first_group=first_group,
                    concurrency=c.rollout_concurrency,
                )
            )
        with timer("rewards"):
            parts = asyncio.run(self.score(trajs))
        _hook(self.engine.sampler, "after_rollouts")  # e.g. vLLM frees its KV cache for training
        valid = [i for i, t in enumerate(trajs) if not t.failed]
        with timer("credit"):
            advantages = self.advantages([trajs[i] for i in valid], [parts[i] for i in valid])
        with timer("fwd_bwd"):
            update = self.update([trajs[i] for i in valid], advantages, timer)
        with timer("sync"):  # the transformers sampler shares the policy's weights: nothing to do
            _hook(self.engine.sampler, "sync_weights", self.model)
        self.step_count += 1
        self.consumed += c.prompts_per_step
        metrics = {"step": float(self.step_count), "lr": float(self.scheduler.get_last_lr()[0])}
        metrics |= self._rollout_metrics(trajs, parts) | update | timer.metrics()
        self.log.write(metrics)
        return metrics

    async def score(self, trajs: Sequence[Trajectory]) -> list[dict[str, float]]:
        """Reward parts of every trajectory (the verifier runs for those with spans)."""
        zoom = [0.0] * len(trajs)
        if self.verifier is not None:
            todo = [i for i, t in enumerate(trajs) if t.result.status == "answered" and t.result.spans]
            items = []
            for i in todo:
                from zoom_agent.video import open_video

                items.append((trajs[i].question, trajs[i].result, open_video(trajs[i].question.video).info))
            for i, verdict in zip(todo, await self.verifier.verify_many(items), strict=True):
                zoom[i] = verdict.reward
        weights = self.config.reward.weights()
        return [
            trajectory_rewards(t.question, t.result, zoom=z, weights=weights, dialect=self.agent.dialect)
            for t, z in zip(trajs, zoom, strict=True)
        ]

    def advantages(self, trajs: Sequence[Trajectory], parts: Sequence[dict[str, float]]) -> list[torch.Tensor]:
        """Per-token advantages of each trajectory's policy tokens (see `trajectory_advantages`)."""
        return trajectory_advantages(trajs, parts, self.config.credit, self.config.reward.weights())

    def update(
        self, trajs: Sequence[Trajectory], advantages: Sequence[torch.Tensor], timer: Timings
    ) -> dict[str, float]:
        """Forward/backward every trajectory, all-reduce, clip and step; returns loss stats."""
        c = self.config
        counts = [float(sum(len(a) for a in advantages)), float(len(trajs))]
        total_tokens, total_seqs = dist.all_reduce_sum(counts, self.ctx)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        stat_names = (
            "loss",
            "pg_loss",
            "kl",
            "clip_frac",
            "entropy",
            "approx_kl",
            "advantage",
            "advantage_sq",
        )
        sums = dict.fromkeys(stat_names, 0.0)
        adv_max = 0.0
        diff = 0.0
        max_len = c.agent.max_tokens * _turns_allowed(c)
        for traj, adv in zip(trajs, advantages, strict=True):
            with timer("render"):
                inputs = self.engine.training_inputs(traj)
            positions = traj.policy_positions
            ref = None
            if self.ref is not None and c.loss.kl_coef > 0:
                with timer("ref"), torch.no_grad():
                    ref, _ = policy_logprobs(self.ref.model, inputs, positions, self.engine.banned_ids)
            logp, ent = policy_logprobs(self.model, inputs, positions, self.engine.banned_ids, entropy=True)
            sampled = torch.tensor([traj.sampled_logprobs[i] for i in positions], device=logp.device)
            diff = max(diff, float((logp.detach() - sampled).abs().max()))
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
                max_len=max_len,
            )
            n = len(positions)
            (out.loss * loss_weight(c.loss.aggregation, n, total_tokens, total_seqs)).backward()
            stats = out.metrics(prefix="") | {
                "entropy": float(ent.detach().mean()),
                "advantage": float(adv.mean()),
                "advantage_sq": float((adv * adv).mean()),
            }
            for k in sums:
                sums[k] += stats[k] * n
            adv_max = max(adv_max, float(adv.abs().max()))
        return self._finish_update(sums, total_tokens, [diff, adv_max])

    def _finish_update(self, sums: dict[str, float], total_tokens: float, maxima: list[float]) -> dict[str, float]:
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

    def _rollout_metrics(self, trajs: Sequence[Trajectory], parts: Sequence[dict[str, float]]) -> dict[str, float]:
        keys = [*PARTS, "total"]
        sums = [sum(p[k] for p in parts) for k in keys]
        sq = sum(p["total"] ** 2 for p in parts)
        calls = [c for t in trajs for c in t.calls]
        local = [
            float(len(trajs)),
            sq,
            float(sum(t.failed for t in trajs)),
            float(sum(len(t.policy_positions) for t in trajs)),
            float(len(calls)),
            float(sum(c.finish_reason == "length" for c in calls)),
            float(sum(t.result.rounds for t in trajs)),
        ]
        reduced = dist.all_reduce_sum([*sums, *local], self.ctx)
        n = max(reduced[len(keys)], 1.0)
        out = {f"reward/{k}": v / n for k, v in zip(keys, reduced, strict=False)}
        count, sq_sum, failed, tokens, n_calls, cut, rounds = reduced[len(keys) :]
        out["reward/total_std"] = math.sqrt(max(sq_sum / n - out["reward/total"] ** 2, 0.0))
        out |= {
            "rollout/count": count,
            "rollout/failed": failed,
            "response/policy_tokens": tokens / n,
            "response/turns": n_calls / n,
            "response/truncated": cut / max(n_calls, 1.0),
            "response/zoom_rounds": rounds / n,
        }
        return out

    def save(self) -> Path | None:
        """Checkpoint now (main rank writes; the others wait)."""
        path = None
        if self.ctx.is_main:
            path = ckpt.save_checkpoint(
                self.out / "checkpoints",
                self.step_count,
                model=self.model,
                processor=self.policy.processor,
                optimizer=self.optimizer,
                scheduler=self.scheduler,
                position={"step": self.step_count, "consumed": self.consumed},
                keep=self.config.keep_checkpoints,
            )
        dist.barrier(self.ctx)
        return path


def trajectory_advantages(
    trajs: Sequence[Trajectory],
    parts: Sequence[dict[str, float]],
    credit: CreditConfig,
    weights: dict[str, float],
) -> list[torch.Tensor]:
    """Per-token advantages of each trajectory's policy tokens.

    Token-selective mode: `credit.token_selective_advantages` on the four channels of
    METHOD.md §4 (their weights in the total do not enter; the variant's own 1/3 or 1/4
    does), plus, for any other part with a weight (the CI probe), that weight times its
    sequence-level GRPO advantage on every policy token (a shared channel). GRPO mode: the
    sequence-level advantage of the weighted total on every policy token.

    Args:
        trajs: trajectories with policy tokens (``group`` = their question).
        parts: each trajectory's reward parts (`rewards.trajectory_rewards`).
        credit: the credit settings.
        weights: part -> weight of the total.

    Returns:
        One (P_b,) tensor per trajectory, P_b its number of policy tokens.
    """
    if not trajs:
        return []
    lengths = [len(t.policy_positions) for t in trajs]
    batch, width = len(trajs), max(lengths)
    mask = torch.zeros(batch, width, dtype=torch.bool)
    span, answer = torch.zeros_like(mask), torch.zeros_like(mask)
    for b, t in enumerate(trajs):
        pos = t.policy_positions
        mask[b, : len(pos)] = True
        span[b, : len(pos)] = torch.tensor([t.span_mask[i] for i in pos])
        answer[b, : len(pos)] = torch.tensor([t.answer_mask[i] for i in pos])
    group = torch.tensor([t.group for t in trajs])
    column = {k: torch.tensor([p[k] for p in parts], dtype=torch.float32) for k in (*PARTS, "total")}
    if credit.mode == "grpo":
        adv = grpo_advantages(column["total"], group, eps=credit.eps)[:, None] * mask
    else:
        adv = token_selective_advantages(
            {k: column[k] for k in CHANNELS},
            {"span": span, "answer": answer},
            mask,
            group,
            variant=credit.variant,
            channel_regions=credit.channel_regions,
            eps=credit.eps,
        )
        for name, weight in weights.items():
            if name not in CHANNELS and weight > 0:  # extra shared channels (the CI probe)
                adv = adv + weight * grpo_advantages(column[name], group, eps=credit.eps)[:, None] * mask
    return [adv[b, :n] for b, n in enumerate(lengths)]


def loss_weight(aggregation: str, tokens: int, total_tokens: float, total_seqs: float) -> float:
    """Weight of one sequence's aggregated loss so that the weighted sum is the batch's loss.

    Args:
        aggregation: the loss's aggregation mode.
        tokens: the sequence's policy tokens.
        total_tokens, total_seqs: over the whole batch (all ranks).
    """
    if aggregation == "token-mean":
        return tokens / max(total_tokens, 1.0)
    return 1.0 / max(total_seqs, 1.0)  # seq-mean-token-mean and Dr.GRPO average over sequences


def lr_lambda(config: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """Linear warm-up, then cosine decay to ``min_lr_ratio`` (or constant) over the run."""
    o = config.optim

    def factor(step: int) -> float:
        if step < o.warmup_steps:
            return (step + 1) / (o.warmup_steps + 1)
        if o.schedule == "constant":
            return 1.0
        span = max(total_steps - o.warmup_steps, 1)
        progress = min((step - o.warmup_steps) / span, 1.0)
        return o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def _hook(sampler: Any, name: str, *args: Any) -> None:
    method = getattr(sampler, name, None)
    if method is not None:
        method(*args)


def _turns_allowed(config: TrainConfig) -> int:
    a = config.agent
    return 1 + a.max_zoom_rounds + (1 + a.max_zoom_rounds) * a.format_retries


class Timings:
    """Wall-clock seconds per named phase of a step (``time/<name>``)."""

    def __init__(self) -> None:
        self._t: dict[str, float] = {}
        self._start = time.perf_counter()

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._t[name] = self._t.get(name, 0.0) + time.perf_counter() - t0

    def metrics(self) -> dict[str, float]:
        return {f"time/{k}": v for k, v in self._t.items()} | {"time/step": time.perf_counter() - self._start}


class MetricsLog:
    """One JSON object per step in ``OUTPUT_DIR/metrics.jsonl`` (+ TensorBoard, W&B if asked).

    On resume from step k, lines after step k (logged before a crash) are dropped first.
    """

    def __init__(self, out: Path, config: TrainConfig, *, enabled: bool, resume_step: int) -> None:
        self.enabled = enabled
        self.path = out / METRICS_FILE
        self._tb: Any = None
        self._wandb: Any = None
        if not enabled:
            return
        (out / "train_config.json").write_text(config.model_dump_json(indent=1) + "\n")
        if self.path.is_file():
            kept = [
                ln for ln in self.path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= resume_step
            ]
            self.path.write_text("".join(ln + "\n" for ln in kept))
        if config.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(out / "tensorboard"))
        if config.wandb_project:
            import wandb

            self._wandb = wandb.init(project=config.wandb_project, config=config.model_dump(), dir=str(out))

    def write(self, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(metrics) + "\n")
        step = int(metrics["step"])
        if self._tb is not None:
            for k, v in metrics.items():
                self._tb.add_scalar(k, v, step)
        if self._wandb is not None:
            self._wandb.log(metrics, step=step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def _progress(total: int, done: int, *, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, disable=not enabled, desc="train", unit="step")
