"""Quantiser quality, measured: ``profile --compare-float`` runs the float
network a fixed-point backend quantises beside it, and each layer's input
deviation (teacher-forced with the float spikes) is reported in units of its
threshold."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import ROOT, assert_one_line_error, run_cli
from graphs import DT, conv_graph, residual_recurrent_graph
from slt_deploy.deploy.plan import plan_deployment
from slt_deploy.lava.quantise import QuantisedPlan
from slt_deploy.simulation import simulate

MLP = ROOT / "models" / "digits-mlp-slt.pt"


def _spike_input(plan, samples=3, steps=6, seed=0):
    shape = plan.populations[plan.input_name].shape
    return (np.random.default_rng(seed).random((samples, steps, *shape)) < 0.4).astype(np.float64)


@pytest.mark.parametrize("make", [residual_recurrent_graph, conv_graph])
def test_input_deviation_is_zero_for_exact_integers_and_measures_one_integer_step(make):
    plan = plan_deployment(make(), DT)
    x = _spike_input(plan)
    spikes = simulate(make(), "torch", x, dt=DT, record_spikes=True).spikes
    quantised = QuantisedPlan(plan)
    measured = quantised.input_deviation(x, spikes)
    assert set(measured) == {p.target for p in plan.projections}
    assert all(d["max"] > 0 and 0 < d["mean"] <= d["max"] for d in measured.values())  # 8-bit weights are not exact
    # integers that are exactly the float weights and biases: nothing moves
    for projection in plan.projections:
        q = quantised.of_projection(projection)
        q.effective = np.asarray(projection.weight, dtype=np.float64) * q.scale
    for name, q in quantised.populations.items():
        q.bias_mant = plan.populations[name].bias.ravel() * q.scale
        q.bias_exp = np.zeros_like(q.bias_mant)
    assert all(d["max"] == 0 for d in quantised.input_deviation(x, spikes).values())
    # one integer more on one synapse of a spiking population: that neuron moves by 1/scale per presynaptic spike
    projection = next(p for p in plan.projections if p.kind == "dense" and p.target in quantised.populations
                      and not plan.populations[p.source].is_input)
    q = quantised.of_projection(projection)
    activity = spikes[projection.source].reshape(x.shape[0], x.shape[1], -1)
    source = int(np.argmax(activity.sum((0, 1))))
    q.effective[0, source] += 1
    target = plan.populations[projection.target]
    moved = quantised.input_deviation(x, spikes)[projection.target]
    assert moved["unit"] == "threshold"
    assert moved["max"] == pytest.approx(1 / q.scale / target.vth)
    assert moved["mean"] == pytest.approx(activity[:, :, source].sum() / q.scale / target.vth
                                          / (x.shape[0] * x.shape[1] * target.size))


def test_profile_compare_float_prints_and_stores_both_networks(tmp_path):
    common = ["--samples", "30", "--nir-out", tmp_path / "p.nir"]
    result = run_cli("profile", MLP, "--backend", "lava-fused-fixed", "--compare-float", "-o", tmp_path / "fixed.json",
                     *common)
    assert result.returncode == 0, result.stderr
    assert "quantisation: each layer's input, fixed vs float" in result.stdout  # the second table
    fixed = json.loads((tmp_path / "fixed.json").read_text())
    floating = run_cli("profile", MLP, "--backend", "lava-fused", "-o", tmp_path / "float.json", *common)
    assert floating.returncode == 0, floating.stderr
    alone = json.loads((tmp_path / "float.json").read_text())
    assert fixed["float"]["backend"] == "lava-fused"
    assert fixed["float"]["accuracy"] == alone["accuracy"]  # the float twin, as its own profile gives it
    assert fixed["float"]["sop_mean"] == alone["sop"]["mean"]
    deviation = fixed["quantisation"]["input_deviation"]
    assert set(deviation) == {"l0_linear_lif", "l1_linear_lif", "output"}
    assert deviation["l0_linear_lif"]["unit"] == "threshold" and deviation["output"]["unit"] == "output"
    assert all(0 < d["mean"] <= d["max"] < 0.5 for d in deviation.values())
    assert fixed["quantisation"]["deviation_samples"] == 8


def test_compare_float_needs_a_fixed_point_backend(tmp_path):
    assert_one_line_error(run_cli("profile", MLP, "--compare-float", "-o", tmp_path / "p.json"),
                          "--compare-float compares a fixed-point backend")
    assert not list(tmp_path.iterdir())
