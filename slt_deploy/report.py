"""Reports: terminal tables, Markdown and PNG plots. Written atomically.

Plots use matplotlib's non-interactive Agg backend (no screen needed)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from rich.table import Table

from .core.errors import UserError
from .core.files import atomic_path, write_json, write_text
from .core.parallel import is_main_process
from .energy.profile import graph_stream, Noise, noisy_streams
from .runtime.controller import (
    batch_traces, Budget, Controller, EnergyProfile, make_policy, MEASURES, PrecomputedEngine, run_mission)
from .runtime.evaluation import calibrate, sweep


def _pyplot():
    import matplotlib  # matplotlib only when plotting

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # (after the headless backend is chosen)

    return plt


def _label_axes(ax, xlabel: str, ylabel: str, title: str, legend_size=None) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_size)


def save_figure(fig, path: str | os.PathLike) -> Path:
    plt = _pyplot()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def plot_accuracy_per_latency(
    curves: dict[str, Sequence[float]], path: str | os.PathLike, title: str = "", spreads: dict | None = None
) -> Path:
    """Accuracy (%) against latency (time steps), one line per labelled curve;
    ``spreads`` (same keys) draws +-1 standard deviation bands."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, accuracy in curves.items():
        values = 100 * np.asarray(accuracy, dtype=float)
        latency = np.arange(1, len(values) + 1)
        ax.plot(latency, values, marker="o", label=label)
        if spreads and label in spreads:
            spread = 100 * np.asarray(spreads[label], dtype=float)
            ax.fill_between(latency, values - spread, values + spread, alpha=0.2)
    _label_axes(ax, "latency t (time steps)", "accuracy (%)", title)
    return save_figure(fig, path)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def rich_table(header: Sequence[str], rows: Sequence[Sequence[object]], title: str = ""):
    table = Table(title=title or None)
    for name in header:
        table.add_column(str(name), justify="right")
    for row in rows:
        table.add_row(*map(str, row))
    return table


