"""Running samples through a deployed network on Lava.

The network is one :class:`~slt_deploy.lava.process.DeployedNetwork`
process; Lava picks its behaviour by tag:

* ``per-layer`` (modes ``float``, ``fixed``, ``loihi2``): the per-layer graph
  -- RingBuffer source, ``LIFReset`` per population, ``Dense``/``Conv``/
  ``DelayDense`` per projection, RingBuffer sinks -- one OS process each;
* ``fused`` (mode ``fused``): the same float arithmetic in one OS process, all
  layers per step and ``lanes`` samples side by side;
* ``fused_fixed`` (mode ``fused-fixed``): the per-layer fixed-point graph's
  integer arithmetic, fused the same way.

Timing. Lava's Dense/Conv deliver at step n what they received at n-1, so a
population at depth d sees logical step tau of a sample at Lava step
``start + tau + d``. Each sample gets a period of ``P = T + D`` steps (T the
largest latency, D the deepest pipeline): its t <= T frames, then zeros.
``LIFReset(reset_interval=P, reset_offset=(1 + d) % P)`` zeroes u and v
exactly when the sample's first step reaches depth d, so samples run back
to back in one long run, each with its own latency, without rebuilding and
without a round trip per sample; everything a sample produces up to its
latency is recorded inside its own period. Latency switching is therefore a
property of the input frames: frames after t are zero and outputs after t
are not read.

A non-spiking output population (LI, CubaLI) is integrated on the host from
the synaptic current Lava delivers to it, with Lava's own float update
(Lava's LIF sends spikes, not v).

Every Lava call runs under a watchdog (:mod:`slt_deploy.lava.watchdog`);
``close()`` stops the runtime. Use the network as a context manager.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from ..core.compat import import_lava
from ..core.errors import UserError
from ..core.latency import check_latencies, check_latency
from ..core.result import Simulation
from ..deploy.plan import DeployPlan
from ..neuron import lif_step
from .process import (CANONICAL_FLOAT_MODELS, DeployedNetwork, build_per_layer, fused_buffer_shapes,
                      needs_deployed_lif, recorded_populations, recurrent_targets)
from .shared import SharedArrays
from .watchdog import WatchedRuntime, default_step_seconds

import_lava()  # Lava is imported only through the Python 3.11 compat layer
from lava.magma.core.run_conditions import RunSteps  # noqa: E402
from lava.magma.core.run_configs import Loihi2HwCfg, Loihi2SimCfg  # noqa: E402
from ..core.environment import loihi2_available

LAVA_MODES = ("float", "fixed", "loihi2", "fused", "fused-fixed")
FUSED_MODES = ("fused", "fused-fixed")
"""Modes that run the whole network in one Lava process (shared-memory interface, lanes, live counters)."""

__all__ = ["LavaNetwork", "run_config", "LAVA_MODES"]


def run_config(mode: str):
    """The Lava run configuration of ``mode``: the per-layer graph in float or
    fixed point on the CPU simulator, on Loihi 2 hardware when Lava finds it,
    or the fused CPU model (float or bit-accurate)."""
    if mode == "float":
        return Loihi2SimCfg(select_tag="floating_pt", select_sub_proc_model=True,
                            exception_proc_model_map=dict(CANONICAL_FLOAT_MODELS))
    if mode == "fixed":
        return Loihi2SimCfg(select_tag="fixed_pt", select_sub_proc_model=True)
    if mode == "fused":
        return Loihi2SimCfg(select_tag="fused")
    if mode == "fused-fixed":
        return Loihi2SimCfg(select_tag="fused_fixed")
    if mode == "loihi2":
        if not loihi2_available():
            raise UserError(
                "Loihi 2 hardware is not available here (lava.utils.system.Loihi2.is_loihi2_available "
                "is False): use --backend lava-float or lava-fixed"
            )
        return Loihi2HwCfg(select_sub_proc_model=True)
    raise UserError(f"unknown Lava mode '{mode}': choose one of {', '.join(LAVA_MODES)}")


def _check_loihi2_populations(plan: DeployPlan) -> None:
    """Refuses, by name, a population that only the CPU simulator's DeployedLIFReset runs."""
    recurrent = recurrent_targets(plan)
    for population in recorded_populations(plan):
        if needs_deployed_lif(population, recurrent):
            what = "per-neuron time constants" if population.per_neuron_decays else "a recurrent edge"
            raise UserError(f"population '{population.name}' has {what}: it runs on DeployedLIFReset, which has "
                            "a CPU model only (Lava's Loihi 2 LIF holds one decay per process); "
                            "use --backend lava-float or lava-fixed")


