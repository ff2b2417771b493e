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

import torch
import torch.distributed as dist
from torch import nn




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