def pareto_front(energy: Sequence[float], accuracy: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats (lower energy and higher accuracy)."""
    order = sorted(range(len(energy)), key=lambda i: (energy[i], -accuracy[i]))
    front, best = [], -np.inf
    for i in order:
        if accuracy[i] > best:
            front.append(i)
            best = accuracy[i]
    return front


MAX_VALUE = 1e30  # larger counts or energies are not measurements (and overflow the plots)
HARDWARE_TEXT = ("name", "description", "source", "process_node", "precision", "evidence", "notes")
HARDWARE_TERMS = ("sop_pj", "mac_pj", "neuron_update_pj")


def _number(value, upper: float = MAX_VALUE) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and 0 <= value <= upper  # not NaN


def check_profile(data, source) -> dict:
    """``data`` if it is a profile as `slt-deploy profile` writes it: the keys a
    report and the runtime controller read, with the right types and lengths
    (plain JSON data only). Anything else is a one-line error naming ``source``."""

    def fail(problem: str):
        raise UserError(f"{source} is not a profile written by `slt-deploy profile`: {problem}")

    if not isinstance(data, dict):
        fail("not a JSON object")
    for key in ("model", "method", "loss", "backend", "counting"):
        if not isinstance(data.get(key), str):
            fail(f"'{key}' must be a string")
    if not isinstance(data.get("samples"), int) or isinstance(data["samples"], bool) or data["samples"] < 1:
        fail("'samples' must be a positive integer")
    latency = data.get("latency")
    if not isinstance(latency, list) or not latency or latency != list(range(1, len(latency) + 1)):
        fail("'latency' must list the latencies 1..T")

    def series(value, name: str, upper: float = MAX_VALUE):
        if not isinstance(value, list) or len(value) != len(latency) or not all(_number(v, upper) for v in value):
            fail(f"'{name}' must be {len(latency)} numbers in [0, {upper:g}]")

    series(data.get("accuracy"), "accuracy", 1.0)
    for key in ("energy_mj", "sop"):
        if not isinstance(data.get(key), dict):
            fail(f"'{key}' must be an object with 'mean' and 'std'")
        for stat in ("mean", "std"):
            series(data[key].get(stat), f"{key}.{stat}")
    worst = data.get("worst_case_step")
    if not isinstance(worst, dict) or not _number(worst.get("energy_mj")):
        fail("'worst_case_step' must hold the energy_mj of one step")
    if not isinstance(data.get("mac_once", True), bool):
        fail("'mac_once' must be true or false")
    hardware = data.get("hardware")
    if not isinstance(hardware, dict) or set(hardware) - {*HARDWARE_TEXT, *HARDWARE_TERMS, "terms"}:
        fail("'hardware' must be a hardware profile")
    if not all(isinstance(hardware.get(key), str) for key in HARDWARE_TEXT):
        fail(f"'hardware' needs the strings {', '.join(HARDWARE_TEXT)}")
    if not all(hardware.get(key) is None or _number(hardware[key]) for key in HARDWARE_TERMS):
        fail(f"'hardware' energies ({', '.join(HARDWARE_TERMS)}) must be non-negative numbers or null")
    terms = hardware.get("terms", {})
    if not isinstance(terms, dict) or not all(isinstance(v, str) for v in terms.values()):
        fail("'hardware.terms' must map energy terms to their sources")
    layers = data.get("layers")
    if (not isinstance(layers, list) or not layers or not all(
            isinstance(layer, dict) and isinstance(layer.get("name"), str) and _number(layer.get("ops_mean_at_T"))
            for layer in layers)):
        fail("'layers' must list the synaptic layers (name, ops_mean_at_T)")
    noise = data.get("noise")
    if not isinstance(noise, dict):
        fail("'noise' must map each noise to its accuracy")
    for label, values in noise.items():
        if not isinstance(values, dict):
            fail(f"noise '{label}' must hold its accuracy")
        series(values.get("accuracy"), f"noise.{label}.accuracy", 1.0)
    return data


def energy_report(profiles: dict[str, dict], folder) -> list:
    """Markdown + PNGs comparing per-latency profiles (label -> profile dict).

    Writes energy_vs_latency.png, accuracy_vs_energy.png (with each model's
    Pareto front), sop_per_layer.png, accuracy_under_noise.png (when any
    profile has noise) and report.md into ``folder``; returns the paths."""

    plt = _pyplot()
    folder = Path(folder)
    written = []

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, p in profiles.items():
        mean, std = np.array(p["energy_mj"]["mean"]), np.array(p["energy_mj"]["std"])
        ax.errorbar(p["latency"], mean, yerr=std, marker="o", capsize=3, label=label)
    _label_axes(ax, "latency t (time steps)", "energy per inference (mJ)", "energy vs latency")
    written.append(save_figure(fig, folder / "energy_vs_latency.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, p in profiles.items():
        energy, accuracy = p["energy_mj"]["mean"], [100 * a for a in p["accuracy"]]
        line = ax.plot(energy, accuracy, marker="o", linestyle=":", label=label)[0]
        front = pareto_front(energy, accuracy)
        ax.plot([energy[i] for i in front], [accuracy[i] for i in front], color=line.get_color(), linewidth=2)
        for t, e, a in zip(p["latency"], energy, accuracy):
            ax.annotate(str(t), (e, a), textcoords="offset points", xytext=(3, 3), fontsize=7)
    _label_axes(ax, "energy per inference (mJ)", "accuracy (%)",
                "accuracy vs energy (labels: latency t; solid: Pareto front)")
    written.append(save_figure(fig, folder / "accuracy_vs_energy.png"))

    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(1, len(profiles))
    for k, (label, p) in enumerate(profiles.items()):
        names = [layer["name"] for layer in p["layers"]]
        values = [layer["ops_mean_at_T"] for layer in p["layers"]]
        ax.bar(np.arange(len(names)) + k * width, values, width, label=label)
    names = [layer["name"] for layer in next(iter(profiles.values()))["layers"]]
    ax.set_xticks(np.arange(len(names)) + width * (len(profiles) - 1) / 2, names, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("operations per inference at T")
    ax.set_title("SOP (MAC for an analog input layer) per layer")
    ax.legend()
    written.append(save_figure(fig, folder / "sop_per_layer.png"))

    if any(p["noise"] for p in profiles.values()):
        fig, ax = plt.subplots(figsize=(6, 4))
        for label, p in profiles.items():
            ax.plot(p["latency"], [100 * a for a in p["accuracy"]], marker="o", label=f"{label} (clean)")
            for noise, values in p["noise"].items():
                ax.plot(p["latency"], [100 * a for a in values["accuracy"]], marker=".", linestyle="--",
                        label=f"{label} {noise}")
        _label_axes(ax, "latency t (time steps)", "accuracy (%)", "accuracy under input noise", legend_size=7)
        written.append(save_figure(fig, folder / "accuracy_under_noise.png"))

    header = ["t"]
    for label in profiles:
        header += [f"{label} acc %", f"{label} SOP", f"{label} mJ"]
    first = next(iter(profiles.values()))
    rows = []
    for i, t in enumerate(first["latency"]):
        row = [t]
        for p in profiles.values():
            if i < len(p["latency"]):
                row += [f"{100 * p['accuracy'][i]:.2f}", f"{p['sop']['mean'][i]:,.0f}", f"{p['energy_mj']['mean'][i]:.3e}"]
            else:
                row += ["", "", ""]
        rows.append(row)
    lines = ["# Energy report", ""]
    for label, p in profiles.items():
        hw = p["hardware"]
        lines.append(f"- **{label}**: model {p['model']} ({p['method']} {p['loss']}), {p['samples']} samples, "
                     f"backend {p['backend']}; hardware {hw['name']} ({hw['evidence']}, {hw['process_node']}): "
                     f"{hw['source']}. Counting: {p['counting']}.")
    lines += ["", markdown_table(header, rows)]
    if len(profiles) == 2:
        (a_label, a), (b_label, b) = profiles.items()
        target = b["accuracy"][-1]
        reach = [i for i, acc in enumerate(a["accuracy"]) if acc >= target]
        if reach and b["energy_mj"]["mean"][-1] > 0:  # (a hardware profile may price operations at 0)
            i = reach[0]
            lines.append(
                f"{a_label} reaches {b_label}'s accuracy at T ({100 * target:.2f} %) at t = {a['latency'][i]} with "
                f"{a['energy_mj']['mean'][i]:.3e} mJ, {100 * a['energy_mj']['mean'][i] / b['energy_mj']['mean'][-1]:.0f} % "
                f"of {b_label}'s energy at T ({b['energy_mj']['mean'][-1]:.3e} mJ).\n")
    for name in ("energy_vs_latency", "accuracy_vs_energy", "sop_per_layer", "accuracy_under_noise"):
        if (folder / f"{name}.png") in written:
            lines.append(f"![{name}]({name}.png)\n")
    written.append(write_text(folder / "report.md", "\n".join(lines)))
    return written


def mission_timeline(decisions: list[dict], labels, battery_mj: float | None, path, title: str = "", window: int = 20):
    """One mission: latency chosen, energy left (mJ) and rolling accuracy per inference."""
    plt = _pyplot()
    index = [d["index"] for d in decisions]
    fig, axes = plt.subplots(3, 1, figsize=(7, 6), sharex=True)
    axes[0].plot(index, [d["latency"] for d in decisions], ".", markersize=3)
    axes[0].set_ylabel("latency t")
    left = [d["remaining_mj"] for d in decisions] if battery_mj else np.cumsum([d["energy_mj"] for d in decisions])
    axes[1].plot(index, left)
    axes[1].set_ylabel("energy left (mJ)" if battery_mj else "energy spent (mJ)")
    correct = np.array([d["prediction"] == labels[d["index"]] for d in decisions], dtype=float)
    rolling = np.convolve(correct, np.ones(window) / window, mode="valid") if len(correct) >= window else correct
    axes[2].plot(index[len(index) - len(rolling):], 100 * rolling)
    axes[2].set_ylabel(f"accuracy % (last {window})")
    axes[2].set_xlabel("inference")
    axes[0].set_title(title)
    for ax in axes:
        ax.grid(alpha=0.3)
    return save_figure(fig, path)


def controller_evaluation_plot(result: dict, path):
    """Accuracy against mean energy per inference: profile hull, per-input
    oracle, and every policy at every budget."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    stream = result["stream"]
    energy = np.array(stream["energy_mj"])
    ax.plot(energy, 100 * np.array(stream["accuracy"]), "k:", marker="x", label="fixed t (profile)")
    rows = result["rows"]
    budgets = [row["budget_per_inference_mj"] for row in rows]
    ax.plot(budgets, [100 * row["oracle"]["lp_accuracy"] for row in rows], "k--", label="per-input oracle (bound)")
    for name in rows[0]["policies"]:
        ax.plot([row["policies"][name]["mean_energy_mj"] for row in rows],
                [100 * row["policies"][name]["accuracy_over_horizon"] for row in rows], marker="o", label=name)
    _label_axes(ax, "mean energy per inference (mJ)", "accuracy (%)",
                "runtime controller: accuracy vs energy on the test stream", legend_size=7)
    return save_figure(fig, path)


def controller_table(result: dict, only: list[str] | None = None) -> tuple[list[str], list[list[str]]]:
    """The evaluation as a table; ``only`` limits the policy columns."""
    names = [n for n in result["rows"][0]["policies"] if only is None or n in only]
    header = ["budget mJ/inf", "best fixed t (acc %)", "oracle %"]
    for name in names:
        header += [f"{name} acc %", f"{name} use %", f"{name} / hull"]
    header += ["gap closed", "entropy thr. %", "margin thr. %", "violations"]
    rows = []
    for row in result["rows"]:
        line = [f"{row['budget_per_inference_mj']:.3e}",
                f"{row['best_fixed']['latency']} ({100 * row['best_fixed']['accuracy']:.2f})",
                f"{100 * row['oracle']['lp_accuracy']:.2f}"]
        anytime = None
        for name in names:
            p = row["policies"][name]
            line += [f"{100 * p['accuracy_over_horizon']:.2f}", f"{100 * p['utilisation']:.1f}", f"{p['of_hull']:.3f}"]
            if name.startswith("anytime") and anytime is None:
                anytime = p
        line += [f"{anytime['gap_closed']:.2f}" if anytime else "",
                 f"{100 * anytime['baselines']['entropy']['accuracy']:.2f}" if anytime else "",
                 f"{100 * anytime['baselines']['margin']['accuracy']:.2f}" if anytime else "",
                 str(sum(p["violations"] for p in row["policies"].values()))]
        rows.append(line)
    return header, rows


# --------------------------------------------------------------------------- controller evaluation


def judge(graph, output, data: str = "digits", split: str = "test", samples: int | None = None,
          budgets: int = 8, measure: str = "entropy", backend: str = "lava-fused", nproc: int = 1,
          noise: Noise | None = None, drift: bool = False, reserve: str = "exact") -> dict:
    """Every policy under budgets from E(t=1) to E(t=T) on the stream, from
    one run of ``backend`` over it (every sample's outputs and energy at
    every step; samples sharded over ``nproc`` processes or a torchrun
    job's ranks). The policies know only the calibration split (clean). The
    stream is the split under ``noise``, or with ``drift`` clean -> noisy ->
    clean (its middle third under ``noise``). Writes evaluation.{json,md,png}
    and a mission timeline (the anytime policy at the middle budget) into
    ``output`` -- on rank 0 only under torchrun."""
    output = Path(output)
    stored = EnergyProfile.from_graph(graph)
    calibration = calibrate(graph, stored, *graph_stream(graph, data, "calibration")[:2], backend, nproc)
    x, labels = stream_of(graph, data, split, samples, noise, drift)
    traces = batch_traces(graph, stored, x, backend, nproc=nproc)
    result = sweep(calibration, traces, labels, budgets=max(2, budgets), measures=MEASURES, reserve=reserve)
    result["stream"]["description"] = stream_description(data, split, noise, drift)
    if not is_main_process():
        return result
    header, rows = controller_table(result)
    write_json(output / "evaluation.json", result)
    write_text(output / "evaluation.md", "# Runtime controller evaluation\n\n" + markdown_table(header, rows))
    controller_evaluation_plot(result, output / "evaluation.png")
    middle = result["rows"][len(result["rows"]) // 2]
    budget = Budget(battery_mj=middle["battery_mj"], inferences=len(x))
    policy = make_policy("anytime", calibration.profile, measure=measure, calibration=calibration.thresholds[measure])
    controller = Controller(PrecomputedEngine(traces), calibration.profile, budget, policy, reserve=reserve)
    mission = run_mission(controller, range(len(x)))
    mission_timeline([d.to_dict() for d in mission.decisions], labels, budget.battery_mj, output / "timeline.png",
                     f"anytime ({measure}), {middle['budget_per_inference_mj']:.2e} mJ per inference")
    return result


def stream_of(graph, data: str, split: str, samples: int | None, noise: Noise | None, drift: bool):
    """The stream a controller is judged on: (inputs [N, T, ...], labels [N])
    of the split, under ``noise``, or with ``drift`` only its middle third."""
    x, labels, dataset, encoding = graph_stream(graph, data, split, samples)
    if noise is None:
        if drift:
            raise UserError("--drift needs a --noise for the middle of the stream (e.g. gaussian:0.3)")
        return x, labels
    noisy = noisy_streams(dataset, x, encoding, [noise])[noise.label]
    if not drift:
        return noisy, labels
    third = len(x) // 3
    drifted = x.copy()
    drifted[third: len(x) - third] = noisy[third: len(x) - third]
    return drifted, labels


def stream_description(data: str, split: str, noise: Noise | None, drift: bool) -> str:
    if noise is None:
        return f"{data} {split}"
    return f"{data} {split}, clean -> {noise.label} -> clean" if drift else f"{data} {split} under {noise.label}"
