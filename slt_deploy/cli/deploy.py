"""Commands that run a deployed graph: ``run`` and ``info``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from ..core.environment import environment_report
from ..core.errors import UserError
from ..core.files import atomic_path, check_output_file, require_file, write_json
from ..core.latency import check_latency
from ..data.splits import evaluation_inputs, load_split
from ..ir.graph import analyse, convention_warnings
from ..ir.nirfile import graph_dt, read_graph
from ..readout import predictions
from ..report import rich_table
from ..simulation import deployment_plan, simulate
from .app import _check_latency, _not_an_input, _progress, app, console, out


@app.command()
def run(
    model: Path = typer.Argument(..., help="NIR graph (.nir): exported by slt-deploy or by another tool."),
    backend: str = typer.Option("lava-float", help="lava-float | lava-fixed | lava-fused | lava-fused-fixed | loihi2 | "
                                                   "torch."),
    latency: Optional[int] = typer.Option(None, "--latency", "-t", help="Time steps per sample (default: T, or the input's steps)."),
    data: Optional[str] = typer.Option(None, help="Dataset to classify (e.g. digits); or use --input."),
    split: str = typer.Option("test", help="Split of --data."),
    samples: Optional[int] = typer.Option(None, help="Use only the first N samples."),
    encoding: Optional[str] = typer.Option(None, help="Encoding of --data (default: the graph's metadata)."),
    input_file: Optional[Path] = typer.Option(None, "--input", help="Your own input: .npy of [samples, steps, *input shape]."),
    output_file: Optional[Path] = typer.Option(None, "--output", help="Write the output node's values [samples, steps, *shape] (.npy)."),
    dt: Optional[float] = typer.Option(None, help="Simulation step in seconds (required when the graph has no dt)."),
    input_kind: Optional[str] = typer.Option(None, help="spikes | analog: what the input is (default: metadata, else spikes)."),
    allow_unstable_dt: bool = typer.Option(False, "--allow-unstable-dt",
                                           help="Run even where dt/tau > 1 (forward Euler unstable)."),
):
    """Run a NIR graph on Lava (float, fixed point, Loihi 2) or PyTorch: accuracy and per-sample outputs."""
    if output_file is not None:
        _not_an_input(output_file, model, input_file)
        check_output_file(output_file, "output file")
    _check_latency(latency)
    graph = read_graph(model)
    step = graph_dt(graph, dt)
    for warning in convention_warnings(analyse(graph)):
        console.print(f"warning: {warning}")
    meta = graph.metadata or {}
    labels = None
    if (data is None) == (input_file is None):
        raise UserError("give exactly one of --data (a dataset) or --input (an .npy file)")
    if input_file is not None:
        try:
            x = np.load(require_file(input_file, "input file"), allow_pickle=False)
        except (ValueError, EOFError, OSError) as exc:  # a pickle, a truncated or an empty file
            raise UserError(f"{input_file} is not a plain .npy array: {str(exc) or type(exc).__name__}") from None
        if not np.issubdtype(x.dtype, np.number):
            raise UserError(f"{input_file} holds {x.dtype} values, not numbers")
        T = int(x.shape[1]) if x.ndim >= 2 else 0
    else:
        T = int(meta.get("latency_T", latency or 0))  # foreign graphs: --latency sets T
        if T < 1:
            raise UserError("the graph has no latency_T in its metadata: give --latency")

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
                          progress=lambda done: bar.update(task, completed=done), allow_unstable_dt=allow_unstable_dt)
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


@app.command("check-loihi2")
def check_loihi2(
    model: Path = typer.Argument(..., help="NIR graph (.nir) to deploy."),
    dt: Optional[float] = typer.Option(None, help="Simulation step in seconds (graphs without dt)."),
    input_kind: Optional[str] = typer.Option(None, help="spikes | analog (default: metadata, else spikes)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Also write the list as JSON."),
):
    """List every Lava process of the per-layer fixed-point graph and whether it runs on Loihi 2
    (stock process on the neurocores or the host, or a Python-only process of slt-deploy); exit
    code 1 when a piece has no Loihi 2 implementation. Needs no chip."""
    from ..lava.loihi2 import readiness  # Lava only for this command
    from ..lava.quantise import QuantisedPlan

    if output is not None:
        _not_an_input(output, model)
        check_output_file(output, "readiness JSON")
    graph = read_graph(model)
    plan = deployment_plan(graph, dt, input_kind)
    rows = readiness(plan, QuantisedPlan(plan))
    table = [(row.piece, "lava-nc" if row.stock else "slt-deploy", row.runs_on, str(len(row.names)),
              ", ".join(row.names[:3]) + (" ..." if len(row.names) > 3 else "")) for row in rows]
    out.print(rich_table(("piece", "from", "on Loihi 2", "count", "names"), table,
                         f"{model.name}: the per-layer fixed-point graph"))
    for row in rows:
        if row.action:
            out.print(f"- {row.piece}: {row.action}")
    missing = [row for row in rows if not row.ready]
    if output is not None:
        write_json(output, {"graph": str(model), "ready": not missing, "pieces": [row.to_dict() for row in rows]})
    if missing:
        console.print(f"not ready for Loihi 2: {len(missing)} piece(s) without a Loihi 2 implementation: "
                      + ", ".join(row.piece for row in missing))
        raise typer.Exit(1)
    console.print("ready for Loihi 2: every process is a stock Lava process (see the actions for the host side)")


@app.command()
def info():
    """Versions of the toolchain, whether Lava imports, whether Loihi 2 is present."""
    for key, value in environment_report().items():
        out.print(f"{key:>16}: {value}")


