"""The ``slt-deploy`` command line: one command per pipeline stage.

Bad input ends in one line on stderr and exit code 2 (no traceback); see
:func:`main`.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from ..core.errors import RunFailure, UserError
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
MAX_INFERENCES = 10_000_000  # longest mission of `control` (its input stream is held in memory)


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
    from ..core.files import safe_name

    s = recipe.train
    framework = "" if recipe.framework == "norse" else f"-{recipe.framework}"
    # the recipe's name comes from a user file: it becomes one file name inside runs/, never a path
    return Path("runs") / safe_name(f"{recipe.name}-{s.method}-{s.loss}-T{s.latency}-s{s.seed}{framework}.pt")


def _not_an_input(output, *inputs) -> None:
    """Refuse an output path that is one of the command's own input files (it would be overwritten)."""
    for source in inputs:
        if source is not None and Path(output).resolve() == Path(source).resolve():
            raise UserError(f"the output {output} is the input file {source}: give another output path")


def _check_latency(value: Optional[int]) -> None:
    if value is not None:
        check_latency(value)


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
    import math
    import os

    from ..core.files import check_output_file
    from ..training.slt import (
        distributed_worker, new_run, resume_run, train as train_run, validate_settings, with_settings)
    from ..models.zoo import load_recipe

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
            from ..data.events import download_data

            download_data(run.recipe.dataset)
        path = output or resume
        check_output_file(path, "checkpoint")
    else:
        recipe = with_settings(load_recipe(model), **overrides)
        if download:
            from ..data.events import download_data

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
            from ..training.distributed import launch

            launch(nproc, distributed_worker, *arguments)
        console.print(f"done: checkpoint {path}")
        return
    if device != "cpu":
        from ..training.distributed import Context
        from ..training.slt import TrainingRun  # noqa: F401  (device placement below)

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
    from ..training.checkpoint import load_checkpoint, model_from_checkpoint
    from ..data.splits import load_split
    from ..training.evaluation import latency_profile
    from ..core.files import check_output_file, require_file, write_json
    from ..report import plot_accuracy_per_latency, rich_table
    from ..models.zoo import recipe_from_dict

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
    from ..training.checkpoint import load_checkpoint, model_from_checkpoint
    from ..ir.export import export_model
    from ..core.files import check_output_file, read_json
    from ..ir.nirfile import write_graph

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


