"""Analysis of NIR graphs shared by every backend: flattening of sub-graphs,
the supported node set, shapes, and the order of evaluation.

NIR semantics used throughout (as nirtorch and norse execute graphs): at each
time step, nodes are evaluated in order from the input; a node sums the
values of all edges into it; an edge that closes a cycle (a *back edge*)
carries its source's value from the previous step (zero at the first step).

Shapes are unbatched (NIR convention): images are (C, H, W), vectors (N,).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import nir
import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import UserError

NEURON_TYPES = ("LIF", "IF", "LI", "CubaLIF", "CubaLI")
SPIKING_TYPES = ("LIF", "IF", "CubaLIF")
LINEAR_TYPES = ("Affine", "Linear", "Conv2d", "Flatten", "SumPool2d", "AvgPool2d", "Scale")
IO_TYPES = ("Input", "Output", "Identity")
SUPPORTED_TYPES = NEURON_TYPES + LINEAR_TYPES + IO_TYPES

MAX_NODE_SIZE = 10_000_000
"""Most values one node may produce per step (ten times a Loihi 2 chip's
neurons): larger shapes are refused before anything of that size is allocated."""

PARAMETERS = {
    "Affine": ("weight", "bias"),
    "Linear": ("weight",),
    "Conv2d": ("weight", "bias"),
    "Scale": ("scale",),
    "LIF": ("tau", "r", "v_leak", "v_threshold", "v_reset"),
    "IF": ("r", "v_threshold", "v_reset"),
    "LI": ("tau", "r", "v_leak"),
    "CubaLIF": ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"),
    "CubaLI": ("tau_syn", "tau_mem", "r", "v_leak", "w_in"),
}
"""The numeric parameters of each node type: real and finite; time constants > 0."""
TIME_CONSTANTS = ("tau", "tau_syn", "tau_mem")


class Identity:
    """Pass-through node: the Input/Output of an inlined sub-graph."""

    def __init__(self, shape=None):
        self.shape = shape


@dataclass
class FlatGraph:
    """A NIR graph without sub-graphs.

    nodes: name -> NIR node; edges: (source, target); kinds: name -> type name;
    shapes: name -> output shape (tuple); order: evaluation order;
    back_edges: the edges that close cycles (their value is one step old)."""

    nodes: dict[str, Any]
    edges: list[tuple[str, str]]
    kinds: dict[str, str] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    back_edges: set[tuple[str, str]] = field(default_factory=set)
    input_name: str = ""
    output_name: str = ""

    def sources(self, name: str) -> list[str]:
        return [s for s, t in self.edges if t == name]

    def targets(self, name: str) -> list[str]:
        return [t for s, t in self.edges if s == name]


def _kind(node) -> str:
    return "Identity" if isinstance(node, Identity) else type(node).__name__


def _inline(graph, prefix: str, nodes: dict, edges: list) -> tuple[str | None, str | None]:
    """Copy ``graph``'s nodes into ``nodes`` (sub-graphs inlined, names
    prefixed); returns the names of its Input and Output nodes."""
    entry = exit_ = None
    renamed = {}
    for name, node in graph.nodes.items():
        full = f"{prefix}{name}"
        if isinstance(node, nir.NIRGraph):
            inner_in, inner_out = _inline(node, f"{full}.", nodes, edges)
            if inner_in is None or inner_out is None:
                raise UserError(f"sub-graph '{full}' needs one Input and one Output node")
            renamed[name] = (inner_in, inner_out)
            continue
        if prefix and isinstance(node, (nir.Input, nir.Output)):
            nodes[full] = Identity()
        else:
            nodes[full] = node
        renamed[name] = (full, full)
        if isinstance(node, nir.Input):
            if entry is not None:
                raise UserError(f"graph '{prefix or 'top'}' has several Input nodes: one is supported")
            entry = full
        if isinstance(node, nir.Output):
            if exit_ is not None:
                raise UserError(f"graph '{prefix or 'top'}' has several Output nodes: one is supported")
            exit_ = full
    for source, target in graph.edges:
        if source not in renamed or target not in renamed:
            missing = source if source not in renamed else target
            raise UserError(f"edge ({source} -> {target}) names a node '{prefix}{missing}' that does not exist")
        edges.append((renamed[source][1], renamed[target][0]))
    return entry, exit_


def _check_types(flat: FlatGraph) -> None:
    for name, node in flat.nodes.items():
        kind = _kind(node)
        if kind not in SUPPORTED_TYPES:
            raise UserError(
                f"node '{name}' is a {kind}: not supported (supported: {', '.join(NEURON_TYPES + LINEAR_TYPES)})"
            )
        flat.kinds[name] = kind


def _check_values(flat: FlatGraph) -> None:
    """Every numeric parameter holds real, finite numbers (time constants > 0):
    a string, complex, NaN or infinite weight is refused by name, never
    converted or propagated."""
    for name, node in flat.nodes.items():
        kind = flat.kinds[name]
        for key in PARAMETERS.get(kind, ()):
            value = getattr(node, key, None)
            if value is None:
                if key == "v_reset":
                    continue
                raise UserError(f"node '{name}' ({kind}) has no {key}")
            array = np.asarray(value)
            if array.dtype.kind not in "biuf":
                raise UserError(f"node '{name}' ({kind}): {key} must hold real numbers, not {array.dtype}")
            if not np.all(np.isfinite(array)):
                raise UserError(f"node '{name}' ({kind}): {key} holds NaN or infinite values")
            if key in TIME_CONSTANTS and np.any(array <= 0):
                raise UserError(f"node '{name}' ({kind}): {key} must be > 0, got {array.min()}")


def _order(flat: FlatGraph) -> None:
    """Depth-first from the input: edges into a node on the current path are
    back edges; the rest give a topological order (reverse post-order)."""
    targets: dict[str, list[str]] = {}
    for source, target in flat.edges:
        targets.setdefault(source, []).append(target)
    state: dict[str, int] = {}  # 1 = on the path, 2 = done
    post: list[str] = []
    stack = [(flat.input_name, iter(targets.get(flat.input_name, [])))]
    state[flat.input_name] = 1
    while stack:
        node, children = stack[-1]
        child = next(children, None)
        if child is None:
            state[node] = 2
            post.append(node)
            stack.pop()
        elif state.get(child) == 1:
            flat.back_edges.add((node, child))
        elif child not in state:
            state[child] = 1
            stack.append((child, iter(targets.get(child, []))))
    unreachable = sorted(set(flat.nodes) - set(post))
    if unreachable:
        raise UserError(f"node '{unreachable[0]}' cannot be reached from the input node")
    flat.order = post[::-1]
    if flat.order[-1] != flat.output_name and flat.output_name in flat.targets(flat.output_name):
        raise UserError("the output node feeds back into the graph")


def _integers(value, name: str, what: str) -> list[int]:
    """The integers in ``value`` (integral floats allowed); UserError otherwise."""
    array = np.atleast_1d(np.asarray(value)).ravel()
    if array.dtype.kind not in "iuf" or (array.dtype.kind == "f" and not np.all(np.isfinite(array)
                                                                               & (array == np.round(array)))):
        raise UserError(f"node '{name}': {what} must be integers, got {str(value)[:60]!r}")
    return [int(v) for v in array]


def _integer(value, name: str, what: str) -> int:
    values = _integers(value, name, what)
    if len(values) != 1:
        raise UserError(f"node '{name}': {what} must be one integer, got {str(value)[:60]!r}")
    return values[0]


def _pair(value, name: str, what: str) -> tuple[int, int]:
    array = _integers(value, name, what)
    if any(abs(v) >= 2**31 for v in array):
        raise UserError(f"node '{name}': {what} {array} is out of range")
    if len(array) == 1:
        return int(array[0]), int(array[0])
    if len(array) == 2:
        return int(array[0]), int(array[1])
    raise UserError(f"node '{name}': {what} must be one or two integers, got {str(value)[:60]!r}")


def conv_geometry(node, name: str, in_shape: tuple[int, ...]):
    """(stride, padding, dilation, groups, out_shape) of a Conv2d on (C, H, W)."""
    weight = np.asarray(node.weight)
    if weight.ndim != 4:
        raise UserError(f"node '{name}' (Conv2d): weight must be 4-D, got shape {list(weight.shape)}")
    if len(in_shape) != 3:
        raise UserError(f"node '{name}' (Conv2d): input must be (C, H, W), got {list(in_shape)}")
    groups = _integer(node.groups, name, "groups") if node.groups is not None else 1
    stride = _pair(node.stride, name, "stride")
    dilation = _pair(node.dilation, name, "dilation")
    if groups < 1 or min(stride + dilation) < 1:
        raise UserError(f"node '{name}' (Conv2d): groups, stride and dilation must be >= 1, got "
                        f"{groups}, {list(stride)}, {list(dilation)}")
    kernel = weight.shape[2:]
    if isinstance(node.padding, str):
        if node.padding == "valid":
            padding = (0, 0)
        elif node.padding == "same":
            total = [d * (k - 1) for d, k in zip(dilation, kernel)]
            if any(t % 2 for t in total) or stride != (1, 1):
                raise UserError(f"node '{name}' (Conv2d): 'same' padding here would be asymmetric: not supported")
            padding = (total[0] // 2, total[1] // 2)
        else:
            raise UserError(f"node '{name}' (Conv2d): unknown padding {node.padding!r}")
    else:
        padding = _pair(node.padding, name, "padding")
    if min(padding) < 0:
        raise UserError(f"node '{name}' (Conv2d): padding must be >= 0, got {list(padding)}")
    if in_shape[0] != weight.shape[1] * groups or weight.shape[0] % groups:
        raise UserError(
            f"node '{name}' (Conv2d): weight {list(weight.shape)} with groups={groups} does not take "
            f"{in_shape[0]} input channels"
        )
    out = [
        (size + 2 * p - d * (k - 1) - 1) // s + 1
        for size, p, d, k, s in zip(in_shape[1:], padding, dilation, kernel, stride)
    ]
    if min(out) < 1:
        raise UserError(f"node '{name}' (Conv2d): geometry gives an empty output from input {list(in_shape)}")
    bias = np.asarray(node.bias)
    if bias.ndim > 1 or bias.size not in (1, weight.shape[0]):
        raise UserError(f"node '{name}' (Conv2d): bias shape {list(bias.shape)} does not fit "
                        f"{weight.shape[0]} channels")
    return stride, padding, dilation, groups, (weight.shape[0], *out)


def pool_geometry(node, name: str, in_shape: tuple[int, ...]):
    """(kernel, stride, padding, out_shape) of a SumPool2d/AvgPool2d on (C, H, W)."""
    if len(in_shape) != 3:
        raise UserError(f"node '{name}' ({_kind(node)}): input must be (C, H, W), got {list(in_shape)}")
    kernel = _pair(node.kernel_size, name, "kernel_size")
    stride = _pair(node.stride, name, "stride")
    padding = _pair(node.padding, name, "padding")
    if min(kernel + stride) < 1 or min(padding) < 0 or any(2 * p > k for p, k in zip(padding, kernel)):
        raise UserError(f"node '{name}' ({_kind(node)}): kernel_size {list(kernel)} and stride {list(stride)} "
                        f"must be >= 1, padding {list(padding)} between 0 and half the kernel")
    out = [(size + 2 * p - k) // s + 1 for size, p, k, s in zip(in_shape[1:], padding, kernel, stride)]
    if min(out) < 1:
        raise UserError(f"node '{name}' ({_kind(node)}): geometry gives an empty output from input {list(in_shape)}")
    return kernel, stride, padding, (in_shape[0], *out)


# --------------------------------------------------------------------------- linear nodes


def _tensor(value):
    return torch.as_tensor(np.asarray(value, dtype=np.float64))


def _identity(node, name, in_shape, out_shape, with_bias):
    return lambda x: x


def _affine(node, name, in_shape, out_shape, with_bias):
    weight, bias = _tensor(node.weight), _tensor(node.bias)
    return (lambda x: x @ weight.T + bias) if with_bias else (lambda x: x @ weight.T)


def _linear(node, name, in_shape, out_shape, with_bias):
    weight = _tensor(node.weight)
    return lambda x: x @ weight.T


def _scale(node, name, in_shape, out_shape, with_bias):
    scale = _tensor(node.scale)
    return lambda x: x * scale


def _flatten(node, name, in_shape, out_shape, with_bias):
    return lambda x: x.reshape(x.shape[0], *out_shape)


def _conv2d(node, name, in_shape, out_shape, with_bias):
    stride, padding, dilation, groups, _ = conv_geometry(node, name, in_shape)
    weight = _tensor(node.weight)
    bias = _tensor(node.bias).expand(weight.shape[0]) if with_bias else None
    return lambda x: F.conv2d(x, weight, bias, stride, padding, dilation, groups)


def _pool(node, name, in_shape, out_shape, with_bias, summed: bool):
    kernel, stride, padding, _ = pool_geometry(node, name, in_shape)
    area = kernel[0] * kernel[1] if summed else 1
    return lambda x: F.avg_pool2d(x, kernel, stride, padding, count_include_pad=True) * area


LINEAR_HANDLERS = {
    nir.Input: _identity, nir.Output: _identity, Identity: _identity,
    nir.Affine: _affine, nir.Linear: _linear, nir.Scale: _scale, nir.Flatten: _flatten, nir.Conv2d: _conv2d,
    nir.SumPool2d: functools.partial(_pool, summed=True), nir.AvgPool2d: functools.partial(_pool, summed=False),
}
"""NIR node class -> the function of its summed input (see :func:`linear_op`)."""


def linear_op(flat: FlatGraph, name: str, with_bias: bool = True):
    """The linear (or pass-through) node ``name`` as a function of its summed
    input, a float64 torch batch [B, *input_shape] -> [B, *output_shape];
    ``with_bias=False`` leaves out Affine and Conv2d biases. One handler per
    NIR node class; the reference interpreter and the lowering both use it."""
    node = flat.nodes[name]
    sources = [s for s in flat.sources(name) if (s, name) not in flat.back_edges] or flat.sources(name)
    in_shape = flat.shapes[sources[0]] if sources else flat.shapes[name]
    return LINEAR_HANDLERS[type(node)](node, name, in_shape, flat.shapes[name], with_bias)


def neuron_shape(node, name: str) -> tuple[int, ...]:
    for key in ("v_threshold", "tau", "tau_mem", "r"):
        value = getattr(node, key, None)
        if value is not None:
            return tuple(np.asarray(value).shape)
    return ()


def _same_shape(node, name, kind, in_shape):
    return in_shape


def _matrix_shape(node, name, kind, in_shape):
    weight = np.asarray(node.weight)
    if weight.ndim != 2 or in_shape != (weight.shape[1],):
        raise UserError(
            f"node '{name}' ({kind}): weight {list(weight.shape)} does not take input of shape {list(in_shape)}"
        )
    if kind == "Affine" and np.asarray(node.bias).shape not in ((weight.shape[0],), ()):
        raise UserError(f"node '{name}' (Affine): bias shape {list(np.asarray(node.bias).shape)} does not fit")
    return (weight.shape[0],)


def _scale_shape(node, name, kind, in_shape):
    try:
        out = tuple(np.broadcast_shapes(in_shape, np.asarray(node.scale).shape))
    except ValueError:
        out = None
    if out != in_shape:
        raise UserError(f"node '{name}' (Scale): scale shape {list(np.asarray(node.scale).shape)} does not fit "
                        f"input {list(in_shape)}")
    return out


def _conv_shape(node, name, kind, in_shape):
    return conv_geometry(node, name, in_shape)[-1]


def _pool_shape(node, name, kind, in_shape):
    return pool_geometry(node, name, in_shape)[-1]


def _flatten_shape(node, name, kind, in_shape):
    ndim = len(in_shape)
    start_dim = _integer(node.start_dim, name, "start_dim")
    end_dim = _integer(node.end_dim, name, "end_dim")
    start = start_dim % ndim if ndim else 0
    end = end_dim % ndim if ndim else 0
    if start > end:
        raise UserError(f"node '{name}' (Flatten): start_dim {start_dim} > end_dim {end_dim}")
    return (*in_shape[:start], math.prod(in_shape[start : end + 1]), *in_shape[end + 1 :])


def _neuron_shape(node, name, kind, in_shape):
    """Neurons: their parameters fix the shape; the input must match (or broadcast)."""
    shape = neuron_shape(node, name)
    try:
        out = tuple(np.broadcast_shapes(in_shape, shape))
    except ValueError:
        out = None
    if out != in_shape:
        raise UserError(f"node '{name}' ({kind}): input shape {list(in_shape)} does not match its parameters {list(shape)}")
    for key in PARAMETERS[kind]:  # every parameter, not only the one that gave the shape
        shape = np.asarray(getattr(node, key, None)).shape
        try:
            fits = tuple(np.broadcast_shapes(in_shape, shape)) == in_shape
        except ValueError:
            fits = False
        if not fits:
            raise UserError(f"node '{name}' ({kind}): {key} of shape {list(shape)} does not fit its input "
                            f"{list(in_shape)}")
    return in_shape


SHAPE_HANDLERS = {
    nir.Output: _same_shape, Identity: _same_shape, nir.Affine: _matrix_shape, nir.Linear: _matrix_shape,
    nir.Scale: _scale_shape, nir.Conv2d: _conv_shape, nir.SumPool2d: _pool_shape, nir.AvgPool2d: _pool_shape,
    nir.Flatten: _flatten_shape, nir.LIF: _neuron_shape, nir.IF: _neuron_shape, nir.LI: _neuron_shape,
    nir.CubaLIF: _neuron_shape, nir.CubaLI: _neuron_shape,
}
"""NIR node class -> the shape its output takes for an input shape."""


def _output_shape(flat: FlatGraph, name: str, in_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape node ``name`` gives for input ``in_shape`` (one handler per NIR node class)."""
    node = flat.nodes[name]
    return SHAPE_HANDLERS[type(node)](node, name, flat.kinds[name], in_shape)


