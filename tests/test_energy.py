"""Synaptic-operation counts and their energy (one definition, every backend)."""

import json
from itertools import product

import nir
import numpy as np
import pytest
import torch

import graphs
from conftest import ROOT, assert_one_line_error, run_cli
from slt_deploy import simulation
from slt_deploy.simulation import simulate
from slt_deploy.training.checkpoint import load_checkpoint, model_from_checkpoint
from slt_deploy.data.splits import evaluation_inputs, load_split
from slt_deploy.deploy.plan import Projection, plan_deployment
from slt_deploy.deploy.synapses import fanout
from slt_deploy.energy.counts import count_operations
from slt_deploy.energy.hardware import load_hardware
from slt_deploy.core.errors import UserError
from slt_deploy.ir.export import export_model
from slt_deploy.ir.nirfile import read_graph
from slt_deploy.energy.profile import profile_model

SINABS = ROOT / "tests" / "fixtures" / "sinabs"


def loop_fanout(in_shape, weight, stride, padding, dilation, groups, effective):
    """Synapses per input neuron by explicit loops over outputs and taps."""
    c_in, h, w = in_shape
    c_out, c_per_group, kh, kw = weight.shape
    out_h = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    out_w = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    counts = np.zeros(in_shape, dtype=np.int64)
    out_per_group = c_out // groups
    for o, y, x, c, a, b in product(range(c_out), range(out_h), range(out_w), range(c_per_group), range(kh), range(kw)):
        if effective and weight[o, c, a, b] == 0:
            continue
        i = y * stride[0] - padding[0] + a * dilation[0]
        j = x * stride[1] - padding[1] + b * dilation[1]
        if 0 <= i < h and 0 <= j < w:
            counts[(o // out_per_group) * c_per_group + c, i, j] += 1
    return counts, (c_out, out_h, out_w)


@pytest.mark.parametrize("stride, padding, dilation, groups", [
    ((1, 1), (1, 1), (1, 1), 1), ((2, 2), (1, 1), (1, 1), 1), ((1, 2), (0, 2), (2, 1), 1),
    ((2, 2), (2, 2), (2, 2), 2), ((1, 1), (0, 0), (1, 1), 4),
])
def test_conv_fanout_is_exact_at_borders_with_stride_dilation_groups(stride, padding, dilation, groups):
    rng = np.random.default_rng(0)
    in_shape = (4, 7, 6)
    weight = rng.normal(size=(8, 4 // groups, 3, 3)) * (rng.random((8, 4 // groups, 3, 3)) > 0.3)
    for effective in (False, True):
        expected, out_shape = loop_fanout(in_shape, weight, stride, padding, dilation, groups, effective)
        projection = Projection(source="a", target="b", nodes=("c",), kind="conv", weight=weight,
                                source_shape=in_shape, target_shape=out_shape, stride=stride, padding=padding,
                                dilation=dilation, groups=groups, conv_input_shape=in_shape,
                                conv_output_shape=out_shape)
        assert np.array_equal(fanout(projection, effective), expected)
    assert expected.min() < expected.max()  # borders really differ from the middle


def _single_layer_plan(weight, n_in):
    graph = graphs.graph(
        {"input": nir.Input(input_type={"input": np.array([n_in])}),
         "a": nir.Affine(weight=np.eye(n_in), bias=np.zeros(n_in)), "la": graphs.lif(n_in),
         "b": nir.Linear(weight=weight), "lb": graphs.lif(weight.shape[0]),
         "output": nir.Output(output_type={"output": np.array([weight.shape[0]])})},
        [("input", "a"), ("a", "la"), ("la", "b"), ("b", "lb"), ("lb", "output")])
    return plan_deployment(graph, graphs.DT)


def test_all_firing_counts_every_synapse_and_silence_counts_nothing():
    weight = np.array([[1.0, 0.0, 2.0], [0.5, 0.0, 0.0]])  # 6 synapses, 3 nonzero
    plan = _single_layer_plan(weight, 3)
    x = np.zeros((1, 4, 3))
    all_firing = {"la": np.ones((1, 4, 3)), "lb": np.zeros((1, 4, 2))}
    counts = count_operations(plan, x, all_firing)
    layer = [l for l in counts.layers if l.source == "la"][0]
    assert layer.structural.tolist() == [[6, 6, 6, 6]] and layer.effective.tolist() == [[3, 3, 3, 3]]
    assert layer.synapses_structural == 6 and layer.synapses_effective == 3
    silent = count_operations(plan, x, {"la": np.zeros((1, 4, 3)), "lb": np.zeros((1, 4, 2))})
    assert silent.total("sop").sum() == 0
    one = {"la": np.array([[[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 0]]], dtype=float), "lb": np.zeros((1, 4, 2))}
    layer = [l for l in count_operations(plan, x, one).layers if l.source == "la"][0]
    assert layer.effective.tolist() == [[1, 2, 0, 0]] and layer.structural.tolist() == [[2, 2, 2, 0]]
    cut = count_operations(plan, x, all_firing, latencies=[2])  # steps after the latency count nothing
    assert [l for l in cut.layers if l.source == "la"][0].effective.tolist() == [[3, 3, 0, 0]]


def test_pooling_is_counted_on_the_fused_layer():
    plan = plan_deployment(graphs.conv_graph(), graphs.DT)
    fused = [p for p in plan.projections if p.source == "lif1"][0]
    assert fused.nodes == ("avg", "c2") and fused.kind == "conv"
    fan = fanout(fused, effective=False)
    assert fan.shape == (4, 8, 8)  # counted per presynaptic LIF neuron, before pooling


def test_analog_input_is_counted_as_macs_once_or_per_step():
    graph = graphs.nested_recurrent_graph()
    x = np.random.default_rng(0).random((2, 5, 6))
    spikes = simulate(graph, "torch", x, dt=graphs.DT, record_spikes=True).spikes
    plan = plan_deployment(graph, graphs.DT, input_kind="analog")
    once = count_operations(plan, x, spikes, mac_once=True)
    every = count_operations(plan, x, spikes, mac_once=False)
    per_inference = 6 * 8  # all 48 synapses of the input layer (identity-free dense 8x6)
    assert once.total("mac").tolist() == [[per_inference, 0, 0, 0, 0]] * 2
    assert every.total("mac").tolist() == [[per_inference] * 5] * 2
    assert np.array_equal(once.total("sop"), every.total("sop"))
    spikes_plan = plan_deployment(graph, graphs.DT, input_kind="spikes")
    assert count_operations(spikes_plan, x, spikes).total("mac").sum() == 0


@pytest.mark.parametrize("name", ["digits-mlp", "digits-cnn"])
def test_pytorch_and_lava_counts_are_equal(name, no_leaks):
    checkpoint = ROOT / "models" / f"{name}-slt.pt"
    model = model_from_checkpoint(load_checkpoint(checkpoint), str(checkpoint)).double()
    graph = export_model(model)
    test = load_split("digits", "test", model.recipe.input_shape)
    x = evaluation_inputs(test, 8, "rate")[:, :10].double()
    record = {}
    with torch.no_grad():
        model(x, record=record)  # the training model, batched
    torch_spikes = {k: v.transpose(0, 1).numpy() for k, v in record.items()}
    inputs = x.transpose(0, 1).numpy()
    plan = plan_deployment(graph, 1e-3)
    latencies = [8, 3, 8, 1, 5, 8, 2, 8, 7, 4]
    torch_counts = count_operations(plan, inputs, torch_spikes, latencies)
    lava = simulate(graph, "lava-float", inputs, latencies=latencies, record_spikes=True)
    lava_counts = count_operations(plan, inputs, lava.spikes, latencies)
    assert len(torch_counts.layers) == len(plan.projections)
    for ours, theirs in zip(torch_counts.layers, lava_counts.layers):
        assert np.array_equal(ours.effective, theirs.effective) and np.array_equal(ours.structural, theirs.structural)
        assert ours.effective.dtype == np.int64
    assert torch_counts.total("sop").sum() > 0


def test_energy_arithmetic():
    qiao = load_hardware("qiao2015")
    assert qiao.energy_mj(1000) == pytest.approx(1000 * 0.077e-9)  # 77 fJ per SOP
    assert qiao.energy_mj(1000, mac=10) == pytest.approx((1000 * 0.077 + 10 * 4.6) * 1e-9)
    loihi = load_hardware("loihi2018")
    assert loihi.evidence == "simulated minimum"
    assert loihi.energy_mj(100, neuron_updates=10) == pytest.approx((100 * 23.6 + 10 * 52.0) * 1e-9)
    with pytest.raises(UserError, match="no MAC energy"):
        loihi.energy_mj(1, mac=1)
    ann = load_hardware("horowitz2014")
    assert ann.mac_pj == pytest.approx(3.7 + 0.9)


def test_cross_check_with_sinabs_synops_counter():
    """sinabs (3.1.3, own environment; tests/fixtures/sinabs/synops_method.md)
    multiplies each input element by its structural fan-out (a transposed conv
    of an all-ones kernel) and never looks at the weights. So sinabs' count
    equals our *structural* count exactly, layer by layer; our default
    *effective* count is lower by the synapses whose weight is zero (19 of 72,
    66 of 216 and 27 of 120 in this model). Its SumPool2d in front of the
    second conv is our pooling fused into that conv (kernel = stride)."""
    meta = json.loads((SINABS / "synops.json").read_text())
    io = np.load(SINABS / "synops_io.npz")
    graph = read_graph(SINABS / "synops_model.nir")
    run = simulate(graph, "torch", io["input"], dt=1.0, record_spikes=True)
    for node in ("1", "4", "7"):  # the same spikes as sinabs computed
        assert np.array_equal(run.spikes[node], io[f"layer_{node}"])
    plan = plan_deployment(graph, 1.0)
    counts = count_operations(plan, io["input"], run.spikes)
    sinabs = meta["sinabs"]["SNNAnalyzer"]["batch"]["per_layer"]
    by_first_node = {layer.name.split("+")[0]: layer for layer in counts.layers}
    assert set(by_first_node) == {"0", "2", "5"}  # conv; pool+conv; flatten+linear
    for ours, theirs in (("0", "0"), ("2", "3"), ("5", "6")):
        structural = by_first_node[ours].structural.sum(1).mean()
        effective = by_first_node[ours].effective.sum(1).mean()
        assert structural == pytest.approx(sinabs[theirs]["synops"]), ours
        assert effective < structural
    total_structural = counts.total("sop", "structural").sum(1).mean()
    assert total_structural == pytest.approx(meta["sinabs"]["SNNAnalyzer"]["batch"]["total_synops"])


def test_one_pass_at_T_gives_the_counts_of_every_shorter_run():
    graph = read_graph(ROOT / "export" / "digits-cnn-slt.nir")
    test = load_split("digits", "test", (1, 8, 8))
    x = evaluation_inputs(test, 8, "rate")[:, :20].transpose(0, 1).numpy()
    profile = profile_model(graph, x, test.labels.numpy()[:20], load_hardware("qiao2015"))
    plan = plan_deployment(graph, 1e-3)
    for t in (1, 4):
        short = simulate(graph, "torch", x[:, :t], record_spikes=True)
        sop = count_operations(plan, x[:, :t], short.spikes).total("sop").sum(1).mean()
        assert profile["sop"]["mean"][t - 1] == pytest.approx(sop)
    assert profile["energy_mj"]["mean"][-1] == pytest.approx(profile["sop"]["mean"][-1] * 0.077e-9)
    assert all(a <= b for a, b in zip(profile["sop"]["mean"], profile["sop"]["mean"][1:]))
    assert set(profile["firing_rate"]) == {"l0_conv_lif", "l2_conv_lif"}


def test_profiling_in_small_batches_gives_the_same_profile(monkeypatch):
    # a VGGSNN records ~0.1 GB of spikes per sample: profile and the torch
    # reference run in memory-bounded batches; the profile must not change
    graph = read_graph(ROOT / "export" / "digits-cnn-slt.nir")
    test = load_split("digits", "test", (1, 8, 8))
    x = evaluation_inputs(test, 8, "rate")[:, :9].transpose(0, 1).numpy()
    labels = test.labels.numpy()[:9]
    whole = profile_model(graph, x, labels, load_hardware("qiao2015"))
    reference = simulate(graph, "torch", x, record_spikes=True)
    done = []
    monkeypatch.setattr(simulation, "BATCH_BYTES", 1)  # one sample per batch
    assert simulation.samples_per_batch(10**6, 10, record=True) == 1
    batched = profile_model(graph, x, labels, load_hardware("qiao2015"), progress=done.append)
    assert done == list(range(1, 10))
    assert batched == whole
    in_batches = simulate(graph, "torch", x, record_spikes=True)
    assert np.array_equal(in_batches.outputs, reference.outputs)
    assert all(np.array_equal(in_batches.spikes[k], v) for k, v in reference.spikes.items())


def test_a_model_without_spiking_layers_is_refused():
    graph = graphs.graph({"input": nir.Input(input_type={"input": np.array([3])}),
                          "a": nir.Affine(weight=np.ones((2, 3)), bias=np.zeros(2)),
                          "output": nir.Output(output_type={"output": np.array([2])})},
                         [("input", "a"), ("a", "output")])
    graph.metadata = {"dt": 1e-3}
    with pytest.raises(UserError, match="no spiking layer"):
        profile_model(graph, np.zeros((1, 2, 3)), np.zeros(1, dtype=int), load_hardware("qiao2015"))


@pytest.fixture(scope="module")
def bad_profiles(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hw")
    good = (ROOT / "hardware" / "qiao2015.toml").read_text()
    (folder / "nosource.toml").write_text(good.replace('source = "Qiao', 'sourc = "Qiao'))
    (folder / "negative.toml").write_text(good.replace("sop_pj = 0.077", "sop_pj = -0.077"))
    (folder / "novalues.toml").write_text(good.replace("sop_pj = 0.077\nmac_pj = 4.6\n", ""))
    (folder / "mixed.toml").write_text(good.replace('evidence = "measured"', 'evidence = "whole-chip average"'))
    (folder / "text.toml").write_text(good.replace("sop_pj = 0.077", 'sop_pj = "cheap"'))
    return folder


@pytest.mark.parametrize("args, fragment", [
    (["--hardware", "tpu9000"], "unknown hardware profile"),
    (["--hardware", "{hw}/nosource.toml"], "'source' is missing"),
    (["--hardware", "{hw}/negative.toml"], "non-negative"),
    (["--hardware", "{hw}/novalues.toml"], "at least sop_pj or mac_pj"),
    (["--hardware", "{hw}/mixed.toml"], "whole-chip average cannot be mixed"),
    (["--hardware", "{hw}/text.toml"], "non-negative number"),
    (["--noise", "blur:2"], "unknown noise"),
    (["--noise", "dropout:1.5"], "out of range"),
])
def test_bad_profile_input_is_one_line_and_exit_2(args, fragment, bad_profiles, tmp_path):
    args = [a.format(hw=bad_profiles) for a in args]
    result = run_cli("profile", ROOT / "export" / "digits-mlp-slt.nir", "--samples", "5",
                     "-o", tmp_path / "p.json", "--nir-out", tmp_path / "p.nir", *args)
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "p.json").exists() and not (tmp_path / "p.nir").exists()
