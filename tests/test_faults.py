"""Faults the fleet must contain and recover from, on real processes: a skill's
escaped daemon dies with its worker or its supervisor (child subreapers); a
killed worker does not dead-letter a healthy task, a poison pill is found."""

from __future__ import annotations

import os
import signal
import sys
import time

import psutil
import pytest

from tests.fakes.fleetproc import (
    fleet,  # noqa: F401 (fixture)
    live_worker,
    stop,
    wait_until,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="child subreapers (PR_SET_CHILD_SUBREAPER) are Linux-only")

AFFINITY = {"coder": ["noop", "sleepy", "daemonize", "poison"]}
FAST_RESPAWN = {"backoff_initial_s": 0.05, "backoff_max_s": 0.2, "crash_loop_count": 100}


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


def test_killing_the_worker_again_and_again_does_not_dead_letter_a_healthy_task(fleet):  # noqa: F811
    """Five outside kills of the worker running a task with 2 attempts: each
    comes after the poison window, so none implicates the task, and it ends DONE."""
    sup = fleet.start(workers={"coder_count": 2}, affinity=AFFINITY, supervisor=FAST_RESPAWN,
                      queue={"poison_window_s": 0.5})
    store = fleet.store
    wait_until(lambda: all((a := store.get_agent(n)) and a["status"] == "idle" for n in ("coder_1", "coder_2")),
               30, what="workers up")
    task = store.enqueue("sleepy", {"seconds": 3}, max_attempts=2, priority=9)

    def outcomes():
        return [a["outcome"] for a in store.attempts(task.id)]

    for kill in range(5):
        wait_until(lambda k=kill: outcomes() == ["crashed"] * k + ["running"], 30, what=f"attempt {kill + 1}")
        store.enqueue("noop", {"n": kill})  # other work completes meanwhile
        time.sleep(0.8)  # past the poison window
        os.kill(store.get_agent(store.get(task.id).worker)["pid"], signal.SIGKILL)
        wait_until(lambda k=kill: outcomes()[:k + 1] == ["crashed"] * (k + 1), 30, what="the crash recorded")
    wait_until(lambda: store.get(task.id).status == "DONE", 30, what="the task done after 5 kills")
    final = [(a["outcome"], a["suspect"]) for a in store.attempts(task.id)]
    assert final == [("crashed", 0)] * 5 + [("done", 0)]
    assert stop(sup) == 0


def test_a_task_that_kills_its_workers_is_dead_lettered_as_a_poison_pill(fleet):  # noqa: F811
    sup = fleet.start(workers={"coder_count": 2}, affinity=AFFINITY, supervisor=FAST_RESPAWN,
                      queue={"max_crashes": 3, "backoff_base_s": 0.3, "backoff_max_s": 0.5})
    store = fleet.store
    wait_until(lambda: all((a := store.get_agent(n)) and a["status"] == "idle" for n in ("coder_1", "coder_2")),
               30, what="workers up")
    poison = store.enqueue("poison", {}, max_attempts=10)
    healthy = []
    deadline = time.monotonic() + 60
    while store.get(poison.id).status != "FAILED":  # healthy work keeps flowing meanwhile
        assert time.monotonic() < deadline, [(a["outcome"], a["suspect"]) for a in store.attempts(poison.id)]
        healthy.append(store.enqueue("noop", {"n": len(healthy)}).id)
        time.sleep(0.1)
    row = store.get(poison.id)
    assert row.error_reason == "poison_pill" and "took down 3 workers" in row.error
    attempts = store.attempts(poison.id)  # (a first crash before any other task finished is not suspect)
    assert {a["outcome"] for a in attempts} == {"crashed"} and sum(a["suspect"] for a in attempts) == 3
    wait_until(lambda: all(store.get(t).status == "DONE" for t in healthy), 30, what="the healthy tasks done")
    assert stop(sup) == 0


def test_a_healthy_worker_killed_from_outside_is_replaced_at_once_every_time(fleet):  # noqa: F811
    """Six SIGKILLs in a row of a worker that had come up: each is replaced at
    once. With a 30 s backoff that never resets (each replacement dies before
    backoff_reset_s), the second kill would leave the role empty for 30 s."""
    sup = fleet.start(workers={"coder_count": 1}, affinity=AFFINITY, supervisor={
        "backoff_initial_s": 30.0, "backoff_max_s": 60.0, "backoff_reset_s": 600.0,
        "crash_loop_count": 3, "crash_loop_window_s": 600.0})
    store = fleet.store
    pid = wait_until(lambda: live_worker(store, "coder_1"), 30, what="worker up")["pid"]
    for kill in range(6):
        os.kill(pid, signal.SIGKILL)
        pid = wait_until(lambda p=pid: live_worker(store, "coder_1", not_pid=p), 15,
                         what=f"a replacement after kill {kill + 1} (not backed off)")["pid"]
    assert store.get_agent("coder_1")["status"] != "flapping"
    assert not [a for a in store.list_alerts() if a["dedup_key"] == "flapping:coder"]
    task = store.enqueue("noop", {})
    wait_until(lambda: store.get(task.id).status == "DONE", 30, what="the replacement to work")
    assert stop(sup) == 0


def test_a_child_killed_before_it_came_up_is_still_backed_off_and_flapping(fleet):  # noqa: F811
    """The flapping guard still holds for children that never come up: one
    SIGKILLed before its first heartbeat is a start crash, backed off and counted."""
    sup = fleet.start(supervisor={"services": ["tests.fakes.killed_at_start_service"], "backoff_initial_s": 0.2,
                                  "backoff_max_s": 1.0, "crash_loop_count": 3, "crash_loop_window_s": 600.0})
    store = fleet.store
    name = "killed_at_start_service"
    wait_until(lambda: (a := store.get_agent(name)) and a["status"] == "flapping", 30, what="flapping")
    exits = [e for e in store.recent_events(200, action="child_exit") if e["agent"] == name]
    assert exits and all(e["detail"]["signal"] == "SIGKILL" for e in exits)
    assert [a for a in store.list_alerts() if a["dedup_key"] == f"flapping:{name}"]
    assert stop(sup) == 0
