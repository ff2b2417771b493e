"""Reports: terminal tables, Markdown and PNG plots. Written atomically.

Plots use matplotlib's non-interactive Agg backend (no screen needed)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from .files import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike) -> Path:
    plt = _pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def plot_accuracy_per_latency(
    curves: dict[str, Sequence[float]], path: str | os.PathLike, title: str = "", spreads: dict | None = None
) -> Path:
    """Accuracy (%) against latency (time steps), one line per labelled curve;
    ``spreads`` (same keys) draws +-1 standard deviation bands."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, accuracy in curves.items():
        values = 100 * np.asarray(accuracy, dtype=float)
        latency = np.arange(1, len(values) + 1)
        ax.plot(latency, values, marker="o", label=label)
        if spreads and label in spreads:
            spread = 100 * np.asarray(spreads[label], dtype=float)
            ax.fill_between(latency, values - spread, values + spread, alpha=0.2)
    ax.set_xlabel("latency t (time steps)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def rich_table(header: Sequence[str], rows: Sequence[Sequence[object]], title: str = ""):
    from rich.table import Table

    table = Table(title=title or None)
    for name in header:
        table.add_column(str(name), justify="right")
    for row in rows:
        table.add_row(*map(str, row))
    return table
