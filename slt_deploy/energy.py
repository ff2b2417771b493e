"""Synaptic operations (SOP) and their energy.

Counting (one definition for every backend). The SOP of an inference at
latency t is

    sum over synaptic layers fed by spikes, over steps s <= t, over
    presynaptic neurons j that spiked at s, of the synapses j drives in that layer

-- the layer as deployed (:mod:`slt_deploy.deploy`: BatchNorm folded, pooling
fused into the following convolution), with convolution borders, stride,
dilation and groups counted exactly: a neuron's fan-out in a convolution is
the transposed convolution of an all-ones output with the kernel's support.
Two variants: *structural* (every synapse of the layer) and *effective*
(nonzero weights only -- the default; sparse hardware stores no zero synapse).
Counts are integers. An input with event counts > 1 per step counts each
event (value x fan-out).

A layer fed by analog input (direct encoding; ``input_kind = "analog"``,
declared, never guessed from values) is counted as MACs: every input element
times its fan-out. Because a direct-encoded input is the same at every step,
``mac_once=True`` (the default) counts these MACs once per inference;
``mac_once=False`` counts them at every step, as papers that charge the first
layer per time step do. The setting is reported with every count.

Pricing is separate: energy = SOP x E_SOP + MAC x E_MAC (+ neuron updates x
E_update) with a hardware profile from the top-level ``hardware/`` folder
(TOML). Energies are in picojoules per operation in profiles and reported in
millijoules (mJ).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .backends import samples_per_batch, simulate
from .deploy import DeployPlan, Projection
from .errors import UserError
from .files import read_toml

HARDWARE_DIR = Path(__file__).resolve().parent.parent / "hardware"
EVIDENCE_KINDS = ("measured", "simulated", "simulated minimum", "whole-chip average", "estimated")
PJ_PER_MJ = 1e9
MAX_PJ = 1e6  # 1 uJ per operation: far above any chip; larger values are typos (or overflow the sums)
PROFILE_KEYS = {"name", "description", "source", "process_node", "precision", "evidence", "notes"}


# --------------------------------------------------------------------------- counting


def fanout(projection: Projection, effective: bool) -> np.ndarray:
    """Synapses driven by each source neuron in this layer: int64 [*source_shape]."""
    if projection.kind == "dense":
        weight = np.asarray(projection.weight)
        support = weight != 0 if effective else np.ones(weight.shape, dtype=bool)
        return support.sum(axis=0).astype(np.int64).reshape(projection.source_shape)
    weight = torch.as_tensor(np.asarray(projection.weight))
    support = (weight != 0).double() if effective else torch.ones_like(weight, dtype=torch.float64)
    out_shape = (1, *projection.conv_output_shape)
    counts = torch.nn.grad.conv2d_input(
        (1, *projection.conv_input_shape), support, torch.ones(out_shape, dtype=torch.float64),
        stride=projection.stride, padding=projection.padding, dilation=projection.dilation,
        groups=projection.groups,
    )
    return np.rint(counts.numpy()).astype(np.int64).reshape(projection.source_shape)


@dataclass
class LayerOps:
    """Operations of one synaptic layer, per sample and step: int64 [N, T]."""

    name: str
    source: str
    target: str
    kind: str  # "sop" (fed by spikes) or "mac" (fed by analog input)
    structural: np.ndarray
    effective: np.ndarray
    synapses_structural: int
    synapses_effective: int


@dataclass
class OperationCounts:
    """SOP and MAC per layer, sample and step, plus neuron updates and spikes."""

    layers: list[LayerOps]
    neuron_updates: np.ndarray  # [N, T]: neurons updated per step (all populations)
    firing: dict[str, np.ndarray]  # population -> mean spikes per neuron [N, T]
    mac_once: bool
    latencies: np.ndarray  # [N]

    def total(self, kind: str, variant: str = "effective") -> np.ndarray:
        """[N, T] operations of ``kind`` ("sop" or "mac") summed over layers."""
        arrays = [getattr(layer, variant) for layer in self.layers if layer.kind == kind]
        if not arrays:
            return np.zeros_like(self.neuron_updates)
        return np.sum(arrays, axis=0)

    def cumulative(self, kind: str, variant: str = "effective") -> np.ndarray:
        """[N, T]: operations of an inference stopped after step t (column t-1)."""
        return np.cumsum(self.total(kind, variant), axis=1)


def synapse_counts(plan: DeployPlan, inputs: np.ndarray, spikes: dict[str, np.ndarray], fanouts=None):
    """Synapses driven per sample, step and projection -- (effective, structural),
    each [N, T, projections] -- and spikes per step {population: [N, T]}, from
    the input [N, T, *shape] and every spiking population's spikes
    {name: [N, T, *shape]}. ``fanouts``: [(effective, structural)] per
    projection, flattened (computed when not given)."""
    x = np.asarray(inputs, dtype=np.float64)
    samples, steps = x.shape[:2]
    if fanouts is None:
        fanouts = projection_fanouts(plan)
    effective = np.zeros((samples, steps, len(plan.projections)))
    structural = np.zeros_like(effective)
    for index, projection in enumerate(plan.projections):
        source = plan.populations[projection.source]
        if source.is_input:
            activity = x.reshape(samples, steps, -1)
            if plan.input_kind == "analog":
                activity = np.ones_like(activity)  # every input element, whatever its value
        else:
            if projection.source not in spikes:
                raise UserError(f"no spikes recorded for population '{projection.source}'")
            activity = np.asarray(spikes[projection.source], dtype=np.float64).reshape(samples, steps, -1)
        effective[:, :, index] = activity @ fanouts[index][0]
        structural[:, :, index] = activity @ fanouts[index][1]
    firing = {name: np.asarray(s, dtype=np.float64).reshape(samples, steps, -1).sum(-1)
              for name, s in spikes.items() if name in plan.populations}
    return effective, structural, firing


def projection_fanouts(plan: DeployPlan) -> list[tuple[np.ndarray, np.ndarray]]:
    """(effective, structural) fan-out of every projection's source neurons, flattened."""
    return [(fanout(p, True).reshape(-1), fanout(p, False).reshape(-1)) for p in plan.projections]


