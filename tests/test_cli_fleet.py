"""lead_client against a real supervisor in a temp fleet home: status exit
codes (0 running, 3 degraded), dispatch --wait (done -> 0, failed -> 1),
start / stop / restart through the supervisor, restore refused while it runs,
and `stop` draining the whole fleet."""

from __future__ import annotations

import pytest

from tests.fakes.cli_runner import cli
from tests.fakes.fleetproc import start_supervisor, stop, wait_until, write_config

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def fleet(isolated_home):
    write_config(isolated_home, workers={"coder_count": 1}, queue={"max_attempts": 1},
                 affinity={"coder": ["noop", "sleepy", "fails"]}, dashboard={"enabled": False},
                 models={"chain": []}, supervisor={"heartbeat_timeout_s": 30.0})
    proc = start_supervisor(isolated_home)
    try:
        wait_until(lambda: cli(isolated_home, "status").rc == 0, timeout=60, step=0.3,
                   what="the fleet to report running")
        yield isolated_home
    finally:
        stop(proc)


def test_status_running_then_degraded_then_back(fleet):
    r = cli(fleet, "status", "--json")
    assert r.rc == 0, r
    doc = r.json()
    assert doc["state"] == "ok" and doc["supervisor"]["running"] and doc["supervisor"]["pid"] > 0
    assert doc["roles"] == [{"role": "coder", "expected": 1, "running": 1,
                             "statuses": doc["roles"][0]["statuses"], "state": "running"}]
    r = cli(fleet, "stop", "coder", "--json")
    assert r.rc == 0 and r.json()["acknowledged"] is True
    wait_until(lambda: cli(fleet, "status").rc == 3, timeout=30, step=0.3, what="status to say degraded")
    doc = cli(fleet, "status", "--json").json()
    assert doc["degraded_roles"] == ["coder"] and doc["exit_code"] == 3
    assert cli(fleet, "start", "coder").rc == 0
    wait_until(lambda: cli(fleet, "status").rc == 0, timeout=30, step=0.3, what="the coder to run again")


def test_dispatch_wait_done_and_failed(fleet):
    r = cli(fleet, "dispatch", "noop", '{"n": 5}', "--wait", "--timeout", "60", "--json")
    assert r.rc == 0, r
    task = r.json()["task"]
    assert task["status"] == "DONE" and task["result"] == {"n": 5, "ok": True} and r.json()["timed_out"] is False
    r = cli(fleet, "result", str(task["id"]), "--json")
    assert r.json()["attempts"][0]["outcome"] == "done"
    r = cli(fleet, "dispatch", "fails", "{}", "--wait", "--timeout", "60")
    assert r.rc == 1, r
    assert "FAILED" in r.err and "always fails" in r.err
    r = cli(fleet, "task", '{"skill": "noop", "n": 1}', "--wait", "--timeout", "60")
    assert r.rc == 0 and "DONE" in r.out


def test_restart_worker_replaces_it(fleet):
    before = next(a for a in cli(fleet, "status", "--json").json()["agents"] if a["name"] == "coder_1")["pid"]
    r = cli(fleet, "restart", "coder_1")
    assert r.rc == 0, r

    def new_pid():
        doc = cli(fleet, "status", "--json").json()
        a = next((a for a in doc["agents"] if a["name"] == "coder_1"), None)
        return doc["exit_code"] == 0 and a and a["pid"] != before and a["pid"]

    wait_until(new_pid, timeout=30, step=0.3, what="a new coder_1")


def test_restore_refused_while_running_then_stop_drains_fleet(fleet):
    r = cli(fleet, "backup", "--json")
    assert r.rc == 0, r
    bid = r.json()["id"]
    r = cli(fleet, "restore", bid)
    assert r.rc == 1 and "supervisor is running" in r.err and "lead_client.py stop" in r.err
    assert cli(fleet, "stop").rc == 0
    wait_until(lambda: cli(fleet, "status").rc == 69, timeout=60, step=0.3, what="the supervisor to exit")
    r = cli(fleet, "restore", bid, "--json")
    assert r.rc == 0, r
    assert r.json()["integrity"] == "ok"
