"""Hand-built NIR graphs that together cover every node type the Lava
builder supports, fan-in, a residual branch, recurrent edges and a nested
sub-graph. Weights are seeded and scaled so that neurons fire at moderate
rates (tests assert it, so a silent network cannot pass)."""

import nir
import numpy as np

DT = 1e-3


def _rng(seed):
    return np.random.default_rng(seed)


def lif(shape, tau=2e-3, r=1.0, v_leak=0.0, threshold=1.0):
    return nir.LIF(tau=np.full(shape, tau), r=np.full(shape, r), v_leak=np.full(shape, v_leak),
                   v_threshold=np.full(shape, threshold), v_reset=np.zeros(shape))


def graph(nodes, edges):
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def conv_graph(seed=0):
    """Conv2d (groups, stride, padding, dilation), AvgPool2d, SumPool2d, IF,
    Flatten, Linear, CubaLIF, Affine, LI output."""
    g = _rng(seed)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([2, 8, 8])}),
        "c1": nir.Conv2d(input_shape=(8, 8), weight=g.normal(0.25, 0.5, (4, 1, 3, 3)), stride=1, padding=1,
                         dilation=1, groups=2, bias=g.normal(0.1, 0.1, 4)),
        "lif1": lif((4, 8, 8), tau=2e-3, r=1.5, v_leak=0.1),
        "avg": nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "c2": nir.Conv2d(input_shape=(4, 4), weight=g.normal(0.05, 0.3, (6, 4, 3, 3)), stride=2, padding=2,
                         dilation=2, groups=1, bias=g.normal(0.0, 0.1, 6)),
        "if1": nir.IF(r=np.full((6, 2, 2), 0.8), v_threshold=np.full((6, 2, 2), 1.0), v_reset=np.zeros((6, 2, 2))),
        "sum": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([1, 1]), padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([6, 1, 1])}, start_dim=0, end_dim=-1),
        "lin": nir.Linear(weight=g.normal(0.1, 0.4, (10, 6))),
        "cuba": nir.CubaLIF(tau_syn=np.full(10, 4e-3), tau_mem=np.full(10, 2.5e-3), r=np.full(10, 1.2),
                            v_leak=np.zeros(10), v_threshold=np.full(10, 0.3), w_in=np.full(10, 1.5),
                            v_reset=np.zeros(10)),
        "aff": nir.Affine(weight=g.normal(0, 1.0, (5, 10)), bias=g.normal(0, 0.2, 5)),
        "li": nir.LI(tau=np.full(5, 3e-3), r=np.full(5, 1.0), v_leak=np.zeros(5)),
        "output": nir.Output(output_type={"output": np.array([5])}),
    }
    edges = [("input", "c1"), ("c1", "lif1"), ("lif1", "avg"), ("avg", "c2"), ("c2", "if1"), ("if1", "sum"),
             ("sum", "flat"), ("flat", "lin"), ("lin", "cuba"), ("cuba", "aff"), ("aff", "li"), ("li", "output")]
    return graph(nodes, edges)


def residual_recurrent_graph(seed=1):
    """Affine, LIF, a residual Scale shortcut (fan-in with a shorter path), a
    recurrent Linear self-loop, and a CubaLI output."""
    g = _rng(seed)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([12])}),
        "a0": nir.Affine(weight=g.normal(0.3, 0.5, (16, 12)), bias=g.normal(0.1, 0.1, 16)),
        "la": lif(16),
        "a1": nir.Affine(weight=g.normal(0.2, 0.5, (16, 16)), bias=g.normal(0.1, 0.1, 16)),
        "lb": lif(16),
        "a2": nir.Affine(weight=g.normal(0.1, 0.4, (16, 16)), bias=np.zeros(16)),
        "lc": lif(16, tau=4e-3),
        "shortcut": nir.Scale(scale=g.uniform(0.5, 1.5, 16)),
        "rec": nir.Linear(weight=g.normal(0.0, 0.3, (16, 16))),
        "a3": nir.Affine(weight=g.normal(0, 0.6, (4, 16)), bias=np.zeros(4)),
        "cli": nir.CubaLI(tau_syn=np.full(4, 3e-3), tau_mem=np.full(4, 5e-3), r=np.ones(4), v_leak=np.zeros(4),
                          w_in=np.ones(4)),
        "output": nir.Output(output_type={"output": np.array([4])}),
    }
    edges = [("input", "a0"), ("a0", "la"), ("la", "a1"), ("a1", "lb"), ("lb", "a2"), ("a2", "lc"),
             ("la", "shortcut"), ("shortcut", "lc"), ("lc", "rec"), ("rec", "lc"), ("lc", "a3"), ("a3", "cli"),
             ("cli", "output")]
    return graph(nodes, edges)


