"""A watchdog for Lava runs.

Lava's runtime has no hang detection: when a process model raises, the
runtime joins every OS process, and the others block forever on their
channels (measured here: a raising Dense model froze ``run()``). Every call
into a running Lava network therefore goes through :func:`guarded`: the call
runs in a daemon thread while the caller polls it; if one of Lava's OS
processes dies, or the call outlives its time limit, every Lava process is
terminated (then killed), the shared-memory manager is shut down (which
unlinks all segments), the host threads the runtime left blocked are
released, and :class:`~slt_deploy.core.errors.RunFailure` is raised with one line
saying what happened.

Ctrl-C belongs to the caller: Lava's processes are forked from the call's
thread with SIGINT blocked, so a Ctrl-C sent to the whole process group (a
terminal) does not kill them half-way (each printed a traceback); the
caller's KeyboardInterrupt stops everything as above at once and propagates
(a polite ``stop()`` of a busy runtime would block until the time limit).

This reaches into ``Runtime._messaging_infrastructure`` (``actors``, ``smm``)
and the runtime's host ports (``service_to_runtime``, ``join()``):
lava-nc 0.10.0 is final, and tests pin this behaviour.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
import time
from multiprocessing import resource_tracker
from typing import Any, Callable

import numpy as np

from ..core.errors import RunFailure

POLL_SECONDS = 0.05
FAILURE_GRACE_SECONDS = 1.0  # for a dying process's exception to arrive


SLOWEST_MACS_PER_SECOND = 2e8
"""Multiply-accumulates per second below which a run is taken for a hang: a
floor under NumPy's dense and convolution speed on one core of this machine
(the per-layer graph and the fused model both compute every synapse)."""

SLOWEST_FIXED_CONV_MACS_PER_SECOND = 2e7
"""The same floor for Lava's bit-accurate ``Conv`` model (the per-layer
fixed-point graph), which calls scipy's ``convolve2d`` once per pair of
input and output channels: measured 1.5-2.7e8 MAC/s on one idle core for
VGGSNN's layers (``docs/lava-behaviours.md`` §8), and a step's conv
processes share the machine's cores; a tenth of that is the floor."""


def default_step_seconds(plan, lanes: int, fixed_point_conv: bool = False) -> float:
    """Watchdog allowance per time step (s): 1 s, or the time a network of
    this size (a :class:`~slt_deploy.deploy.plan.DeployPlan`) takes at
    :data:`SLOWEST_MACS_PER_SECOND` over all its lanes -- its convolutions at
    :data:`SLOWEST_FIXED_CONV_MACS_PER_SECOND` when ``fixed_point_conv`` (they
    run on Lava's bit-accurate Conv model)."""
    seconds = 0.0
    for projection in plan.projections:
        weights = int(np.asarray(projection.weight).size)
        if projection.kind == "conv":
            macs = weights * int(np.prod(projection.conv_output_shape[1:]))
            slow = fixed_point_conv and getattr(projection, "delay", 0) == 0  # a delayed conv runs as Dense
            seconds += macs / (SLOWEST_FIXED_CONV_MACS_PER_SECOND if slow else SLOWEST_MACS_PER_SECOND)
        else:
            seconds += weights / SLOWEST_MACS_PER_SECOND
    return max(1.0, lanes * seconds)


def _infrastructure(runtime):
    return getattr(runtime, "_messaging_infrastructure", None) if runtime is not None else None


def lava_actors(runtime) -> list:
    infrastructure = _infrastructure(runtime)
    return list(getattr(infrastructure, "actors", []) or [])


def _exitcode(actor):
    try:
        return actor.exitcode
    except ValueError:  # a process object Lava has already closed
        return 0


def _dead_actor(runtime):
    for actor in lava_actors(runtime):
        if _exitcode(actor) is not None:
            return actor
    return None


def force_cleanup(runtime) -> None:
    """Terminate every Lava OS process and free the shared memory."""
    actors = lava_actors(runtime)
    for actor in actors:
        if _exitcode(actor) is None:
            actor.terminate()
    for actor in actors:
        if _exitcode(actor) is None:
            multiprocessing.Process.join(actor, 2)
        if _exitcode(actor) is None:
            actor.kill()
            multiprocessing.Process.join(actor, 2)
    infrastructure = _infrastructure(runtime)
    smm = getattr(infrastructure, "smm", None)
    if smm is not None:
        try:
            smm.shutdown()
        except Exception:  # the manager may already be gone
            pass
    _release_host_threads(runtime)
    watchdog = getattr(runtime, "_watchdog_manager", None)
    if watchdog is not None:
        try:
            watchdog.stop()
        except Exception:
            pass


