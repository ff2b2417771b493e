"""NIR -> Lava: the Lava float graph equals the PyTorch model spike for spike;
fixed point stays within 2 points of float; latency switches per sample
without a rebuild; failed and hung runs leave nothing behind."""

import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import graphs
from slt_deploy.readout import predictions
from slt_deploy.simulation import simulate
from slt_deploy.training.checkpoint import load_checkpoint, model_from_checkpoint
from slt_deploy.data.splits import evaluation_inputs, load_split
from slt_deploy.deploy.plan import plan_deployment
from slt_deploy.core.errors import RunFailure, UserError
from slt_deploy.ir.export import export_model
from slt_deploy.lava.network import LavaNetwork
from slt_deploy.lava.watchdog import SLOWEST_FIXED_CONV_MACS_PER_SECOND, SLOWEST_MACS_PER_SECOND, default_step_seconds
from slt_deploy.ir.reference import ReferenceNetwork
from conftest import ROOT

LATENCIES = [8, 1, 3, 6, 2, 8, 5, 4, 7, 8, 1, 8]


def shipped(name: str):
    """The shipped SLT checkpoint of a digits model, its NIR graph and test inputs."""
    checkpoint = ROOT / "models" / f"{name}-slt.pt"
    model = model_from_checkpoint(load_checkpoint(checkpoint), str(checkpoint)).double()
    graph = export_model(model)
    test = load_split("digits", "test", model.recipe.input_shape)
    return model, graph, test


@pytest.mark.parametrize("name", ["digits-mlp", "digits-cnn"])
def test_lava_float_equals_the_pytorch_model(name, no_leaks):
    model, graph, test = shipped(name)
    x = evaluation_inputs(test, 8, "rate")[:, : len(LATENCIES)].double()
    record = {}
    with torch.no_grad():
        expected = model(x, record=record)  # [T, N, classes]
    plan = plan_deployment(graph, 1e-3)
    with LavaNetwork(plan, 8, capacity=5) as network:
        result = network.run(x.transpose(0, 1).numpy(), LATENCIES)
    assert sorted(result.spikes) == sorted(record)
    for k, t in enumerate(LATENCIES):
        for layer, spikes in record.items():
            assert np.array_equal(result.spikes[layer][k, :t], spikes[:t, k].numpy()), (layer, k, t)
            assert not result.spikes[layer][k, t:].any()
        difference = np.abs(result.outputs[k, :t] - expected[:t, k].numpy()).max()
        assert difference <= 1e-5, (k, t, difference)
    firing = np.mean([s.mean() for s in result.spikes.values()])
    assert 0.005 < firing < 0.5


@pytest.mark.parametrize("name", sorted(graphs.ALL))
def test_generated_graphs_run_exactly_on_lava(name, no_leaks):
    """Every supported primitive, fan-in, a residual branch and recurrent edges."""
    graph = graphs.ALL[name]()
    plan = plan_deployment(graph, graphs.DT)
    shape = plan.populations[plan.input_name].shape
    x = (np.random.default_rng(5).random((4, 10, *shape)) < 0.4).astype(float)
    latencies = [10, 4, 7, 1]
    reference = ReferenceNetwork(graph, graphs.DT).run(x)
    with LavaNetwork(plan, 10, capacity=3) as network:
        result = network.run(x, latencies)
    spiking = [n for n in reference.spikes if plan.populations[n].spiking]
    assert sorted(result.spikes) == sorted(spiking)
    for layer in spiking:
        rate = float(reference.spikes[layer].mean())
        assert 0.01 < rate < 0.9, (layer, rate)  # the comparison is not vacuous
    for k, t in enumerate(latencies):
        for layer in spiking:
            assert np.array_equal(result.spikes[layer][k, :t], reference.spikes[layer][k, :t]), (layer, k)
        assert np.abs(result.outputs[k, :t] - reference.outputs[k, :t]).max() <= 1e-9


def test_graph_primitives_are_all_covered():
    kinds = set()
    for make in graphs.ALL.values():
        from slt_deploy.ir.graph import analyse

        flat = analyse(make())
        kinds |= set(flat.kinds.values())
        recurrent = bool(flat.back_edges)
        kinds |= {"<recurrent>"} if recurrent else set()
    expected = {"Input", "Output", "Affine", "Linear", "Conv2d", "Flatten", "SumPool2d", "AvgPool2d", "Scale",
                "LIF", "IF", "LI", "CubaLIF", "CubaLI", "Identity", "<recurrent>"}
    assert expected <= kinds


def test_residual_branch_gets_a_delay_and_recurrence_none():
    plan = plan_deployment(graphs.residual_recurrent_graph(), graphs.DT)
    by_source = {(p.source, p.target, p.recurrent): p for p in plan.projections}
    assert by_source[("la", "lc", False)].delay == 1  # the shortcut skips one layer
    assert by_source[("lb", "lc", False)].delay == 0
    assert by_source[("lc", "lc", True)].delay == 0  # recurrent: exactly the previous step
    conv = plan_deployment(graphs.conv_graph(), graphs.DT)
    pooled = [p for p in conv.projections if p.source == "lif1"][0]
    assert pooled.kind == "conv" and pooled.stride == (4, 4)  # AvgPool(2) fused into the stride-2 conv
    assert pooled.weight.shape[2:] == (2 * 2 * 2 + 2, 10)  # kernel k*d*(K-1)+k with dilation 2


