"""Evaluation sharded over processes: ``profile`` and ``control --evaluate``
with ``--nproc 2`` or under ``torchrun`` give exactly what one process gives,
and leave no process behind."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, assert_one_line_error, live_processes, run_cli
from slt_deploy.core.errors import UserError
from slt_deploy.core.parallel import free_port, map_shards

MLP = ROOT / "models" / "digits-mlp-slt.pt"


def cli_in_own_session(*args, launcher=("-m", "slt_deploy.cli")) -> subprocess.CompletedProcess:
    """Run a command in a new OS session; fail if any process of that session outlives it."""
    process = subprocess.Popen([sys.executable, *launcher, *map(str, args)], cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    stdout, stderr = process.communicate(timeout=900)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        left = {pid for pid, (_, session) in live_processes().items() if session == process.pid}
        if not left:
            break
        time.sleep(0.2)
    assert not left, f"processes of the sharded run left behind: {sorted(left)}"
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def profile(tmp_path, name, *extra, launcher=("-m", "slt_deploy.cli")):
    result = cli_in_own_session("profile", MLP, "--samples", "9", "--noise", "dropout:0.2",
                                "-o", tmp_path / f"{name}.json", "--nir-out", tmp_path / f"{name}.nir", *extra,
                                launcher=launcher)
    assert result.returncode == 0, result.stderr
    return json.loads((tmp_path / f"{name}.json").read_text())


@pytest.mark.parametrize("backend", ["lava-fused-fixed", "lava-float"])
def test_profile_on_two_processes_equals_one(tmp_path, backend):
    one = profile(tmp_path, "one", "--backend", backend)
    two = profile(tmp_path, "two", "--backend", backend, "--nproc", "2")  # shards of 4 and 5 samples
    assert one == two
    assert one["samples"] == 9 and "dropout:0.2" in one["noise"]
    assert not list(tmp_path.glob(".*.tmp"))


def test_profile_under_torchrun_equals_one_process(tmp_path):
    one = profile(tmp_path, "one")
    torchrun = ("-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(free_port()),
                "-m", "slt_deploy.cli")
    two = profile(tmp_path, "ranks", launcher=torchrun)
    assert one == two
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["one.json", "one.nir", "ranks.json", "ranks.nir"]  # rank 0 alone writes


def test_control_evaluate_on_two_processes_equals_one(tmp_path):
    profile(tmp_path, "profiled")
    for name, extra in (("one", ()), ("two", ("--nproc", "2"))):
        result = cli_in_own_session("control", tmp_path / "profiled.nir", "--evaluate", "--samples", "11",
                                    "--budgets", "3", "-o", tmp_path / name, *extra)
        assert result.returncode == 0, result.stderr
    one = json.loads((tmp_path / "one" / "evaluation.json").read_text())
    two = json.loads((tmp_path / "two" / "evaluation.json").read_text())
    assert one == two and one["stream"]["samples"] == 11


def test_bad_process_counts_are_one_line_errors(tmp_path):
    assert_one_line_error(run_cli("profile", MLP, "--nproc", "0", "-o", tmp_path / "p.json"), "--nproc must be >= 1")
    assert_one_line_error(run_cli("profile", MLP, "--samples", "2", "--nproc", "3", "-o", tmp_path / "p.json",
                                  "--nir-out", tmp_path / "p.nir"), "3 processes for 2 samples")
    assert not list(tmp_path.iterdir())


def shard_sum(shard: np.ndarray, offset: int, refused: int | None = None) -> dict[str, np.ndarray]:
    if refused in shard:
        raise UserError(f"sample {refused} refused")
    return {"values": shard + offset}


def test_map_shards_keeps_sample_order_and_reports_a_shard_error():
    samples = np.arange(7)
    pieces = map_shards(shard_sum, samples, 2, 100)
    assert [len(p["values"]) for p in pieces] == [4, 3]  # contiguous, differing by at most one sample
    assert np.concatenate([p["values"] for p in pieces]).tolist() == list(range(100, 107))
    with pytest.raises(UserError, match="sample 5 refused"):
        map_shards(shard_sum, samples, 2, 0, 5)  # raised in the second process, reported here
