"""Simulation: the one place that turns a NIR graph into a deployment plan
and a runner on a simulation backend, and runs samples through it.

Backends: ``torch`` (the float64 reference interpreter), ``lava-float`` and
``lava-fixed`` (the per-layer Lava process graph on the CPU simulator, float
or bit-accurate fixed point), ``lava-fused`` (the same network as one Lava
process running all layers and many samples at once in NumPy; bit-identical
to ``lava-float``), ``lava-fused-fixed`` (likewise, bit-identical to
``lava-fixed``), ``loihi2`` (Lava on Loihi 2, when present).

A :class:`Session` is a graph deployed on one backend for a maximum latency
(time steps), ready to run batches of samples back to back, each with its
own latency, without a rebuild; :func:`simulate` is one session, one run.
Every backend returns the one result type
:class:`~slt_deploy.core.result.Simulation`: the output node's values per
sample and logical step (pipeline delays removed), zero after each sample's
latency; spikes when recorded; live synapse counts where the backend keeps
them.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from .core.errors import UserError
from .core.latency import check_latencies, check_latency
from .core.result import Simulation
from .deploy.plan import DeployPlan, plan_for_graph
from .ir.export import export_model
from .ir.graph import analyse
from .ir.nirfile import graph_dt, read_graph
from .ir.reference import ReferenceNetwork
from .training.checkpoint import load_checkpoint, model_from_checkpoint

BACKENDS = ("torch", "lava-float", "lava-fixed", "lava-fused", "lava-fused-fixed", "loihi2")
FUSED_BACKENDS = ("lava-fused", "lava-fused-fixed")
"""Backends that run the network as one Lava process: many lanes, live SOP counters."""
FIXED_BACKENDS = ("lava-fixed", "lava-fused-fixed", "loihi2")
"""Backends that run the quantised, fixed-point network."""
FUSED_TWIN = {"lava-float": "lava-fused", "lava-fixed": "lava-fused-fixed"}
"""The fused model that gives what a per-layer backend gives, bit for bit."""
PER_LAYER_TWIN = {fused: per_layer for per_layer, fused in FUSED_TWIN.items()}
FLOAT_TWIN = {"lava-fixed": "lava-float", "lava-fused-fixed": "lava-fused"}
"""The float network a fixed-point backend quantises, run the same way (per layer or fused)."""


def fused_twin(backend: str) -> str:
    """``backend``'s fused twin (itself for the fused models and torch)."""
    return FUSED_TWIN.get(backend, backend)
FUSED_LANES = 64
"""Samples the fused Lava model runs side by side, at most."""
FUSED_LANE_VALUES = 2**18
"""Node values (all nodes of the graph, one sample) times lanes that one fused
step handles at most. Lanes amortise the per-step overhead of small networks;
on a big one they only make the step's arrays bigger and slower: VGGSNN (2.0 M
values per sample) ran 0.98 samples/s in 1 lane, 0.87 in 8 and 0.46 in 32 on
the fused fixed-point model, so it gets one lane; the digits models (600 and
3,700 values) keep 64."""
BATCH_BYTES = 2**30
"""Memory (bytes) one batch of samples may take: the torch reference's state
and values, plus every recorded spike (float64)."""


