"""Graphs the Lava builder cannot express exactly are refused in one line
that names the node and the reason."""

import nir
import numpy as np
import pytest

from graphs import DT, graph, lif
from slt_deploy.deploy.plan import plan_deployment
from slt_deploy.core.errors import UserError


def chain(*pairs, input_shape=(4,), output_shape=(4,)):
    nodes = {"input": nir.Input(input_type={"input": np.array(input_shape)}),
             "output": nir.Output(output_type={"output": np.array(output_shape)})}
    edges = []
    for name, node, sources in pairs:
        nodes[name] = node
        edges += [(s, name) for s in sources]
    return nodes, edges


def affine(n_out=4, n_in=4, bias=0.0):
    return nir.Affine(weight=np.eye(n_out, n_in), bias=np.full(n_out, bias))


def plan(nodes, edges):
    return plan_deployment(graph(nodes, edges), DT)


def test_cycle_through_two_synaptic_layers():
    nodes, edges = chain(("a", affine(), ["input", "b2"]), ("la", lif(4), ["a"]), ("b", affine(), ["la"]),
                         ("lb", lif(4), ["b"]), ("b2", affine(), ["lb"]))
    edges.append(("lb", "output"))
    with pytest.raises(UserError, match="more than one synaptic layer"):
        plan(nodes, edges)


def test_cycle_without_synaptic_delay():
    nodes, edges = chain(("a", affine(), ["input"]), ("la", lif(4), ["a", "lb"]), ("lb", lif(4), ["la"]))
    edges.append(("lb", "output"))
    with pytest.raises(UserError, match="no synaptic layer"):
        plan(nodes, edges)


def test_algebraic_loop():
    nodes, edges = chain(("a", affine(), ["input", "b"]), ("b", affine(), ["a"]), ("la", lif(4), ["b"]))
    edges.append(("la", "output"))
    with pytest.raises(UserError, match="algebraic loop"):
        plan(nodes, edges)


@pytest.mark.parametrize("node, kind", [
    (nir.Delay(delay=np.ones(4)), "Delay"),
    (nir.Threshold(threshold=np.ones(4)), "Threshold"),
    (nir.I(r=np.ones(4)), "I"),
])
def test_unsupported_node_types(node, kind):
    nodes, edges = chain(("odd", node, ["input"]))
    edges.append(("odd", "output"))
    with pytest.raises(UserError, match=f"node 'odd' is a {kind}: not supported"):
        plan(nodes, edges)


def test_reset_other_than_zero():
    neuron = lif(4)
    neuron.v_reset = np.full(4, -0.5)
    nodes, edges = chain(("a", affine(), ["input"]), ("la", neuron, ["a"]))
    edges.append(("la", "output"))
    with pytest.raises(UserError, match="node 'la' .*v_reset"):
        plan(nodes, edges)


def test_per_neuron_time_constants_are_carried_per_neuron():
    """Deployed, not refused (they run on DeployedLIFReset: test_per_neuron_decays.py)."""
    neuron = lif(4)
    neuron.tau = np.array([1e-3, 2e-3, 4e-3, 4e-3])
    nodes, edges = chain(("a", affine(), ["input"]), ("la", neuron, ["a"]))
    edges.append(("la", "output"))
    population = plan(nodes, edges).populations["la"]
    assert population.per_neuron_decays and np.allclose(population.dv, [1.0, 0.5, 0.25, 0.25])


def test_shape_mismatch():
    nodes, edges = chain(("a", nir.Affine(weight=np.ones((4, 5)), bias=np.zeros(4)), ["input"]),
                         ("la", lif(4), ["a"]))
    edges.append(("la", "output"))
    with pytest.raises(UserError, match="node 'a' \\(Affine\\): weight \\[4, 5\\] does not take input of shape \\[4\\]"):
        plan(nodes, edges)


def test_fan_in_of_different_shapes():
    nodes, edges = chain(("a", affine(4, 4), ["input"]), ("b", affine(3, 4), ["input"]), ("la", lif(4), ["a", "b"]))
    edges.append(("la", "output"))
    with pytest.raises(UserError, match="node 'la' sums inputs of different shapes"):
        plan(nodes, edges)


def test_a_constant_current_into_a_current_based_synapse_comes_from_an_always_firing_neuron():
    cuba = nir.CubaLIF(tau_syn=np.full(4, 2e-3), tau_mem=np.full(4, 2e-3), r=np.ones(4), v_leak=np.zeros(4),
                       v_threshold=np.ones(4), w_in=np.ones(4), v_reset=np.zeros(4))
    nodes, edges = chain(("a", affine(bias=0.3), ["input"]), ("cuba", cuba, ["a"]))
    edges.append(("cuba", "output"))
    result = plan(nodes, edges)
    source = result.populations["cuba:constant"]
    assert source.constant and source.depth == result.populations["cuba"].depth - 1 and source.size == 1
    (projection,) = [p for p in result.projections if p.source == "cuba:constant"]
    gain = 0.5 * 0.5  # dv du r w_in with dt / tau = 1/2 each
    assert projection.delay == 0 and np.allclose(projection.weight, gain * 0.3)
    assert np.all(result.populations["cuba"].bias == 0)  # not on v


def test_non_spiking_neuron_inside_the_network():
    li = nir.LI(tau=np.full(4, 2e-3), r=np.ones(4), v_leak=np.zeros(4))
    nodes, edges = chain(("a", affine(), ["input"]), ("li", li, ["a"]), ("b", affine(), ["li"]), ("la", lif(4), ["b"]))
    edges.append(("la", "output"))
    with pytest.raises(UserError, match="node 'li' \\(LI\\) does not spike"):
        plan(nodes, edges)


def test_a_dt_that_makes_forward_euler_unstable():
    nodes, edges = chain(("a", affine(), ["input"]), ("la", lif(4, tau=1e-4), ["a"]))
    edges.append(("la", "output"))
    with pytest.raises(UserError, match=r"node 'la' \(LIF\): dt/tau = 10 > 1 with dt = 0.001 s"):
        plan(nodes, edges)
    assert plan_deployment(graph(nodes, edges), DT, allow_unstable_dt=True).populations["la"].dv == pytest.approx(10)


def test_missing_input_or_output_and_dangling_edges():
    nodes, edges = chain(("a", affine(), ["input"]), ("la", lif(4), ["a"]))
    del nodes["output"]
    with pytest.raises(UserError, match="no Output node"):
        plan(nodes, edges)
    nodes, edges = chain(("a", affine(), ["input"]), ("la", lif(4), ["a"]))
    edges.append(("la", "nowhere"))
    with pytest.raises(UserError, match="'nowhere' that does not exist"):
        plan(nodes, edges)
