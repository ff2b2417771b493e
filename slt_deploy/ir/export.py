"""Export a trained network to a standard NIR graph.

The graph is the network as deployed:

* BatchNorm (tdBN, eval statistics) is folded into the weights and bias of
  the synaptic layer before it: W' = W * s, b' = beta_bn - mu * s with
  s = gamma / sqrt(var + eps);
* every LIF becomes ``nir.LIF(tau = dt/(1-beta), r = 1, v_leak = 0,
  v_threshold = theta, v_reset = 0)`` and the weights and bias feeding it are
  multiplied by 1/(1-beta) (docs/nir-lava-mapping.md), so forward Euler with step
  dt is exactly the paper's neuron;
* average pooling becomes ``nir.SumPool2d`` with the 1/k^2 folded into the
  next synaptic layer (every NIR importer reads SumPool2d and weights;
  norse's importer has no AvgPool2d);
* a residual block's identity shortcut becomes a 1x1 Conv2d with the
  diagonal weight 1/(1-beta), its projection shortcut a Conv2d; both meet
  the main branch at the second LIF (NIR sums fan-in);
* the non-spiking readout is ``Affine -> Output``.

Node names follow the model: ``l<i>_<type>_syn``, ``..._lif``, ``..._pool``,
``..._flatten``; residual blocks ``..._conv1``, ``_lif1``, ``_conv2``,
``_shortcut``, ``_lif2``; then ``readout`` and ``output``. The LIF node names
equal the keys of the model's spike record, so spikes compare by name.

Graph metadata (flat, numbers and strings only): ``producer``, ``model``,
``dt`` (s), ``beta``, ``threshold``, ``latency_T``, ``method``, ``loss``,
``dataset``, ``encoding``, ``input_kind`` (``analog`` for direct encoding,
else ``spikes``), ``recipe_json`` and, when known, ``accuracy_profile_json``.
"""

from __future__ import annotations

import json
from typing import Any

import nir
import numpy as np
import torch
from torch import nn

from ..core import __version__
from ..models.zoo import AvgPool, Flatten, ResidualBlock, SpikingLayer, SpikingNetwork
from ..neuron import nir_lif_parameters, norse_input_gain