class LavaNetwork(WatchedRuntime):
    """A deployment plan on Lava. ``run`` feeds samples with per-sample latencies.

    ``mode``: float | fixed | loihi2 (the per-layer graph) | fused |
    fused-fixed (one process). ``quantised`` (a :class:`~slt_deploy.lava.quantise.QuantisedPlan`)
    is required for fixed point. ``capacity``: samples per lane per Lava run;
    ``lanes``: samples side by side (fused modes only). ``inspect=True`` builds the
    per-layer graph without the enclosing process, so that its processes
    (``neurons``) exist before the first run, e.g. for Lava Monitors.

    Watchdog: a Lava call may take ``round_trip_seconds``, plus
    ``startup_seconds`` on the first run (compile and start), plus
    ``step_seconds`` per time step asked for (default: 1 s, or more for a
    big network -- see :func:`default_step_seconds`); beyond that, or as
    soon as a Lava process dies, everything is stopped and
    :class:`~slt_deploy.core.errors.RunFailure` raised."""

    def __init__(self, plan: DeployPlan, max_latency: int, mode: str = "float", capacity: int = 16,
                 record_spikes: bool = True, quantised=None, lanes: int = 1, inspect: bool = False,
                 step_seconds: float | None = None, startup_seconds: float = 120.0,
                 round_trip_seconds: float = 30.0):
        max_latency = check_latency(max_latency)
        if mode in ("fixed", "loihi2", "fused-fixed") and quantised is None:
            raise ValueError("fixed-point modes need a quantised plan")
        self.fused = mode in FUSED_MODES
        if not self.fused and lanes != 1:
            raise ValueError("only the fused models run several lanes")
        if mode == "loihi2":
            _check_loihi2_populations(plan)
        self.plan, self.mode, self.quantised = plan, mode, quantised
        self.max_latency = int(max_latency)
        depth = max([plan.output_depth] + [p.depth for p in plan.populations.values()])
        self.period = self.max_latency + depth
        self.capacity, self.lanes = int(capacity), int(lanes)
        self.buffer = self.capacity * self.period
        self.want_spikes = record_spikes
        self.record_spikes = record_spikes or not self.fused  # the per-layer graph always records
        self.run_cfg = run_config(mode)
        self.steps_run = 0
        self.started = False
        self.closed = False
        if step_seconds is None:
            step_seconds = default_step_seconds(plan, self.lanes, fixed_point_conv=mode in ("fixed", "loihi2"))
        self.step_seconds, self.startup_seconds = step_seconds, startup_seconds
        self.round_trip_seconds = round_trip_seconds
        self.host_output = plan.output_population is not None and not plan.populations[plan.output_population].spiking
        self.recorded = recorded_populations(plan)
        self.shared = None
        if self.fused:
            self.shared = SharedArrays(fused_buffer_shapes(plan, self.period, self.capacity, self.lanes,
                                                           self.want_spikes))
            self.anchor = DeployedNetwork(plan=plan, period=self.period, capacity=self.capacity, lanes=self.lanes,
                                          record_spikes=self.want_spikes, fused=True, buffers=self.shared.spec,
                                          quantised=quantised if mode == "fused-fixed" else None)
            self.neurons = {}
        elif inspect:
            if mode == "fused":
                raise ValueError("inspect builds the per-layer graph")
            holder = SimpleNamespace()
            graph = build_per_layer(plan, self.period, self.capacity, quantised, holder)
            self.neurons = graph.neurons
            self.anchor = graph.source
            self.frames, self.outputs = graph.source.data, graph.output_sink.data
            self._spike_vars = lambda: {name: sink.data for name, sink in graph.spike_sinks.items()}
            if mode == "float":  # without the enclosing process there is no sub-model to select
                self.run_cfg = Loihi2SimCfg(select_tag="floating_pt",
                                            exception_proc_model_map=dict(CANONICAL_FLOAT_MODELS))
        else:
            self.anchor = DeployedNetwork(plan=plan, period=self.period, capacity=self.capacity, lanes=self.lanes,
                                          record_spikes=True, quantised=quantised)
            self.neurons = {}
            self.frames, self.outputs = self.anchor.frames, self.anchor.outputs
            self._spike_vars = self._deployed_spike_vars

    # ------------------------------------------------------------------ run

    def run(self, inputs, latencies=None, progress=None) -> Simulation:
        """Run samples [N, steps, *input_shape] (steps <= max latency) with
        per-sample ``latencies`` (default: all steps). ``progress(done)`` is
        called after every Lava run with the number of samples done."""
        if self.closed:
            raise RuntimeError("the Lava network was closed")
        plan = self.plan
        x = np.asarray(inputs, dtype=np.float64)
        in_shape = plan.populations[plan.input_name].shape
        if x.ndim != 2 + len(in_shape) or tuple(x.shape[2:]) != tuple(in_shape):
            raise UserError(f"input must have shape [samples, steps, {', '.join(map(str, in_shape))}], got {list(x.shape)}")
        samples, steps = x.shape[:2]
        if steps > self.max_latency:
            raise UserError(f"{steps} steps exceed the network's maximum latency {self.max_latency}")
        latencies = check_latencies(latencies, samples, steps)
        outputs = np.zeros((samples, self.max_latency, *plan.output_shape))
        spikes = {p.name: np.zeros((samples, self.max_latency, *p.shape)) for p in self.recorded} \
            if self.want_spikes else {}
        counters = None
        if self.fused:
            counters = (np.zeros((samples, self.max_latency, len(plan.projections), 2)),
                        {p.name: np.zeros((samples, self.max_latency)) for p in self.recorded})
        per_run = self.capacity * self.lanes
        for start in range(0, samples, per_run):
            chunk = slice(start, min(samples, start + per_run))
            chunk_counters = None if counters is None else (counters[0][chunk], {k: v[chunk] for k, v in counters[1].items()})
            self._run_chunk(x[chunk], latencies[chunk], outputs[chunk], {k: v[chunk] for k, v in spikes.items()},
                            chunk_counters)
            if progress is not None:
                progress(chunk.stop)
        # a constant current's source population is not a NIR node: its spikes are not reported
        spikes = {name: value for name, value in spikes.items() if not plan.populations[name].constant}
        if counters is None:
            return Simulation(outputs, spikes, plan=plan)
        firing = {name: value for name, value in counters[1].items() if not plan.populations[name].constant}
        return Simulation(outputs, spikes, counters[0], firing, plan=plan)

    def _slots(self, count: int):
        """(lane, slot) of the k-th sample of a run: lanes first, then ring slots."""
        return [(k % self.lanes, k // self.lanes) for k in range(count)]

    def _frames(self, x: np.ndarray, latencies: np.ndarray) -> np.ndarray:
        data = np.zeros((self.lanes, int(np.prod(x.shape[2:])), self.buffer))
        frames = x.reshape(x.shape[0], x.shape[1], -1)
        if self.quantised is not None:
            frames = self.quantised.input_frames(frames)
        offset = self.steps_run % self.buffer
        for k, ((lane, slot), t) in enumerate(zip(self._slots(len(latencies)), latencies)):
            columns = (offset + slot * self.period + np.arange(t)) % self.buffer
            data[lane][:, columns] = frames[k, :t].T
        return data

    def _ring_slice(self, data: np.ndarray, lane: int, slot: int, depth: int) -> np.ndarray:
        """Logical steps 1..T of the sample in (lane, slot) at pipeline depth ``depth``: [T, N]."""
        offset = self.steps_run % self.buffer
        steps = offset + slot * self.period + depth + np.arange(self.max_latency)
        return data[lane][:, steps % self.buffer].T

    def _run_chunk(self, x, latencies, outputs, spikes, counters=None) -> None:
        data = self._frames(x, latencies)
        data = data.reshape(-1, self.buffer)  # lanes stacked along the rows
        if self.shared is not None:
            self.shared.arrays["frames"][...] = data
        elif self.started:
            self._guarded(lambda: self.frames.set(data), 0, "input update")
        else:
            self.frames.init = data
        slots = self._slots(len(latencies))
        steps = (max(slot for _, slot in slots) + 1) * self.period
        startup = 0 if self.started else self.startup_seconds
        self.started = True
        self._guarded(lambda: self.anchor.run(condition=RunSteps(num_steps=steps), run_cfg=self.run_cfg),
                      startup + steps * self.step_seconds, f"run of {steps} steps")
        plan = self.plan
        recorded = self._read("outputs", lambda: self.outputs.get()).reshape(self.lanes, -1, self.buffer)
        for k, ((lane, slot), t) in enumerate(zip(slots, latencies)):
            values = self._ring_slice(recorded, lane, slot, plan.output_depth)
            if self.host_output:
                values = self._integrate_output(values)
            else:
                if self.quantised is not None:
                    values = self.quantised.output_values(values)
                if plan.output_population is None:
                    values = values + plan.output_bias.ravel()
            values = values.reshape(self.max_latency, *plan.output_shape)
            values[t:] = 0
            outputs[k] = values
        if spikes:
            for population, recorded in self._read_spikes():
                for k, ((lane, slot), t) in enumerate(zip(slots, latencies)):
                    trace = self._ring_slice(recorded, lane, slot, population.depth) != 0
                    trace = trace.astype(np.float64)
                    trace[t:] = 0
                    spikes[population.name][k] = trace.reshape(self.max_latency, *population.shape)
        if counters is not None:
            self._read_counters(slots, latencies, *counters)
        self.steps_run += steps

    def _read(self, name: str, get):
        """An array the network wrote: from shared memory (fused) or a Lava Var."""
        if self.shared is not None:
            return self.shared.arrays[name].copy()
        return self._guarded(get, 0, f"read of the {name}")

    def _deployed_spike_vars(self) -> dict:
        """The per-layer graph's spike Vars, one per recorded population."""
        return {p.name: getattr(self.anchor, f"spikes_{i}") for i, p in enumerate(self.recorded)}

    def _read_spikes(self):
        """(population, recorded spikes [lanes, N, ring]) for every recorded population."""
        if self.fused:
            recorded = self.shared.arrays["spikes"].copy().reshape(self.lanes, -1, self.buffer)
            offset = 0
            for population in self.recorded:
                yield population, recorded[:, offset: offset + population.size]
                offset += population.size
            return
        for population in self.recorded:
            var = self._spike_vars()[population.name]
            yield population, self._guarded(var.get, 0, f"read of {population.name}'s spikes")[None]

    def _read_counters(self, slots, latencies, operations: np.ndarray, spike_counts: dict) -> None:
        """The fused model's live counters, at each count's own pipeline depth."""
        plan = self.plan
        counts = self.shared.arrays["operations"].copy().reshape(self.lanes, len(plan.projections) * 2, self.buffer)
        fired = self.shared.arrays["firing"].copy().reshape(self.lanes, len(self.recorded), self.buffer)
        for k, ((lane, slot), t) in enumerate(zip(slots, latencies)):
            for index, projection in enumerate(plan.projections):
                depth = plan.populations[projection.source].depth
                rows = counts[:, 2 * index: 2 * index + 2]
                operations[k, :, index] = self._ring_slice(rows, lane, slot, depth)
            for index, population in enumerate(self.recorded):
                trace = self._ring_slice(fired[:, index: index + 1], lane, slot, population.depth)[:, 0]
                spike_counts[population.name][k] = trace
            operations[k, t:] = 0
            for name in spike_counts:
                spike_counts[name][k, t:] = 0

    def _integrate_output(self, current: np.ndarray) -> np.ndarray:
        population = self.plan.populations[self.plan.output_population]
        if self.quantised is not None:
            current = self.quantised.output_values(current)
        neuron = population.neuron
        state = (np.zeros(current.shape[1]), np.zeros(current.shape[1]))
        values = np.zeros_like(current)
        for step, a_in in enumerate(current):
            _, state = lif_step(a_in, state, neuron)
            values[step] = state[1]
        return values

    def _runtime(self):
        return self.anchor.runtime

    def close(self) -> None:
        """Stop the Lava runtime (frees its OS processes and shared memory)."""
        try:
            if self.started and not self.closed:
                self._guarded(self.anchor.stop, 0, "stop", watch_processes=False)
        finally:
            self.closed = True
            if self.shared is not None:
                self.shared.release()

    def __enter__(self) -> "LavaNetwork":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
