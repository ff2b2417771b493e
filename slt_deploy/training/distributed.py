"""Data-parallel SLT training on PyTorch's distributed engine.

Every rank holds the whole model and, at every step, one contiguous shard
of the same global mini-batch:

* the data order, the SLT latency t and the rate encoding come from the
  run's three generators, seeded alike on every rank, so every rank draws
  the same global batch and the same t -- ranks never wait on each other
  with different latencies;
* tdBN statistics are those of the global batch: each BatchNorm gathers
  its input from all ranks (autograd-aware), normalises the whole batch and
  keeps its own rows, so running statistics are identical on every rank and
  equal to single-process training;
* each rank's loss is scaled by its share of the global batch and the
  gradients are summed across ranks, which gives exactly the gradient of
  the global batch's mean loss (shards may differ by one sample);
* only rank 0 writes checkpoints and shows progress.

The result equals single-process training with the same global batch and
seed up to floating-point summation order. Launch with
``slt-deploy train --nproc N`` (CPU processes, gloo, one machine) or with
``torchrun`` (any backend; nccl on GPU clusters, see the README).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Context:
    """Where this process stands: rank, world size and device."""

    rank: int = 0
    world: int = 1
    device: str = "cpu"

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, index: torch.Tensor) -> slice:
        """This rank's contiguous part of a global batch of ``len(index)`` samples."""
        bounds = np.linspace(0, len(index), self.world + 1).round().astype(int)
        return slice(int(bounds[self.rank]), int(bounds[self.rank + 1]))

    def sum_gradients(self, model: nn.Module) -> None:
        if not self.active:
            return
        for parameter in model.parameters():
            if parameter.grad is not None:
                dist.all_reduce(parameter.grad, op=dist.ReduceOp.SUM)


SINGLE = Context()


def context_from_environment(device: str = "cpu") -> Context:
    """Join the process group described by torchrun's environment (RANK,
    WORLD_SIZE, MASTER_ADDR, MASTER_PORT); a single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Context(device=device)
    rank = int(os.environ["RANK"])
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world)
    if device.startswith("cuda"):
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', rank))}"
        torch.cuda.set_device(device)
    return Context(rank, world, device)


class _GlobalStatistics:
    """BatchNorm that, in distributed training, normalises with the
    statistics of the global batch (all ranks) and returns its own rows."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_gather  # only in a distributed run

        world, rank = dist.get_world_size(), dist.get_rank()
        sizes = torch.zeros(world, dtype=torch.long)
        sizes[rank] = x.shape[0]
        dist.all_reduce(sizes)
        largest = int(sizes.max())
        padded = torch.cat([x, x.new_zeros((largest - x.shape[0], *x.shape[1:]))]) if x.shape[0] < largest else x
        gathered = all_gather(padded)
        whole = torch.cat([part[: int(n)] for part, n in zip(gathered, sizes)])
        start = int(sizes[:rank].sum())
        return super().forward(whole)[start : start + x.shape[0]]


class GlobalBatchNorm1d(_GlobalStatistics, nn.BatchNorm1d):
    pass


class GlobalBatchNorm2d(_GlobalStatistics, nn.BatchNorm2d):
    pass


def share_batch_norm(model: nn.Module) -> nn.Module:
    """Make every BatchNorm of ``model`` use global-batch statistics (in place;
    parameter names and checkpoints are unchanged)."""
    for module in model.modules():
        if type(module) is nn.BatchNorm1d:
            module.__class__ = GlobalBatchNorm1d
        elif type(module) is nn.BatchNorm2d:
            module.__class__ = GlobalBatchNorm2d
    return model


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, function, arguments) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    try:
        function(*arguments)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def launch(processes: int, function, *arguments) -> None:
    """Run ``function(*arguments)`` in ``processes`` CPU processes joined by
    gloo on this machine (what ``slt-deploy train --nproc N`` does)."""
    import torch.multiprocessing as mp  # only when processes are started

    mp.start_processes(_worker, args=(processes, free_port(), function, arguments), nprocs=processes,
                       join=True, start_method="spawn")
