"""A deployment plan as a Lava process graph, and running samples through it.

Processes (all standard Lava ones):

* the input: ``lava.proc.io.source.RingBuffer`` holding the frames of a batch
  of samples, one period after another;
* every population: ``LIFReset`` (float: ``u <- u(1-du) + a_in``,
  ``v <- v(1-dv) + u + bias``, spike ``v > vth``, ``v <- 0``), reset every
  period at its own pipeline offset;
* every projection: ``Dense`` / ``Conv`` (graded messages from the input,
  binary spikes elsewhere), ``DelayDense`` where a path needs extra delay;
* records: ``lava.proc.io.sink.RingBuffer`` on the output and, optionally,
  on every population's spikes.

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

Every Lava run is stopped in ``close()``; use the network as a context manager.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..deploy import DeployPlan, Population, Projection
from ..errors import RunFailure, UserError
from .compat import import_lava
from .watchdog import guarded

LAVA_MODES = ("float", "fixed", "loihi2")


@dataclass
class LavaResult:
    """outputs: [N, T, *output_shape]; spikes: population -> [N, T, *shape]
    (logical steps; pipeline delays removed; steps beyond a sample's latency are zero)."""

    outputs: np.ndarray
    spikes: dict[str, np.ndarray]


def run_config(mode: str):
    """The Lava run configuration of ``mode``: float and fixed point on the
    CPU simulator, or Loihi 2 hardware when Lava finds it."""
    import_lava()
    from lava.magma.core.run_configs import Loihi2SimCfg

    if mode == "float":
        return Loihi2SimCfg(select_tag="floating_pt")
    if mode == "fixed":
        return Loihi2SimCfg(select_tag="fixed_pt")
    if mode == "loihi2":
        from ..environment import loihi2_available

        if not loihi2_available():
            raise UserError(
                "Loihi 2 hardware is not available here (lava.utils.system.Loihi2.is_loihi2_available "
                "is False): use --backend lava-float or lava-fixed"
            )
        from lava.magma.core.run_configs import Loihi2HwCfg

        return Loihi2HwCfg()
    raise UserError(f"unknown Lava mode '{mode}': choose one of {', '.join(LAVA_MODES)}")


def _flat(shape) -> tuple[int]:
    return (int(np.prod(shape)),)


def _lava_conv_weight(weight: np.ndarray) -> np.ndarray:
    """torch [C_out, C_in, kh, kw] (correlation) -> Lava [C_out, kx, ky, C_in] (convolution)."""
    return np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(0, 3, 2, 1))


def dense_of(projection: Projection) -> np.ndarray:
    """A conv projection as its dense matrix [N_t, N_s] (for delayed conv paths)."""
    if projection.kind == "dense":
        return projection.weight
    size = int(np.prod(projection.source_shape))
    basis = torch.eye(size, dtype=torch.float64).reshape(size, *projection.source_shape)
    return projection.apply(basis).reshape(size, -1).T.numpy().copy()


