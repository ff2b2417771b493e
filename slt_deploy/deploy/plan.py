"""From a NIR graph to a deployment plan: populations of neurons and the
synaptic projections between them, as a neuromorphic chip runs them.

* Every neuron node becomes a *population* with Lava LIF parameters
  (floating point): ``u <- u (1 - du) + a_in``; ``v <- v (1 - dv) + u + bias``;
  spike if ``v > vth``; ``v <- 0`` after a spike.
    - LIF:     du = 1, dv = dt/tau, input weights x dv r, bias = dv (r c + v_leak)
    - IF:      du = 1, dv = 0, input weights x r, bias = r c
    - CubaLIF: du = dt/tau_syn, dv = dt/tau_mem, input weights x dv r du w_in, bias = dv v_leak
    - LI / CubaLI: as LIF / CubaLIF but non-spiking (only as the graph's output)
  where c is the constant current that the biases of the layers in front of
  the population deliver (a recurrent edge's bias included: NIR's back edge
  carries it from a sample's first step on). One vth per population (Lava
  has one per process; per-neuron thresholds theta_i are folded into the
  gain and bias, v / theta_i, with vth = 1); du and dv are one value when
  the time constants are equal across the population, else one per neuron
  (learned tau: the per-layer graph runs them on :class:`DeployedLIFReset`,
  Lava's LIF holding one decay per process); a constant current into a
  CubaLIF's synapse comes from an extra one-neuron population that fires at
  every step (:func:`_constant_source`); a reset other than to 0 is refused
  by name.
* Every maximal chain of linear nodes (Affine, Linear, Conv2d, Flatten,
  SumPool2d, AvgPool2d, Scale) between two populations becomes one
  *projection* -- the synaptic layer as deployed. Pooling in front of a
  convolution is fused into it (kernel k*K, stride k*s: still a convolution,
  with binary spikes on its input); a diagonal 1x1 convolution or a plain
  neuron-to-neuron edge becomes a depthwise 1x1 convolution (one synapse
  per neuron); every other chain becomes a dense matrix, computed by pushing
  the identity through the chain.
* Timing: every projection delays by one step (Lava's Dense/Conv send what
  they received the step before). A population's *depth* is the longest
  chain of projections from the input; shorter paths get extra ``delay``
  steps so that branches meet in the same step; a recurrent projection (one
  that closes a cycle) must carry exactly the previous step, so each cycle
  may pass through one projection only.

Shapes are NIR's (C, H, W) or (N,); dense weights are [N_target, N_source]
on the flattened (C-order) populations; conv weights are torch's
[C_out, C_in/groups, kh, kw].
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import UserError
from ..ir.graph import (NEURON_TYPES, SPIKING_TYPES, FlatGraph, analyse, check_time_step, conv_geometry, linear_op,
                        pool_geometry)
from ..ir.netxfile import FIXED_POINT_KEY
from ..ir.nirfile import graph_dt, metadata_json
from ..neuron import NeuronParameters, nir_neuron

DENSE_LIMIT = 50_000_000
"""Largest dense projection (synapses) built from a chain of linear nodes."""


@dataclass
class Population:
    """A group of neurons run as one Lava LIF process (or the input)."""

    name: str
    nir_kind: str  # Input | LIF | IF | LI | CubaLIF | CubaLI
    shape: tuple[int, ...]
    du: float | np.ndarray = 1.0  # current decay per step: one value, or one per neuron (flat, size)
    dv: float | np.ndarray = 0.0  # voltage decay per step: likewise
    vth: float = np.inf
    bias: np.ndarray | None = None  # per neuron, added to v every step
    gain: np.ndarray | None = None  # per neuron, applied to incoming projections
    depth: int = 0
    constant: bool = False  # not a NIR node: one neuron that fires every step (a constant current's source)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def spiking(self) -> bool:
        return self.nir_kind in SPIKING_TYPES

    @property
    def per_neuron_decays(self) -> bool:
        """Whether du or dv differs between the neurons (learned time constants)."""
        return np.ndim(self.du) > 0 or np.ndim(self.dv) > 0

    @property
    def neuron(self) -> NeuronParameters:
        """The population's neuron in the general form (per neuron bias), for :func:`slt_deploy.neuron.lif_step`."""
        return NeuronParameters(du=self.du, dv=self.dv, vth=self.vth, bias=self.bias.ravel())

    @property
    def is_input(self) -> bool:
        return self.nir_kind == "Input"


