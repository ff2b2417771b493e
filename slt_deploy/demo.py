"""The main job (``make demo``): SLT against fixed-latency training.

For each loss (TET, SDT) and seed, the same recipe is trained twice -- with
SLT (t ~ U{1..T} per batch) and with the fixed maximum latency T -- and both
are evaluated at every latency t = 1..T on the test split. The accuracies,
averaged over seeds, are printed side by side and written to
``<output>/summary.{json,md,png}``. Checkpoints that are already complete
with the same settings are reused; interrupted ones are resumed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .checkpoint import load_checkpoint, model_from_checkpoint
from .data import load_split
from .errors import UserError
from .evaluation import latency_profile
from .files import write_json, write_text
from .report import markdown_table, plot_accuracy_per_latency, rich_table
from .training import new_run, resume_run, train, with_settings
from .zoo import load_recipe

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
