"""The neuron contract (docs/neuron-contract.md) on hand-computed sequences."""

import numpy as np
import pytest
import torch

from slt_deploy.neuron import (
    FixedNeuronParameters, LIFParameters, NeuronParameters, TriangleSpike, contract_step, lif_step, lif_step_fixed,
    nir_lif_parameters, nir_neuron, norse_input_gain, norse_parameters)
from slt_deploy.models.zoo import LIFNeuron

# beta = 0.5, theta = 1; dyadic values, so every backend is exact.
CURRENT = [0.75, 0.75, 0.75, 0.625, 0.0, 2.0, 0.25]
# t1 0.75 | t2 0.375+0.75=1.125>1 spike, reset | t3 0.75 | t4 0.375+0.625=1.0: equal, no spike
# t5 0.5 | t6 0.25+2=2.25 spike, reset | t7 0.25
MEMBRANE = [0.75, 0.0, 0.75, 1.0, 0.5, 0.0, 0.25]
SPIKES = [0, 1, 0, 0, 0, 1, 0]


def run_reference(step, current, v0):
    v, spikes, membrane = v0, [], []
    for i in current:
        s, v = step(i, v)
        spikes.append(float(s))
        membrane.append(float(v))
    return spikes, membrane


def test_reference_step_matches_hand_computation():
    spikes, membrane = run_reference(lambda i, v: contract_step(torch.tensor(i), v), CURRENT, torch.tensor(0.0))
    assert spikes == SPIKES
    assert membrane == MEMBRANE


def test_numpy_step_matches_hand_computation():
    def step(i, state):  # the general form with the contract's parameters, on NumPy
        s, state = lif_step(np.float64(i), state, LIFParameters().neuron())
        return s, state

    state, spikes, membrane = (np.float64(0.0), np.float64(0.0)), [], []
    for i in CURRENT:
        s, state = step(i, state)
        spikes.append(float(s))
        membrane.append(float(state[1]))
    assert spikes == SPIKES
    assert membrane == MEMBRANE


def test_norse_lif_box_holds_the_contract_exactly():
    neuron = LIFNeuron(LIFParameters())
    spikes, v_last = neuron(torch.tensor(CURRENT, dtype=torch.float64).view(-1, 1))
    assert spikes.view(-1).tolist() == SPIKES
    assert float(v_last) == MEMBRANE[-1]


def test_equal_to_threshold_does_not_spike_and_strictly_greater_does():
    p = LIFParameters()
    s, v = contract_step(torch.tensor([1.0, 1.0 + 1e-6]), torch.zeros(2), p)
    assert s.tolist() == [0.0, 1.0]
    assert v.tolist() == [1.0, 0.0]  # hard reset to 0 after the spike


def test_other_beta_and_threshold():
    p = LIFParameters(beta=0.25, threshold=0.5)
    spikes, membrane = run_reference(lambda i, v: contract_step(torch.tensor(i), v, p), [0.25, 0.25, 0.5], torch.tensor(0.0))
    # 0.25 | 0.0625+0.25=0.3125 | 0.078125+0.5=0.578125 > 0.5 spike
    assert spikes == [0, 0, 1]
    assert membrane == [0.25, 0.3125, 0.0]
    neuron = LIFNeuron(p)
    z, _ = neuron(torch.tensor([0.25, 0.25, 0.5], dtype=torch.float64).view(-1, 1))
    assert z.view(-1).tolist() == [0, 0, 1]


@pytest.mark.parametrize("width", [1.0, 0.5, 2.0])
def test_triangle_surrogate_gradient(width):
    x = torch.tensor([-3.0, -1.0, -0.25, 0.0, 0.25, 0.5, 1.0, 3.0], dtype=torch.float64, requires_grad=True)
    TriangleSpike.apply(x, width).sum().backward()
    expected = torch.clamp(width - x.detach().abs(), min=0) / width**2
    assert torch.equal(x.grad, expected)
    assert x.grad[3] == pytest.approx(1.0 / width)  # peak at the threshold


def test_norse_gradient_equals_reference_gradient():
    torch.manual_seed(0)
    current = (torch.rand(12, 5, dtype=torch.float64) * 1.5).requires_grad_()
    neuron = LIFNeuron(LIFParameters())
    z, _ = neuron(current)
    (z * torch.arange(1, 13).view(-1, 1)).sum().backward()
    norse_grad = current.grad.clone()

    current.grad = None
    v, spikes = torch.zeros(5, dtype=torch.float64), []
    for i in current:
        s, v = contract_step(i, v)
        spikes.append(s)
    reference = torch.stack(spikes)
    assert torch.equal(reference, z)
    (reference * torch.arange(1, 13).view(-1, 1)).sum().backward()
    assert torch.allclose(norse_grad, current.grad, atol=1e-12)


