"""``slt-deploy check-loihi2``: every Lava process of the per-layer graph,
stock or ours, and whether it has a Loihi 2 implementation -- without the chip."""

from __future__ import annotations

import json
from types import SimpleNamespace

import nir
import numpy as np

from conftest import ROOT, assert_one_line_error, run_cli
from graphs import DT, residual_recurrent_graph
from slt_deploy.deploy.plan import plan_deployment
from slt_deploy.ir.nirfile import write_graph
from slt_deploy.lava.loihi2 import HOST, NEUROCORE, NONE, readiness
from slt_deploy.lava.process import build_per_layer
from slt_deploy.lava.quantise import QuantisedPlan
from test_per_neuron_decays import _conv_graph


def _with_dt(graph):
    graph.metadata = {**(graph.metadata or {}), "dt": DT}
    return graph


def _processes_built(plan) -> dict[str, int]:
    """{module.Class: count} of every process the per-layer fixed-point graph builder creates."""
    owner = SimpleNamespace()
    build_per_layer(plan, period=12, capacity=1, quantised=QuantisedPlan(plan), owner=owner)
    counts: dict[str, int] = {}
    for process in vars(owner).values():
        name = f"{type(process).__module__}.{type(process).__qualname__}"
        counts[name] = counts.get(name, 0) + 1
    return counts


def test_the_digits_cnn_is_all_stock_processes(tmp_path):
    exported = run_cli("export", ROOT / "models" / "digits-cnn-slt.pt", "-o", tmp_path / "cnn.nir")
    assert exported.returncode == 0, exported.stderr
    result = run_cli("check-loihi2", tmp_path / "cnn.nir", "-o", tmp_path / "ready.json")
    assert result.returncode == 0, result.stderr
    assert "ready for Loihi 2" in result.stderr
    report = json.loads((tmp_path / "ready.json").read_text())
    pieces = {p["piece"]: p for p in report["pieces"]}
    assert report["ready"] is True
    assert pieces["lava.proc.lif.process.LIFReset"]["count"] == 2
    assert pieces["lava.proc.lif.process.LIFReset"]["runs_on"] == NEUROCORE
    assert pieces["lava.proc.conv.process.Conv"]["count"] == 2
    assert pieces["lava.proc.io.source.RingBuffer"]["runs_on"] == HOST
    assert "PyToNxAdapter" in pieces["lava.proc.io.source.RingBuffer"]["action"]
    assert pieces["lava.proc.io.sink.RingBuffer"]["names"][-1] == "output_sink"
    # the Lava 0.10 Conv workaround is named with each conv's exponent
    shifted = [p for p in report["pieces"] if p["piece"].startswith("Conv weights")]
    assert shifted and all("weight_exp" in name for name in shifted[0]["names"])


def test_every_process_lava_runs_is_listed():
    for graph in (residual_recurrent_graph(), _conv_graph(per_neuron=True)):
        plan = plan_deployment(graph, DT)
        rows = readiness(plan, QuantisedPlan(plan))
        listed = {row.piece: len(row.names) for row in rows if row.piece.startswith(("lava.", "slt_deploy."))}
        assert listed == _processes_built(plan)


def test_custom_processes_are_named_with_the_reason_and_fail_the_check(tmp_path):
    write_graph(_with_dt(residual_recurrent_graph()), tmp_path / "recurrent.nir")
    result = run_cli("check-loihi2", tmp_path / "recurrent.nir", "-o", tmp_path / "ready.json")
    assert result.returncode == 1, result.stderr
    assert "not ready for Loihi 2" in result.stderr and "DeployedLIFReset" in result.stderr
    report = json.loads((tmp_path / "ready.json").read_text())
    custom = [p for p in report["pieces"] if p["piece"].endswith("DeployedLIFReset")]
    assert report["ready"] is False and len(custom) == 1
    assert custom[0]["stock"] is False and custom[0]["runs_on"] == NONE and custom[0]["names"] == ["lc"]
    assert "lc: a recurrent edge" in custom[0]["action"]
    host = [p for p in report["pieces"] if p["piece"].startswith("host readout")]
    assert host and host[0]["names"] == ["cli"]  # the CubaLI output is integrated on the host

    plan = plan_deployment(_conv_graph(per_neuron=False), DT)  # tau per channel: one decay per neuron
    custom = [row for row in readiness(plan, QuantisedPlan(plan)) if not row.ready]
    assert [row.names for row in custom] == [["lif", "out"]]
    assert "lif: per-neuron time constants" in custom[0].action


def test_bad_input_is_a_one_line_error(tmp_path):
    assert_one_line_error(run_cli("check-loihi2", tmp_path / "missing.nir"), "missing.nir")
    graph = residual_recurrent_graph()
    write_graph(graph, tmp_path / "no_dt.nir")
    assert_one_line_error(run_cli("check-loihi2", tmp_path / "no_dt.nir"), "dt")
    unsupported = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([3])}),
                                      "t": nir.Threshold(threshold=np.ones(3)),
                                      "output": nir.Output(output_type={"output": np.array([3])})},
                               edges=[("input", "t"), ("t", "output")], metadata={"dt": DT})
    write_graph(unsupported, tmp_path / "threshold.nir")
    assert_one_line_error(run_cli("check-loihi2", tmp_path / "threshold.nir"), "Threshold")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no_dt.nir", "threshold.nir"]