def _infer_shapes(flat: FlatGraph) -> None:
    input_node = flat.nodes[flat.input_name]
    types = getattr(input_node, "input_type", None)
    shape = types.get("input") if isinstance(types, dict) else None
    if shape is None:
        raise UserError("the Input node has no shape")
    dims = _integers(shape, flat.input_name, "the input shape") if np.asarray(shape).ndim <= 1 else []
    if not dims or min(dims) < 1:
        raise UserError(f"the Input node's shape must be positive integers, got {str(shape)[:60]}")
    flat.shapes[flat.input_name] = tuple(dims)
    size = math.prod(flat.shapes[flat.input_name])
    if size > MAX_NODE_SIZE:
        raise UserError(f"the Input node's shape {list(flat.shapes[flat.input_name])} holds {size:,} values "
                        f"(at most {MAX_NODE_SIZE:,} supported)")
    for name in flat.order:
        if name == flat.input_name:
            continue
        incoming = []
        for source in flat.sources(name):
            if (source, name) in flat.back_edges:
                continue
            incoming.append((source, flat.shapes[source]))
        if not incoming:  # fed only by back edges: its own parameters decide
            incoming = [(name, neuron_shape(flat.nodes[name], name))]
        first = incoming[0][1]
        for source, shape in incoming[1:]:
            if shape != first:
                raise UserError(
                    f"node '{name}' sums inputs of different shapes: {list(first)} from '{incoming[0][0]}' "
                    f"and {list(shape)} from '{source}'"
                )
        flat.shapes[name] = _output_shape(flat, name, first)
        size = math.prod(flat.shapes[name])
        if size > MAX_NODE_SIZE or size < 1:
            raise UserError(f"node '{name}' ({flat.kinds[name]}) would hold {size:,} values of shape "
                            f"{list(flat.shapes[name])} (1 to {MAX_NODE_SIZE:,} supported)")
    for source, target in flat.back_edges:
        expected = flat.shapes[target] if flat.kinds[target] in NEURON_TYPES else None
        if expected is not None and flat.shapes[source] != expected:
            raise UserError(
                f"recurrent edge {source} -> {target}: shape {list(flat.shapes[source])} does not fit {list(expected)}"
            )