def count_operations(plan: DeployPlan, inputs: np.ndarray, spikes: dict[str, np.ndarray],
                     latencies=None, mac_once: bool = True) -> OperationCounts:
    """Count SOP/MAC from the input [N, T, *shape] and every spiking
    population's spikes {name: [N, T, *shape]} (from any backend).

    Steps after a sample's latency count nothing."""
    effective, structural, firing = synapse_counts(plan, inputs, spikes)
    return operation_counts(plan, effective, structural, firing, latencies, mac_once)


def run_synapse_counts(plan: DeployPlan, inputs: np.ndarray, run, fanouts=None):
    """:func:`synapse_counts` of a finished run (a backend's ``Simulation`` or
    a ``LavaResult``): the fused model's live counters, else counted from the
    spikes it recorded."""
    if run.operations is not None:
        return run.operations[..., 0], run.operations[..., 1], run.spike_counts
    spiking = {name: s for name, s in run.spikes.items() if plan.populations[name].spiking}
    return synapse_counts(plan, inputs, spiking, fanouts)


def counted_run(graph, backend: str, inputs: np.ndarray, plan: DeployPlan, *, mac_once: bool = True,
                progress=None):
    """Outputs [N, T, *out] and :class:`OperationCounts` of ``inputs``
    [N, T, *shape] on ``backend`` (every sample at latency T).

    The fused Lava model counts live, in one run. The other backends record
    every spike, so they run in batches whose spikes fit in memory
    (:func:`~slt_deploy.backends.samples_per_batch`): a VGGSNN records
    ~0.1 GB per sample at T = 10. ``progress(done)`` gets the samples done."""
    samples, steps = inputs.shape[:2]
    live = backend == "lava-fused"
    neurons = sum(p.size for p in plan.populations.values())
    size = samples if live else samples_per_batch(neurons, steps, record=True)
    fanouts = None if live else projection_fanouts(plan)
    outputs, effective, structural, firing = [], [], [], []
    for start in range(0, samples, size):
        x = inputs[start: start + size]
        report = None if progress is None else (lambda done, offset=start: progress(offset + done))
        run = simulate(graph, backend, x, dt=plan.dt, input_kind=plan.input_kind, record_spikes=not live,
                       progress=report)
        counts = run_synapse_counts(plan, x, run, fanouts)
        outputs.append(run.outputs)
        effective.append(counts[0])
        structural.append(counts[1])
        firing.append(counts[2])
    spike_counts = {name: np.concatenate([f[name] for f in firing]) for name in firing[0]}
    return np.concatenate(outputs), operation_counts(plan, np.concatenate(effective), np.concatenate(structural),
                                                     spike_counts, mac_once=mac_once)


def operation_counts(plan: DeployPlan, effective: np.ndarray, structural: np.ndarray, spike_counts: dict,
                     latencies=None, mac_once: bool = True) -> OperationCounts:
    """Assemble counts from per-step synapse counts [N, T, projections] (a
    backend's own counters or :func:`count_operations`) and spike counts per
    population {name: [N, T]}: steps after each sample's latency are dropped,
    an analog input layer's MACs kept at step 1 only when ``mac_once``."""
    samples, steps = effective.shape[:2]
    latencies = np.full(samples, steps) if latencies is None else np.asarray(latencies, dtype=int)
    active = np.arange(steps)[None, :] < latencies[:, None]  # [N, T]
    layers = []
    for index, projection in enumerate(plan.projections):
        source = plan.populations[projection.source]
        kind = "mac" if source.is_input and plan.input_kind == "analog" else "sop"
        counts = {}
        for variant, table in (("structural", structural), ("effective", effective)):
            per_step = np.array(table[:, :, index], dtype=np.float64)
            if kind == "mac" and mac_once:
                per_step[:, 1:] = 0
            counts[variant] = np.rint(per_step * active).astype(np.int64)
        layers.append(LayerOps(
            name=projection.name, source=projection.source, target=projection.target, kind=kind,
            structural=counts["structural"], effective=counts["effective"],
            synapses_structural=int(fanout(projection, False).sum()),
            synapses_effective=int(fanout(projection, True).sum()),
        ))
    neurons = sum(p.size for p in plan.neuron_populations)
    firing = {name: np.asarray(count, dtype=np.float64) / plan.populations[name].size * active
              for name, count in spike_counts.items()}
    return OperationCounts(layers, (neurons * active).astype(np.int64), firing, mac_once, latencies)


