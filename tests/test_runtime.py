"""The runtime controller: budgets, policies, the energy guarantee, Lava vs
PyTorch decisions, and how it compares with the hull and the oracle."""

import itertools
import math

import numpy as np
import pytest

from conftest import ROOT, assert_one_line_error, run_cli
from slt_deploy.data.splits import evaluation_inputs, load_split
from slt_deploy.energy.hardware import load_hardware
from slt_deploy.core.errors import UserError
from slt_deploy.ir.nirfile import read_graph, write_graph
from slt_deploy.energy.profile import profile_model, store_in_graph
from slt_deploy.runtime.controller import (
    MEASURES, Budget, Controller, EnergyProfile, LavaEngine, PrecomputedEngine, ThresholdCalibration,
    TorchEngine, confidence, make_policy, run_mission)
from slt_deploy.readout import running_mean
from slt_deploy.runtime.evaluation import hull_accuracy, oracle, sweep


def stream(split, n=None):
    data = load_split("digits", split, (64,))
    x = evaluation_inputs(data, 8, "rate").transpose(0, 1).numpy()
    return (x, data.labels.numpy()) if n is None else (x[:n], data.labels.numpy()[:n])


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    """The shipped SLT digits MLP with a qiao2015 profile on the test split in its metadata."""
    path = tmp_path_factory.mktemp("ctl") / "mlp.nir"
    graph = read_graph(ROOT / "export" / "digits-mlp-slt.nir")
    x, y = stream("test")
    store_in_graph(graph, profile_model(graph, x, y, load_hardware("qiao2015")))
    write_graph(graph, path)
    return path


@pytest.fixture(scope="module")
def traces(profiled):
    graph = read_graph(profiled)
    profile = EnergyProfile.from_graph(graph)
    engine = TorchEngine(graph, profile)
    xc, _ = stream("calibration")
    outputs, energy = engine.run_batch(xc)
    calibration = {m: ThresholdCalibration.measure(confidence(running_mean(outputs, axis=-2), m), energy) for m in MEASURES}
    x, y = stream("test")
    test_outputs, test_energy = engine.run_batch(x)
    return graph, profile, calibration, test_outputs, test_energy, y


def test_budgets_from_options_and_scenarios():
    assert Budget.from_options(battery_mj=1.0, inferences=10) == Budget(1.0, 10, None)
    assert Budget.from_options(battery_mj=1.0, duration_s=2, rate_hz=5).inferences == 10
    assert Budget.from_options(power_mw=6.0, rate_hz=3).per_inference_mj == pytest.approx(2.0)  # mW / Hz = mJ
    for path in sorted((ROOT / "hardware").glob("*.scenario.toml")):
        budget, policy = Budget.from_scenario(path)
        assert budget.battery_mj or budget.per_inference_mj
        assert policy["name"] in ("fixed", "static", "adaptive", "anytime")


@pytest.mark.parametrize("kwargs, message", [
    ({"battery_mj": -1.0, "inferences": 5}, "positive"),
    ({"battery_mj": 0.0, "inferences": 5}, "positive"),
    ({"battery_mj": math.nan, "inferences": 5}, "positive"),
    ({"battery_mj": 1.0}, "needs a horizon"),
    ({}, "no budget"),
    ({"power_mw": 1.0}, "needs an inference rate"),
    ({"battery_mj": 1.0, "inferences": 0}, "positive integer"),
])
def test_bad_budgets(kwargs, message):
    with pytest.raises(UserError, match=message):
        Budget.from_options(**kwargs)


def test_budget_below_one_step_is_refused_before_running(traces):
    graph, profile, calibration, outputs, energy, y = traces
    engine = PrecomputedEngine(outputs, energy)
    with pytest.raises(UserError, match="cannot cover"):
        Controller(engine, profile, Budget(profile.energy_mj[0] * 50, 100), make_policy("adaptive", profile))
    with pytest.raises(UserError, match="cannot be met even at t = 1"):
        Controller(engine, profile, Budget(per_inference_mj=profile.energy_mj[0]), make_policy("static", profile))


def _mission(traces, policy, battery=None, inferences=None, cap=None, measure="entropy"):
    graph, profile, calibration, outputs, energy, y = traces
    budget = Budget(battery, inferences, cap)
    chosen = make_policy(policy, profile, measure=measure, calibration=calibration[measure],
                         latency=profile.T if policy == "fixed" else None)
    controller = Controller(PrecomputedEngine(outputs, energy), profile, budget, chosen)
    return run_mission(controller, range(len(y))), profile


