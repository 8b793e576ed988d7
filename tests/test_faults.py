"""Faults the fleet must contain and recover from, on real processes: a skill's
escaped daemon dies with its worker or its supervisor (child subreapers)."""

from __future__ import annotations

import os
import signal
import sys

import psutil
import pytest

from tests.fakes.fleetproc import (
    fleet,  # noqa: F401 (fixture)
    stop,
    wait_until,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="child subreapers (PR_SET_CHILD_SUBREAPER) are Linux-only")

AFFINITY = {"coder": ["noop", "sleepy", "daemonize"]}


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _daemon_of(fleet, tmp_path, name):  # noqa: F811
    """Start a daemonize task; returns (task, the worker's pid, the daemon's pid)."""
    store = fleet.store
    pid_file = tmp_path / name
    task = store.enqueue("daemonize", {"pid_file": str(pid_file), "seconds": 60})
    wait_until(lambda: pid_file.exists(), 30, what="the skill's daemon to start")
    daemon = int(pid_file.read_text())
    worker = store.get_agent(store.get(task.id).worker)["pid"]
    assert psutil.Process(daemon).ppid() == worker  # re-parented to its worker, not to init
    return task, worker, daemon


def test_a_skills_setsid_daemon_dies_when_its_worker_is_killed(fleet, tmp_path):  # noqa: F811
    sup = fleet.start(workers={"coder_count": 1}, affinity=AFFINITY)
    wait_until(lambda: (a := fleet.store.get_agent("coder_1")) and a["status"] == "idle", 30, what="worker up")
    task, worker, daemon = _daemon_of(fleet, tmp_path, "d1")
    os.kill(worker, signal.SIGKILL)
    wait_until(lambda: _gone(daemon), 15, what="the escaped daemon to die with its worker")
    fleet.store.cancel(task.id)
    assert stop(sup) == 0


def test_a_skills_setsid_daemon_dies_when_the_supervisor_is_killed(fleet, tmp_path):  # noqa: F811
    sup = fleet.start(workers={"coder_count": 1}, affinity=AFFINITY)
    wait_until(lambda: (a := fleet.store.get_agent("coder_1")) and a["status"] == "idle", 30, what="worker up")
    _task, worker, daemon = _daemon_of(fleet, tmp_path, "d2")
    sup.kill()
    sup.wait(10)
    wait_until(lambda: _gone(worker) and _gone(daemon), 15, what="worker and daemon to die with the supervisor")
