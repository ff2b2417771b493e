"""Timing shared by the bench scripts: every path runs one chunk of the
samples per round, in an order rotated each round, so that all paths share
the machine's load (it is shared and noisy)."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np


def interleaved_rates(runs: dict[str, Callable[[np.ndarray], np.ndarray]], paths: tuple[str, ...],
                      chunks: list[np.ndarray], x: np.ndarray, outputs: dict[str, np.ndarray],
                      repeated: Callable[[str], bool], min_seconds: float) -> dict[str, float]:
    """Samples/s of each path over all chunks of ``x`` [samples, T, ...];
    ``outputs[path][chunk]`` gets each path's outputs. A path for which
    ``repeated(path)`` holds (a fast one) reruns its chunk until
    ``min_seconds`` have passed, so that its time is measurable."""
    seconds = {p: 0.0 for p in paths}
    done = {p: 0 for p in paths}
    for r, chunk in enumerate(chunks):
        for path in paths[r % len(paths):] + paths[: r % len(paths)]:
            started, repeats = time.perf_counter(), 0
            while True:
                outputs[path][chunk] = runs[path](x[chunk])
                repeats += 1
                elapsed = time.perf_counter() - started
                if not repeated(path) or elapsed >= min_seconds:
                    break
            seconds[path] += elapsed
            done[path] += repeats * len(chunk)
    return {p: done[p] / seconds[p] for p in paths}