def samples_per_batch(values: int, steps: int, record: bool) -> int:
    """Samples per batch so that one batch stays within :data:`BATCH_BYTES`,
    for a network of ``values`` node values per step: all samples of the
    digits models, a few of VGGSNN at T = 10 with spikes."""
    per_sample = 8 * values * (4 + (steps if record else 0))  # state, values, previous values (+ spikes)
    return max(1, BATCH_BYTES // per_sample)


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise UserError(f"unknown backend '{backend}': choose one of {', '.join(BACKENDS)}")
    return backend


def load_plan(source) -> DeployPlan:
    """The deployment plan of ``source``: a plan, a NIR graph, a .nir file or
    a checkpoint (.pt, exported first)."""
    if isinstance(source, DeployPlan):
        return source
    if not isinstance(source, (str, os.PathLike)):
        return plan_for_graph(source)
    path = Path(source)
    if path.suffix == ".pt":
        graph = export_model(model_from_checkpoint(load_checkpoint(path), str(path)).double())
    else:
        graph = read_graph(path)
    return plan_for_graph(graph)


def deployment_plan(graph, dt: float | None = None, input_kind: str | None = None,
                    allow_unstable_dt: bool = False) -> DeployPlan:
    """The plan a :class:`Session` of ``graph`` runs (``dt`` in s and
    ``input_kind`` override the graph's), without starting a backend."""
    return plan_for_graph(graph, graph_dt(graph, dt), input_kind, allow_unstable_dt)


def _masked(values: np.ndarray, latencies: np.ndarray) -> np.ndarray:
    """``values`` [N, T, ...] with the steps after each sample's latency set to zero."""
    mask = np.arange(values.shape[1])[None, :] < latencies[:, None]
    return values * mask.reshape(*mask.shape, *([1] * (values.ndim - 2)))


class Session:
    """``graph`` deployed on ``backend`` for up to ``max_latency`` time steps
    per sample (a context manager: Lava's processes are stopped on exit).

    ``dt`` (s) and ``input_kind`` override what the graph declares;
    ``record_spikes`` keeps every population's spikes; ``lanes`` (fused
    model only; default 1) runs that many samples side by side and
    ``capacity`` samples per lane go into one Lava run."""

    def __init__(self, graph, backend: str, max_latency: int, *, dt: float | None = None,
                 input_kind: str | None = None, record_spikes: bool = False, lanes: int = 1, capacity: int = 16,
                 allow_unstable_dt: bool = False):
        self.backend = check_backend(backend)
        self.max_latency = check_latency(max_latency)
        self.graph, self.dt, self.input_kind = graph, graph_dt(graph, dt), input_kind
        self.allow_unstable_dt = allow_unstable_dt
        self.record_spikes = record_spikes
        self.quantised = None
        self.network = None
        if backend == "torch":  # the reference interprets the graph itself: a plan only when asked for
            self.reference = ReferenceNetwork(graph, self.dt, allow_unstable_dt)
            return
        from .lava.network import LavaNetwork  # Lava starts only for its backends

        mode = backend.removeprefix("lava-")
        if backend in FIXED_BACKENDS:
            from .lava.quantise import QuantisedPlan  # the fixed-point backends only

            self.quantised = QuantisedPlan(self.plan)
        self.network = LavaNetwork(self.plan, self.max_latency, mode=mode, capacity=capacity,
                                   record_spikes=record_spikes, quantised=self.quantised,
                                   lanes=lanes if backend in FUSED_BACKENDS else 1)

    @functools.cached_property
    def plan(self) -> DeployPlan:
        """The deployment plan of the graph (what Lava runs, and what SOP counts price)."""
        return deployment_plan(self.graph, self.dt, self.input_kind, self.allow_unstable_dt)

    def run(self, inputs, latencies=None, progress=None) -> Simulation:
        """Run samples [N, steps, *input_shape] (steps <= max_latency), each for
        its latency (default: all steps); arrays of the result hold ``steps``
        steps. ``progress(done)`` gets the number of samples done."""
        x = np.asarray(inputs, dtype=np.float64)
        if x.ndim < 2:
            raise UserError(f"input must have shape [samples, steps, ...], got {list(x.shape)}")
        samples, steps = x.shape[:2]
        if steps > self.max_latency:
            raise UserError(f"{steps} steps exceed the network's maximum latency {self.max_latency}")
        latencies = check_latencies(latencies, samples, steps)
        if self.network is None:
            return self._run_reference(x, latencies, progress)
        result = self.network.run(x, latencies, progress=progress).steps(steps)
        result.quantisation = self.quantised.report() if self.quantised is not None else None
        return result

    def _run_reference(self, x: np.ndarray, latencies: np.ndarray, progress) -> Simulation:
        """The float64 reference, in batches that fit in :data:`BATCH_BYTES`."""
        samples, steps = x.shape[:2]
        values = sum(int(np.prod(shape)) for shape in self.reference.flat.shapes.values())
        size = samples_per_batch(values, steps, self.record_spikes)
        outputs, spikes = [], {}
        for start in range(0, samples, size):
            result = self.reference.run(x[start: start + size], record=self.record_spikes)
            outputs.append(result.outputs)
            for name, value in result.spikes.items():
                spikes.setdefault(name, []).append(value)
            if progress is not None:
                progress(min(samples, start + size))
        return Simulation(_masked(np.concatenate(outputs), latencies),
                          {k: _masked(np.concatenate(v), latencies) for k, v in spikes.items()})

    def close(self) -> None:
        if self.network is not None:
            self.network.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def session_for(graph, backend: str, samples: int, steps: int, *, dt: float | None = None,
                input_kind: str | None = None, record_spikes: bool = False, capacity: int = 16,
                allow_unstable_dt: bool = False) -> Session:
    """A session for ``samples`` samples of ``steps`` time steps: on the fused
    model every sample goes into one Lava run, side by side in up to
    :data:`FUSED_LANES` lanes (fewer for a big network,
    :data:`FUSED_LANE_VALUES`); the per-layer graph takes ``capacity`` samples
    per run."""
    lanes = 1
    if backend in FUSED_BACKENDS:
        values = sum(int(np.prod(shape)) for shape in analyse(graph).shapes.values())
        lanes = max(1, min(samples, FUSED_LANES, FUSED_LANE_VALUES // max(1, values)))
        capacity = max(1, -(-samples // lanes))
    return Session(graph, backend, steps, dt=dt, input_kind=input_kind, record_spikes=record_spikes, lanes=lanes,
                   capacity=capacity, allow_unstable_dt=allow_unstable_dt)


def simulate(graph, backend: str, inputs: np.ndarray, latencies=None, dt: float | None = None,
             input_kind: str | None = None, record_spikes: bool = False, capacity: int = 16,
             progress=None, allow_unstable_dt: bool = False) -> Simulation:
    """Run ``inputs`` [N, steps, *input_shape] through ``graph`` on ``backend``
    in one session (:func:`session_for`)."""
    x = np.asarray(inputs, dtype=np.float64)
    if x.ndim < 2:
        raise UserError(f"input must have shape [samples, steps, ...], got {list(x.shape)}")
    with session_for(graph, backend, x.shape[0], x.shape[1], dt=dt, input_kind=input_kind,
                     record_spikes=record_spikes, capacity=capacity,
                     allow_unstable_dt=allow_unstable_dt) as session:
        return session.run(x, latencies, progress)