@pytest.mark.parametrize("policy, measure", [("fixed", "entropy"), ("static", "entropy"), ("adaptive", "entropy"),
                                             ("anytime", "entropy"), ("anytime", "margin")])
def test_energy_spent_never_exceeds_the_battery(traces, policy, measure):
    _, profile, _, _, _, y = traces
    for share in (1.0, 1.3, 2.0, 4.0, 8.5):  # per-inference share, in units of E(t=1)
        battery = share * profile.energy_mj[0] * len(y)
        mission, _ = _mission(traces, policy, battery, len(y), measure=measure)
        spent = sum(d.energy_mj for d in mission.decisions)
        assert spent <= battery
        for before, decision in zip([battery] + [d.remaining_mj for d in mission.decisions], mission.decisions):
            assert decision.remaining_mj == pytest.approx(before - decision.energy_mj)
            assert decision.remaining_mj >= 0
        if policy == "fixed" and share < 8:  # fixed t = T overspends the share: the controller stops it early
            assert mission.battery_spent and "battery spent" in mission.battery_spent
            assert any(d.stopped_by == "reserve" for d in mission.decisions) or len(mission.decisions) < len(y)


def test_per_inference_cap_is_never_exceeded(traces):
    _, profile, _, _, _, y = traces
    cap = 3 * profile.worst_step_mj
    for policy in ("fixed", "static", "adaptive", "anytime"):
        mission, _ = _mission(traces, policy, cap=cap)
        assert len(mission.decisions) == len(y)
        assert max(d.energy_mj for d in mission.decisions) <= cap
        if policy == "fixed":  # T steps do not always fit under the cap: those inferences end early
            assert "cap" in {d.stopped_by for d in mission.decisions}


def test_policies_behave_as_specified(traces):
    _, profile, calibration, outputs, energy, y = traces
    battery = 3.5 * profile.energy_mj[0] * len(y)
    static, _ = _mission(traces, "static", battery, len(y))
    assert len({d.planned for d in static.decisions}) == 1
    assert static.decisions[0].planned == profile.largest_latency_within(battery / len(y) - profile.worst_step_mj / len(y))
    adaptive, _ = _mission(traces, "adaptive", battery, len(y))
    assert len({d.planned for d in adaptive.decisions}) > 1  # recomputed from what is left
    anytime, _ = _mission(traces, "anytime", battery, len(y))
    reasons = {d.stopped_by for d in anytime.decisions}
    assert "confidence" in reasons
    assert len({d.latency for d in anytime.decisions}) > 2  # easy inputs stop early, hard ones run long
    adaptive_accuracy = adaptive.summary(y)["accuracy_over_horizon"]
    assert anytime.summary(y)["accuracy_over_horizon"] >= adaptive_accuracy


def test_hull_and_oracle():
    assert hull_accuracy([1, 2, 3], [0.5, 0.9, 0.95], 1.5) == pytest.approx(0.7)
    assert hull_accuracy([1, 2, 3], [0.5, 0.6, 0.9], 2.0) == pytest.approx(0.7)  # a mix of t=1 and t=3 beats t=2
    assert math.isnan(hull_accuracy([1, 2], [0.5, 0.9], 0.5))
    rng = np.random.default_rng(0)
    correct = (rng.random((5, 3)) < 0.6).astype(float)
    energy = np.cumsum(rng.uniform(0.5, 1.5, (5, 3)), axis=1)
    budget = energy[:, 0].sum() + 2.0
    best = 0
    for choice in itertools.product(range(3), repeat=5):
        if sum(energy[i, t] for i, t in enumerate(choice)) <= budget:
            best = max(best, sum(correct[i, t] for i, t in enumerate(choice)))
    result = oracle(correct, energy, budget)
    assert result["integer_accuracy"] <= best / 5 + 1e-12 <= result["lp_accuracy"] + 1e-12