@dataclass
class Projection:
    """One synaptic layer as deployed: source population -> target."""

    source: str
    target: str  # a population, or the graph's Output node
    nodes: tuple[str, ...]  # the NIR nodes fused into it
    kind: str  # dense | conv
    weight: np.ndarray  # dense [N_t, N_s]; conv [C_out, C_in/groups, kh, kw]; Lava float units
    source_shape: tuple[int, ...]
    target_shape: tuple[int, ...]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    conv_input_shape: tuple[int, ...] = ()  # (C, H, W) the conv reads
    conv_output_shape: tuple[int, ...] = ()  # (C, H, W) the conv writes
    delay: int = 0  # extra steps on top of the one-step synaptic delay
    recurrent: bool = False

    @property
    def name(self) -> str:
        return "+".join(self.nodes) if self.nodes else f"{self.source}->{self.target}"

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """The projection on a batch of source values [B, *source_shape] (float64)."""
        batch = x.shape[0]
        weight = torch.as_tensor(self.weight)
        if self.kind == "dense":
            out = x.reshape(batch, -1) @ weight.T
        else:
            out = F.conv2d(x.reshape(batch, *self.conv_input_shape), weight, None,
                           self.stride, self.padding, self.dilation, self.groups)
        return out.reshape(batch, *self.target_shape)


@dataclass
class DeployPlan:
    """Populations (input first), projections, and how to read the output."""

    populations: dict[str, Population]
    projections: list[Projection]
    input_name: str
    output_name: str
    output_shape: tuple[int, ...]
    output_bias: np.ndarray  # constant added to the output node's value
    output_population: str | None  # set when a population feeds the output directly
    output_depth: int
    dt: float
    input_kind: str = "spikes"  # spikes | analog: how the input layer is counted
    notes: list[str] = field(default_factory=list)
    fixed_point: dict | None = None  # exact integers the graph carries (an imported netx network)

    @property
    def neuron_populations(self) -> list[Population]:
        return [p for p in self.populations.values() if not p.is_input]

    def into(self, target: str) -> list[Projection]:
        return [p for p in self.projections if p.target == target]


# --------------------------------------------------------------------------- linear chains


class _LinearEvaluator:
    """Evaluates the linear nodes between populations (float64, batched)."""

    def __init__(self, flat: FlatGraph):
        self.flat = flat
        self.ops: dict = {}

    def node(self, name: str, x: torch.Tensor, with_bias: bool) -> torch.Tensor:
        key = (name, with_bias)
        if key not in self.ops:
            self.ops[key] = linear_op(self.flat, name, with_bias)
        return self.ops[key](x)

    def response(self, target: str, feeds: dict[str, torch.Tensor], batch: int, with_bias: bool,
                 through_back_edges: bool) -> torch.Tensor:
        """The input that ``target`` receives when the source populations
        output ``feeds`` (others zero); back edges pass values only when
        ``through_back_edges``."""
        flat = self.flat
        cache: dict[str, torch.Tensor] = {}

        def value(name: str) -> torch.Tensor:
            if name in cache:
                return cache[name]
            if flat.kinds[name] in NEURON_TYPES + ("Input",):
                result = feeds.get(name)
                if result is None:
                    result = torch.zeros(batch, *flat.shapes[name], dtype=torch.float64)
            else:
                result = self.node(name, _sum_inputs(name), with_bias)
            cache[name] = result
            return result

        def _sum_inputs(name: str) -> torch.Tensor:
            total = None
            for source in flat.sources(name):
                if (source, name) in flat.back_edges and not through_back_edges:
                    continue
                v = value(source)
                total = v if total is None else total + v
            if total is None:  # only back edges feed it
                sources = flat.sources(name)
                total = torch.zeros(batch, *flat.shapes[sources[0]], dtype=torch.float64)
            return total

        return _sum_inputs(target)


