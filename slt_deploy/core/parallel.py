"""Processes that share one job: the rank/world context, local CPU
processes (``--nproc N``) and ``torchrun`` jobs.

Two uses. Training (:mod:`slt_deploy.training.distributed`) splits every
mini-batch over the ranks of a process group. Evaluation -- ``profile`` and
``control --evaluate`` -- splits a stream of samples into contiguous shards,
one per process, with :func:`map_shards`: every shard runs the same
deployed network on its own samples (each sample starts from a reset
network, so a shard's results do not depend on the others) and the pieces
come back in sample order, equal to one process's run.

* ``--nproc N``: this process starts N CPU processes (spawned, one thread
  each) and collects their pieces; no process group is needed.
* ``torchrun --nproc-per-node N [--nnodes M ...] -m slt_deploy.cli ...``:
  every rank runs the whole command; each computes its shard and all ranks
  exchange pieces over the process group (gloo), so every rank ends with the
  whole result and only rank 0 writes files.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from .errors import UserError


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

    def shard(self, index) -> slice:
        """This rank's contiguous part of ``len(index)`` samples (a global
        batch, or a stream to evaluate); parts differ by at most one sample."""
        bounds = np.linspace(0, len(index), self.world + 1).round().astype(int)
        return slice(int(bounds[self.rank]), int(bounds[self.rank + 1]))

    def sum_gradients(self, model: "torch.nn.Module") -> None:
        """Sum every parameter's gradient over the ranks (training)."""
        if not self.active:
            return
        for parameter in model.parameters():
            if parameter.grad is not None:
                dist.all_reduce(parameter.grad, op=dist.ReduceOp.SUM)


SINGLE = Context()


def context_from_environment(device: str = "cpu") -> Context:
    """Join the process group described by torchrun's environment (RANK,
    WORLD_SIZE, MASTER_ADDR, MASTER_PORT); a single process otherwise."""
    world = world_size()
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


def world_size() -> int:
    """Processes of the torchrun job this process belongs to (1 outside one)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """False on every rank of a torchrun job but rank 0 (the one that writes files)."""
    return int(os.environ.get("RANK", "0")) == 0


def check_processes(nproc: int) -> int:
    """The number of evaluation shards: ``--nproc``, or torchrun's world size."""
    if nproc < 1:
        raise UserError(f"--nproc must be >= 1, got {nproc}")
    if nproc > 1 and world_size() > 1:
        raise UserError("under torchrun, leave --nproc at 1: the job's ranks are the processes")
    return max(nproc, world_size())


def map_shards(function, inputs, nproc: int = 1, *arguments) -> list:
    """``[function(inputs[shard], *arguments) for shard in shards]``, in sample
    order: the shards run in ``nproc`` local processes, or over the ranks of
    the torchrun job this process is part of, or here (one shard).

    ``function`` must be a module-level function (the processes import it)
    and return its piece as a dict of NumPy arrays: local processes hand
    pieces back as ``.npz`` files, read with ``allow_pickle=False`` (the
    package never unpickles). A :class:`UserError` raised in a shard is
    raised here with its message."""
    world = world_size()
    if check_processes(nproc) > len(inputs):
        raise UserError(f"{check_processes(nproc)} processes for {len(inputs)} samples: "
                        "give at most one process per sample")
    if world > 1:
        context = context_from_environment()
        piece = _guarded(function, inputs[context.shard(inputs)], arguments)
        pieces = [None] * world
        dist.all_gather_object(pieces, piece)
    elif nproc > 1:
        with tempfile.TemporaryDirectory(prefix="slt-shards-") as folder:
            launch(nproc, _shard_worker, function, inputs, arguments, folder)
            pieces = [_read_piece(Path(folder), rank) for rank in range(nproc)]
    else:
        pieces = [_guarded(function, inputs, arguments)]
    for failed in pieces:
        if isinstance(failed, _Failure):
            raise UserError(failed.message) if failed.user_error else RuntimeError(failed.message)
    return pieces


@dataclass(frozen=True)
class _Failure:
    message: str
    user_error: bool


def _guarded(function, shard, arguments):
    try:
        return function(shard, *arguments)
    except UserError as error:
        return _Failure(str(error), True)
    except Exception as error:  # a bug: its type and message reach the caller
        return _Failure(f"{type(error).__name__}: {error}", False)


def _shard_worker(function, inputs, arguments, folder: str) -> None:
    """One local process of :func:`map_shards`: its shard's piece, pickled into ``folder``."""
    context = Context(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]))
    os.environ["WORLD_SIZE"] = "1"  # the shard runs as a single process
    # A spawned process has its start method fixed to "spawn"; Lava sets "fork"
    # when it is imported and fails if one is already set
    # (docs/lava-behaviours.md §11): leave it unset for Lava to choose.
    multiprocessing.set_start_method(None, force=True)
    piece = _guarded(function, inputs[context.shard(inputs)], arguments)
    folder = Path(folder)
    if isinstance(piece, _Failure):
        (folder / f"{context.rank}.json").write_text(json.dumps(asdict(piece)))
        return
    with open(folder / f"{context.rank}.part", "wb") as file:
        np.savez(file, **piece)
    (folder / f"{context.rank}.part").rename(folder / f"{context.rank}.npz")


def _read_piece(folder: Path, rank: int):
    """The piece (or failure) shard ``rank`` left in ``folder``."""
    failure = folder / f"{rank}.json"
    if failure.exists():
        return _Failure(**json.loads(failure.read_text()))
    with np.load(folder / f"{rank}.npz", allow_pickle=False) as stored:
        return {name: stored[name] for name in stored.files}
