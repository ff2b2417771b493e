"""The ``control`` command: inferences on an energy budget, or the evaluation of the policies."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from ..core.errors import UserError
from ..core.files import check_output_folder, write_json
from ..core.parallel import check_processes, is_main_process
from ..energy.profile import graph_stream
from ..ir.nirfile import metadata_json, read_graph
from ..energy.profile import parse_noise
from ..report import check_profile, controller_table, judge, markdown_table, mission_timeline, rich_table
from ..runtime.controller import (
    Budget, check_budget, Controller, EnergyProfile, LavaEngine, make_policy, MEASURES, POLICIES, RESERVES,
    run_mission, TorchEngine)
from ..runtime.evaluation import calibrate
from ..simulation import FUSED_BACKENDS, PER_LAYER_TWIN, fused_twin
from .app import _progress, app, console, out

MAX_INFERENCES = 10_000_000
"""Longest mission of ``control`` (its input stream is held in memory)."""

MAX_BUDGET_LEVELS = 100
"""Most budget levels of ``control --evaluate`` (each runs every policy over the stream)."""


CONTROL_BACKENDS = ("lava-fused", "lava-fused-fixed", "lava-float", "lava-fixed", "torch")
"""What the controller runs on; calibration and --evaluate use a per-layer backend's fused twin (bit-identical)."""


