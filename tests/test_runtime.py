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
    batch_traces, Budget, Controller, EnergyProfile, LavaEngine, PrecomputedEngine, TorchEngine, make_policy,
    run_mission)
from slt_deploy.runtime.evaluation import calibrate, hull_accuracy, oracle, sweep


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
    """What the policies know (the calibration split's profile and
    thresholds) and the test stream's traces, on the PyTorch reference."""
    graph = read_graph(profiled)
    calibration = calibrate(graph, EnergyProfile.from_graph(graph), *stream("calibration"), "torch")
    x, y = stream("test")
    return graph, calibration.profile, calibration, batch_traces(graph, calibration.profile, x, "torch"), y


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


def test_budget_below_one_step_is_refused_before_running_and_one_above_is_not(traces):
    graph, profile, calibration, stream_traces, y = traces
    engine = PrecomputedEngine(stream_traces)
    with pytest.raises(UserError, match="cannot cover"):
        Controller(engine, profile, Budget(profile.energy_mj[0] * 50, 100), make_policy("adaptive", profile))
    with pytest.raises(UserError, match="cannot be met even at t = 1"):
        Controller(engine, profile, Budget(per_inference_mj=0.999 * profile.energy_mj[0]), make_policy("static", profile))
    for reserve in ("exact", "bound"):  # a cap above E(t=1) is never refused; what does not fit is not run
        cap = 1.001 * profile.energy_mj[0]
        mission = run_mission(Controller(engine, profile, Budget(per_inference_mj=cap), make_policy("fixed", profile),
                                         reserve), range(len(y)))
        assert len(mission.decisions) == len(y) and max(d.energy_mj for d in mission.decisions) <= cap
        skipped = [d for d in mission.decisions if d.latency == 0]
        assert all(d.prediction == -1 and d.stopped_by == "cap" and d.energy_mj == 0 for d in skipped)


def _mission(traces, policy, battery=None, inferences=None, cap=None, measure="entropy", reserve="exact"):
    graph, profile, calibration, stream_traces, y = traces
    budget = Budget(battery, inferences, cap)
    chosen = make_policy(policy, profile, measure=measure, calibration=calibration.thresholds[measure],
                         latency=profile.T if policy == "fixed" else None)
    controller = Controller(PrecomputedEngine(stream_traces), profile, budget, chosen, reserve)
    return run_mission(controller, range(len(y))), profile


@pytest.mark.parametrize("policy, measure", [("fixed", "entropy"), ("static", "entropy"), ("adaptive", "entropy"),
                                             ("anytime", "entropy"), ("anytime", "margin")])
@pytest.mark.parametrize("reserve", ["exact", "bound"])
def test_energy_spent_never_exceeds_the_battery(traces, policy, measure, reserve):
    _, profile, _, _, y = traces
    for share in (1.0, 1.3, 2.0, 4.0, 8.5):  # per-inference share, in units of E(t=1)
        battery = share * profile.energy_mj[0] * len(y)
        mission, _ = _mission(traces, policy, battery, len(y), measure=measure, reserve=reserve)
        spent = sum(d.energy_mj for d in mission.decisions)
        assert spent <= battery
        for before, decision in zip([battery] + [d.remaining_mj for d in mission.decisions], mission.decisions):
            assert decision.remaining_mj == pytest.approx(before - decision.energy_mj)
            assert decision.remaining_mj >= 0
        if policy == "fixed" and share < 8:  # fixed t = T overspends the share: the controller stops it early
            assert mission.battery_spent and "battery spent" in mission.battery_spent
            assert any(d.stopped_by == "battery" for d in mission.decisions) or len(mission.decisions) < len(y)


@pytest.mark.parametrize("reserve", ["exact", "bound"])
def test_per_inference_cap_is_never_exceeded(traces, reserve):
    _, profile, _, _, y = traces
    cap = profile.energy_mj[4]
    for policy in ("fixed", "static", "adaptive", "anytime"):
        mission, _ = _mission(traces, policy, cap=cap, reserve=reserve)
        assert len(mission.decisions) == len(y)
        assert max(d.energy_mj for d in mission.decisions) <= cap
        if policy == "fixed":  # T steps do not always fit under the cap: those inferences end early
            assert "cap" in {d.stopped_by for d in mission.decisions}


def test_a_cap_of_e_k_buys_about_k_steps(traces):
    """The exact reserve holds back nothing a step does not spend: under a cap
    of E(t=k) (the stream's) it runs k - 1 steps or more on average, and an
    inference stops only when its next step would not fit: what is left is
    less than one step (about 1/k of the cap). The bound reserve, which
    cannot look ahead, holds back a step with every neuron firing and so
    runs fewer steps."""
    _, profile, _, stream_traces, y = traces
    from slt_deploy.runtime.evaluation import cap_tightness
    for entry in cap_tightness(profile, stream_traces, y)[1:]:
        k, exact, bound = entry["k"], entry["exact"], entry["bound"]
        assert exact["violations"] == bound["violations"] == 0
        assert exact["mean_latency"] >= k - 1, k
        assert exact["cap_used"] >= 0.85 if k >= 5 else exact["cap_used"] > 0.6, k
        assert bound["mean_latency"] <= exact["mean_latency"]
    energy = stream_traces.energy_mj
    for k in (2, 5, 8):  # inference by inference: what is left unused is less than the step that did not fit
        cap = profile.energy_mj[k - 1]
        mission, _ = _mission(traces, "fixed", cap=cap)
        for decision in mission.decisions:
            if decision.stopped_by == "cap":
                assert decision.energy_mj + energy[decision.index, decision.latency] > cap >= decision.energy_mj
            else:
                assert decision.latency == profile.T and decision.energy_mj <= cap


