"""Fixed-point quantisation of a deployment plan for Lava's bit-accurate
models (``Loihi2SimCfg(select_tag="fixed_pt")``) and Loihi 2.

What Lava's bit-accurate LIF does (lava/proc/lif/models.py,
``AbstractPyLifModelFixed``), and how the quantiser meets it:

* u and v are 24-bit integers; ``u <- wrap24(u (4096 - (du + 1)) >> 12 + (a_in << 6))``
  and ``v <- clip24(v (4096 - dv) >> 12 + u + (bias_mant << bias_exp))``
  (the decays round toward zero). The current decay has a one-bit offset,
  so du = 4095 empties u exactly (float du = 1); the voltage decay has none,
  so dv tops out at 4095/4096 (a float dv of 1 is reported as an error).
* the threshold is compared after a 6-bit shift: spike if ``v > vth << 6``,
  with a 17-bit vth; activations are also shifted left by 6 bits.
* Dense keeps 8-bit weights: mixed-sign weights are clipped to [-256, 255]
  and truncated to even values (a sign bit), same-sign ones to 0..255; the
  accumulated sum is shifted by ``weight_exp``. Lava 0.10's fixed-point Conv
  ignores ``weight_exp`` and wraps its output to 24 bits, so a conv gets the
  already-shifted integers (mantissa << exponent) as its weights.

Each population T gets a scale S_T = 2^k (v_int = S_T v): the largest power
of two for which the threshold fits 17 bits, the bias fits 13+3 bits and the
worst-case synaptic input of one step (every presynaptic neuron active)
cannot wrap u. Each projection gets one shared exponent; its 8-bit mantissas
approximate w S_T / 64. Analog input is sent as 8-bit graded messages
(``input_range`` maps to 255).
"""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass, field, replace

import numpy as np

from ..core.errors import UserError
from ..deploy.plan import DeployPlan, Projection
from ..deploy.synapses import dense_of
from ..core.compat import import_lava
from ..neuron import ACT_SHIFT, DECAY_UNITY, fixed_decays

U_BITS = 24
VTH_MAX = 2**17 - 1
BIAS_MANT_MAX = 2**12 - 1
BIAS_EXP_MAX = 7
INPUT_LEVELS = 255


@dataclass
class ProjectionQuantisation:
    name: str
    weights: np.ndarray  # integers passed to Lava (mantissa, or mantissa << exponent for conv)
    weight_exp: int
    sign_mode: str
    effective: np.ndarray  # the integers Lava accumulates per spike (after its shift), float
    scale: float  # float weight * scale = effective
    relative_rms_error: float
    max_abs_error: float  # in float weight units
    weight_bits: int = 8


@dataclass
class PopulationQuantisation:
    name: str
    scale: float  # v_int = scale * v_float
    du: int | np.ndarray  # 12-bit decays: one per population, or one per neuron
    dv: int | np.ndarray
    vth: int
    bias_mant: np.ndarray
    bias_exp: np.ndarray
    errors: dict = field(default_factory=dict)