def _chain(flat: FlatGraph, source: str, target: str) -> list[str] | None:
    """The linear nodes from ``source`` to ``target`` when they form one
    unbranched chain (fan-in at the target itself is fine), else None."""
    paths = []
    for first in flat.sources(target):
        if first == source:
            paths.append([])
            continue
        if flat.kinds[first] in NEURON_TYPES + ("Input",) or source not in _feeding_populations(flat, first):
            continue
        chain, node = [], first
        while node != source:
            if flat.kinds[node] in NEURON_TYPES + ("Input",):
                return None
            if len(flat.sources(node)) != 1 or len(flat.targets(node)) != 1:
                return None
            chain.append(node)
            node = flat.sources(node)[0]
        paths.append(chain[::-1])
    return paths[0] if len(paths) == 1 else None


def _conv_projection(flat: FlatGraph, source: str, target_shape: tuple, chain: list[str], through: str):
    """A conv projection for chains ``[pool]* Conv2d [Flatten]`` or a bare
    edge / diagonal 1x1 conv (depthwise identity); None if not conv-shaped."""
    kinds = [flat.kinds[n] for n in chain if flat.kinds[n] not in ("Identity",)]
    names = [n for n in chain if flat.kinds[n] != "Identity"]
    source_shape = flat.shapes[source]
    if kinds and kinds[-1] == "Flatten":
        kinds, names = kinds[:-1], names[:-1]
    if not kinds or kinds == ["Scale"]:  # neuron into neuron (scaled): one synapse per neuron
        view = source_shape if len(source_shape) == 3 else (int(np.prod(source_shape)), 1, 1)
        channels = view[0]
        scale = np.ones(view)
        if kinds:
            scale = np.broadcast_to(np.asarray(flat.nodes[names[0]].scale, dtype=np.float64),
                                    source_shape).reshape(channels, -1)
            if not np.all(scale == scale[:, :1]):
                return None  # varies within a channel: a dense (diagonal) projection
        per_channel = np.asarray(scale).reshape(channels, -1)[:, 0]
        return dict(weight=per_channel.reshape(channels, 1, 1, 1).copy(), stride=(1, 1), padding=(0, 0),
                    dilation=(1, 1), groups=channels, conv_input_shape=view, conv_output_shape=view), tuple(names)
    if kinds[-1] != "Conv2d" or any(k not in ("SumPool2d", "AvgPool2d") for k in kinds[:-1]):
        return None
    conv_name = names[-1]
    conv = flat.nodes[conv_name]
    conv_in = flat.shapes[flat.sources(conv_name)[0]]
    stride, padding, dilation, groups, conv_out = conv_geometry(conv, conv_name, conv_in)
    weight = np.asarray(conv.weight, dtype=np.float64)
    if (weight.shape[2:] == (1, 1) and groups == 1 and weight.shape[0] == weight.shape[1]
            and np.count_nonzero(weight[:, :, 0, 0] - np.diag(np.diag(weight[:, :, 0, 0]))) == 0
            and not kinds[:-1]):
        channels = weight.shape[0]
        weight = np.diag(weight[:, :, 0, 0]).reshape(channels, 1, 1, 1).copy()
        groups = channels
    shape = conv_in
    for pool_name in reversed(names[:-1]):  # fuse pools, nearest the conv first
        pool = flat.nodes[pool_name]
        pool_in = flat.shapes[flat.sources(pool_name)[0]]
        kernel, pstride, ppad, _ = pool_geometry(pool, pool_name, pool_in)
        if kernel != pstride or ppad != (0, 0) or pool_in[1] % kernel[0] or pool_in[2] % kernel[1]:
            return None
        scale = 1.0 if flat.kinds[pool_name] == "SumPool2d" else 1.0 / (kernel[0] * kernel[1])
        size = [k * d * (w - 1) + k for k, d, w in zip(kernel, dilation, weight.shape[2:])]
        fused = np.zeros(weight.shape[:2] + tuple(size))
        for a in range(weight.shape[2]):
            for b in range(weight.shape[3]):
                ya, xb = kernel[0] * dilation[0] * a, kernel[1] * dilation[1] * b
                fused[:, :, ya : ya + kernel[0], xb : xb + kernel[1]] = weight[:, :, a : a + 1, b : b + 1] * scale
        weight = fused
        stride = (stride[0] * kernel[0], stride[1] * kernel[1])
        padding = (padding[0] * kernel[0], padding[1] * kernel[1])
        dilation = (1, 1)
        shape = pool_in
    if tuple(shape) != tuple(source_shape) and int(np.prod(shape)) != int(np.prod(source_shape)):
        return None
    return dict(weight=weight, stride=stride, padding=padding, dilation=dilation, groups=groups,
                conv_input_shape=tuple(shape), conv_output_shape=tuple(conv_out)), tuple(names)


