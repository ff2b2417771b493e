"""Quantiser quality: the fixed-point network Loihi would run against the
float network it quantises, on the whole test split.

    .venv/bin/python bench/quantisation.py            # print the table
    .venv/bin/python bench/quantisation.py --readme   # and write it into README.md

For every model: ``profile --backend lava-fused-fixed --compare-float`` as a
function (bit-identical to the per-layer ``lava-fixed`` graph; the float
twin ``lava-fused`` bit-identical to ``lava-float``) on the digits test
split (360 samples, T = 8): accuracy per latency, fixed minus float at T
and the largest difference over t = 1..T, and each layer's input deviation
(teacher-forced with the float spikes of 8 samples; max / mean in units of
the layer's threshold, the output in output units). VGGSNN is included
when ``scripts/vggsnn_energy.sh`` has trained it (``runs/vggsnn-energy``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from slt_deploy.energy.hardware import load_hardware  # noqa: E402
from slt_deploy.energy.profile import compare_with_float, graph_stream, profile_model  # noqa: E402
from slt_deploy.ir.nirfile import read_graph  # noqa: E402
from readme import publish  # noqa: E402

BEGIN, END = "<!-- quantisation: begin (bench/quantisation.py) -->", "<!-- quantisation: end -->"
VGGSNN = ROOT / "runs" / "vggsnn-energy" / "vggsnn-slt.pt"


def models():
    """(name, graph, data set) of every model measured."""
    for name in ("digits-mlp", "digits-cnn"):
        yield name, read_graph(ROOT / "export" / f"{name}-slt.nir"), "digits"
    if VGGSNN.exists():
        from slt_deploy.ir.export import export_model
        from slt_deploy.training.checkpoint import load_checkpoint, model_from_checkpoint

        model = model_from_checkpoint(load_checkpoint(VGGSNN), str(VGGSNN))
        yield "vggsnn (trained)", export_model(model.double()), "ndigits48"
    else:
        print(f"vggsnn: {VGGSNN.relative_to(ROOT)} not trained here (scripts/vggsnn_energy.sh): left out")


def measure(name: str, graph, data: str) -> str:
    x, labels = graph_stream(graph, data, "test")[:2]
    started = time.perf_counter()
    profile = profile_model(graph, x, labels, load_hardware("qiao2015"), backend="lava-fused-fixed")
    compare_with_float(graph, x, labels, profile)
    seconds = time.perf_counter() - started
    fixed, floating = profile["accuracy"], profile["float"]["accuracy"]
    differences = [100 * (a - b) for a, b in zip(fixed, floating)]
    worst = max(range(len(differences)), key=lambda i: abs(differences[i]))
    layers = "; ".join(f"{layer} {d['max']:.3f} / {d['mean']:.3f}" + (" (output units)" if d["unit"] == "output" else "")
                       for layer, d in profile["quantisation"]["input_deviation"].items())
    print(f"{name}: {len(x)} samples in {seconds:.1f} s (fixed and float profiles, deviation)")
    return (f"| {name} | {len(x)} | {100 * fixed[-1]:.2f} | {100 * floating[-1]:.2f} | {differences[-1]:+.2f} | "
            f"{differences[worst]:+.2f} (t = {worst + 1}) | {layers} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    args = parser.parse_args()
    rows = ["| model | samples | fixed % at T | float % at T | fixed − float at T (pt) | largest over t = 1..T (pt) "
            "| input deviation per layer, max / mean (threshold units) |", "|---|---|---|---|---|---|---|"]
    rows += [measure(*model) for model in models()]
    publish(rows, BEGIN, END, args.readme)


if __name__ == "__main__":
    main()
