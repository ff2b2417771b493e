"""Data-parallel SLT training: 2 CPU processes (gloo) equal single-process
training with the same global batch and seed, up to float summation order."""

import torch

from conftest import run_cli
from slt_deploy.core.parallel import Context
from slt_deploy.training.slt import new_run, train, with_settings
from slt_deploy.models.zoo import load_recipe


def test_two_processes_train_like_one(tmp_path):
    common = ["--model", "digits-cnn", "--epochs", "2", "--batch-size", "128", "--seed", "3"]
    single = run_cli("train", *common, "-o", tmp_path / "single.pt")
    assert single.returncode == 0, single.stderr
    double = run_cli("train", *common, "--nproc", "2", "-o", tmp_path / "two.pt")
    assert double.returncode == 0, double.stderr
    assert "2 processes" in double.stderr
    a = torch.load(tmp_path / "single.pt", weights_only=True)
    b = torch.load(tmp_path / "two.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    # the same SLT latency on every rank at every step: the sampled latencies match single-process training
    assert [h["mean_latency"] for h in a["history"]] == [h["mean_latency"] for h in b["history"]]
    for h_a, h_b in zip(a["history"], b["history"]):
        assert abs(h_a["loss"] - h_b["loss"]) <= 1e-5 * abs(h_a["loss"])
    for key, value in a["model"].items():
        if value.is_floating_point():
            difference = (value - b["model"][key]).abs().max().item()
            assert difference <= 1e-3, (key, difference)  # Adam amplifies float32 summation-order noise
            if key.endswith("running_mean"):
                assert difference <= 1e-5, key  # global-batch statistics, as in one process
    # the optimizer state travelled too: resuming the 2-process checkpoint works in one process
    resumed = run_cli("eval", tmp_path / "two.pt", "-o", tmp_path / "two.json")
    assert resumed.returncode == 0, resumed.stderr
    assert not list(tmp_path.glob(".*.tmp"))


class NotMain(Context):
    @property
    def is_main(self) -> bool:
        return False


def test_only_rank_zero_writes_checkpoints(tmp_path):
    recipe = with_settings(load_recipe("digits-mlp"), epochs=1)
    run = new_run(recipe)
    run.context = NotMain()  # what every rank but 0 sees (no process group needed for this check)
    train(run, tmp_path / "rank1.pt")
    assert run.epoch == 1 and not (tmp_path / "rank1.pt").exists()
    run0 = new_run(recipe)
    train(run0, tmp_path / "rank0.pt")
    assert (tmp_path / "rank0.pt").exists()


def test_bad_distributed_options(tmp_path):
    from conftest import assert_one_line_error

    assert_one_line_error(run_cli("train", "--nproc", "0", "-o", tmp_path / "x.pt"), "--nproc")
    assert_one_line_error(run_cli("train", "--device", "tpu", "-o", tmp_path / "x.pt"), "unknown device")
    assert not (tmp_path / "x.pt").exists()
