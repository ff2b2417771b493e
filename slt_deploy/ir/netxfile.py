"""Reading a lava-dl network -- the HDF5 file that slayer's ``export_hdf5``
writes and ``lava.lib.dl.netx.hdf5.Network`` loads (a ``.net`` file) -- as
a standard NIR graph (docs/nir-lava-mapping.md, "lava-dl networks").

What netx runs (lava-dl 0.6.0, ``netx/hdf5.py``; Lava's bit-accurate
models): each layer is a synapse (``Dense`` with the file's integer weight
mantissas, bits and exponent chosen by netx's ``optimize_weight_bits``;
``Conv`` with the integers as they are) into a Lava ``LIF`` with ``du =
iDecay - 1``, ``dv = vDecay``, ``vth = vThMant``, ``bias_mant = bias`` and
``bias_exp = 6``. In Lava's float units (v = v_int / 64) that neuron is

    u <- u (1 - iDecay/4096) + W s;  v <- v (1 - vDecay/4096) + u + bias;
    spike if v > vThMant; v <- 0

which is NIR's forward Euler neuron with step dt and

* iDecay = 4096, vDecay > 0:  ``LIF``  tau = dt / (vDecay/4096), v_leak = bias / (vDecay/4096)
* iDecay = 4096, vDecay = 0:  ``IF``   (the bias becomes the synapse's bias: a constant current)
* otherwise:                  ``CubaLIF`` tau_syn = dt / (iDecay/4096), tau_mem = dt / (vDecay/4096),
                              v_leak = bias / (vDecay/4096)

with r = 1 and w_in = 1 (importers read them differently; every importer
reads weights), the synapse's weights divided by the neuron's input gain
(vDecay/4096 for LIF, iDecay vDecay / 4096^2 for CubaLIF). Decays are one
per layer, or -- slayer's ``shared_param=False`` -- one per neuron (dense)
or per channel (conv): per-neuron time constants in NIR. dt is 1 ms
(only dt / tau matters). The exact integers netx gives Lava are kept in the
graph's metadata (``fixed_point_json``): ``lava-fixed`` runs them as they
are, bit for bit what netx runs.

Layers: ``input`` (its neuron, if any, is fed ``weight x`` with netx's
input transform weight, default 64, and its bias; see :func:`_input`),
``dense`` (without a neuron: slayer's
non-spiking ``Affine`` readout, the per-step current W s), ``conv``
(stride, padding, dilation, groups), ``pool`` (slayer's pooling synapse:
a per-channel convolution with one shared weight; netx cannot run it),
``flatten`` and ``average`` (slayer's mean over output groups, last layer
only). Refused by name: neuron kinds other than CUBA/LOIHI (sigma-delta,
adaptive, resonate-and-fire), a refractory delay other than 1 step (Lava's
LIF has none; netx drops it), non-zero axonal delays, recurrent or complex
layers.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import h5py
import nir
import numpy as np

from ..core.errors import UserError
from ..core.files import require_file
from ..neuron import DECAY_UNITY, DEFAULT_DT
from .nirfile import MAX_ARRAY_BYTES

NETX_LAYERS = ("input", "dense", "conv", "pool", "flatten", "average")
"""Layer types this import reads."""
LIF_NEURONS = ("CUBA", "LOIHI")
"""netx neuron types that are CUBA-LIF neurons (Lava's LIF)."""
REFUSED_NEURONS = {
    "SDNN": "a sigma-delta neuron (SDNN)",
    "ALIF": "an adaptive LIF neuron (ALIF)",
    "RF_PHASE": "a resonate-and-fire neuron (RF)",
    "RF_IZHIKEVICH": "a resonate-and-fire neuron (RF, Izhikevich)",
    "ADRF_PHASE": "an adaptive resonate-and-fire neuron (ADRF)",
    "ADRF_IZHIKEVICH": "an adaptive resonate-and-fire neuron (ADRF, Izhikevich)",
}
"""netx neuron types that no Lava LIF can run, with what they are."""
NETX_BIAS_EXP = 6
"""netx gives Lava every bias as ``bias_mant = bias`` with ``bias_exp = 6``."""
FIXED_POINT_KEY = "fixed_point_json"
"""Graph metadata: the exact integers of a fixed-point network (see :func:`read_netx`)."""


def _text(value) -> str:
    value = np.asarray(value)
    value = value.ravel()[0] if value.size else b""
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)


