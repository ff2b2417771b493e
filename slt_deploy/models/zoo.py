"""Model zoo: recipes (TOML files in the top-level ``models/``) built into
spiking networks that run on norse's LIF-box neuron.

A recipe names the architecture (input shape, layers, classes), the neuron
(:class:`~slt_deploy.neuron.LIFParameters`), the default data and the training
settings of the paper's Table 1. Every network built here has the same shape:

* spiking layers: a synaptic layer (Linear or Conv2d), tdBN (BatchNorm over
  the batch x time axis) and the contract's LIF neuron (norse LIF-box);
* average pooling and flattening between them, and residual blocks
  (ResNet-19's BasicBlock: conv-tdBN-LIF-conv-tdBN, plus a shortcut, into a LIF);
* a non-spiking readout: O[t] = W x[t] + b, prediction at latency t =
  argmax of (1/t) sum_{s<=t} O[s].

Tensors are time-first: inputs [t, batch, *input_shape], outputs
[t, batch, classes], where t is the latency in time steps.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

with warnings.catch_warnings():  # norse scripts functions with torch.jit, which torch now deprecates
    warnings.simplefilter("ignore", FutureWarning)
    from norse.torch.functional.lif_box import LIFBoxFeedForwardState, lif_box_feed_forward_step

from ..core.errors import UserError
from ..core.files import read_toml
from ..neuron import DEFAULT_DT, LIFParameters, norse_input_gain, norse_parameters

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"

LAYER_KEYS = {
    "linear": {"features"},
    "conv": {"channels", "kernel", "stride", "padding", "dilation", "groups"},
    "avgpool": {"kernel"},
    "global_avgpool": set(),
    "flatten": set(),
    "residual": {"channels", "stride"},
}


@dataclass(frozen=True)
class TrainSettings:
    """Training settings of a recipe (the paper's Table 1 for its models).

    latency: maximum latency T in time steps; epochs; batch_size in samples;
    lr: Adam learning rate; lam: lambda of the TET regulariser; framework: the
    training framework, "norse" (norse's LIF-box) or "lava-dl" (slayer CUBA
    blocks, :mod:`slt_deploy.models.slayer`); checkpoints without it are norse.
    Files (recipes, checkpoints) keep it under the key ``backend``, the
    option ``slt-deploy train --backend``."""

    latency: int = 8
    method: str = "slt"
    loss: str = "tet"
    lam: float = 0.0
    epochs: int = 60
    batch_size: int = 64
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    scheduler: str = "cosine"
    seed: int = 0
    framework: str = "norse"


@dataclass(frozen=True)
class Recipe:
    """Architecture, neuron, data and training settings of one model."""

    name: str
    input_shape: tuple[int, ...]
    classes: int
    layers: tuple[dict[str, Any], ...]
    neuron: LIFParameters = LIFParameters()
    dataset: str = "digits"
    encoding: str = "rate"
    train: TrainSettings = TrainSettings()
    description: str = ""
    dt: float = DEFAULT_DT

    @property
    def framework(self) -> str:
        """Training framework: "norse" or "lava-dl" (stored in the training settings)."""
        return self.train.framework

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for checkpoints and NIR metadata); inverse of :func:`recipe_from_dict`."""
        data = asdict(self)
        data["input_shape"] = list(self.input_shape)
        data["layers"] = [dict(layer) for layer in self.layers]
        data["train"]["betas"] = list(self.train.betas)
        data["train"]["backend"] = data["train"].pop("framework")  # the file format's key
        return data


def available_models() -> list[str]:
    return sorted(p.stem for p in MODELS_DIR.glob("*.toml"))


def _recipe_from_toml(data: dict[str, Any], source: str) -> Recipe:
    try:
        model, neuron = data["model"], data.get("neuron", {})
        data_section, train = data.get("data", {}), data.get("train", {})
        settings = TrainSettings(
            latency=int(train.get("latency", 8)),
            method=str(train.get("method", "slt")),
            loss=str(train.get("loss", "tet")),
            lam=float(train.get("lambda", 0.0)),
            epochs=int(train.get("epochs", 60)),
            batch_size=int(train.get("batch_size", 64)),
            lr=float(train.get("lr", 1e-3)),
            betas=tuple(float(b) for b in train.get("betas", (0.9, 0.999))),
            scheduler=str(train.get("scheduler", "cosine")),
            seed=int(train.get("seed", 0)),
            framework=str(train.get("backend", "norse")),
        )
        return Recipe(
            name=str(model["name"]),
            description=str(model.get("description", "")),
            input_shape=tuple(int(s) for s in model["input_shape"]),
            classes=int(model["classes"]),
            layers=tuple(dict(layer) for layer in model["layers"]),
            neuron=LIFParameters(**neuron),
            dataset=str(data_section.get("dataset", "digits")),
            encoding=str(data_section.get("encoding", "rate")),
            train=settings,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"recipe {source} is invalid: {exc!r}") from None


def recipe_from_dict(data: dict[str, Any]) -> Recipe:
    """Inverse of :meth:`Recipe.to_dict`."""
    try:
        train = dict(data["train"])
        train["betas"] = tuple(train["betas"])
        if "backend" in train:  # the file format's key (absent in checkpoints older than the setting)
            train["framework"] = train.pop("backend")
        return Recipe(
            name=data["name"],
            description=data.get("description", ""),
            input_shape=tuple(data["input_shape"]),
            classes=int(data["classes"]),
            layers=tuple(dict(layer) for layer in data["layers"]),
            neuron=LIFParameters(**data["neuron"]),
            dataset=data["dataset"],
            encoding=data["encoding"],
            train=TrainSettings(**train),
            dt=float(data.get("dt", DEFAULT_DT)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"stored recipe is invalid: {exc!r}") from None


def load_recipe(name_or_path: str) -> Recipe:
    """A recipe by name (``models/<name>.toml``) or by path to a TOML file."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = MODELS_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            raise UserError(
                f"unknown model '{name_or_path}': choose one of {', '.join(available_models())} "
                "or give a recipe .toml file"
            )
    return _recipe_from_toml(read_toml(path, "recipe"), str(path))


# --------------------------------------------------------------------------- layers


def _merge_time(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(0, 1)


def _split_time(x: torch.Tensor, steps: int) -> torch.Tensor:
    return x.unflatten(0, (steps, -1))


class LIFNeuron(nn.Module):
    """The contract's LIF neuron on norse's LIF-box, run over the time axis.

    Input: synaptic current I [t, batch, ...]; output: spikes [t, batch, ...].
    The current is multiplied by 1/(1-beta) before norse's Euler step, which
    makes norse's v <- v + (1-beta)(i - v) equal to v <- beta v + I."""

    def __init__(self, params: LIFParameters, dt: float = DEFAULT_DT):
        super().__init__()
        self.params = params
        self.dt = dt
        self.gain = norse_input_gain(params)
        self.norse_params = norse_parameters(params, dt)

    def forward(
        self, current: torch.Tensor, v: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (spikes [t, ...], membrane after the last step)."""
        state = LIFBoxFeedForwardState(v=torch.zeros_like(current[0]) if v is None else v)
        spikes = []
        for step_current in current * self.gain:
            z, state = lif_box_feed_forward_step(step_current, state, self.norse_params, self.dt)
            spikes.append(z)
        return torch.stack(spikes), state.v


class SpikingLayer(nn.Module):
    """Synapse (Linear/Conv2d) -> tdBN -> LIF. Input [t, B, ...] -> spikes [t, B, ...]."""

    def __init__(self, synapse: nn.Module, norm: nn.Module, neuron: LIFNeuron):
        super().__init__()
        self.synapse, self.norm, self.neuron = synapse, norm, neuron

    def current(self, x: torch.Tensor) -> torch.Tensor:
        return _split_time(self.norm(self.synapse(_merge_time(x))), x.shape[0])

    def forward(self, x: torch.Tensor, state: dict, record: dict | None, name: str) -> torch.Tensor:
        key = f"{name}_lif"
        spikes, state[key] = self.neuron(self.current(x), state.get(key))
        if record is not None:
            record[key] = spikes
        return spikes


class ResidualBlock(nn.Module):
    """ResNet BasicBlock: LIF(tdBN(conv2(LIF(tdBN(conv1 x)))) + shortcut(x)).

    The shortcut is the identity or, when the shape changes, conv1x1 + tdBN."""

    def __init__(self, in_channels: int, channels: int, stride: int, neuron: LIFParameters, dt: float):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.lif1 = LIFNeuron(neuron, dt)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.lif2 = LIFNeuron(neuron, dt)
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels)
            )
        else:
            self.shortcut = None

    def forward(self, x: torch.Tensor, state: dict, record: dict | None, name: str) -> torch.Tensor:
        steps, flat = x.shape[0], _merge_time(x)
        hidden, state[f"{name}_lif1"] = self.lif1(
            _split_time(self.bn1(self.conv1(flat)), steps), state.get(f"{name}_lif1")
        )
        current = self.bn2(self.conv2(_merge_time(hidden)))
        current = current + (flat if self.shortcut is None else self.shortcut(flat))
        out, state[f"{name}_lif2"] = self.lif2(_split_time(current, steps), state.get(f"{name}_lif2"))
        if record is not None:
            record[f"{name}_lif1"], record[f"{name}_lif2"] = hidden, out
        return out


class AvgPool(nn.Module):
    """2-D average pooling applied at every time step (kernel = stride)."""

    def __init__(self, kernel: int):
        super().__init__()
        self.kernel = kernel
        self.pool = nn.AvgPool2d(kernel)

    def forward(self, x: torch.Tensor, state: dict, record: dict | None, name: str) -> torch.Tensor:
        return _split_time(self.pool(_merge_time(x)), x.shape[0])


class Flatten(nn.Module):
    def forward(self, x: torch.Tensor, state: dict, record: dict | None, name: str) -> torch.Tensor:
        return x.flatten(2)


class SpikingNetwork(nn.Module):
    """A spiking network built from a :class:`Recipe`.

    ``forward(x)`` takes x [t, B, *input_shape] and returns the readout
    O [t, B, classes] for every step; ``forward(x, record=d)`` also fills d
    with every LIF layer's spikes [t, B, ...] by the name of its NIR LIF node
    (``l<index>_<type>_lif``; ``_lif1``/``_lif2`` inside residual blocks). ``state`` (a dict,
    filled in place) carries membranes across calls, so a sequence can be run
    in pieces."""

    def __init__(self, recipe: Recipe):
        super().__init__()
        self.recipe = recipe
        self.stage_names: list[str] = []
        self.stages = nn.ModuleList()
        shape = tuple(recipe.input_shape)
        for index, spec in enumerate(recipe.layers):
            stage, shape = _build_stage(spec, shape, recipe, index)
            self.stages.append(stage)
            self.stage_names.append(f"l{index}_{spec['type']}")
        if len(shape) != 1:
            raise UserError(
                f"recipe {recipe.name}: the readout needs a flat input, got shape {shape} "
                "(add a flatten layer)"
            )
        self.readout = nn.Linear(shape[0], recipe.classes)

    def forward(
        self, x: torch.Tensor, state: dict | None = None, record: dict | None = None
    ) -> torch.Tensor:
        expected = tuple(self.recipe.input_shape)
        if x.dim() != 2 + len(expected) or tuple(x.shape[2:]) != expected:
            raise UserError(
                f"model {self.recipe.name} takes input [t, batch, {', '.join(map(str, expected))}], "
                f"got {list(x.shape)}"
            )
        state = {} if state is None else state
        for name, stage in zip(self.stage_names, self.stages):
            x = stage(x, state, record, name)
        return _split_time(self.readout(_merge_time(x)), x.shape[0])

    def spiking_layer_names(self) -> list[str]:
        record: dict = {}
        with torch.no_grad():
            was_training = self.training
            self.eval()
            self(torch.zeros(1, 1, *self.recipe.input_shape), record=record)
            self.train(was_training)
        return list(record)


def _positive_int(spec: dict, key: str, default: int | None = None) -> int:
    value = spec.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UserError(f"layer {spec}: '{key}' must be a positive integer")
    return value


@dataclass(frozen=True)
class LayerSpec:
    """One recipe layer, validated against its input shape (every backend builds
    from this). ``out_shape``: the layer's output shape; the other fields are
    the layer type's settings (``features`` of a linear layer; ``channels``,
    ``kernel``, ``stride``, ``padding``, ``dilation``, ``groups`` of a conv;
    ``kernel`` of a pooling; ``channels`` and ``stride`` of a residual block)."""

    kind: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    features: int = 0
    channels: int = 0
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    groups: int = 1


def parse_layer(spec: dict, shape: tuple[int, ...], recipe: Recipe, index: int) -> LayerSpec:
    """Validate layer ``index`` of ``recipe`` (input ``shape``); one-line UserError otherwise."""
    kind = spec.get("type")
    where = f"recipe {recipe.name}: layer {index} ({kind})"
    if kind not in LAYER_KEYS:
        raise UserError(f"recipe {recipe.name}: unknown layer type {kind!r} (known: {', '.join(LAYER_KEYS)})")
    unknown = set(spec) - LAYER_KEYS[kind] - {"type"}
    if unknown:
        raise UserError(f"{where} has unknown keys {sorted(unknown)}")
    if kind == "linear":
        if len(shape) != 1:
            raise UserError(f"{where} needs a flat input, got {shape}")
        features = _positive_int(spec, "features")
        return LayerSpec(kind, shape, (features,), features=features)
    if kind == "flatten":
        return LayerSpec(kind, shape, (math.prod(shape),))
    if len(shape) != 3:
        raise UserError(f"{where} needs a [C, H, W] input, got {shape}")
    channels, height, width = shape
    if kind == "conv":
        out = _positive_int(spec, "channels")
        kernel, stride = _positive_int(spec, "kernel", 3), _positive_int(spec, "stride", 1)
        dilation, groups = _positive_int(spec, "dilation", 1), _positive_int(spec, "groups", 1)
        padding = spec.get("padding", 0)
        if not isinstance(padding, int) or isinstance(padding, bool) or padding < 0:
            raise UserError(f"{where}: 'padding' must be an integer >= 0")
        if channels % groups or out % groups:
            raise UserError(f"{where}: groups {groups} must divide {channels} input and {out} output channels")
        size = [(n + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1 for n in (height, width)]
        if min(size) < 1:
            raise UserError(f"{where}: kernel {kernel} (dilation {dilation}) does not fit a {height}x{width} input")
        return LayerSpec(kind, shape, (out, *size), channels=out, kernel=kernel, stride=stride, padding=padding,
                         dilation=dilation, groups=groups)
    if kind == "residual":
        out, stride = _positive_int(spec, "channels"), _positive_int(spec, "stride", 1)
        return LayerSpec(kind, shape, (out, (height - 1) // stride + 1, (width - 1) // stride + 1),
                         channels=out, stride=stride)
    kernel = height if kind == "global_avgpool" else _positive_int(spec, "kernel")
    if height % kernel or width % kernel:
        raise UserError(f"recipe {recipe.name}: layer {index} pools {height}x{width} by {kernel}: sizes must divide")
    return LayerSpec(kind, shape, (channels, height // kernel, width // kernel), kernel=kernel)


def _build_stage(spec: dict, shape: tuple[int, ...], recipe: Recipe, index: int):
    layer = parse_layer(spec, shape, recipe, index)
    neuron = LIFNeuron(recipe.neuron, recipe.dt)
    if layer.kind == "linear":
        linear = nn.Linear(shape[0], layer.features, bias=False)
        return SpikingLayer(linear, nn.BatchNorm1d(layer.features), neuron), layer.out_shape
    if layer.kind == "flatten":
        return Flatten(), layer.out_shape
    if layer.kind == "conv":
        conv = nn.Conv2d(shape[0], layer.channels, layer.kernel, layer.stride, layer.padding, layer.dilation,
                         layer.groups, bias=False)
        return SpikingLayer(conv, nn.BatchNorm2d(layer.channels), neuron), layer.out_shape
    if layer.kind == "residual":
        return ResidualBlock(shape[0], layer.channels, layer.stride, recipe.neuron, recipe.dt), layer.out_shape
    return AvgPool(layer.kernel), layer.out_shape


__all__ = [
    "Recipe",
    "TrainSettings",
    "SpikingNetwork",
    "LIFNeuron",
    "load_recipe",
    "recipe_from_dict",
    "available_models",
]
