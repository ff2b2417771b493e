"""The lava-dl (slayer) training framework: a recipe built from slayer CUBA blocks.

``recipe.framework == "lava-dl"`` (``slt-deploy train --backend lava-dl``)
builds the recipe's layers as lava-dl ``slayer.block.cuba`` blocks instead
of norse modules. The network keeps the model zoo's interface, so SLT
training, checkpoints, ``eval`` and ``export`` treat it like the norse
network: ``model(x)`` takes x [t, B, *input_shape] (t = latency in time
steps) and returns the readout O [t, B, classes]; ``model(x, record=d)``
also fills d with every spiking layer's spikes [t, B, ...] by the name of
its NIR LIF node. slayer works on [B, features..., t] tensors: each layer
moves time last on the way in and first on the way out.

Neuron mapping (slayer 0.6 ``neuron/cuba.py``, ``dynamics/leaky_integrator.py``,
``spike/spike.py``). A CUBA neuron with ``current_decay = 1``, ``voltage_decay
= 1 - beta``, ``threshold = theta`` and scale S (:data:`SCALE`) computes, per
step, on integers ``x_int = x * (S << 6)`` (``s_scale``; 4096 here)::

    u_int = (S << 6) * (W_q s)                     current: no memory (decay 4096/4096)
    v_int = (v_int * 4096 * beta) >>0 12 + u_int + (S << 6) * b_q
    spike if v_int >= (S << 6) * (theta + 0.01 / (S << 6)), i.e. v_int > (S << 6) * theta
    v_int <- 0 after a spike                      (hard reset to 0)

``>>0`` is a right shift rounding toward zero; the cast of ``(S << 6) * input``
to an integer also truncates. slayer's spike function is written ``v >=
theta`` (for its surrogate), but it adds ``threshold_eps = 0.01 / (S << 6)``
to theta, which on the integer grid makes it the strict ``v > theta`` of the
contract (and of Loihi). So slayer's forward is the contract's neuron
``v <- beta v + I, s = [v > theta], v <- v (1 - s)`` with

* I = W_q s + b_q: W_q = slayer's ``quantize_8bit(W)`` (``pre_hook_fx`` of the
  synapse: W rounded to a step of 2/S and clipped to [-256, 254]/S -- 8-bit
  even mantissas; the float weight is what the optimiser updates, the
  straight-through estimator passes its gradient), b_q = ``-quantize_8bit(
  running_mean)`` of the neuron's ``MeanOnlyBatchNorm`` (see tdBN below);
* the membrane kept on a grid of 1/(S << 6) (= 2^-12): the decay v * beta
  rounds toward zero when v * beta falls off the grid -- an error below 2^-12
  per step and below 2^-12 / (1 - beta) in total; a spike can differ from
  the float neuron only when v lies within that of theta. With beta = 1/2:
  fed by spikes, W_q s and b_q are multiples of 2^-5 (even mantissas), so the
  first 7 halvings after a reset are exact -- slayer's forward *is* the
  float neuron for latencies up to 8. Fed by k x k average-pooled spikes,
  W_q p is a multiple of 2^-5 / k^2 (for k = 2: 2^-7, 5 exact halvings; the
  current itself is truncated to 2^-12 unless k^2 divides 128).

These are the weights the network actually uses, and the exporter writes
them: the NIR graph carries W_q and b_q (times 1/(1-beta), as for norse
models), so our Lava float graph computes the contract with slayer's
quantised parameters exactly, and slayer's forward equals it up to the
membrane grid above (``tests/test_slayer_backend.py`` measures it).

Parameters slayer cannot hold exactly are refused (one line): theta must be a
multiple of 1/S (slayer stores ``int(theta * S) / S``) and 1 - beta a
multiple of 1/4096 (the 12-bit decay).

Surrogate gradient: slayer's own, the exponential (Laplace) kernel of
``spike/spike.py``: ds/dv = scale_rho / (2 tau_rho) exp(-|v - theta| /
tau_rho) with tau_rho = 100 tau_grad theta and scale_rho = 0.1 scale_grad
(cuba.py's TAU_RHO_MULT and SCALE_RHO_MULT). We set tau_rho = gamma / 2 and
scale_rho = 1 (gamma = the recipe's surrogate width): the same peak 1/gamma
and the same area 1 as the contract's triangle surrogate of half-width gamma.
slayer back-propagates through the membrane as a linear leaky integrator
(the reset is not differentiated); norse differentiates the reset term.

tdBN: slayer blocks have no BatchNorm over batch x time with a learned scale
and shift. The backend uses slayer's own neuron ``norm``,
``MeanOnlyBatchNorm``: the mean of the current over batch x time (x space)
per channel is subtracted (in training the batch's, in evaluation the
running mean, momentum 0.1), quantised to 8 bits; it becomes the neuron's
bias b_q = -quantize_8bit(running_mean) at export (netx exports it as the
block bias too). Consequences: no variance normalisation and no learned
gamma/beta -- the scale of the currents is set by the weights alone
(initialised x :data:`WEIGHT_SCALE`), and the bias is not learned but follows
the running mean. Measured (digits-mlp, SLT-TET, 20 epochs, seed 0, rate
test split): 93.9 % at t = 8 and 81.4 % at t = 1 on lava-dl vs 96.1 % and
86.7 % on norse with tdBN.

Supported layers: linear, conv (stride, padding, dilation, groups), avgpool,
global_avgpool (a per-step mean over k x k spikes between blocks: slayer has
no pure pooling block -- its ``Pool`` block has a neuron -- so it is a plain
tensor operation, folded forward into the next synapse at export, as for
norse), flatten, and the non-spiking readout: slayer's ``Affine`` block with
``dynamics=False`` (its weights W_q x, quantised like every block) plus a
float bias. ``residual`` blocks are refused: slayer blocks form a
feed-forward chain and netx's sequential HDF5 format cannot express the
shortcut. Training runs on one process (slayer's MeanOnlyBatchNorm has no
global-batch statistics: ``--nproc`` is refused).
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn

from ..core.compat import import_lava
from ..core.errors import UserError
from ..neuron import SLAYER_SCALE, LIFParameters, slayer_neuron_params
from .zoo import AvgPool, Flatten, Recipe, parse_layer

FRAMEWORKS = ("norse", "lava-dl")
"""Training frameworks: norse's LIF-box (the model zoo) and lava-dl slayer (this module)."""
SCALE = SLAYER_SCALE
"""slayer's neuron ``scale`` S (:data:`slt_deploy.neuron.SLAYER_SCALE`)."""
WEIGHT_SCALE = 4
"""Initialisation gain of every synapse: slayer's ``weight_scale`` times the
default U(-1/sqrt(fan_in), 1/sqrt(fan_in)). Without tdBN's variance
normalisation the currents would otherwise start far below theta (measured on
digits-mlp, 3 epochs: gain 1 never spikes and stays at chance, 2 and 8 learn
slower than 4)."""
def _slayer():
    import_lava(with_dl=True)
    from lava.lib.dl import slayer  # lava-dl only when a slayer model is built

    return slayer