def test_against_hull_and_oracle_on_the_test_stream(traces):
    """Budgets from E(t=1) to E(t=T): no violation, adaptive >= 98 % of the
    profile hull, anytime at or above the hull, the oracle above everything."""
    _, profile, calibration, outputs, energy, y = traces
    result = sweep(profile, outputs, energy, y, calibration, budgets=6, measures=("entropy", "margin"))
    one_sample = 1 / len(y)
    for row in result["rows"]:
        for name, p in row["policies"].items():
            assert p["violations"] == 0 and p["energy_mj"] <= row["battery_mj"]
            assert p["accuracy_over_horizon"] <= row["oracle"]["lp_accuracy"] + 1e-12
        adaptive = row["policies"]["adaptive"]
        assert adaptive["accuracy_over_horizon"] >= 0.98 * adaptive["hull_accuracy"]
        assert adaptive["utilisation"] > 0.97
        for name in ("anytime-entropy", "anytime-margin"):
            p = row["policies"][name]
            assert p["accuracy_over_horizon"] >= p["hull_accuracy"] - one_sample, (name, row["budget_per_inference_mj"])
    middle = result["rows"][2]["policies"]["anytime-entropy"]
    assert middle["gap_closed"] > 0.3  # closes a real share of the gap between best fixed t and the oracle
    assert middle["baselines"]["entropy"]["mean_energy_mj"] <= middle["mean_energy_mj"] + 1e-15


def test_lava_and_pytorch_make_the_same_decisions(profiled, no_leaks):
    graph = read_graph(profiled)
    profile = EnergyProfile.from_graph(graph)
    xc, _ = stream("calibration")
    torch_engine = TorchEngine(graph, profile)
    outputs, energy = torch_engine.run_batch(xc)
    calibration = ThresholdCalibration.measure(confidence(running_mean(outputs, axis=-2), "entropy"), energy)
    x, y = stream("test", 10)
    budget = Budget(battery_mj=3.0 * profile.energy_mj[0] * 10 + profile.worst_step_mj, inferences=10)
    for policy in ("adaptive", "anytime"):
        missions = []
        for engine in (torch_engine, LavaEngine(graph, profile)):
            chosen = make_policy(policy, profile, calibration=calibration)
            try:
                missions.append(run_mission(Controller(engine, profile, budget, chosen), list(x)))
            finally:
                if hasattr(engine, "close"):
                    engine.close()
        ours, lava = missions
        assert [(d.latency, d.prediction, d.stopped_by) for d in ours.decisions] == \
               [(d.latency, d.prediction, d.stopped_by) for d in lava.decisions]
        assert np.allclose([d.energy_mj for d in ours.decisions], [d.energy_mj for d in lava.decisions], rtol=1e-12)
        assert len({d.latency for d in ours.decisions}) > 1


def test_control_cli(profiled, tmp_path):
    result = run_cli("control", profiled, "--battery-mj", "1e-4", "--inferences", "40", "--policy", "anytime",
                     "-o", tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "mission.json").exists() and (tmp_path / "timeline.png").read_bytes()[:4] == b"\x89PNG"
    assert "violations" in result.stdout
    scenario = run_cli("control", profiled, "--scenario", ROOT / "hardware" / "sensor-node.scenario.toml",
                       "--samples", "50", "-o", tmp_path / "s")
    assert scenario.returncode == 0, scenario.stderr


@pytest.fixture(scope="module")
def no_profile(tmp_path_factory):
    path = tmp_path_factory.mktemp("np") / "plain.nir"
    graph = read_graph(ROOT / "export" / "digits-mlp-slt.nir")
    graph.metadata.pop("energy_profile_json", None)
    write_graph(graph, path)
    return path


@pytest.mark.parametrize("args, fragment", [
    (["--battery-mj", "-1", "--inferences", "5"], "positive"),
    (["--battery-mj", "0", "--inferences", "5"], "positive"),
    (["--battery-mj", "nan", "--inferences", "5"], "positive"),
    (["--inferences", "5"], "no budget"),
    (["--battery-mj", "1e-12", "--inferences", "5"], "cannot cover"),
    (["--battery-mj", "1", "--inferences", "5", "--policy", "greedy"], "unknown policy"),
    (["--scenario", "{bad}"], "unknown"),
])
def test_bad_control_input_is_one_line_and_exit_2(args, fragment, profiled, tmp_path):
    bad = tmp_path / "bad.scenario.toml"
    bad.write_text("[budget]\nbattery_mj = 1.0\ninferences = 5\nvoltage = 3\n")
    args = [a.format(bad=bad) for a in args]
    assert_one_line_error(run_cli("control", profiled, *args, "-o", tmp_path / "o"), fragment)


def test_a_graph_without_profile_says_how_to_make_one(no_profile, tmp_path):
    assert_one_line_error(run_cli("control", no_profile, "--battery-mj", "1", "--inferences", "5", "-o", tmp_path),
                          "slt-deploy profile")
