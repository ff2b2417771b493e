"""Runtime controller: choose the latency of every inference to meet an energy budget.

One deployed SLT network, a budget and a policy. Energy is counted live: every
step's synaptic operations (from the backend's own spikes) are priced with
the hardware profile the network was profiled with (``slt-deploy profile``
stores it in the NIR metadata).

Budgets (mJ = millijoules):

* a battery (``battery_mj``) over a horizon: a number of ``inferences``, or
  ``duration_s`` at ``rate_hz``;
* a per-inference cap (``per_inference_mj``); a power cap ``power_mw`` at
  ``rate_hz`` is the per-inference cap power / rate.

Guarantee: before every time step the controller prices the step and runs
it only if that price fits what is left -- of the battery and of the
inference's cap -- and otherwise ends the inference; when not even the first
step of an inference fits the battery, the battery is spent and the
controller says so and stops. Energy spent never exceeds the budget. The
price is a true upper bound on the step's energy, chosen by ``reserve``:

* ``exact`` (default): the step's own energy. A step's spikes are a
  deterministic function of the network's state after the previous step and
  of the next input, so a simulator (or a digital twin beside a chip) knows
  them before it commits the step; nothing is held back that the step does
  not spend, and a cap of E(t=k) buys about k steps.
* ``bound``: what a controller that cannot look ahead can guarantee -- the
  next input's operations as it is (every event counted, an analog input's
  MACs whatever its values) plus every hidden neuron firing once
  (:func:`step_bound_mj`). Sound for any input, loose: it holds back the
  energy of a step in which every neuron fires.

Only the next step is reserved, never more than the inference's remaining
steps need: a policy's allowance is the battery left per inference left.

Policies (what they know is measured on the held-out calibration split:
:func:`slt_deploy.runtime.evaluation.calibrate`, never the stream itself):

* ``fixed``: always t steps (the baseline every paper uses);
* ``static``: the largest t up to the profile's horizon whose mean energy
  fits the allowance (battery / inferences, or the cap), fixed for the whole
  mission;
* ``adaptive``: the same choice, recomputed before every inference from the
  energy actually left and the inferences still to do;
* ``anytime``: runs step by step, up to the horizon, and stops when the
  running mean output is confident enough (``entropy``, ``max_softmax`` or
  top-1/top-2 ``margin``, all in [0, 1]); the threshold follows the
  allowance (energy left / inferences left) through a mapping calibrated on
  the calibration split, so easy inputs leave energy to hard ones.

Backends: the PyTorch reference (fast what-if studies; one pass at T gives
every step of a sample) and the deployed Lava network (latency changed per
inference without a rebuild): the per-layer graph, SOP counted from Lava's
spikes, or -- the default on the CPU simulator -- the fused Lava model, SOP
from its live counters (bit-identical to the per-layer graph). The network
is causal, so a sample's run up to the largest latency it could get, read
step by step, gives the same decisions and charged energy as stopping the
run online: steps after the stop are discarded and never charged.
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np

from ..core.errors import UserError
from ..core.files import read_toml
from ..core.result import Simulation
from ..energy.counts import count_stream, operation_counts, run_synapse_counts
from ..energy.hardware import Hardware
from ..ir.nirfile import metadata_json
from ..readout import running_mean
from ..simulation import deployment_plan, FUSED_BACKENDS, Session

MEASURES = ("entropy", "max_softmax", "margin")
POLICIES = ("fixed", "static", "adaptive", "anytime")
RESERVES = ("exact", "bound")


# --------------------------------------------------------------------------- budgets


def _positive(value, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise UserError(f"{name} must be a positive number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Budget:
    """An energy budget: battery (mJ) over a horizon, and/or a per-inference cap (mJ)."""

    battery_mj: float | None = None
    inferences: int | None = None
    per_inference_mj: float | None = None

    @classmethod
    def from_options(cls, battery_mj=None, inferences=None, duration_s=None, rate_hz=None,
                     per_inference_mj=None, power_mw=None) -> "Budget":
        battery_mj = _positive(battery_mj, "battery (mJ)")
        per_inference_mj = _positive(per_inference_mj, "per-inference cap (mJ)")
        power_mw = _positive(power_mw, "power cap (mW)")
        duration_s = _positive(duration_s, "duration (s)")
        rate_hz = _positive(rate_hz, "inference rate (Hz)")
        if inferences is not None and (isinstance(inferences, bool) or not isinstance(inferences, int) or inferences < 1):
            raise UserError(f"inferences must be a positive integer, got {inferences!r}")
        if duration_s is not None:
            if rate_hz is None or inferences is not None:
                raise UserError("a duration needs an inference rate (and replaces --inferences)")
            inferences = max(1, int(duration_s * rate_hz))
        if power_mw is not None:
            if rate_hz is None:
                raise UserError("a power cap (mW) needs an inference rate (Hz)")
            cap = power_mw / rate_hz  # mW / Hz = mJ per inference
            per_inference_mj = cap if per_inference_mj is None else min(per_inference_mj, cap)
        if battery_mj is not None and inferences is None:
            raise UserError("a battery needs a horizon: give --inferences, or --duration-s and --rate-hz")
        if battery_mj is None and per_inference_mj is None:
            raise UserError("no budget: give a battery (--battery-mj with a horizon), a per-inference cap or a power cap")
        return cls(battery_mj, inferences, per_inference_mj)

    @classmethod
    def from_scenario(cls, path) -> tuple["Budget", dict]:
        """A budget (and the scenario's other settings) from a TOML scenario file."""
        data = read_toml(path, "scenario")
        allowed = {"budget", "policy", "name", "description"}
        unknown = set(data) - allowed
        if unknown:
            raise UserError(f"scenario {path}: unknown sections or keys {sorted(unknown)}")
        for key in ("name", "description"):
            if not isinstance(data.get(key, ""), str):
                raise UserError(f"scenario {path}: '{key}' must be a string")
        budget = data.get("budget")
        if not isinstance(budget, dict):
            raise UserError(f"scenario {path} needs a [budget] section")
        keys = {"battery_mj", "inferences", "duration_s", "rate_hz", "per_inference_mj", "power_mw"}
        unknown = set(budget) - keys
        if unknown:
            raise UserError(f"scenario {path}: unknown budget keys {sorted(unknown)}")
        for key, value in budget.items():  # numbers a float can hold (TOML integers are unbounded here)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not abs(value) <= sys.float_info.max:
                raise UserError(f"scenario {path}: budget {key} must be a finite number, got {value!r}"[:300])
        if not math.isfinite(float(budget.get("duration_s", 0)) * float(budget.get("rate_hz", 0))):
            raise UserError(f"scenario {path}: duration_s x rate_hz is too large a number of inferences")
        policy = data.get("policy", {})
        if not isinstance(policy, dict):
            raise UserError(f"scenario {path}: [policy] must be a table (name, latency, measure)")
        unknown = set(policy) - {"name", "latency", "measure"}
        if unknown:
            raise UserError(f"scenario {path}: unknown policy keys {sorted(unknown)}")
        for key in ("name", "measure"):
            if not isinstance(policy.get(key, ""), str):
                raise UserError(f"scenario {path}: policy {key} must be a string, got {policy[key]!r}"[:300])
        latency = policy.get("latency", 1)
        if isinstance(latency, bool) or not isinstance(latency, int) or latency < 1:
            raise UserError(f"scenario {path}: policy latency must be a positive whole number of steps, got {latency!r}")
        return cls.from_options(**budget), policy


# --------------------------------------------------------------------------- profile and engines


@dataclass
class EnergyProfile:
    """What the controller knows before running: the mean energy (mJ) and
    accuracy per latency t = 1..T, the hardware that prices operations,
    whether an analog input's MACs are charged once per inference, and the
    horizon: the largest latency worth running (see :meth:`measured`)."""

    latency: list[int]
    energy_mj: list[float]
    accuracy: list[float]
    hardware: Hardware
    mac_once: bool
    horizon: int | None = None  # the largest latency worth running (None: T)

    def __post_init__(self):
        self.horizon = self.T if self.horizon is None else self.horizon

    @property
    def T(self) -> int:
        return len(self.latency)

    @classmethod
    def from_graph(cls, graph) -> "EnergyProfile":
        """The profile ``slt-deploy profile`` stored in the graph (of the split it was run on)."""
        data = metadata_json(graph, "energy_profile_json")
        if data is None:
            raise UserError(
                "the NIR graph has no energy profile in its metadata: run `slt-deploy profile MODEL.nir "
                "--data digits --hardware qiao2015` first"
            )
        try:
            hardware = Hardware(**{k: v for k, v in data["hardware"].items()})
            return cls(list(data["latency"]), list(data["energy_mj"]["mean"]), list(data["accuracy"]),
                       hardware, bool(data.get("mac_once", True)))
        except (KeyError, TypeError) as exc:
            raise UserError(f"the energy profile in the NIR metadata is incomplete: {exc!r}") from None

    def measured(self, step_energy_mj: np.ndarray, correct: np.ndarray) -> "EnergyProfile":
        """The same pricing with energy and accuracy measured on a stream:
        step_energy_mj [N, T] (mJ per step), correct [N, T] (0/1 at latency t).

        Horizon: the largest t whose accuracy is at least the best latency's
        minus one standard error of their paired difference -- the last t
        statistically tied with the best. On a model whose accuracy falls
        after some t, running past the horizon costs more for less; where
        accuracy only grows (or the stream is too small to tell), it is T."""
        energy = np.cumsum(step_energy_mj, axis=1).mean(0)
        accuracy = correct.mean(0)
        best = int(accuracy.argmax())
        difference = correct - correct[:, [best]]
        error = difference.std(0, ddof=1) / math.sqrt(len(correct)) if len(correct) > 1 else np.zeros(len(accuracy))
        tied = np.nonzero(difference.mean(0) >= -error - 1e-12)[0]
        return EnergyProfile(list(range(1, energy.size + 1)), energy.tolist(), accuracy.tolist(),
                             self.hardware, self.mac_once, int(tied.max()) + 1)

    def best_latency_within(self, allowance_mj: float) -> int:
        """The largest latency up to the horizon whose mean energy fits the
        allowance (mJ); 0 if none. Recomputed per inference, it mixes
        neighbouring latencies so that the mean energy follows the allowance."""
        fitting = [t for t, e in zip(self.latency[: self.horizon], self.energy_mj) if e <= allowance_mj]
        return max(fitting) if fitting else 0


class Engine(Protocol):
    def run(self, sample, steps: int) -> Simulation:
        """One inference of ``steps`` time steps: outputs [1, steps, K] and energy_mj [1, steps]."""


def step_prices(plan, hardware: Hardware, inputs, run, mac_once: bool) -> tuple[np.ndarray, np.ndarray]:
    """Energy (mJ) of every step of every sample [N, T] of a finished run
    (live counters, or counted from its spikes) and its upper bound known
    before the step ran (:func:`step_bound_mj`)."""
    counts = operation_counts(plan, *run_synapse_counts(plan, inputs, run), mac_once=mac_once)
    return counts_energy(hardware, counts), step_bound_mj(hardware, counts, plan)


def counts_energy(hardware: Hardware, counts) -> np.ndarray:
    """Energy (mJ) per sample and step [N, T] of operation counts."""
    return hardware.energy_mj(counts.total("sop"), counts.total("mac"), counts.neuron_updates)


def step_bound_mj(hardware: Hardware, counts, plan) -> np.ndarray:
    """An upper bound (mJ) on every step's energy [N, T] that is known before
    the step runs: the operations of projections fed by the input or by a
    constant source as they are (they depend on the next input only: every
    event counted, an analog input's MACs whatever its values), and every
    other projection as if each presynaptic neuron fired (a spiking neuron
    emits at most one spike per step), plus every neuron's update."""
    active = counts.neuron_updates > 0  # steps within the sample's latency
    sop = np.zeros(active.shape)
    mac = np.zeros(active.shape)
    for layer in counts.layers:
        source = plan.populations[layer.source]
        known = source.is_input or source.constant
        ops = layer.effective if known else layer.synapses_effective * active
        if layer.kind == "mac":
            mac = mac + ops
        else:
            sop = sop + ops
    return hardware.energy_mj(sop, mac, counts.neuron_updates)


def batch_traces(graph, profile: EnergyProfile, inputs: np.ndarray, backend: str = "lava-fused",
                 dt: float | None = None, nproc: int = 1) -> Simulation:
    """Outputs [N, T, K], per-step energy [N, T] (mJ) and its bound known
    before each step of a whole stream in one run of ``backend`` (lava-fused,
    lava-fused-fixed, lava-float, torch) -- sharded over ``nproc`` processes
    or a torchrun job's ranks, equal to one process's run: everything a
    controller can read from every sample at every step."""
    outputs, counts = count_stream(graph, backend, inputs, dt=dt, mac_once=profile.mac_once, nproc=nproc)
    plan = deployment_plan(graph, dt)
    return Simulation(outputs.reshape(outputs.shape[0], outputs.shape[1], -1),
                      energy_mj=counts_energy(profile.hardware, counts),
                      energy_bound_mj=step_bound_mj(profile.hardware, counts, plan), plan=plan)


class SessionEngine:
    """A simulation session as the controller's backend (a context manager):
    ``backend`` torch (the reference; one pass gives every step of a batch),
    lava-float or lava-fixed (the per-layer graph; SOP counted from its
    spikes) or lava-fused / lava-fused-fixed (one process; SOP from its live counters). Each
    inference runs as one sample of the session: its latency changes
    without a rebuild."""

    def __init__(self, graph, profile: EnergyProfile, backend: str = "lava-float", dt: float | None = None):
        self.profile = profile
        self.session = Session(graph, backend, profile.T, dt=dt, record_spikes=backend not in FUSED_BACKENDS,
                               capacity=1)
        self.plan = self.session.plan

    def run(self, sample: np.ndarray, steps: int) -> Simulation:
        """One inference of ``steps`` steps: outputs [1, steps, K], energy_mj
        and energy_bound_mj [1, steps]."""
        x = np.zeros((1, self.profile.T, *np.asarray(sample).shape[1:]))
        x[0, :steps] = np.asarray(sample)[:steps]
        result = self.session.run(x, [steps])
        energy, bound = step_prices(self.plan, self.profile.hardware, x, result, self.profile.mac_once)
        outputs = result.outputs.reshape(1, self.profile.T, -1)
        return Simulation(outputs[:, :steps], energy_mj=energy[:, :steps], energy_bound_mj=bound[:, :steps],
                          plan=self.plan)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> "SessionEngine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class TorchEngine(SessionEngine):
    """The PyTorch reference as the controller's backend."""

    def __init__(self, graph, profile: EnergyProfile, dt: float | None = None):
        super().__init__(graph, profile, "torch", dt)


class LavaEngine(SessionEngine):
    """The deployed Lava network (``mode`` float, fixed, fused or fused-fixed) as the controller's backend."""

    def __init__(self, graph, profile: EnergyProfile, mode: str = "float", dt: float | None = None):
        super().__init__(graph, profile, f"lava-{mode}", dt)


class PrecomputedEngine:
    """Replays the traces of a whole stream computed once (:func:`batch_traces`;
    what-if sweeps): ``run(k, steps)`` is sample k's first steps."""

    def __init__(self, traces: Simulation):
        self.traces = traces

    def run(self, sample_index, steps: int) -> Simulation:
        k = int(sample_index)
        return Simulation(
            self.traces.outputs[k: k + 1, :steps], energy_mj=self.traces.energy_mj[k: k + 1, :steps],
            energy_bound_mj=self.traces.energy_bound_mj[k: k + 1, :steps])


# --------------------------------------------------------------------------- confidence


def softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def confidence(running_mean: np.ndarray, measure: str) -> np.ndarray:
    """Confidence in [0, 1] of the prediction from the running mean output [..., K]."""
    p = softmax(running_mean)
    if measure == "max_softmax":
        return p.max(-1)
    if measure == "margin":
        top = np.sort(p, axis=-1)
        return top[..., -1] - top[..., -2]
    if measure == "entropy":
        k = p.shape[-1]
        entropy = -(p * np.log(np.clip(p, 1e-300, None))).sum(-1)
        return 1.0 - entropy / math.log(k)
    raise UserError(f"unknown confidence measure '{measure}': choose one of {', '.join(MEASURES)}")


def stop_steps(conf: np.ndarray, threshold: float) -> np.ndarray:
    """First step (1-based) whose confidence reaches the threshold, else T: [N]."""
    reached = conf >= threshold
    first = np.where(reached.any(-1), reached.argmax(-1) + 1, conf.shape[-1])
    return first


@dataclass
class ThresholdCalibration:
    """Mean energy per inference (mJ) of stopping at confidence >= threshold,
    or after ``horizon`` steps, measured on the calibration split for every
    candidate threshold."""

    thresholds: np.ndarray  # increasing
    energy_mj: np.ndarray  # non-decreasing
    horizon: int  # steps an inference runs at most

    @classmethod
    def measure(cls, conf: np.ndarray, step_energy_mj: np.ndarray) -> "ThresholdCalibration":
        """From confidence and step energy (mJ), both [N, H] for H = horizon steps."""
        cumulative = np.cumsum(step_energy_mj, axis=-1)
        candidates = np.unique(np.concatenate([[0.0], conf.ravel(), [1.0 + 1e-9]]))
        if candidates.size > 400:
            candidates = np.unique(np.quantile(candidates, np.linspace(0, 1, 400)))
        energy = []
        for threshold in candidates:
            stop = stop_steps(conf, threshold)
            energy.append(cumulative[np.arange(len(stop)), stop - 1].mean())
        return cls(candidates, np.maximum.accumulate(np.array(energy)), conf.shape[-1])

    def threshold_for(self, allowance_mj: float) -> float:
        """The most demanding threshold whose calibrated mean energy fits the allowance."""
        fitting = np.nonzero(self.energy_mj <= allowance_mj)[0]
        return float(self.thresholds[fitting[-1]]) if fitting.size else float(self.thresholds[0])


# --------------------------------------------------------------------------- policies


@dataclass
class MissionState:
    spent_mj: float = 0.0
    done: int = 0

    def remaining(self, budget: Budget) -> float:
        return math.inf if budget.battery_mj is None else budget.battery_mj - self.spent_mj

    def left(self, budget: Budget) -> int | None:
        return None if budget.inferences is None else max(1, budget.inferences - self.done)


class Policy:
    name = "policy"

    def plan(self, profile: EnergyProfile, budget: Budget, state: MissionState) -> int:
        """Steps this inference may run (the stop rule may end it earlier)."""
        raise NotImplementedError

    def stop_after(self, step: int, running_mean: np.ndarray) -> bool:
        return False

    def observe(self, energy_mj: float) -> None:
        """The energy the inference just planned actually cost (mJ)."""

    def describe(self) -> dict:
        return {"name": self.name}


def allowance(profile: EnergyProfile, budget: Budget, state: MissionState) -> float:
    """Energy (mJ) this inference may use on average: the battery left per
    inference left, capped by the per-inference cap."""
    share = math.inf
    if budget.battery_mj is not None:
        share = max(0.0, state.remaining(budget)) / state.left(budget)
    if budget.per_inference_mj is not None:
        share = min(share, budget.per_inference_mj)
    return share


class FixedPolicy(Policy):
    name = "fixed"

    def __init__(self, latency: int):
        self.latency = latency

    def plan(self, profile, budget, state):
        return self.latency

    def describe(self):
        return {"name": self.name, "latency": self.latency}


class StaticPolicy(Policy):
    """One latency for the whole mission: the best hull latency that fits the initial allowance."""

    name = "static"

    def __init__(self):
        self.latency: int | None = None

    def plan(self, profile, budget, state):
        if self.latency is None:
            self.latency = max(1, profile.best_latency_within(allowance(profile, budget, MissionState())))
        return self.latency

    def describe(self):
        return {"name": self.name, "latency": self.latency}


class AdaptivePolicy(Policy):
    """The best hull latency whose profiled energy fits what is left per
    inference left (:meth:`EnergyProfile.best_latency_within`)."""

    name = "adaptive"

    def plan(self, profile, budget, state):
        return max(1, profile.best_latency_within(allowance(profile, budget, state)))


class AnytimePolicy(Policy):
    """Stop when confidence reaches a threshold that follows the allowance,
    or at the profile's horizon (:meth:`EnergyProfile.measured`: running
    longer costs more for no more accuracy).

    The threshold is the most demanding one whose mean energy on the
    calibration split fits the allowance, after correcting the calibrated
    energies by how much the stream actually costs relative to them (a ratio
    learnt online, starting at 1 with the weight of ``prior`` inferences)."""

    name = "anytime"

    def __init__(self, measure: str, calibration: ThresholdCalibration, prior: float = 10.0):
        if measure not in MEASURES:
            raise UserError(f"unknown confidence measure '{measure}': choose one of {', '.join(MEASURES)}")
        self.measure, self.calibration = measure, calibration
        self.threshold = 1.0
        self.thresholds: list[float] = []
        self.predicted = self.actual = 0.0
        self.prior = prior
        self._expected = 0.0

    def plan(self, profile, budget, state):
        typical = float(np.median(self.calibration.energy_mj))
        ratio = (self.actual + self.prior * typical) / (self.predicted + self.prior * typical)
        self.threshold = self.calibration.threshold_for(allowance(profile, budget, state) / ratio)
        self._expected = float(np.interp(self.threshold, self.calibration.thresholds, self.calibration.energy_mj))
        self.thresholds.append(self.threshold)
        return min(profile.horizon, self.calibration.horizon)

    def observe(self, energy_mj):
        self.predicted += self._expected
        self.actual += energy_mj

    def stop_after(self, step, running_mean):
        return float(confidence(running_mean, self.measure)) >= self.threshold

    def describe(self):
        return {"name": self.name, "measure": self.measure}


# --------------------------------------------------------------------------- controller


@dataclass
class Decision:
    """One inference: its latency t (steps run; 0 when not even its first
    step fitted the cap), prediction (-1 without a step), energy (mJ), the
    battery left after it (mJ; inf without a battery) and why it stopped."""

    index: int
    latency: int
    prediction: int
    energy_mj: float
    remaining_mj: float
    stopped_by: str  # plan | confidence | battery | cap
    planned: int

    def to_dict(self) -> dict:
        return asdict(self)


class BatterySpent(Exception):
    """Not even the first step of the next inference fits what is left of the battery."""


def check_budget(profile: EnergyProfile, budget: Budget) -> None:
    """Refuse, in one line, a budget that cannot be met even at t = 1 (checked
    before anything runs): a per-inference cap below the mean energy of one
    step, or a battery below the horizon's inferences at t = 1."""
    first = profile.energy_mj[0]
    if budget.per_inference_mj is not None and budget.per_inference_mj < first:
        raise UserError(
            f"the per-inference cap {budget.per_inference_mj:.3e} mJ cannot be met even at t = 1: one step "
            f"costs {first:.3e} mJ on average"
        )
    if budget.battery_mj is not None and budget.battery_mj < budget.inferences * first:
        raise UserError(
            f"the battery {budget.battery_mj:.3e} mJ cannot cover {budget.inferences} inferences "
            f"even at t = 1 ({first:.3e} mJ each on average)"
        )


@dataclass
class Controller:
    """``infer(sample)`` for a control loop; ``state`` keeps the mission's
    spending; ``reserve`` (exact | bound) is the price a step must fit before
    it runs (module docstring)."""

    engine: Engine
    profile: EnergyProfile
    budget: Budget
    policy: Policy
    reserve: str = "exact"
    state: MissionState = field(default_factory=MissionState)

    def __post_init__(self):
        if self.reserve not in RESERVES:
            raise UserError(f"unknown reserve '{self.reserve}': choose {' or '.join(RESERVES)}")
        check_budget(self.profile, self.budget)

    def infer(self, sample) -> Decision:
        """Run one inference; raises :class:`BatterySpent` when not even its first step fits the battery."""
        budget, state, profile = self.budget, self.state, self.profile
        planned = max(1, min(profile.T, self.policy.plan(profile, budget, state)))
        trace = self.engine.run(sample, planned)
        energy = trace.energy_mj[0]
        price = energy if self.reserve == "exact" else trace.energy_bound_mj[0]
        left = state.remaining(budget)
        if price[0] > left:
            raise BatterySpent(f"battery spent after {state.done} inferences: {left:.3e} mJ left, the next "
                               f"step needs up to {price[0]:.3e} mJ")
        cap = math.inf if budget.per_inference_mj is None else budget.per_inference_mj
        spent, steps, reason = 0.0, 0, "plan"
        means = running_mean(trace.outputs[0], axis=-2)
        for step in range(1, len(energy) + 1):
            if spent + price[step - 1] > left:
                reason = "battery"
                break
            if spent + price[step - 1] > cap:
                reason = "cap"
                break
            spent += float(energy[step - 1])
            steps = step
            if self.policy.stop_after(step, means[step - 1]):
                reason = "confidence" if step < planned else "plan"
                break
        state.spent_mj += spent
        state.done += 1
        self.policy.observe(spent)
        prediction = int(means[steps - 1].argmax()) if steps else -1
        return Decision(index=state.done - 1, latency=steps, prediction=prediction, energy_mj=spent,
                        remaining_mj=state.remaining(budget), stopped_by=reason, planned=planned)


@dataclass
class Mission:
    decisions: list[Decision]
    budget: Budget
    policy: dict
    battery_spent: str | None  # the controller's message when it stopped for lack of energy

    def summary(self, labels: np.ndarray | None = None) -> dict:
        energy = sum(d.energy_mj for d in self.decisions)
        result = {
            "policy": self.policy,
            "inferences": len(self.decisions),
            "energy_mj": energy,
            "mean_energy_mj": energy / max(1, len(self.decisions)),
            "mean_latency": float(np.mean([d.latency for d in self.decisions])) if self.decisions else 0.0,
            "battery_mj": self.budget.battery_mj,
            "utilisation": energy / self.budget.battery_mj if self.budget.battery_mj else None,
            "violations": int(self.budget.battery_mj is not None and energy > self.budget.battery_mj)
            + sum(1 for d in self.decisions if self.budget.per_inference_mj is not None
                  and d.energy_mj > self.budget.per_inference_mj),
            "battery_spent": self.battery_spent,
        }
        if labels is not None and self.decisions:
            predictions = np.array([d.prediction for d in self.decisions])
            correct = (predictions == labels[: len(predictions)])
            result["accuracy"] = float(correct.mean())
            horizon = self.budget.inferences or len(self.decisions)
            result["accuracy_over_horizon"] = float(correct.sum() / horizon)  # inferences not made count as wrong
        return result


def run_mission(controller: Controller, samples) -> Mission:
    """Feed ``samples`` (an iterable) to the controller until done or the battery is spent."""
    decisions, spent = [], None
    for sample in samples:
        try:
            decisions.append(controller.infer(sample))
        except BatterySpent as exc:
            spent = str(exc)
            break
    return Mission(decisions, controller.budget, controller.policy.describe(), spent)


def make_policy(name: str, profile: EnergyProfile, latency: int | None = None, measure: str = "entropy",
                calibration: ThresholdCalibration | None = None) -> Policy:
    if name == "fixed":
        t = profile.T if latency is None else latency
        if not 1 <= t <= profile.T:
            raise UserError(f"fixed latency must lie in 1..{profile.T}, got {t}")
        return FixedPolicy(t)
    if name == "static":
        return StaticPolicy()
    if name == "adaptive":
        return AdaptivePolicy()
    if name == "anytime":
        if measure not in MEASURES:
            raise UserError(f"unknown confidence measure '{measure}': choose one of {', '.join(MEASURES)}")
        if calibration is None:
            raise ValueError("the anytime policy needs a threshold calibration")
        return AnytimePolicy(measure, calibration)
    raise UserError(f"unknown policy '{name}': choose one of {', '.join(POLICIES)}")
