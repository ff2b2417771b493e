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


def _summary(value) -> str:
    array = np.asarray(value, dtype=np.float64)
    if array.size == 0:
        return "[]"
    low, high = float(array.min()), float(array.max())
    return f"{low:.4g}" if low == high else f"{low:.4g}..{high:.4g} (per neuron)"


def describe_graph(graph, dt: float) -> dict:
    """What ``graph`` holds and what it becomes on Lava, as plain data: nodes
    (kind, shape, parameters), each node's Lava role, what is refused and
    why, dt and dt/tau per neuron node, and the synaptic operations per step
    if every neuron fired (SOP)."""
    from ..deploy.plan import plan_for_graph
    from ..deploy.synapses import fanout
    from ..ir.graph import PARAMETERS, analyse, convention_warnings, euler_ratios

    flat = analyse(graph)
    ratios = euler_ratios(flat, dt)
    nodes = []
    for name in flat.order:
        node, kind = flat.nodes[name], flat.kinds[name]
        parameters = {}
        for key in PARAMETERS.get(kind, ()):
            value = getattr(node, key, None)
            if value is None:
                continue
            parameters[key] = f"shape {list(np.shape(value))}" if key in ("weight",) else _summary(value)
        nodes.append({"node": name, "kind": kind, "shape": list(flat.shapes[name]), "parameters": parameters,
                      "dt_over_tau": ratios.get(name)})
    refused, roles, sop = None, {}, None
    try:
        plan = plan_for_graph(graph, dt, allow_unstable_dt=True)
    except UserError as exc:
        refused = str(exc)
    else:
        for population in plan.populations.values():
            roles[population.name] = (f"population (depth {population.depth}): du {_summary(population.du)}, "
                                      f"dv {_summary(population.dv)}, vth {population.vth:.4g}"
                                      if not population.is_input else "input")
        sop = 0
        for projection in plan.projections:
            synapses = int(fanout(projection, effective=True).sum())
            sop += synapses
            role = (f"{'recurrent ' if projection.recurrent else ''}{projection.kind} projection "
                    f"{projection.source} -> {projection.target}, {synapses:,} synapses, delay {projection.delay}")
            for name in projection.nodes or ():
                roles[name] = role if name not in roles else f"{roles[name]}; {role}"
    unstable = {name: ratio for name, ratio in ratios.items() if ratio > 1}
    for row in nodes:
        row["lava"] = roles.get(row["node"], "-" if refused is None else "")
    return {"dt": dt, "nodes": nodes, "refused": refused,
            "unstable_dt": {name: ratio for name, ratio in unstable.items()},
            "sop_per_step_all_firing": sop, "warnings": convention_warnings(flat),
            "fixed_point_integers": "fixed_point_json" in (graph.metadata or {})}


@app.command()
def inspect(
    model: Path = typer.Argument(..., help="NIR graph (.nir) or lava-dl netx network (.net)."),
    dt: Optional[float] = typer.Option(None, help="Simulation step in seconds (default: the graph's)."),
    as_json: bool = typer.Option(False, "--json", help="Print the description as JSON (for scripts)."),
    input_shape: Optional[str] = typer.Option(None, help="C,H,W or N: for a .net file without an input layer."),
):
    """What a graph holds and what it becomes on Lava: nodes, populations and projections, refusals, dt stability, SOP."""
    from ..core.files import require_file
    from ..ir.netxfile import is_netx_file
    from ..ir.nirfile import graph_dt, read_graph

    path = require_file(model, "graph")
    graph = read_netx(path, _shape(input_shape)) if is_netx_file(path) else read_graph(path)
    step = graph_dt(graph, dt)
    description = describe_graph(graph, step)
    if as_json:
        typer.echo(json.dumps(description, indent=2))
        return
    rows = [(n["node"], n["kind"], "x".join(map(str, n["shape"])),
             ", ".join(f"{k} {v}" for k, v in n["parameters"].items()),
             "" if n["dt_over_tau"] is None else f"{n['dt_over_tau']:.3g}", n["lava"]) for n in description["nodes"]]
    out.print(rich_table(("node", "kind", "shape", "parameters", "dt/tau", "on Lava"), rows, f"{model.name}"))
    out.print(f"dt = {step:g} s; " + ("forward Euler stable on every population" if not description["unstable_dt"]
                                      else "UNSTABLE (dt/tau > 1): " + ", ".join(description["unstable_dt"])))
    if description["refused"]:
        out.print(f"refused on Lava: {description['refused']}")
    else:
        out.print(f"synaptic operations per step if every neuron fired: {description['sop_per_step_all_firing']:,} SOP")
    if description["fixed_point_integers"]:
        out.print("carries exact fixed-point integers (lava-fixed runs them as they are)")
    for warning in description["warnings"]:
        console.print(f"warning: {warning}")
