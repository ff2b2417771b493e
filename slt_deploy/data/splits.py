"""Data: the embedded default data set and the encodings that turn samples
into per-time-step network inputs.

Default data: scikit-learn's digits (1,797 real 8x8 grey images, 10 classes,
shipped inside scikit-learn -- nothing is downloaded). Pixel values 0..16 are
scaled to [0, 1]. The split is fixed (stratified, ``random_state=0``):

* ``test``: 360 samples (20 %),
* ``calibration``: 180 samples held out of the rest (10 % of all) -- for
  thresholds and any tuning of the runtime controller, never for training
  or testing,
* ``train``: the remaining 1,257 samples.

Encodings (inputs are time-first, [t, batch, *shape]):

* ``direct``: the image itself at every step (constant input; the first
  synaptic layer sees analog values, as the paper does for CIFAR);
* ``rate``: a fresh Bernoulli spike frame per step, pixel intensity as the
  probability (seeded: evaluation always uses :data:`EVAL_SEED`);
* ``events``: samples that are already [T, *shape] frames (DVS data); step t
  takes frame t. The event data sets live in :mod:`slt_deploy.data.events`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np
import torch

from ..core.errors import UserError
from ..core.latency import check_latency

EVAL_SEED = 20240223
"""Seed of the rate encoding used for every evaluation (test and calibration)."""

ENCODINGS = ("direct", "rate", "events")
SPLITS = ("train", "calibration", "test")
DIGITS_TEST_SIZE = 360
DIGITS_CALIBRATION_SIZE = 180


@dataclass(frozen=True)
class Split:
    """One split of a data set.

    inputs: float32 [N, *sample_shape] in [0, 1] (static images) or
    [N, T, *frame_shape] (event frames); labels: int64 [N]. augment: the
    training-time augmentation of a batch, ``augment(inputs, labels,
    generator) -> (inputs, labels)`` (event data: random crop and flip), or None."""

    dataset: str
    split: str
    inputs: torch.Tensor
    labels: torch.Tensor
    classes: int
    encodings: tuple[str, ...]
    augment: Callable | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@lru_cache(maxsize=None)
def _digits_arrays() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    from sklearn.datasets import load_digits  # scikit-learn only when digits are first loaded
    from sklearn.model_selection import train_test_split  # (cached afterwards)

    digits = load_digits()
    images = (digits.data / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int64)
    rest_x, test_x, rest_y, test_y = train_test_split(
        images, labels, test_size=DIGITS_TEST_SIZE, stratify=labels, random_state=0
    )
    train_x, cal_x, train_y, cal_y = train_test_split(
        rest_x, rest_y, test_size=DIGITS_CALIBRATION_SIZE, stratify=rest_y, random_state=0
    )
    inputs = {"train": train_x, "calibration": cal_x, "test": test_x}
    labels_by_split = {"train": train_y, "calibration": cal_y, "test": test_y}
    return inputs, labels_by_split


def _load_digits(split: str) -> Split:
    inputs, labels = _digits_arrays()
    return Split(
        "digits",
        split,
        torch.from_numpy(inputs[split].copy()),
        torch.from_numpy(labels[split].copy()),
        10,
        ("direct", "rate"),
    )


LOADERS = {"digits": _load_digits}
FRAME_LOADERS: set[str] = set()


def register_loader(name: str, loader, frames: bool = False) -> None:
    """Add a data set: ``loader(split) -> Split``; for event data (``frames=True``)
    ``loader(split, frames) -> Split`` with ``frames`` time bins per sample."""
    LOADERS[name] = loader
    if frames:
        FRAME_LOADERS.add(name)


def load_split(
    dataset: str, split: str, input_shape: tuple[int, ...] | None = None, frames: int | None = None
) -> Split:
    """A split of a data set; with ``input_shape``, static samples are reshaped
    to it (e.g. digits as [64] for an MLP or [1, 8, 8] for a CNN). ``frames``:
    time bins T per sample of an event data set (default: the data set's,
    10); static data sets ignore it."""
    if dataset not in LOADERS:
        raise UserError(f"unknown dataset '{dataset}': choose one of {', '.join(sorted(LOADERS))}")
    if split not in SPLITS:
        raise UserError(f"unknown split '{split}': choose one of {', '.join(SPLITS)}")
    if dataset in FRAME_LOADERS and frames is not None:
        data = LOADERS[dataset](split, frames)
    else:
        data = LOADERS[dataset](split)
    if input_shape is None:
        return data
    input_shape = tuple(input_shape)
    static = "events" not in data.encodings
    sample_shape = tuple(data.inputs.shape[1:] if static else data.inputs.shape[2:])
    if sample_shape == input_shape:
        return data
    if static and math.prod(sample_shape) == math.prod(input_shape):
        inputs = data.inputs.reshape(len(data), *input_shape)
        return Split(data.dataset, split, inputs, data.labels, data.classes, data.encodings)
    raise UserError(
        f"dataset {dataset} gives samples of shape {list(sample_shape)}, the model takes {list(input_shape)}"
    )


def check_encoding(data: Split, encoding: str) -> None:
    if encoding not in data.encodings:
        raise UserError(
            f"encoding '{encoding}' does not apply to {data.dataset}: choose one of {', '.join(data.encodings)}"
        )


def encode(
    inputs: torch.Tensor, steps: int, encoding: str, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Network input for ``steps`` time steps: [steps, batch, *shape].

    ``inputs`` is a batch of samples ([B, *shape], or [B, T, *shape] for
    events). The rate encoding draws from ``generator``."""
    check_latency(steps)
    if encoding == "direct":
        return inputs.unsqueeze(0).expand(steps, *inputs.shape)
    if encoding == "rate":
        probabilities = inputs.unsqueeze(0).expand(steps, *inputs.shape)
        return torch.bernoulli(probabilities, generator=generator)
    if encoding == "events":
        if steps > inputs.shape[1]:
            raise UserError(f"latency {steps} exceeds the {inputs.shape[1]} frames per sample")
        return inputs[:, :steps].transpose(0, 1)
    raise UserError(f"unknown encoding '{encoding}': choose one of {', '.join(ENCODINGS)}")


def evaluation_inputs(data: Split, steps: int, encoding: str) -> torch.Tensor:
    """The whole split encoded for evaluation, reproducibly: [steps, N, *shape]."""
    check_encoding(data, encoding)
    generator = torch.Generator().manual_seed(EVAL_SEED)
    return encode(data.inputs, steps, encoding, generator)

