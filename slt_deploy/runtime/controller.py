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

Guarantee: before every time step the controller checks that one more step,
even with every neuron firing (the profile's worst-case step), fits what is
left -- of the battery and of the inference's cap -- and otherwise ends the
inference early; when not even one step fits, the battery is spent and the
controller says so and stops. Energy spent never exceeds the budget.

Policies:

* ``fixed``: always t steps (the baseline every paper uses);
* ``static``: the largest t whose profiled mean energy fits the allowance
  (battery / horizon, or the cap), fixed for the whole mission;
* ``adaptive``: the same choice, recomputed before every inference from the
  energy actually left and the inferences still to do;
* ``anytime``: runs step by step and stops when the running mean output is
  confident enough (``entropy``, ``max_softmax`` or top-1/top-2 ``margin``,
  all in [0, 1]); the threshold follows the allowance (energy left / inferences
  left) through a mapping calibrated on the held-out calibration split, so
  easy inputs leave energy to hard ones.

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
from ..simulation import FUSED_BACKENDS, Session

MEASURES = ("entropy", "max_softmax", "margin")
POLICIES = ("fixed", "static", "adaptive", "anytime")


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
    """What the controller knows before running: the profiled mean energy (mJ)
    and accuracy per latency t = 1..T, and the worst-case energy of one step."""

    latency: list[int]
    energy_mj: list[float]
    accuracy: list[float]
    worst_step_mj: float
    hardware: Hardware
    mac_once: bool

    @property
    def T(self) -> int:
        return len(self.latency)

    @classmethod
    def from_graph(cls, graph) -> "EnergyProfile":
        data = metadata_json(graph, "energy_profile_json")
        if data is None:
            raise UserError(
                "the NIR graph has no energy profile in its metadata: run `slt-deploy profile MODEL.nir "
                "--data digits --hardware qiao2015` first"
            )
        try:
            hardware = Hardware(**{k: v for k, v in data["hardware"].items()})
            return cls(list(data["latency"]), list(data["energy_mj"]["mean"]), list(data["accuracy"]),
                       float(data["worst_case_step"]["energy_mj"]), hardware, bool(data.get("mac_once", True)))
        except (KeyError, TypeError) as exc:
            raise UserError(f"the energy profile in the NIR metadata is incomplete: {exc!r}") from None

    def largest_latency_within(self, allowance_mj: float) -> int:
        """Largest t with profiled mean energy <= allowance; 0 if none."""
        fitting = [t for t, e in zip(self.latency, self.energy_mj) if e <= allowance_mj]
        return max(fitting) if fitting else 0


class Engine(Protocol):
    def run(self, sample, steps: int) -> Simulation:
        """One inference of ``steps`` time steps: outputs [1, steps, K] and energy_mj [1, steps]."""


def step_energy(plan, hardware: Hardware, inputs, run, mac_once: bool) -> np.ndarray:
    """Energy (mJ) of every step of every sample [N, T] of a finished run
    (live counters, or counted from its spikes)."""
    counts = operation_counts(plan, *run_synapse_counts(plan, inputs, run), mac_once=mac_once)
    return counts_energy(hardware, counts)


def counts_energy(hardware: Hardware, counts) -> np.ndarray:
    """Energy (mJ) per sample and step [N, T] of operation counts."""
    return hardware.energy_mj(counts.total("sop"), counts.total("mac"), counts.neuron_updates)


def batch_traces(graph, profile: EnergyProfile, inputs: np.ndarray, backend: str = "lava-fused",
                 dt: float | None = None, nproc: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Outputs [N, T, K] and per-step energy [N, T] (mJ) of a whole stream in
    one run of ``backend`` (lava-fused, lava-fused-fixed, lava-float, torch) --
    sharded over ``nproc`` processes or a torchrun job's ranks, equal to one
    process's run: everything a controller can read from every sample at every step."""
    outputs, counts = count_stream(graph, backend, inputs, dt=dt, mac_once=profile.mac_once, nproc=nproc)
    energy = counts_energy(profile.hardware, counts)
    return outputs.reshape(outputs.shape[0], outputs.shape[1], -1), energy


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

    def run_batch(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Outputs [N, T, K] and per-step energy [N, T] (mJ) of a batch (one pass)."""
        result = self.session.run(inputs)
        energy = step_energy(self.plan, self.profile.hardware, inputs, result, self.profile.mac_once)
        return result.outputs.reshape(result.outputs.shape[0], result.outputs.shape[1], -1), energy

    def run(self, sample: np.ndarray, steps: int) -> Simulation:
        x = np.zeros((1, self.profile.T, *np.asarray(sample).shape[1:]))
        x[0, :steps] = np.asarray(sample)[:steps]
        result = self.session.run(x, [steps])
        energy = step_energy(self.plan, self.profile.hardware, x, result, self.profile.mac_once)
        outputs = result.outputs.reshape(1, self.profile.T, -1)
        return Simulation(outputs[:, :steps], energy_mj=energy[:, :steps], plan=self.plan)

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
    """Replays traces computed once for a whole stream (what-if sweeps)."""

    def __init__(self, outputs: np.ndarray, energy: np.ndarray):
        self.outputs, self.energy = outputs, energy

    def run(self, sample_index, steps: int) -> Simulation:
        k = int(sample_index)
        return Simulation(self.outputs[k: k + 1, :steps], energy_mj=self.energy[k: k + 1, :steps])


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
    measured on the calibration split, for every candidate threshold."""

    thresholds: np.ndarray  # increasing
    energy_mj: np.ndarray  # non-decreasing

    @classmethod
    def measure(cls, conf: np.ndarray, step_energy_mj: np.ndarray) -> "ThresholdCalibration":
        cumulative = np.cumsum(step_energy_mj, axis=-1)
        candidates = np.unique(np.concatenate([[0.0], conf.ravel(), [1.0 + 1e-9]]))
        if candidates.size > 400:
            candidates = np.unique(np.quantile(candidates, np.linspace(0, 1, 400)))
        energy = []
        for threshold in candidates:
            stop = stop_steps(conf, threshold)
            energy.append(cumulative[np.arange(len(stop)), stop - 1].mean())
        return cls(candidates, np.maximum.accumulate(np.array(energy)))

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
    """Energy (mJ) this inference may use on average: the battery left (minus
    the one-step reserve) per inference left, capped by the per-inference cap."""
    share = math.inf
    if budget.battery_mj is not None:
        share = max(0.0, state.remaining(budget) - profile.worst_step_mj) / state.left(budget)
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
    """One latency for the whole mission, from the initial allowance."""

    name = "static"

    def __init__(self):
        self.latency: int | None = None

    def plan(self, profile, budget, state):
        if self.latency is None:
            self.latency = max(1, profile.largest_latency_within(allowance(profile, budget, MissionState())))
        return self.latency

    def describe(self):
        return {"name": self.name, "latency": self.latency}


class AdaptivePolicy(Policy):
    """The largest latency whose profiled energy fits what is left per inference left."""

    name = "adaptive"

    def plan(self, profile, budget, state):
        return max(1, profile.largest_latency_within(allowance(profile, budget, state)))


class AnytimePolicy(Policy):
    """Stop when confidence reaches a threshold that follows the allowance.

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
        return profile.T

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
    """One inference: its latency t (steps run), prediction, energy (mJ), the
    battery left after it (mJ; inf without a battery) and why it stopped."""

    index: int
    latency: int
    prediction: int
    energy_mj: float
    remaining_mj: float
    stopped_by: str  # plan | confidence | reserve | cap
    planned: int

    def to_dict(self) -> dict:
        return asdict(self)


class BatterySpent(Exception):
    """Not even one worst-case step fits what is left of the battery."""


def check_budget(profile: EnergyProfile, budget: Budget) -> None:
    """Refuse, in one line, a budget that cannot be met even at t = 1 (checked
    before anything runs): a per-inference cap below one step's cost, or a
    battery below the horizon's inferences at t = 1 (or one worst-case step)."""
    worst = profile.worst_step_mj
    first = profile.energy_mj[0]
    if budget.per_inference_mj is not None and budget.per_inference_mj < max(worst, first):
        raise UserError(
            f"the per-inference cap {budget.per_inference_mj:.3e} mJ cannot be met even at t = 1: one step "
            f"costs {first:.3e} mJ on average and up to {worst:.3e} mJ (every neuron firing)"
        )
    if budget.battery_mj is not None:
        need = max(worst, budget.inferences * first)
        if budget.battery_mj < need:
            raise UserError(
                f"the battery {budget.battery_mj:.3e} mJ cannot cover {budget.inferences} inferences "
                f"even at t = 1 ({first:.3e} mJ each on average; one worst-case step is {worst:.3e} mJ)"
            )


@dataclass
class Controller:
    """``infer(sample)`` for a control loop; ``state`` keeps the mission's spending."""

    engine: Engine
    profile: EnergyProfile
    budget: Budget
    policy: Policy
    state: MissionState = field(default_factory=MissionState)

    def __post_init__(self):
        check_budget(self.profile, self.budget)

    def infer(self, sample) -> Decision:
        """Run one inference; raises :class:`BatterySpent` when no step fits."""
        budget, state, profile = self.budget, self.state, self.profile
        worst = profile.worst_step_mj
        if state.remaining(budget) < worst:
            raise BatterySpent(f"battery spent after {state.done} inferences: {state.remaining(budget):.3e} mJ left, "
                               f"one worst-case step needs {worst:.3e} mJ")
        planned = max(1, min(profile.T, self.policy.plan(profile, budget, state)))
        trace = self.engine.run(sample, planned)
        energy = trace.energy_mj[0]
        spent, steps, reason = 0.0, 0, "plan"
        means = running_mean(trace.outputs[0], axis=-2)
        for step in range(1, len(energy) + 1):
            if state.remaining(budget) - spent < worst:
                reason = "reserve"
                break
            if budget.per_inference_mj is not None and spent + worst > budget.per_inference_mj:
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
        return Decision(index=state.done - 1, latency=steps, prediction=int(means[steps - 1].argmax()),
                        energy_mj=spent, remaining_mj=state.remaining(budget), stopped_by=reason,
                        planned=planned)


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
