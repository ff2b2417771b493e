"""The neuron contract: the discrete LIF neuron of the SLT paper (Eqs. 1-3),
the one step function every simulator calls, and every mapping of its
parameters onto the frameworks it runs on (docs/neuron-contract.md).

The contract (time in time steps; u, I and theta dimensionless)::

    u[t] = beta * u[t-1] + I[t]          I[t] = W x[t] + b  (per time step)
    s[t] = 1 if u[t] > theta else 0      (strictly greater)
    u[t] = u[t] * (1 - s[t])             (hard reset to 0)

Training back-propagates through s with the triangle (zero-order, "ZIF")
surrogate of width gamma: ds/du = max(0, gamma - |u - theta|) / gamma**2.

The general form, Lava's LIF, which every deployed population runs and of
which the contract is the case du = 1, dv = 1 - beta, vth = theta, bias = 0::

    i <- i (1 - du) + a_in               synaptic current (du = 1: no memory)
    v <- v (1 - dv) + i + bias           membrane voltage
    s  = v > vth;  v <- v_reset where s  (Lava: v_reset = 0)

One step function runs it: :func:`lif_step` (float, NumPy arrays or torch
tensors, the same operations in Lava's order, so float results are
bit-identical to Lava's float LIF) and its fixed-point variant
:func:`lif_step_fixed` (Lava's bit-accurate LIF on integers). The reference
interpreter, the fused Lava model, the host-side readout and the netx chain
all call :func:`lif_step`; :func:`contract_step` is the contract with the
surrogate, for torch.

Mappings of the parameters, all here:

* :meth:`LIFParameters.neuron` -- the contract in the general form;
* :func:`norse_parameters` / :func:`norse_input_gain` -- norse's LIF-box
  (``v <- v + dt*tau_mem_inv*(i - v)`` with ``dt*tau_mem_inv = 1 - beta`` and
  ``i = I / (1 - beta)`` gives ``v <- beta*v + I``), the training model;
* :func:`nir_lif_parameters` -- the NIR LIF node that forward Euler with step
  ``dt`` turns back into the contract (the synaptic layer feeding it is
  multiplied by :func:`norse_input_gain`);
* :func:`nir_neuron` -- any NIR neuron node (LIF, IF, LI, CubaLIF, CubaLI)
  in the general form: what the reference runs and Lava deploys;
* :func:`slayer_neuron_params` -- lava-dl slayer's CUBA neuron;
* :func:`netx_neuron_params` -- a deployed population as a slayer block
  exported to netx;
* :func:`fixed_decays` -- Lava's 12-bit fixed-point decays.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

DEFAULT_DT = 1e-3
"""Nominal duration of one time step in seconds, written into NIR graphs.

The paper's time step has no physical duration; 1 ms is the convention here.
Only the ratio dt/tau matters to the dynamics."""


@dataclass(frozen=True)
class LIFParameters:
    """Parameters of the contract's discrete LIF neuron.

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

    def neuron(self) -> "NeuronParameters":
        """The contract in the general form: du = 1, dv = 1 - beta, vth = theta."""
        return NeuronParameters(du=1.0, dv=1.0 - self.beta, vth=self.threshold)


@dataclass(frozen=True)
class NeuronParameters:
    """One population's neuron in the general (Lava) form, per time step.

    du: current decay (0..1; 1: no current memory); dv: voltage decay (0..1;
    0: a perfect integrator); vth: threshold (inf: a non-spiking neuron,
    whose output is v); bias: added to v every step; gain: factor on the
    synaptic input before it enters the current (Lava folds it into the
    weights); v_reset: v after a spike (Lava resets to 0). Each may be a
    scalar or a per-neuron array that broadcasts against the state."""

    du: Any = 1.0
    dv: Any = 0.0
    vth: Any = math.inf
    bias: Any = 0.0
    gain: Any = 1.0
    v_reset: Any = 0.0

    @property
    def spiking(self) -> bool:
        return bool(np.any(np.isfinite(np.asarray(self.vth, dtype=np.float64))))


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


