"""The ``slt-deploy`` command line: one command per pipeline stage.

Bad input ends in one line on stderr and exit code 2 (no traceback); see
:func:`main`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from .errors import UserError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Train SNNs with Stochastic Latency Training, deploy them through NIR to Lava, "
    "and run them on an energy budget.",
)
console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def _default_checkpoint_path(recipe) -> Path:
    s = recipe.train
    return Path("runs") / f"{recipe.name}-{s.method}-{s.loss}-T{s.latency}-s{s.seed}.pt"


@app.command()
def train(
    model: str = typer.Option("digits-mlp", help="Recipe name (models/<name>.toml) or path to a recipe .toml."),
    method: Optional[str] = typer.Option(None, help="slt: t ~ U{1..T} per batch (Algorithm 1); fixed: always T."),
    loss: Optional[str] = typer.Option(None, help="tet (Eq. 5, + lambda MSE) or sdt (Eq. 4)."),
    latency: Optional[int] = typer.Option(None, "--latency", "-T", help="Maximum latency T in time steps."),
    lam: Optional[float] = typer.Option(None, "--lambda", help="TET regulariser weight lambda (TET only)."),
    epochs: Optional[int] = typer.Option(None, help="Number of epochs."),
    batch_size: Optional[int] = typer.Option(None, help="Mini-batch size (samples)."),
    lr: Optional[float] = typer.Option(None, help="Adam learning rate (cosine-annealed over the epochs)."),
    seed: Optional[int] = typer.Option(None, help="Seed of initialisation, data order, latencies and encoding."),
    data: Optional[str] = typer.Option(None, help="Dataset (default: the recipe's)."),
    encoding: Optional[str] = typer.Option(None, help="direct | rate | events (default: the recipe's)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Checkpoint path (.pt)."),
    resume: Optional[Path] = typer.Option(None, help="Continue the run saved in this checkpoint, bit for bit."),
):
    """Train a model with SLT (or a fixed latency); writes a checkpoint after every epoch."""
    from .training import new_run, resume_run, train as train_run, with_settings
    from .zoo import load_recipe

    overrides = dict(method=method, loss=loss, latency=latency, lam=lam, epochs=epochs,
                     batch_size=batch_size, lr=lr, seed=seed, dataset=data, encoding=encoding)
    if resume is not None:
        run = resume_run(resume)
        given = {k: v for k, v in overrides.items() if v is not None}
        stored = with_settings(run.recipe, **given)
        if stored != run.recipe:
            raise UserError("--resume continues a run with its own settings: drop the options that differ from it")
        path = output or resume
    else:
        run = new_run(with_settings(load_recipe(model), **overrides))
        path = output or _default_checkpoint_path(run.recipe)
    s = run.recipe.train
    console.print(f"training {run.recipe.name}: {s.method} {s.loss} T={s.latency} "
                  f"epochs={s.epochs} seed={s.seed} on {run.recipe.dataset}/{run.recipe.encoding} -> {path}")
    with _progress() as bar:
        task = bar.add_task("train", total=None)
        train_run(run, path, progress=lambda done, total: bar.update(task, completed=done, total=total))
    last = run.history[-1] if run.history else {}
    console.print(f"done: {run.epoch} epochs, last loss {last.get('loss', float('nan')):.4f}; checkpoint {path}")


@app.command("eval")
def evaluate(
    checkpoint: Path = typer.Argument(..., help="Checkpoint (.pt) written by `slt-deploy train`."),
    split: str = typer.Option("test", help="train | calibration | test."),
    latency: Optional[int] = typer.Option(None, "--latency", "-T", help="Evaluate t = 1..T (default: the trained T)."),
    data: Optional[str] = typer.Option(None, help="Dataset (default: the checkpoint's)."),
    encoding: Optional[str] = typer.Option(None, help="Encoding (default: the checkpoint's)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="JSON path (default: <checkpoint>.eval.json); a PNG goes beside it."),
):
    """Accuracy at every latency t = 1..T: a table, a JSON profile and a PNG plot."""
    from .checkpoint import load_checkpoint, model_from_checkpoint
    from .data import load_split
    from .evaluation import latency_profile
    from .files import write_json
    from .report import plot_accuracy_per_latency, rich_table
    from .zoo import recipe_from_dict

    stored = load_checkpoint(checkpoint)
    recipe = recipe_from_dict(stored["recipe"])
    model = model_from_checkpoint(stored, str(checkpoint))
    T = latency or recipe.train.latency
    if T < 1:
        raise UserError(f"latency must be >= 1 time step, got {T}")
    dataset = load_split(data or recipe.dataset, split, recipe.input_shape)
    profile = latency_profile(model, dataset, T, encoding or recipe.encoding, recipe.train.method, recipe.train.loss)
    json_path = output or checkpoint.with_suffix(".eval.json")
    png_path = Path(json_path).with_suffix(".png")
    write_json(json_path, profile.to_dict())
    label = f"{recipe.train.method}-{recipe.train.loss}"
    plot_accuracy_per_latency({label: profile.accuracy}, png_path, f"{recipe.name} on {dataset.dataset}/{profile.encoding}")
    rows = [(t, f"{100 * a:.2f}") for t, a in zip(profile.latencies, profile.accuracy)]
    out.print(rich_table(("latency t", "accuracy %"), rows, f"{recipe.name} ({label}), {split} split, n={len(dataset)}"))
    console.print(f"wrote {json_path} and {png_path}")


@app.command()
def info():
    """Versions of the toolchain, whether Lava imports, whether Loihi 2 is present."""
    from .environment import environment_report

    for key, value in environment_report().items():
        out.print(f"{key:>16}: {value}")


@app.command()
def demo(
    model: str = typer.Option("digits-mlp", help="Recipe to compare SLT and fixed-latency training on."),
    seeds: int = typer.Option(3, help="Seeds per configuration (results are averaged)."),
    epochs: Optional[int] = typer.Option(None, help="Epochs (default: the recipe's)."),
    losses: str = typer.Option("tet,sdt", help="Comma-separated losses to compare."),
    output: Path = typer.Option(Path("runs/demo"), "--output", "-o", help="Folder for checkpoints and reports."),
):
    """The main job: SLT vs fixed-latency training on rate-encoded digits, accuracy per latency side by side."""
    from .demo import run_demo

    run_demo(model, seeds, epochs, [s.strip() for s in losses.split(",") if s.strip()], output, console, out, _progress)


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors and exit code 2 for bad input."""
    args = sys.argv[1:] if argv is None else argv
    try:
        app(args=args, prog_name="slt-deploy", standalone_mode=False)
    except UserError as exc:
        print(f"slt-deploy: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except typer.TyperException as exc:  # click's usage errors (bad options, missing arguments)
        message = " ".join(exc.format_message().split())
        if message:  # empty when no command was given: the help was shown
            print(f"slt-deploy: error: {message}", file=sys.stderr)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("slt-deploy: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
