"""Commands for networks other tools wrote: ``import`` (a lava-dl netx
network as a NIR graph) and ``inspect`` (what a graph holds and what it
becomes on Lava)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from ..core.errors import UserError
from ..core.files import check_output_file
from ..core.latency import check_latency
from ..ir.netxfile import read_netx
from ..ir.nirfile import metadata_json, write_graph
from ..report import rich_table
from .app import _not_an_input, app, console, out


def _shape(text: Optional[str]) -> Optional[tuple[int, ...]]:
    if text is None:
        return None
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise UserError(f"--input-shape must be integers like 2,32,32, got '{text[:40]}'") from None
    if not shape or min(shape) < 1:
        raise UserError(f"--input-shape must be positive integers, got '{text[:40]}'")
    return shape


def compare_backends(net: Path, graph, samples: int, steps: int, seed: int = 0) -> list[tuple]:
    """Spikes of every population on random input spikes (rate 0.3): netx
    (where lava-dl can run the file), ``lava-fixed`` and the float reference
    (``torch``). Rows: (population, netx spikes, lava-fixed, torch, fixed vs
    netx mismatches, float vs fixed mismatches)."""
    from ..lava.netx import NetxFileRunner  # Lava starts only when asked to compare
    from ..simulation import simulate

    shape = tuple(int(v) for v in np.ravel(graph.nodes["input"].input_type["input"]))
    x = (np.random.default_rng(seed).random((samples, steps, *shape)) < 0.3).astype(np.float64)
    fixed = simulate(graph, "lava-fixed", x, record_spikes=True)
    reference = simulate(graph, "torch", x, record_spikes=True)
    netx_spikes, why = {}, ""
    try:
        with NetxFileRunner(net, shape, steps, capacity=samples) as runner:
            netx_spikes = runner.run(x)
    except NotImplementedError as exc:  # netx 0.6.0 refuses pool and average layers
        why = f"netx cannot run this network: {exc}"
    rows = []
    for name, spikes in fixed.spikes.items():
        theirs = netx_spikes.get(name)
        rows.append((name, "-" if theirs is None else int(theirs.sum()), int(spikes.sum()),
                     int(reference.spikes[name].sum()),
                     "-" if theirs is None else int(np.abs(theirs - spikes).sum()),
                     int(np.abs(reference.spikes[name] - spikes).sum())))
    if why:
        console.print(why)
    return rows


@app.command("import")
def import_network(
    net: Path = typer.Argument(..., help="lava-dl netx network (.net, HDF5 as slayer's export_hdf5 writes it)."),
    output: Path = typer.Option(..., "--output", "-o", help="NIR graph to write (.nir)."),
    input_shape: Optional[str] = typer.Option(None, help="C,H,W or N: only for a file without an input layer."),
    compare: int = typer.Option(0, help="Run this many random spike samples through netx, lava-fixed and the "
                                "float reference and print the spikes per layer side by side."),
    latency: int = typer.Option(8, "--latency", "-t", help="Time steps per sample of --compare."),
):
    """Read a lava-dl netx network as a standard NIR graph with its exact integers (lava-fixed runs them as netx does)."""
    _not_an_input(output, net)
    check_output_file(output, "NIR file")
    check_latency(latency)
    if compare < 0:
        raise UserError(f"--compare must be >= 0, got {compare}")
    graph = read_netx(net, _shape(input_shape))
    for note in metadata_json(graph, "import_notes_json") or []:
        console.print(f"warning: {note}")
    fixed = json.loads(graph.metadata["fixed_point_json"])
    rows = []
    for name, node in graph.nodes.items():
        if name in fixed["populations"]:
            p = fixed["populations"][name]
            rows.append((name, type(node).__name__, f"{p['type']}: du {p['du']}, dv {p['dv']}, vth {p['vth']}"))
        elif name not in ("input", "output"):
            rows.append((name, type(node).__name__, f"weights {list(np.shape(getattr(node, 'weight', ())))}"
                         if hasattr(node, "weight") else ""))
    out.print(rich_table(("node", "NIR", "netx integers"), rows, f"{net.name} -> {output.name}"))
    if compare:
        table = compare_backends(net, graph, compare, latency)
        out.print(rich_table(("population", "netx", "lava-fixed", "float (torch)", "fixed vs netx",
                              "float vs fixed"), table, f"spikes on {compare} random samples, {latency} steps"))
    write_graph(graph, output)
    console.print(f"wrote {output}")
