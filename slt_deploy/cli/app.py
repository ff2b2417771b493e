"""The ``slt-deploy`` application object and what its commands share:
consoles, progress bars, and the checks of common options."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..core.errors import UserError
from ..core.latency import check_latency

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Train SNNs with Stochastic Latency Training, deploy them through NIR to Lava, "
    "and run them on an energy budget.",
)
# markup off: file names, labels and model names from user files are printed as they are
console = Console(stderr=True, soft_wrap=True, markup=False)
out = Console(soft_wrap=True, markup=False)


def _progress():
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def _not_an_input(output, *inputs) -> None:
    """Refuse an output path that is one of the command's own input files (it would be overwritten)."""
    for source in inputs:
        if source is not None and Path(output).resolve() == Path(source).resolve():
            raise UserError(f"the output {output} is the input file {source}: give another output path")


def _check_latency(value: Optional[int]) -> None:
    if value is not None:
        check_latency(value)