# --------------------------------------------------------------------------- populations


def _population(flat: FlatGraph, name: str, dt: float) -> Population:
    """The population of neuron node ``name`` with its parameters in the general
    form (:func:`slt_deploy.neuron.nir_neuron`); one vth per population, du and dv
    per neuron only where they differ (:func:`_decay`)."""
    node, kind, shape = flat.nodes[name], flat.kinds[name], flat.shapes[name]
    if kind == "Input":
        return Population(name, kind, shape)
    reset = getattr(node, "v_reset", None)
    if reset is not None and np.any(np.asarray(reset) != 0):
        raise UserError(f"node '{name}' ({kind}) resets to v_reset != 0; Lava's LIF resets to 0")
    p = nir_neuron(node, dt)
    ones = np.ones(shape)
    first = lambda value: float(np.ravel(value)[0])  # noqa: E731  (equal across the population, checked above)
    vth, bias, gain = (first(p.vth) if p.spiking else np.inf), p.bias * ones, p.gain * ones
    thresholds = np.broadcast_to(np.asarray(p.vth, dtype=np.float64), shape)
    if p.spiking and not np.all(thresholds == thresholds.ravel()[0]):
        # per-neuron thresholds: v / theta_i obeys the same equation with gain and bias / theta_i
        # and threshold 1 (the reset to 0 scales too) -- one vth for the Lava process
        if np.any(thresholds <= 0):
            raise UserError(f"node '{name}' ({kind}): per-neuron thresholds must be > 0 to be folded into "
                            "its weights")
        vth, bias, gain = 1.0, bias / thresholds, gain / thresholds
    return Population(name, kind, shape, du=_decay(p.du, shape), dv=_decay(p.dv, shape), vth=vth, bias=bias,
                      gain=gain)


def _decay(value, shape: tuple[int, ...]) -> float | np.ndarray:
    """A decay per step: one float when equal across the population, else one per neuron (flat)."""
    per_neuron = np.broadcast_to(np.asarray(value, dtype=np.float64), shape).ravel()
    return float(per_neuron[0]) if np.all(per_neuron == per_neuron[0]) else per_neuron.copy()


CONSTANT_SUFFIX = ":constant"
"""Name of the always-firing source population of a constant current into ``<target>``."""


def _constant_source(target: Population, constant: np.ndarray) -> tuple[Population, Projection]:
    """A constant current c into a current-based synapse (CubaLIF/CubaLI), as
    a chip would carry it: one neuron that fires at every step (bias 1 >
    threshold 1/2, no memory) and a projection of weights gain x c into the
    target, one pipeline step in front of it (:func:`_assign_depths`)."""
    source = Population(f"{target.name}{CONSTANT_SUFFIX}", "LIF", (1,), du=1.0, dv=1.0, vth=0.5,
                        bias=np.ones(1), gain=np.ones(1), constant=True)
    weight = (target.gain * constant).reshape(-1, 1)
    return source, Projection(source=source.name, target=target.name, nodes=(), kind="dense", weight=weight,
                              source_shape=(1,), target_shape=target.shape)


def _gain_per_channel(gain: np.ndarray, conv_output_shape: tuple[int, ...]) -> bool:
    """Whether a per-neuron input gain is one value per output channel (a convolution's kernel can carry it)."""
    channel_gain = np.asarray(gain).reshape(conv_output_shape[0], -1)
    return bool(np.all(channel_gain == channel_gain[:, :1]))


def _scale_rows(projection: dict, gain: np.ndarray) -> None:
    """Multiply the synapses into each target neuron by its gain (a
    convolution's: one gain per channel, :func:`_gain_per_channel`)."""
    if projection["kind"] == "dense":
        projection["weight"] = projection["weight"] * gain.reshape(-1, 1)
        return
    channel_gain = gain.reshape(projection["conv_output_shape"][0], -1)
    projection["weight"] = projection["weight"] * channel_gain[:, 0].reshape(-1, 1, 1, 1)


