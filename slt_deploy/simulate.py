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

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .deploy.plan import DeployPlan, plan_for_graph
from .core.errors import UserError
from .ir.nirfile import graph_dt, read_graph

BACKENDS = ("torch", "lava-float", "lava-fixed", "lava-fused", "loihi2")
FUSED_LANES = 64
BATCH_BYTES = 2**30
"""Memory (bytes) one batch of samples may take: the torch reference's state
and values, plus every recorded spike (float64)."""


def samples_per_batch(values: int, steps: int, record: bool) -> int:
    """Samples per batch so that one batch stays within :data:`BATCH_BYTES`,
    for a network of ``values`` node values per step: all samples of the
    digits models, a few of VGGSNN at T = 10 with spikes."""
    per_sample = 8 * values * (4 + (steps if record else 0))  # state, values, previous values (+ spikes)
    return max(1, BATCH_BYTES // per_sample)


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


def load_plan(source) -> DeployPlan:
    """The deployment plan of ``source``: a plan, a NIR graph, a .nir file or
    a checkpoint (.pt, exported first)."""
    if isinstance(source, DeployPlan):
        return source
    if not isinstance(source, (str, os.PathLike)):
        return plan_for_graph(source)
    path = Path(source)
    if path.suffix == ".pt":
        from .ir.export import export_model  # the model zoo (norse) only for checkpoints
        from .training.checkpoint import load_checkpoint, model_from_checkpoint

        graph = export_model(model_from_checkpoint(load_checkpoint(path), str(path)).double())
    else:
        graph = read_graph(path)
    return plan_for_graph(graph)


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
        return _simulate_torch(graph, dt, x, latencies, record_spikes, progress)
    from .lava.network import LavaNetwork

    plan = plan_for_graph(graph, dt, input_kind)
    mode = backend.removeprefix("lava-")
    quantized = None
    if mode in ("fixed", "loihi2"):
        from .lava.quantise import QuantizedPlan

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


def _simulate_torch(graph, dt: float, x: np.ndarray, latencies: np.ndarray, record_spikes: bool,
                    progress) -> Simulation:
    """The float64 reference, in batches that fit in :data:`BATCH_BYTES`."""
    from .ir.reference import ReferenceNetwork

    samples, steps = x.shape[:2]
    network = ReferenceNetwork(graph, dt)
    values = sum(int(np.prod(shape)) for shape in network.flat.shapes.values())
    size = samples_per_batch(values, steps, record_spikes)
    outputs, spikes = [], {}
    for start in range(0, samples, size):
        result = network.run(x[start: start + size], record=record_spikes)
        outputs.append(result.outputs.numpy())
        for name, value in result.record.items():
            spikes.setdefault(name, []).append(value.numpy())
        if progress is not None:
            progress(min(samples, start + size))
    outputs = np.concatenate(outputs)
    mask = np.arange(steps)[None, :] < latencies[:, None]
    outputs = outputs * mask.reshape(samples, steps, *([1] * (outputs.ndim - 2)))
    spikes = {k: np.concatenate(v) for k, v in spikes.items()}
    spikes = {k: v * mask.reshape(samples, steps, *([1] * (v.ndim - 2))) for k, v in spikes.items()}
    return Simulation(outputs, spikes)


def predictions(outputs: np.ndarray, latencies) -> np.ndarray:
    """Class predicted at each sample's latency: argmax of the mean output over steps 1..t."""
    latencies = np.asarray(latencies)
    sums = outputs.reshape(outputs.shape[0], outputs.shape[1], -1).sum(1)
    return (sums / latencies[:, None]).argmax(-1)
