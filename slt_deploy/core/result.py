"""The one result type of a simulation run, whatever ran it (the torch
reference, the Lava per-layer graph, the fused Lava model, netx)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Simulation:
    """What a run of samples through a network returns, per sample and
    logical time step (pipeline delays removed; steps after a sample's
    latency are zero):

    outputs: the output node's values [N, T, *output_shape];
    spikes: every recorded neuron population's output {name: [N, T, *shape]}
      (spikes, or v for a non-spiking one), when recording was asked for;
    operations: synapses driven per projection [N, T, projections, 2]
      (effective, structural; see :mod:`slt_deploy.energy.counts`) and
    spike_counts: spikes per population {name: [N, T]}, when the backend
      counts live (the fused Lava model);
    quantisation: the fixed-point backends' per-layer report;
    plan: the deployment plan that ran (None for the bare reference interpreter);
    energy_mj: energy (mJ) per sample and step [N, T], when a runtime engine
      priced the run;
    energy_bound_mj: an upper bound (mJ) on each step's energy that is known
      before the step runs [N, T] (the input as it is, every hidden neuron
      firing; :func:`slt_deploy.runtime.controller.step_bound_mj`)."""

    outputs: np.ndarray
    spikes: dict[str, np.ndarray] = field(default_factory=dict)
    operations: np.ndarray | None = None
    spike_counts: dict[str, np.ndarray] | None = None
    quantisation: list[dict] | None = None
    plan: Any = None
    energy_mj: np.ndarray | None = None
    energy_bound_mj: np.ndarray | None = None

    def steps(self, count: int) -> "Simulation":
        """The first ``count`` logical steps of every array."""
        return Simulation(
            outputs=self.outputs[:, :count],
            spikes={k: v[:, :count] for k, v in self.spikes.items()},
            operations=None if self.operations is None else self.operations[:, :count],
            spike_counts=None if self.spike_counts is None else {k: v[:, :count] for k, v in self.spike_counts.items()},
            quantisation=self.quantisation, plan=self.plan,
            energy_mj=None if self.energy_mj is None else self.energy_mj[:, :count],
            energy_bound_mj=None if self.energy_bound_mj is None else self.energy_bound_mj[:, :count])