GAIN_WITHIN_CHANNEL = ("its input gain (r, w_in, a per-neuron threshold or time constant) varies within a channel, "
                       "which a convolution's shared kernel cannot carry")


def _dense_matrix(evaluator: _LinearEvaluator, target: str, source: str, source_shape, target_size: int,
                  recurrent: bool, why: str = "not a convolution chain this tool can map") -> np.ndarray:
    """The synapses source -> target as a dense matrix [N_target, N_source];
    ``why``: the reason named when it would exceed :data:`DENSE_LIMIT`."""
    size = int(np.prod(source_shape))
    if size * target_size > DENSE_LIMIT:
        raise UserError(
            f"the synaptic layer {source} -> {target} would need a dense matrix of "
            f"{size * target_size:,} synapses (limit {DENSE_LIMIT:,}): {why}"
        )
    columns = []
    for start in range(0, size, 4096):
        basis = torch.zeros(min(4096, size - start), size, dtype=torch.float64)
        basis[torch.arange(basis.shape[0]), torch.arange(start, start + basis.shape[0])] = 1.0
        feeds = {source: basis.reshape(-1, *source_shape)}
        total = evaluator.response(target, feeds, basis.shape[0], with_bias=False, through_back_edges=True)
        forward = evaluator.response(target, feeds, basis.shape[0], with_bias=False, through_back_edges=False)
        part = (total - forward) if recurrent else forward
        columns.append(part.reshape(basis.shape[0], -1))
    return torch.cat(columns).T.numpy().copy()


def _has_back_edge_path(flat: FlatGraph, source: str, target: str) -> tuple[bool, bool]:
    """(forward path exists, path through a back edge exists) from source to
    target through linear nodes only."""
    forward = recurrent = False
    stack = [(target, False)]
    seen = set()
    while stack:
        node, via_back = stack.pop()
        for s in flat.sources(node):
            back = via_back or (s, node) in flat.back_edges
            if s == source:
                forward |= not back
                recurrent |= back
            elif flat.kinds[s] not in NEURON_TYPES + ("Input",) and (s, back) not in seen:
                seen.add((s, back))
                stack.append((s, back))
    return forward, recurrent


def _feeding_populations(flat: FlatGraph, target: str) -> set[str]:
    found, stack, seen = set(), [target], set()
    while stack:
        for s in flat.sources(stack.pop()):
            if flat.kinds[s] in NEURON_TYPES + ("Input",):
                found.add(s)
            elif s not in seen:
                seen.add(s)
                stack.append(s)
    return found


INPUT_KINDS = ("spikes", "analog")
"""How the input layer is counted: binary or event-count spikes (SOP), or
analog values (direct encoding: MACs)."""


def input_kind_of(graph, given: str | None = None) -> str:
    """The input kind: ``given``, else the graph's metadata ``input_kind``, else spikes."""
    kind = given or (graph.metadata or {}).get("input_kind", "spikes")
    if not isinstance(kind, str) or kind not in INPUT_KINDS:
        raise UserError(f"input kind must be spikes or analog, got '{str(kind)[:60]}'")
    return kind


def plan_for_graph(graph, dt: float | None = None, input_kind: str | None = None,
                   allow_unstable_dt: bool = False) -> DeployPlan:
    """The deployment plan of a NIR graph, with the time step and input kind
    it declares (``dt`` and ``input_kind`` override them): the one rule every
    caller uses."""
    plan = plan_deployment(graph, graph_dt(graph, dt), input_kind_of(graph, input_kind), allow_unstable_dt)
    plan.fixed_point = fixed_point_of(graph, plan)
    return plan