def _fold_batchnorm(weight: torch.Tensor, norm: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """(W', b') of a bias-free synapse followed by BatchNorm in eval mode."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    shape = (-1,) + (1,) * (weight.dim() - 1)
    folded_weight = weight * scale.view(shape)
    folded_bias = norm.bias - norm.running_mean * scale
    return folded_weight.detach().double().numpy(), folded_bias.detach().double().numpy()


class _GraphBuilder:
    def __init__(self, model: SpikingNetwork):
        self.nir = nir
        self.model = model
        recipe = model.recipe
        self.gain = norse_input_gain(recipe.neuron)
        self.lif_parameters = nir_lif_parameters(recipe.neuron, recipe.dt)
        self.nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array(recipe.input_shape)})}
        self.edges: list[tuple[str, str]] = []
        self.pool_factor = 1.0  # 1/k^2 of sum pools waiting to be folded into the next synapse

    def add(self, name: str, node, *sources: str) -> str:
        self.nodes[name] = node
        self.edges += [(source, name) for source in sources]
        return name

    def lif(self, name: str, shape: tuple[int, ...], source: str) -> str:
        p = self.lif_parameters
        node = self.nir.LIF(**{key: np.full(shape, value, dtype=np.float64) for key, value in p.items()})
        return self.add(name, node, source)

    def conv(self, name: str, conv: nn.Conv2d, norm: nn.Module, in_shape: tuple, source: str) -> str:
        weight, bias = _fold_batchnorm(conv.weight, norm)
        node = self.nir.Conv2d(
            input_shape=tuple(int(s) for s in in_shape[1:]),
            weight=weight * self.gain * self.pool_factor,
            stride=tuple(conv.stride),
            padding=tuple(conv.padding),
            dilation=tuple(conv.dilation),
            groups=conv.groups,
            bias=bias * self.gain,
        )
        return self.add(name, node, source)

    def build(self):
        shape, previous = tuple(self.model.recipe.input_shape), "input"
        for name, stage in zip(self.model.stage_names, self.model.stages):
            previous, shape = self.stage(name, stage, shape, previous)
        weight = self.model.readout.weight.detach().double().numpy() * self.pool_factor
        bias = self.model.readout.bias.detach().double().numpy()
        readout = self.add("readout", self.nir.Affine(weight=weight, bias=bias), previous)
        self.add("output", self.nir.Output(output_type={"output": np.array([weight.shape[0]])}), readout)
        return self.nodes, self.edges

    def stage(self, name: str, stage: nn.Module, shape: tuple, previous: str):
        nir = self.nir
        if isinstance(stage, SpikingLayer):
            if isinstance(stage.synapse, nn.Linear):
                weight, bias = _fold_batchnorm(stage.synapse.weight, stage.norm)
                node = nir.Affine(weight=weight * self.gain * self.pool_factor, bias=bias * self.gain)
                out_shape = (weight.shape[0],)
                synapse = self.add(f"{name}_syn", node, previous)
            else:
                synapse = self.conv(f"{name}_syn", stage.synapse, stage.norm, shape, previous)
                out_shape = tuple(int(s) for s in self.nodes[synapse].output_type["output"])
            self.pool_factor = 1.0
            return self.lif(f"{name}_lif", out_shape, synapse), out_shape
        if isinstance(stage, AvgPool):
            k = stage.kernel
            node = nir.SumPool2d(kernel_size=np.array([k, k]), stride=np.array([k, k]), padding=np.array([0, 0]))
            self.pool_factor /= k * k
            out_shape = (shape[0], shape[1] // k, shape[2] // k)
            return self.add(f"{name}_pool", node, previous), out_shape
        if isinstance(stage, Flatten):
            node = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1)
            return self.add(f"{name}_flatten", node, previous), (int(np.prod(shape)),)
        if isinstance(stage, ResidualBlock):
            conv1 = self.conv(f"{name}_conv1", stage.conv1, stage.bn1, shape, previous)
            mid_shape = tuple(int(s) for s in self.nodes[conv1].output_type["output"])
            lif1 = self.lif(f"{name}_lif1", mid_shape, conv1)
            if stage.shortcut is None:
                # NIR 1.0's type inference mistakes a grouped conv's input channels,
                # so the identity is a full 1x1 conv with a diagonal weight; the
                # deployment stage turns it back into one synapse per neuron.
                channels = shape[0]
                weight = np.eye(channels).reshape(channels, channels, 1, 1) * self.gain * self.pool_factor
                shortcut = nir.Conv2d(
                    input_shape=tuple(shape[1:]), weight=weight, stride=(1, 1), padding=(0, 0),
                    dilation=(1, 1), groups=1, bias=np.zeros(channels),
                )
                shortcut = self.add(f"{name}_shortcut", shortcut, previous)
            else:
                shortcut = self.conv(f"{name}_shortcut", stage.shortcut[0], stage.shortcut[1], shape, previous)
            self.pool_factor = 1.0
            conv2 = self.conv(f"{name}_conv2", stage.conv2, stage.bn2, mid_shape, lif1)
            lif2 = self.lif(f"{name}_lif2", mid_shape, conv2)
            self.edges.append((shortcut, lif2))
            return lif2, mid_shape
        raise TypeError(f"cannot export stage {name} ({type(stage).__name__})")


class _SlayerGraphBuilder(_GraphBuilder):
    """The exporter's graph builder with slayer layers: W_q and b_q (the
    parameters slayer's forward uses) instead of BatchNorm-folded weights;
    everything else (LIF nodes, gain 1/(1-beta), SumPool2d, Flatten, the
    Affine readout, node names) is the norse models' export."""

    def stage(self, name: str, stage: nn.Module, shape: tuple, previous: str):
        from ..models.slayer import SlayerSpikingLayer  # lava-dl is imported only for slayer models

        if not isinstance(stage, SlayerSpikingLayer):
            return super().stage(name, stage, shape, previous)
        nir = self.nir
        weight = stage.quantised_weight().detach().double().numpy()
        bias = stage.quantised_bias().detach().double().numpy()
        synapse = stage.block.synapse
        if type(synapse).__name__ == "Conv":
            node = nir.Conv2d(
                input_shape=tuple(int(s) for s in shape[1:]),
                weight=weight * self.gain * self.pool_factor,
                stride=tuple(synapse.stride[:2]),
                padding=tuple(synapse.padding[:2]),
                dilation=tuple(synapse.dilation[:2]),
                groups=synapse.groups,
                bias=bias * self.gain,
            )
            synapse_name = self.add(f"{name}_syn", node, previous)
            out_shape = tuple(int(s) for s in self.nodes[synapse_name].output_type["output"])
        else:
            node = nir.Affine(weight=weight * self.gain * self.pool_factor, bias=bias * self.gain)
            synapse_name = self.add(f"{name}_syn", node, previous)
            out_shape = (weight.shape[0],)
        self.pool_factor = 1.0
        return self.lif(f"{name}_lif", out_shape, synapse_name), out_shape


def slayer_graph_nodes(model):
    """(NIR nodes, edges) of a slayer network (:class:`~slt_deploy.models.slayer.SlayerNetwork`)."""
    return _SlayerGraphBuilder(model).build()



def export_model(model: SpikingNetwork, profile: dict | None = None, extra_metadata: dict | None = None):
    """The NIR graph of ``model`` (eval mode, float64 parameters).

    ``profile`` (e.g. the JSON written by ``slt-deploy eval``) is stored in the
    metadata as ``accuracy_profile_json``."""
    model = model.eval()
    recipe = model.recipe
    if getattr(model, "framework", "norse") == "lava-dl":  # slayer-trained: its quantised W_q, b_q
        nodes, edges = slayer_graph_nodes(model)
    else:
        nodes, edges = _GraphBuilder(model).build()
    metadata: dict[str, Any] = {
        "producer": f"slt-deploy {__version__}",
        "model": recipe.name,
        "dt": float(recipe.dt),
        "beta": float(recipe.neuron.beta),
        "threshold": float(recipe.neuron.threshold),
        "latency_T": int(recipe.train.latency),
        "method": recipe.train.method,
        "loss": recipe.train.loss,
        "dataset": recipe.dataset,
        "encoding": recipe.encoding,
        "input_kind": "analog" if recipe.encoding == "direct" else "spikes",
        "recipe_json": json.dumps(recipe.to_dict(), sort_keys=True),
    }
    if profile is not None:
        metadata["accuracy_profile_json"] = json.dumps(profile, sort_keys=True)
    metadata.update(extra_metadata or {})
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)