class _Layer:
    """One layer group of a netx file, read with one-line errors."""

    def __init__(self, index: int, group):
        self.index, self.group = index, group
        if not isinstance(group, h5py.Group) or "type" not in group:
            raise UserError(f"layer {index} has no 'type': not a netx layer")
        self.type = _text(group["type"][()])
        if self.type not in NETX_LAYERS:
            raise UserError(f"layer {index} is of type '{self.type[:40]}': not supported "
                            f"(supported: {', '.join(NETX_LAYERS)})")

    @property
    def label(self) -> str:
        return f"layer {self.index} ({self.type})"

    def has(self, key: str) -> bool:
        return key in self.group

    def array(self, key: str, integral: bool = False) -> np.ndarray:
        if key not in self.group or not isinstance(self.group[key], h5py.Dataset):
            raise UserError(f"{self.label} has no '{key}'")
        value = np.asarray(self.group[key][()])
        if value.dtype.kind not in "biuf" or not np.all(np.isfinite(value)):
            raise UserError(f"{self.label}: '{key}' must hold finite numbers")
        if integral and not np.all(value == np.round(value)):
            raise UserError(f"{self.label}: '{key}' must hold integers (fixed-point mantissas)")
        return value.astype(np.float64)

    def integer(self, key: str, default: int | None = None) -> int:
        if default is not None and key not in self.group:
            return default
        value = self.array(key, integral=True).ravel()
        if value.size != 1:
            raise UserError(f"{self.label}: '{key}' must be one integer, got {value.size} values")
        return int(value[0])

    def pair(self, key: str, default: int) -> tuple[int, int]:
        if key not in self.group:
            return (default, default)
        value = [int(v) for v in self.array(key, integral=True).ravel()]
        if len(value) == 1:
            return (value[0], value[0])
        if len(value) != 2:
            raise UserError(f"{self.label}: '{key}' must be one or two integers")
        return (value[0], value[1])


def _per_neuron(values: np.ndarray, shape: tuple[int, ...], label: str, key: str) -> np.ndarray:
    """``values`` (one, one per channel, or one per neuron) broadcast to the neuron shape ``shape``."""
    values = np.asarray(values).ravel()
    if values.size == 1:
        return np.full(shape, values[0], dtype=values.dtype)
    if values.size == math.prod(shape):
        return values.reshape(shape).copy()
    if values.size == shape[0]:
        return np.broadcast_to(values.reshape((-1,) + (1,) * (len(shape) - 1)), shape).copy()
    raise UserError(f"{label}: '{key}' holds {values.size} values; a layer of shape {list(shape)} takes one, "
                    f"one per channel ({shape[0]}) or one per neuron ({math.prod(shape)})")


