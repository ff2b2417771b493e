"""The runtime controller judged on streams it was not tuned on.

    .venv/bin/python bench/controller.py            # print the matrix
    .venv/bin/python bench/controller.py --readme   # and write it into README.md

Six model/stream pairs, each run as ``slt-deploy control MODEL --evaluate``
(the fused Lava model; the policies know only the clean calibration split;
8 budget levels from the stream's E(t=1) to E(t=T)):

* the shipped digits MLP and CNN on the rate-coded digits test split (T = 8);
* an ndigits CNN (events, T = 10; ``models/ndigits-cnn.toml``, trained here);
* a model whose accuracy is not monotone in t: the same recipe stopped after
  10 epochs (trained here; the script checks that its test accuracy peaks
  before T);
* a drifting stream: the digits CNN on clean -> gaussian:0.3 -> clean
  (the middle third under pixel noise);
* an event stream with bursts: the ndigits CNN under ``burst:2`` (the
  events of 3 steps arrive together: several events per pixel and step).

Per pair: violations over every budget and policy; adaptive's accuracy as
a share of the stream's profile hull at the budget (smallest over budgets);
anytime's accuracy minus the hull at its own mean energy (smallest, in
points; one sample is 100/N points); anytime's share of the gap between the
best fixed latency and the per-input oracle closed (mean over budgets with a
gap); budgets where anytime is ahead of / tied with / behind both
hindsight-tuned thresholds (entropy, margin) at equal energy; and under a
per-inference cap of E(t=k), k = 2..T, with the exact reserve: the smallest
``mean latency - (k - 1)`` and the smallest share of the cap used from
k = 5 on. Trained models and every evaluation are kept in ``runs/controller``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from readme import publish  # noqa: E402

BEGIN, END = "<!-- controller: begin (bench/controller.py) -->", "<!-- controller: end -->"
RUNS = ROOT / "runs" / "controller"
CLI = [sys.executable, "-m", "slt_deploy.cli"]


def cli(*args) -> None:
    """Run one ``slt-deploy`` command; stop the script with its error if it fails."""
    result = subprocess.run([*CLI, *map(str, args)], cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"slt-deploy {' '.join(map(str, args))} failed:\n{result.stderr[-2000:]}")


def trained(name: str, epochs: int | None) -> Path:
    """The ndigits CNN recipe trained for ``epochs`` (the recipe's when None),
    exported and profiled on the ndigits test split (kept between runs)."""
    graph = RUNS / f"{name}.nir"
    if not graph.exists():
        checkpoint = RUNS / f"{name}.pt"
        extra = [] if epochs is None else ["--epochs", epochs]
        cli("train", "--model", "ndigits-cnn", *extra, "-o", checkpoint)
        cli("export", checkpoint, "-o", graph)
        cli("profile", graph, "--data", "ndigits", "--hardware", "qiao2015", "-o", RUNS / f"{name}.profile.json")
    return graph


def pairs():
    """(label, graph, data, extra control options)."""
    ndigits = trained("ndigits-cnn", None)
    early = trained("ndigits-cnn-10-epochs", 10)
    yield "digits MLP, rate (T = 8)", ROOT / "export" / "digits-mlp-slt.nir", "digits", []
    yield "digits CNN, rate (T = 8)", ROOT / "export" / "digits-cnn-slt.nir", "digits", []
    yield "ndigits CNN, events (T = 10)", ndigits, "ndigits", []
    yield "ndigits CNN after 10 epochs: accuracy not monotone in t", early, "ndigits", []
    yield "digits CNN, drift clean -> gaussian:0.3 -> clean", ROOT / "export" / "digits-cnn-slt.nir", "digits", \
        ["--noise", "gaussian:0.3", "--drift"]
    yield "ndigits CNN, bursts (burst:2)", ndigits, "ndigits", ["--noise", "burst:2"]


def judged(label: str, graph: Path, data: str, extra: list[str], measure: str) -> dict:
    folder = RUNS / label.split(",")[0].replace(" ", "-").lower() / ("-".join(extra).replace(":", "") or "clean")
    cli("control", graph, "--evaluate", "--data", data, "--measure", measure, *extra, "-o", folder)
    return json.loads((folder / "evaluation.json").read_text())


def summarise(label: str, result: dict, measure: str) -> list[str]:
    """One matrix row of an evaluation."""
    rows, n = result["rows"], result["stream"]["samples"]
    anytime = [row["policies"][f"anytime-{measure}"] for row in rows]
    violations = sum(p["violations"] for row in rows for p in row["policies"].values())
    adaptive = min(row["policies"]["adaptive"]["of_hull"] for row in rows)
    above_hull = min(100 * (p["accuracy_over_horizon"] - p["hull_accuracy"]) for p in anytime)
    gaps = [p["gap_closed"] for p in anytime if p["gap_closed"] == p["gap_closed"]]
    versus = {"ahead": 0, "tied": 0, "behind": 0}
    for p in anytime:
        rivals = max(b["accuracy"] for b in p["baselines"].values())
        ours = p["accuracy_over_horizon"]
        versus["ahead" if ours > rivals + 1e-12 else "tied" if abs(ours - rivals) <= 1e-12 else "behind"] += 1
    caps = [c for c in result["caps"] if c["k"] >= 2]
    latency_margin = min(c["exact"]["mean_latency"] - (c["k"] - 1) for c in caps)
    used = [c["exact"]["cap_used"] for c in caps if c["k"] >= 5]
    accuracy = result["stream"]["accuracy"]
    peak = max(range(len(accuracy)), key=lambda i: accuracy[i]) + 1
    return [label, f"{n}", f"{peak} of {len(accuracy)}", f"{result['calibration']['horizon']}", str(violations),
            f"{adaptive:.3f}", f"{above_hull:+.2f} ({100 / n:.2f})",
            f"{sum(gaps) / len(gaps):.2f}" if gaps else "n/a",
            f"{versus['ahead']} / {versus['tied']} / {versus['behind']}",
            f"{latency_margin:+.2f}", f"{min(used):.3f}" if used else "n/a"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", action="store_true", help="write the matrix into README.md")
    parser.add_argument("--measure", default="entropy", help="anytime's confidence measure")
    args = parser.parse_args()
    RUNS.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    header = ["model / stream", "samples", "most accurate t (stream)", "horizon (calibration)", "violations",
              "adaptive / hull (min)", "anytime − hull, points (min; 1 sample)", "anytime gap closed (mean)",
              "anytime vs thresholds: ahead / tied / behind", "cap E(t=k): latency − (k−1) (min)",
              "cap E(t=k≥5): share used (min)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, graph, data, extra in pairs():
        result = judged(label, graph, data, extra, args.measure)
        lines.append("| " + " | ".join(summarise(label, result, args.measure)) + " |")
        print(lines[-1], flush=True)
    minutes = (time.perf_counter() - started) / 60
    lines.append(f"\n`bench/controller.py` ({minutes:.1f} min on this machine, anytime measure {args.measure}, "
                 f"8 budget levels, fused Lava model); every evaluation in `runs/controller/`.")
    publish(lines, BEGIN, END, args.readme)


if __name__ == "__main__":
    main()