# --------------------------------------------------------------------------- pricing


@dataclass(frozen=True)
class HardwareProfile:
    """Energy per operation of one chip (or reference), with its provenance.

    sop_pj / mac_pj / neuron_update_pj: picojoules per operation (None: the
    profile has no such term)."""

    name: str
    description: str
    source: str
    process_node: str
    precision: str
    evidence: str
    sop_pj: float | None
    mac_pj: float | None = None
    neuron_update_pj: float | None = None
    notes: str = ""
    terms: dict[str, str] = field(default_factory=dict)  # term -> its own source, when it differs

    def energy_mj(self, sop, mac=0, neuron_updates=0):
        """Energy in mJ of the given operation counts (arrays broadcast)."""
        mac = np.asarray(mac)
        if np.any(mac > 0) and self.mac_pj is None:
            raise UserError(
                f"hardware profile '{self.name}' has no MAC energy, but the model's first layer takes analog "
                "input (MACs): choose a profile with mac_pj"
            )
        total = np.asarray(sop, dtype=np.float64) * (self.sop_pj or 0.0)
        total = total + mac * (self.mac_pj or 0.0)
        if self.neuron_update_pj is not None:
            total = total + np.asarray(neuron_updates, dtype=np.float64) * self.neuron_update_pj
        return total / PJ_PER_MJ

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def available_profiles() -> list[str]:
    return sorted(p.stem for p in HARDWARE_DIR.glob("*.toml") if "profile" in read_toml(p, "hardware profile"))


def load_profile(name_or_path: str) -> HardwareProfile:
    """A hardware profile by name (``hardware/<name>.toml``) or path."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = HARDWARE_DIR / f"{name_or_path}.toml"
        if Path(name_or_path).name != name_or_path or name_or_path.startswith(".") or not path.is_file():
            raise UserError(
                f"unknown hardware profile '{name_or_path}': choose one of {', '.join(available_profiles())}"
            )
    data = read_toml(path, "hardware profile")
    section = data.get("profile")
    energy = data.get("energy")
    if not isinstance(section, dict) or not isinstance(energy, dict):
        raise UserError(f"hardware profile {path} needs [profile] and [energy] sections")
    for key in ("name", "source", "process_node", "precision", "evidence"):
        if not str(section.get(key, "")).strip():
            raise UserError(f"hardware profile {path}: '{key}' is missing (every profile states its source)")
    unknown = (set(data) - {"profile", "energy", "sources"}) | {f"profile.{k}" for k in set(section) - PROFILE_KEYS}
    if unknown:
        raise UserError(f"hardware profile {path}: unknown sections or keys {sorted(unknown)}")
    sources = data.get("sources", {})
    for key, value in list(section.items()) + [(f"sources.{k}", v) for k, v in
                                               (sources.items() if isinstance(sources, dict) else [])]:
        if not isinstance(value, str):
            raise UserError(f"hardware profile {path}: '{key}' must be a string, got {value!r}"[:300])
    if not isinstance(sources, dict) or set(sources) - {"sop_pj", "mac_pj", "neuron_update_pj"}:
        raise UserError(f"hardware profile {path}: [sources] names the source of sop_pj, mac_pj or neuron_update_pj")
    if section["evidence"] not in EVIDENCE_KINDS:
        raise UserError(f"hardware profile {path}: evidence must be one of {', '.join(EVIDENCE_KINDS)}")
    unknown = set(energy) - {"sop_pj", "mac_pj", "neuron_update_pj"}
    if unknown:
        raise UserError(f"hardware profile {path}: unknown energy terms {sorted(unknown)}")
    if "sop_pj" not in energy and "mac_pj" not in energy:
        raise UserError(f"hardware profile {path}: give at least sop_pj or mac_pj")
    values = {}
    for key in ("sop_pj", "mac_pj", "neuron_update_pj"):
        if key in energy:
            value = energy[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_PJ:  # not NaN
                raise UserError(f"hardware profile {path}: {key} must be a non-negative number of picojoules "
                                f"(at most {MAX_PJ:g}), got {value!r}"[:300])
            values[key] = float(value)
    if section["evidence"] == "whole-chip average" and len(values) > 1:
        raise UserError(
            f"hardware profile {path}: a whole-chip average cannot be mixed with per-operation terms"
        )
    return HardwareProfile(
        name=str(section["name"]), description=str(section.get("description", "")),
        source=str(section["source"]), process_node=str(section["process_node"]),
        precision=str(section["precision"]), evidence=str(section["evidence"]),
        notes=str(section.get("notes", "")), terms={str(k): str(v) for k, v in data.get("sources", {}).items()},
        **values,
    )
