"""How the runtime controller is judged.

On one stream (a test split, optionally under noise or a drift) and one
checkpoint, for budgets from E(t=1) to E(t=T) per inference of the stream.
The policies know only the calibration split: their energy profile and the
anytime thresholds are measured on it (:func:`calibrate`); the stream is
only judged, against:

* the *best fixed latency*: the most accurate fixed t whose mean energy on
  the stream fits the budget;
* the *profile hull*: the best accuracy any mix of fixed latencies reaches at
  a given mean energy -- the upper concave hull of the stream's
  (energy, accuracy) points, made non-decreasing;
* the *per-input oracle*: a multiple-choice knapsack over every input's
  correctness and measured energy at every t; it knows the labels, so no
  policy can beat it. Its LP relaxation (greedy over each input's concave
  hull) is an upper bound and is what is reported; the integer greedy
  solution is reported beside it;
* the published dynamic-timestep policies -- a fixed entropy threshold
  (DT-SNN, SEENN-I) and a fixed top-1/top-2 gap threshold (SNNCutoff) --
  tuned in hindsight on the test stream to the anytime policy's measured
  energy.

One forward pass at T gives every input's prediction and energy at every
t <= T, so all of this is cheap on the PyTorch backend.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.result import Simulation
from ..readout import running_mean
from .controller import (
    batch_traces, Budget, confidence, Controller, EnergyProfile, make_policy, MEASURES, PrecomputedEngine,
    RESERVES, run_mission, stop_steps, ThresholdCalibration)


@dataclass
class Calibration:
    """What a policy knows, all measured on the calibration split: the energy
    profile (mean mJ and accuracy per latency) and, per confidence measure,
    the anytime threshold-to-energy mapping."""

    profile: EnergyProfile
    thresholds: dict[str, ThresholdCalibration]


def upper_hull(energy, accuracy) -> list[int]:
    """Indices of the upper concave hull of the points (energy, accuracy),
    from the cheapest point to the most accurate one (cheapest among equals),
    in increasing energy."""
    order = sorted(range(len(energy)), key=lambda i: (energy[i], -accuracy[i]))
    hull: list[int] = []
    for i in order:
        if hull and accuracy[i] <= accuracy[hull[-1]]:
            continue  # costs more for no more accuracy
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            if (energy[b] - energy[a]) * (accuracy[i] - accuracy[a]) >= (accuracy[b] - accuracy[a]) * (energy[i] - energy[a]):
                hull.pop()  # b lies on or below the chord from a to i
            else:
                break
        hull.append(i)
    return hull


def hull_accuracy(energy: list[float], accuracy: list[float], at_energy: float) -> float:
    """Best accuracy of a mix of fixed latencies with mean energy <= at_energy
    (NaN below the cheapest latency)."""
    hull = [(energy[i], accuracy[i]) for i in upper_hull(energy, accuracy)]
    if at_energy < hull[0][0]:
        return float("nan")
    for (x1, y1), (x2, y2) in zip(hull, hull[1:]):
        if at_energy < x2:
            return float(y1 + (y2 - y1) * (at_energy - x1) / (x2 - x1))
    return float(hull[-1][1])


def oracle(correct: np.ndarray, energy: np.ndarray, budget_mj: float) -> dict:
    """Per-input oracle: every input gets some t in 1..T; maximise the number
    correct with total energy <= budget. correct [N, T] (0/1), energy [N, T]
    cumulative mJ. Returns the LP upper bound and the integer greedy accuracy."""
    n = correct.shape[0]
    base_energy = energy[:, 0].sum()
    base_correct = correct[:, 0].sum()
    upgrades = []  # (efficiency, d_energy, d_correct)
    for i in range(n):
        points = [(energy[i, t], correct[i, t]) for t in range(correct.shape[1])]
        hull = [points[0]]
        for e, c in points[1:]:
            if c <= hull[-1][1]:
                continue  # never worth more energy for no more correctness
            while len(hull) >= 2:
                (x1, y1), (x2, y2) = hull[-2], hull[-1]
                if (y2 - y1) * (e - x2) <= (c - y2) * (x2 - x1):
                    hull.pop()
                else:
                    break
            hull.append((e, c))
        for (x1, y1), (x2, y2) in zip(hull, hull[1:]):
            d_e, d_c = x2 - x1, y2 - y1
            upgrades.append((d_c / d_e if d_e > 0 else np.inf, d_e, d_c))
    upgrades.sort(key=lambda u: -u[0])
    left = budget_mj - base_energy
    lp, integer = float(base_correct), float(base_correct)
    integer_left = left
    if left < 0:
        return {"lp_accuracy": float("nan"), "integer_accuracy": float("nan")}
    for efficiency, d_e, d_c in upgrades:
        if d_e <= left:
            lp += d_c
            left -= d_e
        elif left > 0:
            lp += d_c * left / d_e
            left = 0.0
        if d_e <= integer_left:
            integer += d_c
            integer_left -= d_e
    return {"lp_accuracy": lp / n, "integer_accuracy": integer / n}


def threshold_baseline(outputs: np.ndarray, step_energy: np.ndarray, labels: np.ndarray, measure: str,
                       target_mj: float) -> dict:
    """A fixed confidence threshold tuned in hindsight so that the mean energy
    per inference is as large as possible without exceeding ``target_mj``."""
    means = running_mean(outputs, axis=-2)
    conf = confidence(means, measure)
    cumulative = np.cumsum(step_energy, axis=1)
    best = None
    for threshold in np.unique(np.concatenate([[0.0], conf.ravel(), [1.0 + 1e-9]])):
        stop = stop_steps(conf, threshold)
        index = np.arange(len(stop))
        energy = cumulative[index, stop - 1].mean()
        if energy <= target_mj and (best is None or energy > best["mean_energy_mj"]):
            accuracy = (means[index, stop - 1].argmax(-1) == labels).mean()
            best = {"threshold": float(threshold), "mean_energy_mj": float(energy), "accuracy": float(accuracy)}
    return best or {"threshold": float("nan"), "mean_energy_mj": float("nan"), "accuracy": float("nan")}


def sweep(calibration: Calibration, traces: Simulation, labels: np.ndarray, budgets: int = 8,
          measures=("entropy",), reserve: str = "exact") -> dict:
    """Every policy at every budget on one precomputed stream.

    traces: the stream's outputs [N, T, K], step energy and its bound [N, T]
    (mJ; :func:`~slt_deploy.runtime.controller.batch_traces`); the policies
    use ``calibration`` only. Budget levels span the stream's E(t=1)..E(t=T)
    (from the larger of its and the calibration's E(t=1): a cap below what
    the controller knows one step costs is refused)."""
    profile = calibration.profile
    outputs, step_energy = traces.outputs, traces.energy_mj
    n, T = step_energy.shape
    cumulative = np.cumsum(step_energy, axis=1)
    means = running_mean(outputs, axis=-2)
    correct = (means.argmax(-1) == labels[:, None]).astype(float)
    stream_energy = cumulative.mean(0).tolist()
    stream_accuracy = correct.mean(0).tolist()
    lowest = max(stream_energy[0], profile.energy_mj[0])
    levels = np.linspace(lowest, max(lowest, stream_energy[-1]), budgets)
    rows = []
    names = [("static", None), ("adaptive", None)] + [(f"anytime-{m}", m) for m in measures]
    for per_inference in levels:
        battery = n * per_inference
        budget = Budget(battery_mj=float(battery), inferences=n)
        row = {"budget_per_inference_mj": float(per_inference), "battery_mj": float(battery), "policies": {}}
        fits = [t for t in range(1, T + 1) if stream_energy[t - 1] <= per_inference]
        best_fixed = max(fits or [1], key=lambda t: (stream_accuracy[t - 1], -t))  # most accurate, then fastest
        row["best_fixed"] = {"latency": best_fixed, "accuracy": stream_accuracy[best_fixed - 1],
                             "mean_energy_mj": stream_energy[best_fixed - 1]}
        row["oracle"] = oracle(correct, cumulative, battery)
        row["hull_at_budget"] = hull_accuracy(stream_energy, stream_accuracy, per_inference)
        gap = row["oracle"]["lp_accuracy"] - row["best_fixed"]["accuracy"]
        for label, measure in names:
            policy = make_policy(label.split("-")[0], profile, measure=measure or "entropy",
                                 calibration=calibration.thresholds.get(measure) if measure else None)
            controller = Controller(PrecomputedEngine(traces), profile, budget, policy, reserve=reserve)
            summary = run_mission(controller, range(n)).summary(labels)
            # (a mission cut short by the battery may average a hair below E(t=1): judged against t = 1)
            summary["hull_accuracy"] = hull_accuracy(stream_energy, stream_accuracy,
                                                     max(summary["mean_energy_mj"], stream_energy[0]))
            summary["of_hull"] = summary["accuracy_over_horizon"] / row["hull_at_budget"]  # the stricter of the two
            if measure is not None:
                summary["gap_closed"] = ((summary["accuracy_over_horizon"] - row["best_fixed"]["accuracy"]) / gap
                                         if gap >= 1 / n else float("nan"))  # no gap of a whole sample: n/a
                summary["baselines"] = {
                    name: threshold_baseline(outputs, step_energy, labels, name, summary["mean_energy_mj"])
                    for name in ("entropy", "margin")
                }
            row["policies"][label] = summary
        rows.append(row)
    return {"stream": {"samples": n, "energy_mj": stream_energy, "accuracy": stream_accuracy},
            "calibration": {"energy_mj": profile.energy_mj, "accuracy": profile.accuracy, "horizon": profile.horizon},
            "reserve": reserve, "rows": rows, "caps": cap_tightness(profile, traces, labels)}


def cap_tightness(profile: EnergyProfile, traces: Simulation, labels: np.ndarray) -> list[dict]:
    """How much of a per-inference cap each reserve lets the stream use: for
    every k, a cap of the stream's own E(t=k) on the fixed policy at T (the
    cap alone ends each inference), with each reserve -- mean latency (time
    steps), mean energy / cap, violations and accuracy."""
    caps = []
    stream_energy = np.cumsum(traces.energy_mj, axis=1).mean(0)
    for k in profile.latency:
        cap = float(stream_energy[k - 1])
        if cap < profile.energy_mj[0]:
            continue  # below what the controller knows one step costs: refused
        entry = {"k": k, "cap_mj": cap}
        for reserve in RESERVES:
            controller = Controller(PrecomputedEngine(traces), profile, Budget(per_inference_mj=cap),
                                    make_policy("fixed", profile), reserve=reserve)
            summary = run_mission(controller, range(len(labels))).summary(labels)
            entry[reserve] = {"mean_latency": summary["mean_latency"], "cap_used": summary["mean_energy_mj"] / cap,
                              "violations": summary["violations"], "accuracy": summary["accuracy_over_horizon"]}
        caps.append(entry)
    return caps


def calibrate(graph, stored: EnergyProfile, inputs: np.ndarray, labels: np.ndarray,
              backend: str = "lava-fused", nproc: int = 1) -> Calibration:
    """What the policies know, from one run of the calibration split
    (``inputs`` [N, T, ...], ``labels`` [N]; samples over ``nproc``
    processes): the energy profile (``stored``'s pricing) and every confidence
    measure's threshold-to-energy mapping, up to the profile's horizon."""
    traces = batch_traces(graph, stored, inputs, backend, nproc=nproc)
    means = running_mean(traces.outputs, axis=-2)
    correct = (means.argmax(-1) == np.asarray(labels)[:, None]).astype(float)
    profile = stored.measured(traces.energy_mj, correct)
    horizon = profile.horizon
    energy = traces.energy_mj[:, :horizon]
    return Calibration(profile, {m: ThresholdCalibration.measure(confidence(means[:, :horizon], m), energy)
                                 for m in MEASURES})