def conv_residual_graph(seed=2):
    """A convolutional residual block: the 1x1 shortcut conv skips one layer,
    so it needs a delayed convolution."""
    g = _rng(seed)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([2, 6, 6])}),
        "c0": nir.Conv2d(input_shape=(6, 6), weight=g.normal(0.2, 0.4, (3, 2, 3, 3)), stride=1, padding=1,
                         dilation=1, groups=1, bias=np.zeros(3)),
        "l0": lif((3, 6, 6)),
        "c1": nir.Conv2d(input_shape=(6, 6), weight=g.normal(0.15, 0.3, (3, 3, 3, 3)), stride=1, padding=1,
                         dilation=1, groups=1, bias=g.normal(0.0, 0.1, 3)),
        "l1": lif((3, 6, 6)),
        "c2": nir.Conv2d(input_shape=(6, 6), weight=g.normal(0.15, 0.3, (3, 3, 3, 3)), stride=1, padding=1,
                         dilation=1, groups=1, bias=np.zeros(3)),
        "sc": nir.Conv2d(input_shape=(6, 6), weight=g.normal(0.6, 0.3, (3, 3, 1, 1)), stride=1, padding=0,
                         dilation=1, groups=1, bias=np.zeros(3)),
        "l2": lif((3, 6, 6)),
        "flat": nir.Flatten(input_type={"input": np.array([3, 6, 6])}, start_dim=0, end_dim=-1),
        "readout": nir.Affine(weight=g.normal(0, 0.5, (4, 108)), bias=g.normal(0, 0.1, 4)),
        "output": nir.Output(output_type={"output": np.array([4])}),
    }
    edges = [("input", "c0"), ("c0", "l0"), ("l0", "c1"), ("c1", "l1"), ("l1", "c2"), ("c2", "l2"),
             ("l0", "sc"), ("sc", "l2"), ("l2", "flat"), ("flat", "readout"), ("readout", "output")]
    return graph(nodes, edges)


def nested_recurrent_graph(seed=3):
    """A recurrent LIF layer as a nested NIRGraph, as snnTorch exports RLeaky."""
    g = _rng(seed)
    inner = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([8])}),
            "lif": lif(8),
            "w_rec": nir.Linear(weight=g.normal(0.0, 0.5, (8, 8))),
            "output": nir.Output(output_type={"output": np.array([8])}),
        },
        edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
        type_check=False,
    )
    nodes = {
        "input": nir.Input(input_type={"input": np.array([6])}),
        "a0": nir.Affine(weight=g.normal(0.5, 0.5, (8, 6)), bias=np.zeros(8)),
        "rnn": inner,
        "a1": nir.Affine(weight=g.normal(0, 0.5, (3, 8)), bias=g.normal(0, 0.1, 3)),
        "output": nir.Output(output_type={"output": np.array([3])}),
    }
    edges = [("input", "a0"), ("a0", "rnn"), ("rnn", "a1"), ("a1", "output")]
    return graph(nodes, edges)


ALL = {
    "conv": conv_graph,
    "residual_recurrent": residual_recurrent_graph,
    "conv_residual": conv_residual_graph,
    "nested_recurrent": nested_recurrent_graph,
}
