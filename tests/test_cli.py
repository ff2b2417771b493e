"""The CLI end to end on a tiny run, and its one-line errors for bad input."""

import json

import pytest
import torch

from conftest import assert_one_line_error, run_cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    checkpoint = folder / "mlp.pt"
    result = run_cli("train", "--model", "digits-mlp", "--epochs", "2", "--seed", "1", "-o", checkpoint)
    assert result.returncode == 0, result.stderr
    return checkpoint


def test_train_writes_a_complete_checkpoint(trained):
    data = torch.load(trained, weights_only=True)
    assert data["epoch"] == 2 and len(data["history"]) == 2
    assert data["recipe"]["train"]["method"] == "slt" and data["recipe"]["train"]["seed"] == 1
    assert not list(trained.parent.glob(".*.tmp"))


def test_eval_prints_table_and_writes_json_and_png(trained, tmp_path):
    out = tmp_path / "profile.json"
    result = run_cli("eval", trained, "-o", out)
    assert result.returncode == 0, result.stderr
    profile = json.loads(out.read_text())
    assert profile["latency"] == list(range(1, 9))
    assert len(profile["accuracy"]) == 8 and all(0.0 <= a <= 1.0 for a in profile["accuracy"])
    assert profile["split"] == "test" and profile["samples"] == 360
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    for t in range(1, 9):
        assert f"{100 * profile['accuracy'][t - 1]:.2f}" in result.stdout


def test_resume_rejects_changed_settings(trained):
    assert_one_line_error(run_cli("train", "--resume", trained, "--latency", "4"), "--resume")


def test_info_reports_versions_and_lava():
    result = run_cli("info")
    assert result.returncode == 0, result.stderr
    for name in ("torch", "norse", "nir", "lava-nc", "lava-dl", "tonic"):
        assert name in result.stdout
    assert "lava imports: yes" in result.stdout
    assert "loihi 2:" in result.stdout


def test_corrupt_and_foreign_checkpoints(tmp_path, trained):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(trained.read_bytes()[:200])
    assert_one_line_error(run_cli("eval", corrupt), "corrupt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    assert_one_line_error(run_cli("eval", foreign), "not an slt-deploy checkpoint")
    # a checkpoint whose weights belong to another architecture than its recipe says
    data = torch.load(trained, weights_only=True)
    data["recipe"]["layers"] = [{"type": "linear", "features": 32}]
    other = tmp_path / "other.pt"
    torch.save(data, other)
    assert_one_line_error(run_cli("eval", other), "does not fit model")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["train", "--model", "nope", "--epochs", "1"], "unknown model"),
        (["train", "--data", "imagenet", "--epochs", "1"], "unknown dataset"),
        (["train", "--latency", "0"], "latency T must be >= 1"),
        (["train", "--method", "sometimes"], "unknown method"),
        (["train", "--encoding", "events", "--epochs", "1"], "does not apply"),
        (["train", "--resume", "missing.pt"], "checkpoint not found"),
        (["eval", "missing.pt"], "checkpoint not found"),
        (["train", "--epochs", "many"], "--epochs"),
        (["nosuchcommand"], "nosuchcommand"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, fragment, tmp_path):
    out = tmp_path / "out.pt"
    result = run_cli(*args, "-o", out) if args[0] == "train" else run_cli(*args)
    assert_one_line_error(result, fragment)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pt"
    torch.save({"format": "slt-deploy/checkpoint-v1", "recipe": Exploit(), "model": {}}, evil)
    assert_one_line_error(run_cli("eval", evil), "refused")
    assert not marker.exists()
