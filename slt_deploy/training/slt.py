"""Stochastic Latency Training (SLT, the paper's Algorithm 1) and its losses.

For every mini-batch SLT draws one latency t ~ U{1..T} and runs the network
for t time steps only; the loss of that t-step forward pass is
back-propagated. ``method="fixed"`` always runs T steps (the baselines).

Losses on readout outputs O [t, B, K] (paper Eqs. 4-5; TET total as in
Deng et al. 2022):

* SDT: CE(mean_s O[s], y)
* TET: (1 - lambda) * mean_s CE(O[s], y) + lambda * MSE(O, 1.0)

On expectation over t, SLT-TET weights CE(O[s], y) by c(s) of Eq. 12
(:func:`slt_tet_step_weights`).

Training is seeded and reproducible: the model is initialised from the seed,
and three generators (data order, SLT latency, rate encoding) are saved in
every checkpoint, so ``resume`` continues bit for bit.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import UserError
from ..data.splits import check_encoding, encode, load_split
from ..models import Recipe, TrainSettings, build_model, recipe_from_dict
from .checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from ..core.parallel import Context, context_from_environment, SINGLE
from .distributed import share_batch_norm

METHODS = ("slt", "fixed")
LOSSES = ("tet", "sdt")


def sdt_loss(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Eq. 4: cross-entropy of the time-averaged output. outputs [t, B, K]."""
    return F.cross_entropy(outputs.mean(0), labels)


def tet_loss(outputs: torch.Tensor, labels: torch.Tensor, lam: float = 0.0) -> torch.Tensor:
    """Eq. 5 with TET's regulariser: (1-lam) mean_s CE(O[s], y) + lam MSE(O, 1)."""
    steps = outputs.shape[0]
    per_step = F.cross_entropy(outputs.flatten(0, 1), labels.repeat(steps))
    if lam == 0.0:
        return per_step
    return (1.0 - lam) * per_step + lam * F.mse_loss(outputs, torch.ones_like(outputs))


def loss_function(loss: str, lam: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if loss == "tet":
        return lambda outputs, labels: tet_loss(outputs, labels, lam)
    if loss == "sdt":
        return sdt_loss
    raise UserError(f"unknown loss '{loss}': choose one of {', '.join(LOSSES)}")


def slt_tet_step_weights(T: int) -> np.ndarray:
    """c(t), t = 1..T (Eq. 12): expected weight of CE(O[t], y) under SLT-TET,
    c(t) = (1/T) sum_{i=t..T} 1/i."""
    inverse = 1.0 / np.arange(1, T + 1)
    return np.cumsum(inverse[::-1])[::-1] / T


class LatencySampler:
    """Latency (time steps) of each mini-batch: t ~ U{1..T} for SLT, T for fixed.

    Draws from its own generator, so every process seeded alike (e.g. every
    rank of a distributed run) draws the same sequence."""

    def __init__(self, T: int, method: str, generator: torch.Generator):
        if T < 1:
            raise UserError(f"latency T must be >= 1, got {T}")
        if method not in METHODS:
            raise UserError(f"unknown method '{method}': choose one of {', '.join(METHODS)}")
        self.T, self.method, self.generator = T, method, generator

    def __call__(self) -> int:
        if self.method == "fixed":
            return self.T
        return int(torch.randint(1, self.T + 1, (1,), generator=self.generator))


@dataclass
class Generators:
    """The three random streams of a run (saved in checkpoints)."""

    data: torch.Generator
    latency: torch.Generator
    encoding: torch.Generator

    @classmethod
    def seeded(cls, seed: int) -> "Generators":
        return cls(*(torch.Generator().manual_seed(seed * 3 + k) for k in range(3)))

    def state(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name).get_state() for name in ("data", "latency", "encoding")}

    def restore(self, state: dict[str, torch.Tensor]) -> None:
        for name in ("data", "latency", "encoding"):
            getattr(self, name).set_state(state[name])