def test_policies_behave_as_specified(traces):
    _, profile, calibration, _, y = traces
    battery = 3.5 * profile.energy_mj[0] * len(y)
    static, _ = _mission(traces, "static", battery, len(y))
    assert len({d.planned for d in static.decisions}) == 1
    assert static.decisions[0].planned == profile.best_latency_within(battery / len(y))
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
    """Budgets from E(t=1) to E(t=T): no violation, adaptive >= 99 % of the
    profile hull, anytime at or above the hull, the oracle above everything;
    the best fixed latency is the most accurate one that fits."""
    _, profile, calibration, stream_traces, y = traces
    result = sweep(calibration, stream_traces, y, budgets=6, measures=("entropy", "margin"))
    stream = result["stream"]
    one_sample = 1 / len(y)
    for row in result["rows"]:
        for name, p in row["policies"].items():
            assert p["violations"] == 0 and p["energy_mj"] <= row["battery_mj"]
            assert p["accuracy_over_horizon"] <= row["oracle"]["lp_accuracy"] + 1e-12
        fits = [t for t in profile.latency if stream["energy_mj"][t - 1] <= row["budget_per_inference_mj"]]
        assert row["best_fixed"]["accuracy"] == max(stream["accuracy"][t - 1] for t in fits)
        adaptive = row["policies"]["adaptive"]
        assert adaptive["of_hull"] >= 0.99
        assert adaptive["utilisation"] > 0.97
        for name in ("anytime-entropy", "anytime-margin"):
            p = row["policies"][name]
            assert p["accuracy_over_horizon"] >= p["hull_accuracy"] - one_sample, (name, row["budget_per_inference_mj"])
    middle = result["rows"][2]["policies"]["anytime-entropy"]
    assert middle["gap_closed"] > 0.3  # closes a real share of the gap between best fixed t and the oracle
    assert middle["baselines"]["entropy"]["mean_energy_mj"] <= middle["mean_energy_mj"] + 1e-15


@pytest.mark.parametrize("reserve", ["exact", "bound"])
def test_lava_and_pytorch_make_the_same_decisions(traces, no_leaks, reserve):
    graph, profile, calibration, _, _ = traces
    x, y = stream("test", 10)
    budget = Budget(battery_mj=3.0 * profile.energy_mj[0] * 10, inferences=10, per_inference_mj=profile.energy_mj[4])
    for policy in ("adaptive", "anytime"):
        missions = []
        for engine in (TorchEngine(graph, profile), LavaEngine(graph, profile)):
            chosen = make_policy(policy, profile, calibration=calibration.thresholds["entropy"])
            try:
                missions.append(run_mission(Controller(engine, profile, budget, chosen, reserve), list(x)))
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