@app.command()
def control(
    model: Path = typer.Argument(..., help="NIR graph with an energy profile (run `slt-deploy profile` first)."),
    policy: str = typer.Option("adaptive", help="fixed | static | adaptive | anytime."),
    battery_mj: Optional[float] = typer.Option(None, help="Total battery for the mission (mJ)."),
    inferences: Optional[int] = typer.Option(None, help="Horizon: number of inferences the battery must last."),
    duration_s: Optional[float] = typer.Option(None, help="Horizon as a duration (s), with --rate-hz."),
    rate_hz: Optional[float] = typer.Option(None, help="Inferences per second (with --duration-s or --power-mw)."),
    per_inference_mj: Optional[float] = typer.Option(None, help="Hard cap per inference (mJ)."),
    power_mw: Optional[float] = typer.Option(None, help="Power cap (mW) at --rate-hz: a cap of power/rate per inference."),
    scenario: Optional[Path] = typer.Option(None, help="Scenario TOML ([budget], optional [policy]); see hardware/*.scenario.toml."),
    latency: Optional[int] = typer.Option(None, "--latency", "-t", help="Latency of the fixed policy (default T)."),
    measure: str = typer.Option("entropy", help="anytime: entropy | max_softmax | margin."),
    backend: str = typer.Option("lava-fused", help="lava-fused (the fused Lava CPU model, default) | lava-fused-fixed "
                                                   "(its bit-accurate twin) | lava-float | lava-fixed (the per-layer "
                                                   "Lava graph) | torch (what-if studies)."),
    data: str = typer.Option("digits", help="Dataset of the stream; thresholds use its calibration split."),
    split: str = typer.Option("test", help="Split that forms the stream."),
    samples: Optional[int] = typer.Option(None, help="Use only the first N samples of the stream."),
    evaluate: bool = typer.Option(False, help="Judge every policy under budgets from E(t=1) to E(t=T)."),
    budgets: int = typer.Option(8, help="Number of budget levels for --evaluate."),
    output: Path = typer.Option(Path("runs/control"), "--output", "-o", help="Folder for the JSON, tables and PNGs."),
    noise: Optional[str] = typer.Option(None, help="--evaluate: judge on the stream under this noise "
                                                   "(gaussian:S, dropout:P, jitter:K, burst:K); calibration stays clean."),
    drift: bool = typer.Option(False, help="--evaluate: only the middle third of the stream under --noise "
                                           "(clean -> noisy -> clean)."),
    reserve: str = typer.Option("exact", help="Price a step must fit before it runs: exact (its own energy, "
                                              "known to the simulator) | bound (input as it is + every hidden "
                                              "neuron firing: what a chip can guarantee without looking ahead)."),
    nproc: int = typer.Option(1, help="Local processes that share the samples of --evaluate and of the "
                                      "calibration (under torchrun, leave 1); results equal one process's."),
):
    """Run inferences on an energy budget, choosing each one's latency (or judge the policies)."""
    check_processes(nproc)
    if backend not in CONTROL_BACKENDS:
        raise UserError(f"unknown backend '{backend}': choose {', '.join(CONTROL_BACKENDS)}")
    if measure not in MEASURES:
        raise UserError(f"unknown confidence measure '{measure}': choose one of {', '.join(MEASURES)}")
    if reserve not in RESERVES:
        raise UserError(f"unknown reserve '{reserve}': choose {' or '.join(RESERVES)}")
    if evaluate and not 2 <= budgets <= MAX_BUDGET_LEVELS:
        raise UserError(f"--budgets must lie in 2..{MAX_BUDGET_LEVELS} (levels from E(t=1) to E(t=T)), got {budgets}")
    if (noise is not None or drift) and not evaluate:
        raise UserError("--noise and --drift shape the stream of --evaluate")
    if drift and noise is None:
        raise UserError("--drift needs a --noise for the middle of the stream (e.g. gaussian:0.3)")
    stream_noise = None if noise is None else parse_noise(noise)
    check_output_folder(output, "control folder")
    graph = read_graph(model)
    stored = metadata_json(graph, "energy_profile_json")
    if stored is not None:
        check_profile(stored, f"the energy profile in {model}")
    stored = EnergyProfile.from_graph(graph)
    if evaluate:
        with _progress() as bar:
            task = bar.add_task("judging policies", total=None)
            result = judge(graph, output, data, split, samples, budgets, measure, fused_twin(backend), nproc,
                           stream_noise, drift, reserve)
            bar.update(task, completed=1, total=1)
        if not is_main_process():  # a torchrun rank other than 0
            return
        header, rows = controller_table(result, ["adaptive", f"anytime-{measure}"])
        out.print(f"{result['stream']['samples']} inferences of {result['stream']['description']}, "
                  f"battery = inferences x budget, reserve {reserve}\n", markup=False, highlight=False)
        out.print(markdown_table(header, rows), markup=False, highlight=False, soft_wrap=True)  # never cut a cell
        console.print(f"wrote {output}/evaluation.json, evaluation.md, evaluation.png, timeline.png")
        return

    scenario_policy = {}
    if scenario is not None:
        budget, scenario_policy = Budget.from_scenario(scenario)
    else:
        if duration_s is not None and rate_hz is not None and not math.isfinite(duration_s * rate_hz):
            raise UserError("--duration-s x --rate-hz is too large a number of inferences")
        budget = Budget.from_options(battery_mj, inferences, duration_s, rate_hz, per_inference_mj, power_mw)
    if budget.inferences is not None and budget.inferences > MAX_INFERENCES:
        raise UserError(f"a mission of {budget.inferences} inferences is too long: at most {MAX_INFERENCES:,} per run")
    name = scenario_policy.get("name", policy)
    measure = scenario_policy.get("measure", measure)
    if name not in POLICIES:
        raise UserError(f"unknown policy '{name}': choose one of {', '.join(POLICIES)}")
    if measure not in MEASURES:
        raise UserError(f"unknown confidence measure '{measure}': choose one of {', '.join(MEASURES)}")
    check_budget(stored, budget)  # before anything runs
    profile, thresholds = stored, None
    if name != "fixed":  # what a policy knows comes from the held-out calibration split
        calibration = calibrate(graph, stored, *graph_stream(graph, data, "calibration")[:2], fused_twin(backend), nproc)
        profile, thresholds = calibration.profile, calibration.thresholds[measure]
    chosen = make_policy(name, profile, latency=scenario_policy.get("latency", latency), measure=measure,
                         calibration=thresholds)
    x, labels = graph_stream(graph, data, split, samples)[:2]
    horizon = budget.inferences or len(x)
    stream = [x[k % len(x)] for k in range(horizon)]
    stream_labels = np.array([labels[k % len(x)] for k in range(horizon)])
    if backend == "torch":
        controller = Controller(TorchEngine(graph, profile), profile, budget, chosen, reserve)
        mission = _run_with_progress(controller, stream, run_mission)
    else:
        if backend in FUSED_BACKENDS:
            console.print(f"backend: {backend} -- the deployed network as one Lava process, bit-identical to the "
                          f"per-layer Lava graph (--backend {PER_LAYER_TWIN[backend]}); SOP from its live counters")
        with LavaEngine(graph, profile, mode=backend.removeprefix("lava-")) as lava_engine:
            controller = Controller(lava_engine, profile, budget, chosen, reserve)
            mission = _run_with_progress(controller, stream, run_mission)
    summary = mission.summary(stream_labels)
    rows = [(k, f"{v:.4g}" if isinstance(v, float) else str(v)) for k, v in summary.items() if k != "policy"]
    out.print(rich_table(("", "value"), rows, f"{name} policy on {backend}, {horizon} inferences"))
    if mission.battery_spent:
        console.print(f"battery spent: {mission.battery_spent}")
    decisions = [d.to_dict() for d in mission.decisions]
    write_json(output / "mission.json", {"summary": summary, "budget": budget.__dict__, "decisions": decisions})
    mission_timeline(decisions, stream_labels, budget.battery_mj, output / "timeline.png", f"{name} policy")
    console.print(f"wrote {output}/mission.json and timeline.png")


def _run_with_progress(controller, stream, run_mission):
    with _progress() as bar:
        task = bar.add_task("mission", total=len(stream))

        def samples():
            for k, sample in enumerate(stream):
                bar.update(task, completed=k)
                yield sample

        return run_mission(controller, samples())


