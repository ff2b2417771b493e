"""``lava-fused-fixed``: the per-layer fixed-point graph's integers as one
Lava process. Bit-identical to ``lava-fixed`` (Lava's own bit-accurate
Dense/DelayDense/Conv/LIFReset models), every population's spikes at every
step and the outputs, at mixed latencies across back-to-back samples, with
lanes; live SOP counters equal to the spikes' fan-out. Random graphs are in
test_fuzz.py; imported netx networks in test_netx_import.py."""

from __future__ import annotations

import nir
import numpy as np
import pytest

from conftest import ROOT, assert_one_line_error, run_cli
from graphs import DT, conv_graph, conv_residual_graph, graph, nested_recurrent_graph, residual_recurrent_graph
from slt_deploy.deploy.plan import plan_for_graph
from slt_deploy.energy.counts import synapse_counts
from slt_deploy.energy.profile import graph_stream
from slt_deploy.ir.nirfile import read_graph
from slt_deploy.lava.network import LavaNetwork
from slt_deploy.lava.quantise import QuantisedPlan
from slt_deploy.neuron import wrap_signed
from slt_deploy.simulation import simulate
from test_per_neuron_decays import _conv_graph, _dense_graph

pytestmark = pytest.mark.filterwarnings("ignore:Cannot import module:UserWarning")

LATENCIES = np.array([8, 3, 8, 1, 5])


def _compare(plan, x, latencies, lanes: int, capacity: int = 2):
    """(per-layer fixed run, fused fixed run) of the same quantised plan."""
    quantised = QuantisedPlan(plan)
    with LavaNetwork(plan, x.shape[1], mode="fixed", capacity=capacity, quantised=quantised) as network:
        per_layer = network.run(x, latencies)
    with LavaNetwork(plan, x.shape[1], mode="fused-fixed", capacity=capacity, lanes=lanes,
                     quantised=quantised) as network:
        fused = network.run(x, latencies)
    return per_layer, fused


def _assert_bit_identical(per_layer, fused):
    assert list(fused.spikes) == list(per_layer.spikes)
    fired = 0
    for name, spikes in per_layer.spikes.items():
        assert np.array_equal(fused.spikes[name], spikes), (name, int((fused.spikes[name] != spikes).sum()))
        fired += int(spikes.sum())
    assert fired > 0
    assert np.array_equal(fused.outputs, per_layer.outputs)


@pytest.mark.parametrize("name", ["digits-mlp-slt", "digits-cnn-slt"])
def test_shipped_models_are_bit_identical_to_the_per_layer_fixed_graph(name, no_leaks):
    graph = read_graph(ROOT / "export" / f"{name}.nir")
    x = graph_stream(graph, "digits", "test", len(LATENCIES))[0]
    per_layer, fused = _compare(plan_for_graph(graph), x, LATENCIES, lanes=2)
    _assert_bit_identical(per_layer, fused)
    floating = simulate(graph, "lava-fused", x, LATENCIES)
    assert not np.array_equal(floating.outputs, fused.outputs)  # fixed point is not float: the check is not vacuous


@pytest.mark.parametrize("make", [conv_graph, residual_recurrent_graph, conv_residual_graph, nested_recurrent_graph,
                                  _dense_graph, lambda: _conv_graph(True)],
                         ids=["conv", "residual-recurrent", "conv-residual", "nested-recurrent",
                              "per-neuron-tau-recurrent-cuba", "per-neuron-tau-conv"])
def test_graphs_of_every_construct_are_bit_identical(make, no_leaks):
    g = make()
    plan = plan_for_graph(g, DT)
    shape = plan.populations[plan.input_name].shape
    x = (np.random.default_rng(4).random((len(LATENCIES), 8, *shape)) < 0.4).astype(np.float64)
    _assert_bit_identical(*_compare(plan, x, LATENCIES, lanes=3))


def test_graded_input_counts_and_analog_input_are_bit_identical(no_leaks):
    """Event counts above 1 (graded messages into the first Dense) and analog
    input scaled to 8-bit levels, into a CubaLIF with a constant current."""
    rng = np.random.default_rng(6)
    n = 6
    ones = np.ones(n)
    nodes = {"input": nir.Input(input_type={"input": np.array([5])}),
             "a": nir.Affine(weight=rng.normal(0.3, 0.5, (n, 5)), bias=np.full(n, 0.2)),
             "cuba": nir.CubaLIF(tau_syn=ones * 3e-3, tau_mem=ones * 4e-3, r=ones, v_leak=ones * 0,
                                 v_threshold=ones * 0.4, v_reset=ones * 0, w_in=ones),
             "b": nir.Linear(weight=rng.normal(0.2, 0.6, (3, n))),
             "li": nir.LI(tau=np.full(3, 5e-3), r=np.ones(3), v_leak=np.zeros(3)),
             "output": nir.Output(output_type={"output": np.array([3])})}
    g = graph(nodes, [("input", "a"), ("a", "cuba"), ("cuba", "b"), ("b", "li"), ("li", "output")])
    counts = rng.poisson(0.8, (len(LATENCIES), 8, 5)).astype(np.float64)
    assert counts.max() >= 3
    _assert_bit_identical(*_compare(plan_for_graph(g, DT), counts, LATENCIES, lanes=2))
    analog = rng.random((len(LATENCIES), 8, 5))
    _assert_bit_identical(*_compare(plan_for_graph(g, DT, input_kind="analog"), analog, LATENCIES, lanes=5))


def test_live_counters_are_the_fixed_point_spikes_fanout(no_leaks):
    graph = read_graph(ROOT / "export" / "digits-cnn-slt.nir")
    x = graph_stream(graph, "digits", "test", 6)[0]
    run = simulate(graph, "lava-fused-fixed", x, record_spikes=True)
    plan = plan_for_graph(graph)
    effective, structural, firing = synapse_counts(plan, x, run.spikes)
    assert np.array_equal(run.operations[..., 0], effective) and np.array_equal(run.operations[..., 1], structural)
    for name, count in firing.items():
        assert np.array_equal(run.spike_counts[name], count), name


def test_wrap_signed_is_twos_complement():
    values = np.array([2**31, -(2**31) - 1, 2**23, 5, -5])
    assert list(wrap_signed(values, 32)) == [-(2**31), 2**31 - 1, 2**23, 5, -5]
    assert list(wrap_signed(values, 24)) == [0, -1, -(2**23), 5, -5]
    assert np.array_equal(wrap_signed(values, 32), values.astype(np.int32))  # what a cast to int32 does


def test_profile_and_control_take_the_fused_fixed_backend(tmp_path):
    graph_path = ROOT / "export" / "digits-mlp-slt.nir"
    profile = tmp_path / "p.json"
    result = run_cli("profile", graph_path, "--backend", "lava-fused-fixed", "--samples", "24", "-o", profile,
                     "--nir-out", tmp_path / "g.nir")
    assert result.returncode == 0, result.stderr
    assert "lava-fused-fixed -- the deployed network as one Lava process" in result.stderr
    result = run_cli("control", tmp_path / "g.nir", "--backend", "lava-fused-fixed", "--samples", "12",
                     "--inferences", "12", "--per-inference-mj", "1", "-o", tmp_path / "control")
    assert result.returncode == 0, result.stderr
    assert_one_line_error(run_cli("run", graph_path, "--backend", "lava-fused-fix", "--data", "digits"),
                          "unknown backend 'lava-fused-fix'")
