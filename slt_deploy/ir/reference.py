"""Reference simulation of any supported NIR graph in PyTorch (float64).

This is the ``torch`` backend of ``slt-deploy run`` and the reference the
Lava backends are checked against. It interprets the NIR graph node by node
(independently of the deployment stage, which fuses and re-times layers for
Lava), with forward-Euler neurons of step ``dt``:

* LIF:      v <- v + dt/tau (v_leak - v + r I);  z = v > v_threshold;  v <- v_reset where z
* IF:       v <- v + r I  (per step, independent of dt, as sinabs writes and norse reads it)
* LI:       v <- v + dt/tau (v_leak - v + r I);  output v
* CubaLIF:  i <- i + dt/tau_syn (w_in x - i);  v <- v + dt/tau_mem (v_leak - v + r i);  spike/reset as LIF
* CubaLI:   the same without spikes; output v

(norse's importer ignores r; here r is applied, as NIR defines it. Graphs
written by slt-deploy keep r = 1, so both agree.) Each step, nodes run in
NIR order; fan-in sums; back edges carry the previous step's value.

Inputs are [samples, steps, *input_shape] in the graph's own step order;
outputs [samples, steps, *output_shape]; ``record`` holds every neuron
node's output (spikes, or v for LI/CubaLI) as [samples, steps, *shape].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import UserError
from .graph import FlatGraph, analyse, conv_geometry, pool_geometry


def _t(value, shape=None) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(value, dtype=np.float64))
    return tensor if shape is None else tensor.expand(shape).clone()


@dataclass
class Simulation:
    outputs: torch.Tensor
    record: dict[str, torch.Tensor]


class ReferenceNetwork:
    """A NIR graph ready to simulate; build once, run many inputs."""

    def __init__(self, graph, dt: float):
        self.flat: FlatGraph = analyse(graph)
        self.dt = float(dt)
        self.ops = {name: self._compile(name) for name in self.flat.order}

    def _compile(self, name: str):
        flat = self.flat
        node, kind = flat.nodes[name], flat.kinds[name]
        shape = flat.shapes[name]
        in_shape = None
        sources = [s for s in flat.sources(name) if (s, name) not in flat.back_edges]
        if sources:
            in_shape = flat.shapes[sources[0]]
        dt = self.dt
        if kind in ("Input", "Output", "Identity"):
            return None
        if kind == "Affine":
            weight, bias = _t(node.weight), _t(node.bias)
            return lambda x: x @ weight.T + bias
        if kind == "Linear":
            weight = _t(node.weight)
            return lambda x: x @ weight.T
        if kind == "Scale":
            scale = _t(node.scale)
            return lambda x: x * scale
        if kind == "Flatten":
            return lambda x: x.reshape(x.shape[0], *shape)
        if kind == "Conv2d":
            stride, padding, dilation, groups, _ = conv_geometry(node, name, in_shape)
            weight, bias = _t(node.weight), _t(node.bias)
            bias = bias if bias.dim() else bias.expand(weight.shape[0])
            return lambda x: F.conv2d(x, weight, bias, stride, padding, dilation, groups)
        if kind in ("SumPool2d", "AvgPool2d"):
            kernel, stride, padding, _ = pool_geometry(node, name, in_shape)
            area = kernel[0] * kernel[1] if kind == "SumPool2d" else 1
            return lambda x: F.avg_pool2d(x, kernel, stride, padding, count_include_pad=True) * area
        # neurons: (update(current, state) -> (output, state), initial state)
        if kind == "LIF":
            k, r, leak = _t(dt / np.asarray(node.tau, dtype=np.float64), shape), _t(node.r, shape), _t(node.v_leak, shape)
            threshold, reset = _t(node.v_threshold, shape), _t(node.v_reset, shape)

            def lif(current, v):
                v = v + k * (leak - v + r * current)
                z = (v > threshold).double()
                return z, torch.where(z > 0, reset, v)

            return lif
        if kind == "IF":
            r, threshold, reset = _t(node.r, shape), _t(node.v_threshold, shape), _t(node.v_reset, shape)

            def integrate_and_fire(current, v):
                v = v + r * current
                z = (v > threshold).double()
                return z, torch.where(z > 0, reset, v)

            return integrate_and_fire
        if kind == "LI":
            k, r, leak = _t(dt / np.asarray(node.tau, dtype=np.float64), shape), _t(node.r, shape), _t(node.v_leak, shape)
            return lambda current, v: (v + k * (leak - v + r * current),) * 2
        if kind in ("CubaLIF", "CubaLI"):
            k_syn = _t(dt / np.asarray(node.tau_syn, dtype=np.float64), shape)
            k_mem = _t(dt / np.asarray(node.tau_mem, dtype=np.float64), shape)
            r, leak, w_in = _t(node.r, shape), _t(node.v_leak, shape), _t(node.w_in, shape)
            spiking = kind == "CubaLIF"
            if spiking:
                threshold = _t(node.v_threshold, shape)
                reset = _t(getattr(node, "v_reset", None) if getattr(node, "v_reset", None) is not None else 0.0, shape)

            def cuba(current, state):
                i, v = state
                i = i + k_syn * (w_in * current - i)
                v = v + k_mem * (leak - v + r * i)
                if not spiking:
                    return v, (i, v)
                z = (v > threshold).double()
                return z, (i, torch.where(z > 0, reset, v))

            return cuba
        raise UserError(f"node '{name}' ({kind}) has no reference semantics")

    def initial_state(self, samples: int) -> dict:
        state = {}
        for name in self.flat.order:
            kind = self.flat.kinds[name]
            zeros = torch.zeros(samples, *self.flat.shapes[name], dtype=torch.float64)
            if kind in ("CubaLIF", "CubaLI"):
                state[name] = (zeros, zeros.clone())
            elif kind in ("LIF", "IF", "LI"):
                state[name] = zeros
        return state

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
        previous = {name: torch.zeros(samples, *flat.shapes[name], dtype=torch.float64) for name in flat.order}
        outputs, records = [], {n: [] for n in flat.order if flat.kinds[n] in ("LIF", "IF", "LI", "CubaLIF", "CubaLI")}
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
                op = self.ops[name]
                if name in state:
                    values[name], state[name] = op(total, state[name])
                    if record:
                        records[name].append(values[name])
                else:
                    values[name] = total if op is None else op(total)
            outputs.append(values[flat.output_name])
            previous = values
        return Simulation(
            outputs=torch.stack(outputs, 1),
            record={name: torch.stack(v, 1) for name, v in records.items()} if record else {},
        )
