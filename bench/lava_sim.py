"""Samples/s of the digits models on Lava's CPU simulator: our Lava graph
(float and fixed point) vs the same weights through lava-dl's netx (fixed
point only), vs the PyTorch reference -- side by side in one process.

    .venv/bin/python bench/lava_sim.py [--samples 360] [--rounds 3] [--models digits-cnn,digits-mlp]

Paths (all on the same rate-encoded digits test samples, T = 8, every
sample at latency 8):

* ``lava-float``  our Lava process graph (slt_deploy.lava.network), Loihi2SimCfg floating_pt
* ``lava-fixed``  the same graph with our quantiser, Loihi2SimCfg fixed_pt
* ``lava-fused``  the same float arithmetic as one Lava process (mode "fused", tag "fused"):
                  all layers per step in one OS process, ``FUSED_LANES`` samples side by side
* ``netx-fixed``  slayer blocks -> export_hdf5 -> lava.lib.dl.netx.hdf5.Network, fixed_pt
                  (slt_deploy.lava.netx), the readout integrator's voltage probed by a Lava Monitor
* ``netx-current`` the same netx network, read instead from a ring-buffer sink on the
                  readout block's synaptic output (no Monitor): the cost of the probe
* ``torch-ref``   simulate(graph, "torch"): our float64 NIR interpreter, whole chunk as one batch
* ``torch-model`` the training model (checkpoint) itself, float32, whole chunk as one batch

The samples are split into ``--rounds`` chunks; in every round each path
runs one chunk, in rotated order, so that all paths share the machine's
load. samples/s = samples / seconds over all rounds; the Lava networks are
built, compiled and started (with a 2-sample warm-up run) before the
timing: that start-up is reported separately. Lava runs without spike
recording (only the output is read). Ratios are relative to lava-float.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from slt_deploy.backends import FUSED_LANES, predictions, simulate
from slt_deploy.checkpoint import load_checkpoint, model_from_checkpoint
from slt_deploy.data import evaluation_inputs, load_split
from slt_deploy.deploy import plan_deployment
from slt_deploy.lava.compat import import_lava
from slt_deploy.lava.network import LavaNetwork
from slt_deploy.lava.quantize import QuantizedPlan
from slt_deploy.lava.watchdog import lava_actors
from slt_deploy.nirfile import graph_dt, read_graph

ROOT = Path(__file__).resolve().parent.parent
T = 8
WARMUP = 2
TORCH_MIN_SECONDS = 0.3  # a torch path repeats its chunk until this much time has passed
PATHS = ("lava-float", "lava-fixed", "lava-fused", "netx-fixed", "netx-current", "torch-ref", "torch-model")


def open_paths(name: str, stack: contextlib.ExitStack, capacity: int, total: int, workdir: Path,
               warmup_x: np.ndarray):
    """{path: run(x [n, T, *shape]) -> outputs [n, T, classes]} (plus "_io": the
    netx io description), start-up seconds and Lava OS processes per path.
    ``capacity``: samples per run; ``total``: samples over all timed runs."""
    from slt_deploy.backends import input_kind_of
    from slt_deploy.lava.netx import NetxRunner, netx_network_for

    graph = read_graph(ROOT / "export" / f"{name}-slt.nir")
    runs, startup, processes = {}, {}, {}

    def lava(mode):
        plan = plan_deployment(graph, graph_dt(graph, None), input_kind_of(graph))
        quantized = QuantizedPlan(plan) if mode == "fixed" else None
        lanes = FUSED_LANES if mode == "fused" else 1
        network = stack.enter_context(LavaNetwork(plan, T, mode=mode, capacity=-(-capacity // lanes), lanes=lanes,
                                                  record_spikes=False, quantized=quantized))
        return (lambda x: network.run(x).outputs[:, :T]), network.anchor

    def netx(readout):
        plan = plan_deployment(graph, graph_dt(graph, None), input_kind_of(graph))
        network, io = netx_network_for(plan, workdir / f"{name}-{readout}.net", T)
        runner = stack.enter_context(NetxRunner(network, io, capacity=capacity, readout=readout,
                                                lifetime=len(warmup_x) + total))
        runs["_io"] = io
        return runner.run, runner.source

    def torch_ref():
        return lambda x: simulate(graph, "torch", x).outputs, None

    def torch_model():
        checkpoint = ROOT / "models" / f"{name}-slt.pt"
        model = model_from_checkpoint(load_checkpoint(checkpoint), str(checkpoint))

        def run(x):
            with torch.no_grad():
                return model(torch.as_tensor(x, dtype=torch.float32).transpose(0, 1)).transpose(0, 1).numpy()

        return run, None

    makers = (lambda: lava("float"), lambda: lava("fixed"), lambda: lava("fused"), lambda: netx("voltage"), lambda: netx("current"),
              torch_ref, torch_model)
    for path, make in zip(PATHS, makers):
        started = time.perf_counter()
        run, source = make()
        run(warmup_x)
        startup[path] = time.perf_counter() - started
        runs[path] = run
        processes[path] = len(lava_actors(source.runtime)) if source is not None else 0
    return runs, startup, processes


def bench_model(name: str, samples: int, rounds: int) -> dict:
    import_lava(with_dl=True)
    from slt_deploy.lava.netx import chain_forward

    checkpoint = ROOT / "models" / f"{name}-slt.pt"
    shape = tuple(model_from_checkpoint(load_checkpoint(checkpoint), str(checkpoint)).recipe.input_shape)
    test = load_split("digits", "test", shape)
    x_all = evaluation_inputs(test, T, "rate").transpose(0, 1).numpy().astype(np.float64)
    labels = test.labels.numpy()
    samples = min(samples, len(labels))
    x, labels = x_all[WARMUP : WARMUP + samples], labels[WARMUP : WARMUP + samples]
    chunks = np.array_split(np.arange(samples), rounds)
    capacity = max(len(c) for c in chunks)
    seconds = {p: 0.0 for p in PATHS}
    done = {p: 0 for p in PATHS}
    outputs = {p: np.zeros((samples, T, 10)) for p in PATHS}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        runs, startup, processes = open_paths(name, stack, capacity, samples, Path(tmp), x_all[:WARMUP])
        io = runs.pop("_io")
        for r, chunk in enumerate(chunks):
            order = PATHS[r % len(PATHS):] + PATHS[: r % len(PATHS)]
            for path in order:
                started = time.perf_counter()
                repeats = 0
                while True:
                    outputs[path][chunk] = runs[path](x[chunk])
                    repeats += 1
                    elapsed = time.perf_counter() - started
                    if not path.startswith("torch") or elapsed >= TORCH_MIN_SECONDS:
                        break
                seconds[path] += elapsed
                done[path] += repeats * len(chunk)
    latencies = np.full(samples, T)
    predicted = {p: predictions(outputs[p], latencies) for p in PATHS}
    rate = {p: done[p] / seconds[p] for p in PATHS}
    exact = chain_forward(io.quantised, x)
    return {
        "model": name,
        "samples": samples,
        "rate": rate,
        "ratio": {p: rate[p] / rate["lava-float"] for p in PATHS},
        "startup": startup,
        "processes": processes,
        "accuracy": {p: float((predicted[p] == labels).mean()) for p in PATHS},
        "netx_vs_fixed_agreement": float((predicted["netx-fixed"] == predicted["lava-fixed"]).mean()),
        "netx_vs_float_agreement": float((predicted["netx-fixed"] == predicted["lava-float"]).mean()),
        "fixed_vs_float_agreement": float((predicted["lava-fixed"] == predicted["lava-float"]).mean()),
        "netx_minus_slayer_quantised_max": float(max(np.abs(outputs[p] - exact).max()
                                                     for p in ("netx-fixed", "netx-current"))),
        "float_minus_torch_ref_max": float(np.abs(outputs["lava-float"] - outputs["torch-ref"]).max()),
        "scales": io.scales,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="digits-cnn,digits-mlp")
    parser.add_argument("--samples", type=int, default=358, help="digits test samples (after 2 warm-up samples)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (chunks of the samples)")
    args = parser.parse_args()
    print(f"{datetime.date.today()}  torch {torch.__version__}, {torch.get_num_threads()} threads, T = {T}")
    results = [bench_model(name, args.samples, args.rounds) for name in args.models.split(",")]
    header = "| model | path | samples/s | × lava-float | start-up s | Lava processes | accuracy |"
    print(header)
    print("|---|---|---|---|---|---|---|")
    for r in results:
        for p in PATHS:
            print(f"| {r['model']} | {p} | {r['rate'][p]:,.1f} | {r['ratio'][p]:.3g} | {r['startup'][p]:.2f} | "
                  f"{r['processes'][p] or '-'} | {100 * r['accuracy'][p]:.1f} % |")
    for r in results:
        print(f"{r['model']}: {r['samples']} samples; netx vs lava-fixed predictions agree "
              f"{100 * r['netx_vs_fixed_agreement']:.1f} %, netx vs lava-float {100 * r['netx_vs_float_agreement']:.1f} %, "
              f"lava-fixed vs lava-float {100 * r['fixed_vs_float_agreement']:.1f} %; "
              f"max |netx - slayer-quantised float64| = {r['netx_minus_slayer_quantised_max']:.2g}; "
              f"max |lava-float - torch-ref| = {r['float_minus_torch_ref_max']:.2g}; slayer scales {r['scales']}")


if __name__ == "__main__":
    main()
