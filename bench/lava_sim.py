"""Samples/s on Lava's CPU simulator: our per-layer Lava graph (float and
fixed point) and the fused Lava model vs the same weights through lava-dl's
netx (fixed point only), vs the PyTorch reference -- side by side in one process.

    .venv/bin/python bench/lava_sim.py [--samples 358] [--rounds 3] [--models digits-cnn,digits-mlp,vggsnn]
                                       [--vggsnn-samples 6]

Models: the shipped SLT digits models (rate-encoded digits test samples,
T = 8) and the paper's VGGSNN recipe on generated 2x48x48 event frames
(``ndigits48`` test split, T = 10): the checkpoint that
``scripts/vggsnn_energy.sh`` trains, else a freshly initialised VGGSNN
(seed 0; the speed, not the accuracy, is measured then). Every sample runs
at latency T. Paths:

* ``lava-float``  our Lava process graph (slt_deploy.lava.network), Loihi2SimCfg floating_pt
* ``lava-fixed``  the same graph with our quantiser, Loihi2SimCfg fixed_pt
* ``lava-fused``  the same float arithmetic as one Lava process (mode "fused", tag "fused"):
                  all layers per step in one OS process, up to ``FUSED_LANES`` samples side by side
                  (one for VGGSNN: ``FUSED_LANE_VALUES``)
* ``lava-fused-fixed`` the fixed-point graph's integers as one Lava process (mode "fused-fixed",
                  tag "fused_fixed"), lanes as lava-fused
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
recording (only the output is read). Ratios are relative to lava-float; the fused fixed model is also
compared with lava-fixed (its outputs must equal them bit for bit).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
from dataclasses import replace
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from interleaved import interleaved_rates
from slt_deploy.core.compat import import_lava
from slt_deploy.deploy.plan import plan_for_graph
from slt_deploy.ir.nirfile import read_graph
from slt_deploy.lava.watchdog import lava_actors
from slt_deploy.readout import predictions
from slt_deploy.simulation import session_for, simulate
from slt_deploy.training.checkpoint import load_checkpoint, model_from_checkpoint

ROOT = Path(__file__).resolve().parent.parent
WARMUP = 2
VGGSNN_TRAINED = ROOT / "runs" / "vggsnn-energy" / "vggsnn-slt.pt"
MIN_SECONDS = 0.3  # a torch or fused path repeats its chunk until this much time has passed
PATHS = ("lava-float", "lava-fixed", "lava-fused", "lava-fused-fixed", "netx-fixed", "netx-current", "torch-ref", "torch-model")


def model_files(name: str, workdir: Path):
    """(NIR graph path, the training model, data set) of a benchmarked model."""
    if name.startswith("digits-"):
        checkpoint = ROOT / "models" / f"{name}-slt.pt"
        model = model_from_checkpoint(load_checkpoint(checkpoint), str(checkpoint))
        return ROOT / "export" / f"{name}-slt.nir", model, "digits"
    if name != "vggsnn":
        raise SystemExit(f"unknown model {name}: choose digits-cnn, digits-mlp or vggsnn")
    from slt_deploy.ir.export import export_model
    from slt_deploy.ir.nirfile import write_graph
    from slt_deploy.models import build_model, load_recipe

    if VGGSNN_TRAINED.exists():
        model = model_from_checkpoint(load_checkpoint(VGGSNN_TRAINED), str(VGGSNN_TRAINED))
        print(f"vggsnn: trained checkpoint {VGGSNN_TRAINED.relative_to(ROOT)}")
    else:
        torch.manual_seed(0)
        model = build_model(replace(load_recipe("vggsnn"), dataset="ndigits48"))
        print("vggsnn: freshly initialised (seed 0); run scripts/vggsnn_energy.sh for the trained one")
    graph_path = workdir / "vggsnn.nir"
    write_graph(export_model(model), graph_path)
    return graph_path, model.eval(), "ndigits48"


def open_paths(graph_path: Path, model, paths: tuple[str, ...], stack: contextlib.ExitStack,
               capacity: int, total: int, workdir: Path, warmup_x: np.ndarray):
    """{path: run(x [n, T, *shape]) -> outputs [n, T, classes]} (plus "_io": the
    netx io description), start-up seconds and Lava OS processes per path.
    ``capacity``: samples per run; ``total``: samples over all timed runs."""
    from slt_deploy.lava.netx import NetxRunner, netx_network_for

    graph = read_graph(graph_path)
    T = int(graph.metadata["latency_T"])
    runs, startup, processes = {}, {}, {}

    def lava(mode):
        session = stack.enter_context(session_for(graph, f"lava-{mode}", capacity, T, capacity=capacity))
        return (lambda x: session.run(x).outputs), session.network.anchor

    def netx(readout):
        network, io = netx_network_for(plan_for_graph(graph), workdir / f"{graph_path.stem}-{readout}.net", T)
        runner = stack.enter_context(NetxRunner(network, io, capacity=capacity, readout=readout,
                                                lifetime=len(warmup_x) + total))
        runs["_io"] = io
        return (lambda x: runner.run(x).outputs), runner.source

    def torch_ref():
        return lambda x: simulate(graph, "torch", x).outputs, None

    def torch_model():
        def run(x):
            with torch.no_grad():
                return model(torch.as_tensor(x, dtype=torch.float32).transpose(0, 1)).transpose(0, 1).numpy()

        return run, None

    makers = (lambda: lava("float"), lambda: lava("fixed"), lambda: lava("fused"), lambda: lava("fused-fixed"),
              lambda: netx("voltage"), lambda: netx("current"), torch_ref, torch_model)
    for path, make in zip(PATHS, makers):
        if path not in paths:
            continue
        started = time.perf_counter()
        run, source = make()
        run(warmup_x)
        startup[path] = time.perf_counter() - started
        runs[path] = run
        processes[path] = len(lava_actors(source.runtime)) if source is not None else 0
    return runs, startup, processes


def bench_model(name: str, samples: int, rounds: int, paths: tuple[str, ...], warmup: int = WARMUP) -> dict:
    import_lava(with_dl=True)
    from slt_deploy.lava.netx import chain_forward
    from slt_deploy.energy.profile import graph_stream

    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        graph_path, model, dataset = model_files(name, Path(tmp))
        x_all, labels = graph_stream(read_graph(graph_path), dataset, "test")[:2]
        x_all = x_all.astype(np.float64)
        T = x_all.shape[1]
        samples = min(samples, len(labels) - warmup)
        x, labels = x_all[warmup : warmup + samples], labels[warmup : warmup + samples]
        chunks = np.array_split(np.arange(samples), rounds)
        capacity = max(len(c) for c in chunks)
        outputs = {p: np.zeros((samples, T, 10)) for p in paths}
        runs, startup, processes = open_paths(graph_path, model, paths, stack, capacity, samples, Path(tmp),
                                              x_all[:warmup])
        io = runs.pop("_io", None)
        rate = interleaved_rates(runs, paths, chunks, x, outputs, lambda p: p.startswith(("torch", "lava-fused")),
                                 MIN_SECONDS)
    latencies = np.full(samples, T)
    predicted = {p: predictions(outputs[p], latencies) for p in paths}

    def agreement(a, b):
        return float((predicted[a] == predicted[b]).mean()) if a in paths and b in paths else None

    def both(a, b, value):
        return value() if a in paths and b in paths else None

    baseline = "lava-float" if "lava-float" in paths else paths[0]

    result = {
        "model": name,
        "T": T,
        "samples": samples,
        "paths": paths,
        "rate": rate,
        "baseline": baseline,
        "ratio": {p: rate[p] / rate[baseline] for p in paths},
        "startup": startup,
        "processes": processes,
        "accuracy": {p: float((predicted[p] == labels).mean()) for p in paths},
        "agreement": {f"{a} vs {b}": agreement(a, b) for a, b in
                      (("netx-fixed", "lava-fixed"), ("netx-fixed", "lava-float"), ("lava-fixed", "lava-float"))
                      if agreement(a, b) is not None},
        "fused_equals_float": both("lava-fused", "lava-float",
                                   lambda: bool(np.array_equal(outputs["lava-fused"], outputs["lava-float"]))),
        "fused_fixed_equals_fixed": both("lava-fused-fixed", "lava-fixed", lambda: bool(
            np.array_equal(outputs["lava-fused-fixed"], outputs["lava-fixed"]))),
        "fused_fixed_over_fixed": both("lava-fused-fixed", "lava-fixed",
                                       lambda: rate["lava-fused-fixed"] / rate["lava-fixed"]),
        "float_minus_torch_ref_max": both("lava-float", "torch-ref", lambda: float(
            np.abs(outputs["lava-float"] - outputs["torch-ref"]).max())),
    }
    if io is not None:
        exact = chain_forward(io.quantised, x).outputs
        result["netx_minus_slayer_quantised_max"] = float(max(np.abs(outputs[p] - exact).max()
                                                              for p in ("netx-fixed", "netx-current") if p in paths))
        result["scales"] = io.scales
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="digits-cnn,digits-mlp,vggsnn")
    parser.add_argument("--samples", type=int, default=358, help="test samples of the digits models (after 2 warm-up samples)")
    parser.add_argument("--vggsnn-samples", type=int, default=6, help="test samples of VGGSNN (the per-layer graph "
                                                                      "takes ~3 s per sample, netx minutes)")
    parser.add_argument("--vggsnn-paths", default="lava-float,lava-fused,torch-ref,torch-model",
                        help="paths run on VGGSNN (fixed point is left out by default: slow; netx cannot take "
                             "its event counts > 1, docs/lava-behaviours.md §9)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (chunks of the samples)")
    parser.add_argument("--warmup", type=int, default=WARMUP, help="samples each Lava path runs before the timing")
    args = parser.parse_args()
    print(f"{datetime.date.today()}  torch {torch.__version__}, {torch.get_num_threads()} threads")
    results = []
    for name in args.models.split(","):
        if name == "vggsnn":
            paths = tuple(p for p in PATHS if p in args.vggsnn_paths.split(","))
            results.append(bench_model(name, args.vggsnn_samples, args.rounds, paths, args.warmup))
        else:
            results.append(bench_model(name, args.samples, args.rounds, PATHS, args.warmup))
    header = "| model | path | samples/s | × baseline | start-up s | Lava processes | accuracy |"
    print(header)
    print("|---|---|---|---|---|---|---|")
    for r in results:
        for p in r["paths"]:
            rate = f"{r['rate'][p]:,.1f}" if r["rate"][p] >= 10 else f"{r['rate'][p]:.3g}"
            print(f"| {r['model']} | {p} | {rate} | {r['ratio'][p]:.3g} | {r['startup'][p]:.2f} | "
                  f"{r['processes'][p] or '-'} | {100 * r['accuracy'][p]:.1f} % |")
    print("baseline: " + ", ".join(f"{r['model']} {r['baseline']}" for r in results))
    for r in results:
        agreement = ", ".join(f"{k} {100 * v:.1f} %" for k, v in r["agreement"].items())
        print(f"{r['model']}: {r['samples']} samples, T = {r['T']}; predictions agree: {agreement or '-'}; "
              f"lava-fused outputs == lava-float outputs: {r['fused_equals_float']}; "
              + (f"lava-fused-fixed outputs == lava-fixed outputs: {r['fused_fixed_equals_fixed']}, "
                 f"{r['fused_fixed_over_fixed']:.3g}x its samples/s; " if r["fused_fixed_equals_fixed"] is not None
                 else "")
              + (f"max |lava-float - torch-ref| = {r['float_minus_torch_ref_max']:.2g}"
                 if r["float_minus_torch_ref_max"] is not None else "")
              + (f"; max |netx - slayer-quantised float64| = {r['netx_minus_slayer_quantised_max']:.2g}; "
                 f"slayer scales {r['scales']}" if "scales" in r else ""))


if __name__ == "__main__":
    main()
