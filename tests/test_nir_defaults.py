"""The NIR that other libraries write with their defaults runs exactly:
a bias on a recurrent edge (snnTorch RLeaky's default), a constant current into a
CubaLIF synapse (snnTorch Synaptic after its default Linear), per-neuron
thresholds (learned theta), LIF with v_leak != 0 and r != 1, IF with a
per-neuron r. For each: Lava float == the NIR reference (identical spikes,
outputs within 1e-9) across back-to-back samples with per-sample
latencies (the periodic reset), and == norse's from_nir where norse reads
the construct the same way."""

from __future__ import annotations

import nir
import numpy as np
import pytest

from conftest import assert_one_line_error, run_cli
from graphs import DT, graph
from slt_deploy.ir.nirfile import write_graph
from slt_deploy.ir.reference import ReferenceNetwork
from slt_deploy.simulation import simulate

pytestmark = pytest.mark.filterwarnings("ignore:Cannot import module:UserWarning")

N = 6


def _io(shape=(N,)):
    return {"input": nir.Input(input_type={"input": np.array(shape)}),
            "output": nir.Output(output_type={"output": np.array(shape)})}


def _spikes(samples=4, steps=8, seed=0, shape=(N,)):
    return (np.random.default_rng(seed).random((samples, steps, *shape)) < 0.4).astype(np.float64)


def _lif(tau=2e-3, r=1.0, v_leak=0.0, threshold=1.0):
    full = lambda v: np.broadcast_to(np.asarray(v, dtype=np.float64), (N,)).copy()  # noqa: E731
    return nir.LIF(tau=full(tau), r=full(r), v_leak=full(v_leak), v_threshold=full(threshold), v_reset=full(0.0))


def _weights(seed, scale=1.0):
    return np.random.default_rng(seed).normal(0.5, 0.6, (N, N)) * scale


def _recurrent(back_edge_first: bool):
    """input -> Affine -> LIF <-> recurrent Affine (with a bias) -> readout;
    the cycle's closing edge is either edge of the loop, as the exporters write it."""
    nodes = {**_io(), "a": nir.Affine(weight=_weights(1), bias=np.full(N, 0.1)), "lif": _lif(r=1.5),
             "rec": nir.Affine(weight=_weights(2, 0.4) - 0.2, bias=np.linspace(-0.3, 0.4, N)),
             "read": nir.Affine(weight=_weights(3), bias=np.zeros(N))}
    edges = [("input", "a"), ("a", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "read"), ("read", "output")]
    if back_edge_first:  # the recurrent node visited first: its edge into the LIF is found as the forward one
        edges = [("input", "a"), ("lif", "rec"), ("rec", "lif"), ("a", "lif"), ("lif", "read"), ("read", "output")]
    return graph(nodes, edges)


def _assert_lava_float_is_the_reference(g, x, latencies):
    reference = simulate(g, "torch", x, latencies, dt=DT, record_spikes=True)
    lava = simulate(g, "lava-float", x, latencies, dt=DT, record_spikes=True, capacity=2)  # several Lava runs
    fused = simulate(g, "lava-fused", x, latencies, dt=DT, record_spikes=True)
    fired = 0
    for name, spikes in lava.spikes.items():
        assert np.array_equal(spikes, reference.spikes[name]), name
        assert np.array_equal(fused.spikes[name], spikes), name
        fired += int(spikes.sum())
    assert fired > 0
    assert np.abs(lava.outputs - reference.outputs).max() <= 1e-9
    return reference


def test_a_recurrent_edge_bias_is_in_the_first_step_whichever_edge_closes_the_cycle(no_leaks):
    x, latencies = _spikes(), np.array([8, 3, 8, 5])
    runs = [_assert_lava_float_is_the_reference(_recurrent(first), x, latencies) for first in (False, True)]
    assert np.array_equal(runs[0].outputs, runs[1].outputs)
    # at the first step the recurrent input is the edge's bias applied to silent neurons
    g = _recurrent(False)
    silent = np.zeros((1, 1, N))
    v = ReferenceNetwork(g, DT).run(silent).outputs  # readout of the LIF's spikes: none yet
    rest = ReferenceNetwork(g, DT).rest_values(1)
    assert np.allclose(rest["rec"].numpy(), np.asarray(g.nodes["rec"].bias)) and not v.any()


def test_per_neuron_thresholds_leaks_and_gains(no_leaks):
    nodes = {**_io(), "a": nir.Affine(weight=_weights(4), bias=np.full(N, 0.05)),
             "lif": _lif(tau=np.linspace(2e-3, 2e-3, N), r=np.linspace(0.8, 2.0, N), v_leak=np.linspace(-0.2, 0.3, N),
                         threshold=np.linspace(0.6, 1.6, N)),
             "b": nir.Linear(weight=_weights(5)),
             "if": nir.IF(r=np.linspace(0.5, 1.5, N), v_threshold=np.linspace(0.8, 1.4, N), v_reset=np.zeros(N)),
             "read": nir.Affine(weight=_weights(6), bias=np.zeros(N))}
    edges = [("input", "a"), ("a", "lif"), ("lif", "b"), ("b", "if"), ("if", "read"), ("read", "output")]
    _assert_lava_float_is_the_reference(graph(nodes, edges), _spikes(seed=1), np.array([8, 8, 2, 6]))


