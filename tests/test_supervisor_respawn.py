"""Respawn policy and control: a service that crashes at start backs off with
growing gaps and is marked flapping (one alert); exit 78 parks a role until it is
started again; stop/start/restart messages; STATUS.md and liveness samples."""

from __future__ import annotations

import itertools
import time

from tests.fakes.fleetproc import (
    fleet,  # noqa: F401 (fixture)
    live_worker,
    stop,
    wait_until,
)


def _exits(store, name):
    return sorted((e for e in store.recent_events(500, action="child_exit") if e["agent"] == name),
                  key=lambda e: e["id"])


def test_crash_loop_backs_off_with_growing_gaps_and_is_flapping(fleet):  # noqa: F811
    sup = fleet.start(supervisor={
        "services": ["tests.fakes.crash_service"], "backoff_initial_s": 0.5, "backoff_max_s": 10.0,
        "crash_loop_count": 5, "crash_loop_window_s": 60.0, "backoff_reset_s": 30.0})
    store = fleet.store
    wait_until(lambda: len(_exits(store, "crash_service")) >= 5, 40, what="five crashes")
    wait_until(lambda: (a := store.get_agent("crash_service")) and a["status"] == "flapping", 10, what="flapping")
    exits = _exits(store, "crash_service")[:5]
    spawns = sorted((e for e in store.recent_events(500, action="spawn") if e["agent"] == "crash_service"),
                    key=lambda e: e["id"])
    # restart delay = next spawn after each exit: immediate, then 0.5, 1, 2 s (+-15 % jitter)
    delays = [next(sp["ts"] for sp in spawns if sp["id"] > ex["id"]) - ex["ts"] for ex in exits[:4]]
    assert all(later > earlier for earlier, later in itertools.pairwise(delays)), delays
    assert delays[1] >= 0.4 and delays[3] >= 1.6, delays
    assert all(e["detail"]["exit_code"] == 3 for e in exits)
    alerts = [a for a in store.list_alerts() if a["dedup_key"] == "flapping:crash_service"]
    assert len(alerts) == 1 and alerts[0]["occurrences"] == 1
    wait_until(lambda: "crash_service" in (fleet.home / "STATUS.md").read_text(), 10, what="STATUS.md")
    assert stop(sup) == 0


def test_exit_78_parks_the_role_until_started_again(fleet):  # noqa: F811
    # (a worker role with no [affinity] entry is refused by the config check before
    # anything starts, so a service stands for a child that exits 78)
    sup = fleet.start(supervisor={"services": ["tests.fakes.config_error_service"]})
    store = fleet.store
    name = "config_error_service"
    wait_until(lambda: (a := store.get_agent(name)) and a["status"] == "parked", 30, what="parked")
    time.sleep(1.5)
    assert len(_exits(store, name)) == 1  # not respawned while parked
    assert _exits(store, name)[0]["detail"]["exit_code"] == 78
    assert any(a["dedup_key"] == f"parked:{name}" for a in store.list_alerts())
    store.send_message("test", "supervisor", {"type": "start", "role": name}, channel="sup")
    wait_until(lambda: len(_exits(store, name)) == 2, 20, what="started again on request")
    wait_until(lambda: store.get_agent(name)["status"] == "parked", 10, what="parked again")
    assert stop(sup) == 0


def test_control_messages_stop_start_restart_and_status_file(fleet):  # noqa: F811
    sup = fleet.start(workers={"coder_count": 1, "archivist": 1}, affinity={"archivist": ["noop"]},
                      supervisor={"services": ["no_such_service"]})
    store = fleet.store
    first = wait_until(lambda: live_worker(store, "coder_1"), 30, what="coder_1 up")
    wait_until(lambda: live_worker(store, "archivist"), 30, what="archivist up")

    store.send_message("test", "supervisor", {"type": "stop", "role": "coder"}, channel="sup")
    wait_until(lambda: store.get_agent("coder_1")["status"] == "stopped", 20, what="coder stopped")
    time.sleep(1.0)
    assert store.get_agent("coder_1")["status"] == "stopped"  # not respawned
    assert live_worker(store, "archivist")

    store.send_message("test", "supervisor", {"type": "start", "role": "coder"}, channel="sup")
    second = wait_until(lambda: live_worker(store, "coder_1", not_pid=first["pid"]), 20, what="coder restarted")

    store.send_message("test", "supervisor", {"type": "restart", "target": "coder_1"}, channel="sup")
    third = wait_until(lambda: live_worker(store, "coder_1", not_pid=second["pid"]), 20, what="coder_1 restarted")

    # A start that arrives while the stopped worker is still finishing its task
    # (a Start right after a Stop) brings it back once it has exited.
    busy = store.enqueue("sleepy", {"seconds": 2})
    wait_until(lambda: store.get(busy.id).status == "RUNNING", 20, what="the worker busy")
    store.send_message("test", "supervisor", {"type": "stop", "role": "coder"}, channel="sup")
    wait_until(lambda: store.get_agent("coder_1")["status"] == "stopping", 20, what="coder stopping")
    store.send_message("test", "supervisor", {"type": "start", "role": "coder"}, channel="sup")
    wait_until(lambda: live_worker(store, "coder_1", not_pid=third["pid"]), 30, what="coder back after its stop")
    assert store.get(busy.id).status == "DONE"  # it finished its task before going

    status = wait_until(lambda: (fleet.home / "STATUS.md").exists() and (fleet.home / "STATUS.md").read_text(), 10)
    assert "coder_1" in status and "archivist" in status and "| PENDING |" in status
    samples = wait_until(lambda: store.liveness_samples(0), 10, what="liveness samples")
    assert samples[-1]["expected"] == 2
    assert "service no_such_service skipped" in (fleet.home / "logs" / "supervisor.log").read_text()

    store.send_message("test", "supervisor", {"type": "stop", "role": None}, channel="sup")
    assert sup.wait(30) == 0  # a whole-fleet stop is a clean, requested exit
    assert stop(sup) == 0