def _check_cycles(flat: FlatGraph) -> None:
    """Every cycle must pass through a neuron and a synaptic node: a loop of
    linear nodes alone is an algebraic loop, and a loop without a synapse has
    no synaptic delay."""
    for source, target in flat.back_edges:
        # nodes on the cycle: reachable from target and reaching source (forward edges only)
        forward = [(s, t) for s, t in flat.edges if (s, t) not in flat.back_edges]
        reach = _reachable(target, forward)
        back = _reachable(source, [(t, s) for s, t in forward])
        cycle = (reach & back) | {source, target}
        kinds = {flat.kinds[n] for n in cycle}
        if not kinds & set(NEURON_TYPES):
            raise UserError(f"cycle through '{target}' has no neuron: an algebraic loop is not a network")
        if not kinds & {"Affine", "Linear", "Conv2d", "Scale"}:
            raise UserError(f"cycle through '{target}' has no synaptic layer, so no synaptic delay: not supported")


def _reachable(start: str, edges: list[tuple[str, str]]) -> set[str]:
    targets: dict[str, list[str]] = {}
    for s, t in edges:
        targets.setdefault(s, []).append(t)
    seen, todo = {start}, [start]
    while todo:
        for child in targets.get(todo.pop(), []):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def analyse(graph) -> FlatGraph:
    """Flatten, check and order a NIR graph; one-line UserError on anything
    unsupported or inconsistent."""
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    entry, exit_ = _inline(graph, "", nodes, edges)
    if entry is None:
        raise UserError("the graph has no Input node")
    if exit_ is None:
        raise UserError("the graph has no Output node")
    flat = FlatGraph(nodes=nodes, edges=edges, input_name=entry, output_name=exit_)
    _check_types(flat)
    _check_values(flat)
    if flat.sources(entry):
        raise UserError(f"the Input node '{entry}' has incoming edges")
    if not flat.sources(exit_):
        raise UserError(f"the Output node '{exit_}' has no incoming edge")
    _order(flat)
    _check_cycles(flat)
    _infer_shapes(flat)
    return flat


