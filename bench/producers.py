"""Which producers' graphs run here, and how they compare: each graph run on
Lava and against the producer's own simulation, spike for spike.

    .venv/bin/python bench/producers.py            # print the table
    .venv/bin/python bench/producers.py --readme   # and write it into README.md

Rows: our own export (digits-mlp, shipped), snnTorch's export_to_nir
(Leaky; RLeaky with its default recurrent bias + Synaptic; learned
per-neuron beta and alpha), norse's to_nir (LIFBox with a learned time
constant per neuron), sinabs'
exporter (committed fixtures with sinabs' own recorded spikes), norse's
from_nir reading those graphs, and lava-dl netx networks through
``slt-deploy import`` (the tutorial network and a generated conv network)
against netx on Lava's bit-accurate models (one with decays per neuron and
per channel, slayer's ``shared_param=False``). Inputs: seeded Bernoulli(0.3)
spikes. "mismatches" counts differing spikes (every recorded layer) or
outputs; "max |d out|" is the largest output difference.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the networks and runners the tests build

from slt_deploy.ir.netxfile import read_netx  # noqa: E402
from slt_deploy.ir.nirfile import read_graph  # noqa: E402
from slt_deploy.simulation import simulate  # noqa: E402
from readme import publish  # noqa: E402

BEGIN, END = "<!-- producers: begin (bench/producers.py) -->", "<!-- producers: end -->"
SINABS = ROOT / "tests" / "fixtures" / "sinabs"


def spikes(shape, samples=4, steps=12, seed=0):
    return (np.random.default_rng(seed).random((samples, steps, *shape)) < 0.3).astype(np.float64)


def compare(a: dict, b: dict) -> tuple[int, int]:
    """(spikes compared, mismatches) over the layers both record."""
    names = [n for n in a if n in b]
    return sum(int(a[n].size) for n in names), sum(int((a[n] != b[n]).sum()) for n in names)


def norse_outputs(graph, x, dt):
    import norse.torch

    module = norse.torch.from_nir(graph, dt=dt).double()
    out = []
    for sample in x:
        state, steps = None, []
        for frame in sample:
            value, state = module(torch.as_tensor(frame[None]), state)
            steps.append(value[0].detach().numpy())
        out.append(np.stack(steps))
    return np.stack(out)


def row(producer, graph_name, peer, compared, mismatches, diff):
    return f"| {producer} | {graph_name} | {peer} | {compared:,} | {mismatches:,} | {diff:.1e} |"


def ours(rows):
    graph = read_graph(ROOT / "export" / "digits-mlp-slt.nir")
    x = spikes((64,), seed=1, steps=8)
    reference = simulate(graph, "torch", x, record_spikes=True)
    lava = simulate(graph, "lava-float", x, record_spikes=True)
    n, m = compare(lava.spikes, reference.spikes)
    rows.append(row("slt-deploy export", "digits-mlp-slt", "NIR reference (torch) vs Lava float", n, m,
                    np.abs(lava.outputs - reference.outputs).max()))
    theirs = norse_outputs(graph, x, float(graph.metadata["dt"]))
    rows.append(row("slt-deploy export", "digits-mlp-slt", "norse from_nir vs NIR reference (outputs)",
                    theirs.size, int((np.abs(theirs - reference.outputs) > 1e-5).sum()),
                    np.abs(theirs - reference.outputs).max()))


def _snntorch_model(kind):
    import snntorch as snn

    torch.manual_seed(20240602)
    if kind == "Leaky":
        layers = [torch.nn.Linear(12, 10),
                  snn.Leaky(beta=torch.full((10,), 0.8), threshold=torch.ones(10), reset_mechanism="zero",
                            init_hidden=True),
                  torch.nn.Linear(10, 6),
                  snn.Leaky(beta=torch.full((6,), 0.9), threshold=torch.ones(6), reset_mechanism="zero",
                            init_hidden=True, output=True)]
    elif kind == "learned tau":  # learn_beta / learn_alpha: a time constant per neuron
        layers = [torch.nn.Linear(12, 10),
                  snn.Leaky(beta=torch.linspace(0.5, 0.95, 10), threshold=torch.ones(10), reset_mechanism="zero",
                            reset_delay=False, init_hidden=True, learn_beta=True),
                  torch.nn.Linear(10, 6, bias=False),
                  snn.Synaptic(alpha=torch.linspace(0.4, 0.9, 6), beta=torch.linspace(0.95, 0.6, 6),
                               threshold=torch.ones(6), reset_mechanism="zero", reset_delay=False, init_hidden=True,
                               output=True, learn_alpha=True, learn_beta=True)]
    else:  # RLeaky with its default biased recurrent layer, then a biased Linear into Synaptic
        layers = [torch.nn.Linear(12, 10),
                  snn.RLeaky(beta=torch.full((10,), 0.8), threshold=torch.ones(10), linear_features=10,
                             reset_mechanism="zero", reset_delay=False, init_hidden=True),
                  torch.nn.Linear(10, 6),  # its default bias: a constant current into the Synaptic
                  snn.Synaptic(alpha=torch.full((6,), 0.7), beta=torch.full((6,), 0.9), threshold=torch.ones(6),
                               reset_mechanism="zero", reset_delay=False, init_hidden=True, output=True)]
    with torch.no_grad():
        layers[0].weight.mul_(2.5)
        layers[2].weight.mul_({"Leaky": 2.0, "learned tau": 3.0}.get(kind, 1.0))
    return torch.nn.Sequential(*layers)


def _snntorch_run(model, x):
    import snntorch as snn
    from snntorch import utils

    model = copy.deepcopy(model)
    utils.reset(model)
    out = []
    with torch.no_grad():
        for t in range(x.shape[1]):
            h = torch.as_tensor(x[:, t], dtype=torch.float32)
            for layer in model:
                h = layer(h)
                if isinstance(layer, snn.SpikingNeuron) and isinstance(h, tuple):
                    h = h[0]
            out.append(h.numpy().astype(np.float64))
    return np.stack(out, 1)


def snntorch(rows, tmp: Path):
    from snntorch.export_nir import export_to_nir

    from slt_deploy.ir.nirfile import write_graph

    for kind in ("Leaky", "RLeaky+Synaptic", "learned tau"):
        model = _snntorch_model(kind)
        path = tmp / f"snntorch_{kind}.nir"
        write_graph(export_to_nir(model, torch.rand(1, 12), ignore_dims=[0]), path)
        graph = read_graph(path)
        x = spikes((12,), steps=20, seed=11)
        lava = simulate(graph, "lava-float", x, dt=1e-4, record_spikes=True)
        theirs = _snntorch_run(model, x)
        rows.append(row("snnTorch export_to_nir", kind, "snnTorch's own run vs Lava float (outputs)", theirs.size,
                        int((theirs != lava.outputs).sum()), np.abs(theirs - lava.outputs).max()))


def norse_learned_tau(rows, tmp: Path):
    """norse LIFBox layers with a time constant per neuron (the tests' model),
    exported with ``to_nir(dt=1.0)`` (the file then holds tau = 1/tau_mem_inv),
    against the original module at norse's own 1 ms step."""
    import norse.torch as nt

    from slt_deploy.ir.nirfile import write_graph
    from test_foreign_graphs import NORSE_GAINS, _norse_model, run_norse_module

    model, shape = _norse_model("learned_tau_mlp")
    with torch.no_grad():
        for layer, gain in zip((model[0], model[2]), NORSE_GAINS["learned_tau_mlp"]):
            layer.weight.mul_(gain)
    path = tmp / "norse_learned_tau.nir"
    write_graph(nt.to_nir(model, torch.rand(shape), dt=1.0), path)
    x = spikes(shape, steps=20, seed=7)
    lava = simulate(read_graph(path), "lava-float", x, dt=1e-3)
    theirs = run_norse_module(model, x)
    rows.append(row("norse to_nir", "learned tau (LIFBox)", "norse's own run vs Lava float (outputs)", theirs.size,
                    int((theirs != lava.outputs).sum()), np.abs(theirs - lava.outputs).max()))


def sinabs(rows):
    meta = json.loads((SINABS / "fixtures.json").read_text())
    for name, entry in meta["graphs"].items():
        graph = read_graph(SINABS / entry["nir_file"])
        io = np.load(SINABS / entry["io_file"])
        x = io["input"].astype(np.float64)
        lava = simulate(graph, "lava-float", x, dt=entry["dt"]["dt"], record_spikes=True)
        recorded = {k.removeprefix("layer_"): io[k] for k in io.files if k.startswith("layer_")}
        n, m = compare(lava.spikes, recorded)
        expected = io["sinabs_output"]
        rows.append(row("sinabs 3.1.3 (fixture)", name, "sinabs' recorded spikes vs Lava float", n + expected.size,
                        m + int((lava.outputs != expected).sum()), np.abs(lava.outputs - expected).max()))


def netx(rows, tmp: Path):
    from slt_deploy.lava.netx import NetxFileRunner

    from netx_networks import make_network

    conv, learned = tmp / "conv.net", tmp / "learned.net"
    make_network("conv", conv)
    make_network("learned", learned)
    cases = [("lava-dl netx (tutorial)", "netx_mnist.net", ROOT / "tests" / "fixtures" / "lava-dl" / "netx_mnist.net",
              (784,)), ("lava-dl export_hdf5", "conv stride/pad/groups", conv, (2, 8, 8)),
             ("lava-dl export_hdf5", "decays per neuron/channel", learned, (2, 8, 8))]
    for producer, name, path, shape in cases:
        graph = read_netx(path)
        x = spikes(shape, samples=4, steps=8, seed=3)
        with NetxFileRunner(path, shape, 8, capacity=4) as runner:
            theirs = runner.run(x)
        fixed = simulate(graph, "lava-fixed", x, record_spikes=True)
        floating = simulate(graph, "torch", x, record_spikes=True)
        n, m = compare(fixed.spikes, theirs)
        rows.append(row(producer, name, "netx on Lava bit-accurate vs lava-fixed (import)", n, m, 0.0))
        n, m = compare(floating.spikes, fixed.spikes)
        rows.append(row(producer, name, "NIR float (torch) vs lava-fixed", n, m,
                        np.abs(floating.outputs - fixed.outputs).max()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    args = parser.parse_args()
    rows = ["| producer | graph | compared | values | mismatches | max \\|d out\\| |", "|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        ours(rows)
        snntorch(rows, Path(tmp))
        norse_learned_tau(rows, Path(tmp))
        sinabs(rows)
        netx(rows, Path(tmp))
    publish(rows, BEGIN, END, args.readme)


if __name__ == "__main__":
    main()