def _release_host_threads(runtime) -> None:
    """End the host threads that a stopped runtime leaves blocked: the run
    waiting in a selector for the runtime service's answer, and one thread
    per host channel port (measured: 2-3 threads left per failure, each
    keeping the runtime alive). The runtime is marked stopped, so that its
    ``__del__`` does not talk to processes that are gone."""
    if runtime is None:
        return

    def stopped():
        raise RunFailure("the Lava runtime was stopped")

    for port in list(getattr(runtime, "service_to_runtime", None) or []):
        port.probe = stopped  # a selector waiting on this port raises when woken
        observer = port.observer
        if observer is not None:
            observer()
    try:
        runtime.join()  # ends the ports' threads
    except Exception:
        pass
    runtime._is_started = False


def _failure_of(actor):
    try:
        return actor.exception
    except Exception:
        return None


def _actor_error(actor) -> str:
    try:
        failure = actor.exception
    except Exception:
        failure = None
    if failure:
        error = failure[0]
        return f"{type(error).__name__}: {error}"
    return f"exit code {_exitcode(actor)}"


def _failure_message(runtime, dead) -> str:
    """Why the Lava processes stopped: the exception one of them reported
    (the raising process may end after the others, and Lava's own error path
    may already have joined it), else how ``dead`` ended."""
    deadline = time.monotonic() + FAILURE_GRACE_SECONDS
    while True:
        failed = next((actor for actor in lava_actors(runtime) if _failure_of(actor)), None)
        if failed is not None:
            return _actor_error(failed)
        if time.monotonic() > deadline:
            return _actor_error(dead)
        time.sleep(POLL_SECONDS)


def guarded(call: Callable[[], Any], runtime: Callable[[], Any], timeout: float, what: str,
            watch_processes: bool = True) -> Any:
    """Run ``call()``; fail fast if a Lava process dies (unless the call is
    the one that ends them: ``watch_processes=False``); stop everything after
    ``timeout`` s."""
    outcome: dict[str, Any] = {}

    def target():
        # Ctrl-C belongs to the caller (the main thread stops everything); Lava
        # forks its processes from this thread, and they inherit the mask.
        # (Starting the resource tracker would unblock SIGINT: start it first.)
        resource_tracker.ensure_running()
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            outcome["value"] = call()
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name=f"lava {what}", daemon=True)
    started = time.monotonic()
    thread.start()
    try:
        while True:
            thread.join(POLL_SECONDS)
            if not thread.is_alive():
                break
            actor = _dead_actor(runtime()) if watch_processes else None
            if actor is not None:
                message = _failure_message(runtime(), actor)
                force_cleanup(runtime())
                raise RunFailure(f"Lava {what} failed: a Lava process stopped ({message}); "
                                 "all Lava processes were stopped")
            if time.monotonic() - started > timeout:
                force_cleanup(runtime())
                raise RunFailure(
                    f"Lava {what} did not finish within {timeout:.0f} s (hang); all Lava processes were stopped"
                )
    except KeyboardInterrupt:  # Ctrl-C mid-call: the runtime is busy and cannot be stopped politely
        force_cleanup(runtime())
        raise
    if "error" in outcome:
        error = outcome["error"]
        cause = next((_actor_error(a) for a in lava_actors(runtime()) if _failure_of(a)), None)
        force_cleanup(runtime())
        detail = cause or f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        raise RunFailure(f"Lava {what} failed: {detail}")
    return outcome.get("value")


class WatchedRuntime:
    """Mixin for an object that owns a running Lava network: every call into
    it goes through :meth:`_guarded`. Needs ``closed``, ``round_trip_seconds``
    and :meth:`_runtime`; ``label`` names the network in errors."""

    label = "Lava network"
    closed: bool
    round_trip_seconds: float

    def _runtime(self):
        raise NotImplementedError

    def _guarded(self, call, seconds: float, what: str, watch_processes: bool = True):
        """A Lava call under the watchdog (``seconds`` on top of the round
        trip). After a failure or an interrupt the watchdog has already
        stopped every Lava process: the object is closed for good."""
        if self.closed:
            raise RunFailure(f"the {self.label} was stopped after an earlier failure")
        try:
            return guarded(call, self._runtime, self.round_trip_seconds + seconds, what, watch_processes)
        except (RunFailure, KeyboardInterrupt):
            self.closed = True
            raise
