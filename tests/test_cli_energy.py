"""`slt-deploy profile` and `slt-deploy report` end to end."""

import json
import shutil

from conftest import ROOT, assert_one_line_error, run_cli
from slt_deploy.ir.nirfile import metadata_json, read_graph


def test_profile_writes_json_and_nir_metadata_then_report_compares(tmp_path):
    slt, fixed = tmp_path / "slt.nir", tmp_path / "fixed.nir"
    shutil.copy(ROOT / "export" / "digits-cnn-slt.nir", slt)
    shutil.copy(ROOT / "export" / "digits-cnn-fixed.nir", fixed)
    result = run_cli("profile", slt, "--samples", "60", "--noise", "gaussian:0.2", "--noise", "dropout:0.3",
                     "--noise", "jitter:1", "--hardware", "loihi2018")
    assert result.returncode == 0, result.stderr
    profile = json.loads((tmp_path / "slt.profile.json").read_text())
    assert profile["latency"] == list(range(1, 9)) and len(profile["accuracy"]) == 8
    assert profile["hardware"]["name"] == "loihi2018" and profile["hardware"]["evidence"] == "simulated minimum"
    assert set(profile["noise"]) == {"gaussian:0.2", "dropout:0.3", "jitter:1"}
    assert profile["sop"]["mean"][0] < profile["sop"]["mean"][-1]
    assert profile["worst_case_step"]["sop"] > profile["sop"]["mean"][0]
    stored = metadata_json(read_graph(slt), "energy_profile_json")
    assert stored["energy_mj"] == profile["energy_mj"]  # the controller reads it from the graph
    assert "simulated minimum" in result.stdout
    assert run_cli("profile", fixed, "--samples", "60", "--hardware", "loihi2018").returncode == 0
    out = tmp_path / "report"
    result = run_cli("report", tmp_path / "slt.profile.json", tmp_path / "fixed.profile.json",
                     "--labels", "SLT-TET,TET", "-o", out)
    assert result.returncode == 0, result.stderr
    text = (out / "report.md").read_text()
    assert "SLT-TET acc %" in text and "TET mJ" in text and "Davies et al. 2018" in text
    for name in ("energy_vs_latency", "accuracy_vs_energy", "sop_per_layer", "accuracy_under_noise"):
        assert (out / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_profile_of_a_checkpoint_exports_the_graph_with_the_profile(tmp_path):
    checkpoint = tmp_path / "mlp.pt"
    shutil.copy(ROOT / "models" / "digits-mlp-slt.pt", checkpoint)
    result = run_cli("profile", checkpoint, "--samples", "30")
    assert result.returncode == 0, result.stderr
    graph = read_graph(tmp_path / "mlp.nir")
    assert metadata_json(graph, "energy_profile_json")["samples"] == 30


def test_report_needs_profiles(tmp_path):
    (tmp_path / "x.json").write_text("{}")
    assert_one_line_error(run_cli("report", tmp_path / "x.json", "-o", tmp_path / "r"), "is not a profile")
    assert_one_line_error(run_cli("report", tmp_path / "missing.json"), "not found")
