"""The worker process on its own (no supervisor): claiming by affinity and by name,
payload validation, offline refusal, HITL, pause/resume/stop, cancel, training
lock and the hard skill timeout that ends the process."""

from __future__ import annotations

import signal
import time

import pytest

from fleet.db import open_store
from tests.fakes.fleetproc import start_worker, stop, wait_until, write_config

AFFINITY = {"coder": ["noop", "sleepy", "hang", "fails", "gpuskill", "netskill", "chatty", "guarded"]}


@pytest.fixture
def home(isolated_home):
    cfg = write_config(isolated_home, affinity=AFFINITY)
    s = open_store(cfg)
    yield isolated_home, s
    s.close()


def _status(store, tid):
    return store.get(tid).status


def test_worker_runs_validates_and_obeys_controls(home):
    home_dir, store = home
    proc = start_worker(home_dir, "coder", "coder_1")
    try:
        wait_until(lambda: (a := store.get_agent("coder_1")) and a["status"] == "idle", 20, what="worker idle")
        ok = store.enqueue("noop", {"n": 7})
        unknown = store.enqueue("no_such_skill", {}, assigned_to="coder_1")
        bad = store.enqueue("noop", {"n": "seven"})
        notdict = store.enqueue("notdict", {}, assigned_to="coder_1")
        ask = store.enqueue("ask", {}, assigned_to="coder_1")
        other = store.enqueue("summarize", {})  # not in this role's affinity: never claimed
        wait_until(lambda: store.get(ask.id).status == "WAITING_HUMAN", 20, what="ask parked")
        wait_until(lambda: all(_status(store, t.id) in ("DONE", "FAILED") for t in (ok, unknown, bad, notdict)), 20)
        assert store.get(ok.id).result == {"n": 7, "ok": True}
        u = store.get(unknown.id)
        assert (u.status, u.error_reason, u.attempts) == ("FAILED", "unknown_skill", 1)
        assert "no_such_skill" in u.error and "noop" in u.error  # names the known skills
        b = store.get(bad.id)
        assert (b.status, b.error_reason, b.attempts) == ("FAILED", "invalid_payload", 1)
        assert "'n'" in b.error
        assert store.get(notdict.id).error_reason == "bad_result"
        store.answer(ask.id, "yes")
        wait_until(lambda: _status(store, ask.id) == "DONE", 20, what="answered task done")
        assert store.get(ask.id).result == {"answer": "yes"}

        # fleet-wide pause flag: nothing is claimed until it is cleared
        store.set_flag("paused", True, by="test")
        wait_until(lambda: store.get_agent("coder_1")["status"] == "paused", 10, what="paused")
        held = store.enqueue("noop", {"n": 1})
        time.sleep(1.0)
        assert _status(store, held.id) == "PENDING"
        store.set_flag("paused", False, by="test")
        wait_until(lambda: _status(store, held.id) == "DONE", 10, what="resumed after flag")

        # pause / resume by message
        store.send_message("test", "coder_1", {"type": "pause"})
        wait_until(lambda: store.get_agent("coder_1")["status"] == "paused", 10, what="paused by message")
        held2 = store.enqueue("noop", {"n": 2})
        time.sleep(1.0)
        assert _status(store, held2.id) == "PENDING"
        store.send_message("test", "coder_1", {"type": "resume"})
        wait_until(lambda: _status(store, held2.id) == "DONE", 10, what="resumed by message")

        # training lock: USES_GPU skills wait, others still run
        assert store.acquire_lock("training", "trainer", 60)
        gpu = store.enqueue("gpuskill", {})
        cpu = store.enqueue("noop", {"n": 3})
        wait_until(lambda: _status(store, cpu.id) == "DONE", 10, what="cpu task during training")
        time.sleep(0.8)
        assert _status(store, gpu.id) == "PENDING"
        store.release_lock("training", "trainer")
        wait_until(lambda: _status(store, gpu.id) == "DONE", 10, what="gpu task after training")

        assert _status(store, other.id) == "PENDING"
        store.send_message("test", "coder_1", {"type": "stop"})
        assert proc.wait(15) == 0
        assert store.get_agent("coder_1")["status"] == "stopped"
    finally:
        if proc.poll() is None:
            proc.kill()



