"""A worker that runs several tasks at once ([workers.concurrency]) and claims
by loaded model ([workers] loaded_model_max_wait_s): real worker processes on
a real SQLite file, model calls to a loopback Ollama fake through the real
routing code, hw_state.json written as the hardware supervisor writes it."""

from __future__ import annotations

import os
import time

import pytest

from fleet.db import open_store
from fleet.hosts import qualified
from fleet.hw_state import hw_state_path, write_hw_state
from tests.fakes.fleetproc import (
    fleet,  # noqa: F401 (fixture)
    live_worker,
    start_worker,
    stop,
    wait_until,
    write_config,
)
from tests.fakes.model_servers import FakeOllama

AFFINITY = {"coder": ["noop", "sleepy", "hang", "modelchat"]}


def _pool_home(home, concurrency: int, **sections):
    cfg = write_config(home, affinity=AFFINITY, workers={"concurrency": {"coder": concurrency}}, **sections)
    return cfg, open_store(cfg)


def _outcomes(store, task_id):
    return [a["outcome"] for a in store.attempts(task_id)]


def _intervals(marker_dir):
    """(start, end) wall times of each sleepy run, from its marker files."""
    starts, ends = {}, {}
    for name in os.listdir(marker_dir):
        kind, _pid, stamp = name.split("-")
        (starts if kind == "start" else ends).setdefault(kind, []).append(float(stamp))
    return sorted(starts.get("start", [])), sorted(ends.get("end", []))


def _on_backend(store_factory, monkeypatch) -> dict:
    """fleet.toml sections that point a worker at a fresh store of this test's
    backend (SQLite file or PostgreSQL schema)."""
    spec = store_factory.spec(store_factory())  # created, closed and dropped by the factory
    if spec["backend"] == "postgresql":
        monkeypatch.setenv("FLEET_STORE_DSN", spec["dsn"])
        return {"store": {"backend": "postgresql", "schema": spec["schema"]}}
    return {"paths": {"db": spec["path"]}}