def test_dynamic_scaling_adds_extras_under_load_and_stops_them_when_idle(fleet):  # noqa: F811
    sup = fleet.start(workers={"coder_count": 1}, supervisor={
        "scale_up_depth": 3, "scale_up_after_s": 0.0, "scale_max_extra": 1, "scale_idle_s": 1.0})
    store = fleet.store
    wait_until(lambda: live_worker(store, "coder_1"), 30, what="coder_1 up")
    ids = [t.id for t in store.enqueue_many([{"skill": "sleepy", "payload": {"seconds": 0.3}} for _ in range(25)])]
    extra = wait_until(lambda: live_worker(store, "coder_extra1"), 30, what="an extra coder")
    wait_until(lambda: all(store.get(i).status == "DONE" for i in ids), 60, what="load done")
    assert any(store.get(i).worker == "coder_extra1" for i in ids)
    wait_until(lambda: store.get_agent("coder_extra1") is None, 30, what="idle extra stopped")
    assert store.get_agent("coder_extra2") is None  # never more than scale_max_extra
    from tests.fakes.fleetproc import pid_gone

    assert pid_gone(extra["pid"]) and live_worker(store, "coder_1")
    assert stop(sup) == 0


def test_recycle_message_replaces_the_worker_between_tasks(fleet):  # noqa: F811
    """memory_optimizer asks high-RSS workers to recycle: the worker exits
    between tasks (no task lost, not counted as a crash) and is replaced."""
    sup = fleet.start(workers={"coder_count": 1})
    store = fleet.store
    first = wait_until(lambda: live_worker(store, "coder_1"), 30, what="coder_1 running")
    store.send_message("memory_optimizer", "coder_1", {"type": "recycle", "when": "between_tasks"})
    second = wait_until(lambda: live_worker(store, "coder_1", not_pid=first["pid"]), 30, what="replacement")
    assert second["pid"] != first["pid"]
    exits = _exits(store, "coder_1")
    assert exits and exits[-1]["detail"]["exit_code"] == 79
    assert not [a for a in store.list_alerts() if a["dedup_key"].startswith("flapping:")]
    task = store.enqueue("noop", {})
    wait_until(lambda: store.get(task.id).status == "DONE", 30, what="replacement works")
    assert stop(sup) == 0


def test_wedged_worker_is_killed_before_its_expired_lease_is_reaped(fleet):  # noqa: F811
    """A skill stuck in a C call that holds the GIL cannot renew its lease. The
    supervisor kills that worker before the reaper requeues the task, so the
    task is never run by two workers at once (anchor lesson 4)."""
    from tests.fakes.fleetproc import pid_gone

    sup = fleet.start(workers={"coder_count": 1}, affinity={"coder": ["gilhog", "noop"]},
                      queue={"lease_s": 2.0, "reap_interval_s": 0.3})
    store = fleet.store
    first = wait_until(lambda: live_worker(store, "coder_1"), 30, what="coder_1 running")
    task = store.enqueue("gilhog", {"seconds": 60}, max_attempts=1)
    wait_until(lambda: store.get(task.id).status == "FAILED", 40, what="expired lease handled")
    # SIGKILL is sent before the reaper runs (the events below prove the
    # order), but the process may take a moment to be gone on a loaded box.
    wait_until(lambda: pid_gone(first["pid"]), 10, what="the wedged worker gone")
    kills = [e for e in store.recent_events(200, action="lease_expired_kill") if e["task_id"] == task.id]
    assert len(kills) == 1 and kills[0]["detail"]["pid"] == first["pid"]
    ended = [e for e in store.recent_events(200, task_id=task.id) if e["action"] in ("fail", "requeue")]
    assert ended and min(e["id"] for e in ended) > kills[0]["id"]  # killed first, requeued after
    wait_until(lambda: live_worker(store, "coder_1", not_pid=first["pid"]), 30, what="replacement")
    assert stop(sup) == 0