def test_norse_reads_per_neuron_thresholds_as_the_reference_and_starts_at_v_leak():
    """norse's from_nir on per-neuron thresholds: the same spikes. With v_leak
    != 0 norse starts its membrane at v_leak, NIR (and every backend here) at
    0: their first steps differ (pinned)."""
    from test_foreign_graphs import run_norse

    def make(v_leak):
        nodes = {**_io(), "a": nir.Affine(weight=_weights(7), bias=np.full(N, 0.05)),
                 "lif": _lif(v_leak=v_leak, threshold=np.linspace(0.6, 1.6, N)), "read": nir.Linear(weight=np.eye(N))}
        return graph(nodes, [("input", "a"), ("a", "lif"), ("lif", "read"), ("read", "output")])

    x = _spikes(seed=2)
    thresholds = make(0.0)
    reference = simulate(thresholds, "torch", x, dt=DT, record_spikes=True)
    assert reference.spikes["lif"].sum() > 0
    assert np.array_equal(run_norse(thresholds, x, DT)[0], reference.outputs)  # the readout passes spikes through
    assert np.array_equal(simulate(thresholds, "lava-fused", x, dt=DT).outputs, reference.outputs)
    leaky = make(np.linspace(-0.2, 0.3, N))
    assert not np.array_equal(run_norse(leaky, x, DT)[0], simulate(leaky, "torch", x, dt=DT).outputs)


def test_unstable_dt_is_refused_by_the_command_line_and_allowed_when_asked(tmp_path):
    nodes = {**_io(), "a": nir.Affine(weight=_weights(9), bias=np.zeros(N)), "lif": _lif(tau=1e-4),
             "read": nir.Affine(weight=_weights(10), bias=np.zeros(N))}
    g = graph(nodes, [("input", "a"), ("a", "lif"), ("lif", "read"), ("read", "output")])
    path, inputs = tmp_path / "g.nir", tmp_path / "x.npy"
    write_graph(g, path)
    np.save(inputs, _spikes(samples=2))
    result = run_cli("run", path, "--backend", "torch", "--input", inputs, "--dt", "1e-3")
    assert_one_line_error(result, "node 'lif' (LIF): dt/tau = 10 > 1", "--allow-unstable-dt")
    result = run_cli("run", path, "--backend", "torch", "--input", inputs, "--dt", "1e-3", "--allow-unstable-dt")
    assert result.returncode == 0, result.stderr
    assert run_cli("run", path, "--backend", "torch", "--input", inputs, "--dt", "1e-4").returncode == 0


def test_snntorch_conventions_nir_cannot_say_are_named(tmp_path):
    """snnTorch writes r = tau / 1e-4 and its subtract reset as v_reset = 0: a warning says so."""
    nodes = {**_io(), "a": nir.Linear(weight=_weights(11)), "lif": _lif(tau=5e-4, r=5.0),
             "read": nir.Linear(weight=np.eye(N))}
    path, inputs = tmp_path / "snntorch.nir", tmp_path / "x.npy"
    write_graph(graph(nodes, [("input", "a"), ("a", "lif"), ("lif", "read"), ("read", "output")]), path)
    np.save(inputs, _spikes(samples=2))
    result = run_cli("run", path, "--backend", "torch", "--input", inputs, "--dt", "1e-4")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "node 'lif' looks like snnTorch's export" in warnings[0]
    assert "resets by subtracting the threshold" in warnings[0]


def test_a_constant_current_into_a_cubalif_synapse(no_leaks):
    """A biased Affine into a CubaLIF (snnTorch's Synaptic after its default
    Linear): the constant reaches the synaptic current through an extra
    neuron that fires at every step; Lava == reference, and its synaptic
    operations are counted alike by every backend."""
    from slt_deploy.energy.counts import counted_run
    from slt_deploy.simulation import Session

    full = lambda v: np.full(N, float(v))  # noqa: E731
    nodes = {**_io(), "a": nir.Affine(weight=_weights(12), bias=np.linspace(-0.2, 0.6, N)),
             "cuba": nir.CubaLIF(tau_syn=full(4e-3), tau_mem=full(2e-3), r=full(1.5), v_leak=full(0.05),
                                 v_threshold=full(1.0), v_reset=full(0), w_in=full(1.2)),
             "b": nir.Affine(weight=_weights(13), bias=np.linspace(0.1, 0.3, N)),
             "out": nir.CubaLI(tau_syn=full(4e-3), tau_mem=full(3e-3), r=full(1.0), v_leak=full(0.0), w_in=full(1.0))}
    g = graph(nodes, [("input", "a"), ("a", "cuba"), ("cuba", "b"), ("b", "out"), ("out", "output")])
    _assert_lava_float_is_the_reference(g, _spikes(seed=4), np.array([8, 3, 8, 5]))
    x = _spikes(seed=5)
    counts = {}
    for backend in ("torch", "lava-fused"):
        with Session(g, backend, x.shape[1], dt=DT, record_spikes=backend == "torch", lanes=1 if backend == "torch" else 4) as session:
            counts[backend] = counted_run(session, x)[1]
    layers = {layer.name: layer for layer in counts["torch"].layers}
    assert set(layers) == {layer.name for layer in counts["lava-fused"].layers}
    for layer in counts["lava-fused"].layers:
        assert np.array_equal(layer.effective, layers[layer.name].effective), layer.name
    constant = [layer for layer in counts["torch"].layers if layer.source == "cuba:constant"][0]
    assert np.all(constant.effective == N)  # one spike per step into N synapses
