"""A slayer-trained model (``--backend lava-dl``) on Lava two ways, side by side:
our path (slayer model -> our NIR exporter -> our Lava graph) vs lava-dl's own
(slayer blocks -> ``export_hdf5`` -> ``lava.lib.dl.netx``), in one process.

    .venv/bin/python bench/slayer_paths.py [--models digits-mlp,digits-cnn] [--epochs 10]
                                           [--samples 358] [--rounds 3]

The models are trained here with SLT-TET on lava-dl slayer (``new_run`` of the
recipe with ``framework="lava-dl"``), cached in ``runs/bench-slayer/``.
Paths (rate-encoded digits test samples, T = 8, every sample at latency 8):

* ``ours-float``    NIR export -> our Lava graph (slt_deploy.lava.network), Loihi2SimCfg floating_pt
* ``ours-fixed``    the same graph with our quantiser, fixed_pt
* ``netx-current``  netx network (slt_deploy.lava.netx), fixed_pt, read from a ring-buffer sink
                    on the readout block's synaptic output
* ``netx-voltage``  the same netx network read through a Lava Monitor on the readout integrator
* ``slayer-torch``  the slayer model's own forward pass (float32, a chunk as one batch)

Each path runs one chunk per round, in rotated order (the machine is shared);
samples/s = samples / seconds over all rounds, Lava start-up (build, compile,
process start, 2 warm-up samples) reported separately. Ratios are relative
to ours-float; "same class" is agreement with slayer's own predictions.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from interleaved import interleaved_rates
from slt_deploy.core.compat import import_lava
from slt_deploy.data.splits import evaluation_inputs, load_split
from slt_deploy.ir.export import export_model
from slt_deploy.models.zoo import load_recipe
from slt_deploy.readout import predictions
from slt_deploy.simulation import Session, load_plan
from slt_deploy.training.checkpoint import load_checkpoint, model_from_checkpoint
from slt_deploy.training.slt import new_run, train

ROOT = Path(__file__).resolve().parent.parent
T = 8
WARMUP = 2
TORCH_MIN_SECONDS = 0.3  # the torch path repeats its chunk until this much time has passed
PATHS = ("ours-float", "ours-fixed", "netx-current", "netx-voltage", "slayer-torch")


def slayer_checkpoint(name: str, epochs: int) -> Path:
    """A ``--backend lava-dl`` checkpoint of recipe ``name`` trained for ``epochs`` (cached)."""
    path = ROOT / "runs" / "bench-slayer" / f"{name}-slt-tet-e{epochs}-lava-dl.pt"
    if not path.is_file():
        recipe = load_recipe(name)
        recipe = replace(recipe, train=replace(recipe.train, framework="lava-dl", epochs=epochs))
        started = time.perf_counter()
        train(new_run(recipe), path)
        print(f"trained {path.name} in {time.perf_counter() - started:.0f} s")
    return path


def open_paths(checkpoint: Path, stack: contextlib.ExitStack, capacity: int, total: int, workdir: Path,
               warmup_x: np.ndarray):
    """{path: run(x [n, T, *shape]) -> outputs [n, T, classes]} and start-up seconds per path."""
    from slt_deploy.lava.netx import NetxRunner, netx_network_for

    model = model_from_checkpoint(load_checkpoint(checkpoint), str(checkpoint))
    graph = export_model(model_from_checkpoint(load_checkpoint(checkpoint), str(checkpoint)).double())
    runs, startup, info = {}, {}, {}

    def ours(mode):
        session = stack.enter_context(Session(graph, f"lava-{mode}", T, capacity=capacity))
        return lambda x: session.run(x).outputs

    def netx(readout):
        network, io = netx_network_for(load_plan(checkpoint), workdir / f"{readout}.net", T)  # slayer export_hdf5 -> netx
        runner = stack.enter_context(NetxRunner(network, io, capacity=capacity, readout=readout,
                                                lifetime=len(warmup_x) + total))
        info["scales"] = io.scales
        return lambda x: runner.run(x).outputs

    def slayer():
        def run(x):
            with torch.no_grad():
                return model(torch.as_tensor(x, dtype=torch.float32).transpose(0, 1)).transpose(0, 1).double().numpy()

        return run

    makers = (lambda: ours("float"), lambda: ours("fixed"), lambda: netx("current"), lambda: netx("voltage"), slayer)
    for path, make in zip(PATHS, makers):
        started = time.perf_counter()
        run = make()
        run(warmup_x)
        startup[path] = time.perf_counter() - started
        runs[path] = run
    return runs, startup, info


def bench_model(name: str, epochs: int, samples: int, rounds: int) -> dict:
    import_lava(with_dl=True)
    checkpoint = slayer_checkpoint(name, epochs)
    recipe = model_from_checkpoint(load_checkpoint(checkpoint), str(checkpoint)).recipe
    test = load_split("digits", "test", recipe.input_shape)
    x_all = evaluation_inputs(test, T, "rate").transpose(0, 1).numpy().astype(np.float64)
    samples = min(samples, len(x_all) - WARMUP)
    x, labels = x_all[WARMUP : WARMUP + samples], test.labels.numpy()[WARMUP : WARMUP + samples]
    chunks = np.array_split(np.arange(samples), rounds)
    capacity = max(len(c) for c in chunks)
    outputs = {p: np.zeros((samples, T, recipe.classes)) for p in PATHS}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        runs, startup, info = open_paths(checkpoint, stack, capacity, samples, Path(tmp), x_all[:WARMUP])
        rate = interleaved_rates(runs, PATHS, chunks, x, outputs, lambda p: p == "slayer-torch", TORCH_MIN_SECONDS)
    latencies = np.full(samples, T)
    predicted = {p: predictions(outputs[p], latencies) for p in PATHS}
    return {
        "model": name,
        "epochs": epochs,
        "samples": samples,
        "rate": rate,
        "ratio": {p: rate[p] / rate["ours-float"] for p in PATHS},
        "startup": startup,
        "accuracy": {p: float((predicted[p] == labels).mean()) for p in PATHS},
        "same_class": {p: float((predicted[p] == predicted["slayer-torch"]).mean()) for p in PATHS},
        "max_diff": {p: float(np.abs(outputs[p] - outputs["slayer-torch"]).max()) for p in PATHS},
        "scales": info["scales"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="digits-mlp,digits-cnn")
    parser.add_argument("--epochs", type=int, default=10, help="lava-dl training epochs (checkpoints are cached)")
    parser.add_argument("--samples", type=int, default=358, help="digits test samples (after 2 warm-up samples)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (chunks of the samples)")
    args = parser.parse_args()
    results = [bench_model(name, args.epochs, args.samples, args.rounds) for name in args.models.split(",")]
    print(f"{datetime.date.today()}  torch {torch.__version__}, {torch.get_num_threads()} threads, T = {T}")
    print("| model | path | samples/s | × ours-float | start-up s | accuracy | same class as slayer | max abs diff vs slayer |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        for p in PATHS:
            print(f"| {r['model']} | {p} | {r['rate'][p]:,.1f} | {r['ratio'][p]:.3g} | {r['startup'][p]:.2f} | "
                  f"{100 * r['accuracy'][p]:.1f} % | {100 * r['same_class'][p]:.1f} % | {r['max_diff'][p]:.2g} |")
    for r in results:
        print(f"{r['model']}: {r['epochs']} epochs on lava-dl, {r['samples']} samples; netx block scales {r['scales']}")


if __name__ == "__main__":
    main()
