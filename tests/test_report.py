"""The phase report on synthetic liveness samples and task history: uptime
over 1 and 30 days, days at >= 95 %, capacity utilisation, tasks done /
failed / retried per day, worker restarts; text, --json and markdown output."""

from __future__ import annotations

import time

import pytest

from fleet import report
from fleet.config import validate
from tests.fakes.cli_runner import cli

DAY = 86400.0
STEP = 60.0
CFG = validate({"fleet": {"name": "test"}, "supervisor": {"status_interval_s": STEP}})  # the loader's defaults


def _samples(store, start, end, expected, alive, busy):
    t = start
    while t < end:
        store.record_liveness(expected, alive, busy, ts=t)
        t += STEP


def _seed(store, now):
    today = now - now % DAY
    _samples(store, today - 3 * DAY, today - 2 * DAY, 2, 1, 1)        # D-3: one of two workers up
    _samples(store, today - 2 * DAY, today - 1.5 * DAY, 2, 2, 0)      # D-2: up for half the day, idle
    _samples(store, today - DAY, today, 2, 2, 1)                      # D-1: all up, half busy
    _samples(store, today, now, 2, 2, 2)                              # today so far: all up and busy
    return today


def test_uptime_days_at_target_and_utilisation(store):
    now = time.time()
    if now % DAY < 600:  # just after midnight the 'today' bucket is too short to say much
        now -= 600
    today = _seed(store, now)
    rep = report.build_report(CFG, store, now=now)
    days = {d["date"]: d for d in rep["days"]}
    day = lambda k: days[time.strftime("%Y-%m-%d", time.gmtime(today - k * DAY))]
    assert day(1)["uptime_pct"] == pytest.approx(100.0, abs=0.01)
    assert day(1)["utilisation_pct"] == pytest.approx(50.0, abs=0.01)
    # the last sample of a half day covers 2.5 intervals, no more
    assert day(2)["uptime_pct"] == pytest.approx(100 * (DAY / 2 - STEP + 2.5 * STEP) / DAY, abs=0.01)
    assert day(3)["uptime_pct"] == pytest.approx(50.0, abs=0.01)
    assert day(3)["utilisation_pct"] == pytest.approx(100.0, abs=0.01)
    assert day(5)["uptime_pct"] == 0.0 and day(5)["utilisation_pct"] is None
    assert rep["days_at_target"] == 1 and rep["streak_days"] == 1
    assert rep["uptime_pct"]["day"] == pytest.approx(100.0, abs=0.1)
    up_seconds = 0.5 * DAY + (DAY / 2 + 1.5 * STEP) + DAY + (now - today)
    assert rep["uptime_pct"]["month"] == pytest.approx(100 * up_seconds / (30 * DAY), abs=0.05)
    alive = 1 * DAY + 2 * (DAY / 2 + 1.5 * STEP) + 2 * DAY + 2 * (now - today)
    busy = 1 * DAY + 0 + 1 * DAY + 2 * (now - today)
    assert rep["capacity_utilisation_pct"]["month"] == pytest.approx(100 * busy / alive, abs=0.05)
    assert rep["phase2_ready"] is False
    met = {r["resource"]: r["met"] for r in rep["resources"]}
    assert met["Fleet operational"] is True and met["Uptime (30d average)"] is False


def test_thirty_good_days_make_phase_two_ready(store):
    now = time.time()
    today = now - now % DAY
    _samples(store, today - 30 * DAY, now, 3, 3, 2)
    rep = report.build_report(CFG, store, now=now)
    assert rep["days_at_target"] == 30 and rep["streak_days"] == 30
    assert rep["uptime_pct"]["month"] > 99.9
    assert rep["capacity_utilisation_pct"]["month"] == pytest.approx(66.67, abs=0.01)
    assert rep["phase2_ready"] is True


def test_tasks_per_day_and_restarts(store):
    for i in range(3):
        store.enqueue("noop", {"i": i})
    for i in range(3):
        t = store.claim("w", ["noop"])
        if i == 0:  # a busy model provider: given back for later, not a retry
            store.release(t.id, t.lease_token, outcome="deferred", note="provider busy")
            t = store.claim("w", ["noop"])
        store.complete(t.id, t.lease_token, {})
    store.enqueue("flaky", {}, max_attempts=2)
    t = store.claim("w", ["flaky"])
    store.fail(t.id, t.lease_token, "first try failed")          # retried
    deadline = time.monotonic() + 10
    t2 = None
    while t2 is None and time.monotonic() < deadline:
        t2 = store.claim("w", ["flaky"])
        time.sleep(0.01)
    store.fail(t2.id, t2.lease_token, "second try failed")        # final: FAILED
    for intent in (None, None, "stop", "restart"):
        store.record_event("supervisor", "child_exit", agent="coder_1", detail={"intent": intent, "exit_code": 1})
    rep = report.build_report(CFG, store)
    today = rep["days"][-1]
    assert (today["done"], today["failed"], today["retried"]) == (3, 1, 1)
    assert today["worker_restarts"] == 2 and rep["worker_restarts"] == {"day": 2, "month": 2}
    assert rep["tasks"] == {"done": 3, "failed": 1, "retried": 1, "cancelled": 0}


def test_cli_report_text_json_markdown(fleet_home):
    from fleet.config import load_config
    from fleet.db import open_store

    s = open_store(load_config(fleet_home))
    now = time.time()
    _samples(s, now - 3600, now, 1, 1, 1)
    s.close()
    r = cli(fleet_home, "report")
    assert r.rc == 0, r
    assert "Uptime (30d average)" in r.out and "Phase 2 trigger: NOT READY" in r.out
    r = cli(fleet_home, "report", "--json")
    doc = r.json()
    assert doc["samples"] == 60 and doc["window_days"] == 30 and len(doc["days"]) == 31
    for key in ("uptime_pct", "capacity_utilisation_pct", "days_at_target", "worker_restarts", "tasks",
                "resources", "phase2_ready"):
        assert key in doc
    out = fleet_home / "phase.md"
    r = cli(fleet_home, "report", "--output", str(out))
    assert r.rc == 0 and out.read_text().startswith("# Phase report")
    assert "| Resource | Value | Target | Status |" in out.read_text()
    assert cli(fleet_home, "report", "--output", str(fleet_home / "no" / "such" / "dir.md")).rc == 1