@app.command()
def run(
    model: Path = typer.Argument(..., help="NIR graph (.nir): exported by slt-deploy or by another tool."),
    backend: str = typer.Option("lava-float", help="lava-float | lava-fixed | lava-fused | loihi2 | torch."),
    latency: Optional[int] = typer.Option(None, "--latency", "-t", help="Time steps per sample (default: T, or the input's steps)."),
    data: Optional[str] = typer.Option(None, help="Dataset to classify (e.g. digits); or use --input."),
    split: str = typer.Option("test", help="Split of --data."),
    samples: Optional[int] = typer.Option(None, help="Use only the first N samples."),
    encoding: Optional[str] = typer.Option(None, help="Encoding of --data (default: the graph's metadata)."),
    input_file: Optional[Path] = typer.Option(None, "--input", help="Your own input: .npy of [samples, steps, *input shape]."),
    output_file: Optional[Path] = typer.Option(None, "--output", help="Write the output node's values [samples, steps, *shape] (.npy)."),
    dt: Optional[float] = typer.Option(None, help="Simulation step in seconds (required when the graph has no dt)."),
    input_kind: Optional[str] = typer.Option(None, help="spikes | analog: what the input is (default: metadata, else spikes)."),
):
    """Run a NIR graph on Lava (float, fixed point, Loihi 2) or PyTorch: accuracy and per-sample outputs."""
    import time

    import numpy as np

    from ..readout import predictions
    from ..simulate import simulate
    from ..ir.nirfile import graph_dt, read_graph
    from ..report import rich_table

    if output_file is not None:
        from ..core.files import check_output_file

        _not_an_input(output_file, model, input_file)
        check_output_file(output_file, "output file")
    _check_latency(latency)
    graph = read_graph(model)
    step = graph_dt(graph, dt)
    meta = graph.metadata or {}
    labels = None
    if (data is None) == (input_file is None):
        raise UserError("give exactly one of --data (a dataset) or --input (an .npy file)")
    if input_file is not None:
        from ..core.files import require_file

        try:
            x = np.load(require_file(input_file, "input file"), allow_pickle=False)
        except (ValueError, EOFError, OSError) as exc:  # a pickle, a truncated or an empty file
            raise UserError(f"{input_file} is not a plain .npy array: {str(exc) or type(exc).__name__}") from None
        if not np.issubdtype(x.dtype, np.number):
            raise UserError(f"{input_file} holds {x.dtype} values, not numbers")
        T = int(x.shape[1]) if x.ndim >= 2 else 0
    else:
        from ..data.splits import evaluation_inputs, load_split

        T = int(meta.get("latency_T", latency or 0))  # foreign graphs: --latency sets T
        if T < 1:
            raise UserError("the graph has no latency_T in its metadata: give --latency")
        from ..ir.graph import analyse

        flat = analyse(graph)
        dataset = load_split(data, split, flat.shapes[flat.input_name], frames=T)
        x = evaluation_inputs(dataset, T, encoding or meta.get("encoding") or "rate").transpose(0, 1).numpy()
        labels = dataset.labels.numpy()
    if samples is not None:
        if samples < 1:
            raise UserError(f"--samples must be >= 1, got {samples}")
        x = x[:samples]
        labels = None if labels is None else labels[:samples]
    t = T if latency is None else check_latency(latency)
    if t > T:
        raise UserError(f"latency {t} exceeds the maximum latency T={T} of this graph/input")
    x = x[:, :t]
    started = time.perf_counter()
    with _progress() as bar:
        task = bar.add_task(f"{backend} t={t}", total=len(x))
        result = simulate(graph, backend, x, dt=step, input_kind=input_kind,
                          progress=lambda done: bar.update(task, completed=done))
    seconds = time.perf_counter() - started
    rows = [("backend", backend), ("samples", len(x)), ("latency t", t), ("dt (s)", step),
            ("wall time (s)", f"{seconds:.2f}"), ("samples/s", f"{len(x) / seconds:.1f}")]
    if labels is not None:
        accuracy = float((predictions(result.outputs, np.full(len(x), t)) == labels).mean())
        rows.append(("accuracy %", f"{100 * accuracy:.2f}"))
    out.print(rich_table(("", "value"), rows, f"{model.name}"))
    if result.quantisation:
        q_rows = [(r["layer"], r["kind"], _quant_summary(r)) for r in result.quantisation]
        out.print(rich_table(("layer", "kind", "quantisation"), q_rows, "fixed-point quantisation per layer"))
    if output_file is not None:
        from ..core.files import atomic_path

        with atomic_path(output_file) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, result.outputs)
        console.print(f"wrote {output_file}: outputs {list(result.outputs.shape)}")


def _quant_summary(row: dict) -> str:
    if row["kind"] == "synapses":
        return (f"8-bit {row['sign']} weights, exp {row['exponent']}: rms error {100 * row['relative_rms_error']:.2f} %, "
                f"max {row['max_abs_error']:.2g}")
    return (f"scale 2^{int(round(__import__('math').log2(row['scale'])))}, du {row['du']}, dv {row['dv']}, vth {row['vth']}; "
            f"decay errors {row['du_error']:.1e}/{row['dv_error']:.1e}, threshold {100 * row['vth_relative']:.2f} %")


def _graph_of(model: Path, nir_out: Optional[Path]):
    """(graph, where its profile goes) for a .nir file or a checkpoint."""
    from ..ir.nirfile import read_graph

    if model.suffix == ".pt":
        from ..training.checkpoint import load_checkpoint, model_from_checkpoint
        from ..ir.export import export_model
        from ..core.files import read_json

        network = model_from_checkpoint(load_checkpoint(model), str(model))
        profile_path = model.with_suffix(".eval.json")
        accuracy = read_json(profile_path, "accuracy profile") if profile_path.is_file() else None
        return export_model(network.double(), profile=accuracy), nir_out or model.with_suffix(".nir")
    return read_graph(model), nir_out or model