# --------------------------------------------------------------------------- time step and conventions


def euler_ratios(flat: FlatGraph, dt: float) -> dict[str, float]:
    """dt / tau (largest over the node's time constants and neurons) of every
    neuron node with time constants: forward Euler with step ``dt`` decays by
    1 - dt/tau per step, which is stable only for dt / tau <= 1."""
    ratios = {}
    for name in flat.order:
        constants = [np.asarray(getattr(flat.nodes[name], key)) for key in TIME_CONSTANTS
                     if key in PARAMETERS.get(flat.kinds[name], ())]
        if constants:
            ratios[name] = float(max(dt / np.min(value) for value in constants))
    return ratios


def check_time_step(flat: FlatGraph, dt: float, allow_unstable: bool = False) -> None:
    """Refuse a time step that makes forward Euler unstable on some population
    (dt / tau > 1: the decay factor 1 - dt/tau is negative, the membrane
    oscillates instead of decaying), naming the node and the ratio, unless
    ``allow_unstable``."""
    unstable = {name: ratio for name, ratio in euler_ratios(flat, dt).items() if ratio > 1.0}
    if unstable and not allow_unstable:
        name = max(unstable, key=unstable.get)
        raise UserError(f"node '{name}' ({flat.kinds[name]}): dt/tau = {unstable[name]:.3g} > 1 with dt = {dt:g} s, "
                        "so forward Euler is unstable; give the step the graph was made for with --dt, "
                        "or --allow-unstable-dt")


