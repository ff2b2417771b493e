"""Accuracy at every latency t = 1..T from one forward pass at T.

The network is causal and the readout is a running mean, so the prediction
at latency t uses only steps 1..t of the T-step pass: one pass gives all T
accuracies (the same as T separate runs of t steps -- a test checks this).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..data.splits import Split, evaluation_inputs
from ..models.zoo import SpikingNetwork
from ..readout import predictions_per_latency


@dataclass(frozen=True)
class AccuracyProfile:
    """Accuracy (fraction correct) at latency t = 1..T on one split."""

    model: str
    method: str
    loss: str
    dataset: str
    split: str
    encoding: str
    samples: int
    accuracy: tuple[float, ...]

    @property
    def latencies(self) -> list[int]:
        return list(range(1, len(self.accuracy) + 1))

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "method": self.method,
            "loss": self.loss,
            "dataset": self.dataset,
            "split": self.split,
            "encoding": self.encoding,
            "samples": self.samples,
            "latency": self.latencies,
            "accuracy": list(self.accuracy),
        }


@torch.no_grad()
def predictions_all_latencies(
    model: SpikingNetwork, data: Split, T: int, encoding: str, batch_size: int = 512
) -> np.ndarray:
    """Predicted class of every sample at every latency: int array [T, N]."""
    model.eval()
    inputs = evaluation_inputs(data, T, encoding)
    chunks = []
    for start in range(0, inputs.shape[1], batch_size):
        outputs = model(inputs[:, start : start + batch_size])
        chunks.append(predictions_per_latency(outputs, axis=0))  # outputs are time-first [T, B, K]
    return torch.cat(chunks, dim=1).numpy()


def latency_profile(
    model: SpikingNetwork, data: Split, T: int, encoding: str, method: str = "", loss: str = ""
) -> AccuracyProfile:
    predictions = predictions_all_latencies(model, data, T, encoding)
    accuracy = (predictions == data.labels.numpy()[None, :]).mean(axis=1)
    return AccuracyProfile(
        model=model.recipe.name,
        method=method,
        loss=loss,
        dataset=data.dataset,
        split=data.split,
        encoding=encoding,
        samples=len(data),
        accuracy=tuple(float(a) for a in accuracy),
    )
