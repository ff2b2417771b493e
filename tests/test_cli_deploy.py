"""`slt-deploy export` and `slt-deploy run` end to end, and their one-line errors."""

import nir
import numpy as np
import pytest

import graphs
from conftest import ROOT, assert_one_line_error, run_cli
from slt_deploy.ir.nirfile import read_graph

MLP = ROOT / "export" / "digits-mlp-slt.nir"


def test_export_writes_a_graph_with_the_profile(tmp_path):
    out = tmp_path / "mlp.nir"
    result = run_cli("export", ROOT / "models" / "digits-mlp-slt.pt", "-o", out)
    assert result.returncode == 0, result.stderr
    graph = read_graph(out)
    assert graph.metadata["latency_T"] == 8 and "accuracy_profile_json" in graph.metadata
    assert "profile from" in result.stderr


def test_run_on_lava_float_reports_accuracy_and_matches_torch(tmp_path):
    result = run_cli("run", MLP, "--data", "digits", "--backend", "lava-float", "--samples", "24", "-t", "5")
    assert result.returncode == 0, result.stderr
    assert "lava-float" in result.stdout and "accuracy %" in result.stdout
    torch_run = run_cli("run", MLP, "--data", "digits", "--backend", "torch", "--samples", "24", "-t", "5")
    accuracy = [line.split()[-2] for line in (result.stdout + torch_run.stdout).splitlines() if "accuracy" in line]
    assert len(accuracy) == 2 and accuracy[0] == accuracy[1]


def test_run_fixed_point_prints_the_quantisation_report():
    result = run_cli("run", MLP, "--data", "digits", "--backend", "lava-fixed", "--samples", "12")
    assert result.returncode == 0, result.stderr
    assert "fixed-point quantisation per layer" in result.stdout
    assert "l0_linear_syn" in result.stdout and "8-bit" in result.stdout


def test_foreign_graph_on_own_arrays_needs_dt_and_gives_aligned_outputs(tmp_path):
    graph_path = tmp_path / "foreign.nir"
    nir.write(graph_path, graphs.residual_recurrent_graph())  # no metadata, no dt
    x = (np.random.default_rng(0).random((3, 7, 12)) < 0.4).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert_one_line_error(run_cli("run", graph_path, "--input", tmp_path / "x.npy"), "--dt")
    outputs = {}
    for backend in ("lava-float", "torch"):
        y = tmp_path / f"y-{backend}.npy"
        result = run_cli("run", graph_path, "--input", tmp_path / "x.npy", "--output", y, "--dt", "1e-3",
                         "--backend", backend)
        assert result.returncode == 0, result.stderr
        outputs[backend] = np.load(y)
    assert outputs["torch"].shape == (3, 7, 4)
    assert np.abs(outputs["torch"] - outputs["lava-float"]).max() <= 1e-9
    assert np.abs(outputs["torch"]).max() > 0


def test_loihi2_without_hardware_is_a_clear_error():
    assert_one_line_error(run_cli("run", MLP, "--data", "digits", "--backend", "loihi2", "--samples", "2"),
                          "Loihi 2 hardware is not available")


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    data = MLP.read_bytes()
    (folder / "truncated.nir").write_bytes(data[: len(data) // 2])
    (folder / "garbage.nir").write_bytes(b"this is not HDF5" * 100)
    cycle = graphs.graph(
        {"input": nir.Input(input_type={"input": np.array([4])}),
         "a": nir.Affine(weight=np.eye(4), bias=np.zeros(4)),
         "la": graphs.lif(4), "lb": graphs.lif(4),
         "output": nir.Output(output_type={"output": np.array([4])})},
        [("input", "a"), ("a", "la"), ("la", "lb"), ("lb", "la"), ("lb", "output")])
    nir.write(folder / "cycle.nir", cycle)
    mismatch = graphs.graph(
        {"input": nir.Input(input_type={"input": np.array([4])}),
         "a": nir.Affine(weight=np.ones((3, 5)), bias=np.zeros(3)),
         "la": graphs.lif(3), "output": nir.Output(output_type={"output": np.array([3])})},
        [("input", "a"), ("a", "la"), ("la", "output")])
    nir.write(folder / "mismatch.nir", mismatch)
    np.save(folder / "x_wrong.npy", np.zeros((2, 8, 5)))
    np.save(folder / "x_objects.npy", np.array([[{"a": 1}]], dtype=object), allow_pickle=True)
    return folder


@pytest.mark.parametrize("args, fragment", [
    (["run", "{bad}/truncated.nir", "--data", "digits"], "not a valid NIR graph"),
    (["run", "{bad}/garbage.nir", "--data", "digits"], "not a NIR file"),
    (["run", "{bad}/missing.nir", "--data", "digits"], "NIR file not found"),
    (["run", "{bad}/cycle.nir", "--data", "digits", "--dt", "1e-3", "-t", "2"], "no synaptic layer"),
    (["run", "{bad}/mismatch.nir", "--data", "digits", "--dt", "1e-3", "-t", "2"], "does not take input"),
    (["run", "{mlp}", "--data", "digits", "-t", "9"], "exceeds the maximum latency T=8"),
    (["run", "{mlp}", "--data", "digits", "-t", "0"], "latency must be >= 1"),
    (["run", "{mlp}", "--data", "digits", "--backend", "gpu"], "unknown backend"),
    (["run", "{mlp}"], "exactly one of --data"),
    (["run", "{mlp}", "--input", "{bad}/x_wrong.npy"], "input must have shape"),
    (["run", "{mlp}", "--input", "{bad}/x_objects.npy"], "not a plain .npy array"),
    (["run", "{mlp}", "--data", "digits", "--dt", "-1"], "--dt must be a positive"),
    (["export", "{bad}/missing.pt", "-o", "{bad}/x.nir"], "checkpoint not found"),
])
def test_bad_input_is_one_line_and_exit_2(args, fragment, bad_files):
    args = [a.format(bad=bad_files, mlp=MLP) for a in args]
    assert_one_line_error(run_cli(*args), fragment)
    assert not (bad_files / "x.nir").exists()
