"""The readout rule: the output layer does not spike; it records
O[t] = W x[t] + b, and the prediction at latency t (time steps) is the class
with the largest running mean (1/t) sum_{s<=t} O[s]. Every part of the
toolchain (evaluation, simulation, profiles, the runtime controller) reads
predictions through these functions; they take NumPy arrays or torch tensors."""

from __future__ import annotations

import numpy as np
import torch


def running_mean(outputs, axis: int = 1):
    """(1/t) sum_{s<=t} O[s] for every t along the step ``axis`` of ``outputs``."""
    if isinstance(outputs, torch.Tensor):
        steps = torch.arange(1, outputs.shape[axis] + 1, dtype=outputs.dtype, device=outputs.device)
        shape = [1] * outputs.dim()
        shape[axis] = -1
        return outputs.cumsum(axis) / steps.view(shape)
    outputs = np.asarray(outputs)
    shape = [1] * outputs.ndim
    shape[axis] = -1
    return np.cumsum(outputs, axis=axis) / np.arange(1, outputs.shape[axis] + 1).reshape(shape)


def predictions_per_latency(outputs, axis: int = 1):
    """Predicted class at every latency t = 1..T from outputs [..., T (at ``axis``), ..., K]."""
    return running_mean(outputs, axis).argmax(-1)


def predictions(outputs: np.ndarray, latencies) -> np.ndarray:
    """Class predicted for each sample at its own latency, from outputs
    [N, T, *out] that are zero after each sample's latency: [N]."""
    latencies = np.asarray(latencies)
    sums = outputs.reshape(outputs.shape[0], outputs.shape[1], -1).sum(1)
    return (sums / latencies[:, None]).argmax(-1)


def accuracy_per_latency(outputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Fraction of samples classified correctly at every latency t = 1..T, from outputs [N, T, *out]: [T]."""
    flat = outputs.reshape(outputs.shape[0], outputs.shape[1], -1)
    return (predictions_per_latency(flat, axis=1) == labels[:, None]).mean(axis=0)
