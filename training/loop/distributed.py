"""Data parallel training over several processes with torch.distributed.

Every rank holds the whole policy, rolls out its own share of the step's questions (whole
GRPO groups, so group statistics stay local), and back-propagates its own trajectories with
loss weights computed from *global* counts (`all_reduce_sum`). Summing the gradients over
ranks (`all_reduce_gradients`) then gives exactly the gradient of the loss over the whole
batch, and since every rank starts from the same weights (`broadcast_parameters`) and
applies the same update, the ranks stay identical. No DDP wrapper: ranks may hold different
numbers of trajectories (failed rollouts are dropped), which DDP's per-backward hooks do not
allow.

Launch (CPU, gloo; or GPUs, NCCL, one process per GPU)::

    torchrun --nproc_per_node 2 -m zoom_agent.cli train tiny-cpu --override output_dir=runs/dp
    accelerate launch --num_processes 2 -m zoom_agent.cli train RECIPE.yaml

Both set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT, which `init_from_env`
reads. On GPUs set ``policy.device: cuda``; each rank takes ``cuda:LOCAL_RANK``.

FSDP (models that do not fit one GPU; ``distributed: fsdp`` or ``accelerate launch
--use_fsdp --fsdp_version 2``): `training.loop.fsdp` shards the trained copy of the policy
after `broadcast_parameters`; the same global loss weights apply, FSDP sums the gradients
inside ``backward`` (so `all_reduce_gradients` leaves an FSDP module alone), and rollouts run
on a full copy that receives the gathered weights after every step.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch

T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: rank, world size, and whether torch.distributed is on."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env(device: str = "cpu") -> DistContext:
    """Join the process group the launcher describes (WORLD_SIZE > 1), else run alone.

    Args:
        device: the policy device; ``cuda`` selects NCCL and this rank's GPU, else gloo.

    Returns:
        The `DistContext`.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return DistContext(rank=rank, world=world, local_rank=local)


def shard(items: Sequence[T], ctx: DistContext) -> list[T]:
    """This rank's share of a step's items: contiguous blocks, the first ranks one longer."""
    n, world = len(items), ctx.world
    lo = ctx.rank * (n // world) + min(ctx.rank, n % world)
    hi = lo + n // world + (1 if ctx.rank < n % world else 0)
    return list(items[lo:hi])


def all_reduce_sum(values: Sequence[float], ctx: DistContext) -> list[float]:
    """Element-wise sum over ranks (identity when alone)."""
    if not ctx.enabled:
        return [float(v) for v in values]
    import torch.distributed as dist

    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_comm_device(ctx))
    dist.all_reduce(t)
    return [float(v) for v in t.cpu().tolist()]


def all_reduce_max(values: Sequence[float], ctx: DistContext) -> list[float]:
    """Element-wise maximum over ranks (identity when alone)."""
    if not ctx.enabled:
        return [float(v) for v in values]
    import torch.distributed as dist

    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_comm_device(ctx))
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [float(v) for v in t.cpu().tolist()]


def all_reduce_gradients(model: torch.nn.Module, ctx: DistContext) -> None:
    """Sum every trainable parameter's gradient over ranks, in one flat buffer per dtype.

    Parameters without a gradient on this rank contribute zeros (and receive the sum). An
    FSDP module is left alone: its backward already summed them (`fsdp.shard_policy`).
    """
    if not ctx.enabled:
        return
    from torch.distributed.fsdp import FSDPModule

    if isinstance(model, FSDPModule):
        return
    import torch.distributed as dist

    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    by_dtype: dict[torch.dtype, list[torch.nn.Parameter]] = {}
    for p in params:
        by_dtype.setdefault(p.grad.dtype, []).append(p)  # type: ignore[union-attr]
    for group in by_dtype.values():
        flat = torch.cat([p.grad.reshape(-1) for p in group])  # type: ignore[union-attr]
        dist.all_reduce(flat)
        offset = 0
        for p in group:
            n = p.numel()
            p.grad.copy_(flat[offset : offset + n].view_as(p))  # type: ignore[union-attr]
            offset += n


def broadcast_parameters(model: torch.nn.Module, ctx: DistContext) -> None:
    """Make every rank's weights equal rank 0's."""
    if not ctx.enabled:
        return
    import torch.distributed as dist

    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            dist.broadcast(tensor.data, src=0)


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op when alone)."""
    if ctx.enabled:
        import torch.distributed as dist

        dist.barrier()


def _comm_device(ctx: DistContext) -> torch.device:
    import torch.distributed as dist

    return torch.device("cuda", ctx.local_rank) if dist.get_backend() == "nccl" else torch.device("cpu")
