"""``slt-deploy inspect``: what a graph holds and what it becomes on Lava."""

from __future__ import annotations

import json

import nir
import numpy as np

from conftest import FIXTURES, assert_one_line_error, run_cli
from graphs import graph
from slt_deploy.deploy.plan import plan_for_graph
from slt_deploy.deploy.synapses import fanout
from slt_deploy.ir.netxfile import read_netx
from slt_deploy.ir.nirfile import write_graph

TUTORIAL = FIXTURES / "lava-dl" / "netx_mnist.net"


def _inspect(*args):
    result = run_cli("inspect", *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_inspect_a_netx_network_names_populations_projections_and_sop():
    description = _inspect(TUTORIAL)
    rows = {row["node"]: row for row in description["nodes"]}
    assert rows["L0_neuron"]["kind"] == "CubaLIF" and rows["L0_neuron"]["shape"] == [128]
    assert rows["L0_neuron"]["lava"].startswith("population (depth 1)")
    assert rows["L1_dense"]["lava"].startswith("dense projection L0_neuron -> L1_neuron")
    assert abs(rows["L0_neuron"]["dt_over_tau"] - 410 / 4096) < 1e-12  # iDecay = vDecay = 410
    plan = plan_for_graph(read_netx(TUTORIAL))
    assert description["sop_per_step_all_firing"] == sum(int(fanout(p, True).sum()) for p in plan.projections)
    assert description["refused"] is None and description["unstable_dt"] == {}
    assert description["fixed_point_integers"] is True


def _lif(shape, tau, v_reset=0.0):
    return nir.LIF(tau=np.asarray(tau, dtype=np.float64) * np.ones(shape), r=np.ones(shape), v_leak=np.zeros(shape),
                   v_threshold=np.ones(shape), v_reset=np.full(shape, v_reset))


def test_inspect_says_what_is_refused_and_where_dt_is_unstable(tmp_path):
    nodes = {"input": nir.Input(input_type={"input": np.array([3])}), "a": nir.Linear(weight=np.eye(3)),
             "lif": _lif(3, [1e-3, 2e-3, 5e-4], v_reset=0.2), "output": nir.Output(output_type={"output": np.array([3])})}
    path = tmp_path / "g.nir"
    write_graph(graph(nodes, [("input", "a"), ("a", "lif"), ("lif", "output")]), path)
    description = _inspect(path, "--dt", "1e-3")
    assert "node 'lif' (LIF) resets to v_reset != 0" in description["refused"]
    assert description["unstable_dt"] == {"lif": 2.0}
    text = run_cli("inspect", path, "--dt", "1e-3")
    assert text.returncode == 0 and "UNSTABLE (dt/tau > 1): lif" in text.stdout and "refused on Lava" in text.stdout


def test_inspect_of_a_corrupt_file_is_one_line(tmp_path):
    path = tmp_path / "broken.net"
    path.write_bytes(TUTORIAL.read_bytes()[:5000])
    assert_one_line_error(run_cli("inspect", path), "broken.net")