@app.command()
def profile(
    model: Path = typer.Argument(..., help="NIR graph (.nir) or checkpoint (.pt)."),
    data: str = typer.Option("digits", help="Dataset to profile on."),
    split: str = typer.Option("test", help="Split of --data."),
    hardware: str = typer.Option("qiao2015", help="Hardware profile: a name in hardware/ or a .toml path."),
    samples: Optional[int] = typer.Option(None, help="Use only the first N samples."),
    latency: Optional[int] = typer.Option(None, "--latency", "-T", help="Profile t = 1..T (default: the graph's T)."),
    noise: list[str] = typer.Option([], help="Input noise to add accuracy for, e.g. gaussian:0.2, dropout:0.3, jitter:1 (repeatable)."),
    mac_per_step: bool = typer.Option(False, help="Count an analog input layer's MACs at every step (default: once)."),
    backend: str = typer.Option("lava-fused", help="Backend that produces the spikes: lava-fused (the fused Lava CPU model, "
                                                   "bit-identical to lava-float, default) | lava-float | lava-fixed | torch."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Profile JSON (default: <model>.profile.json)."),
    nir_out: Optional[Path] = typer.Option(None, help="NIR file that stores the profile (default: the .nir given, or <ckpt>.nir)."),
    dt: Optional[float] = typer.Option(None, help="Simulation step in seconds (graphs without dt)."),
):
    """Accuracy, SOP, MAC, energy (mJ) and firing rates for every latency t = 1..T."""
    from ..energy.hardware import load_hardware
    from ..core.files import check_output_file, require_file, write_json
    from ..ir.nirfile import write_graph
    from ..energy.profile import (
        graph_stream, noisy_streams, parse_noise, profile_model, profile_table, store_in_graph)
    from ..report import rich_table

    _check_latency(latency)
    require_file(model, "checkpoint" if model.suffix == ".pt" else "NIR file")
    json_path = output or model.with_suffix(".profile.json")
    _not_an_input(json_path, model)
    check_output_file(json_path, "profile")
    hardware_profile = load_hardware(hardware)
    noises = [parse_noise(text) for text in noise]
    graph, nir_path = _graph_of(model, nir_out)
    if model.suffix == ".pt":  # a .nir given is where its profile is stored, by design
        _not_an_input(nir_path, model)
    check_output_file(nir_path, "NIR file")
    if Path(json_path).resolve() == Path(nir_path).resolve():
        raise UserError(f"the profile JSON and the NIR file would both be {json_path}: give another --output")
    x, labels, dataset, encoding = graph_stream(graph, data, split, samples, latency)
    noisy = noisy_streams(dataset, x, encoding, noises)
    with _progress() as bar:
        task = bar.add_task(f"profile on {backend}", total=len(x))
        result = profile_model(graph, x, labels, hardware_profile, dt=dt, backend=backend,
                               mac_once=not mac_per_step, noisy_inputs=noisy,
                               progress=lambda done: bar.update(task, completed=done))
    result.update({"dataset": data, "split": split, "source": str(model)})
    if backend == "lava-fused":
        console.print("backend: lava-fused -- the deployed network as one Lava process (all layers and samples in "
                      "NumPy), bit-identical to the per-layer Lava graph; --backend lava-float runs that graph")
    header, rows = profile_table(result)
    out.print(rich_table(header, rows, f"{result['model']} on {hardware_profile.name} "
                                       f"({hardware_profile.evidence}), {len(x)} samples, {result['counting']}"))
    write_json(json_path, result)
    store_in_graph(graph, result)
    write_graph(graph, nir_path)
    console.print(f"wrote {json_path}; profile stored in {nir_path} (metadata energy_profile_json)")


@app.command()
def report(
    profiles: list[Path] = typer.Argument(..., help="One or two profile JSON files (from `slt-deploy profile`)."),
    labels: Optional[str] = typer.Option(None, help="Comma-separated labels (default: model and method)."),
    output: Path = typer.Option(Path("runs/report"), "--output", "-o", help="Folder for report.md and the PNGs."),
):
    """Markdown + PNG report: energy vs latency, accuracy vs energy (Pareto front), SOP per layer."""
    from ..core.files import check_output_folder, read_json
    from ..report import check_profile, energy_report

    if not 1 <= len(profiles) <= 2:
        raise UserError("give one profile, or two to compare side by side")
    check_output_folder(output, "report folder")
    loaded = [check_profile(read_json(p, "profile"), p) for p in profiles]
    names = labels.split(",") if labels else [f"{p['model']} {p['method']}".strip() for p in loaded]
    if len(names) != len(loaded) or len(set(names)) != len(names):
        names = [f"{name} ({i + 1})" for i, name in enumerate(names)][: len(loaded)]
    written = energy_report(dict(zip(names, loaded)), output)
    console.print("wrote " + ", ".join(str(p) for p in written))


@app.command()
def control(
    model: Path = typer.Argument(..., help="NIR graph with an energy profile (run `slt-deploy profile` first)."),
    policy: str = typer.Option("adaptive", help="fixed | static | adaptive | anytime."),
    battery_mj: Optional[float] = typer.Option(None, help="Total battery for the mission (mJ)."),
    inferences: Optional[int] = typer.Option(None, help="Horizon: number of inferences the battery must last."),
    duration_s: Optional[float] = typer.Option(None, help="Horizon as a duration (s), with --rate-hz."),
    rate_hz: Optional[float] = typer.Option(None, help="Inferences per second (with --duration-s or --power-mw)."),
    per_inference_mj: Optional[float] = typer.Option(None, help="Hard cap per inference (mJ)."),
    power_mw: Optional[float] = typer.Option(None, help="Power cap (mW) at --rate-hz: a cap of power/rate per inference."),
    scenario: Optional[Path] = typer.Option(None, help="Scenario TOML ([budget], optional [policy]); see hardware/*.scenario.toml."),
    latency: Optional[int] = typer.Option(None, "--latency", "-t", help="Latency of the fixed policy (default T)."),
    measure: str = typer.Option("entropy", help="anytime: entropy | max_softmax | margin."),
    backend: str = typer.Option("lava-fused", help="lava-fused (the fused Lava CPU model, default) | lava-float | "
                                                   "lava-fixed (the per-layer Lava graph) | torch (what-if studies)."),
    data: str = typer.Option("digits", help="Dataset of the stream; thresholds use its calibration split."),
    split: str = typer.Option("test", help="Split that forms the stream."),
    samples: Optional[int] = typer.Option(None, help="Use only the first N samples of the stream."),
    evaluate: bool = typer.Option(False, help="Judge every policy under budgets from E(t=1) to E(t=T)."),
    budgets: int = typer.Option(8, help="Number of budget levels for --evaluate."),
    output: Path = typer.Option(Path("runs/control"), "--output", "-o", help="Folder for the JSON, tables and PNGs."),
):
    """Run inferences on an energy budget, choosing each one's latency (or judge the policies)."""
    import math

    import numpy as np

    from ..core.files import check_output_folder, write_json
    from ..ir.nirfile import metadata_json, read_graph
    from ..energy.profile import graph_stream
    from ..report import check_profile, controller_table, mission_timeline, rich_table
    from ..runtime.controller import (
        MEASURES, POLICIES, Budget, Controller, EnergyProfile, LavaEngine, TorchEngine, check_budget,
        make_policy, run_mission)
    from ..runtime.evaluation import calibrate

    if backend not in ("torch", "lava-float", "lava-fixed", "lava-fused"):
        raise UserError(f"unknown backend '{backend}': choose lava-fused, lava-float, lava-fixed or torch")
    if measure not in MEASURES:
        raise UserError(f"unknown confidence measure '{measure}': choose one of {', '.join(MEASURES)}")
    if evaluate and budgets < 2:
        raise UserError(f"--budgets must be >= 2 (levels from E(t=1) to E(t=T)), got {budgets}")
    check_output_folder(output, "control folder")
    graph = read_graph(model)
    stored = metadata_json(graph, "energy_profile_json")
    if stored is not None:
        check_profile(stored, f"the energy profile in {model}")
    profile = EnergyProfile.from_graph(graph)
    if evaluate:
        from ..report import judge

        with _progress() as bar:
            task = bar.add_task("judging policies", total=None)
            result = judge(graph, output, data, split, samples, budgets, measure,
                           backend if backend != "lava-fixed" else "lava-fused")
            bar.update(task, completed=1, total=1)
        header, rows = controller_table(result, ["adaptive", f"anytime-{measure}"])
        out.print(rich_table(header, rows, f"{result['stream']['samples']} inferences, "
                                           "battery = inferences x budget + one worst-case step"))
        console.print(f"wrote {output}/evaluation.json, evaluation.md, evaluation.png, timeline.png")
        return

    scenario_policy = {}
    if scenario is not None:
        budget, scenario_policy = Budget.from_scenario(scenario)
    else:
        if duration_s is not None and rate_hz is not None and not math.isfinite(duration_s * rate_hz):
            raise UserError("--duration-s x --rate-hz is too large a number of inferences")
        budget = Budget.from_options(battery_mj, inferences, duration_s, rate_hz, per_inference_mj, power_mw)
    if budget.inferences is not None and budget.inferences > MAX_INFERENCES:
        raise UserError(f"a mission of {budget.inferences} inferences is too long: at most {MAX_INFERENCES:,} per run")
    name = scenario_policy.get("name", policy)
    measure = scenario_policy.get("measure", measure)
    if name not in POLICIES:
        raise UserError(f"unknown policy '{name}': choose one of {', '.join(POLICIES)}")
    if measure not in MEASURES:
        raise UserError(f"unknown confidence measure '{measure}': choose one of {', '.join(MEASURES)}")
    check_budget(profile, budget)  # before anything runs
    calibration = {}
    if name == "anytime":  # thresholds from the held-out calibration split
        calibration = calibrate(graph, profile, graph_stream(graph, data, "calibration")[0],
                                "torch" if backend == "torch" else "lava-fused")
    chosen = make_policy(name, profile, latency=scenario_policy.get("latency", latency), measure=measure,
                         calibration=calibration.get(measure))
    x, labels = graph_stream(graph, data, split, samples)[:2]
    horizon = budget.inferences or len(x)
    stream = [x[k % len(x)] for k in range(horizon)]
    stream_labels = np.array([labels[k % len(x)] for k in range(horizon)])
    if backend == "torch":
        controller = Controller(TorchEngine(graph, profile), profile, budget, chosen)
        mission = _run_with_progress(controller, stream, run_mission)
    else:
        if backend == "lava-fused":
            console.print("backend: lava-fused -- the deployed network as one Lava process, bit-identical to the "
                          "per-layer Lava graph (--backend lava-float); SOP from its live counters")
        with LavaEngine(graph, profile, mode=backend.removeprefix("lava-")) as lava_engine:
            controller = Controller(lava_engine, profile, budget, chosen)
            mission = _run_with_progress(controller, stream, run_mission)
    summary = mission.summary(stream_labels)
    rows = [(k, f"{v:.4g}" if isinstance(v, float) else str(v)) for k, v in summary.items() if k != "policy"]
    out.print(rich_table(("", "value"), rows, f"{name} policy on {backend}, {horizon} inferences"))
    if mission.battery_spent:
        console.print(f"battery spent: {mission.battery_spent}")
    decisions = [d.to_dict() for d in mission.decisions]
    write_json(output / "mission.json", {"summary": summary, "budget": budget.__dict__, "decisions": decisions})
    mission_timeline(decisions, stream_labels, budget.battery_mj, output / "timeline.png", f"{name} policy")
    console.print(f"wrote {output}/mission.json and timeline.png")


def _run_with_progress(controller, stream, run_mission):
    with _progress() as bar:
        task = bar.add_task("mission", total=len(stream))

        def samples():
            for k, sample in enumerate(stream):
                bar.update(task, completed=k)
                yield sample

        return run_mission(controller, samples())


@app.command()
def info():
    """Versions of the toolchain, whether Lava imports, whether Loihi 2 is present."""
    from ..core.environment import environment_report

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
    """The main job: SLT vs fixed-latency training on rate-encoded digits, then NIR, Lava, energy and the controller."""
    from .demo import deploy_stage, run_demo
    from ..core.files import check_output_folder, safe_name

    if safe_name(model) != model:  # the demo names its checkpoints after --model, inside --output
        raise UserError(f"demo --model takes a recipe name (models/<name>.toml, or <name>.toml in this folder), "
                        f"not a path: '{model}'")
    check_output_folder(output, "demo folder")
    chosen = [s.strip() for s in losses.split(",") if s.strip()]
    run_demo(model, seeds, epochs, chosen, output, console, out, _progress)
    if "tet" in chosen:
        deploy_stage(model, output, console, out, _progress)


def _terminate_like_ctrl_c() -> None:
    """SIGTERM (kill, timeout, a service stop) ends a run as Ctrl-C does, so
    that Lava's OS processes are stopped; a forked Lava process dies as before."""
    main_pid = os.getpid()

    def terminated(signum, frame):
        if os.getpid() != main_pid:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminated)


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors and exit code 2 for bad input; 130 when interrupted."""
    args = sys.argv[1:] if argv is None else argv
    _terminate_like_ctrl_c()
    try:
        code = app(args=args, prog_name="slt-deploy", standalone_mode=False)
    except UserError as exc:
        print(f"slt-deploy: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except RunFailure as exc:
        print(f"slt-deploy: failed: {exc}", file=sys.stderr)
        sys.exit(1)
    except typer.TyperException as exc:  # click's usage errors (bad options, missing arguments)
        message = " ".join(exc.format_message().split())
        if message:  # empty when no command was given: the help was shown
            print(f"slt-deploy: error: {message}", file=sys.stderr)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    if code == 130:  # with standalone_mode=False click returns Ctrl-C as 130 instead of raising
        print("slt-deploy: interrupted", file=sys.stderr)
        sys.exit(130)
    if isinstance(code, int) and code:  # another typer.Exit(code), also returned rather than raised
        sys.exit(code)