def test_mappings():
    p = LIFParameters(beta=0.5, threshold=1.0)
    assert norse_input_gain(p) == 2.0
    nir = nir_lif_parameters(p, dt=1e-3)
    assert nir == {"tau": 2e-3, "r": 1.0, "v_leak": 0.0, "v_threshold": 1.0, "v_reset": 0.0}
    q = norse_parameters(p, dt=1e-3)
    assert float(q.tau_mem_inv) * 1e-3 == pytest.approx(0.5)
    assert q.method == "triangle"
    with pytest.raises(ValueError, match="width"):
        norse_parameters(LIFParameters(surrogate_width=2.0))


@pytest.mark.parametrize("kwargs", [{"beta": 1.0}, {"beta": -0.1}, {"threshold": 0.0}, {"surrogate_width": 0.0}])
def test_invalid_parameters_are_refused(kwargs):
    with pytest.raises(ValueError):
        LIFParameters(**kwargs)


def test_general_form_is_lavas_float_lif_step_for_step():
    """lif_step with du, dv, vth and bias is Lava's float LIF, operation for operation."""
    rng = np.random.default_rng(3)
    p = NeuronParameters(du=0.25, dv=0.125, vth=1.0, bias=rng.normal(0, 0.1, 6))
    i, v = np.zeros(6), np.zeros(6)
    state = (np.zeros(6), np.zeros(6))
    for a_in in rng.normal(0.4, 0.5, (40, 6)):
        i = i * (1 - p.du)
        i += a_in
        v = v * (1 - p.dv) + i + p.bias  # Lava's PyLifModelFloat.subthr_dynamics
        fired = v > p.vth
        v[fired] = 0
        spikes, state = lif_step(a_in, state, p)
        assert np.array_equal(spikes, fired.astype(float))
        assert np.array_equal(state[0], i) and np.array_equal(state[1], v)


def test_nir_nodes_in_the_general_form():
    import nir

    dt = 1e-3
    lif = nir_neuron(nir.LIF(tau=np.array([2e-3]), r=np.array([3.0]), v_leak=np.array([0.5]),
                             v_threshold=np.array([1.0]), v_reset=np.array([0.0])), dt)
    assert (lif.du, float(lif.dv[0]), float(lif.gain[0]), float(lif.bias[0])) == (1.0, 0.5, 1.5, 0.25)
    cuba = nir_neuron(nir.CubaLIF(tau_syn=np.array([4e-3]), tau_mem=np.array([2e-3]), r=np.array([2.0]),
                                  v_leak=np.array([0.0]), v_threshold=np.array([1.0]), w_in=np.array([3.0])), dt)
    assert (float(cuba.du[0]), float(cuba.dv[0]), float(cuba.gain[0])) == (0.25, 0.5, 0.5 * 0.25 * 2.0 * 3.0)
    li = nir_neuron(nir.LI(tau=np.array([1e-3]), r=np.array([1.0]), v_leak=np.array([0.0])), dt)
    assert not li.spiking and nir_neuron(nir.IF(r=np.array([1.0]), v_threshold=np.array([1.0])), dt).dv == 0.0
    # the contract's NIR node maps back onto the contract
    node = nir.LIF(**{k: np.array([v]) for k, v in nir_lif_parameters(LIFParameters(), dt).items()})
    back = nir_neuron(node, dt)
    assert float(back.dv[0]) == LIFParameters().neuron().dv and float(back.gain[0]) == 1 / norse_input_gain(LIFParameters())


@pytest.mark.parametrize("largest_input, per_neuron", [(2**15, False), (2**28, True)])
def test_fixed_point_step_is_lavas_bit_accurate_lif(largest_input, per_neuron):
    """lif_step_fixed against Lava's own PyLifModelBitAcc arithmetic, including
    24-bit wrap-around of u, saturation of v and decays rounding toward zero;
    inputs so large that their 6-bit shift wraps int32 as Lava's does; decays
    one per neuron (DeployedLIFReset)."""
    from slt_deploy.core.compat import import_lava

    import_lava()
    from lava.proc.lif.models import PyLifModelBitAcc

    rng = np.random.default_rng(5)
    n = 64
    du, dv = (rng.integers(0, 4096, n), rng.integers(0, 4096, n)) if per_neuron else (409, 2048)
    p = FixedNeuronParameters(du=du, dv=dv, vth=40_000, bias_mant=rng.integers(-4096, 4096, n),
                              bias_exp=rng.integers(0, 4, n))
    lava = PyLifModelBitAcc({})
    lava.u, lava.v = np.zeros(n, dtype=np.int32), np.zeros(n, dtype=np.int32)
    lava.du, lava.dv, lava.vth = p.du, p.dv, p.vth
    lava.bias_mant, lava.bias_exp = p.bias_mant.astype(np.int16), p.bias_exp.astype(np.int16)
    state = (np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64))
    for a_in in rng.integers(-largest_input, largest_input, (60, n)):  # large enough to wrap u and saturate v
        lava.scale_bias()
        lava.scale_threshold()
        lava.subthr_dynamics(activation_in=a_in.astype(np.int32))
        fired = lava.spiking_activation()
        lava.reset_voltage(spike_vector=fired)
        spikes, state = lif_step_fixed(a_in, state, p)
        assert np.array_equal(spikes, fired)
        assert np.array_equal(state[0], lava.u) and np.array_equal(state[1], lava.v)