class _Neuron:
    """A layer's CUBA neuron: integer decays (one for the layer, or one per
    neuron or channel: slayer's ``shared_param=False``), threshold mantissa,
    refractory delay."""

    def __init__(self, layer: _Layer):
        group = layer.group["neuron"]
        if not isinstance(group, h5py.Group) or "type" not in group:
            raise UserError(f"{layer.label}: its neuron has no type")
        kind = _text(group["type"][()])
        if kind in REFUSED_NEURONS:
            raise UserError(f"{layer.label}: {REFUSED_NEURONS[kind]} is not supported; "
                            f"only CUBA-LIF neurons ({', '.join(LIF_NEURONS)}) run on Lava's LIF")
        if kind not in LIF_NEURONS:
            raise UserError(f"{layer.label}: neuron type '{kind[:40]}' is not supported "
                            f"(supported: {', '.join(LIF_NEURONS)})")
        values = {}
        for key in ("iDecay", "vDecay", "vThMant"):
            if key not in group:
                raise UserError(f"{layer.label}: its {kind} neuron has no '{key}'")
            value = np.asarray(group[key][()]).ravel()
            if value.dtype.kind not in "biuf" or value.size == 0 or not np.all(np.isfinite(value)) \
                    or not np.all(value == np.round(value)):
                raise UserError(f"{layer.label}: neuron '{key}' must hold integers")
            if key == "vThMant" and value.size != 1:
                raise UserError(f"{layer.label}: neuron 'vThMant' must be one integer (Lava's LIF has one "
                                "threshold per process)")
            values[key] = value.astype(np.int64)
        self.kind, self.label = kind, layer.label
        self.i_decay, self.v_decay, self.vth = values["iDecay"], values["vDecay"], int(values["vThMant"][0])
        if not (np.all((0 <= self.i_decay) & (self.i_decay <= DECAY_UNITY))
                and np.all((0 <= self.v_decay) & (self.v_decay <= DECAY_UNITY))):
            raise UserError(f"{layer.label}: decays iDecay={_text_of(self.i_decay)}, vDecay={_text_of(self.v_decay)} "
                            f"must lie in 0..{DECAY_UNITY}")
        if self.vth < 0:
            raise UserError(f"{layer.label}: threshold vThMant={self.vth} must be >= 0")
        refractory = int(np.asarray(group["refDelay"][()]).ravel()[0]) if "refDelay" in group else 1
        if refractory > 1:
            raise UserError(f"{layer.label}: a refractory delay of {refractory} steps is not supported "
                            "(Lava's LIF has none, and netx ignores it)")
        if np.any(self.i_decay == 0):
            raise UserError(f"{layer.label}: iDecay = 0 (a current that never decays) has no NIR equivalent")
        if np.any(self.v_decay == 0) and (np.any(self.v_decay != 0) or np.any(self.i_decay != DECAY_UNITY)):
            raise UserError(f"{layer.label}: vDecay = 0 with iDecay = {_text_of(self.i_decay)} or with other "
                            "neurons leaking (a current-based or partial perfect integrator) has no NIR equivalent")

    @property
    def nir_kind(self) -> str:
        if np.all(self.i_decay == DECAY_UNITY):
            return "IF" if np.all(self.v_decay == 0) else "LIF"
        return "CubaLIF"

    def decays(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """(du, dv) per neuron of a layer of ``shape``, as fractions (iDecay/4096, vDecay/4096)."""
        return (_per_neuron(self.i_decay, shape, self.label, "iDecay") / DECAY_UNITY,
                _per_neuron(self.v_decay, shape, self.label, "vDecay") / DECAY_UNITY)

    def gain(self, shape: tuple[int, ...]) -> np.ndarray:
        """Factor NIR's neuron applies to its input, per neuron of ``shape`` (its weights are divided by it)."""
        du, dv = self.decays(shape)
        return {"IF": np.ones(shape), "LIF": dv, "CubaLIF": du * dv}[self.nir_kind]

    def node(self, shape: tuple[int, ...], bias: np.ndarray, dt: float):
        full = lambda value: np.full(shape, float(value))  # noqa: E731
        kind = self.nir_kind
        if kind == "IF":
            return nir.IF(r=full(1.0), v_threshold=full(self.vth), v_reset=full(0.0))
        du, dv = self.decays(shape)
        v_leak = np.broadcast_to(bias, shape) / dv
        if kind == "LIF":
            return nir.LIF(tau=dt / dv, r=full(1.0), v_leak=v_leak.copy(), v_threshold=full(self.vth),
                           v_reset=full(0.0))
        return nir.CubaLIF(tau_syn=dt / du, tau_mem=dt / dv, r=full(1.0), v_leak=v_leak.copy(),
                           v_threshold=full(self.vth), v_reset=full(0.0), w_in=full(1.0))

    def fixed(self, shape: tuple[int, ...]) -> dict:
        """The integers netx gives Lava's LIF (bias mantissas: the plan's bias);
        du and dv one integer, or one per neuron (flat) where they differ."""
        def integers(values, key, offset=0):
            per_neuron = _per_neuron(values, shape, self.label, key).ravel() - offset
            return int(per_neuron[0]) if np.all(per_neuron == per_neuron[0]) else [int(v) for v in per_neuron]

        return {"du": integers(self.i_decay, "iDecay", 1), "dv": integers(self.v_decay, "vDecay"), "vth": self.vth,
                "bias_exp": NETX_BIAS_EXP, "type": self.kind}


def _text_of(values: np.ndarray) -> str:
    return str(int(values[0])) if values.size == 1 else f"{int(values.min())}..{int(values.max())}"


class _Builder:
    def __init__(self, dt: float):
        self.dt = dt
        self.nodes: dict = {}
        self.edges: list[tuple[str, str]] = []
        self.previous = "input"
        self.shape: tuple[int, ...] = ()
        self.populations: dict[str, dict] = {}
        self.projections: dict[str, dict] = {}
        self.notes: list[str] = []
        self.done = False

    def add(self, name: str, node) -> str:
        self.nodes[name] = node
        self.edges.append((self.previous, name))
        self.previous = name
        return name

    def flatten(self, name: str) -> None:
        if len(self.shape) > 1:
            self.add(name, nir.Flatten(input_type={"input": np.array(self.shape)}, start_dim=0, end_dim=-1))
            self.shape = (math.prod(self.shape),)

    def neuron(self, neuron: _Neuron, name: str, synapse, bias: np.ndarray, kind: str) -> None:
        """A synapse node (its weights already divided by the neuron's gain) into the layer's neuron."""
        self.add(f"{name}_{kind}", synapse)
        self.add(f"{name}_neuron", neuron.node(self.shape, bias, self.dt))
        self.populations[f"{name}_neuron"] = neuron.fixed(self.shape)
        self.projections[f"{name}_neuron"] = {"kind": kind}


def _channel_bias(layer: _Layer, channels: int, shape: tuple[int, ...]) -> np.ndarray:
    """The layer's bias mantissas broadcast to its neuron shape (per neuron or per channel)."""
    if not layer.has("bias"):
        return np.zeros(shape)
    bias = layer.array("bias", integral=True).ravel()
    if bias.size == math.prod(shape):
        return bias.reshape(shape)
    if bias.size == 1 or bias.size == channels:
        return np.broadcast_to(bias.reshape((-1,) + (1,) * (len(shape) - 1)), shape).copy()
    raise UserError(f"{layer.label}: bias of {bias.size} values does not fit {channels} channels")


def _check_delays(layer: _Layer) -> None:
    if layer.has("delay") and np.any(layer.array("delay") != 0):
        raise UserError(f"{layer.label}: axonal delays (up to {int(layer.array('delay').max())} steps) are "
                        "not supported")


def _dense(layer: _Layer, b: _Builder, name: str, last: bool) -> None:
    weight = layer.array("weight", integral=True)
    b.flatten(f"{name}_flatten")
    if weight.ndim == 1 and layer.has("outFeatures"):
        weight = weight.reshape(layer.integer("outFeatures"), -1)
    if weight.ndim != 2 or weight.shape[1] != math.prod(b.shape):
        raise UserError(f"{layer.label}: weight of shape {list(weight.shape)} does not take the "
                        f"{math.prod(b.shape)} values of the layer before")
    _check_delays(layer)
    out = (weight.shape[0],)
    if not layer.has("neuron"):  # slayer's Affine readout (dynamics off): the current W s, per step
        if not last:
            raise UserError(f"{layer.label} has no neuron: only the last layer may be a non-spiking readout")
        bias = _channel_bias(layer, out[0], out) if layer.has("bias") else np.zeros(out)
        b.add(f"{name}_dense", nir.Affine(weight=weight, bias=bias))
        b.shape = out
        b.projections["output"] = {"kind": "dense", "readout": True}
        b.notes.append(f"{layer.label} has no neuron: imported as slayer runs it, the per-step current W s "
                       "(netx would integrate it in a neuron that never fires)")
        return
    neuron = _Neuron(layer)
    bias = _channel_bias(layer, out[0], out)
    if neuron.nir_kind == "IF":
        synapse, bias_v = nir.Affine(weight=weight, bias=bias), np.zeros(out)
    else:
        synapse, bias_v = nir.Linear(weight=weight / neuron.gain(out)[:, None]), bias
    b.shape = out
    b.neuron(neuron, name, synapse, bias_v, "dense")


def _conv_node(layer: _Layer, b: _Builder, weight, stride, padding, dilation, groups, bias, neuron: _Neuron,
               use_bias: bool):
    """A NIR Conv2d of the layer's integer weights divided by its neuron's gain
    (one per output channel: a kernel cannot carry more), and its output shape."""
    c, h, w = b.shape
    out_c, kh, kw = weight.shape[0], weight.shape[2], weight.shape[3]
    if c != weight.shape[1] * groups or out_c % groups:
        raise UserError(f"{layer.label}: weight {list(weight.shape)} with groups={groups} does not take "
                        f"{c} input channels")
    out = [(size + 2 * p - d * (k - 1) - 1) // s + 1
           for size, p, d, k, s in zip((h, w), padding, dilation, (kh, kw), stride)]
    if min(out) < 1 or min(stride + dilation) < 1 or min(padding) < 0:
        raise UserError(f"{layer.label}: kernel, stride {list(stride)}, padding {list(padding)} and dilation "
                        f"{list(dilation)} do not fit the input {list(b.shape)}")
    gain = neuron.gain((out_c, out[0], out[1])).reshape(out_c, -1)
    if not np.all(gain == gain[:, :1]):
        raise UserError(f"{layer.label}: its neuron's decays vary within a channel; a convolution's kernel "
                        "carries one input gain per output channel")
    node = nir.Conv2d(input_shape=(h, w), weight=weight / gain[:, 0, None, None, None],
                      stride=stride, padding=padding,
                      dilation=dilation, groups=groups,
                      bias=bias if use_bias else np.zeros(out_c))
    return node, (out_c, out[0], out[1])


def _spatial(layer: _Layer, b: _Builder) -> None:
    if len(b.shape) != 3:
        raise UserError(f"{layer.label} needs an input of (channels, height, width), got {list(b.shape)}")


def _conv(layer: _Layer, b: _Builder, name: str, last: bool) -> None:
    _spatial(layer, b)
    weight = layer.array("weight", integral=True)
    if weight.ndim == 5:
        weight = weight[..., 0]
    if weight.ndim != 4:
        raise UserError(f"{layer.label}: weight must be 4-D [out, in/groups, kh, kw], got {list(weight.shape)}")
    _check_delays(layer)
    if not layer.has("neuron"):
        raise UserError(f"{layer.label} has no neuron")
    neuron = _Neuron(layer)
    bias = layer.array("bias", integral=True).ravel() if layer.has("bias") else np.zeros(weight.shape[0])
    if bias.size not in (1, weight.shape[0]):
        raise UserError(f"{layer.label}: bias of {bias.size} values does not fit {weight.shape[0]} channels")
    bias = np.broadcast_to(bias, (weight.shape[0],)).copy()
    groups = layer.integer("groups", 1)
    node, out = _conv_node(layer, b, weight, layer.pair("stride", 1), layer.pair("padding", 0),
                           layer.pair("dilation", 1), groups, bias, neuron, neuron.nir_kind == "IF")
    b.shape = out
    bias_v = np.zeros(out) if neuron.nir_kind == "IF" else np.broadcast_to(bias[:, None, None], out).copy()
    b.neuron(neuron, name, node, bias_v, "conv")


def _pool(layer: _Layer, b: _Builder, name: str, last: bool) -> None:
    _spatial(layer, b)
    weight = layer.array("weight", integral=True)
    kernel = layer.pair("kernelSize", 1)
    if weight.size not in (1, kernel[0] * kernel[1]):
        raise UserError(f"{layer.label}: pooling weight of {weight.size} values does not fit kernel {list(kernel)}")
    _check_delays(layer)
    if not layer.has("neuron"):
        raise UserError(f"{layer.label} has no neuron")
    neuron = _Neuron(layer)
    channels = b.shape[0]
    per_channel = np.broadcast_to(weight.reshape(-1), (kernel[0] * kernel[1],)).reshape(1, 1, *kernel)
    full = np.repeat(per_channel, channels, axis=0)
    node, out = _conv_node(layer, b, full, layer.pair("stride", kernel[0]) if layer.has("stride") else kernel,
                           layer.pair("padding", 0), layer.pair("dilation", 1), channels, np.zeros(channels),
                           neuron, False)
    b.shape = out
    b.neuron(neuron, name, node, np.zeros(out), "pool")
    b.notes.append(f"{layer.label}: netx 0.6.0 cannot run pooling layers (NotImplementedError); imported as "
                   "slayer's per-channel sum pool with one shared weight")


def _flatten(layer: _Layer, b: _Builder, name: str, last: bool) -> None:
    b.flatten(f"{name}_flatten")


def _average(layer: _Layer, b: _Builder, name: str, last: bool) -> None:
    if not last:
        raise UserError(f"{layer.label}: an average layer must be the last layer")
    groups = layer.integer("num_outputs", 0) if layer.has("num_outputs") else None
    if groups is None:
        shape = [int(v) for v in layer.array("shape", integral=True).ravel()] if layer.has("shape") else []
        groups = shape[0] if shape else 0
    size = math.prod(b.shape)
    if groups < 1 or size % groups:
        raise UserError(f"{layer.label}: {size} values cannot be averaged into {groups} outputs")
    b.flatten(f"{name}_flatten")
    matrix = np.kron(np.eye(groups), np.full((1, size // groups), 1.0 / (size // groups)))
    b.add(f"{name}_average", nir.Linear(weight=matrix))
    b.shape = (groups,)


NETX_INPUT_WEIGHT = 64
"""netx's input transform weight when the file gives none (slayer's scale S = 1 << 6: a spike of 1.0)."""


def _input(layer: _Layer, b: _Builder, name: str, last: bool) -> None:
    """An input layer's neuron, driven by the transform netx keeps for it
    (``weight x + bias``, mantissas; default weight 64): the weighted input
    is its synaptic input, the bias a constant on v. netx 0.6.0 leaves its
    network input port unconnected to this neuron (its users drive the
    neuron's bias); with iDecay = 4096 both routes are the same arithmetic."""
    if layer.index != 0:
        raise UserError(f"{layer.label}: an input layer must be the first layer")
    if not layer.has("neuron"):
        return
    neuron = _Neuron(layer)
    weight = float(layer.integer("weight", NETX_INPUT_WEIGHT)) if layer.has("weight") else float(NETX_INPUT_WEIGHT)
    bias = float(layer.integer("bias", 0)) if layer.has("bias") else 0.0
    if np.any(neuron.i_decay != DECAY_UNITY):
        b.notes.append(f"{layer.label}: its input (weight {weight:g}) enters the neuron's current; netx's users "
                       "drive this neuron through its bias, which differs when iDecay < 4096")
    if neuron.nir_kind == "IF":
        if bias:
            raise UserError(f"{layer.label}: an input bias on a neuron without leak (vDecay = 0) is not supported")
        b.neuron(neuron, name, nir.Scale(scale=np.full(b.shape, weight)), np.zeros(b.shape), "input")
        return
    scale = nir.Scale(scale=weight / neuron.gain(b.shape))
    b.neuron(neuron, name, scale, np.full(b.shape, bias), "input")


LAYER_READERS = {"input": _input, "dense": _dense, "conv": _conv, "pool": _pool, "flatten": _flatten,
                 "average": _average}
"""netx layer type -> the function that adds its NIR nodes."""


def _input_shape(layers: list[_Layer], given: tuple[int, ...] | None) -> tuple[int, ...]:
    first = layers[0]
    if first.type == "input" and first.has("shape"):
        shape = tuple(int(v) for v in first.array("shape", integral=True).ravel())
    elif given is not None:
        shape = tuple(given)
    elif first.type == "dense":
        shape = (first.integer("inFeatures") if first.has("inFeatures")
                 else int(first.array("weight").reshape(first.array("weight").shape[0], -1).shape[1]),)
    else:
        raise UserError(f"{first.label}: the file has no input layer, so the input's shape is unknown: "
                        "give it with --input-shape C,H,W")
    if not shape or min(shape) < 1:
        raise UserError(f"the input shape {list(shape)} must be positive integers")
    return shape


def _layers(handle) -> list[_Layer]:
    if "layer" not in handle or not isinstance(handle["layer"], h5py.Group):
        raise UserError("it has no 'layer' group: not a netx network (slayer's export_hdf5 writes one)")
    group = handle["layer"]
    keys = list(group.keys())
    if not keys:
        raise UserError("its 'layer' group is empty")
    if sorted(keys, key=lambda k: (len(k), k)) != [str(i) for i in range(len(keys))]:
        raise UserError(f"its layers must be named 0..{len(keys) - 1}, got {', '.join(keys[:6])}")
    return [_Layer(i, group[str(i)]) for i in range(len(keys))]


def read_netx(path: str | os.PathLike, input_shape: tuple[int, ...] | None = None, dt: float = DEFAULT_DT):
    """The lava-dl netx network in ``path`` as a ``nir.NIRGraph`` (see the
    module docstring), with metadata ``dt`` (s), ``input_kind`` (spikes),
    ``producer`` and :data:`FIXED_POINT_KEY`: per population (neuron node)
    the integers netx gives Lava's LIF (``du``, ``dv``, ``vth``,
    ``bias_exp``; the bias mantissas are the population's bias), per
    projection (by target) how netx passes its integer weights (``dense``:
    ``optimize_weight_bits``; ``conv``/``pool``/``input``: as they are).
    ``input_shape`` (C, H, W) or (N,) is needed only when the file has no
    input layer and starts with a convolution. Every failure is one UserError."""
    path = require_file(path, "netx network")
    try:
        if not h5py.is_hdf5(path):
            raise UserError("not HDF5")
        with h5py.File(path, "r") as handle:
            def check(name: str, item) -> None:
                if isinstance(item, h5py.Dataset) and item.nbytes > MAX_ARRAY_BYTES:
                    raise UserError(f"it declares an array '{name}' of {item.nbytes:,} bytes "
                                    f"(at most {MAX_ARRAY_BYTES:,} supported)")

            handle.visititems(check)
            graph = _build(_layers(handle), input_shape, dt)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
    except (OSError, KeyError, ValueError, TypeError, AttributeError, IndexError, RuntimeError,
            ArithmeticError) as exc:  # h5py's errors on a truncated or corrupt file
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise UserError(f"{path} is not a readable netx network: {reason[:200]}") from None
    return graph


def _build(layers: list[_Layer], input_shape, dt: float):
    b = _Builder(dt)
    b.shape = _input_shape(layers, input_shape)
    b.nodes["input"] = nir.Input(input_type={"input": np.array(b.shape)})
    for layer in layers:
        if b.projections.get("output"):
            raise UserError(f"{layer.label} follows the non-spiking readout")
        LAYER_READERS[layer.type](layer, b, f"L{layer.index}", layer is layers[-1])
    if not b.populations:
        raise UserError("it has no layer with neurons")
    b.nodes["output"] = nir.Output(output_type={"output": np.array(b.shape)})
    b.edges.append((b.previous, "output"))
    fixed = {"source": "lava-dl netx", "populations": b.populations, "projections": b.projections}
    metadata = {
        "producer": "lava-dl netx (imported by slt-deploy)",
        "dt": float(dt),
        "input_kind": "spikes",
        FIXED_POINT_KEY: json.dumps(fixed, sort_keys=True),
    }
    if b.notes:
        metadata["import_notes_json"] = json.dumps(b.notes)
    # NIR's own type inference mistakes grouped convolutions; slt_deploy.ir.graph checks shapes itself
    return nir.NIRGraph(nodes=b.nodes, edges=b.edges, metadata=metadata, type_check=False)


def is_netx_file(path: str | os.PathLike) -> bool:
    """True when ``path`` is an HDF5 file with a netx ``layer`` group (and not a NIR graph)."""
    try:
        with h5py.File(Path(path), "r") as handle:
            return "layer" in handle and "node" not in handle
    except (OSError, ValueError):
        return False