def _adversarial_inputs(shape, steps=8, burst=5):
    """Inputs a bound must survive [N, T, *shape]: every pixel at its maximum
    at every step (one spike, or 1.0 for an analog input), bursts of
    ``burst`` events per pixel and step, and a quiet stream that suddenly
    bursts."""
    full = np.ones((1, steps, *shape))
    rng = np.random.default_rng(0)
    sudden = np.zeros((1, steps, *shape))
    sudden[0, steps // 2:] = rng.integers(0, burst + 1, (steps - steps // 2, *shape))
    return np.concatenate([full, burst * full, sudden])


@pytest.mark.parametrize("source, input_kind", [
    ("digits-mlp-slt", None), ("digits-cnn-slt", None), ("conv", "spikes"), ("conv", "analog"),
    ("residual_recurrent", "spikes"), ("residual_recurrent", "analog")])
def test_the_step_bound_is_sound_on_adversarial_inputs(source, input_kind):
    """The bound reserve prices a step before it runs: it must hold for any
    input -- every pixel at the declared maximum, bursts of several events
    per pixel and step -- on every backend's counts (graded event counts are
    counted as they are; an analog input's MACs whatever its values)."""
    import graphs
    from slt_deploy.energy.counts import count_stream
    from slt_deploy.runtime.controller import counts_energy, step_bound_mj
    from slt_deploy.simulation import deployment_plan
    if source.startswith("digits"):
        graph, dt = read_graph(ROOT / "export" / f"{source}.nir"), None
    else:
        graph, dt = getattr(graphs, f"{source}_graph")(), graphs.DT
    plan = deployment_plan(graph, dt, input_kind)
    x = _adversarial_inputs(tuple(plan.populations[plan.input_name].shape))
    if plan.input_kind == "analog":
        x = np.minimum(x, 1.0) * np.linspace(0.2, 1.0, x.shape[1])[None, :, None].reshape(1, -1, *[1] * (x.ndim - 2))
    hardware = load_hardware("horowitz2014")
    for mac_once in (True, False):
        outputs, counts = count_stream(graph, "torch", x, dt=dt, input_kind=input_kind, mac_once=mac_once)
        energy, bound = counts_energy(hardware, counts), step_bound_mj(hardware, counts, plan)
        assert np.all(energy <= bound * (1 + 1e-12)), (source, np.argwhere(energy > bound))
        assert any(counts.firing[name].max() > 0.2 for name in counts.firing)  # the inputs drive the network hard
    equal = np.isclose(energy, bound, rtol=1e-12)
    assert not equal.all()  # the bound is an upper bound of hidden activity, not the activity


def test_the_horizon_stops_where_accuracy_falls_for_sure():
    """A profile measured on a stream whose accuracy peaks at t = 3 and then
    falls clearly: the horizon is the last latency tied with the best, and
    neither adaptive nor anytime plans past it; where accuracy only grows
    the horizon is T."""
    base = EnergyProfile([1, 2, 3, 4, 5, 6], [1.0] * 6, [0.5] * 6, load_hardware("qiao2015"), True)
    n = 400
    rates = np.array([0.80, 0.86, 0.90, 0.90, 0.80, 0.70])  # per latency: t = 3 and 4 tie, then it falls
    u = (np.arange(n)[:, None] + 0.5) / n  # sample k is right at t when k / n < rate(t)
    falling = base.measured(np.ones((n, 6)), (u < rates[None, :]).astype(float))
    assert falling.accuracy == pytest.approx(rates) and falling.horizon == 4
    assert falling.best_latency_within(100.0) == 4
    rising = base.measured(np.ones((n, 6)), (u < np.linspace(0.7, 0.95, 6)[None, :]).astype(float))
    assert rising.horizon == 6
    conf = np.tile(np.linspace(0.1, 0.6, 6), (n, 1))
    from slt_deploy.runtime.controller import ThresholdCalibration
    anytime = make_policy("anytime", falling, calibration=ThresholdCalibration.measure(conf[:, :4], np.ones((n, 4))))
    from slt_deploy.runtime.controller import MissionState
    assert anytime.plan(falling, Budget(per_inference_mj=100.0), MissionState()) == 4


def test_burst_noise_multiplies_every_event_at_its_own_step():
    from slt_deploy.energy.profile import noisy_events, parse_noise
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 2, (3, 10, 2, 4, 4)).astype(np.float32)
    burst = noisy_events(frames, parse_noise("burst:3"))
    assert np.array_equal(burst, 3 * frames) and burst.dtype == frames.dtype
    assert np.array_equal(noisy_events(frames, parse_noise("burst:1")), frames)
    for text in ("burst:1.5", "burst:0"):
        with pytest.raises(UserError, match="out of range"):
            parse_noise(text)


def test_a_drifting_stream_is_clean_noisy_clean(profiled):
    from slt_deploy.energy.profile import graph_stream, parse_noise
    from slt_deploy.report import stream_of
    graph = read_graph(profiled)
    clean, labels = graph_stream(graph, "digits", "test", 30)[:2]
    drifted, same = stream_of(graph, "digits", "test", 30, parse_noise("dropout:0.5"), drift=True)
    assert np.array_equal(labels, same)
    assert np.array_equal(drifted[:10], clean[:10]) and np.array_equal(drifted[20:], clean[20:])
    assert drifted[10:20].sum() < 0.7 * clean[10:20].sum()


def test_policies_never_read_the_stored_profile_of_the_judged_split(traces, profiled):
    """The stored profile (made on the test split) only prices operations:
    with its energies and accuracies scrambled, calibration and every
    decision of the sweep are the same."""
    graph, profile, calibration, stream_traces, y = traces
    stored = EnergyProfile.from_graph(graph)
    scrambled = EnergyProfile(stored.latency, [1e3 * e for e in reversed(stored.energy_mj)],
                              list(reversed(stored.accuracy)), stored.hardware, stored.mac_once, horizon=1)
    again = calibrate(graph, scrambled, *stream("calibration"), "torch")
    assert again.profile == calibration.profile
    import json
    first = json.dumps(sweep(calibration, stream_traces, y, budgets=3))  # (NaN != NaN: compare the text)
    assert json.dumps(sweep(again, stream_traces, y, budgets=3)) == first


def test_the_evaluate_table_is_whole_when_piped(profiled, tmp_path):
    result = run_cli("control", profiled, "--evaluate", "--budgets", "3", "--samples", "40", "--backend", "torch",
                     "--noise", "dropout:0.2", "--drift", "-o", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout and "clean -> dropout:0.2 -> clean" in result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "e-0" in line]
    assert len(rows) == 3 and all(len(row.strip("|").split("|")) == 13 for row in rows)
