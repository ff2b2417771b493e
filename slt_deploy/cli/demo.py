"""The main job (``make demo``): the whole pipeline on the default data.

1. Training: for each loss (TET, SDT) and seed, the same recipe is trained
   twice -- with SLT (t ~ U{1..T} per batch) and with the fixed maximum
   latency T -- and both are evaluated at every latency t = 1..T on the test
   split. The accuracies, averaged over seeds, are printed side by side and
   written to ``<output>/summary.{json,md,png}``. Checkpoints that are
   already complete with the same settings are reused; interrupted ones are
   resumed.
2. Deployment (:func:`deploy_stage`): the seed-0 SLT-TET and TET models go
   to NIR, run on Lava (float, compared with PyTorch; fixed point), get an
   energy profile and a side-by-side report, and the SLT model drives the
   runtime controller under a range of energy budgets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import typer

from ..core.errors import UserError
from ..core.files import check_output_folder, safe_name, write_json, write_text
from ..data.splits import load_split
from ..energy.counts import count_operations
from ..energy.hardware import load_hardware
from ..energy.profile import graph_stream, noisy_streams, parse_noise, profile_model, store_in_graph
from ..ir.export import export_model
from ..ir.nirfile import read_graph, write_graph
from ..models.zoo import load_recipe
from ..readout import predictions
from ..report import energy_report, judge, markdown_table, plot_accuracy_per_latency, rich_table
from ..simulation import simulate
from ..training.checkpoint import load_checkpoint, model_from_checkpoint
from ..training.evaluation import latency_profile
from ..training.slt import new_run, resume_run, train, with_settings
from .app import _progress, app, console, out

LABELS = {("slt", "tet"): "SLT-TET", ("fixed", "tet"): "TET", ("slt", "sdt"): "SLT-SDT", ("fixed", "sdt"): "SDT"}


def _trained_checkpoint(recipe, path: Path, console, progress_factory) -> Path:
    run = None
    if path.exists():
        try:
            stored = resume_run(path)
            if stored.recipe == recipe:
                run = stored
        except UserError:
            run = None
    if run is None:
        run = new_run(recipe)
    if run.epoch < recipe.train.epochs:
        s = recipe.train
        with progress_factory() as bar:
            task = bar.add_task(f"{LABELS[(s.method, s.loss)]} seed {s.seed}", total=None)
            train(run, path, progress=lambda done, total: bar.update(task, completed=done, total=total))
        console.print(f"trained {path}")
    else:
        console.print(f"reused {path} (complete)")
    return path


def run_demo(model: str, seeds: int, epochs: int | None, losses: list[str], output: Path,
             console, out, progress_factory) -> dict:
    if seeds < 1:
        raise UserError(f"--seeds must be >= 1, got {seeds}")
    base = load_recipe(model)
    test = load_split(base.dataset, "test", base.input_shape)
    T = base.train.latency
    curves: dict[str, list] = {}
    for loss in losses:
        for method in ("slt", "fixed"):
            label = LABELS.get((method, loss))
            if label is None:
                raise UserError(f"unknown loss '{loss}': choose tet or sdt")
            lam = base.train.lam if loss == "tet" else 0.0
            runs = []
            for seed in range(seeds):
                recipe = with_settings(base, method=method, loss=loss, lam=lam, seed=seed, epochs=epochs)
                path = _trained_checkpoint(recipe, output / f"{model}-{method}-{loss}-s{seed}.pt", console, progress_factory)
                network = model_from_checkpoint(load_checkpoint(path), str(path))
                runs.append(latency_profile(network, test, T, recipe.encoding).accuracy)
            curves[label] = runs
    mean = {label: np.mean(runs, axis=0) for label, runs in curves.items()}
    std = {label: np.std(runs, axis=0) for label, runs in curves.items()}

    header = ["t"]
    for loss in losses:
        slt, fixed = LABELS[("slt", loss)], LABELS[("fixed", loss)]
        header += [f"{slt} %", f"{fixed} %", "diff"]
    rows = []
    for t in range(T):
        row = [t + 1]
        for loss in losses:
            slt, fixed = mean[LABELS[("slt", loss)]][t], mean[LABELS[("fixed", loss)]][t]
            row += [f"{100 * slt:.2f}", f"{100 * fixed:.2f}", f"{100 * (slt - fixed):+.2f}"]
        rows.append(row)
    title = (f"{model}: test accuracy per latency, mean of {seeds} seed(s), "
             f"{base.dataset}/{base.encoding}, T={T}, n={len(test)}")
    out.print(rich_table(header, rows, title))

    summary = {
        "model": model,
        "dataset": base.dataset,
        "encoding": base.encoding,
        "latency_T": T,
        "seeds": seeds,
        "test_samples": len(test),
        "accuracy_per_seed": {label: [list(map(float, r)) for r in runs] for label, runs in curves.items()},
        "accuracy_mean": {label: list(map(float, m)) for label, m in mean.items()},
        "accuracy_std": {label: list(map(float, s)) for label, s in std.items()},
    }
    write_json(output / "summary.json", summary)
    write_text(output / "summary.md", f"# {title}\n\n" + markdown_table(header, rows))
    plot_accuracy_per_latency(mean, output / "summary.png", title=f"{model}, {seeds} seed(s)", spreads=std)
    console.print(f"wrote {output / 'summary.json'}, {output / 'summary.md'}, {output / 'summary.png'}")
    return summary


def deploy_stage(model: str, output: Path, console, out, progress_factory) -> dict:
    """The rest of the pipeline on the seed-0 SLT-TET and TET models: NIR
    export, Lava float against PyTorch, Lava fixed point, energy profiles
    (77 fJ/SOP) with noise, a side-by-side report, and the runtime controller
    judged against the profile hull and the per-input oracle."""
    hardware = load_hardware("qiao2015")
    noises = [parse_noise(text) for text in ("gaussian:0.2", "dropout:0.3", "jitter:1")]
    summary: dict = {"graphs": {}}
    profiles = {}
    for label, method in (("SLT-TET", "slt"), ("TET", "fixed")):
        checkpoint = output / f"{model}-{method}-tet-s0.pt"
        network = model_from_checkpoint(load_checkpoint(checkpoint), str(checkpoint))
        test = load_split(network.recipe.dataset, "test", network.recipe.input_shape)
        accuracy = latency_profile(network, test, network.recipe.train.latency, network.recipe.encoding,
                                   method, "tet").to_dict()
        graph = export_model(network, profile=accuracy)
        x, labels, dataset, encoding = graph_stream(graph, network.recipe.dataset, "test")
        with progress_factory() as bar:
            bar.add_task(f"{label}: energy profile", total=None)
            profile = profile_model(graph, x, labels, hardware, noisy_inputs=noisy_streams(dataset, x, encoding, noises))
        store_in_graph(graph, profile)
        path = write_graph(graph, output / f"{label}.nir")
        profiles[label] = profile
        summary["graphs"][label] = str(path)
        if label != "SLT-TET":
            continue
        # Lava float against PyTorch: spikes and outputs, mixed latencies per sample
        latencies = np.resize([8, 1, 3, 6, 2, 5, 4, 7], 48)
        with progress_factory() as bar:
            bar.add_task("Lava float vs PyTorch (48 samples)", total=None)
            lava = simulate(graph, "lava-float", x[:48], latencies=latencies, record_spikes=True)
            reference = simulate(graph, "torch", x[:48], latencies=latencies, record_spikes=True)
        same_spikes = all(np.array_equal(lava.spikes[k], reference.spikes[k]) for k in lava.spikes)
        difference = float(np.abs(lava.outputs - reference.outputs).max())
        sop_lava = count_operations(lava.plan, x[:48], lava.spikes, latencies).total("sop")
        sop_torch = count_operations(lava.plan, x[:48], reference.spikes, latencies).total("sop")
        with progress_factory() as bar:
            bar.add_task("Lava fixed point (test split)", total=None)
            fixed = simulate(graph, "lava-fixed", x, capacity=60)
        full = np.full(len(labels), x.shape[1])
        summary["lava"] = {
            "float_identical_spikes": same_spikes, "float_max_output_difference": difference,
            "float_sop_equal_to_pytorch": bool(np.array_equal(sop_lava, sop_torch)),
            "fixed_accuracy": float((predictions(fixed.outputs, full) == labels).mean()),
            "float_accuracy": float(profile["accuracy"][-1]),
        }
        out.print(f"Lava float vs PyTorch on 48 samples with latencies 1..8: identical spikes in every layer: "
                  f"{same_spikes}; max |output difference| {difference:.1e}; SOP counts equal: "
                  f"{summary['lava']['float_sop_equal_to_pytorch']}")
        out.print(f"Lava fixed point (8-bit weights, 24-bit state): accuracy {100 * summary['lava']['fixed_accuracy']:.2f} % "
                  f"vs float {100 * summary['lava']['float_accuracy']:.2f} % at T")
    energy_report(profiles, output / "report")
    for label, p in profiles.items():
        out.print(f"{label}: accuracy {100 * p['accuracy'][0]:.2f} % / {100 * p['accuracy'][-1]:.2f} % at t = 1 / T, "
                  f"{p['energy_mj']['mean'][0]:.2e} / {p['energy_mj']['mean'][-1]:.2e} mJ per inference (77 fJ/SOP)")
    with progress_factory() as bar:
        bar.add_task("runtime controller: policies vs hull and oracle", total=None)

        result = judge(read_graph(output / "SLT-TET.nir"), output / "control")
    middle = result["rows"][len(result["rows"]) // 2]
    anytime = middle["policies"]["anytime-entropy"]
    out.print(f"controller at {middle['budget_per_inference_mj']:.2e} mJ per inference: best fixed t = "
              f"{middle['best_fixed']['latency']} {100 * middle['best_fixed']['accuracy']:.2f} %, adaptive "
              f"{100 * middle['policies']['adaptive']['accuracy_over_horizon']:.2f} %, anytime "
              f"{100 * anytime['accuracy_over_horizon']:.2f} %, oracle bound {100 * middle['oracle']['lp_accuracy']:.2f} %; "
              f"violations {sum(p['violations'] for row in result['rows'] for p in row['policies'].values())}")
    summary["controller"] = str(output / "control" / "evaluation.md")
    console.print(f"wrote {output}/report/ and {output}/control/")
    return summary


@app.command()
def demo(
    model: str = typer.Option("digits-mlp", help="Recipe to compare SLT and fixed-latency training on."),
    seeds: int = typer.Option(3, help="Seeds per configuration (results are averaged)."),
    epochs: Optional[int] = typer.Option(None, help="Epochs (default: the recipe's)."),
    losses: str = typer.Option("tet,sdt", help="Comma-separated losses to compare."),
    output: Path = typer.Option(Path("runs/demo"), "--output", "-o", help="Folder for checkpoints and reports."),
):
    """The main job: SLT vs fixed-latency training on rate-encoded digits, then NIR, Lava, energy and the controller."""
    if safe_name(model) != model:  # the demo names its checkpoints after --model, inside --output
        raise UserError(f"demo --model takes a recipe name (models/<name>.toml, or <name>.toml in this folder), "
                        f"not a path: '{model}'")
    check_output_folder(output, "demo folder")
    chosen = [s.strip() for s in losses.split(",") if s.strip()]
    run_demo(model, seeds, epochs, chosen, output, console, out, _progress)
    if "tet" in chosen:
        deploy_stage(model, output, console, out, _progress)
