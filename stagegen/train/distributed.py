"""Multi-process training on torch.distributed, started by torchrun.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; with them the trainer joins the process group
(NCCL on CUDA, gloo on CPU), wraps the pipeline in DistributedDataParallel and synchronises
batch norm. Without them everything here is a no-op.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_type: str) -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0")), dist.get_world_size())


def shutdown_distributed(info: DistInfo) -> None:
    """Leave together: rank 0 hosts the rendezvous store, and a rank still talking to it when
    rank 0 has exited aborts ("terminate called without an active exception")."""
    if info.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


class ResumableSampler(Sampler[int]):
    """Epoch-seeded shuffling, sharded by rank, that can start mid-epoch (exact resume).

    Every rank draws the same permutation for an epoch (seed + epoch) and takes every
    world_size-th index, so the global batch is the same whatever the number of processes.
    """

    def __init__(self, length: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        if length < batch_size * world_size:
            raise ValueError(
                f"the dataset has {length} images, fewer than one global batch ({batch_size} x {world_size} processes); "
                "lower --batch-size"
            )
        self.length, self.batch_size, self.seed = length, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.batches_per_epoch = length // (batch_size * world_size)  # drop the ragged tail
        self.epoch = 0
        self.start_batch = 0

    def set_position(self, epoch: int, batch: int) -> None:
        self.epoch, self.start_batch = epoch, batch

    def __iter__(self):
        order = torch.randperm(self.length, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        global_batch = self.batch_size * self.world_size
        for b in range(self.start_batch, self.batches_per_epoch):
            chunk = order[b * global_batch : (b + 1) * global_batch]
            yield from chunk[self.rank :: self.world_size].tolist()

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.batch_size


class _CPUSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose batch statistics are all-reduced across processes (torch's
    SyncBatchNorm runs on GPUs only; this one runs on gloo/CPU too). Gradients flow through
    the all-reduce, so the result equals batch norm over the global batch."""

    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {x.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        with warnings.catch_warnings():
            # the differentiable all_reduce is marked deprecated in favour of functional
            # collectives, which do not carry gradients through it; it still works
            warnings.simplefilter("ignore", FutureWarning)
            from torch.distributed.nn.functional import all_reduce

        dims = [0] + list(range(2, x.dim()))
        count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            stats = all_reduce(torch.cat([x.sum(dims), (x * x).sum(dims), count]))
        c = x.shape[1]
        n = stats[-1]
        mean = stats[:c] / n
        var = stats[c : 2 * c] / n - mean * mean
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), m)
                self.running_var.lerp_(var.detach() * n / (n - 1), m)
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def convert_sync_batchnorm(module: nn.Module, device_type: str) -> nn.Module:
    if device_type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _convert_cpu(module)


def _convert_cpu(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, _CPUSyncBatchNorm):
        new = _CPUSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        return new
    for name, child in module.named_children():
        setattr(module, name, _convert_cpu(child))
    return module


def average_gradients(parameters) -> None:
    """All-reduce and average gradients of modules that are not wrapped in DDP."""
    world = dist.get_world_size()
    grads = [p.grad for p in parameters if p.grad is not None]
    if grads:
        flat = torch.cat([g.flatten() for g in grads])
        dist.all_reduce(flat)
        flat /= world
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()


def broadcast_flag(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank if it is true on any (a stop signal seen by one rank stops all)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def broadcast_ints(values: list[int], info: DistInfo, device: torch.device) -> list[int]:
    """Rank 0's ``values`` on every rank (a decision only rank 0 times, such as a schedule)."""
    if not info.enabled:
        return values
    t = torch.tensor(values, dtype=torch.int64, device=device)
    dist.broadcast(t, src=0)
    return [int(v) for v in t.tolist()]


def lr_scale_note(world_size: int, batch_size: int, accumulate: int) -> str:
    global_batch = world_size * batch_size * accumulate
    return f"global batch {global_batch} = {world_size} processes x {batch_size} per process x {accumulate} accumulation"


__all__ = [
    "DistInfo",
    "init_distributed",
    "shutdown_distributed",
    "ResumableSampler",
    "convert_sync_batchnorm",
    "average_gradients",
    "broadcast_flag",
    "broadcast_ints",
    "lr_scale_note",
]