class LavaNetwork:
    """The plan as Lava processes. ``run`` feeds samples with per-sample latencies.

    ``mode``: float | fixed | loihi2. ``quantized`` (a
    :class:`~slt_deploy.lava.quantize.QuantizedPlan`) is required for fixed
    point. ``capacity``: samples per Lava run (the ring buffers' size).
    Watchdog: a Lava call may take ``round_trip_seconds``, plus
    ``startup_seconds`` on the first run (compile and start), plus
    ``step_seconds`` per time step asked for; beyond that, or as
    soon as a Lava process dies, everything is stopped and
    :class:`~slt_deploy.errors.RunFailure` raised."""

    def __init__(self, plan: DeployPlan, max_latency: int, mode: str = "float", capacity: int = 16,
                 record_spikes: bool = True, quantized=None, step_seconds: float = 1.0,
                 startup_seconds: float = 120.0, round_trip_seconds: float = 30.0):
        if max_latency < 1:
            raise UserError(f"latency must be >= 1 time step, got {max_latency}")
        if mode in ("fixed", "loihi2") and quantized is None:
            raise ValueError("fixed-point modes need a quantized plan")
        import_lava()
        self.plan, self.mode, self.quantized = plan, mode, quantized
        self.max_latency = int(max_latency)
        depth = max([plan.output_depth] + [p.depth for p in plan.populations.values()])
        self.period = self.max_latency + depth
        self.capacity = int(capacity)
        self.buffer = self.capacity * self.period
        self.record_spikes = record_spikes
        self.run_cfg = run_config(mode)
        self.steps_run = 0
        self.started = False
        self.closed = False
        self.step_seconds, self.startup_seconds = step_seconds, startup_seconds
        self.round_trip_seconds = round_trip_seconds
        self.host_output = plan.output_population is not None and not plan.populations[plan.output_population].spiking
        self._build()

    # ------------------------------------------------------------------ build

    def _params(self, population: Population) -> dict:
        if self.quantized is not None:
            return self.quantized.population_parameters(population.name)
        return dict(du=population.du, dv=population.dv, vth=population.vth,
                    bias_mant=population.bias.ravel().astype(np.float64), bias_exp=0)

    def _build(self) -> None:
        from lava.proc.io.sink import RingBuffer as Sink
        from lava.proc.io.source import RingBuffer as Source
        from lava.proc.lif.process import LIFReset

        plan = self.plan
        input_size = _flat(plan.populations[plan.input_name].shape)
        self.source = Source(data=np.zeros(input_size + (self.buffer,)))
        self.neurons, self.spike_sinks = {}, {}
        for population in plan.neuron_populations:
            if self.host_output and population.name == plan.output_population:
                continue
            self.neurons[population.name] = LIFReset(
                shape=_flat(population.shape),
                reset_interval=self.period,
                reset_offset=(1 + population.depth) % self.period,
                name=population.name,
                **self._params(population),
            )
            if self.record_spikes:
                sink = Sink(shape=_flat(population.shape), buffer=self.buffer)
                self.neurons[population.name].s_out.connect(sink.a_in)
                self.spike_sinks[population.name] = sink
        spiking_output = plan.output_population is not None and not self.host_output
        if spiking_output and plan.output_population in self.spike_sinks:
            self.output_sink = self.spike_sinks[plan.output_population]
        else:
            self.output_sink = Sink(shape=_flat(plan.output_shape), buffer=self.buffer)
            if spiking_output:
                self.neurons[plan.output_population].s_out.connect(self.output_sink.a_in)
        # the output sink records what arrives at the Output node, or the
        # current into a host-integrated (non-spiking) output population
        recorded_targets = {plan.output_name} | ({plan.output_population} if self.host_output else set())
        self.synapses = []
        for projection in plan.projections:
            synapse = self._synapse(projection)
            self.synapses.append(synapse)
            self._out_port(projection.source, projection, synapse)
            if projection.target in recorded_targets:
                self._into(synapse, projection, self.output_sink.a_in)
            else:
                self._into(synapse, projection, self.neurons[projection.target].a_in)

    def _synapse(self, projection: Projection):
        from lava.proc.conv.process import Conv
        from lava.proc.dense.process import Dense, DelayDense

        graded = 24 if self.plan.populations[projection.source].is_input else 0
        weights = None
        extra = {}
        if self.quantized is not None:
            weights, extra = self.quantized.projection_weights(projection)
        if projection.kind == "conv" and projection.delay == 0:
            weight = _lava_conv_weight(projection.weight if weights is None else weights)
            c, h, w = projection.conv_input_shape
            return Conv(weight=weight, input_shape=(w, h, c), padding=projection.padding[::-1],
                        stride=projection.stride[::-1], dilation=projection.dilation[::-1],
                        groups=projection.groups, num_message_bits=graded, name=projection.name, **extra)
        matrix = dense_of(projection) if weights is None else weights
        if projection.delay > 0:
            return DelayDense(weights=matrix, delays=int(projection.delay), num_message_bits=graded,
                              name=projection.name, **extra)
        return Dense(weights=matrix, num_message_bits=graded, name=projection.name, **extra)

    def _out_port(self, name: str, projection: Projection, synapse) -> None:
        port = self.source.s_out if name == self.plan.input_name else self.neurons[name].s_out
        if projection.kind == "conv" and projection.delay == 0:
            c, h, w = projection.conv_input_shape
            port = port.reshape((c, h, w)).transpose((2, 1, 0))
        port.connect(synapse.s_in)

    def _into(self, synapse, projection: Projection, in_port) -> None:
        port = synapse.a_out
        if projection.kind == "conv" and projection.delay == 0:
            port = port.transpose((2, 1, 0)).reshape(in_port.shape)
        port.connect(in_port)

    # ------------------------------------------------------------------ run

    def run(self, inputs, latencies=None, progress=None) -> LavaResult:
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
        latencies = np.full(samples, steps) if latencies is None else np.asarray(latencies, dtype=int)
        if latencies.shape != (samples,) or latencies.min(initial=1) < 1 or latencies.max(initial=1) > steps:
            raise UserError(f"latencies must be {samples} integers in 1..{steps}")
        outputs = np.zeros((samples, self.max_latency, *plan.output_shape))
        spikes = {name: np.zeros((samples, self.max_latency, *plan.populations[name].shape))
                  for name in self.spike_sinks}
        for start in range(0, samples, self.capacity):
            chunk = slice(start, min(samples, start + self.capacity))
            self._run_chunk(x[chunk], latencies[chunk], outputs[chunk], {k: v[chunk] for k, v in spikes.items()})
            if progress is not None:
                progress(chunk.stop)
        return LavaResult(outputs, spikes)

    def _frames(self, x: np.ndarray, latencies: np.ndarray) -> np.ndarray:
        data = np.zeros((int(np.prod(x.shape[2:])), self.buffer))
        frames = x.reshape(x.shape[0], x.shape[1], -1)
        if self.quantized is not None:
            frames = self.quantized.input_frames(frames)
        offset = self.steps_run % self.buffer
        for k, t in enumerate(latencies):
            columns = (offset + k * self.period + np.arange(t)) % self.buffer
            data[:, columns] = frames[k, :t].T
        return data

    def _ring_slice(self, data: np.ndarray, k: int, depth: int) -> np.ndarray:
        """Logical steps 1..T of sample k at pipeline depth ``depth``: [T, N]."""
        offset = self.steps_run % self.buffer
        steps = offset + k * self.period + depth + np.arange(self.max_latency)
        return data[:, steps % self.buffer].T

    def _run_chunk(self, x, latencies, outputs, spikes) -> None:
        from lava.magma.core.run_conditions import RunSteps

        data = self._frames(x, latencies)
        if self.started:
            self._guarded(lambda: self.source.data.set(data), 0, "input update")
        else:
            self.source.data.init = data
        steps = len(latencies) * self.period
        startup = 0 if self.started else self.startup_seconds
        self.started = True
        self._guarded(lambda: self.source.run(condition=RunSteps(num_steps=steps), run_cfg=self.run_cfg),
                      startup + steps * self.step_seconds, f"run of {steps} steps")
        plan = self.plan
        recorded = self._guarded(self.output_sink.data.get, 0, "read of the output")
        for k, t in enumerate(latencies):
            if self.host_output:
                current = self._ring_slice(recorded, k, plan.output_depth)
                values = self._integrate_output(current)
            else:
                values = self._ring_slice(recorded, k, plan.output_depth)
                if self.quantized is not None:
                    values = self.quantized.output_values(values)
                if plan.output_population is None:
                    values = values + plan.output_bias.ravel()
            values = values.reshape(self.max_latency, *plan.output_shape)
            values[t:] = 0
            outputs[k] = values
        for name, sink in self.spike_sinks.items():
            recorded = self._guarded(sink.data.get, 0, f"read of {name}'s spikes")
            depth = plan.populations[name].depth
            shape = plan.populations[name].shape
            for k, t in enumerate(latencies):
                trace = (self._ring_slice(recorded, k, depth) != 0).astype(np.float64)
                trace[t:] = 0
                spikes[name][k] = trace.reshape(self.max_latency, *shape)
        self.steps_run += steps

    def _integrate_output(self, current: np.ndarray) -> np.ndarray:
        population = self.plan.populations[self.plan.output_population]
        if self.quantized is not None:
            current = self.quantized.output_values(current)
        u = np.zeros(current.shape[1])
        v = np.zeros(current.shape[1])
        values = np.zeros_like(current)
        bias = population.bias.ravel()
        for step, a_in in enumerate(current):
            u = u * (1 - population.du) + a_in
            v = v * (1 - population.dv) + u + bias
            values[step] = v
        return values

    def _guarded(self, call, seconds: float, what: str, watch_processes: bool = True):
        """A Lava call under the watchdog (``seconds`` on top of the round trip)."""
        if self.closed:
            raise RunFailure("the Lava network was stopped after an earlier failure")
        try:
            return guarded(call, lambda: self.source.runtime, self.round_trip_seconds + seconds, what,
                           watch_processes)
        except RunFailure:
            self.closed = True  # the watchdog already stopped every Lava process
            raise

    def close(self) -> None:
        """Stop the Lava runtime (frees its OS processes and shared memory)."""
        if self.started and not self.closed:
            try:
                self._guarded(self.source.stop, 0, "stop", watch_processes=False)
            finally:
                self.closed = True
        self.closed = True

    def __enter__(self) -> "LavaNetwork":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
