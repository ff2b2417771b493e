"""The deployed network as one Lava process with two behaviours: the fused
CPU model gives bit-identical spikes and outputs to the per-layer graph."""

import numpy as np
import pytest

import graphs
from conftest import ROOT, shm_segments
from slt_deploy.data.splits import evaluation_inputs, load_split
from slt_deploy.deploy.plan import plan_deployment
from slt_deploy.energy.counts import count_operations
from slt_deploy.energy.hardware import load_hardware
from slt_deploy.core.errors import RunFailure
from slt_deploy.lava.network import LavaNetwork
from slt_deploy.lava.watchdog import lava_actors
from slt_deploy.ir.nirfile import read_graph
from slt_deploy.energy.profile import profile_model

LATENCIES = [8, 1, 3, 6, 2, 5, 4, 7, 8, 8, 2, 5]


def digits(name: str, n: int):
    graph = read_graph(ROOT / "export" / f"{name}-slt.nir")
    plan = plan_deployment(graph, 1e-3)
    x = evaluation_inputs(load_split("digits", "test", plan.populations[plan.input_name].shape), 8, "rate")
    return graph, plan, x[:, :n].transpose(0, 1).numpy()


def both(plan, x, latencies, steps, lanes=4, capacity=2):
    with LavaNetwork(plan, steps, capacity=5) as per_layer:
        per = per_layer.run(x, latencies)
        per_layer_processes = len(lava_actors(per_layer.anchor.runtime))
    with LavaNetwork(plan, steps, mode="fused", capacity=capacity, lanes=lanes) as fused_network:
        fused = fused_network.run(x, latencies)
        fused_processes = len(lava_actors(fused_network.anchor.runtime))
    return per, fused, per_layer_processes, fused_processes


@pytest.mark.parametrize("name", ["digits-mlp", "digits-cnn"])
def test_fused_equals_per_layer_bit_for_bit(name, no_leaks):
    graph, plan, x = digits(name, len(LATENCIES))
    per, fused, per_processes, fused_processes = both(plan, x, LATENCIES, 8)
    assert np.array_equal(per.outputs, fused.outputs)  # bit-identical, at every step of every latency
    assert sorted(per.spikes) == sorted(fused.spikes)
    for layer in per.spikes:
        assert np.array_equal(per.spikes[layer], fused.spikes[layer]), layer
    assert np.abs(per.outputs).max() > 0 and sum(s.sum() for s in per.spikes.values()) > 100
    # one Lava process (plus Lava's runtime service) against one per layer and record
    assert fused_processes == 2 and per_processes > 2 * len(plan.projections)
    # the fused model's live counters are the definition's counts, exactly
    counts = count_operations(plan, x, fused.spikes, LATENCIES)
    for index, layer in enumerate(counts.layers):
        assert np.array_equal(fused.operations[:, :, index, 0], layer.effective), layer.name
        assert np.array_equal(fused.operations[:, :, index, 1], layer.structural), layer.name
    for population, spikes in fused.spikes.items():
        assert np.array_equal(fused.spike_counts[population], spikes.reshape(*spikes.shape[:2], -1).sum(-1))


@pytest.mark.parametrize("name", sorted(graphs.ALL))
def test_fused_equals_per_layer_on_every_primitive(name, no_leaks):
    graph = graphs.ALL[name]()
    plan = plan_deployment(graph, graphs.DT)
    x = (np.random.default_rng(7).random((5, 10, *plan.populations[plan.input_name].shape)) < 0.4).astype(float)
    per, fused, _, _ = both(plan, x, [10, 4, 7, 1, 9], 10, lanes=2, capacity=2)
    assert np.array_equal(per.outputs, fused.outputs)
    for layer in per.spikes:
        assert np.array_equal(per.spikes[layer], fused.spikes[layer]), layer


def test_lanes_and_capacity_do_not_change_results(no_leaks):
    graph, plan, x = digits("digits-cnn", 9)
    results = []
    for lanes, capacity in ((1, 9), (3, 3), (9, 1), (4, 2)):
        with LavaNetwork(plan, 8, mode="fused", capacity=capacity, lanes=lanes) as network:
            results.append(network.run(x, LATENCIES[:9]).outputs)
    assert all(np.array_equal(results[0], other) for other in results[1:])


def test_profile_on_the_fused_model_equals_the_reference(no_leaks):
    graph, plan, x = digits("digits-cnn", 60)
    labels = load_split("digits", "test").labels.numpy()[:60]
    hardware = load_hardware("qiao2015")
    fused = profile_model(graph, x, labels, hardware, backend="lava-fused")
    reference = profile_model(graph, x, labels, hardware, backend="torch")
    for key in ("accuracy", "firing_rate", "neuron_updates"):
        assert fused[key] == reference[key], key
    assert fused["sop"] == reference["sop"] and fused["energy_mj"] == reference["energy_mj"]


def test_a_failing_fused_run_frees_its_shared_memory(monkeypatch, no_leaks):
    from slt_deploy.lava import process as deployed

    def broken(self, *args, **kwargs):
        raise RuntimeError("injected failure in the fused model")

    monkeypatch.setattr(deployed.FusedSimulator, "step", broken)
    graph, plan, x = digits("digits-mlp", 4)
    before = shm_segments()
    with pytest.raises(RunFailure, match="injected failure"):
        with LavaNetwork(plan, 8, mode="fused", capacity=2, lanes=2) as network:
            assert shm_segments() - before  # its shared arrays exist while it runs
            network.run(x)
    assert not shm_segments() - before