SNNTORCH_DT = 1e-4
"""The time step snnTorch's NIR export assumes: it writes LIF nodes with r = tau / 1e-4."""


def convention_warnings(flat: FlatGraph) -> list[str]:
    """What the graph's producer, recognised from its structure, means but NIR
    cannot say: snnTorch writes r = tau / 1e-4 on its LIF nodes (its beta =
    1 - 1e-4/tau) and writes its default reset by subtraction as v_reset = 0,
    which NIR (and every backend here) runs as a reset to zero."""
    warnings = []
    for name in flat.order:
        node = flat.nodes[name]
        if flat.kinds[name] in ("LIF", "CubaLIF"):
            tau = np.asarray(getattr(node, "tau", getattr(node, "tau_mem", None)), dtype=np.float64)
            r = np.asarray(node.r, dtype=np.float64)
            if np.all(r > 1) and np.allclose(r, tau / SNNTORCH_DT, rtol=1e-6) and np.all(np.asarray(node.v_reset) == 0):
                warnings.append(f"node '{name}' looks like snnTorch's export (r = tau / {SNNTORCH_DT:g}): snnTorch "
                                f"assumes dt = {SNNTORCH_DT:g} s and by default resets by subtracting the "
                                "threshold, which NIR's v_reset = 0 cannot say; it runs here as a reset to 0")
    return warnings