def test_outcomes_the_store_refuses_fail_the_task_and_the_worker_goes_on(home):
    # Found in review: a failure text with a lone surrogate crashed the worker
    # (a crash loop, as every retry failed the same way), and a result JSON
    # cannot encode left the task RUNNING until its lease ran out.
    home_dir, store = home
    proc = start_worker(home_dir, "coder", "coder_1")
    try:
        wait_until(lambda: (a := store.get_agent("coder_1")) and a["status"] == "idle", 20, what="worker idle")
        odd_error = store.enqueue("fails", {"surrogate": True}, max_attempts=1)
        odd_result = store.enqueue("notdict", {"kind": "unserialisable"}, assigned_to="coder_1")
        after = store.enqueue("noop", {"n": 3})
        wait_until(lambda: all(_status(store, t.id) in ("DONE", "FAILED") for t in (odd_error, odd_result, after)),
                   20, what="all three finished")
        e = store.get(odd_error.id)
        assert (e.status, e.error_reason) == ("FAILED", "error") and "caf\\udce9.txt" in e.error
        r = store.get(odd_result.id)
        assert (r.status, r.error_reason, r.attempts) == ("FAILED", "bad_result", 1)
        assert "not JSON-serialisable" in r.error
        assert _status(store, after.id) == "DONE" and proc.poll() is None
    finally:
        stop(proc)