def _is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def fixed_point_of(graph, plan: DeployPlan) -> dict | None:
    """The exact fixed-point integers the graph's metadata declares
    (:data:`~slt_deploy.ir.netxfile.FIXED_POINT_KEY`, written by ``slt-deploy
    import``), checked against the plan: every population and projection it
    names exists. None when the graph declares none."""
    spec = metadata_json(graph, FIXED_POINT_KEY)
    if spec is None:
        return None
    if not isinstance(spec, dict) or not isinstance(spec.get("populations"), dict) \
            or not isinstance(spec.get("projections"), dict):
        raise UserError(f"NIR metadata '{FIXED_POINT_KEY}' must hold 'populations' and 'projections'")
    for name, values in spec["populations"].items():
        if name not in plan.populations or plan.populations[name].is_input:
            raise UserError(f"NIR metadata '{FIXED_POINT_KEY}' names a population '{name}' the graph does not have")
        if not isinstance(values, dict):
            raise UserError(f"NIR metadata '{FIXED_POINT_KEY}': population '{name}' must be a mapping")
        size = plan.populations[name].size
        for key in ("du", "dv", "vth", "bias_exp"):
            value = values.get(key)
            per_neuron = key in ("du", "dv") and isinstance(value, list) and len(value) == size \
                and all(_is_integer(v) for v in value)
            if not (_is_integer(value) or per_neuron):
                raise UserError(f"NIR metadata '{FIXED_POINT_KEY}': population '{name}' needs an integer {key}"
                                + (f" (or {size} of them, one per neuron)" if key in ("du", "dv") else ""))
    for target in spec["projections"]:
        if not plan.into(target):
            raise UserError(f"NIR metadata '{FIXED_POINT_KEY}' names a projection into '{target}' "
                            "that the graph does not have")
    return spec


def plan_deployment(graph, dt: float, input_kind: str | None = None, allow_unstable_dt: bool = False) -> DeployPlan:
    """The deployment plan of ``graph`` with time step ``dt`` (s); a dt that
    makes forward Euler unstable is refused unless ``allow_unstable_dt``."""
    if not (isinstance(dt, numbers.Real) and np.isfinite(dt) and dt > 0):
        raise UserError(f"the time step dt must be a positive number of seconds, got {dt!r}")
    if input_kind is not None and (not isinstance(input_kind, str) or input_kind not in INPUT_KINDS):
        raise UserError(f"input kind must be spikes or analog, got '{str(input_kind)[:60]}'")
    flat = analyse(graph)
    check_time_step(flat, dt, allow_unstable_dt)
    evaluator = _LinearEvaluator(flat)
    populations = {name: _population(flat, name, dt) for name in flat.order
                   if flat.kinds[name] in NEURON_TYPES + ("Input",)}
    output = flat.output_name
    projections: list[Projection] = []
    extra: list[tuple[Population, Projection]] = []  # constant-current sources (CubaLIF synapses)
    output_bias = np.zeros(flat.shapes[output])
    output_population = None

    for target in [n for n in flat.order if n in populations and n != flat.input_name] + [output]:
        is_output = target == output
        target_shape = flat.shapes[target]
        sources = _feeding_populations(flat, target)
        if is_output and len(flat.sources(output)) == 1 and flat.sources(output)[0] in populations:
            output_population = flat.sources(output)[0]
            continue
        # the constant input, through recurrent edges too: NIR's back edge carries, at a
        # sample's first step, the edge's bias applied to silent neurons (ir/reference.py)
        constant = evaluator.response(target, {}, 1, with_bias=True, through_back_edges=True)[0].numpy()
        for source in sorted(sources, key=flat.order.index):
            forward, recurrent = _has_back_edge_path(flat, source, target)
            for is_recurrent in [flag for flag, present in ((False, forward), (True, recurrent)) if present]:
                chain = _chain(flat, source, target)
                conv = None
                why = "not a convolution chain this tool can map"
                if chain is not None and not (is_recurrent and forward):
                    conv = _conv_projection(flat, source, target_shape, chain, target)
                if conv is not None and not is_output and \
                        not _gain_per_channel(populations[target].gain, conv[0]["conv_output_shape"]):
                    conv, why = None, GAIN_WITHIN_CHANNEL  # the synapses as a dense matrix instead
                if conv is not None:
                    fields, nodes = conv
                    spec = dict(kind="conv", **fields)
                else:
                    nodes = tuple(n for n in (chain or []) if flat.kinds[n] != "Identity")
                    matrix = _dense_matrix(evaluator, target, source, flat.shapes[source],
                                           int(np.prod(target_shape)), is_recurrent, why)
                    spec = dict(kind="dense", weight=matrix)
                if not is_output:
                    _scale_rows(spec, populations[target].gain.ravel())
                if not nodes:
                    nodes = tuple(sorted(_linear_nodes_between(flat, source, target)))
                projections.append(Projection(source=source, target=target, nodes=nodes,
                                              source_shape=flat.shapes[source], target_shape=target_shape,
                                              recurrent=is_recurrent, **spec))
        if is_output:
            output_bias = constant
        else:
            population = populations[target]
            if np.any(constant != 0) and population.nir_kind in ("CubaLIF", "CubaLI"):
                # Lava adds its bias to v, not to the synaptic current: the constant
                # arrives through synapses from a neuron that fires at every step
                extra.append(_constant_source(population, constant))
            else:
                population.bias = population.bias + population.gain * constant

    for population in populations.values():
        if not population.spiking and not population.is_input:
            if population.name != output_population:
                raise UserError(
                    f"node '{population.name}' ({population.nir_kind}) does not spike; on Lava a non-spiking "
                    "neuron can only be the graph's output"
                )
        if population.spiking and not np.isfinite(population.vth):
            raise UserError(f"node '{population.name}': threshold must be finite")
    for source, projection in extra:  # each just before its target, so that populations stay in order
        ordered = {}
        for name, population in populations.items():
            if name == projection.target:
                ordered[source.name] = source
            ordered[name] = population
        populations = ordered
        projections.append(projection)
    plan = DeployPlan(
        populations=populations,
        projections=projections,
        input_name=flat.input_name,
        output_name=output,
        output_shape=flat.shapes[output],
        output_bias=output_bias,
        output_population=output_population,
        output_depth=0,
        dt=dt,
        input_kind=input_kind or "spikes",
    )
    _assign_depths(plan)
    return plan


