"""The supervisor with real worker processes: SIGKILLed workers are replaced and
their task retried, kill -9 of the supervisor takes every worker and grandchild
with it, restart loses nothing, hung skills time out, long tasks survive,
stalled workers are replaced, a stop drains and releases, one instance only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.fakes.fleetproc import (
    REPO,
    fleet,  # noqa: F401 (fixture)
    live_worker,
    pid_gone,
    start_supervisor,
    stop,
    wait_until,
)


def test_sigkilled_worker_is_replaced_and_its_task_retried(fleet):  # noqa: F811
    sup = fleet.start(workers={"coder_count": 1})
    store = fleet.store
    first = wait_until(lambda: live_worker(store, "coder_1"), 30, what="coder_1 up")
    task = store.enqueue("sleepy", {"seconds": 1.5})
    wait_until(lambda: store.get(task.id).status == "RUNNING", 20, what="task running")
    os.kill(first["pid"], signal.SIGKILL)
    wait_until(lambda: live_worker(store, "coder_1", not_pid=first["pid"]), 30, what="replacement")
    wait_until(lambda: store.get(task.id).status == "DONE", 30, what="retried task done")
    outcomes = [a["outcome"] for a in store.attempts(task.id)]
    assert outcomes == ["crashed", "done"]
    assert store.get(task.id).attempts == 1  # the crash is recorded but used none of its attempts
    exits = [e for e in store.recent_events(50, action="child_exit") if e["agent"] == "coder_1"]
    assert exits and exits[0]["detail"]["signal"] == "SIGKILL" and exits[0]["detail"]["pid"] == first["pid"]
    assert "uptime_s" in exits[0]["detail"] and exits[0]["detail"]["role"] == "coder"
    assert stop(sup) == 0


def test_kill9_supervisor_takes_workers_and_grandchildren_then_restart_loses_nothing(fleet, tmp_path):  # noqa: F811
    fleet.start(workers={"coder_count": 2})
    store = fleet.store
    for name in ("coder_1", "coder_2"):
        wait_until(lambda n=name: live_worker(store, n), 30, what=f"{name} up")
    pid_file = tmp_path / "pids"
    long = store.enqueue("sleepy", {"seconds": 2.5, "grandchild": True, "pid_file": str(pid_file)}, priority=9)
    wait_until(lambda: pid_file.exists() and len(pid_file.read_text().split()) == 2, 20, what="grandchild")
    queued = [store.enqueue("noop", {"n": i}).id for i in range(30)]
    pids = [int(p) for p in pid_file.read_text().split()]
    pids += [a["pid"] for a in store.list_agents() if a["name"].startswith("coder_")]
    sup_pid = store.get_agent("supervisor")["pid"]
    os.kill(sup_pid, signal.SIGKILL)
    wait_until(lambda: all(pid_gone(p) for p in pids), 5, what="workers and grandchild gone within 5 s")

    sup2 = fleet.start(workers={"coder_count": 2})
    wait_until(lambda: all(store.get(t).status == "DONE" for t in queued + [long.id]), 40,
               what="every task done after restart")
    assert [a["outcome"] for a in store.attempts(long.id)][-1] == "done"
    assert store.counts()["RUNNING"] == 0
    assert stop(sup2) == 0


def test_a_restarted_supervisor_never_kills_a_new_worker_for_an_old_lease(fleet):  # noqa: F811
    # Found in review: the lease of a task held by a previous run's wedged
    # worker expired, and the new supervisor "fenced" it by killing the new,
    # healthy worker of the same name, costing its own task an attempt.
    fleet.start(workers={"coder_count": 1}, queue={"lease_s": 2.0})
    store = fleet.store
    old = wait_until(lambda: live_worker(store, "coder_1"), 30, what="coder_1 up")
    first = store.enqueue("sleepy", {"seconds": 8})  # (the new worker may run it again after the reap)
    wait_until(lambda: store.get(first.id).status == "RUNNING", 20, what="first task running")
    os.kill(old["pid"], signal.SIGSTOP)  # wedged: it cannot renew, nor die of its parent's death yet
    try:
        os.kill(store.get_agent("supervisor")["pid"], signal.SIGKILL)
        time.sleep(0.5)
        sup2 = fleet.start(workers={"coder_count": 1}, queue={"lease_s": 2.0})
        new = wait_until(lambda: live_worker(store, "coder_1", not_pid=old["pid"]), 30, what="a new coder_1")
        second = store.enqueue("sleepy", {"seconds": 4}, priority=9)
        # The old lease runs out and is reaped (the new worker may then take the task again: on a
        # loaded machine the lease can expire before `second` is queued).
        wait_until(lambda: [a["outcome"] for a in store.attempts(first.id)][:1] == ["expired"],
                   60, what="the old lease reaped")
        wait_until(lambda: store.get(second.id).status == "DONE", 60, what="the new worker's task done")
        assert [a["outcome"] for a in store.attempts(second.id)] == ["done"]
        kills = [e for e in store.events(action="lease_expired_kill")]
        assert all(e["detail"]["pid"] != new["pid"] for e in kills), kills
        assert store.get_agent("coder_1")["pid"] == new["pid"]  # never replaced
        assert stop(sup2) == 0
    finally:
        os.kill(old["pid"], signal.SIGKILL)


def test_second_supervisor_refuses_naming_the_holder(fleet):  # noqa: F811
    sup = fleet.start(workers={"coder_count": 0})
    wait_until(lambda: fleet.store.get_agent("supervisor"), 20, what="first supervisor")
    from fleet.config import load_config
    from fleet.supervisor import running_supervisor_pid

    assert running_supervisor_pid(load_config(fleet.home)) == sup.pid
    second = start_supervisor(fleet.home)
    rc = second.wait(20)
    err = second.stderr.read()
    assert rc != 0 and str(sup.pid) in err and "already running" in err
    assert sup.poll() is None
    assert stop(sup) == 0
    assert running_supervisor_pid(load_config(fleet.home)) is None


def test_graceful_stop_drains_releases_and_spares_unrelated_processes(fleet):  # noqa: F811
    decoy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)",
                              "fleet/worker.py", "--role", "coder", "--name", "coder_1"], cwd=str(REPO))
    try:
        sup = fleet.start(workers={"coder_count": 2}, supervisor={"stop_timeout_s": 2.0})
        store = fleet.store
        for name in ("coder_1", "coder_2"):
            wait_until(lambda n=name: live_worker(store, n), 30, what=f"{name} up")
        long = store.enqueue("sleepy", {"seconds": 60})
        short = store.enqueue("sleepy", {"seconds": 1.0})
        wait_until(lambda: store.get(long.id).status == "RUNNING" and store.get(short.id).status == "RUNNING", 20)
        worker_pids = [a["pid"] for a in store.list_agents() if a["name"].startswith("coder_")]
        t0 = time.monotonic()
        assert stop(sup, 30) == 0
        assert time.monotonic() - t0 < 20
        assert store.get(short.id).status == "DONE"  # finished within the stop timeout
        lt = store.get(long.id)
        assert lt.status == "PENDING" and lt.attempts == 0  # released, attempt not counted
        assert [a["outcome"] for a in store.attempts(long.id)] == ["released"]
        assert all(pid_gone(p) for p in worker_pids)
        assert decoy.poll() is None  # named like a worker, not ours: untouched
        assert store.get_agent("supervisor")["status"] == "stopped"
    finally:
        decoy.kill()
        decoy.wait()


def test_hung_skill_times_out_is_retried_and_attempts_never_overlap(fleet):  # noqa: F811
    sup = fleet.start(workers={"coder_count": 1})
    store = fleet.store
    wait_until(lambda: live_worker(store, "coder_1"), 30, what="coder_1 up")
    hung = store.enqueue("hang", {}, max_attempts=2)  # TIMEOUT_S = 1.5
    wait_until(lambda: store.get(hung.id).status == "FAILED", 40, what="hung task failed after 2 timeouts")
    task = store.get(hung.id)
    assert task.error_reason == "timeout" and task.attempts == 2
    attempts = store.attempts(hung.id)
    assert [a["outcome"] for a in attempts] == ["timeout", "timeout"]
    assert attempts[0]["ended_at"] <= attempts[1]["started_at"]
    assert len({a["worker"] for a in attempts}) == 1
    wait_until(lambda: live_worker(store, "coder_1"), 30, what="worker replaced after timeout")
    after = store.enqueue("noop", {"n": 1})
    wait_until(lambda: store.get(after.id).status == "DONE", 20, what="fleet works after timeouts")
    assert stop(sup) == 0


def test_skill_that_cannot_be_parked_is_ended_and_the_supervisor_records_the_timeout(fleet):  # noqa: F811
    sup = fleet.start(workers={"coder_count": 1}, affinity={"coder": ["stubborn", "noop"]})
    store = fleet.store
    first = wait_until(lambda: live_worker(store, "coder_1"), 30, what="coder_1 up")
    task = store.enqueue("stubborn", {}, max_attempts=1)
    wait_until(lambda: store.get(task.id).status == "FAILED", 40, what="stubborn task failed")
    t = store.get(task.id)
    assert t.error_reason == "timeout" and [a["outcome"] for a in store.attempts(task.id)] == ["timeout"]
    exits = [e for e in store.recent_events(50, action="child_exit") if e["agent"] == "coder_1"]
    assert exits[0]["detail"].get("exit_code") == 75 and exits[0]["detail"]["pid"] == first["pid"]
    assert f"task {task.id} failed: timeout" in (fleet.home / "logs" / "supervisor.log").read_text()
    wait_until(lambda: live_worker(store, "coder_1", not_pid=first["pid"]), 30, what="replacement")
    assert stop(sup) == 0


def test_a_cancel_the_skill_ignores_is_recorded_as_a_cancel_not_a_timeout(fleet):  # noqa: F811
    # Found in review: the worker ends itself when a skill ignores a cancel,
    # with the timeout's exit code, and the attempt was recorded as a timeout.
    sup = fleet.start(workers={"coder_count": 1}, affinity={"coder": ["stubborn", "noop"]},
                      skills={"timeouts": {"stubborn": 60.0}})
    store = fleet.store
    wait_until(lambda: live_worker(store, "coder_1"), 30, what="coder_1 up")
    task = store.enqueue("stubborn", {})
    wait_until(lambda: store.get(task.id).status == "RUNNING", 20, what="stubborn running")
    store.cancel(task.id)
    wait_until(lambda: store.get(task.id).status == "CANCELLED", 30, what="cancelled")
    assert [a["outcome"] for a in store.attempts(task.id)] == ["cancelled"]
    assert store.get(task.id).error_reason != "timeout"
    assert stop(sup) == 0


def test_long_task_survives_and_a_frozen_worker_is_replaced(fleet):  # noqa: F811
    sup = fleet.start(workers={"coder_count": 1}, supervisor={"heartbeat_timeout_s": 2.0})
    store = fleet.store
    first = wait_until(lambda: live_worker(store, "coder_1"), 30, what="coder_1 up")
    long = store.enqueue("sleepy", {"seconds": 5.0})  # longer than the heartbeat limit
    wait_until(lambda: store.get(long.id).status == "DONE", 30, what="long task done")
    assert [a["outcome"] for a in store.attempts(long.id)] == ["done"]
    assert store.get_agent("coder_1")["pid"] == first["pid"]
    # a worker that really stops making progress (SIGSTOP) is replaced
    os.kill(first["pid"], signal.SIGSTOP)
    wait_until(lambda: live_worker(store, "coder_1", not_pid=first["pid"]), 30, what="frozen worker replaced")
    assert any(e["agent"] == "coder_1" for e in store.recent_events(50, action="stalled"))
    assert pid_gone(first["pid"])
    assert stop(sup) == 0


def test_a_supervisor_recovers_only_its_own_hosts_dead_workers(fleet):  # noqa: F811
    """A pid names a process on its own host alone: on a store shared by
    several hosts, a supervisor requeues what its own host's dead workers
    held, and leaves another host's to lease expiry."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    store = fleet.store
    held = {}
    for name, host in (("coder_8", "here"), ("coder_9", "elsewhere")):
        store.register_agent(name, "coder", pid=gone.pid, host=host, status="busy")
        store.enqueue("noop", {"held_by": name})
        held[name] = store.claim(name, ["noop"], lease_s=600)
    sup = fleet.start(fleet={"host": "here"})
    wait_until(lambda: store.get(held["coder_8"].id).status == "PENDING", 30, what="this host's task requeued")
    wait_until(lambda: (a := store.get_agent("supervisor")) and a["host"] == "here", 30, what="the supervisor up")
    time.sleep(0.5)
    assert store.get(held["coder_9"].id).status == "RUNNING"  # another host's: left to its lease
    assert stop(sup) == 0