def test_latency_switches_per_sample_without_rebuild(no_leaks):
    model, graph, test = shipped("digits-mlp")
    x = evaluation_inputs(test, 8, "rate")[:, :4].transpose(0, 1).numpy()
    reference = ReferenceNetwork(graph, 1e-3).run(x)
    plan = plan_deployment(graph, 1e-3)
    with LavaNetwork(plan, 8, capacity=4) as network:
        first = network.run(x, [8, 8, 8, 8])
        second = network.run(x, [1, 2, 3, 4])  # same network, other latencies
        repeated = network.run(np.repeat(x[:1], 3, axis=0), [8, 5, 8])  # state is reset between samples
    for k in range(4):
        assert np.abs(first.outputs[k] - reference.outputs[k]).max() <= 1e-9
        t = k + 1
        assert np.abs(second.outputs[k, :t] - reference.outputs[k, :t]).max() <= 1e-9
        assert not second.outputs[k, t:].any()
    assert np.array_equal(repeated.outputs[0], repeated.outputs[2])
    assert np.array_equal(repeated.outputs[1, :5], repeated.outputs[0, :5])


@pytest.mark.parametrize("name", ["digits-mlp", "digits-cnn"])
def test_fixed_point_accuracy_within_two_points_of_float(name, no_leaks):
    model, graph, test = shipped(name)
    x = evaluation_inputs(test, 8, "rate").transpose(0, 1).numpy()
    labels = test.labels.numpy()
    float_run = simulate(graph, "torch", x)
    fixed_run = simulate(graph, "lava-fixed", x, capacity=60)
    full = np.full(len(labels), 8)
    float_accuracy = (predictions(float_run.outputs, full) == labels).mean()
    fixed_accuracy = (predictions(fixed_run.outputs, full) == labels).mean()
    assert float_accuracy > 0.9
    assert abs(fixed_accuracy - float_accuracy) <= 0.02, (fixed_accuracy, float_accuracy)
    layers = {row["layer"] for row in fixed_run.quantisation}
    assert {p.name for p in fixed_run.plan.projections} <= layers
    for row in fixed_run.quantisation:
        if row["kind"] == "synapses":
            assert row["relative_rms_error"] < 0.05
        else:
            assert row["du"] == 4095 and row["dv"] == 2048  # du = 1 exactly, dv = 0.5 exactly


def _inject(monkeypatch, behaviour):
    """Make the float Dense model of the per-layer graph misbehave at step 5."""
    from slt_deploy.lava.process import CanonicalDenseModel

    original = CanonicalDenseModel.run_spk

    def run_spk(self):
        if self.time_step == 5:
            behaviour()
        return original(self)

    monkeypatch.setattr(CanonicalDenseModel, "run_spk", run_spk)


def _raise():
    raise RuntimeError("injected failure")


def test_a_raising_lava_process_is_reported_and_cleaned_up(monkeypatch, no_leaks):
    _inject(monkeypatch, _raise)
    plan = plan_deployment(graphs.residual_recurrent_graph(), graphs.DT)
    started = time.monotonic()
    with pytest.raises(RunFailure, match="injected failure"):
        with LavaNetwork(plan, 10, capacity=2) as network:
            network.run(np.zeros((2, 10, 12)))
    assert time.monotonic() - started < 60


def test_a_hanging_lava_run_is_stopped_by_the_watchdog(monkeypatch, no_leaks):
    _inject(monkeypatch, lambda: time.sleep(3600))
    plan = plan_deployment(graphs.residual_recurrent_graph(), graphs.DT)
    started = time.monotonic()
    with pytest.raises(RunFailure, match="did not finish within"):
        with LavaNetwork(plan, 10, capacity=2, step_seconds=0.05, startup_seconds=10,
                         round_trip_seconds=2) as network:
            network.run(np.zeros((2, 10, 12)))
    assert time.monotonic() - started < 60


def test_the_watchdog_gives_big_networks_more_time_per_step():
    # the residual graph: a few hundred synapses -> the 1 s floor; VGGSNN's
    # 64x128x3x3 conv on 48x48 (170 M MACs per step) over 64 lanes: ~54 s
    small = plan_deployment(graphs.residual_recurrent_graph(), graphs.DT)
    assert default_step_seconds(small, 1) == 1.0
    conv = SimpleNamespace(kind="conv", weight=np.zeros((128, 64, 3, 3)), conv_output_shape=(128, 48, 48))
    big = SimpleNamespace(projections=[conv])
    macs = 128 * 64 * 9 * 48 * 48
    assert default_step_seconds(big, 64) == pytest.approx(64 * macs / SLOWEST_MACS_PER_SECOND)
    assert default_step_seconds(big, 64) > 20
    # the per-layer fixed-point graph runs Lava's bit-accurate Conv (scipy, channel pair by channel pair)
    assert default_step_seconds(big, 1, fixed_point_conv=True) == pytest.approx(macs / SLOWEST_FIXED_CONV_MACS_PER_SECOND)


def test_bad_latencies_are_refused(no_leaks):
    plan = plan_deployment(graphs.nested_recurrent_graph(), graphs.DT)
    with LavaNetwork(plan, 5) as network:
        with pytest.raises(UserError, match="exceed"):
            network.run(np.zeros((1, 6, 6)))
        with pytest.raises(UserError, match="latencies"):
            network.run(np.zeros((1, 5, 6)), [0])
        with pytest.raises(UserError, match="input must have shape"):
            network.run(np.zeros((1, 5, 7)))
    with pytest.raises(UserError, match=">= 1"):
        LavaNetwork(plan, 0)
