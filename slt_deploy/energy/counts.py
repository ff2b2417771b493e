"""Synaptic operations (SOP) and their energy.

Counting (one definition for every backend). The SOP of an inference at
latency t is

    sum over synaptic layers fed by spikes, over steps s <= t, over
    presynaptic neurons j that spiked at s, of the synapses j drives in that layer

-- the layer as deployed (:mod:`slt_deploy.deploy.plan`: BatchNorm folded, pooling
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

Pricing is separate (:mod:`.hardware`): energy = SOP x E_SOP + MAC x E_MAC
(+ neuron updates x E_update).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.errors import UserError
from ..core.parallel import map_shards, world_size
from ..deploy.plan import DeployPlan
from ..deploy.synapses import fanout
from ..simulation import deployment_plan, FUSED_BACKENDS, samples_per_batch, session_for


# --------------------------------------------------------------------------- counting


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
        elif source.constant:  # a constant current's source fires at every step
            activity = np.ones((samples, steps, 1))
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
    """:func:`synapse_counts` of a finished run (a
    :class:`~slt_deploy.core.result.Simulation`): the fused model's live counters, else counted from the
    spikes it recorded."""
    if run.operations is not None:
        return run.operations[..., 0], run.operations[..., 1], run.spike_counts
    spiking = {name: s for name, s in run.spikes.items() if plan.populations[name].spiking}
    return synapse_counts(plan, inputs, spiking, fanouts)


def counted_run(session, inputs: np.ndarray, *, mac_once: bool = True, progress=None):
    """Outputs [N, T, *out] and :class:`OperationCounts` of ``inputs``
    [N, T, *shape] run through a :class:`~slt_deploy.simulation.Session`
    (every sample at latency T)."""
    raw = run_counts(session, inputs, progress)
    return raw["outputs"], counts_of(session.plan, raw, mac_once)


def run_counts(session, inputs: np.ndarray, progress=None) -> dict[str, np.ndarray]:
    """The raw counts of a run, as arrays: ``outputs`` [N, T, *out],
    ``effective`` and ``structural`` synapses driven [N, T, projections] and
    ``spikes:<population>`` [N, T] (see :func:`counts_of`).

    The fused Lava models count live, in one run. The other backends record
    every spike, so they run in batches whose spikes fit in memory
    (:func:`~slt_deploy.simulation.samples_per_batch`): a VGGSNN records
    ~0.1 GB per sample at T = 10. ``progress(done)`` gets the samples done."""
    plan = session.plan
    samples, steps = inputs.shape[:2]
    live = session.backend in FUSED_BACKENDS
    neurons = sum(p.size for p in plan.populations.values())
    size = samples if live else samples_per_batch(neurons, steps, record=True)
    fanouts = None if live else projection_fanouts(plan)
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, samples, size):
        x = inputs[start: start + size]
        report = None if progress is None else (lambda done, offset=start: progress(offset + done))
        run = session.run(x, progress=report)
        effective, structural, firing = run_synapse_counts(plan, x, run, fanouts)
        for name, value in (("outputs", run.outputs), ("effective", effective), ("structural", structural),
                            *((f"spikes:{name}", count) for name, count in firing.items())):
            parts.setdefault(name, []).append(np.asarray(value))
    return {name: np.concatenate(values) for name, values in parts.items()}


def counts_of(plan: DeployPlan, raw: dict[str, np.ndarray], mac_once: bool = True) -> OperationCounts:
    """:class:`OperationCounts` of raw counts (:func:`run_counts`, or shards of them concatenated)."""
    spikes = {name.removeprefix("spikes:"): value for name, value in raw.items() if name.startswith("spikes:")}
    return operation_counts(plan, raw["effective"], raw["structural"], spikes, mac_once=mac_once)


def count_stream(graph, backend: str, inputs: np.ndarray, *, dt: float | None = None,
                 input_kind: str | None = None, mac_once: bool = True, nproc: int = 1, progress=None):
    """Outputs [N, T, *out] and :class:`OperationCounts` of a whole stream
    ``inputs`` [N, T, *shape] on ``backend`` (every sample at latency T).

    The stream is split into contiguous shards over ``nproc`` local processes
    or the ranks of a torchrun job (:func:`~slt_deploy.core.parallel.map_shards`),
    each running its own session; every sample starts from a reset network,
    so the result equals one process's run. ``progress(done)`` (samples done)
    is called in a single process only."""
    if max(nproc, world_size()) > 1:
        progress = None  # each process has its own shard; no shared bar
    pieces = map_shards(_count_shard, inputs, nproc, graph, backend, dt, input_kind, progress)
    raw = {name: np.concatenate([piece[name] for piece in pieces]) for name in pieces[0]}
    return raw["outputs"], counts_of(deployment_plan(graph, dt, input_kind), raw, mac_once)


def _count_shard(inputs: np.ndarray, graph, backend: str, dt, input_kind, progress) -> dict[str, np.ndarray]:
    """One shard of :func:`count_stream`, in one session: its raw counts."""
    with session_for(graph, backend, inputs.shape[0], inputs.shape[1], dt=dt, input_kind=input_kind,
                     record_spikes=backend not in FUSED_BACKENDS) as session:
        return run_counts(session, inputs, progress)


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
