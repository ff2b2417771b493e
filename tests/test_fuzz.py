"""Property-based tests (hypothesis, issue 7).

1. Random valid NIR graphs in the supported set -- chains of Affine, Linear,
   Conv2d (stride, padding, dilation, groups), Flatten, SumPool2d, AvgPool2d
   and Scale between LIF, IF and CubaLIF populations, a readout (Affine, or
   an LI, CubaLI or spiking output), optionally a residual fan-in and a
   recurrent self-loop (plain or as a nested sub-graph) -- with random
   shapes, weights, time constants, thresholds, spike inputs and per-sample
   latencies t <= T: Lava gives the same spikes in every population as the
   float64 NIR reference, and outputs within 1e-9; the fused model equals the
   per-layer graph bit for bit.
2. Malformed NIR files -- truncated, bit-flipped, wrong dtypes, NaN/inf
   values, absurd or mismatched shapes, missing nodes, edges to unknown
   nodes, foreign bytes -- end in a one-line ``UserError`` from
   ``read_graph``/``graph_dt``/``plan_deployment`` (never another exception,
   never a hang, nothing absurd allocated), and in exit code 2 with one line
   through the CLI.

Examples are derandomised (reproducible in CI); the per-layer Lava graph
(one OS process per layer) runs on few examples, the fused model (one
process) on more. Hypothesis forbids function-scoped fixtures in ``@given``
tests, so each example checks for leaked OS processes and shared memory itself.
"""

from __future__ import annotations

import contextlib
import functools
import math
import shutil
import tempfile
import time
from pathlib import Path

import h5py
import nir
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, note, settings
from hypothesis import strategies as st

import graphs
from conftest import ROOT, assert_one_line_error, leak_check, run_cli
from slt_deploy.simulation import simulate
from slt_deploy.deploy.plan import input_kind_of
from slt_deploy.deploy.plan import plan_deployment
from slt_deploy.core.errors import UserError
from slt_deploy.ir.graph import SPIKING_TYPES, analyse
from slt_deploy.lava.network import LavaNetwork
from slt_deploy.lava.quantise import QuantisedPlan
from slt_deploy.ir.nirfile import graph_dt, read_graph, write_graph
from slt_deploy.ir.reference import ReferenceNetwork

pytestmark = [pytest.mark.filterwarnings("ignore:Cannot import module:UserWarning"),  # Lava's model search
              pytest.mark.filterwarnings("ignore:The truth value of an empty array:DeprecationWarning")]  # NIR's