def _where(mask, value, otherwise):
    """``value`` where ``mask``, else ``otherwise`` (NumPy or torch, by ``otherwise``)."""
    if isinstance(otherwise, torch.Tensor):
        return torch.where(mask, torch.as_tensor(value, dtype=otherwise.dtype), otherwise)
    return np.where(mask, value, otherwise)


def _is_one(value) -> bool:
    return isinstance(value, (int, float)) and value == 1


def lif_step(current, state, p: NeuronParameters, spike: Callable | None = None):
    """One time step of the neuron (the general form above) on NumPy arrays
    or torch tensors: ``current`` is the synaptic input a_in (gain already
    applied), ``state`` the pair (i, v). Returns (spikes as 0.0/1.0 of v's
    dtype, (i, v) after the step and its reset).

    The operations and their order are Lava's float LIF model's, so results
    are bit-identical to it. ``spike``: a differentiable spike function of
    v - vth (e.g. the triangle surrogate); the reset then passes through the
    spike, as the contract's u (1 - s) does."""
    i, v = state
    # du = 1 (no current memory) gives i * 0 + current == current for any finite i: skip the product
    i = current if _is_one(p.du) else i * (1 - p.du) + current
    v = v * (1 - p.dv) + i + p.bias
    if spike is None:
        fired = v > p.vth
        spikes = fired.to(v.dtype) if isinstance(v, torch.Tensor) else fired.astype(np.asarray(v).dtype)
        v = _where(fired, p.v_reset, v)
    else:
        spikes = spike(v - p.vth)
        v = v * (1 - spikes) + p.v_reset * spikes
    return spikes, (i, v)


def contract_step(current: torch.Tensor, v: torch.Tensor, p: LIFParameters = LIFParameters()):
    """The contract with the triangle surrogate (torch): one step of
    :func:`lif_step` with du = 1. Returns (spikes, membrane after reset)."""
    spikes, (_, v) = lif_step(current, (0.0, v), p.neuron(),
                              spike=lambda x: TriangleSpike.apply(x, p.surrogate_width))
    return spikes, v


# --------------------------------------------------------------------------- fixed point

DECAY_UNITY = 4096
"""Fixed-point decays are 12-bit fractions: 4096 = 1.0."""
ACT_SHIFT = 6
"""Lava's fixed-point LIF shifts its synaptic input and its threshold left by 6 bits."""
UV_BITS = 24
"""u and v are 24-bit signed integers (u wraps around, v saturates)."""


@dataclass(frozen=True)
class FixedNeuronParameters:
    """A population on Lava's bit-accurate LIF (``PyLifModelBitAcc``), integers.

    du, dv: 12-bit decays (the current decays by (4096 - du - 1)/4096 -- a
    one-bit offset, so du = 4095 empties it -- the voltage by (4096 - dv)/4096);
    vth: 17-bit threshold mantissa (compared as vth << 6); bias_mant, bias_exp:
    the bias is bias_mant << bias_exp (per neuron)."""

    du: int
    dv: int
    vth: int
    bias_mant: Any = 0
    bias_exp: Any = 0

    @property
    def effective_bias(self) -> np.ndarray:
        mantissa = np.asarray(self.bias_mant, dtype=np.int32)
        exponent = np.asarray(self.bias_exp)
        return np.where(exponent >= 0, np.left_shift(mantissa, np.maximum(exponent, 0)),
                        np.right_shift(mantissa, np.maximum(-exponent, 0)))


def _decay(values: np.ndarray, factor: int) -> np.ndarray:
    """values * factor / 4096, rounded toward zero (Lava's integer decay)."""
    product = np.asarray(values, dtype=np.int64) * factor
    return (np.sign(product) * np.right_shift(np.abs(product), 12)).astype(np.int64)


