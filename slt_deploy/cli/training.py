"""Commands of the training stage: ``train``, ``eval`` and ``export``."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Optional

import typer

from ..core.errors import UserError
from ..core.files import check_output_file, read_json, require_file, safe_name, write_json
from ..data.events import download_data
from ..data.splits import load_split
from ..ir.export import export_model
from ..ir.nirfile import write_graph
from ..models.zoo import load_recipe, recipe_from_dict
from ..report import plot_accuracy_per_latency, rich_table
from ..training.checkpoint import load_checkpoint, model_from_checkpoint
from ..core.parallel import Context, launch
from ..training.evaluation import latency_profile
from ..training.slt import (
    distributed_worker, new_run, resume_run, train as train_run, validate_settings, with_settings)
from .app import _check_latency, _not_an_input, _progress, app, console, out


def _default_checkpoint_path(recipe) -> Path:
    s = recipe.train
    framework = "" if recipe.framework == "norse" else f"-{recipe.framework}"
    # the recipe's name comes from a user file: it becomes one file name inside runs/, never a path
    return Path("runs") / safe_name(f"{recipe.name}-{s.method}-{s.loss}-T{s.latency}-s{s.seed}{framework}.pt")


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
    nproc: int = typer.Option(1, help="Data-parallel processes on this machine (CPU, gloo); under torchrun, leave 1."),
    device: str = typer.Option("cpu", help="cpu, or cuda (each torchrun rank takes cuda:LOCAL_RANK)."),
    backend: Optional[str] = typer.Option(None, help="norse (default) | lava-dl: train slayer CUBA blocks (see README)."),
    download: bool = typer.Option(False, "--download", help="Download the event data set (dvsgesture, cifar10dvs, nmnist) if it is not on disk."),
):
    """Train a model with SLT (or a fixed latency); writes a checkpoint after every epoch."""
    for option, value in (("--lr", lr), ("--lambda", lam)):
        if value is not None and not math.isfinite(value):
            raise UserError(f"{option} must be a finite number, got {value}")
    if nproc < 1:
        raise UserError(f"--nproc must be >= 1, got {nproc}")
    if not (device == "cpu" or device.startswith("cuda")):
        raise UserError(f"unknown device '{device}': choose cpu or cuda")

    overrides = dict(method=method, loss=loss, latency=latency, lam=lam, epochs=epochs,
                     batch_size=batch_size, lr=lr, seed=seed, dataset=data, encoding=encoding, framework=backend)
    if resume is not None:
        run = resume_run(resume)
        given = {k: v for k, v in overrides.items() if v is not None}
        stored = with_settings(run.recipe, **given)
        if stored != run.recipe:
            raise UserError("--resume continues a run with its own settings: drop the options that differ from it")
        if download:
            download_data(run.recipe.dataset)
        path = output or resume
        check_output_file(path, "checkpoint")
    else:
        recipe = with_settings(load_recipe(model), **overrides)
        if download:
            download_data(recipe.dataset)
        validate_settings(recipe.train)  # before a download or any output
        path = output or _default_checkpoint_path(recipe)
        check_output_file(path, "checkpoint")
        run = new_run(recipe)
    s = run.recipe.train
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if s.framework == "lava-dl" and max(nproc, world) > 1:
        raise UserError("the lava-dl backend trains on one process: drop --nproc")
    console.print(f"training {run.recipe.name}: {s.method} {s.loss} T={s.latency} "
                  f"epochs={s.epochs} seed={s.seed} on {run.recipe.dataset}/{run.recipe.encoding} -> {path}"
                  + (f" ({max(nproc, world)} processes)" if max(nproc, world) > 1 else ""))
    if nproc > 1 or world > 1:
        if s.batch_size < max(nproc, world):
            raise UserError(f"batch size {s.batch_size} is smaller than the {max(nproc, world)} processes")
        recipe_data = None if resume is not None else run.recipe.to_dict()
        arguments = (recipe_data, str(resume) if resume is not None else None, str(path), device)
        if world > 1:  # this process is one rank of a torchrun job
            distributed_worker(*arguments)
        else:
            launch(nproc, distributed_worker, *arguments)
        console.print(f"done: checkpoint {path}")
        return
    if device != "cpu":
        run = (resume_run(resume, Context(device=device)) if resume is not None
               else new_run(run.recipe, context=Context(device=device)))
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
    json_path = check_output_file(output or require_file(checkpoint, "checkpoint").with_suffix(".eval.json"),
                                  "accuracy profile")
    if json_path.suffix == ".png":
        raise UserError(f"--output {json_path} is the JSON profile: its PNG plot goes beside it (give a .json name)")
    png_path = check_output_file(json_path.with_suffix(".png"), "plot")
    _not_an_input(json_path, checkpoint)
    _not_an_input(png_path, checkpoint)
    stored = load_checkpoint(checkpoint)
    recipe = recipe_from_dict(stored["recipe"])
    model = model_from_checkpoint(stored, str(checkpoint))
    T = recipe.train.latency if latency is None else latency
    _check_latency(T)
    dataset = load_split(data or recipe.dataset, split, recipe.input_shape, frames=recipe.train.latency)
    profile = latency_profile(model, dataset, T, encoding or recipe.encoding, recipe.train.method, recipe.train.loss)
    write_json(json_path, profile.to_dict())
    label = f"{recipe.train.method}-{recipe.train.loss}"
    plot_accuracy_per_latency({label: profile.accuracy}, png_path, f"{recipe.name} on {dataset.dataset}/{profile.encoding}")
    rows = [(t, f"{100 * a:.2f}") for t, a in zip(profile.latencies, profile.accuracy)]
    out.print(rich_table(("latency t", "accuracy %"), rows, f"{recipe.name} ({label}), {split} split, n={len(dataset)}"))
    console.print(f"wrote {json_path} and {png_path}")


@app.command()
def export(
    checkpoint: Path = typer.Argument(..., help="Checkpoint (.pt) written by `slt-deploy train`."),
    output: Path = typer.Option(..., "--output", "-o", help="NIR file to write (.nir)."),
    profile: Optional[Path] = typer.Option(None, help="Accuracy profile JSON (default: <checkpoint>.eval.json if present)."),
):
    """Export a checkpoint as a NIR graph (BatchNorm folded, LIF as nir.LIF, readout Affine -> Output)."""
    _not_an_input(output, checkpoint, profile)
    check_output_file(output, "NIR file")
    model = model_from_checkpoint(load_checkpoint(checkpoint), str(checkpoint))
    default = checkpoint.with_suffix(".eval.json")
    profile_path = profile if profile is not None else (default if default.is_file() else None)
    data = read_json(profile_path, "accuracy profile") if profile_path is not None else None
    if data is not None and not (isinstance(data, dict) and isinstance(data.get("accuracy"), list)):
        raise UserError(f"{profile_path} is not an accuracy profile written by `slt-deploy eval`")
    graph = export_model(model.double(), profile=data)
    write_graph(graph, output)
    console.print(f"wrote {output}: {len(graph.nodes)} nodes, dt={graph.metadata['dt']} s, "
                  f"T={graph.metadata['latency_T']}" + (f", profile from {profile_path}" if data else ""))