DT = 1e-3
SETTINGS = dict(derandomize=True, database=None, deadline=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# =========================================================================== 1. random valid graphs


class _Builder:
    """Builds a random supported NIR graph layer by layer.

    Structure (node types, shapes, geometry) is drawn by hypothesis; values
    come from a NumPy generator seeded by hypothesis, so they are continuous
    (no exact ties at a threshold that float rounding could break). Each
    neuron's gain r is chosen from the mean current its input chain delivers,
    so that populations fire at moderate, varied rates."""

    def __init__(self, draw, rng):
        self.draw, self.rng = draw, rng
        self.nodes: dict = {}
        self.edges: list = []
        self.count = 0

    def kinds_since(self, source: str) -> set[str]:
        """Node types added after ``source`` (the chain just built)."""
        names = list(self.nodes)
        return {type(self.nodes[n]).__name__ for n in names[names.index(source) + 1:]}

    def add(self, prefix: str, node, *sources: str) -> str:
        name = f"{prefix}{self.count}"
        self.count += 1
        self.nodes[name] = node
        self.edges += [(s, name) for s in sources]
        return name

    # ------------------------------------------------------------ values

    def weights(self, shape, fan_in: float, strength: float = 1.0):
        """Positive-mean weights: the mean current per unit input rate is ``strength``."""
        mean = strength / max(fan_in, 1.0)
        return self.rng.normal(mean, 1.5 * mean, shape)

    # ------------------------------------------------------------ linear chains

    def conv(self, source: str, shape, cuba: bool, strength: float = 1.0):
        """[pool] Conv2d on an image: returns (end node, shape, mean current per unit rate)."""
        draw, rng = self.draw, self.rng
        c_in, h, w = shape
        gain = 1.0
        if draw(st.booleans()):  # a pool in front (fused into the conv when kernel == stride)
            k = draw(st.integers(1, 3))
            s = draw(st.sampled_from([1, 2, k]))
            p = draw(st.integers(0, k // 2))
            out = [(n + 2 * p - k) // s + 1 for n in (h, w)]
            if min(out) >= 1:
                summed = draw(st.booleans())
                pool = (nir.SumPool2d if summed else nir.AvgPool2d)(
                    kernel_size=np.array([k, k]), stride=np.array([s, s]), padding=np.array([p, p]))
                source, h, w = self.add("sum" if summed else "avg", pool, source), *out
                gain = k * k if summed else 1.0
        c_out = draw(st.integers(1, 4))
        groups = draw(st.sampled_from([g for g in range(1, 5) if c_in % g == 0 and c_out % g == 0]))
        k = draw(st.integers(1, 3))
        stride, dilation, padding = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(0, 2))
        out = [(n + 2 * padding - dilation * (k - 1) - 1) // stride + 1 for n in (h, w)]
        if min(out) < 1:
            k, stride, dilation, padding = 1, 1, 1, 0
            out = [h, w]
        if padding == 0 and draw(st.integers(0, 3)) == 0:
            padding = "valid"
        elif stride == 1 and dilation * (k - 1) == 2 * padding and draw(st.integers(0, 3)) == 0:
            padding = "same"
        fan_in = (c_in // groups) * k * k * gain
        weight = self.weights((c_out, c_in // groups, k, k), fan_in, strength)
        bias = rng.normal(0, 0.1, c_out) * strength  # into a CubaLIF too: a constant synaptic current
        node = nir.Conv2d(input_shape=(h, w), weight=weight, stride=stride, padding=padding,
                          dilation=dilation, groups=groups, bias=bias)
        return self.add("conv", node, source), (c_out, *out), strength

    def dense(self, source: str, size: int, n_out: int, cuba: bool, strength: float = 1.0):
        weight = self.weights((n_out, size), size, strength)
        if self.draw(st.booleans()):
            node = nir.Linear(weight=weight)
        else:
            node = nir.Affine(weight=weight, bias=self.rng.normal(0, 0.1, n_out) * strength)
        end = self.add("lin" if isinstance(node, nir.Linear) else "aff", node, source)
        if self.draw(st.integers(0, 3)) == 0:  # a Scale after the matrix
            end = self.add("scale", nir.Scale(scale=self.rng.uniform(0.5, 1.5, n_out)), end)
        return end, (n_out,)

    def chain(self, source: str, shape, cuba: bool):
        """A random linear chain from a population: (end node, shape, mean current per unit rate)."""
        draw = self.draw
        if len(shape) == 3:
            how = draw(st.sampled_from(["conv", "conv", "conv_flatten", "pool", "flatten_dense", "direct",
                                        "scale"]))
            if how in ("conv", "conv_flatten"):
                end, out, m = self.conv(source, shape, cuba)
                if how == "conv_flatten":
                    flat = nir.Flatten(input_type={"input": np.array(out)}, start_dim=0, end_dim=-1)
                    end, out = self.add("flat", flat, end), (math.prod(out),)
                return end, out, m
            if how == "pool":
                k = draw(st.integers(1, min(2, *shape[1:])))
                s = draw(st.integers(1, 2))
                summed = draw(st.booleans())
                pool = (nir.SumPool2d if summed else nir.AvgPool2d)(
                    kernel_size=np.array([k, k]), stride=np.array([s, s]), padding=np.array([0, 0]))
                out = (shape[0], *[(n - k) // s + 1 for n in shape[1:]])
                return self.add("sum" if summed else "avg", pool, source), out, k * k if summed else 1.0
            if how == "flatten_dense":
                flat = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1)
                end = self.add("flat", flat, source)
                end, out = self.dense(end, math.prod(shape), draw(st.integers(2, 20)), cuba)
                return end, out, 1.0
        else:
            how = draw(st.sampled_from(["dense", "dense", "dense", "direct", "scale"]))
            if how == "dense":
                end, out = self.dense(source, shape[0], draw(st.integers(2, 20)), cuba)
                return end, out, 1.0
        if how == "scale":
            scale_shape = (shape[0], 1, 1) if len(shape) == 3 and draw(st.booleans()) else shape
            scale = self.rng.uniform(0.5, 1.5, scale_shape)
            return self.add("scale", nir.Scale(scale=scale), source), shape, 1.0
        return source, shape, 1.0  # direct: neuron into neuron

    def shortcut(self, source: str, source_shape, target_shape, cuba: bool):
        """A second path from ``source`` into a target of ``target_shape`` (a
        residual fan-in), or None when the shapes do not allow one."""
        draw = self.draw
        if source_shape == target_shape and draw(st.booleans()):
            return self.add("scale", nir.Scale(scale=self.rng.uniform(0.3, 1.0, source_shape)), source)
        if len(target_shape) == 1:
            if len(source_shape) == 3:
                flat = nir.Flatten(input_type={"input": np.array(source_shape)}, start_dim=0, end_dim=-1)
                source = self.add("flat", flat, source)
            size = math.prod(source_shape)
            return self.add("lin", nir.Linear(weight=self.weights((target_shape[0], size), size, 0.5)), source)
        if len(source_shape) == 3:  # a (possibly non-square) conv that maps H x W onto the target's
            c_in, c_out = source_shape[0], target_shape[0]
            kernel, padding = [], []
            for size, out in zip(source_shape[1:], target_shape[1:]):
                shrink = size - out  # (size + 2p - k) + 1 == out
                k = shrink + 1 if shrink >= 0 else 1 + (-shrink) % 2
                kernel.append(k)
                padding.append(0 if shrink >= 0 else (k - 1 - shrink) // 2)
            weight = self.weights((c_out, c_in, *kernel), c_in * kernel[0] * kernel[1], 0.5)
            conv = nir.Conv2d(input_shape=source_shape[1:], weight=weight, stride=1, padding=tuple(padding),
                              dilation=1, groups=1, bias=np.zeros(c_out))
            return self.add("conv", conv, source)
        return None

    # ------------------------------------------------------------ neurons

    def neuron(self, kind: str, shape, current: float, vary_gain: bool = False):
        """A neuron population whose gain makes ``current`` (mean input) a
        moderate drive. v_leak varies per neuron; with ``vary_gain`` r and
        the thresholds too (per channel on images: a convolution carries one
        gain per output channel); time constants are drawn uniform or
        learned, one per neuron (on images per channel, or per neuron: the
        synapses then become a dense matrix)."""
        rng = self.rng
        full = lambda v: np.broadcast_to(np.asarray(v, dtype=np.float64), shape).copy()  # noqa: E731
        threshold = rng.uniform(0.3, 1.5)
        drive = rng.uniform(0.6, 2.5) * threshold / max(current, 1e-3) * np.ones(shape)
        per_channel = (shape[0], 1, 1) if len(shape) == 3 else shape
        if vary_gain:
            drive = drive * rng.uniform(0.7, 1.3, per_channel)
            if kind in SPIKING_TYPES and self.draw(st.booleans()):  # learned, per-neuron thresholds
                threshold = threshold * rng.uniform(0.7, 1.3, per_channel) * np.ones(shape)
        leak = rng.uniform(-0.1, 0.2) * threshold * rng.uniform(0.5, 1.5, shape)
        if kind == "IF":
            return nir.IF(r=drive / 3, v_threshold=full(threshold), v_reset=full(0))
        learned_tau = self.draw(st.booleans())
        where = shape if len(shape) == 1 or (learned_tau and self.draw(st.booleans())) else per_channel

        def time_constant(low: float):  # tau with dt/tau drawn from [low, 1]
            if learned_tau:
                return DT / rng.uniform(low, 1.0, where) * np.ones(shape)
            return DT / rng.uniform(low, 1.0)

        tau = time_constant(0.15)
        if kind in ("LIF", "LI"):
            if kind == "LI":
                return nir.LI(tau=full(tau), r=drive, v_leak=leak)
            return nir.LIF(tau=full(tau), r=drive, v_leak=leak, v_threshold=full(threshold), v_reset=full(0))
        tau_syn = time_constant(0.2)
        w_in = rng.uniform(0.5, 2.0)
        params = dict(tau_syn=full(tau_syn), tau_mem=full(tau), r=drive / w_in, v_leak=leak / 2, w_in=full(w_in))
        if kind == "CubaLI":
            return nir.CubaLI(**params)
        return nir.CubaLIF(**params, v_threshold=full(threshold), v_reset=full(0))

    def recurrent(self, neuron, shape, current: float, nested: bool, sources):
        """A population with a recurrent self-loop through one synaptic layer
        (Linear on vectors, a same-size Conv2d on images); nested: as a
        sub-graph, the way snnTorch exports recurrent layers."""
        # a bias on the recurrent layer (snnTorch RLeaky's default)
        biased = self.draw(st.booleans())
        if len(shape) == 1:
            weight = self.rng.normal(0, 1.0 / shape[0], (shape[0], shape[0]))
            loop = nir.Affine(weight=weight, bias=self.rng.normal(0, 0.2, shape[0])) if biased \
                else nir.Linear(weight=weight)
        else:
            c = shape[0]
            loop = nir.Conv2d(input_shape=shape[1:], weight=self.rng.normal(0, 0.3 / (9 * c), (c, c, 3, 3)),
                              stride=1, padding=1, dilation=1, groups=1,
                              bias=self.rng.normal(0, 0.2, c) if biased else np.zeros(c))
        if not nested:
            name = self.add("pop", neuron, *sources)
            loop_name = self.add("rec", loop, name)
            self.edges.append((loop_name, name))
            return name
        inner = nir.NIRGraph(
            nodes={"input": nir.Input(input_type={"input": np.array(shape)}), "neuron": neuron, "w_rec": loop,
                   "output": nir.Output(output_type={"output": np.array(shape)})},
            edges=[("input", "neuron"), ("neuron", "w_rec"), ("w_rec", "neuron"), ("neuron", "output")],
            type_check=False)
        return self.add("rnn", inner, *sources)


@st.composite
def networks(draw):
    """(graph, inputs [N, T, *shape], latencies [N]) for a random supported graph."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    b = _Builder(draw, rng)
    if draw(st.booleans()):
        shape = (draw(st.integers(1, 4)), draw(st.integers(3, 8)), draw(st.integers(3, 8)))
    else:
        shape = (draw(st.integers(1, 20)),)
    source = "input"
    b.nodes["input"] = nir.Input(input_type={"input": np.array(shape)})
    populations = [("input", shape)]
    layers = draw(st.integers(1, 3))
    recurrent_at = draw(st.integers(0, layers))  # == layers: none
    residual_at = draw(st.integers(0, layers))  # == layers: none
    for layer in range(layers):
        kind = draw(st.sampled_from(["LIF", "IF", "CubaLIF"]))
        cuba = kind == "CubaLIF"
        end, out, current = b.chain(source, shape, cuba)
        ends = [end]
        if layer == residual_at:  # a shortcut from an earlier population or the input (or a parallel path)
            skip_from, skip_shape = populations[draw(st.integers(0, len(populations) - 1))]
            skip = b.shortcut(skip_from, skip_shape, out, cuba)
            if skip is not None:
                ends.append(skip)
                current *= 1.5
        conv_into_vector = len(out) == 1 and b.kinds_since(source) & {"Conv2d"}
        neuron = b.neuron(kind, out, current * 0.4, vary_gain=draw(st.booleans()) and not conv_into_vector)
        if layer == recurrent_at:
            name = b.recurrent(neuron, out, current, draw(st.booleans()), ends)
        else:
            name = b.add("pop", neuron, *ends)
        populations.append((name, out))
        source, shape = name, out
    readout = draw(st.sampled_from(["affine", "LI", "CubaLI", "spiking", "conv"]))
    if readout == "spiking":
        output, out_shape = source, shape
    elif readout == "conv" and len(shape) == 3:
        output, out_shape, _ = b.conv(source, shape, cuba=False)
    else:
        if len(shape) == 3:
            flat = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1)
            source, shape = b.add("flat", flat, source), (math.prod(shape),)
        classes = draw(st.integers(1, 6))
        output, out_shape = b.dense(source, shape[0], classes, cuba=readout == "CubaLI")
        if readout in ("LI", "CubaLI"):
            output = b.add("out", b.neuron(readout, out_shape, 0.4), output)
    b.nodes["output"] = nir.Output(output_type={"output": np.array(out_shape)})
    b.edges.append((output, "output"))
    graph = nir.NIRGraph(nodes=b.nodes, edges=b.edges, type_check=False)

    samples, steps = draw(st.integers(1, 4)), draw(st.integers(1, 8))
    x = (rng.random((samples, steps, *populations[0][1])) < rng.uniform(0.2, 0.7)).astype(np.float64)
    latencies = np.array(draw(st.lists(st.integers(1, steps), min_size=samples, max_size=samples)))
    _wake_silent_populations(graph, x)
    note(f"nodes: {[(n, type(v).__name__) for n, v in b.nodes.items()]}")
    note(f"edges: {b.edges}; input {list(x.shape)}; latencies {latencies.tolist()}")
    return graph, x, latencies


def _wake_silent_populations(graph, x, rounds: int = 8) -> None:
    """Raise the gain r of the first silent spiking population, a few rounds,
    so that the comparisons are rarely vacuous (the weights' scale is only a
    guess of the rates in front)."""
    flat = analyse(graph)
    for _ in range(rounds):
        record = ReferenceNetwork(graph, DT).run(x).spikes
        silent = [n for n in flat.order if flat.kinds[n] in SPIKING_TYPES and not record[n].any()]
        if not silent:
            return
        flat.nodes[silent[0]].r = flat.nodes[silent[0]].r * 4


def reference_of(graph, x, latencies):
    """The float64 reference run, with a note of its firing; silent graphs are skipped."""
    reference = simulate(graph, "torch", x, latencies=latencies, dt=DT, record_spikes=True)
    plan = plan_deployment(graph, DT)
    spiking = sorted(p.name for p in plan.neuron_populations if p.spiking and not p.constant)
    rates = {name: float(reference.spikes[name].mean()) for name in spiking}
    note(f"firing rates {rates}")
    for name, rate in rates.items():
        event("silent population" if rate == 0 else "saturated population" if rate == 1 else "firing population")
    assume(any(rate > 0 for rate in rates.values()))  # a silent network would compare nothing
    return plan, reference, spiking


def assert_same_as_reference(result, reference, spiking, latencies):
    assert sorted(result.spikes) == spiking
    for k, t in enumerate(latencies):
        for name in spiking:
            assert np.array_equal(result.spikes[name][k, :t], reference.spikes[name][k, :t]), (name, k, t)
            assert not result.spikes[name][k, t:].any(), (name, k, t)
        difference = np.abs(result.outputs[k, :t] - reference.outputs[k, :t]).max()
        assert difference <= 1e-9, (k, t, difference)
        assert not result.outputs[k, t:].any()


@pytest.mark.timeout(240)
@settings(max_examples=6, **SETTINGS)
@given(case=networks(), data=st.data())
def test_random_graphs_on_the_per_layer_lava_graph_equal_the_reference(case, data):
    """Per-layer Lava float graph == NIR reference (spikes exact, outputs
    within 1e-9), and == the fused model bit for bit."""
    graph, x, latencies = case
    plan, reference, spiking = reference_of(graph, x, latencies)
    capacity = data.draw(st.integers(1, len(x)), label="capacity")  # < samples: several Lava runs
    with leak_check():
        with LavaNetwork(plan, x.shape[1], mode="float", capacity=capacity) as network:
            per_layer = network.run(x, latencies)
        with LavaNetwork(plan, x.shape[1], mode="fused", capacity=len(x), lanes=1) as network:
            fused = network.run(x, latencies)
    assert_same_as_reference(per_layer, reference, spiking, latencies)
    assert np.array_equal(fused.outputs, per_layer.outputs)  # bit for bit
    for name in spiking:
        assert np.array_equal(fused.spikes[name], per_layer.spikes[name]), name


@pytest.mark.timeout(240)
@settings(max_examples=25, **SETTINGS)
@given(case=networks(), data=st.data())
def test_random_graphs_on_the_fused_lava_model_equal_the_reference(case, data):
    graph, x, latencies = case
    plan, reference, spiking = reference_of(graph, x, latencies)
    lanes = data.draw(st.integers(1, len(x)), label="lanes")
    capacity = data.draw(st.integers(1, -(-len(x) // lanes)), label="capacity")  # small: several runs
    with leak_check():
        with LavaNetwork(plan, x.shape[1], mode="fused", capacity=capacity, lanes=lanes) as network:
            result = network.run(x, latencies)
    assert_same_as_reference(result, reference, spiking, latencies)


@pytest.mark.timeout(900)
@settings(max_examples=5, **SETTINGS)
@given(case=networks(), data=st.data())
def test_random_graphs_on_the_fused_fixed_model_equal_the_per_layer_fixed_graph(case, data):
    """lava-fused-fixed == lava-fixed (Lava's bit-accurate models) bit for bit:
    every population's spikes at every step, and the outputs."""
    graph, x, latencies = case
    plan, _, spiking = reference_of(graph, x, latencies)
    try:
        quantised = QuantisedPlan(plan)
    except UserError as error:  # e.g. a gain so large that no threshold fits 17 bits: refused by name
        event(f"quantiser refuses: {str(error).split(':')[-1].strip()}")
        assume(False)
    capacity = data.draw(st.integers(1, len(x)), label="capacity")
    lanes = data.draw(st.integers(1, len(x)), label="lanes")
    with leak_check():
        with LavaNetwork(plan, x.shape[1], mode="fixed", capacity=capacity, quantised=quantised) as network:
            per_layer = network.run(x, latencies)
        with LavaNetwork(plan, x.shape[1], mode="fused-fixed", capacity=-(-len(x) // lanes), lanes=lanes,
                         quantised=quantised) as network:
            fused = network.run(x, latencies)
    assert np.array_equal(fused.outputs, per_layer.outputs)
    for name in spiking:
        assert np.array_equal(fused.spikes[name], per_layer.spikes[name]), name


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["fused", "float"])
def test_a_recurrent_population_starts_each_sample_without_its_earlier_spikes(mode):
    """Found by the property above (fused, a LIF with a bias and a recurrent
    Linear): a population spiking at the Lava step just before its periodic
    reset -- on its bias, before a sample reaches it or in the previous
    sample's tail -- fed that spike through its recurrent synapses into the
    sample's first step, where NIR's back edge carries zero."""
    nodes = {
        "input": nir.Input(input_type={"input": np.array([2])}),
        "drive": nir.Affine(weight=0.5 * np.eye(2), bias=np.array([1.5, 0.0])),  # neuron 0 fires on its bias
        "lif": graphs.lif(2, tau=2e-3, threshold=0.6),
        "rec": nir.Linear(weight=np.array([[0.0, 0.0], [3.0, 0.0]])),  # ... and makes neuron 1 fire a step later
        "output": nir.Output(output_type={"output": np.array([2])}),
    }
    edges = [("input", "drive"), ("drive", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "output")]
    graph = graphs.graph(nodes, edges)
    x, latencies = np.zeros((3, 4, 2)), np.array([4, 2, 3])
    reference = simulate(graph, "torch", x, latencies=latencies, dt=DT, record_spikes=True)
    assert reference.spikes["lif"][:, 0].tolist() == [[1, 0]] * 3  # neuron 1 is silent at every first step
    with leak_check():
        with LavaNetwork(plan_deployment(graph, DT), 4, mode=mode, capacity=3) as network:
            result = network.run(x, latencies)
    assert np.array_equal(result.spikes["lif"], reference.spikes["lif"])
    assert np.array_equal(result.outputs, reference.outputs)


# =========================================================================== 2. malformed files


@functools.cache
def base_files() -> dict[str, bytes]:
    """Valid NIR files to damage: the shipped digits CNN export and two
    generated graphs (all node types, a residual and a recurrent edge)."""
    folder = Path(tempfile.mkdtemp(prefix="fuzz-base-"))
    try:
        files = {"digits-cnn": (ROOT / "export" / "digits-cnn-slt.nir").read_bytes()}
        for name, make in (("conv", graphs.conv_graph), ("residual", graphs.residual_recurrent_graph)):
            graph = make()
            graph.metadata = {"dt": DT}
            write_graph(graph, folder / f"{name}.nir")
            files[name] = (folder / f"{name}.nir").read_bytes()
        return files
    finally:
        shutil.rmtree(folder)


@functools.cache
def datasets_of(base: str) -> tuple[tuple[str, str, tuple, str], ...]:
    """(path, key, shape, dtype kind) of every numeric dataset of a node in ``base``."""
    found = []
    with _scratch(base) as path, h5py.File(path, "r") as f:
        def visit(name, item):
            if isinstance(item, h5py.Dataset) and "/nodes/" in name and item.dtype.kind in "iuf":
                found.append((name, name.rsplit("/", 1)[1], item.shape, item.dtype.kind))
        f.visititems(visit)
    return tuple(found)


@contextlib.contextmanager
def _scratch(base: str | None = None, data: bytes | None = None):
    folder = Path(tempfile.mkdtemp(prefix="fuzz-"))
    try:
        path = folder / "graph.nir"
        path.write_bytes(base_files()[base] if data is None else data)
        yield path
    finally:
        shutil.rmtree(folder)


def load_and_plan(path: Path) -> str:
    """What `slt-deploy run` does with a NIR file before simulating: "ok", or
    the UserError's message. Any other exception fails the test."""
    try:
        graph = read_graph(path)
        dt = graph_dt(graph)
        plan_deployment(graph, dt, input_kind_of(graph))
        ReferenceNetwork(graph, dt)  # the torch backend's interpreter
    except UserError as exc:
        message = str(exc)
        assert message and "\n" not in message, message
        return message
    return "ok"


# integer fields whose value must be a positive (or, for padding, >= 0) integer
GEOMETRY = ("stride", "dilation", "kernel_size", "groups", "padding", "start_dim", "end_dim")
POSITIVE = ("tau", "tau_syn", "tau_mem", "stride", "dilation", "kernel_size", "groups")


def _must_fail(path: str, key: str, how: str) -> bool:
    """Whether replacing dataset ``path`` (field ``key``) ``how`` must be refused."""
    input_shape = path.endswith("/input/shape")
    if how in ("string", "vlen-string", "complex", "vlen-float", "nan", "inf", "huge-array"):
        # NIR's own input_shape (Conv2d) and input_type (Flatten) are ignored,
        # the Output node's shape too: shapes are inferred from the Input node.
        return key not in ("input_shape", "input_type") and not path.endswith("/output/shape")
    if how == "zero":
        return key in POSITIVE or input_shape
    if how == "negative":
        return key in POSITIVE + ("padding",) or input_shape
    if how == "fraction":
        return key in GEOMETRY or input_shape
    if how == "huge-value":
        return input_shape
    return False


def _replace(f: h5py.File, path: str, how: str, rng) -> None:
    value = f[path][()]
    array = np.asarray(value)
    del f[path]
    if how == "string":
        f.create_dataset(path, data=np.full(array.shape, b"x1"))
    elif how == "vlen-string":
        f.create_dataset(path, data=np.array(["w"] * max(array.size, 1), dtype=object), dtype=h5py.string_dtype())
    elif how == "complex":
        f.create_dataset(path, data=array.astype(np.complex128) + 1j)
    elif how == "vlen-float":
        f.create_dataset(path, (max(array.size, 1),), dtype=h5py.vlen_dtype(np.float64))
    elif how in ("nan", "inf"):
        bad = array.astype(np.float64).reshape(-1)
        bad[rng.integers(bad.size)] = np.nan if how == "nan" else -np.inf
        f.create_dataset(path, data=bad.reshape(array.shape))
    elif how == "huge-array":  # declared, never written: a few bytes on disk, 8 TB when read
        f.create_dataset(path, shape=(10**6, 10**6), dtype="f8", chunks=(64, 64))
    elif how == "huge-value":
        f.create_dataset(path, data=np.full(array.shape, 10**12, dtype=np.int64))
    elif how == "zero":
        f.create_dataset(path, data=np.zeros_like(array))
    elif how == "negative":
        f.create_dataset(path, data=-np.abs(array) - 1)
    elif how == "fraction":
        f.create_dataset(path, data=array.astype(np.float64) + 0.5)
    elif how == "int":
        f.create_dataset(path, data=np.round(array).astype(np.int32))
    elif how == "scalar":
        f.create_dataset(path, data=array.ravel()[0] if array.size else 0.0)
    elif how == "empty":
        f.create_dataset(path, data=np.zeros((0,) * max(array.ndim, 1), dtype=array.dtype))
    elif how == "extra-element":
        f.create_dataset(path, data=np.append(array.ravel(), array.ravel()[:1]))
    elif how == "transposed":
        f.create_dataset(path, data=array.T.copy() if array.ndim > 1 else array.reshape(-1, 1))
    else:
        raise AssertionError(how)


BASES = st.sampled_from(["digits-cnn", "conv", "residual"])
DAMAGE = ["string", "vlen-string", "complex", "vlen-float", "nan", "inf", "huge-array", "huge-value", "zero",
          "negative", "fraction", "int", "scalar", "empty", "extra-element", "transposed"]


@pytest.mark.timeout(120)
@settings(max_examples=60, **SETTINGS)
@given(base=BASES, data=st.data())
def test_truncated_files_are_one_line_errors(base, data):
    content = base_files()[base]
    cut = data.draw(st.integers(0, len(content) - 1), label="cut")
    with _scratch(data=content[:cut]) as path:
        outcome = load_and_plan(path)
    assert outcome != "ok"


@pytest.mark.timeout(120)
@settings(max_examples=150, **SETTINGS)
@given(base=BASES, data=st.data())
def test_bit_flipped_files_load_or_are_one_line_errors(base, data):
    """A flipped bit may leave a valid graph (e.g. another weight): then it
    plans; otherwise it is a UserError -- never another exception."""
    content = bytearray(base_files()[base])
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(content) - 1), st.integers(0, 7)), min_size=1,
                               max_size=4), label="flips")
    for position, bit in flips:
        content[position] ^= 1 << bit
    with _scratch(data=bytes(content)) as path:
        event("loads and plans" if load_and_plan(path) == "ok" else "refused")


@pytest.mark.timeout(120)
@settings(max_examples=250, **SETTINGS)
@given(base=BASES, data=st.data())
def test_damaged_datasets_are_one_line_errors(base, data):
    """A parameter of wrong dtype, NaN/inf, absurd or mismatched shape or value."""
    path, key, _, _ = data.draw(st.sampled_from(datasets_of(base)), label="dataset")
    how = data.draw(st.sampled_from(DAMAGE), label="damage")
    with _scratch(base) as file:
        with h5py.File(file, "r+") as f:
            _replace(f, path, how, np.random.default_rng(0))
        started = time.monotonic()
        outcome = load_and_plan(file)
        assert time.monotonic() - started < 20, "took too long: something absurd was allocated or looped"
    event(f"{how}: {'ok' if outcome == 'ok' else 'refused'}")
    if _must_fail(path, key, how):
        assert outcome != "ok", (path, how)


def _edges(f: h5py.File, group: str = "node") -> list[tuple[str, str]]:
    return [(a.decode(), b.decode()) for a, b in f[f"{group}/edges"][()]]


def _set_edges(f: h5py.File, edges, group: str = "node") -> None:
    del f[f"{group}/edges"]
    f.create_dataset(f"{group}/edges", data=np.array([[a.encode(), b.encode()] for a, b in edges], dtype=object),
                     dtype=h5py.string_dtype())


@pytest.mark.timeout(120)
@settings(max_examples=80, **SETTINGS)
@given(base=BASES, data=st.data())
def test_missing_nodes_and_bad_edges_are_one_line_errors(base, data):
    how = data.draw(st.sampled_from(["delete-node", "delete-field", "edge-to-unknown", "edge-from-unknown",
                                     "drop-edge", "duplicate-input", "unknown-type", "delete-metadata-dt",
                                     "metadata-dt", "metadata-input-kind"]), label="how")
    with _scratch(base) as file:
        with h5py.File(file, "r+") as f:
            names = sorted(f["node/nodes"])
            edges = _edges(f)
            must_fail = True
            if how == "delete-node":
                del f[f"node/nodes/{data.draw(st.sampled_from(names), label='node')}"]
            elif how == "delete-field":
                node = data.draw(st.sampled_from(names), label="node")
                field = data.draw(st.sampled_from(sorted(f[f"node/nodes/{node}"])), label="field")
                del f[f"node/nodes/{node}/{field}"]
                must_fail = field not in ("v_reset", "input_shape", "input_type", "metadata")
            elif how in ("edge-to-unknown", "edge-from-unknown"):
                known = data.draw(st.sampled_from(names), label="node")
                edge = (known, "ghost") if how == "edge-to-unknown" else ("ghost", known)
                _set_edges(f, edges + [edge])
            elif how == "drop-edge":
                _set_edges(f, [e for e in edges if e != data.draw(st.sampled_from(edges), label="edge")])
            elif how == "duplicate-input":
                f.copy("node/nodes/input", "node/nodes/input2")
                _set_edges(f, edges + [("input2", edges[0][1])])
            elif how == "unknown-type":
                node = data.draw(st.sampled_from(names), label="node")
                del f[f"node/nodes/{node}/type"]
                f.create_dataset(f"node/nodes/{node}/type", data=data.draw(st.sampled_from(["Conv3d", "", "LIF "])),
                                 dtype=h5py.string_dtype())
            elif how == "delete-metadata-dt":
                del f["node/metadata/dt"]
            elif how == "metadata-dt":
                del f["node/metadata/dt"]
                value = data.draw(st.sampled_from(["fast", -1e-3, 0.0, float("nan"), float("inf"), [1e-3, 2e-3]]))
                kwargs = {"dtype": h5py.string_dtype()} if isinstance(value, str) else {}
                f.create_dataset("node/metadata/dt", data=value, **kwargs)
            elif how == "metadata-input-kind":
                if "input_kind" in f["node/metadata"]:
                    del f["node/metadata/input_kind"]
                value = data.draw(st.sampled_from(["images", "", 3, [1, 2]]))
                kwargs = {"dtype": h5py.string_dtype()} if isinstance(value, str) else {}
                f.create_dataset("node/metadata/input_kind", data=value, **kwargs)
        outcome = load_and_plan(file)
    event(f"{how}: {'ok' if outcome == 'ok' else 'refused'}")
    if how == "drop-edge":
        return  # dropping e.g. a recurrent edge leaves a valid graph
    if must_fail:
        assert outcome != "ok", how


@pytest.mark.timeout(60)
@settings(max_examples=30, **SETTINGS)
@given(content=st.one_of(st.just(b""), st.binary(max_size=4096),
                         st.binary(min_size=8, max_size=512).map(lambda b: b"\x89HDF\r\n\x1a\n" + b)))
def test_foreign_bytes_are_one_line_errors(content):
    """An empty file, random bytes, and random bytes behind an HDF5 signature."""
    with _scratch(data=content) as path:
        assert load_and_plan(path) != "ok"


def _huge_graph(**shapes):
    """A small valid graph whose Input declares an absurd image (as a few bytes)."""
    shape = shapes.get("input", (1, 8, 8))
    return graphs.graph(
        {"input": nir.Input(input_type={"input": np.array(shape)}),
         "conv": nir.Conv2d(input_shape=shape[1:], weight=np.ones((2, 1, 1, 1)), stride=1, padding=0, dilation=1,
                            groups=1, bias=np.zeros(2)),
         "lif": nir.LIF(tau=np.array(2e-3), r=np.array(1.0), v_leak=np.array(0.0), v_threshold=np.array(1.0),
                        v_reset=np.array(0.0)),
         "output": nir.Output(output_type={"output": np.array([2, *shape[1:]])})},
        [("input", "conv"), ("conv", "lif"), ("lif", "output")])


@pytest.mark.timeout(60)
@pytest.mark.parametrize("shape", [(1, 10**6, 10**6), (1, 10**12, 1), (1, 2**40, 2**40), (1, -8, 8), (1, 0, 8)])
def test_absurd_shapes_are_refused_before_allocating(shape):
    """Scalar neuron parameters broadcast to any shape: an Input of 10^12
    pixels would make every layer allocate terabytes."""
    started = time.monotonic()
    with pytest.raises(UserError, match="Input node's shape"):
        plan_deployment(_huge_graph(input=shape), DT)
    with pytest.raises(UserError, match="Input node's shape"):
        ReferenceNetwork(_huge_graph(input=shape), DT)
    assert time.monotonic() - started < 5


# --------------------------------------------------------------------------- through the CLI


@pytest.fixture(scope="module")
def cli_cases(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz-cli")
    cnn = base_files()["digits-cnn"]
    (folder / "empty.nir").write_bytes(b"")
    (folder / "truncated.nir").write_bytes(cnn[: len(cnn) // 3])
    flipped = bytearray(cnn)  # a flip that breaks the HDF5 structure (found by the property above)
    for position in range(200, len(cnn), 977):
        flipped[position] ^= 0x10
    (folder / "flipped.nir").write_bytes(bytes(flipped))
    for name, dataset, how in (("nan", "node/nodes/readout/weight", "nan"),
                               ("complex", "node/nodes/l0_conv_lif/tau", "complex"),
                               ("huge", "node/nodes/l2_conv_syn/weight", "huge-array"),
                               ("negative", "node/nodes/input/shape", "negative")):
        (folder / f"{name}.nir").write_bytes(cnn)
        with h5py.File(folder / f"{name}.nir", "r+") as f:
            _replace(f, dataset, how, np.random.default_rng(1))
    (folder / "ghost.nir").write_bytes(cnn)
    with h5py.File(folder / "ghost.nir", "r+") as f:
        _set_edges(f, _edges(f) + [("l0_conv_syn", "ghost")])
    np.save(folder / "x.npy", (np.random.default_rng(0).random((2, 3, 1, 8, 8)) < 0.5).astype(np.float32))
    return folder


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name, fragment", [
    ("empty", "not a NIR file"),
    ("truncated", "not a valid NIR graph"),
    ("flipped", "not a valid NIR graph"),
    ("nan", "node 'readout' (Affine): weight holds NaN or infinite values"),
    ("complex", "node 'l0_conv_lif' (LIF): tau must hold real numbers"),
    ("huge", "declares an array"),
    ("negative", "Input node's shape must be positive"),
    ("ghost", "'ghost' that does not exist"),
])
def test_malformed_files_through_the_cli_are_one_line_exit_2(cli_cases, name, fragment):
    assert_one_line_error(run_cli("run", cli_cases / f"{name}.nir", "--input", cli_cases / "x.npy",
                                  timeout=120), fragment)
