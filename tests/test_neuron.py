"""The neuron contract (docs/neuron-contract.md) on hand-computed sequences."""

import numpy as np
import pytest
import torch

from slt_deploy.neuron import (
    LIFParameters, TriangleSpike, lif_step, lif_step_numpy, nir_lif_parameters, norse_input_gain,
    norse_parameters)
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
    spikes, membrane = run_reference(lambda i, v: lif_step(torch.tensor(i), v), CURRENT, torch.tensor(0.0))
    assert spikes == SPIKES
    assert membrane == MEMBRANE


def test_numpy_step_matches_hand_computation():
    spikes, membrane = run_reference(lambda i, v: lif_step_numpy(np.float64(i), v), CURRENT, np.float64(0.0))
    assert spikes == SPIKES
    assert membrane == MEMBRANE


def test_norse_lif_box_holds_the_contract_exactly():
    neuron = LIFNeuron(LIFParameters())
    spikes, v_last = neuron(torch.tensor(CURRENT, dtype=torch.float64).view(-1, 1))
    assert spikes.view(-1).tolist() == SPIKES
    assert float(v_last) == MEMBRANE[-1]


def test_equal_to_threshold_does_not_spike_and_strictly_greater_does():
    p = LIFParameters()
    s, v = lif_step(torch.tensor([1.0, 1.0 + 1e-6]), torch.zeros(2), p)
    assert s.tolist() == [0.0, 1.0]
    assert v.tolist() == [1.0, 0.0]  # hard reset to 0 after the spike


def test_other_beta_and_threshold():
    p = LIFParameters(beta=0.25, threshold=0.5)
    spikes, membrane = run_reference(lambda i, v: lif_step(torch.tensor(i), v, p), [0.25, 0.25, 0.5], torch.tensor(0.0))
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
        s, v = lif_step(i, v)
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
