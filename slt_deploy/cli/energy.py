"""Commands of the energy stage: ``profile`` and ``report``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..core.errors import UserError
from ..core.files import check_output_file, check_output_folder, read_json, require_file, write_json
from ..core.parallel import check_processes, is_main_process
from ..energy.hardware import load_hardware
from ..energy.profile import (compare_with_float, deviation_table, float_twin, graph_stream, noisy_streams,
                              parse_noise, profile_model, profile_table, store_in_graph)
from ..ir.export import export_model
from ..ir.nirfile import read_graph, write_graph
from ..report import check_profile, energy_report, rich_table
from ..training.checkpoint import load_checkpoint, model_from_checkpoint
from ..simulation import FUSED_BACKENDS, PER_LAYER_TWIN
from .app import _check_latency, _not_an_input, _progress, app, console, out


def graph_of(model: Path, nir_out: Optional[Path]):
    """(graph, where its profile goes) for a .nir file or a checkpoint."""
    if model.suffix == ".pt":
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
                                                   "bit-identical to lava-float, default) | lava-fused-fixed (the fused "
                                                   "bit-accurate model, bit-identical to lava-fixed) | lava-float | "
                                                   "lava-fixed | torch."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Profile JSON (default: <model>.profile.json)."),
    nir_out: Optional[Path] = typer.Option(None, help="NIR file that stores the profile (default: the .nir given, or <ckpt>.nir)."),
    dt: Optional[float] = typer.Option(None, help="Simulation step in seconds (graphs without dt)."),
    nproc: int = typer.Option(1, help="Local processes that share the samples (under torchrun, leave 1: "
                                      "the job's ranks share them); the profile equals one process's."),
    compare_float: bool = typer.Option(False, "--compare-float",
                                       help="With a fixed-point backend: also run the float network it quantises "
                                            "and print accuracy side by side, and each layer's quantisation "
                                            "deviation (in units of its threshold)."),
):
    """Accuracy, SOP, MAC, energy (mJ) and firing rates for every latency t = 1..T."""
    _check_latency(latency)
    check_processes(nproc)
    if compare_float:
        float_twin(backend)  # refused before anything runs
    require_file(model, "checkpoint" if model.suffix == ".pt" else "NIR file")
    json_path = output or model.with_suffix(".profile.json")
    _not_an_input(json_path, model)
    check_output_file(json_path, "profile")
    hardware_profile = load_hardware(hardware)
    noises = [parse_noise(text) for text in noise]
    graph, nir_path = graph_of(model, nir_out)
    if model.suffix == ".pt":  # a .nir given is where its profile is stored, by design
        _not_an_input(nir_path, model)
    check_output_file(nir_path, "NIR file")
    if Path(json_path).resolve() == Path(nir_path).resolve():
        raise UserError(f"the profile JSON and the NIR file would both be {json_path}: give another --output")
    x, labels, dataset, encoding = graph_stream(graph, data, split, samples, latency)
    noisy = noisy_streams(dataset, x, encoding, noises)
    shards = check_processes(nproc)
    with _progress() as bar:
        task = bar.add_task(f"profile on {backend}" + (f", {shards} processes" if shards > 1 else ""),
                            total=len(x))
        result = profile_model(graph, x, labels, hardware_profile, dt=dt, backend=backend,
                               mac_once=not mac_per_step, noisy_inputs=noisy, nproc=nproc,
                               progress=lambda done: bar.update(task, completed=done))
        if compare_float:
            bar.update(task, description=f"float twin {float_twin(backend)}")
            compare_with_float(graph, x, labels, result, dt=dt, nproc=nproc)
    if not is_main_process():  # a torchrun rank other than 0: rank 0 reports and writes
        return
    result.update({"dataset": data, "split": split, "source": str(model)})
    if backend in FUSED_BACKENDS:
        console.print(f"backend: {backend} -- the deployed network as one Lava process (all layers and samples in "
                      f"NumPy), bit-identical to the per-layer Lava graph; --backend {PER_LAYER_TWIN[backend]} "
                      "runs that graph")
    header, rows = profile_table(result)
    out.print(rich_table(header, rows, f"{result['model']} on {hardware_profile.name} "
                                       f"({hardware_profile.evidence}), {len(x)} samples, {result['counting']}"))
    if compare_float:
        header, rows = deviation_table(result)
        out.print(rich_table(header, rows, f"quantisation: each layer's input, fixed vs float, for the float spikes "
                                           f"of {result['quantisation']['deviation_samples']} samples"))
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
    if not 1 <= len(profiles) <= 2:
        raise UserError("give one profile, or two to compare side by side")
    check_output_folder(output, "report folder")
    loaded = [check_profile(read_json(p, "profile"), p) for p in profiles]
    names = labels.split(",") if labels else [f"{p['model']} {p['method']}".strip() for p in loaded]
    if len(names) != len(loaded) or len(set(names)) != len(names):
        names = [f"{name} ({i + 1})" for i, name in enumerate(names)][: len(loaded)]
    written = energy_report(dict(zip(names, loaded)), output)
    console.print("wrote " + ", ".join(str(p) for p in written))


