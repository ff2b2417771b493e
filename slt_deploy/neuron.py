"""The neuron contract: the discrete LIF neuron of the SLT paper (Eqs. 1-3).

This module is the single source of truth for the neuron every backend runs::

    u[t] = beta * u[t-1] + I[t]          I[t] = W x[t] + b  (per time step)
    s[t] = 1 if u[t] > theta else 0      (strictly greater)
    u[t] = u[t] * (1 - s[t])             (hard reset to 0)

Time is counted in time steps; u, I and theta are dimensionless. Training
back-propagates through s with the triangle (zero-order, "ZIF") surrogate of
width gamma: ds/du = max(0, gamma - |u - theta|) / gamma**2.

Three views of the same neuron live here, and tests check they agree:

* :func:`lif_step` -- the reference step in plain torch (any dtype);
* :func:`lif_step_numpy` -- the same in NumPy, for host-side simulators;
* :func:`norse_parameters` / :func:`norse_input_gain` -- the mapping onto
  norse's LIF-box neuron, which the model zoo runs for training:
  ``v <- v + dt*tau_mem_inv*(i - v)`` with ``dt*tau_mem_inv = 1 - beta`` and
  ``i = I / (1 - beta)`` gives ``v <- beta*v + I``;
* :func:`nir_lif_parameters` -- the continuous-time NIR LIF node that forward
  Euler with step ``dt`` turns back into this neuron (weights and biases of
  the synaptic layer feeding it are multiplied by :func:`norse_input_gain`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

DEFAULT_DT = 1e-3
"""Nominal duration of one time step in seconds, written into NIR graphs.

The paper's time step has no physical duration; 1 ms is the convention here.
Only the ratio dt/tau matters to the dynamics."""


@dataclass(frozen=True)
class LIFParameters:
    """Parameters of the discrete LIF neuron.

    Attributes:
        beta: membrane decay per time step (0 <= beta < 1; the paper: 0.5).
        threshold: firing threshold theta (dimensionless; the paper: 1.0).
        surrogate_width: gamma, half-width of the triangle surrogate (1.0).
    """

    beta: float = 0.5
    threshold: float = 1.0
    surrogate_width: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.beta < 1.0:
            raise ValueError(f"beta must lie in [0, 1), got {self.beta}")
        if not self.threshold > 0.0:
            raise ValueError(f"threshold must be > 0, got {self.threshold}")
        if not self.surrogate_width > 0.0:
            raise ValueError(f"surrogate_width must be > 0, got {self.surrogate_width}")


class TriangleSpike(torch.autograd.Function):
    """Heaviside H(x) = [x > 0] forward; triangle max(0, g - |x|) / g**2 backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, width: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.width = width
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        width = ctx.width
        surrogate = torch.clamp(width - x.abs(), min=0.0) / (width * width)
        return grad_output * surrogate, None


def lif_step(
    current: torch.Tensor, v: torch.Tensor, p: LIFParameters = LIFParameters()
) -> tuple[torch.Tensor, torch.Tensor]:
    """One time step of the contract. Returns (spikes, membrane after reset)."""
    v = p.beta * v + current
    spikes = TriangleSpike.apply(v - p.threshold, p.surrogate_width)
    return spikes, v * (1.0 - spikes)


def lif_step_numpy(
    current: np.ndarray, v: np.ndarray, p: LIFParameters = LIFParameters()
) -> tuple[np.ndarray, np.ndarray]:
    """NumPy twin of :func:`lif_step` (no gradient). Spikes are 0.0/1.0 floats."""
    v = p.beta * v + current
    spikes = (v > p.threshold).astype(v.dtype)
    return spikes, v * (1.0 - spikes)


def norse_input_gain(p: LIFParameters) -> float:
    """Factor 1/(1-beta) applied to the synaptic current before norse's LIF-box."""
    return 1.0 / (1.0 - p.beta)


def norse_parameters(p: LIFParameters, dt: float = DEFAULT_DT):
    """norse ``LIFBoxParameters`` under which its LIF-box neuron is the contract.

    norse's triangle surrogate is ``alpha * max(0, 1 - |x|)``: it equals ours
    only for gamma = 1 (then alpha = 1); other widths are refused.
    """
    from norse.torch.functional.lif_box import LIFBoxParameters

    if p.surrogate_width != 1.0:
        raise ValueError(
            "norse's triangle surrogate has width 1; surrogate_width="
            f"{p.surrogate_width} cannot be expressed on norse"
        )
    return LIFBoxParameters(
        tau_mem_inv=torch.as_tensor((1.0 - p.beta) / dt),
        v_leak=torch.as_tensor(0.0),
        v_th=torch.as_tensor(p.threshold),
        v_reset=torch.as_tensor(0.0),
        method="triangle",
        alpha=1.0,
    )


def nir_lif_parameters(p: LIFParameters, dt: float = DEFAULT_DT) -> dict[str, float]:
    """Scalar parameters of the ``nir.LIF`` node equivalent to the contract.

    tau = dt / (1 - beta) seconds, r = 1, v_leak = 0, v_reset = 0. The synaptic
    layer feeding the node must have its weight and bias multiplied by
    :func:`norse_input_gain` (= 1/(1-beta)); r stays 1 because importers
    differ on r (norse ignores it), while all read weights.
    """
    return {
        "tau": dt / (1.0 - p.beta),
        "r": 1.0,
        "v_leak": 0.0,
        "v_threshold": p.threshold,
        "v_reset": 0.0,
    }