def test_cancel_interrupts_running_skill_and_worker_goes_on(home):
    home_dir, store = home
    proc = start_worker(home_dir, "coder", "coder_1")
    try:
        long = store.enqueue("sleepy", {"seconds": 60})
        wait_until(lambda: _status(store, long.id) == "RUNNING", 20, what="long task running")
        store.cancel(long.id, by="test")
        wait_until(lambda: _status(store, long.id) == "CANCELLED", 10, what="cancelled")
        after = store.enqueue("noop", {"n": 1})
        wait_until(lambda: _status(store, after.id) == "DONE", 10, what="next task after cancel")
        assert proc.poll() is None
        assert stop(proc, 10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_hard_timeout_ends_the_process_and_records_timeout(home):
    home_dir, store = home
    proc = start_worker(home_dir, "coder", "coder_1")
    try:
        hung = store.enqueue("hang", {}, max_attempts=2)  # TIMEOUT_S = 1.5, ignores interruption
        assert proc.wait(30) == 75
        task = store.get(hung.id)
        assert task.status == "PENDING" and task.error_reason == "timeout"
        assert [a["outcome"] for a in store.attempts(hung.id)] == ["timeout"]
        assert store.get_agent("coder_1")["current_task"] is None
    finally:
        if proc.poll() is None:
            proc.kill()


def test_hard_timeout_of_a_skill_stopped_inside_logging_still_exits(home):
    """The timeout may stop the skill while it holds a log handler's lock; the
    worker must still record the timeout and exit, not deadlock on that lock."""
    home_dir, store = home
    for _ in range(2):  # twice: the skill is stopped at a different point each time
        proc = start_worker(home_dir, "coder", "coder_1")
        try:
            task = store.enqueue("chatty", {}, max_attempts=1)
            assert proc.wait(30) == 75
            done = store.get(task.id)
            assert done.status == "FAILED" and done.error_reason == "timeout"
        finally:
            if proc.poll() is None:
                proc.kill()


def test_requires_approval_parks_each_task_until_a_person_approves(home):
    home_dir, store = home
    proc = start_worker(home_dir, "coder", "coder_1")
    try:
        yes = store.enqueue("guarded", {"what": "deploy"})
        no = store.enqueue("guarded", {"what": "drop tables"})
        for t in (yes, no):
            wait_until(lambda t=t: _status(store, t.id) == "WAITING_HUMAN", 20, what="parked for approval")
        question = store.get(yes.id).question
        assert question["options"] == ["approve", "reject"] and "deploy" in question["question"]
        store.answer(yes.id, {"choice": "approve"})
        store.answer(no.id, "reject")
        wait_until(lambda: _status(store, yes.id) == "DONE" and _status(store, no.id) == "FAILED", 20)
        # the skill ran with the payload as sent: the approval is the worker's, not the skill's
        assert store.get(yes.id).result == {"done": "deploy", "saw_answer": None}
        rejected = store.get(no.id)
        assert rejected.error_reason == "rejected" and "did not approve" in rejected.error
        assert rejected.result is None
    finally:
        stop(proc)


def test_offline_mode_refuses_network_skills(isolated_home):
    cfg = write_config(isolated_home, affinity=AFFINITY, fleet={"offline_mode": True})
    store = open_store(cfg)
    proc = start_worker(isolated_home, "coder", "coder_1")
    try:
        t = store.enqueue("netskill", {})
        wait_until(lambda: store.get(t.id).status == "FAILED", 20, what="network skill refused")
        task = store.get(t.id)
        assert task.error_reason == "offline" and task.attempts == 1
        assert "offline" in task.error and "netskill" in task.error
    finally:
        stop(proc, 10)
        store.close()


def test_sigterm_when_idle_exits_at_once_and_bad_role_is_config_error(home):
    home_dir, store = home
    proc = start_worker(home_dir, "coder", "coder_1")
    wait_until(lambda: (a := store.get_agent("coder_1")) and a["status"] == "idle", 20, what="idle")
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert time.monotonic() - t0 < 5
    bad = start_worker(home_dir, "no_such_role", "x")
    assert bad.wait(20) == 78
    err = bad.stderr.read()
    assert "no_such_role" in err and "[affinity]" in err


def test_idle_worker_may_take_other_skills_when_configured(isolated_home):
    cfg = write_config(isolated_home, affinity={"coder": ["sleepy"]}, workers={"idle_takes_any_skill": True})
    store = open_store(cfg)
    proc = start_worker(isolated_home, "coder", "coder_1")
    try:
        t = store.enqueue("noop", {"n": 5})  # not in the coder affinity
        wait_until(lambda: store.get(t.id).status == "DONE", 20, what="other skill taken when idle")
        assert store.get(t.id).worker == "coder_1"
    finally:
        stop(proc, 10)
        store.close()


def test_worker_exits_non_zero_when_the_store_cannot_be_opened(isolated_home):
    (isolated_home / "blocker").write_text("a file, not a folder")
    write_config(isolated_home, paths={"db": "blocker/fleet.db"})
    proc = start_worker(isolated_home, "coder", "coder_1")
    assert proc.wait(30) not in (0, None)
    assert "fatal" in proc.stderr.read()


def test_a_result_outlives_a_write_lock_held_past_the_busy_timeout(isolated_home, tmp_path):
    """The skill ends while another process holds the write lock for longer than
    [queue] busy_timeout_s: the worker keeps the result and retries (renewing its
    lease) until the store takes it; the skill is not run a second time."""
    import sqlite3

    cfg = write_config(isolated_home, affinity=AFFINITY, queue={"busy_timeout_s": 0.3, "lease_s": 2.0})
    store = open_store(cfg)
    pids = tmp_path / "runs"
    proc = start_worker(isolated_home, "coder", "coder_1")
    try:
        wait_until(lambda: (a := store.get_agent("coder_1")) and a["status"] == "idle", 20, what="worker idle")
        task = store.enqueue("sleepy", {"seconds": 0.5, "pid_file": str(pids)})
        wait_until(lambda: store.get(task.id).status == "RUNNING", 20, what="the task to start")
        blocker = sqlite3.connect(cfg["paths"]["db"], isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # held for 3 s: 10x the busy timeout, past the 2 s lease
        try:
            wait_until(lambda: pids.exists(), 10, what="the skill to run")
            time.sleep(3.0)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        wait_until(lambda: store.get(task.id).status == "DONE", 20, what="the kept result to be stored")
        assert len(pids.read_text().split()) == 1  # the skill ran once
        assert [a["outcome"] for a in store.attempts(task.id)] == ["done"]
        assert store.get(task.id).result["slept"] == 0.5
    finally:
        stop(proc)
        store.close()