def wrap_signed(values, bits: int) -> np.ndarray:
    """Integers wrapped into ``bits``-bit two's complement (what a cast to
    int32 does, or Lava's ``signed_clamp``), as int64."""
    base = np.int64(1) << bits
    return (np.asarray(values, dtype=np.int64) + base // 2) % base - base // 2


def lif_step_fixed(a_in, state, p: FixedNeuronParameters):
    """One time step of Lava's bit-accurate LIF on integers: ``a_in`` the
    synaptic input as Lava's Dense/Conv deliver it (int32; shifted here by 6
    bits), ``state`` the pair (u, v) of 24-bit integers. Returns (spikes as
    bool, (u, v)) -- exactly Lava's ``AbstractPyLifModelFixed`` arithmetic:
    the shifted input and its sum with the decayed current are int32, u
    wraps around at 24 bits, v saturates, decays round toward zero."""
    u, v = state
    limit = 2 ** (UV_BITS - 1)
    shifted = wrap_signed(np.left_shift(np.asarray(a_in, dtype=np.int64), ACT_SHIFT), 32)
    current = wrap_signed(_decay(u, DECAY_UNITY - (p.du + 1)) + shifted, 32)
    wrapped = np.where(current > limit, current - 2 * limit, current)
    u = np.where(wrapped <= -limit, current + 2 * limit, wrapped)
    v = np.clip(_decay(v, DECAY_UNITY - p.dv) + u + p.effective_bias, -limit + 1, limit - 1)
    fired = v > np.left_shift(np.int64(p.vth), ACT_SHIFT)
    return fired, (u, np.where(fired, 0, v))


def fixed_decays(du, dv):
    """Lava's 12-bit decays (du, dv) nearest to float decays, and each one's
    largest absolute error in the decay factor. The current decay factor is
    (4096 - (du + 1)) / 4096, the voltage's (4096 - dv) / 4096, dv <= 4095.
    Scalars give ints; per-neuron arrays give int64 arrays of their shape."""
    du_float, dv_float = np.asarray(du, dtype=np.float64), np.asarray(dv, dtype=np.float64)
    keep = np.round((1.0 - du_float) * DECAY_UNITY)
    du_int = np.clip(DECAY_UNITY - 1 - keep, 0, DECAY_UNITY - 1).astype(np.int64)
    dv_int = np.clip(np.round(dv_float * DECAY_UNITY), 0, DECAY_UNITY - 1).astype(np.int64)
    du_error = float(np.abs((DECAY_UNITY - du_int - 1) / DECAY_UNITY - (1.0 - du_float)).max())
    dv_error = float(np.abs((DECAY_UNITY - dv_int) / DECAY_UNITY - (1.0 - dv_float)).max())
    as_given = lambda ints, given: int(ints) if np.ndim(given) == 0 else ints  # noqa: E731
    return as_given(du_int, du), as_given(dv_int, dv), du_error, dv_error


# --------------------------------------------------------------------------- norse and NIR


def norse_input_gain(p: LIFParameters) -> float:
    """Factor 1/(1-beta) applied to the synaptic current before norse's LIF-box."""
    return 1.0 / (1.0 - p.beta)


def norse_parameters(p: LIFParameters, dt: float = DEFAULT_DT):
    """norse ``LIFBoxParameters`` under which its LIF-box neuron is the contract.

    norse's triangle surrogate is ``alpha * max(0, 1 - |x|)``: it equals ours
    only for gamma = 1 (then alpha = 1); other widths are refused.
    """
    from norse.torch.functional.lif_box import LIFBoxParameters  # norse only for the training model

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


def _array(value) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


def _reset(node) -> np.ndarray:
    value = getattr(node, "v_reset", None)
    return _array(0.0 if value is None else value)


def _nir_lif(node, dt):
    k = dt / _array(node.tau)
    return NeuronParameters(du=1.0, dv=k, vth=_array(node.v_threshold), bias=k * _array(node.v_leak),
                            gain=k * _array(node.r), v_reset=_reset(node))


def _nir_if(node, dt):
    return NeuronParameters(du=1.0, dv=0.0, vth=_array(node.v_threshold), bias=0.0, gain=_array(node.r),
                            v_reset=_reset(node))


def _nir_li(node, dt):
    k = dt / _array(node.tau)
    return NeuronParameters(du=1.0, dv=k, bias=k * _array(node.v_leak), gain=k * _array(node.r))


def _nir_cuba(node, dt, spiking: bool):
    du, dv = dt / _array(node.tau_syn), dt / _array(node.tau_mem)
    vth = _array(node.v_threshold) if spiking else math.inf
    return NeuronParameters(du=du, dv=dv, vth=vth, bias=dv * _array(node.v_leak),
                            gain=dv * du * _array(node.r) * _array(node.w_in),
                            v_reset=_reset(node) if spiking else 0.0)


NIR_NEURONS = {
    "LIF": _nir_lif,
    "IF": _nir_if,
    "LI": _nir_li,
    "CubaLIF": functools.partial(_nir_cuba, spiking=True),
    "CubaLI": functools.partial(_nir_cuba, spiking=False),
}
"""NIR neuron node type -> its mapping onto the general form."""


def nir_neuron(node, dt: float) -> NeuronParameters:
    """A NIR neuron node under forward Euler with step ``dt`` (s), in the
    general form (docs/nir-lava-mapping.md):

    * LIF:     du = 1, dv = dt/tau, gain = dv r, bias = dv v_leak
    * IF:      du = 1, dv = 0, gain = r (per step, independent of dt)
    * LI:      as LIF, non-spiking (output v)
    * CubaLIF: du = dt/tau_syn, dv = dt/tau_mem, gain = dv du r w_in,
      bias = dv v_leak (the current is held scaled by dv r)
    * CubaLI:  as CubaLIF, non-spiking

    Parameters keep their per-neuron shapes."""
    return NIR_NEURONS[type(node).__name__](node, dt)


# --------------------------------------------------------------------------- lava-dl

SLAYER_SCALE = 1 << 6
"""slayer's neuron ``scale`` S (its default): weights are quantised to a step of
2/S in [-256, 254]/S (8-bit even mantissas W * S); states live on a grid of
1/(S << 6); the threshold mantissa is theta * S."""
SLAYER_TAU_RHO_MULT = 100
SLAYER_SCALE_RHO_MULT = 0.1
"""slayer's fixed multipliers of ``tau_grad`` and ``scale_grad`` (neuron/cuba.py)."""


def slayer_neuron_params(p: LIFParameters, norm=None) -> dict:
    """slayer CUBA neuron parameters of the contract's neuron ``p``: current
    decay 1 (no current memory), voltage decay 1 - beta, threshold theta,
    the triangle's peak 1/gamma through slayer's exponential surrogate.
    ``norm``: the neuron's norm module factory (None: none). Raises
    ValueError when theta or 1 - beta is off slayer's fixed-point grid."""
    if abs(p.threshold * SLAYER_SCALE - round(p.threshold * SLAYER_SCALE)) > 1e-9:
        raise ValueError(f"threshold {p.threshold} is not a multiple of 1/{SLAYER_SCALE}; "
                         f"slayer would use {int(p.threshold * SLAYER_SCALE) / SLAYER_SCALE}")
    decay = (1.0 - p.beta) * DECAY_UNITY
    if abs(decay - round(decay)) > 1e-6:
        raise ValueError(f"1 - beta = {1 - p.beta} is not a multiple of 1/{DECAY_UNITY}; "
                         "slayer's 12-bit voltage decay cannot hold it")
    params = dict(
        threshold=p.threshold,
        current_decay=1.0,
        voltage_decay=1.0 - p.beta,
        tau_grad=p.surrogate_width / 2 / (SLAYER_TAU_RHO_MULT * p.threshold),
        scale_grad=1.0 / SLAYER_SCALE_RHO_MULT,
        scale=SLAYER_SCALE,
        requires_grad=False,
    )
    if norm is not None:
        params["norm"] = norm
    return params


def netx_neuron_params(p: NeuronParameters | None, scale: int, norm=None) -> dict:
    """slayer CUBA parameters under which a deployed population ``p`` (du,
    dv, vth; its bias through ``norm``) exports to netx with slayer ``scale``
    S (states x (S << 6)); ``p = None``: the non-spiking readout, a perfect
    integrator (current decay 1, voltage decay 0, a threshold exported as the
    maximum, so it never fires)."""
    if p is None:
        return dict(threshold=1.0, current_decay=1.0, voltage_decay=0.0, scale=scale)
    return dict(threshold=float(p.vth), current_decay=float(p.du), voltage_decay=float(p.dv), scale=scale, norm=norm)
