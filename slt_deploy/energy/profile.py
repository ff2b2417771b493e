"""Profile of a deployed model per latency: accuracy, SOP, MAC, energy and
firing rates for every t = 1..T, from one forward pass at T (the network is
causal: steps 1..t of a T-step pass are a t-step pass), optionally with
accuracy under input noise -- the four-way tradeoff of accuracy, energy,
latency and robustness.

The profile is a plain dict (JSON); :func:`store_in_graph` writes it into the
NIR metadata as ``energy_profile_json``, where the runtime controller reads it.

Noise (applied to the evaluation inputs, seeded):

* ``gaussian:sigma`` -- Gaussian pixel noise on static images before
  encoding (values clipped to [0, 1]);
* ``dropout:p`` -- each input spike or event is dropped with probability p;
* ``jitter:k`` -- each input spike moves to a random step within +-k steps
  (spikes landing on the same step merge; none leave the window);
* ``burst:k`` -- every event arrives as a burst of k events at its own
  step (a pixel that fires repeatedly): k times the event counts, several
  events per pixel and step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch

from ..core.errors import UserError
from ..data.splits import encode, EVAL_SEED, evaluation_inputs, load_split
from ..deploy.plan import DeployPlan
from ..ir.graph import analyse
from ..ir.nirfile import metadata_json
from ..readout import accuracy_per_latency
from ..simulation import deployment_plan, FLOAT_TWIN, simulate
from .counts import count_stream, OperationCounts
from .hardware import Hardware

NOISE_KINDS = ("gaussian", "dropout", "jitter", "burst")
NOISE_SEED = 7


@dataclass(frozen=True)
class Noise:
    kind: str
    strength: float

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.strength:g}"


def parse_noise(text: str) -> Noise:
    kind, _, value = text.partition(":")
    if kind not in NOISE_KINDS:
        raise UserError(f"unknown noise '{kind}': choose one of {', '.join(NOISE_KINDS)} (as kind:strength)")
    try:
        strength = float(value)
    except ValueError:
        raise UserError(f"noise '{text}' needs a number after ':' (e.g. gaussian:0.1)") from None
    if not np.isfinite(strength) or strength < 0 or (kind == "dropout" and strength > 1) \
            or (kind == "burst" and (strength < 1 or strength != int(strength))):
        raise UserError(f"noise strength out of range: {text}")
    return Noise(kind, strength)


def noisy_images(images: torch.Tensor, noise: Noise) -> torch.Tensor:
    generator = torch.Generator().manual_seed(NOISE_SEED)
    return (images + noise.strength * torch.randn(images.shape, generator=generator)).clamp(0.0, 1.0)


def noisy_events(frames: np.ndarray, noise: Noise) -> np.ndarray:
    """Dropout, jitter or bursts on encoded input [N, T, ...] (spikes or event counts)."""
    rng = np.random.default_rng(NOISE_SEED)
    if noise.kind == "dropout":
        return rng.binomial(np.rint(frames).astype(np.int64), 1.0 - noise.strength).astype(frames.dtype)
    steps = frames.shape[1]
    if noise.kind == "burst":
        return frames * int(noise.strength)
    shift = int(round(noise.strength))
    out = np.zeros_like(frames)
    flat_in = frames.reshape(frames.shape[0], steps, -1)
    flat_out = out.reshape(frames.shape[0], steps, -1)
    samples, times, units = np.nonzero(flat_in)
    moved = np.clip(times + rng.integers(-shift, shift + 1, size=times.shape), 0, steps - 1)
    np.maximum.at(flat_out, (samples, moved, units), flat_in[samples, times, units])
    return out


def graph_stream(graph, data: str, split: str, samples: int | None = None, latency: int | None = None):
    """Evaluation inputs for a deployed graph: (x [N, T, *input shape], labels [N],
    the split, its encoding). T is ``latency``, else the graph's ``latency_T``,
    else the largest latency of the energy profile stored in it (a foreign
    graph profiled with ``--latency``)."""
    meta = graph.metadata or {}
    profiled = metadata_json(graph, "energy_profile_json") or {}
    latencies = profiled.get("latency") if isinstance(profiled, dict) else None
    if not (isinstance(latencies, list) and latencies and all(isinstance(t, int) for t in latencies)):
        latencies = [0]
    T = int(latency or meta.get("latency_T") or max(latencies))
    if T < 1:
        raise UserError("the graph has no latency_T in its metadata: give --latency")
    flat = analyse(graph)
    dataset = load_split(data, split, flat.shapes[flat.input_name], frames=int(meta.get("latency_T") or T))
    encoding = meta.get("encoding") or "rate"
    count = len(dataset) if samples is None else samples
    if count < 1:
        raise UserError(f"--samples must be >= 1, got {samples}")
    x = evaluation_inputs(dataset, T, encoding).transpose(0, 1).numpy()[:count]
    return x, dataset.labels.numpy()[:count], dataset, encoding


def noisy_streams(dataset, x: np.ndarray, encoding: str, noises: list[Noise]) -> dict[str, np.ndarray]:
    """The evaluation inputs under each noise (same samples, same seeds)."""
    noisy = {}
    for noise in noises:
        if noise.kind == "gaussian":
            if encoding == "events":
                raise UserError("gaussian pixel noise applies to static images, not to event data")
            generator = torch.Generator().manual_seed(EVAL_SEED)
            frames = encode(noisy_images(dataset.inputs, noise), x.shape[1], encoding, generator)
            noisy[noise.label] = frames.transpose(0, 1).numpy()[: len(x)]
        else:
            noisy[noise.label] = noisy_events(x, noise)
    return noisy


def worst_case_step(counts: OperationCounts, plan: DeployPlan) -> dict[str, int]:
    """Operations of one step in which every neuron and every input element fires once: a reference
    point of the profile (the controller's reserve, which counts input events as they are, is
    :func:`slt_deploy.runtime.controller.step_bound_mj`)."""
    sop = sum(layer.synapses_effective for layer in counts.layers if layer.kind == "sop")
    mac = 0 if counts.mac_once else sum(layer.synapses_effective for layer in counts.layers if layer.kind == "mac")
    neurons = sum(p.size for p in plan.neuron_populations)
    return {"sop": int(sop), "mac": int(mac), "neuron_updates": int(neurons)}


def profile_model(graph, inputs: np.ndarray, labels: np.ndarray, hardware: Hardware, *,
                  dt: float | None = None, input_kind: str | None = None, backend: str = "torch",
                  mac_once: bool = True, noisy_inputs: dict[str, np.ndarray] | None = None,
                  nproc: int = 1, progress=None) -> dict:
    """The per-latency profile of ``graph`` on encoded ``inputs`` [N, T, *shape],
    its samples split over ``nproc`` processes (or a torchrun job's ranks;
    the profile equals one process's)."""
    plan = deployment_plan(graph, dt, input_kind)
    if not any(p.spiking for p in plan.neuron_populations):
        raise UserError("the model has no spiking layer: there are no synaptic operations to count")
    outputs, counts = count_stream(graph, backend, inputs, dt=dt, input_kind=input_kind, mac_once=mac_once,
                                   nproc=nproc, progress=progress)
    T = inputs.shape[1]
    sop = counts.cumulative("sop")
    sop_structural = counts.cumulative("sop", "structural")
    mac = counts.cumulative("mac")
    updates = np.cumsum(counts.neuron_updates, axis=1)
    energy = hardware.energy_mj(sop, mac, updates)
    worst = worst_case_step(counts, plan)
    firing = firing_rates(counts, plan)
    profile = {
        "model": (graph.metadata or {}).get("model", "nir-graph"),
        "method": (graph.metadata or {}).get("method", ""),
        "loss": (graph.metadata or {}).get("loss", ""),
        "backend": backend,
        "hardware": hardware.to_dict(),
        "samples": int(inputs.shape[0]),
        "input_kind": plan.input_kind,
        "mac_once": mac_once,
        "counting": "effective SOP (nonzero synapses) of every synaptic layer fed by spikes; "
                    + ("analog input layer as MACs, once per inference" if mac_once
                       else "analog input layer as MACs at every step"),
        "latency": list(range(1, T + 1)),
        "accuracy": accuracy_per_latency(outputs, labels).tolist(),
        "sop": {"mean": sop.mean(0).tolist(), "std": sop.std(0).tolist(),
                "structural_mean": sop_structural.mean(0).tolist()},
        "mac": {"mean": mac.mean(0).tolist(), "std": mac.std(0).tolist()},
        "neuron_updates": updates.mean(0).tolist(),
        "energy_mj": {"mean": energy.mean(0).tolist(), "std": energy.std(0).tolist(),
                      "max": energy.max(0).tolist()},
        "worst_case_step": {**worst, "energy_mj": float(hardware.energy_mj(worst["sop"], worst["mac"],
                                                                            worst["neuron_updates"]))},
        "firing_rate": firing,
        "layers": [{
            "name": layer.name, "source": layer.source, "target": layer.target, "kind": layer.kind,
            "synapses_structural": layer.synapses_structural, "synapses_effective": layer.synapses_effective,
            "ops_mean_at_T": float(np.cumsum(layer.effective, axis=1)[:, -1].mean()),
        } for layer in counts.layers],
        "noise": {},
    }
    for label, noisy in (noisy_inputs or {}).items():
        noisy_outputs = count_stream(graph, backend, noisy, dt=plan.dt, input_kind=plan.input_kind, nproc=nproc)[0]
        profile["noise"][label] = {"accuracy": accuracy_per_latency(noisy_outputs, labels).tolist()}
    return profile


def float_twin(backend: str) -> str:
    """The float backend a fixed-point ``backend`` is compared with (``--compare-float``)."""
    if backend not in FLOAT_TWIN:
        raise UserError(f"--compare-float compares a fixed-point backend with its float twin: use --backend "
                        f"{' or '.join(FLOAT_TWIN)} (got {backend})")
    return FLOAT_TWIN[backend]


def firing_rates(counts: OperationCounts, plan: DeployPlan) -> dict[str, list[float]]:
    """Per spiking population: mean spikes per neuron and step of an inference stopped after t, t = 1..T."""
    steps = np.arange(1, counts.neuron_updates.shape[1] + 1)
    return {name: (np.cumsum(rate, axis=1) / steps).mean(0).tolist()
            for name, rate in counts.firing.items() if plan.populations[name].spiking}


DEVIATION_SAMPLES = 8
"""Samples whose float spikes are recorded to measure each layer's quantisation deviation."""


def compare_with_float(graph, inputs: np.ndarray, labels: np.ndarray, profile: dict, *, dt: float | None = None,
                       input_kind: str | None = None, nproc: int = 1,
                       deviation_samples: int = DEVIATION_SAMPLES) -> None:
    """Add to a fixed-point ``profile`` the float network it quantises, run on
    the same samples the same way (``FLOAT_TWIN``: accuracy, SOP and firing
    rates per latency) and how far quantisation moves each layer's input
    (:meth:`~slt_deploy.lava.quantise.QuantisedPlan.input_deviation`, on the
    first ``deviation_samples`` samples, teacher-forced with the float spikes)."""
    from ..lava.quantise import QuantisedPlan  # the fixed-point stage, only when compared

    twin = float_twin(profile["backend"])
    plan = deployment_plan(graph, dt, input_kind)
    outputs, counts = count_stream(graph, twin, inputs, dt=dt, input_kind=input_kind, mac_once=profile["mac_once"],
                                   nproc=nproc)
    profile["float"] = {
        "backend": twin,
        "accuracy": accuracy_per_latency(outputs, labels).tolist(),
        "sop_mean": counts.cumulative("sop").mean(0).tolist(),
        "firing_rate": firing_rates(counts, plan),
    }
    few = inputs[:deviation_samples]
    spikes = simulate(graph, twin, few, dt=dt, input_kind=input_kind, record_spikes=True).spikes
    quantised = QuantisedPlan(plan)
    profile["quantisation"] = {"deviation_samples": int(len(few)),
                               "input_deviation": quantised.input_deviation(few, spikes),
                               "layers": quantised.report()}


def deviation_table(profile: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows: per layer, its quantisation deviation and firing rates at T, fixed and float."""
    header = ["layer", "input deviation max", "mean", "unit", "firing at T (fixed)", "(float)"]
    rows = []
    for name, deviation in profile["quantisation"]["input_deviation"].items():
        fixed, float_ = profile["firing_rate"].get(name), profile["float"]["firing_rate"].get(name)
        rows.append([name, f"{deviation['max']:.3g}", f"{deviation['mean']:.2g}", deviation["unit"],
                     f"{fixed[-1]:.4f}" if fixed else "-", f"{float_[-1]:.4f}" if float_ else "-"])
    return header, rows


def store_in_graph(graph, profile: dict) -> None:
    graph.metadata = dict(graph.metadata or {})
    graph.metadata["energy_profile_json"] = json.dumps(profile, sort_keys=True)


def profile_table(profile: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows: one row per latency."""
    header = ["t", "accuracy %", "SOP mean", "SOP std", "MAC mean", "energy mJ", "energy std mJ"]
    header += [f"acc % {label}" for label in profile["noise"]]
    compared = profile.get("float")
    if compared:
        header += [f"acc % {compared['backend']}", "fixed - float pt"]
    rows = []
    for i, t in enumerate(profile["latency"]):
        row = [str(t), f"{100 * profile['accuracy'][i]:.2f}", f"{profile['sop']['mean'][i]:,.0f}",
               f"{profile['sop']['std'][i]:,.0f}", f"{profile['mac']['mean'][i]:,.0f}",
               f"{profile['energy_mj']['mean'][i]:.3e}", f"{profile['energy_mj']['std'][i]:.1e}"]
        row += [f"{100 * v['accuracy'][i]:.2f}" for v in profile["noise"].values()]
        if compared:
            row += [f"{100 * compared['accuracy'][i]:.2f}",
                    f"{100 * (profile['accuracy'][i] - compared['accuracy'][i]):+.2f}"]
        rows.append(row)
    return header, rows
