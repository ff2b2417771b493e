"""Latency: how many time steps an inference runs, checked in one place.

A latency is a whole number of time steps in 1..:data:`MAX_LATENCY`; the
latencies of a batch of samples are each in 1..the steps the batch holds."""

from __future__ import annotations

import numbers

import numpy as np

from .errors import UserError

MAX_LATENCY = 10_000
"""Most time steps per sample (an input, a network's maximum latency, a graph's latency_T)."""


def check_latency(value, what: str = "latency") -> int:
    """``value`` as a latency in time steps (1..MAX_LATENCY; integral floats
    such as 8.0 are accepted), else a one-line UserError naming ``what``."""
    whole = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value) \
        and float(value) == int(value)
    if not whole:
        raise UserError(f"{what} must be a whole number of time steps, got {str(value)[:60]!r}")
    if value < 1:
        raise UserError(f"{what} must be >= 1 time step, got {int(value)}")
    if value > MAX_LATENCY:
        raise UserError(f"{what} must be at most {MAX_LATENCY} time steps, got {int(value)}")
    return int(value)


def check_latencies(latencies, samples: int, steps: int) -> np.ndarray:
    """Per-sample latencies [samples] in 1..steps (None: every sample runs all ``steps``)."""
    if latencies is None:
        return np.full(samples, steps)
    values = np.asarray(latencies)
    if values.shape != (samples,) or values.dtype.kind not in "iuf" or not np.all(values == np.round(values)) \
            or values.min(initial=1) < 1 or values.max(initial=1) > steps:
        raise UserError(f"latencies must be {samples} integers in 1..{steps}")
    return values.astype(int)
