"""The GRPO loop: questions -> rollouts -> rewards -> credit -> update -> metrics (docs/training.md §2).

`Trainer.step` is one GRPO step, one call per stage: take the next P questions of the data
stream (this rank's share) and roll each out G times through the zoom graph
(`training.rollout`); score every rollout (`scoring`: the pure rewards plus the zoom
verifier); turn rewards into an advantage on every policy token (`training.core.advantages`);
update the policy once (`update`: re-render every trajectory, score its tokens under the
policy and the frozen reference, back-propagate the PPO-clip loss, all-reduce across ranks,
clip, AdamW step); sync the rollout engine's weights; log one metrics line (`metrics`).
`Trainer.train` runs steps and checkpoints (`checkpoint`).

``self.model`` is the module trained; ``self.policy.model`` the one that rolls out, is
checkpointed and verifies. They are one object, except under FSDP (`fsdp`): then the trained
copy is sharded and the rollout copy holds the full weights, gathered after every step.

One optimiser update per batch of rollouts, so the "old" policy is the current one and the
ratio starts at 1 (strictly on-policy; the clip range bounds any later update on the same
rollouts).
"""

from __future__ import annotations

import asyncio
import copy
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from zoom_agent.protocol.templates import templates_from
from zoom_agent.training.config import TrainConfig
from zoom_agent.training.core.advantages import policy_token_advantages
from zoom_agent.training.loop import checkpoint as ckpt
from zoom_agent.training.loop import data as data_mod
from zoom_agent.training.loop import distributed as dist
from zoom_agent.training.loop import fsdp
from zoom_agent.training.loop.difficulty import kept_questions
from zoom_agent.training.loop.metrics import MetricsLog, Timings, progress_bar, rollout_metrics
from zoom_agent.training.loop.optim import build_optimizer
from zoom_agent.training.loop.preflight import check_runnable
from zoom_agent.training.loop.run_folder import TINY_MODEL_DIR, open_run_folder
from zoom_agent.training.loop.scoring import score_trajectories
from zoom_agent.training.loop.update import PolicyUpdate
from zoom_agent.training.loop.validation import BestModel, validation_metrics
from zoom_agent.training.loop.verifier import ZoomVerifier
from zoom_agent.training.rollout.engine import RolloutEngine
from zoom_agent.training.rollout.trajectory import Trajectory
from zoom_agent.types import Question


