"""Reference simulation of any supported NIR graph in PyTorch (float64).

This is the ``torch`` backend of ``slt-deploy run`` and the reference the
Lava backends are checked against. It interprets the NIR graph node by node
(independently of the deployment stage, which fuses and re-times layers for
Lava): linear nodes through the handlers of :func:`~slt_deploy.ir.graph.linear_op`,
neuron nodes through the one step function :func:`slt_deploy.neuron.lif_step`
with the parameters :func:`slt_deploy.neuron.nir_neuron` maps them to
(forward Euler with step ``dt``; per-neuron parameters and any v_reset kept):

* LIF:      v <- v + dt/tau (v_leak - v + r I);  z = v > v_threshold;  v <- v_reset where z
* IF:       v <- v + r I  (per step, independent of dt, as sinabs writes and norse reads it)
* LI:       v <- v + dt/tau (v_leak - v + r I);  output v
* CubaLIF:  i <- i + dt/tau_syn (w_in x - i);  v <- v + dt/tau_mem (v_leak - v + r i);  spike/reset as LIF
* CubaLI:   the same without spikes; output v

(norse's importer ignores r; here r is applied, as NIR defines it. Graphs
written by slt-deploy keep r = 1, so both agree.) Each step, nodes run in
NIR order; fan-in sums; back edges carry the previous step's value, and at
a sample's first step the value the node has at rest (all neurons silent:
a recurrent edge's bias applied to zero spikes, :meth:`ReferenceNetwork.rest_values`).

Inputs are [samples, steps, *input_shape] in the graph's own step order;
the result's outputs [samples, steps, *output_shape] and, when recorded,
``spikes`` every neuron node's output (spikes, or v for LI/CubaLI) as
[samples, steps, *shape].
"""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import torch

from ..core.errors import UserError
from ..core.result import Simulation
from ..neuron import NeuronParameters, lif_step, nir_neuron
from .graph import NEURON_TYPES, FlatGraph, analyse, check_time_step, linear_op


def _parameter(value, shape: tuple[int, ...]):
    """A neuron parameter as a float when it is the same for every neuron, else a float64 tensor of ``shape``."""
    array = np.asarray(value, dtype=np.float64)
    if array.size and np.all(array == array.ravel()[0]):
        return float(array.ravel()[0])
    return torch.as_tensor(array).expand(shape)


def _neuron_update(p: NeuronParameters, shape: tuple[int, ...]):
    """update(current, (i, v)) -> (output, (i, v)) of a neuron node: its spikes, or v when it does not spike."""
    spiking = p.spiking
    p = NeuronParameters(**{f.name: _parameter(getattr(p, f.name), shape) for f in fields(NeuronParameters)})
    gain = p.gain

    def update(current, state):
        spikes, state = lif_step(current if isinstance(gain, float) and gain == 1.0 else gain * current, state, p)
        return (spikes if spiking else state[1]), state

    return update


class ReferenceNetwork:
    """A NIR graph ready to simulate; build once, run many inputs."""

    def __init__(self, graph, dt: float, allow_unstable_dt: bool = False):
        self.flat: FlatGraph = analyse(graph)
        self.dt = float(dt)
        check_time_step(self.flat, self.dt, allow_unstable_dt)
        flat = self.flat
        self.neurons = {name: _neuron_update(nir_neuron(flat.nodes[name], self.dt), flat.shapes[name])
                        for name in flat.order if flat.kinds[name] in NEURON_TYPES}
        self.linear = {name: linear_op(flat, name) for name in flat.order if name not in self.neurons}

    def initial_state(self, samples: int) -> dict:
        """(current, voltage) of every neuron node, zero."""
        return {name: (torch.zeros(samples, *self.flat.shapes[name], dtype=torch.float64),) * 2
                for name in self.neurons}

    def rest_values(self, samples: int) -> dict:
        """Every node's value when the input and every neuron output zero:
        what a back edge carries into a sample's first step. NIR's recurrent
        input at the first step is thus the edge's bias applied to zero
        spikes, whichever edge of the cycle is the back edge."""
        flat, rest = self.flat, {}

        def value(name: str) -> torch.Tensor:
            if name not in rest:
                if name == flat.input_name or name in self.neurons:  # every cycle passes through a neuron
                    rest[name] = torch.zeros(samples, *flat.shapes[name], dtype=torch.float64)
                else:
                    rest[name] = self.linear[name](sum(value(source) for source in flat.sources(name)))
            return rest[name]

        return {name: value(name) for name in flat.order}

    @torch.no_grad()
    def run(self, inputs, record: bool = True) -> Simulation:
        flat = self.flat
        x = torch.as_tensor(np.asarray(inputs, dtype=np.float64))
        expected = flat.shapes[flat.input_name]
        if x.dim() != 2 + len(expected) or tuple(x.shape[2:]) != expected:
            raise UserError(
                f"input must have shape [samples, steps, {', '.join(map(str, expected))}], got {list(x.shape)}"
            )
        samples, steps = x.shape[:2]
        state = self.initial_state(samples)
        previous = self.rest_values(samples)
        outputs, records = [], {name: [] for name in self.neurons}
        for step in range(steps):
            values: dict[str, torch.Tensor] = {}
            for name in flat.order:
                if name == flat.input_name:
                    values[name] = x[:, step]
                    continue
                total = None
                for source in flat.sources(name):
                    value = previous[source] if (source, name) in flat.back_edges else values[source]
                    total = value if total is None else total + value
                if name in self.neurons:
                    values[name], state[name] = self.neurons[name](total, state[name])
                    if record:
                        records[name].append(values[name])
                else:
                    values[name] = self.linear[name](total)
            outputs.append(values[flat.output_name])
            previous = values
        return Simulation(
            outputs=torch.stack(outputs, 1).numpy(),
            spikes={name: torch.stack(v, 1).numpy() for name, v in records.items()} if record else {},
        )