def validate_settings(settings: TrainSettings) -> None:
    if settings.latency < 1:
        raise UserError(f"latency T must be >= 1, got {settings.latency}")
    if settings.method not in METHODS:
        raise UserError(f"unknown method '{settings.method}': choose one of {', '.join(METHODS)}")
    if settings.loss not in LOSSES:
        raise UserError(f"unknown loss '{settings.loss}': choose one of {', '.join(LOSSES)}")
    if not 0.0 <= settings.lam <= 1.0:
        raise UserError(f"lambda must lie in [0, 1], got {settings.lam}")
    if settings.loss == "sdt" and settings.lam != 0.0:
        raise UserError("lambda is the TET regulariser: it does not apply to --loss sdt")
    if settings.epochs < 1 or settings.batch_size < 1 or not 0 < settings.lr < math.inf:
        raise UserError("epochs and batch size must be >= 1 and the learning rate a finite number > 0")
    if settings.scheduler not in ("cosine", "none"):
        raise UserError(f"unknown scheduler '{settings.scheduler}': choose cosine or none")


@dataclass
class TrainingRun:
    """Everything a training loop needs; built fresh or from a checkpoint."""

    recipe: Recipe
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    generators: Generators
    epoch: int
    history: list[dict[str, Any]]
    context: Context = SINGLE

    def state(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe.to_dict(),
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": self.generators.state(),
            "epoch": self.epoch,
            "history": self.history,
        }


def _optimizer_and_scheduler(model: torch.nn.Module, settings: TrainSettings):
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, betas=tuple(settings.betas))
    if settings.scheduler == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.epochs)
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)
    return optimizer, scheduler


def _placed(model: torch.nn.Module, context: Context) -> torch.nn.Module:
    if context.active and getattr(model, "framework", "norse") == "lava-dl":
        raise UserError("the lava-dl backend trains on one process (slayer's MeanOnlyBatchNorm has no "
                        "global-batch statistics): drop --nproc")
    model = model.to(context.device)
    return share_batch_norm(model) if context.active else model


def new_run(recipe: Recipe, check_data: bool = True, context: Context = SINGLE) -> TrainingRun:
    """A fresh, seeded run. ``check_data=False`` skips loading the recipe's data
    set (for callers that bring their own tensors, such as benchmarks);
    ``context`` places it on a device and, for distributed training, a rank."""
    validate_settings(recipe.train)
    if check_data:
        data = load_split(recipe.dataset, "train", recipe.input_shape, frames=recipe.train.latency)
        check_encoding(data, recipe.encoding)
        if data.classes != recipe.classes:
            raise UserError(f"dataset {data.dataset} has {data.classes} classes, "
                            f"model {recipe.name} has {recipe.classes}")
    torch.manual_seed(recipe.train.seed)
    model = _placed(build_model(recipe), context)
    optimizer, scheduler = _optimizer_and_scheduler(model, recipe.train)
    return TrainingRun(recipe, model, optimizer, scheduler, Generators.seeded(recipe.train.seed), 0, [], context)


def resume_run(path: str | os.PathLike, context: Context = SINGLE) -> TrainingRun:
    """The run saved in checkpoint ``path``, ready to continue."""
    checkpoint = load_checkpoint(path)
    recipe = recipe_from_dict(checkpoint["recipe"])
    for key in ("optimizer", "scheduler", "rng", "epoch"):
        if key not in checkpoint:
            raise UserError(f"checkpoint {path} has no training state ('{key}'): it cannot be resumed")
    model = _placed(model_from_checkpoint(checkpoint, str(path)), context).train()
    optimizer, scheduler = _optimizer_and_scheduler(model, recipe.train)
    try:
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        generators = Generators.seeded(recipe.train.seed)
        generators.restore(checkpoint["rng"])
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise UserError(f"checkpoint {path} has a broken training state: {exc}") from None
    return TrainingRun(
        recipe, model, optimizer, scheduler, generators, int(checkpoint["epoch"]), list(checkpoint.get("history", [])),
        context,
    )


