"""Faults and soak: a training run killed mid-epoch resumes bit for bit;
twenty failing or interrupted Lava runs leave no OS process, thread or
/dev/shm segment behind; 10,000 controller inferences on the fused Lava
model keep their memory flat and their energy within the battery.

The numbers are printed (``pytest -s`` shows them)."""

from __future__ import annotations

import _thread
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

import graphs
from conftest import ROOT, _is_resource_tracker, child_pids, live_processes, shm_segments
from slt_deploy.training.checkpoint import load_checkpoint
from slt_deploy.deploy.plan import plan_deployment
from slt_deploy.core.errors import RunFailure
from slt_deploy.core.files import atomic_path
from slt_deploy.lava import process as deployed, watchdog
from slt_deploy.lava.network import LavaNetwork
from slt_deploy.lava.watchdog import lava_actors
from slt_deploy.ir.nirfile import read_graph, write_graph
from slt_deploy.energy.profile import graph_stream
from slt_deploy.runtime.controller import Budget, Controller, EnergyProfile, LavaEngine, make_policy


def session_members(sid: int) -> set[int]:
    """Live processes of session ``sid``: a subprocess started in its own
    session and everything it forked, even after the subprocess died and its
    children were re-parented."""
    return {pid for pid, (_, session) in live_processes().items() if session == sid}


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _sigint_default():
    """A subprocess must handle Ctrl-C even when the test runner ignores SIGINT."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# --------------------------------------------------------------------------- SIGKILL mid-epoch

TRAIN = ["train", "--model", "digits-cnn", "--epochs", "4", "--batch-size", "2", "--seed", "5"]
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # the same for every run: bit-exact


def _train(log: Path, *args: str) -> subprocess.Popen:
    with open(log, "w") as output:
        return subprocess.Popen([sys.executable, "-m", "slt_deploy.cli", *args], cwd=ROOT, env=ONE_THREAD,
                                stdout=output, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for_epoch(path: Path, epoch: int, process: subprocess.Popen, log: Path,
                    timeout: float = 300) -> tuple[dict, int, float]:
    """(checkpoint, its mtime, monotonic time it was seen) once ``path`` holds ``epoch`` epochs."""
    deadline, seen = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        assert process.poll() is None, f"training ended early ({process.returncode}): {log.read_text()}"
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if mtime is not None and mtime != seen:
            seen, now = mtime, time.monotonic()
            data = torch.load(path, weights_only=True)  # renamed into place: always complete
            if data["epoch"] >= epoch:
                return data, mtime, now
        time.sleep(0.01)
    raise AssertionError(f"no checkpoint of epoch {epoch} within {timeout} s")


def test_a_temporary_left_by_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    """SIGKILL during a checkpoint write leaves `.ckpt.pt.<pid>.*.tmp`; the next
    write of that file removes it once its writer is gone (and only then)."""
    dead = tmp_path / f".ckpt.pt.{2**22 + 1}.x1.tmp"  # above Linux's largest pid: never alive
    live = tmp_path / f".ckpt.pt.{os.getpid()}.x2.tmp"  # a writer still running
    other = tmp_path / f".other.pt.{2**22 + 1}.x3.tmp"  # another file's temporary
    for path in (dead, live, other):
        path.write_bytes(b"half")
    with atomic_path(tmp_path / "ckpt.pt") as tmp:
        tmp.write_bytes(b"whole")
    assert (tmp_path / "ckpt.pt").read_bytes() == b"whole"
    assert not dead.exists() and live.exists() and other.exists()


def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path):
    straight_dir, killed_dir = tmp_path / "straight", tmp_path / "killed"
    straight_dir.mkdir()
    killed_dir.mkdir()
    logs = {name: tmp_path / f"{name}.log" for name in ("straight", "killed", "resumed")}
    straight = _train(logs["straight"], *TRAIN, "-o", str(straight_dir / "ckpt.pt"))  # side by side: same load
    checkpoint = killed_dir / "ckpt.pt"
    started = time.monotonic()
    killed = _train(logs["killed"], *TRAIN, "-o", str(checkpoint))
    data, mtime, seen = _wait_for_epoch(checkpoint, 2, killed, logs["killed"])
    assert data["epoch"] == 2
    epoch_seconds = data["history"][-1]["seconds"]
    # epoch 3 started as epoch 2's checkpoint was renamed into place; kill 40 % into it
    time.sleep(max(0.0, seen + 0.4 * epoch_seconds - time.monotonic()))
    os.killpg(killed.pid, signal.SIGKILL)
    killed_at = time.monotonic() - seen
    killed.wait(30)
    assert killed.returncode == -signal.SIGKILL
    assert not session_members(killed.pid)
    # the kill fell inside epoch 3: the checkpoint on disk is still epoch 2's, intact, alone
    assert checkpoint.stat().st_mtime_ns == mtime, "epoch 3 finished before the kill: make epochs longer"
    assert load_checkpoint(checkpoint)["epoch"] == 2
    assert sorted(p.name for p in killed_dir.iterdir()) == ["ckpt.pt"]  # no partial or temporary file

    resumed = _train(logs["resumed"], "train", "--resume", str(checkpoint))
    assert resumed.wait(600) == 0, logs["resumed"].read_text()
    assert straight.wait(600) == 0, logs["straight"].read_text()
    total = time.monotonic() - started
    a, b = torch.load(straight_dir / "ckpt.pt", weights_only=True), torch.load(checkpoint, weights_only=True)
    straight_epoch3 = a["history"][2]["seconds"]
    print(f"\nSIGKILL {killed_at:.2f} s after epoch 2's checkpoint (epoch 2 took {epoch_seconds:.2f} s, the "
          f"uninterrupted run's epoch 3 {straight_epoch3:.2f} s): {100 * killed_at / epoch_seconds:.0f} % into "
          f"epoch 3; resumed to epoch {b['epoch']}; {total:.1f} s in all")
    assert a["epoch"] == b["epoch"] == 4
    assert a["model"].keys() == b["model"].keys()
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    for x, y in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(x[k], y[k]) for k in x)
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]
    assert sorted(p.name for p in killed_dir.iterdir()) == ["ckpt.pt"]


# --------------------------------------------------------------------------- twenty Lava failures

FAULT = {"kind": None, "marker": None, "processes": None}  # read by the patched models in Lava's (forked) processes


def _misbehave():
    if FAULT["kind"] == "raise":
        raise RuntimeError("injected failure")
    if FAULT["kind"] == "hang":  # until the host is interrupted: say so, then block
        Path(FAULT["marker"]).touch()
        time.sleep(3600)


@pytest.fixture
def faulty_models(monkeypatch):
    """The per-layer float Dense model and the fused model misbehave at step 3
    as FAULT says; FAULT["processes"] records how many OS processes were
    alive when the watchdog began to clean up."""
    dense_step, fused_step = deployed.CanonicalDenseModel.run_spk, deployed.FusedSimulator.step
    cleanup = watchdog.force_cleanup

    def counted_cleanup(runtime):
        FAULT["processes"] = len(child_pids())
        cleanup(runtime)

    def run_spk(self):
        if self.time_step == 3:
            _misbehave()
        return dense_step(self)

    def step(self, n, *args, **kwargs):
        if n == 3:
            _misbehave()
        return fused_step(self, n, *args, **kwargs)

    monkeypatch.setattr(deployed.CanonicalDenseModel, "run_spk", run_spk)
    monkeypatch.setattr(deployed.FusedSimulator, "step", step)
    monkeypatch.setattr(watchdog, "force_cleanup", counted_cleanup)
    yield
    FAULT.update(kind=None, marker=None, processes=None)


def _interrupt_when(marker: Path) -> threading.Thread:
    """Ctrl-C for the main thread as soon as a Lava process reaches the marker.

    ``_thread.interrupt_main`` does nothing when SIGINT is not handled by
    Python, and a test runner started in the background of a non-interactive
    shell (``cmd &``) inherits SIGINT ignored, so Python never installs its
    handler: install it, as an interactive Python has it (the caller restores it)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def wait_then_interrupt():
        while not marker.exists():
            time.sleep(0.01)
        _thread.interrupt_main()

    thread = threading.Thread(target=wait_then_interrupt, daemon=True)
    thread.start()
    return thread