def test_a_hung_task_ends_its_process_and_the_others_lose_no_attempt(store_factory, isolated_home, tmp_path,
                                                                     monkeypatch):
    cfg, store = _pool_home(isolated_home, 4, **_on_backend(store_factory, monkeypatch))
    markers = tmp_path / "markers"
    markers.mkdir()
    try:
        # the long tasks outlast the hung one's 1.5 s timeout by far, even on a loaded machine
        long = [store.enqueue("sleepy", {"seconds": 6, "marker_dir": str(markers)}) for _ in range(2)]
        hung = store.enqueue("hang", {}, max_attempts=1)  # TIMEOUT_S = 1.5, ignores interruption
        quick = store.enqueue("noop", {"n": 1})
        proc = start_worker(isolated_home, "coder", "coder_1")
        try:
            # the quick task finishes beside the others; the hung one ends the process at its timeout
            assert proc.wait(30) == 75
        finally:
            if proc.poll() is None:
                proc.kill()
        assert store.get(quick.id).status == "DONE"
        h = store.get(hung.id)
        assert (h.status, h.error_reason, h.attempts) == ("FAILED", "timeout", 1)
        assert _outcomes(store, hung.id) == ["timeout"]
        for t in long:  # were running beside the hung task: released, no attempt used
            after = store.get(t.id)
            assert (after.status, after.attempts) == ("PENDING", 0), [
                (a["attempt_no"], a["outcome"], a["error"]) for a in store.attempts(t.id)]
            assert _outcomes(store, t.id) == ["released"]
            assert "overran its hard timeout" in store.attempts(t.id)[0]["error"]
        assert store.get_agent(qualified(cfg, "coder_1"))["current_task"] is None  # coder_1@host on PostgreSQL

        # a fresh worker runs the released tasks, both at once, each on its first counted attempt
        for name in os.listdir(markers):
            os.unlink(markers / name)
        proc = start_worker(isolated_home, "coder", "coder_1")
        try:
            wait_until(lambda: all(store.get(t.id).status == "DONE" for t in long), 30, what="released tasks done")
            assert [store.get(t.id).attempts for t in long] == [1, 1], [
                [(a["attempt_no"], a["outcome"], a["error"]) for a in store.attempts(t.id)] for t in long]
            assert [_outcomes(store, t.id) for t in long] == [["released", "done"]] * 2
            starts, ends = _intervals(markers)
            assert len(starts) == len(ends) == 2 and starts[1] < ends[0]  # the two runs overlapped
            assert stop(proc, 15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    finally:
        store.close()


def test_the_store_connections_of_a_pool_worker_stay_bounded(isolated_home):
    # The store keeps one connection per thread: a thread per task would leak
    # them (file descriptors here; server connections on PostgreSQL).
    cfg, store = _pool_home(isolated_home, 3)
    proc = start_worker(isolated_home, "coder", "coder_1")
    db = os.path.realpath(cfg["paths"]["db"])

    def db_fds():
        fds = []
        for fd in os.listdir(f"/proc/{proc.pid}/fd"):
            try:
                fds.append(os.readlink(f"/proc/{proc.pid}/fd/{fd}"))
            except OSError:
                pass
        return sum(1 for target in fds if target == db)

    try:
        wait_until(lambda: (a := store.get_agent("coder_1")) and a["status"] == "idle", 20, what="worker idle")
        for batch in range(3):
            tasks = store.enqueue_many([{"skill": "noop", "payload": {"n": i}} for i in range(20)])
            wait_until(lambda ts=tasks: all(store.get(t.id).status == "DONE" for t in ts), 30, what="a batch done")
            if batch == 0:
                after_first = db_fds()
        # 60 tasks later, no more connections than after the first 20 (a few per slot thread)
        assert db_fds() <= after_first <= 2 * (3 + 2) + 2, (after_first, db_fds())
        assert stop(proc, 15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        store.close()


def test_cancel_stops_one_task_and_the_others_run_on(isolated_home):
    cfg, store = _pool_home(isolated_home, 3)
    proc = start_worker(isolated_home, "coder", "coder_1")
    try:
        doomed = store.enqueue("sleepy", {"seconds": 60})
        other = store.enqueue("sleepy", {"seconds": 2})
        wait_until(lambda: store.get(doomed.id).status == "RUNNING" and store.get(other.id).status == "RUNNING",
                   20, what="both running")
        store.cancel(doomed.id, by="test")
        wait_until(lambda: store.get(doomed.id).status == "CANCELLED", 15, what="cancelled")
        wait_until(lambda: store.get(other.id).status == "DONE", 15, what="the other task done")
        assert store.get(other.id).attempts == 1 and proc.poll() is None
        nxt = store.enqueue("noop", {"n": 2})
        wait_until(lambda: store.get(nxt.id).status == "DONE", 10, what="next task after the cancel")
        assert stop(proc, 15) == 0
        assert store.get_agent("coder_1")["status"] == "stopped"
    finally:
        if proc.poll() is None:
            proc.kill()
        store.close()


def test_a_lost_lease_stops_that_task_only(isolated_home, tmp_path):
    import sqlite3

    from fleet.logs import log_path

    cfg, store = _pool_home(isolated_home, 2)
    markers = tmp_path / "markers"
    markers.mkdir()
    proc = start_worker(isolated_home, "coder", "coder_1")
    try:
        victim = store.enqueue("sleepy", {"seconds": 60, "marker_dir": str(markers)})
        other = store.enqueue("sleepy", {"seconds": 3})
        wait_until(lambda: store.get(victim.id).status == "RUNNING" and store.get(other.id).status == "RUNNING",
                   20, what="both running")
        # another holder took the victim's lease (as after a reap and a new claim elsewhere)
        db = sqlite3.connect(cfg["paths"]["db"], isolation_level=None)
        db.execute("UPDATE tasks SET lease_token = 'taken-elsewhere' WHERE id = ?", (victim.id,))
        db.close()
        text = lambda: open(log_path(cfg, "coder_1"), encoding="utf-8").read()  # noqa: E731
        wait_until(lambda: f"[task {victim.id}] stopped: this worker no longer holds" in text(), 15,
                   what="the victim's skill stopped")
        assert not [n for n in os.listdir(markers) if n.startswith("end-")]  # interrupted, not finished
        wait_until(lambda: store.get(other.id).status == "DONE", 15, what="the other task done")
        assert store.get(victim.id).lease_token == "taken-elsewhere"  # nothing was written for it
        assert proc.poll() is None
        assert stop(proc, 15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        store.close()


def _write_loaded(cfg, models):
    now = time.time()
    write_hw_state(hw_state_path(cfg), {
        "schema_version": 1, "written_at": now, "interval_s": 300.0, "host": "test", "source": "cpu",
        "tier": {"name": "cpu", "model": models[0], "num_gpu": 0, "reason": "test", "changed_at": now},
        "models": {"server_url": None, "server_reachable": True, "loaded": [{"name": m} for m in models],
                   "conductor_loaded": None}})


@pytest.mark.parametrize("concurrency", [1, 2])
def test_worker_takes_tasks_on_the_loaded_model_first_within_the_age_bound(isolated_home, concurrency):
    with FakeOllama() as ollama:
        cfg = write_config(isolated_home, affinity=AFFINITY, workers={"concurrency": {"coder": concurrency},
                                                                      "loaded_model_max_wait_s": 30.0},
                           models={"chain": ["local"], "max_wait_s": 0}, hardware={"interval_s": 300.0},
                           providers={"local": {"type": "ollama", "base_url": ollama.url, "model": "a",
                                                "min_spacing_ms": 0}})
        store = open_store(cfg)
        _write_loaded(cfg, ["b:latest"])
        try:
            # c has waited 100 s longer than the rest: past the 30 s bound it goes first;
            # then every task on the loaded model b, then a (FIFO would alternate a, b)
            old = store.enqueue("modelchat", {"model": "c"}, available_at=time.time() - 100)
            mixed = store.enqueue_many([{"skill": "modelchat", "payload": {"model": m}} for m in "abababab"])
            proc = start_worker(isolated_home, "coder", "coder_1")
            try:
                wait_until(lambda: all(store.get(t.id).status == "DONE" for t in [old, *mixed]), 30,
                           what="all model tasks done")
                assert stop(proc, 15) == 0
            finally:
                if proc.poll() is None:
                    proc.kill()
            tasks = sorted((store.get(t.id) for t in [old, *mixed]), key=lambda t: t.started_at)
            order = [t.result["model"] for t in tasks]
            assert order == ["c"] + ["b"] * 4 + ["a"] * 4, order
            # the real client code made every call, each on the model its task named
            chats = [r.body["model"] for r in ollama.requests_to("/api/chat")]
            assert sorted(chats) == sorted(order)
        finally:
            store.close()


def test_a_task_on_another_model_waits_for_the_running_model_and_can_be_cancelled_meanwhile(isolated_home):
    with FakeOllama() as ollama:
        ollama.default.delay_s = 3.0  # every model call takes 3 s
        cfg = write_config(isolated_home, affinity=AFFINITY, workers={"concurrency": {"coder": 3}},
                           models={"chain": ["local"], "max_wait_s": 0}, hardware={"interval_s": 300.0},
                           providers={"local": {"type": "ollama", "base_url": ollama.url, "model": "a",
                                                "min_spacing_ms": 0}})
        store = open_store(cfg)
        _write_loaded(cfg, ["a"])
        proc = start_worker(isolated_home, "coder", "coder_1")
        try:
            on_a = store.enqueue_many([{"skill": "modelchat", "payload": {"model": "a"}} for _ in range(2)])
            on_b = store.enqueue("modelchat", {"model": "b"})
            # all three are claimed (3 slots), but b is not sent to the server while a runs:
            # the server would swap to b and back
            wait_until(lambda: all(store.get(t.id).status == "RUNNING" for t in [*on_a, on_b]), 20,
                       what="three running")
            assert ollama.wait_for_requests(2, path="/api/chat")
            store.cancel(on_b.id, by="test")
            wait_until(lambda: store.get(on_b.id).status == "CANCELLED", 10, what="held task cancelled")
            assert [r.body["model"] for r in ollama.requests_to("/api/chat")] == ["a", "a"]
            wait_until(lambda: all(store.get(t.id).status == "DONE" for t in on_a), 20, what="a tasks done")
            assert _outcomes(store, on_b.id) == ["cancelled"]
            assert stop(proc, 15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            store.close()


def test_under_the_supervisor_an_overrun_is_replaced_and_costs_the_others_no_attempt(fleet):  # noqa: F811
    sup = fleet.start(workers={"coder_count": 1, "concurrency": {"coder": 3}}, affinity=AFFINITY)
    store = fleet.store
    first = wait_until(lambda: live_worker(store, "coder_1"), 30, what="coder_1 up")
    # the long tasks outlast the hung one's 1.5 s timeout by far, even on a loaded machine
    *long, hung = store.enqueue_many([{"skill": "sleepy", "payload": {"seconds": 8}}] * 2
                                     + [{"skill": "hang", "payload": {}, "max_attempts": 1}])
    wait_until(lambda: store.get(hung.id).status == "FAILED", 30, what="the hung task timed out")
    wait_until(lambda: all(store.get(t.id).status == "DONE" for t in long), 40, what="the others done")
    assert store.get(hung.id).error_reason == "timeout"
    for t in long:
        assert store.get(t.id).attempts == 1 and _outcomes(store, t.id) == ["released", "done"]
    assert live_worker(store, "coder_1", not_pid=first["pid"])  # the supervisor replaced the worker
    assert stop(sup) == 0


def test_log_lines_and_usage_rows_name_the_task_of_their_own_thread(tmp_path):
    import logging
    import threading

    import fleet.logs
    from fleet.logs import current_context, set_current_task, setup_process_logging

    root = logging.getLogger()
    saved = (list(root.handlers), root.level, fleet.logs._context)
    try:
        setup_process_logging("pooltest", {"paths": {"logs": str(tmp_path)}})
        set_current_task(7)  # the main thread's task (a single-task worker)
        seen = {}

        def slot():
            set_current_task(9)  # a pool slot's own task
            seen["slot"] = current_context()
            logging.getLogger("fleet.test").warning("from the slot")

        def helper():  # a thread a skill starts itself: the main thread's task
            seen["helper"] = current_context()

        for target in (slot, helper):
            t = threading.Thread(target=target)
            t.start()
            t.join()
        assert seen == {"slot": (9, "pooltest"), "helper": (7, "pooltest")}
        assert current_context() == (7, "pooltest")
        for h in logging.getLogger().handlers:
            h.flush()
        assert "pooltest [task 9] from the slot" in (tmp_path / "pooltest.log").read_text()
    finally:
        set_current_task(None)
        for h in list(root.handlers):
            root.removeHandler(h)
            h.close()
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
        fleet.logs._context = saved[2]  # this process is no fleet process again


def test_the_supervisor_fails_only_the_overrun_task_of_a_pool_worker():
    from fleet.children import overran_timeout

    now = 1000.0
    single = {"detail": {"task": 5, "skill": "hang", "deadline": 990.0}}
    pool = {"detail": {"task": 5, "deadline": 990.0, "tasks": [{"task": 5, "skill": "hang", "deadline": 990.0},
                                                               {"task": 6, "skill": "sleepy", "deadline": 1200.0},
                                                               {"task": 7, "skill": "sleepy", "deadline": None}]}}
    assert overran_timeout(single, 5, now) and overran_timeout(None, 5, now)  # one task: it is the one
    assert overran_timeout(pool, 5, now)
    assert not overran_timeout(pool, 6, now)  # still within its timeout: a bystander
    assert not overran_timeout(pool, 7, now)  # its skill had not started
    assert not overran_timeout(pool, 8, now)  # claimed after the last heartbeat


def test_a_skill_loaded_by_several_slots_at_once_is_never_taken_half_loaded(isolated_home, tmp_path):
    import sys
    import threading

    from fleet import skill_registry

    skills = tmp_path / "slowskills"
    skills.mkdir()
    (skills / "slowload.py").write_text('"""Test skill: slow to import."""\nimport time\n\ntime.sleep(0.3)\n\n\n'
                                        'def run(payload, config, log):\n    return {}\n')
    cfg = write_config(isolated_home, skills={"extra_paths": [str(skills)]})
    info = skill_registry.get_info("slowload", cfg)
    got = []

    def load():
        module = skill_registry.load_module(info)
        got.append((module, callable(getattr(module, "run", None))))  # as the slot gets it, not later

    threads = [threading.Thread(target=load) for _ in range(6)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert len(got) == 6 and all(ready for _, ready in got)
        assert len({id(m) for m, _ in got}) == 1  # loaded once
    finally:
        sys.modules.pop("fleet_extra_skill_slowload", None)