def train_one_epoch(run: TrainingRun, inputs, labels, on_batch: Callable[[], None] | None = None,
                    augment: Callable | None = None) -> dict:
    """One pass over the training data (Algorithm 1, lines 3-9). ``augment``
    (a split's, e.g. random crop/flip of event frames) draws from the encoding stream.

    Distributed: every rank draws the same global batch, latency and encoding
    and trains on its own shard of it (see :mod:`slt_deploy.training.distributed`)."""
    settings, recipe, context = run.recipe.train, run.recipe, run.context
    sampler = LatencySampler(settings.latency, settings.method, run.generators.latency)
    criterion = loss_function(settings.loss, settings.lam)
    run.model.train()
    order = torch.randperm(len(labels), generator=run.generators.data)
    total_loss, latencies, started = 0.0, [], time.perf_counter()
    for start in range(0, len(order), settings.batch_size):
        index = order[start : start + settings.batch_size]
        t = sampler()
        batch, targets = inputs[index], labels[index]
        if augment is not None:
            batch, targets = augment(batch, targets, run.generators.encoding)
        x = encode(batch, t, recipe.encoding, run.generators.encoding)
        mine = context.shard(index)
        x, y = x[:, mine].to(context.device), targets[mine].to(context.device)
        loss = criterion(run.model(x), y)
        if context.active:  # this shard's share of the global batch's mean loss
            loss = loss * (len(y) / len(index))
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        context.sum_gradients(run.model)
        run.optimizer.step()
        batch_loss = loss.detach().cpu()
        if context.active:
            torch.distributed.all_reduce(batch_loss)
        total_loss += float(batch_loss) * len(index)
        latencies.append(t)
        if on_batch is not None:
            on_batch()
    run.scheduler.step()
    run.epoch += 1
    record = {
        "epoch": run.epoch,
        "loss": total_loss / len(labels),
        "mean_latency": float(np.mean(latencies)),
        "seconds": time.perf_counter() - started,
    }
    run.history.append(record)
    return record


def train(
    run: TrainingRun,
    checkpoint_path: str | os.PathLike,
    progress: Callable[[int, int], None] | None = None,
    stop_after_epochs: int | None = None,
) -> Path:
    """Train ``run`` to its recipe's epoch count, writing ``checkpoint_path``
    atomically after every epoch. ``progress(done_batches, total_batches)``
    is called after every batch. ``stop_after_epochs`` ends early (tests)."""
    recipe = run.recipe
    data = load_split(recipe.dataset, "train", recipe.input_shape, frames=recipe.train.latency)
    check_encoding(data, recipe.encoding)
    batches_per_epoch = -(-len(data) // recipe.train.batch_size)
    total = batches_per_epoch * recipe.train.epochs
    done = batches_per_epoch * run.epoch

    def on_batch():
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    path = Path(checkpoint_path)
    main = run.context.is_main  # only rank 0 writes checkpoints and shows progress
    epochs_run = 0
    while run.epoch < recipe.train.epochs:
        if stop_after_epochs is not None and epochs_run >= stop_after_epochs:
            break
        train_one_epoch(run, data.inputs, data.labels, on_batch if main else None, data.augment)
        if main:
            save_checkpoint(path, run.state())
        epochs_run += 1
    if main and run.epoch >= recipe.train.epochs and not path.exists():
        save_checkpoint(path, run.state())
    return path


def distributed_worker(recipe_data: dict | None, resume: str | None, checkpoint_path: str, device: str = "cpu",
                       stop_after_epochs: int | None = None) -> None:
    """One rank of a distributed run (started by ``launch`` or torchrun)."""
    context = context_from_environment(device)
    run = resume_run(resume, context) if resume else new_run(recipe_from_dict(recipe_data), context=context)
    train(run, checkpoint_path, stop_after_epochs=stop_after_epochs)


def with_settings(recipe: Recipe, **overrides: Any) -> Recipe:
    """``recipe`` with training settings (and optionally dataset/encoding) replaced;
    ``None`` values leave a setting as it is."""
    train_overrides = {k: v for k, v in overrides.items() if k in TrainSettings.__dataclass_fields__ and v is not None}
    other = {k: v for k, v in overrides.items() if k in ("dataset", "encoding") and v is not None}
    unknown = set(overrides) - set(TrainSettings.__dataclass_fields__) - {"dataset", "encoding"}
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}")
    return replace(recipe, train=replace(recipe.train, **train_overrides), **other)
