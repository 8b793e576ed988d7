"""Agent names and the single-instance lock on a fleet that may span several
hosts (fleet.hosts): unchanged on SQLite, host-qualified on PostgreSQL, and
the per-host summary that status, STATUS.md and the dashboard show."""

from __future__ import annotations

from fleet.config import worker_names
from fleet.hosts import base_name, host_of, host_summary, qualified, supervisor_for, supervisor_name
from fleet.supervisor import lock_path
from tests.fakes.fleetproc import write_config


def _cfg(home, backend: str, host: str = "gpu-box"):
    store = {"backend": backend}
    if backend == "postgresql":
        store["dsn"] = "postgresql://fleet@db.lan/fleet"
    return write_config(home, workers={"coder_count": 2}, fleet={"host": host}, store=store)


def test_names_are_unchanged_on_sqlite_and_carry_the_host_on_postgresql(isolated_home):
    lite = _cfg(isolated_home, "sqlite")
    assert worker_names(lite) == [("coder_1", "coder"), ("coder_2", "coder")]
    assert supervisor_name(lite) == "supervisor" and qualified(lite, "dashboard") == "dashboard"
    pg = _cfg(isolated_home, "postgresql")
    assert worker_names(pg) == [("coder_1@gpu-box", "coder"), ("coder_2@gpu-box", "coder")]
    assert supervisor_name(pg) == "supervisor@gpu-box" and qualified(pg, "coder_1@other") == "coder_1@other"
    assert base_name("coder_1@gpu-box") == "coder_1" and host_of("coder_1@gpu-box") == "gpu-box"
    assert host_of("coder_1") is None
    # a control message about an agent goes to the supervisor of the agent's own host
    assert supervisor_for(pg, "coder_1@other") == "supervisor@other"
    assert supervisor_for(pg, "coder") == "supervisor@gpu-box" and supervisor_for(lite, None) == "supervisor"


def test_the_instance_lock_is_per_home_and_host_on_postgresql(isolated_home):
    assert lock_path(_cfg(isolated_home, "sqlite")).name == ".fleet.lock"
    a = lock_path(_cfg(isolated_home, "postgresql", "host-a"))
    b = lock_path(_cfg(isolated_home, "postgresql", "host b/x"))
    assert a.name == ".fleet.host-a.lock" and b.name == ".fleet.host_b_x.lock" and a.parent == b.parent


def test_host_summary_marks_a_host_lost_when_its_live_agents_stopped_heartbeating():
    agents = [
        {"name": "coder_1@a", "host": "a", "status": "busy", "heartbeat_age_s": 1.0, "detail": None},
        {"name": "hw_supervisor@a", "host": "a", "status": "running", "heartbeat_age_s": 2.0,
         "detail": {"tier": "large"}},
        {"name": "coder_1@b", "host": "b", "status": "busy", "heartbeat_age_s": 600.0, "detail": None},
        {"name": "coder_1@c", "host": "c", "status": "stopped", "heartbeat_age_s": 900.0, "detail": None},
    ]
    by = {h["host"]: h for h in host_summary(agents, "a", 120.0)}
    assert by["a"]["state"] == "up" and by["a"]["this_host"] and by["a"]["tier"] == "large"
    assert by["a"]["running"] == 2 and by["a"]["last_seen_age_s"] == 1.0
    assert by["b"]["state"] == "lost" and by["b"]["lost"] == 1 and by["b"]["running"] == 0
    assert by["c"]["state"] == "stopped" and by["c"]["lost"] == 0
