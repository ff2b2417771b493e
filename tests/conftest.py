"""Shared fixtures: CLI runner, OS-process and shared-memory leak checks."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


def _is_resource_tracker(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"multiprocessing.resource_tracker" in f.read()
    except OSError:
        return False


def live_processes() -> dict[int, tuple[int, int]]:
    """{pid: (parent pid, session id)} of every live (not zombie) process, from /proc."""
    processes = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            processes[int(entry)] = (int(fields[1]), int(fields[3]))
    return processes


def child_pids() -> set[int]:
    """PIDs of all live descendants of this test process (from /proc).

    Python's multiprocessing resource tracker is left out: it is one helper per
    interpreter, started on first use of shared memory, and it exits with the
    interpreter (it is what unlinks leaked segments then)."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in live_processes().items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return {pid for pid in found if not _is_resource_tracker(pid)}


def shm_segments() -> set[str]:
    try:
        return set(os.listdir("/dev/shm"))
    except FileNotFoundError:
        return set()


@contextlib.contextmanager
def leak_check(seconds: float = 10):
    """Fails if the block leaves a child OS process or a /dev/shm segment
    behind (after ``seconds`` for them to go)."""
    pids_before, shm_before = child_pids(), shm_segments()
    yield
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left_pids = child_pids() - pids_before
        left_shm = shm_segments() - shm_before
        if not left_pids and not left_shm:
            return
        time.sleep(0.2)
    assert not left_pids, f"OS processes left behind: {sorted(left_pids)}"
    assert not left_shm, f"shared-memory segments left behind: {sorted(left_shm)}"


@pytest.fixture
def no_leaks():
    """Fails the test if it leaves a child OS process or a /dev/shm segment behind."""
    with leak_check():
        yield


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run `slt-deploy ARGS` in a fresh interpreter, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "slt_deploy.cli", *map(str, args)],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("slt-deploy: error:"), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture(scope="session", autouse=True)
def suite_leaves_no_processes():
    """The whole suite must end with no child process and no new /dev/shm segment."""
    try:
        with leak_check(seconds=15):
            yield
    except AssertionError as exc:
        pytest.exit(f"test suite left {exc}", returncode=1)