def check_framework(framework: str) -> None:
    if framework not in FRAMEWORKS:
        raise UserError(f"unknown training framework '{framework}' (--backend): choose one of {', '.join(FRAMEWORKS)}")


def neuron_params(p: LIFParameters, norm_features: int | None = None) -> dict:
    """slayer CUBA neuron parameters of the contract's neuron ``p``
    (:func:`slt_deploy.neuron.slayer_neuron_params`); ``norm_features``:
    channels of its MeanOnlyBatchNorm (None: no norm, for the readout)."""
    norm = None
    if norm_features is not None:
        norm = functools.partial(_slayer().neuron.norm.MeanOnlyBatchNorm, num_features=norm_features)
    try:
        return slayer_neuron_params(p, norm)
    except ValueError as exc:
        raise UserError(f"lava-dl backend: {exc}") from None


def _time_last(x: torch.Tensor) -> torch.Tensor:
    """[t, B, ...] -> slayer's [B, ..., t]."""
    return x.movedim(0, -1).contiguous()


def _time_first(x: torch.Tensor) -> torch.Tensor:
    """slayer's [B, ..., t] -> [t, B, ...]."""
    return x.movedim(-1, 0)


class SlayerSpikingLayer(nn.Module):
    """A slayer CUBA ``Dense`` or ``Conv`` block (synapse -> MeanOnlyBatchNorm
    -> CUBA neuron): input [t, B, ...] -> spikes [t, B, ...] (0/1)."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def quantised_weight(self) -> torch.Tensor:
        """W_q, the weights the forward pass uses: [out, in] (dense) or [out, in/groups, kh, kw] (conv)."""
        synapse = self.block.synapse
        weight = synapse.pre_hook_fx(synapse.weight)
        return weight[..., 0] if type(synapse).__name__ == "Conv" else weight.reshape(weight.shape[:2])

    def quantised_bias(self) -> torch.Tensor:
        """b_q = -quantize_8bit(running mean) [out]: the bias the forward pass uses in evaluation."""
        return -self.block.neuron.quantize_8bit(self.block.neuron.norm.running_mean)

    def forward(self, x: torch.Tensor, state: dict, record: dict | None, name: str) -> torch.Tensor:
        spikes = _time_first(self.block(_time_last(x)))
        if record is not None:
            record[f"{name}_lif"] = spikes
        return spikes


class SlayerReadout(nn.Module):
    """The non-spiking readout O[t] = W_q x[t] + b: slayer's ``Affine`` block
    (``dynamics=False``: its synaptic output only) and a float bias [classes].
    Input [t, B, features] -> [t, B, classes]."""

    def __init__(self, block: nn.Module, classes: int, features: int):
        super().__init__()
        self.block = block
        bound = 1.0 / math.sqrt(features)  # nn.Linear's bias initialisation
        self.bias = nn.Parameter(torch.empty(classes).uniform_(-bound, bound))

    @property
    def weight(self) -> torch.Tensor:
        """W_q [classes, features]: the quantised weights the forward pass uses."""
        synapse = self.block.synapse
        weight = synapse.pre_hook_fx(synapse.weight)
        return weight.reshape(weight.shape[:2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _time_first(self.block(_time_last(x))) + self.bias


class SlayerNetwork(nn.Module):
    """A recipe built from slayer CUBA blocks (see the module docstring).

    ``forward(x, record=None)``: x [t, B, *input_shape] -> O [t, B, classes];
    ``record`` (a dict) gets every spiking layer's spikes [t, B, ...] under
    its NIR LIF node name ``l<index>_<type>_lif``. Unlike the norse network,
    membranes are not carried across calls (every call starts at rest)."""

    framework = "lava-dl"

    def __init__(self, recipe: Recipe):
        super().__init__()
        slayer = _slayer()
        self.recipe = recipe
        self.stage_names: list[str] = []
        self.stages = nn.ModuleList()
        shape = tuple(recipe.input_shape)
        for index, spec in enumerate(recipe.layers):
            stage, shape = _build_stage(slayer, spec, shape, recipe, index)
            self.stages.append(stage)
            self.stage_names.append(f"l{index}_{spec['type']}")
        if len(shape) != 1:
            raise UserError(f"recipe {recipe.name}: the readout needs a flat input, got shape {shape} "
                            "(add a flatten layer)")
        block = slayer.block.cuba.Affine(neuron_params(recipe.neuron), shape[0], recipe.classes,
                                         weight_scale=WEIGHT_SCALE, dynamics=False)
        self.readout = SlayerReadout(block, recipe.classes, shape[0])

    def forward(self, x: torch.Tensor, record: dict | None = None) -> torch.Tensor:
        expected = tuple(self.recipe.input_shape)
        if x.dim() != 2 + len(expected) or tuple(x.shape[2:]) != expected:
            raise UserError(
                f"model {self.recipe.name} takes input [t, batch, {', '.join(map(str, expected))}], "
                f"got {list(x.shape)}"
            )
        for name, stage in zip(self.stage_names, self.stages):
            x = stage(x, {}, record, name)
        return self.readout(x)

    def spiking_layer_names(self) -> list[str]:
        record: dict = {}
        with torch.no_grad():
            was_training = self.training
            self.eval()
            self(torch.zeros(1, 1, *self.recipe.input_shape, dtype=self.readout.bias.dtype), record=record)
            self.train(was_training)
        return list(record)


def _build_stage(slayer, spec: dict, shape: tuple[int, ...], recipe: Recipe, index: int):
    if spec.get("type") == "residual":
        raise UserError(f"recipe {recipe.name}: layer {index} (residual) is not supported by the lava-dl "
                        "backend (slayer blocks form a chain; netx cannot express the shortcut): use --backend norse")
    layer = parse_layer(spec, shape, recipe, index)
    if layer.kind == "linear":
        block = slayer.block.cuba.Dense(neuron_params(recipe.neuron, layer.features), shape[0], layer.features,
                                        weight_scale=WEIGHT_SCALE, delay_shift=False)
        return SlayerSpikingLayer(block), layer.out_shape
    if layer.kind == "flatten":
        return Flatten(), layer.out_shape
    if layer.kind == "conv":
        block = slayer.block.cuba.Conv(neuron_params(recipe.neuron, layer.channels), shape[0], layer.channels,
                                       layer.kernel, stride=layer.stride, padding=layer.padding,
                                       dilation=layer.dilation, groups=layer.groups,
                                       weight_scale=WEIGHT_SCALE, delay_shift=False)
        return SlayerSpikingLayer(block), layer.out_shape
    return AvgPool(layer.kernel), layer.out_shape


def build_slayer_model(recipe: Recipe) -> SlayerNetwork:
    """A freshly initialised slayer network for ``recipe`` (seed torch first for reproducibility)."""
    return SlayerNetwork(recipe)


__all__ = ["FRAMEWORKS", "SCALE", "SlayerNetwork", "build_slayer_model", "check_framework", "neuron_params"]