class Trainer:
    """A GRPO run as `TrainConfig` describes it; `train` runs it, `step` runs one step.

    Args:
        config: the run's configuration.
        questions: use these instead of loading ``config.data`` (tests, notebooks).
        ctx: the distributed context (default: from the launcher's environment).
        overwrite: remove the files of another run in ``output_dir`` first; without it a
            folder holding a run with other settings is refused (`run_folder`).

    Raises:
        RunSetupError: before anything is built or loaded: no model to train, a device this
            machine lacks (`preflight`), or an output folder holding another run.
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        questions: Sequence[Question] | None = None,
        ctx: dist.DistContext | None = None,
        overwrite: bool = False,
    ) -> None:
        check_runnable(config)
        self.config = config
        self.ctx = ctx or dist.init_from_env(config.policy.device)
        self.sharded = self.ctx.enabled and fsdp.fsdp_requested(config.distributed, config.prompts_per_step, self.ctx)
        self.out = Path(config.output_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.resumed = open_run_folder(self.out, config, overwrite=overwrite, write=self.ctx.is_main)
        dist.barrier(self.ctx)  # the main rank has cleared or recorded the folder
        torch.manual_seed(config.seed)
        self.agent = config.agent
        resume_from = ckpt.latest_checkpoint(self.out / ckpt.CHECKPOINTS_DIR) if self.resumed else None
        self.initial_path = self._initial_model()
        policy_path = resume_from / "model" if resume_from else self.initial_path
        self.policy = self._load_vlm(policy_path)
        self.model = self.policy.model
        self._set_trainable()
        dist.broadcast_parameters(self.model, self.ctx)
        if self.sharded:
            self.model = self._shard()
        needs_ref = config.loss.kl_coef > 0 or config.reward.verifier == "reference"
        self.ref = self._load_vlm(self.initial_path, frozen=True) if needs_ref else None
        self.engine = RolloutEngine(self.policy, self._sampler(policy_path))
        self.verifier = self._verifier()
        self.questions = list(questions) if questions is not None else self._load_questions()
        self.total_steps = config.max_steps or math.ceil(config.epochs * len(self.questions) / config.prompts_per_step)
        self.optimizer, self.scheduler = build_optimizer(self.model, config, self.total_steps)
        self.step_count, self.consumed = 0, 0
        if resume_from is not None:
            position = ckpt.load_training_state(resume_from, self._optimizer_state(), self.scheduler)
            self.step_count, self.consumed = position["step"], position["consumed"]
        self.log = MetricsLog(self.out, config, enabled=self.ctx.is_main, resume_step=self.step_count)
        self.best = BestModel(self.out)
        self.val_questions: list[Question] | None = None
        ref_model = self.ref.model if self.ref is not None else None
        self.update = PolicyUpdate(
            self.policy, ref_model, self.engine.banned_ids, self.optimizer, self.scheduler, config, self.ctx, self.model
        )

    # -- the loop ----------------------------------------------------------------------
    def step(self) -> dict[str, float]:
        """One GRPO step on the next batch of the data stream; returns its metrics line."""
        timer = Timings()
        questions, first_group = self.next_questions()
        with timer("rollout"):
            trajs = self.rollouts(questions, first_group)
        with timer("rewards"):
            parts = asyncio.run(self.score(trajs))
        _hook(self.engine.sampler, "after_rollouts")  # e.g. vLLM frees its KV cache for training
        trained = [i for i, t in enumerate(trajs) if not t.failed]  # a rollout without tokens teaches nothing
        with timer("credit"):
            advantages = self.advantages([trajs[i] for i in trained], [parts[i] for i in trained])
        with timer("fwd_bwd"):
            update = self.update([trajs[i] for i in trained], advantages, timer)
        with timer("sync"):  # the transformers sampler shares the policy's weights: nothing to do
            if self.sharded:
                fsdp.gather_weights(self.model, self.policy.model)
            _hook(self.engine.sampler, "sync_weights", self.policy.model)
        self.step_count += 1
        self.consumed += self.config.prompts_per_step
        metrics = {"step": float(self.step_count), "lr": float(self.scheduler.get_last_lr()[0])}
        metrics |= rollout_metrics(trajs, parts, self.ctx) | update | timer.metrics()
        self.log.write(metrics)
        return metrics

    def next_questions(self) -> tuple[list[Question], int]:
        """This rank's share of the step's questions, and the group id of its first one."""
        c = self.config
        batch = data_mod.step_items(
            self.questions, self.consumed, c.prompts_per_step, seed=c.seed, shuffle=c.data.shuffle
        )
        offsets = dist.shard(list(range(len(batch))), self.ctx)
        first_group = self.consumed + (offsets[0] if offsets else 0)  # group ids unique across ranks
        return dist.shard(batch, self.ctx), first_group

    def rollouts(self, questions: Sequence[Question], first_group: int) -> list[Trajectory]:
        """G recorded rollouts of every question, grouped by question."""
        c = self.config
        self.policy.model.eval()
        _hook(self.engine.sampler, "before_rollouts")
        return asyncio.run(
            self.engine.rollouts(
                questions,
                self.agent,
                group_size=c.group_size,
                seed=c.seed * 100_003 + self.step_count,
                first_group=first_group,
                concurrency=c.rollout_concurrency,
            )
        )

    async def score(self, trajs: Sequence[Trajectory]) -> list[dict[str, float]]:
        """Reward parts of every trajectory (see `scoring.score_trajectories`)."""
        return await score_trajectories(trajs, self.verifier, self.config.reward, self.agent.dialect)

    def advantages(self, trajs: Sequence[Trajectory], parts: Sequence[dict[str, float]]) -> list[torch.Tensor]:
        """Per-token advantages of each trajectory's policy tokens (`policy_token_advantages`)."""
        credit = self.config.credit
        return policy_token_advantages(
            parts,
            [t.masks.on_policy() for t in trajs],
            [t.group for t in trajs],
            weights=self.config.reward.weights(),
            mode=credit.mode,
            variant=credit.variant,
            channel_regions=credit.regions(),
            eps=credit.eps,
            zero_constant_groups=credit.zero_constant_groups,
            single_response=credit.single_response,
        )

    def train(self) -> list[dict[str, float]]:
        """Run the remaining steps; returns each step's metrics (this process's view)."""
        history = []
        bar = progress_bar(self.total_steps, self.step_count, enabled=self.config.progress and self.ctx.is_main)
        while self.step_count < self.total_steps:
            metrics = self.step()
            history.append(metrics)
            bar.update(1)
            bar.set_postfix(self.progress_postfix(metrics))
            if self.config.save_every and self.step_count % self.config.save_every == 0:
                self.save()
            if self.config.val_every and self.step_count % self.config.val_every == 0:
                self.validate()
        bar.close()
        if history:
            self.save()
            if self.ctx.is_main:
                ckpt.save_model(self.policy.model, self.policy.processor, self.out / ckpt.FINAL_MODEL_DIR)
        self.log.close()
        return history

    def progress_postfix(self, metrics: dict[str, float]) -> dict[str, str]:
        """What the progress bar shows after a step."""
        return {"reward": f"{metrics['reward/total']:.3f}"}

    def validate(self) -> dict[str, float]:
        """Score one rollout of each validation question (this rank's share), log ``val/*``
        as a line of its own and keep the model when ``val/total`` is the best so far
        (`validation.BestModel`)."""
        if self.val_questions is None:
            if self.config.val_data is None:
                raise ValueError("validation needs val_data (the held-out questions)")
            self.val_questions = data_mod.load_questions(self.config.val_data, self.out, write=False)
        questions = dist.shard(self.val_questions, self.ctx)
        self.policy.model.eval()
        _hook(self.engine.sampler, "before_rollouts")
        trajs = asyncio.run(
            self.engine.rollouts(
                questions,
                self.agent,
                group_size=1,
                seed=self.config.seed * 100_003 - self.step_count - 1,  # never a training step's seed
                first_group=0,
                concurrency=self.config.rollout_concurrency,
            )
        )
        parts = asyncio.run(self.score(trajs))
        _hook(self.engine.sampler, "after_rollouts")
        metrics = validation_metrics(parts, self.ctx)
        best = self.best.offer(
            self.step_count, metrics, self.policy.model, self.policy.processor, write=self.ctx.is_main
        )
        metrics |= {"val/best": float(best)}
        dist.barrier(self.ctx)
        self.log.write({"step": float(self.step_count), **metrics})
        return metrics

    def save(self) -> Path | None:
        """Checkpoint now (main rank writes; the others wait)."""
        path = None
        optimizer = self._optimizer_state()
        if isinstance(optimizer, fsdp.FullOptimizerState):
            optimizer.gather()  # every rank: an all-gather of the shards
        if self.ctx.is_main:
            path = ckpt.save_checkpoint(
                self.out / ckpt.CHECKPOINTS_DIR,
                self.step_count,
                model=self.policy.model,
                processor=self.policy.processor,
                optimizer=optimizer,  # FSDP: the gathered state
                scheduler=self.scheduler,
                position={"step": self.step_count, "consumed": self.consumed},
                keep=self.config.keep_checkpoints,
            )
        dist.barrier(self.ctx)
        return path

    # -- setup -------------------------------------------------------------------------
    def _shard(self) -> torch.nn.Module:
        """FSDP: a sharded copy of the policy to train; the policy's own model becomes the
        full rollout copy (no gradients)."""
        trained = fsdp.shard_policy(copy.deepcopy(self.policy.model))
        self.policy.model.requires_grad_(False)
        return trained

    def _optimizer_state(self) -> Any:
        """What checkpoints save and load as the optimiser: the optimiser itself, or under
        FSDP its full state (`fsdp.FullOptimizerState`)."""
        return fsdp.FullOptimizerState(self.model, self.optimizer) if self.sharded else self.optimizer

    def _initial_model(self) -> Path:
        p = self.config.policy
        if p.path is not None:
            return Path(p.path).expanduser()
        tiny = self.out / TINY_MODEL_DIR
        if self.ctx.is_main and not (tiny / "config.json").is_file():
            from zoom_agent.models.tiny import build_tiny_model

            assert p.tiny_family is not None  # check_runnable refuses a run without path or tiny family
            build_tiny_model(tiny, p.tiny_family, seed=p.tiny_seed, overwrite=True, size=p.tiny_size)
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

    def _sampler(self, weights: Path) -> Any:
        """vLLM starts from the weights the policy was loaded from (synced after every step)."""
        if self.config.engine == "vllm":
            from zoom_agent.training.rollout.vllm_engine import VLLMSampler

            return VLLMSampler(self.policy, weights, **self.config.vllm)
        return None  # RolloutEngine's default: transformers on the policy itself

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
            pooled=r.verifier_view == "pooled",
            official_prompt=r.verifier_prompt == "official",
            templates=templates_from(a.prompt_file),
            gate=r.verifier_gate,
        )

    def _load_questions(self) -> list[Question]:
        if self.ctx.is_main:  # rank 0 writes the synthetic task; the others read it
            questions = data_mod.load_questions(self.config.data, self.out, write=True)
        dist.barrier(self.ctx)
        if not self.ctx.is_main:
            questions = data_mod.load_questions(self.config.data, self.out, write=False)
        if self.config.difficulty_filter:
            return kept_questions(self.engine, questions, self.config, self.ctx)
        return questions


def _hook(sampler: Any, name: str, *args: Any) -> None:
    method = getattr(sampler, name, None)
    if method is not None:
        method(*args)