def _linear_nodes_between(flat: FlatGraph, source: str, target: str) -> set[str]:
    """Linear nodes on some path source -> target."""
    def walk(start: str, step) -> set[str]:
        found, stack = set(), [start]
        while stack:
            for n in step(stack.pop()):
                if flat.kinds[n] not in NEURON_TYPES + ("Input",) and n not in found:
                    found.add(n)
                    stack.append(n)
        return found

    between = walk(target, flat.sources) & walk(source, flat.targets)
    return {n for n in between if flat.kinds[n] not in ("Identity", "Output")}


def _assign_depths(plan: DeployPlan) -> None:
    order = list(plan.populations)
    depth = {plan.input_name: 0}
    constant = {name for name, p in plan.populations.items() if p.constant}
    for name in order[1:]:
        if name in constant:
            continue
        incoming = [p for p in plan.into(name) if not p.recurrent and p.source not in constant]
        if not incoming:
            raise UserError(f"node '{name}' receives input only through a recurrent edge")
        depth[name] = max(depth[p.source] + 1 for p in incoming)
    for projection in plan.projections:  # a constant source fires one step in front of its target
        if projection.source in constant:
            depth[projection.source] = depth[projection.target] - 1
    for name, population in plan.populations.items():
        population.depth = depth[name]
    for projection in plan.projections:
        source_depth = depth[projection.source]
        if projection.target == plan.output_name:
            continue
        target_depth = depth[projection.target]
        if projection.recurrent:
            projection.delay = target_depth - source_depth
            if projection.delay < 0:
                raise UserError(
                    f"cycle {projection.target} -> ... -> {projection.source} -> {projection.target} passes through "
                    "more than one synaptic layer: Lava delays such a loop by one step per layer, NIR by one step"
                )
        else:
            projection.delay = target_depth - source_depth - 1
    if plan.output_population is not None:
        plan.output_depth = depth[plan.output_population]
    else:
        into_output = plan.into(plan.output_name)
        plan.output_depth = max(depth[p.source] + 1 for p in into_output)
        for projection in into_output:
            projection.delay = plan.output_depth - depth[projection.source] - 1


def describe(plan: DeployPlan) -> list[dict[str, Any]]:
    """One row per projection: name, kind, shapes, synapses, delay."""
    rows = []
    for p in plan.projections:
        rows.append({
            "projection": p.name,
            "source": p.source,
            "target": p.target,
            "kind": p.kind,
            "weights": int(np.asarray(p.weight).size),
            "delay": p.delay,
            "recurrent": p.recurrent,
        })
    return rows
