"""Fully sharded data parallel training of the policy (FSDP2, ``torch.distributed.fsdp.fully_shard``).

The trained copy of the policy is sharded: each decoder layer and vision block (the classes
the model names in ``_no_split_modules``, found by accelerate's ``transformer_based_wrap``
policy) is one FSDP unit, the rest (embeddings, merger, final norm, LM head) is the root
unit. Gradients are *summed* over ranks in the reduce-scatter (divide factor 1), since every
rank already weighs its sequences by the global counts (docs/training.md §5).

Three things the plain data parallel path does not need:

- A full, unsharded **rollout copy** of the policy on every rank (`gather_weights` fills it
  after every step). Rollouts, the verifier and validation make different numbers of
  forward passes on each rank, which FSDP's per-layer all-gathers cannot allow; the rollout
  copy makes none. It is also what checkpoints save: a full state dict, written by rank 0,
  that loads in one process like any model folder. The frozen reference is not sharded
  either, for the same reason (the verifier calls it a different number of times per rank).
- Every rank makes the **same number of forward and backward passes** per optimiser step:
  a rank with fewer sequences adds zero-weight passes (`padding_passes`).
- The optimiser state is sharded; checkpoints hold it **gathered**, keyed by parameter name
  (`FullOptimizerState`).

Launch: ``accelerate launch --use_fsdp --fsdp_version 2 --num_processes N -m zoom_agent.cli
train RECIPE`` (the launcher's ``ACCELERATE_USE_FSDP`` turns it on), or the recipe key
``distributed: fsdp`` under ``torchrun``/``accelerate launch``. accelerate's own FSDP path
(``Accelerator.prepare``) is not used: on a machine without GPUs it never selects FSDP
(``accelerate/state.py``: only the ``MULTI_GPU``-like types become ``FSDP``; ``MULTI_CPU``
does not, and ``accelerate launch`` refuses ``--cpu`` with ``--use_fsdp``), so the same code
shards here with ``fully_shard`` under the launcher's process group, on CPU (gloo) and GPU.
The launcher's FSDP settings that apply are read through accelerate's
``FullyShardedDataParallelPlugin``: the classes to wrap, ``reshard_after_forward`` and CPU
offload.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch

from zoom_agent.training.loop.distributed import DistContext, all_reduce_max

FSDP_ENV = "ACCELERATE_USE_FSDP"
"""Set to ``true`` by ``accelerate launch --use_fsdp`` (or an accelerate config with FSDP)."""


def fsdp_requested(distributed: str, prompts_per_step: int | None = None, ctx: DistContext | None = None) -> bool:
    """Whether this run shards the policy: the recipe's ``distributed: fsdp``, or a launch by
    ``accelerate launch --use_fsdp``. Checked before anything is loaded.

    Args:
        distributed: the recipe's ``distributed``.
        prompts_per_step: the recipe's; with ``ctx``, checked against the number of processes.
        ctx: the distributed context.

    Raises:
        RunSetupError: the launcher asked for FSDP version 1 (this trainer runs FSDP2), or
            fewer questions per step than processes (a rank without any has nothing to pad
            its passes with).
    """
    from zoom_agent.training.loop.preflight import RunSetupError

    launched = os.environ.get(FSDP_ENV, "false").lower() == "true"
    if launched and os.environ.get("FSDP_VERSION", "2") != "2":
        raise RunSetupError(
            f"accelerate launch asked for FSDP version {os.environ['FSDP_VERSION']} (FSDP_VERSION); "
            "the trainer shards with FSDP2: pass --fsdp_version 2"
        )
    chosen = distributed == "fsdp" or launched
    if chosen and ctx is not None and prompts_per_step is not None and prompts_per_step < ctx.world:
        raise RunSetupError(
            f"FSDP needs prompts_per_step >= the number of processes ({ctx.world}), got {prompts_per_step}: "
            "a rank without questions has nothing to pad its passes with"
        )
    return chosen


def shard_policy(model: torch.nn.Module) -> torch.nn.Module:
    """Shard ``model`` in place with FSDP2: one unit per ``_no_split_modules`` layer, then the root.

    Needs the process group (every rank calls it with the same weights). Gradients are
    summed over ranks, not averaged.

    Returns:
        The same module, now an ``FSDPModule`` whose parameters are sharded ``DTensor``s.
    """
    from accelerate import FullyShardedDataParallelPlugin
    from accelerate.utils import get_module_children_bottom_up
    from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy
    from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

    plugin = FullyShardedDataParallelPlugin(fsdp_version=2, auto_wrap_policy="transformer_based_wrap")
    wrap: Callable[[torch.nn.Module], bool] | None = fsdp2_prepare_auto_wrap_policy(plugin, model)
    if wrap is None:  # pragma: no cover - transformer_based_wrap always gives a policy
        raise RuntimeError("accelerate gave no transformer_based_wrap policy")
    options: dict[str, Any] = {
        "offload_policy": plugin.cpu_offload,
        "mp_policy": plugin.mixed_precision_policy or MixedPrecisionPolicy(),
    }
    for module in get_module_children_bottom_up(model)[:-1]:
        if wrap(module):
            fully_shard(module, reshard_after_forward=plugin.reshard_after_forward, **options)
    fully_shard(model, **options)
    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.set_gradient_divide_factor(1.0)  # a sum: the loss already holds 1 / global counts
            module.set_force_sum_reduction_for_comms(True)  # gloo has no PREMUL_SUM
    model.set_reduce_scatter_unused_params(True)  # type: ignore[operator]  # a parameter a pass skips adds 0
    return model


def padding_passes(count: int, can_pad: bool, ctx: DistContext) -> int:
    """Zero-weight passes this rank adds so that it makes as many forward (and backward)
    passes as the busiest rank: FSDP all-gathers every unit in every pass, on every rank.

    Args:
        count: this rank's real passes.
        can_pad: whether this rank holds a trajectory to pad with.
        ctx: the distributed context (every rank calls this).

    Raises:
        RuntimeError: on every rank alike, when a rank must pad and has no trajectory at all
            (all its rollouts failed and none succeeded before).
    """
    most, stuck = all_reduce_max([float(count), 0.0 if can_pad else 1.0], ctx)
    if most > 0 and stuck:
        raise RuntimeError(
            "FSDP: a rank has no trajectory with policy tokens to pad its passes with (all its "
            "rollouts failed); every rank must make the same forward passes under FSDP"
        )
    return int(most) - count


def is_sharded(model: torch.nn.Module) -> bool:
    """Whether ``model`` is an FSDP2 module."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def gather_weights(sharded: torch.nn.Module, full: torch.nn.Module) -> None:
    """Copy the sharded model's weights into the unsharded rollout copy, parameter by
    parameter (an all-gather each: every rank calls it)."""
    from torch.distributed.tensor import DTensor

    targets = dict(full.named_parameters())
    with torch.no_grad():
        for name, param in sharded.named_parameters():
            value = param.full_tensor() if isinstance(param, DTensor) else param
            targets[name].copy_(value.to(targets[name].device))


class FullOptimizerState:
    """The optimiser of a sharded model seen as one full state dict, keyed by parameter name.

    `gather` (every rank) collects it before a checkpoint is written; `state_dict` then gives
    it to the writer (rank 0). `load_state_dict` (every rank) takes a full state dict and
    keeps this rank's shards. It stands where `checkpoint` expects an optimiser.
    """

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.model, self.optimizer = model, optimizer
        self._gathered: dict[str, Any] | None = None

    def gather(self) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        self._gathered = dict(get_optimizer_state_dict(self.model, self.optimizer, options=options))

    def state_dict(self) -> dict[str, Any]:
        if self._gathered is None:
            raise RuntimeError("FullOptimizerState.gather must run on every rank before state_dict")
        return self._gathered

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(
            self.model, self.optimizer, optim_state_dict=state, options=StateDictOptions(full_state_dict=True)
        )
