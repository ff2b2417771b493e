"""One entry point to simulate a NIR graph on any backend.

Backends: ``torch`` (the float64 reference interpreter), ``lava-float`` and
``lava-fixed`` (the per-layer Lava process graph on the CPU simulator, float
or bit-accurate fixed point), ``lava-fused`` (the same network as one Lava
process running all layers and many samples at once in NumPy; bit-identical
to ``lava-float``), ``loihi2`` (Lava on Loihi 2, when present).
Every backend returns the output node's values per sample and logical step
(pipeline delays removed), zero after each sample's latency.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .deploy import DeployPlan, plan_deployment
from .errors import UserError
from .nirfile import graph_dt

BACKENDS = ("torch", "lava-float", "lava-fixed", "lava-fused", "loihi2")
FUSED_LANES = 64


@dataclass
class Simulation:
    """outputs [N, T, *out]; spikes {population: [N, T, *shape]} when recorded;
    quantisation: the per-layer report of the fixed-point backends."""

    outputs: np.ndarray
    spikes: dict[str, np.ndarray] = field(default_factory=dict)
    quantisation: list[dict] | None = None
    plan: DeployPlan | None = None
    operations: np.ndarray | None = None  # lava-fused: [N, T, projections, 2] synapses driven (effective, structural)
    spike_counts: dict[str, np.ndarray] | None = None  # lava-fused: {population: [N, T]}


def input_kind_of(graph, given: str | None = None) -> str:
    kind = given or (graph.metadata or {}).get("input_kind", "spikes")
    if not isinstance(kind, str) or kind not in ("spikes", "analog"):
        raise UserError(f"input kind must be spikes or analog, got '{str(kind)[:60]}'")
    return kind


def simulate(graph, backend: str, inputs: np.ndarray, latencies=None, dt: float | None = None,
             input_kind: str | None = None, record_spikes: bool = False, capacity: int = 16,
             progress=None) -> Simulation:
    """Run ``inputs`` [N, steps, *input_shape] through ``graph`` on ``backend``."""
    if backend not in BACKENDS:
        raise UserError(f"unknown backend '{backend}': choose one of {', '.join(BACKENDS)}")
    dt = graph_dt(graph, dt)
    x = np.asarray(inputs, dtype=np.float64)
    samples, steps = x.shape[:2]
    latencies = np.full(samples, steps) if latencies is None else np.asarray(latencies, dtype=int)
    if backend == "torch":
        from .reference import ReferenceNetwork

        result = ReferenceNetwork(graph, dt).run(x, record=record_spikes)
        outputs = result.outputs.numpy()
        spikes = {k: v.numpy() for k, v in result.record.items()}
        mask = np.arange(steps)[None, :] < latencies[:, None]
        outputs = outputs * mask.reshape(samples, steps, *([1] * (outputs.ndim - 2)))
        spikes = {k: v * mask.reshape(samples, steps, *([1] * (v.ndim - 2))) for k, v in spikes.items()}
        if progress is not None:
            progress(samples)
        return Simulation(outputs, spikes)
    from .lava.network import LavaNetwork

    plan = plan_deployment(graph, dt, input_kind_of(graph, input_kind))
    mode = backend.removeprefix("lava-")
    quantized = None
    if mode in ("fixed", "loihi2"):
        from .lava.quantize import QuantizedPlan

        quantized = QuantizedPlan(plan)
    lanes = 1
    if mode == "fused":  # every sample in one Lava run, side by side
        lanes = min(samples, FUSED_LANES)
        capacity = -(-samples // lanes)
    with LavaNetwork(plan, steps, mode=mode, capacity=capacity, record_spikes=record_spikes,
                     quantized=quantized, lanes=lanes) as network:
        result = network.run(x, latencies, progress=progress)
    outputs = result.outputs[:, :steps]
    spikes = {k: v[:, :steps] for k, v in result.spikes.items()}
    operations = None if result.operations is None else result.operations[:, :steps]
    counts = None if result.spike_counts is None else {k: v[:, :steps] for k, v in result.spike_counts.items()}
    return Simulation(outputs, spikes, quantized.report() if quantized else None, plan, operations, counts)


def predictions(outputs: np.ndarray, latencies) -> np.ndarray:
    """Class predicted at each sample's latency: argmax of the mean output over steps 1..t."""
    latencies = np.asarray(latencies)
    sums = outputs.reshape(outputs.shape[0], outputs.shape[1], -1).sum(1)
    return (sums / latencies[:, None]).argmax(-1)