def _in_process_failure(plan, x, mode: str, kind: str, marker: Path) -> dict:
    """One Lava run that fails (``raise``) or is interrupted (``hang`` + Ctrl-C)."""
    FAULT.update(kind=kind, marker=str(marker), processes=None)
    handler = signal.getsignal(signal.SIGINT)
    interrupter = _interrupt_when(marker) if kind == "hang" else None
    expected = KeyboardInterrupt if kind == "hang" else RunFailure
    started = time.monotonic()
    network = LavaNetwork(plan, x.shape[1], mode=mode, capacity=2, lanes=2 if mode == "fused" else 1,
                          step_seconds=0.05, startup_seconds=60, round_trip_seconds=5)
    with pytest.raises(expected) as failure:
        with network:
            network.run(x)
    seconds = time.monotonic() - started
    signal.signal(signal.SIGINT, handler)
    if interrupter is not None:
        interrupter.join(5)
    else:
        assert "injected failure" in str(failure.value)
    return {"what": f"{mode}: " + ("a Lava process raises" if kind == "raise" else "Ctrl-C during run"),
            "error": type(failure.value).__name__, "seconds": seconds, "processes": FAULT["processes"],
            "lava": len(lava_actors(network.anchor.runtime))}


def _cli_signal(graph_file: Path, inputs: Path, signum: int, group: bool, folder: Path) -> dict:
    """``signum`` to `slt-deploy run --backend lava-float` while Lava runs: to
    the command alone, or to its whole process group (Ctrl-C in a terminal).
    Output goes to files: processes left behind would hold pipes open."""
    started = time.monotonic()
    name = f"{signal.Signals(signum).name}-{'group' if group else 'command'}"
    with open(folder / f"{name}.out", "w") as stdout, open(folder / f"{name}.err", "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "slt_deploy.cli", "run", str(graph_file), "--backend", "lava-float",
             "--input", str(inputs), "--dt", str(graphs.DT)],
            cwd=ROOT, stdout=stdout, stderr=stderr, start_new_session=True, preexec_fn=_sigint_default)
    count, stable = 0, 0
    while stable < 10:  # every Lava process started and the run under way
        assert process.poll() is None, (folder / f"{name}.err").read_text()
        now = len(session_members(process.pid))
        stable = stable + 1 if now == count and now >= 8 else 0
        count = now
        time.sleep(0.05)
    signalled = time.monotonic()
    if group:
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    process.wait(60)
    stopped = time.monotonic() - signalled
    deadline = time.monotonic() + 5
    while session_members(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return {"what": f"CLI lava-float: {signal.Signals(signum).name} to " + ("its process group" if group
                                                                          else "the command"),
            "error": f"exit {process.returncode}", "seconds": time.monotonic() - started, "processes": count,
            "lava": count - 2, "stop_seconds": stopped, "returncode": process.returncode,  # not itself, the tracker
            "stderr": (folder / f"{name}.err").read_text(), "stdout": (folder / f"{name}.out").read_text(),
            "left": session_members(process.pid), "pid": process.pid}


@pytest.fixture
def cli_run(tmp_path):
    """A small NIR graph and ~30 s worth of input for `slt-deploy run`."""
    graph_file = write_graph(graphs.nested_recurrent_graph(), tmp_path / "nested.nir")
    inputs = tmp_path / "inputs.npy"
    np.save(inputs, (np.random.default_rng(4).random((3000, 10, 6)) < 0.4).astype(float))
    return graph_file, inputs


def test_twenty_lava_failures_leave_no_process_thread_or_segment(faulty_models, cli_run, tmp_path):
    plan = plan_deployment(graphs.nested_recurrent_graph(), graphs.DT)
    x = (np.random.default_rng(3).random((2, 5, 6)) < 0.5).astype(float)

    def fused_outputs():
        with LavaNetwork(plan, 5, mode="fused", capacity=2, lanes=2) as network:
            return network.run(x).outputs

    reference = fused_outputs()
    time.sleep(0.5)
    pids_before, threads_before, shm_before = child_pids(), threading.active_count(), shm_segments()
    failures = []
    for index in range(18):
        mode = ("float", "fused")[index % 2]
        kind = "hang" if index % 6 in (4, 5) else "raise"  # 12 raising processes, 6 interrupted runs
        failures.append(_in_process_failure(plan, x, mode, kind, tmp_path / f"reached-{index}"))
    FAULT.update(kind=None)
    failures += [_cli_signal(*cli_run, signal.SIGINT, group, tmp_path) for group in (False, True)]
    assert np.array_equal(fused_outputs(), reference)  # the library still works after all that

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        processes = child_pids() | set().union(*(session_members(f["pid"]) for f in failures if "pid" in f))
        if processes == pids_before and threading.active_count() == threads_before \
                and not shm_segments() - shm_before:
            break
        time.sleep(0.2)
    processes_after, threads_after, shm_after = len(processes), threading.active_count(), shm_segments()
    print(f"\n{len(failures)} Lava failures:")
    for number, f in enumerate(failures, 1):
        print(f"  {number:2d}. {f['what']:<45} -> {f['error']:<17} {f['seconds']:5.2f} s; "
              + (f"{f['processes']} OS processes in its session" if "CLI" in f["what"] else
                 f"{f['lava']} Lava processes, {f['processes']} OS processes when cleanup began"))
    print(f"OS processes (ours, and the CLI sessions') before {len(pids_before)}, after {processes_after}; "
          f"threads before {threads_before}, after {threads_after}; /dev/shm segments before {len(shm_before)}, "
          f"after {len(shm_after)} (new: {sorted(shm_after - shm_before)})")
    assert len(failures) == 20
    assert Counter(f["error"] for f in failures[:18]) == {"RunFailure": 12, "KeyboardInterrupt": 6}
    assert all(f["lava"] >= 2 for f in failures)  # each failure had Lava processes to stop
    assert processes == pids_before
    assert threads_after == threads_before
    assert not shm_after - shm_before
    for cli in failures[18:]:
        assert cli["stop_seconds"] < 15, cli  # stopped at once, not after a watchdog time-out
        assert "Traceback" not in cli["stderr"] and "Process SystemProcess" not in cli["stderr"], cli["stderr"]
    for cli in failures[18:]:
        assert cli["returncode"] == 130, cli
        assert cli["stderr"].strip().splitlines() == ["slt-deploy: interrupted"], cli["stderr"]


def test_sigterm_to_a_lava_run_cleans_up_like_ctrl_c(cli_run, tmp_path):
    """`kill`, `timeout` or a service manager stop a run with SIGTERM."""
    shm_before = shm_segments()
    result = _cli_signal(*cli_run, signal.SIGTERM, False, tmp_path)
    left = result["left"]
    for pid in left:  # never leave them to the rest of the suite; the resource tracker unlinks
        if not _is_resource_tracker(pid):  # their shared memory once they are gone, then ends
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while (session_members(result["pid"]) or shm_segments() - shm_before) and time.monotonic() < deadline:
        time.sleep(0.2)
    print(f"\nSIGTERM to `slt-deploy run --backend lava-float` with {result['processes']} processes in its "
          f"session: exit {result['returncode']} after {result['stop_seconds']:.2f} s; {len(left)} processes "
          f"left behind; stderr {result['stderr']!r}")
    assert not left
    assert result["returncode"] == 130 and result["stderr"].strip().splitlines() == ["slt-deploy: interrupted"]
    assert not shm_segments() - shm_before


# --------------------------------------------------------------------------- soak

SOAK, WARM_UP = 10_000, 500


def _lava_rss() -> tuple[float, float, int]:
    """RSS (MB) of this process and of its Lava processes, and their number."""
    children = child_pids()
    return rss_mb(os.getpid()), sum(rss_mb(pid) for pid in children), len(children)


def test_soak_10000_controller_inferences_on_the_fused_model(no_leaks):
    graph = read_graph(ROOT / "export" / "digits-mlp-slt.nir")
    profile = EnergyProfile.from_graph(graph)
    x, labels = graph_stream(graph, "digits", "test")[:2]
    budget = Budget.from_options(battery_mj=SOAK * profile.energy_mj[3], inferences=SOAK)
    spent, correct, latencies, reasons = 0.0, 0, Counter(), Counter()
    with LavaEngine(graph, profile, mode="fused") as engine:
        controller = Controller(engine, profile, budget, make_policy("adaptive", profile))
        started = time.perf_counter()
        for k in range(SOAK):
            if k == WARM_UP:
                warm, (self_before, lava_before, processes) = time.perf_counter(), _lava_rss()
            decision = controller.infer(x[k % len(x)])
            spent += decision.energy_mj
            correct += int(decision.prediction == labels[k % len(x)])
            latencies[decision.latency] += 1
            reasons[decision.stopped_by] += 1
        finished = time.perf_counter()
        self_after, lava_after, processes_after = _lava_rss()
    seconds = finished - started
    print(f"\nsoak: {SOAK} inferences (adaptive policy, fused Lava model) in {seconds:.1f} s "
          f"({1e3 * seconds / SOAK:.2f} ms each; {1e3 * (finished - warm) / (SOAK - WARM_UP):.2f} ms after warm-up)")
    print(f"RSS after {WARM_UP} inferences -> at the end: this process {self_before:.1f} -> {self_after:.1f} MB, "
          f"its {processes} Lava processes {lava_before:.1f} -> {lava_after:.1f} MB")
    print(f"energy {spent:.6e} mJ of a {budget.battery_mj:.6e} mJ battery ({100 * spent / budget.battery_mj:.2f} %); "
          f"accuracy {100 * correct / SOAK:.2f} %; latencies {dict(sorted(latencies.items()))}; "
          f"stopped by {dict(reasons)}")
    assert controller.state.done == SOAK
    assert spent == pytest.approx(controller.state.spent_mj)
    assert controller.state.spent_mj <= budget.battery_mj
    assert processes_after == processes
    assert self_after - self_before < 30 and lava_after - lava_before < 30
    assert correct / SOAK > 0.9