def _quantise_bias(bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integers b ~ mant << exp with a 13-bit signed mantissa and 3-bit exponent."""
    magnitude = np.abs(bias)
    exponent = np.zeros(bias.shape, dtype=np.int64)
    over = magnitude > BIAS_MANT_MAX
    exponent[over] = np.ceil(np.log2(magnitude[over] / BIAS_MANT_MAX)).astype(np.int64)
    mantissa = np.round(bias / 2.0**exponent).astype(np.int64)
    return np.clip(mantissa, -BIAS_MANT_MAX - 1, BIAS_MANT_MAX), exponent


def _quantise_weights(values: np.ndarray, conv: bool) -> tuple[np.ndarray, int, str, np.ndarray]:
    """8-bit mantissas with one shared exponent for the float integers ``values``.

    Returns (integers for Lava, weight_exp, sign mode, effective integers)."""
    if np.all(values == 0):
        return np.zeros(values.shape, dtype=np.int64), 0, "excitatory", np.zeros(values.shape)
    mixed = values.min() < 0 < values.max()
    sign_mode = "mixed" if mixed else ("excitatory" if values.max() > 0 else "inhibitory")
    limit = 254 if mixed else 255
    exponent = math.ceil(math.log2(np.abs(values).max() / limit))
    step = 2.0 ** (exponent + (1 if mixed else 0))
    mantissa = np.round(values / step) * (2 if mixed else 1)
    mantissa = np.clip(mantissa, -256 if mixed else -255, limit).astype(np.int64)
    if conv:
        if exponent < 0:  # a conv cannot shift right: keep exponent 0 and round
            mantissa = np.round(values).astype(np.int64)
            exponent = 0
        return mantissa << exponent, exponent, sign_mode, (mantissa << exponent).astype(np.float64)
    effective = mantissa * 2.0**exponent
    return mantissa, exponent, sign_mode, effective


class QuantisedPlan:
    """Integer parameters of every population and projection of a plan."""

    def __init__(self, plan: DeployPlan, input_range: float = 1.0):
        if not input_range > 0:
            raise UserError(f"input range must be > 0, got {input_range}")
        self.plan = plan
        self.input_scale = INPUT_LEVELS / input_range if plan.input_kind == "analog" else 1.0
        self.populations: dict[str, PopulationQuantisation] = {}
        self.projections: dict[str, ProjectionQuantisation] = {}
        exact = plan.fixed_point or {"populations": {}, "projections": {}}
        worst = self._worst_case_input()
        for population in plan.neuron_populations:
            given = exact["populations"].get(population.name)
            self.populations[population.name] = (self._population(population, worst.get(population.name, 0.0))
                                                 if given is None else _exact_population(population, given))
        self.output_scale = 1.0 if plan.output_name in exact["projections"] else \
            self._output_scale(worst.get(plan.output_name, 1.0))
        for projection in plan.projections:
            given = exact["projections"].get(projection.target)
            self.projections[self._key(projection)] = (self._projection(projection) if given is None
                                                       else _exact_projection(projection))

    @staticmethod
    def _key(projection: Projection) -> str:
        return f"{projection.name}|{projection.source}|{projection.target}|{projection.recurrent}"

    def _source_max(self, name: str) -> float:
        return 1.0 if not self.plan.populations[name].is_input else (
            INPUT_LEVELS / self.input_scale if self.plan.input_kind == "analog" else 1.0)

    def _worst_case_input(self) -> dict[str, float]:
        """Largest |synaptic input| one neuron can get in one step (float units)."""
        totals: dict[str, np.ndarray] = {}
        for projection in self.plan.projections:
            matrix = np.abs(dense_of(projection)) if projection.kind == "dense" or np.prod(projection.source_shape) < 4096 \
                else None
            if matrix is None:  # big conv: bound by the kernel's absolute sum per output channel
                per_channel = np.abs(projection.weight).reshape(projection.weight.shape[0], -1).sum(1)
                bound = np.repeat(per_channel, int(np.prod(projection.conv_output_shape[1:])))
            else:
                bound = matrix.sum(1)
            bound = bound * self._source_max(projection.source)
            totals[projection.target] = totals.get(projection.target, 0) + bound
        return {name: float(np.max(value)) for name, value in totals.items()}

    def _population(self, population, worst_input: float) -> PopulationQuantisation:
        bias = population.bias.ravel()
        bounds = [2.0**40]
        if np.isfinite(population.vth):
            bounds.append(VTH_MAX * 2**ACT_SHIFT / max(population.vth, 1e-12))
        if np.abs(bias).max(initial=0) > 0:
            bounds.append(BIAS_MANT_MAX * 2**BIAS_EXP_MAX / np.abs(bias).max())
        reach = worst_input + np.abs(bias).max(initial=0) + (population.vth if np.isfinite(population.vth) else 0)
        bounds.append((2 ** (U_BITS - 1) - 1) / max(reach, 1e-12))
        scale = 2.0 ** math.floor(math.log2(min(bounds)))
        du, dv, du_error, dv_error = fixed_decays(population.du, population.dv)
        vth = int(round(population.vth * scale / 2**ACT_SHIFT)) if np.isfinite(population.vth) else VTH_MAX
        if np.isfinite(population.vth) and vth < 1:
            raise UserError(f"population '{population.name}': threshold {population.vth} is too small for 17 bits")
        mantissa, exponent = _quantise_bias(bias * scale)
        effective_bias = mantissa * 2.0**exponent / scale
        errors = {
            "du_error": du_error,
            "dv_error": dv_error,
            "vth_relative": abs(vth * 2**ACT_SHIFT / scale - population.vth) / population.vth
            if np.isfinite(population.vth) else 0.0,
            "bias_max_abs": float(np.abs(effective_bias - bias).max(initial=0)),
        }
        if np.any(np.asarray(population.dv) >= 1.0):
            errors["note"] = "dv = 1 (no voltage memory) is not reachable: 4095/4096 used"
        return PopulationQuantisation(population.name, scale, du, dv, vth, mantissa, exponent, errors)

    def _output_scale(self, worst: float) -> float:
        return 2.0 ** math.floor(math.log2((2 ** (U_BITS - 1) - 1) / max(worst, 1e-12)))

    def _target_scale(self, projection: Projection) -> float:
        """float weight x this = the integer Lava must accumulate per presynaptic unit."""
        target = self.populations.get(projection.target)
        to_v = target.scale / 2**ACT_SHIFT if target is not None else self.output_scale
        return to_v / self.input_scale if self.plan.populations[projection.source].is_input else to_v

    def _projection(self, projection: Projection) -> ProjectionQuantisation:
        scale = self._target_scale(projection)
        values = np.asarray(projection.weight, dtype=np.float64) * scale
        conv = projection.kind == "conv" and projection.delay == 0
        weights, exponent, sign_mode, effective = _quantise_weights(values, conv)
        error = effective / scale - projection.weight
        norm = np.linalg.norm(projection.weight)
        return ProjectionQuantisation(
            name=projection.name,
            weights=weights,
            weight_exp=exponent,
            sign_mode=sign_mode,
            effective=effective,
            scale=scale,
            relative_rms_error=float(np.linalg.norm(error) / norm) if norm > 0 else 0.0,
            max_abs_error=float(np.abs(error).max()),
        )

    # ---------------------------------------------------------------- for the Lava builder

    def of_projection(self, projection: Projection) -> ProjectionQuantisation:
        """The integers of ``projection`` (a projection of this plan)."""
        return self.projections[self._key(projection)]

    def population_parameters(self, name: str) -> dict:
        q = self.populations[name]
        return dict(du=q.du, dv=q.dv, vth=q.vth, bias_mant=q.bias_mant, bias_exp=q.bias_exp)

    def projection_weights(self, projection: Projection):
        """(weights for Lava, extra process arguments)."""
        from lava.utils.weightutils import SignMode  # Lava only when the per-layer graph is built

        q = self.of_projection(projection)
        if q.sign_mode == "netx":  # exactly the arguments netx gives Lava's Dense
            return q.weights, {"weight_exp": q.weight_exp, "num_weight_bits": q.weight_bits}
        if projection.kind == "conv" and projection.delay == 0:
            return q.weights, {"weight_exp": 0, "num_weight_bits": 8}
        weights = q.weights
        if projection.kind == "conv":  # delayed conv runs as a dense matrix
            weights = np.rint(dense_of(_with_weight(projection, q.weights.astype(np.float64)))).astype(np.int64)
        sign = {"mixed": SignMode.MIXED, "excitatory": SignMode.EXCITATORY, "inhibitory": SignMode.INHIBITORY}
        return weights, {"weight_exp": q.weight_exp, "num_weight_bits": 8, "sign_mode": sign[q.sign_mode]}

    def input_frames(self, frames: np.ndarray) -> np.ndarray:
        if self.plan.input_kind != "analog":
            return np.rint(frames)
        return np.clip(np.rint(frames * self.input_scale), -INPUT_LEVELS, INPUT_LEVELS)

    def output_values(self, values: np.ndarray) -> np.ndarray:
        """Recorded integers at the output -> float output units."""
        plan = self.plan
        if plan.output_population is not None:
            population = self.populations.get(plan.output_population)
            if plan.populations[plan.output_population].spiking:
                return values
            return values * 2**ACT_SHIFT / population.scale
        return values / self.output_scale

    def input_deviation(self, inputs: np.ndarray, spikes: dict[str, np.ndarray]) -> dict[str, dict]:
        """How far each layer's input moves under quantisation, layer by layer.

        For the same presynaptic activity -- the encoded ``inputs`` [N, T,
        *shape] and the float network's spikes {population: [N, T, *shape]} --
        the input a population receives per step (every incoming projection's
        current plus its bias) computed with the float weights and with the
        integers Lava accumulates (converted back to float units; analog input
        quantised as Lava gets it). Teacher-forced: each layer's own error, not
        the error it inherits. Returns {target: {"max", "mean", "unit"}}:
        |fixed - float| over neurons, samples and steps, in units of the
        population's threshold ("threshold"), or in output units for the
        graph's output and non-spiking populations ("output")."""
        import torch  # the projections' own batch arithmetic (float64)

        plan = self.plan
        samples, steps = inputs.shape[:2]
        x = np.asarray(inputs, dtype=np.float64)
        received: dict[str, list[np.ndarray]] = {}
        for projection in plan.projections:
            source = plan.populations[projection.source]
            if source.is_input:
                activity = (x, self.input_frames(x) / self.input_scale)
            elif source.constant:
                activity = (np.ones((samples, steps, *source.shape)),) * 2
            else:
                activity = (np.asarray(spikes[projection.source], dtype=np.float64),) * 2
            q = self.of_projection(projection)
            pair = []
            for weights, values in ((projection, activity[0]), (_with_weight(projection, q.effective / q.scale),
                                                                  activity[1])):
                batch = torch.as_tensor(values.reshape(samples * steps, *source.shape))
                pair.append(weights.apply(batch).numpy().reshape(samples, steps, -1))
            if projection.target in received:
                received[projection.target] = [a + b for a, b in zip(received[projection.target], pair)]
            else:
                received[projection.target] = pair
        deviation = {}
        for target, (float_input, fixed_input) in received.items():
            population = plan.populations.get(target)
            unit, size = "output", 1.0
            if target in self.populations:
                q = self.populations[target]
                bias = population.bias.ravel()
                float_input = float_input + bias
                fixed_input = fixed_input + np.asarray(q.bias_mant) * 2.0 ** np.asarray(q.bias_exp) / q.scale
                if population.spiking and np.isfinite(population.vth) and population.vth > 0:
                    unit, size = "threshold", float(population.vth)
            difference = np.abs(fixed_input - float_input) / size
            deviation[target] = {"max": float(difference.max(initial=0)), "mean": float(difference.mean()),
                                 "unit": unit}
        return deviation

    def report(self) -> list[dict]:
        """One row per layer: the quantisation error it introduces."""
        rows = []
        for q in self.projections.values():
            rows.append({"layer": q.name, "kind": "synapses", "exponent": q.weight_exp, "sign": q.sign_mode,
                         "relative_rms_error": q.relative_rms_error, "max_abs_error": q.max_abs_error})
        for q in self.populations.values():
            rows.append({"layer": q.name, "kind": "neurons", "scale": q.scale, "du": _decay_text(q.du),
                         "dv": _decay_text(q.dv), "vth": q.vth,
                         **{k: v for k, v in q.errors.items()}})
        return rows


def _decay_text(decay) -> int | str:
    """A 12-bit decay for the report: the value, or the range of per-neuron values as text."""
    if np.ndim(decay) == 0:
        return int(decay)
    return f"{int(np.min(decay))}..{int(np.max(decay))} per neuron"


def _with_weight(projection: Projection, weight: np.ndarray) -> Projection:
    return replace(projection, weight=weight)


# --------------------------------------------------------------------------- exact integers (imported netx networks)


def _integers(values, what: str) -> np.ndarray:
    """``values`` as int64 when they are integers up to float rounding (a graph
    that declares exact fixed point); a UserError otherwise."""
    values = np.asarray(values, dtype=np.float64)
    rounded = np.rint(values)
    if not np.all(np.abs(values - rounded) <= 1e-6 * np.maximum(1.0, np.abs(rounded))):
        raise UserError(f"{what} declares exact fixed point, but its values are not integers "
                        f"(e.g. {values.ravel()[np.argmax(np.abs(values - rounded).ravel())]!r})")
    return rounded.astype(np.int64)


def _exact_population(population, given: dict) -> PopulationQuantisation:
    """A population whose integers the graph declares: v_int = 64 v (Lava's
    float units are the integers before the 6-bit activation shift); the bias
    mantissas are the plan's bias, shifted by ``bias_exp`` - 6."""
    shift = given["bias_exp"] - ACT_SHIFT
    bias = _integers(population.bias.ravel() / 2.0**shift, f"population '{population.name}': bias")
    du, dv = (np.asarray(given[key], dtype=np.int64) if isinstance(given[key], list) else given[key]
              for key in ("du", "dv"))  # one per population, or one per neuron
    du_float = (DECAY_UNITY - du - 1) / DECAY_UNITY
    dv_float = (DECAY_UNITY - dv) / DECAY_UNITY
    errors = {"du_error": float(np.max(np.abs(du_float - (1.0 - np.asarray(population.du))))),
              "dv_error": float(np.max(np.abs(dv_float - (1.0 - np.asarray(population.dv))))),
              "vth_relative": abs(given["vth"] - population.vth) / population.vth if np.isfinite(population.vth)
              and population.vth else 0.0, "bias_max_abs": 0.0, "note": "exact integers from the graph"}
    return PopulationQuantisation(population.name, float(2**ACT_SHIFT), du, dv, given["vth"],
                                  bias, np.full(bias.shape, given["bias_exp"], dtype=np.int64), errors)


def _exact_projection(projection: Projection) -> ProjectionQuantisation:
    """A projection whose integer weights the graph declares: a dense one gets
    the mantissas, bits and exponent that netx's ``optimize_weight_bits``
    gives Lava's Dense; a convolution the integers as they are."""
    integers = _integers(projection.weight, f"projection '{projection.name}'")
    effective = integers.astype(np.float64)
    if projection.kind == "conv" and projection.delay == 0:
        return ProjectionQuantisation(projection.name, integers, 0, "conv", effective, 1.0, 0.0, 0.0)
    if projection.kind == "conv":
        integers = np.rint(dense_of(_with_weight(projection, effective))).astype(np.int64)
    import_lava(with_dl=True)
    from lava.lib.dl.netx.utils import optimize_weight_bits  # netx's own choice, as it loads a network

    with contextlib.redirect_stdout(io.StringIO()):  # it prints its clipping warnings
        weights, bits, exponent, _ = optimize_weight_bits(integers)
    return ProjectionQuantisation(projection.name, np.asarray(weights, dtype=np.int64), int(exponent), "netx",
                                  effective, 1.0, 0.0, 0.0, weight_bits=int(bits))
