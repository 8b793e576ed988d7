"""Schedules: slot math and the enqueue decision with a fake clock, the
(schedule, slot) idempotency on both store backends, bad entries failing
--check-config with exit 78, the CLI, and a real supervisor firing, catching
up and obeying pause."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from fleet.schedule import (
    Schedule,
    Scheduler,
    decide,
    flag_name,
    idempotency_key,
    parse_schedule,
    parse_schedules,
)
from tests.fakes.cli_runner import cli
from tests.fakes.fleetproc import (  # noqa: F401 (fleet: a fixture)
    REPO,
    env_for,
    fleet,
    stop,
    wait_until,
    write_config,
)


def _sched(**kw) -> Schedule:
    entry = {"skill": "noop", "priority": 5, "catch_up": "once", **kw}
    return parse_schedule(kw.pop("name", "s"), entry)


def _ts(*parts, tz="UTC") -> float:
    return datetime(*parts, tzinfo=ZoneInfo(tz)).timestamp()


# -- slot math and the decision (fake clock) --------------------------------
def test_every_slots_are_aligned_to_the_epoch():
    s = _sched(every="15m")
    now = _ts(2026, 3, 1, 10, 7, 30)
    assert s.latest_slot(now) == _ts(2026, 3, 1, 10, 0)
    assert s.next_slot(now) == _ts(2026, 3, 1, 10, 15)
    assert s.latest_slot(_ts(2026, 3, 1, 10, 15)) == _ts(2026, 3, 1, 10, 15)  # a slot is due at its own second
    assert s.describe() == "every 15m"


def test_cron_slots_are_read_in_the_stated_zone():
    s = _sched(cron="0 3 * * *", timezone="Europe/Berlin")
    assert s.describe() == "cron 0 3 * * * (Europe/Berlin)"
    now = _ts(2026, 1, 10, 12, 0)  # winter: Berlin is UTC+1
    assert s.latest_slot(now) == _ts(2026, 1, 10, 2, 0)
    assert s.next_slot(now) == _ts(2026, 1, 11, 2, 0)
    summer = _ts(2026, 7, 10, 12, 0)  # summer: UTC+2
    assert s.latest_slot(summer) == _ts(2026, 7, 10, 1, 0)
    assert s.latest_slot(_ts(2026, 1, 10, 3, 0, tz="Europe/Berlin")) == _ts(2026, 1, 10, 3, 0, tz="Europe/Berlin")


def test_decide_on_time_late_paused_and_first_seen():
    hourly = _sched(every="1h")
    slot = _ts(2026, 3, 1, 10, 0)
    before = slot - 3600
    # on time: run it
    d = decide(hourly, before, slot + 5)
    assert (d.slot, d.enqueue) == (slot, True)
    # handled already: nothing
    assert decide(hourly, slot, slot + 5).slot is None
    # late by hours (down over three slots): catch_up once runs the newest once
    d = decide(hourly, before - 7200, slot + 1800)
    assert (d.slot, d.enqueue) == (slot, True) and "catch-up" in d.why
    # ... and catch_up none records it without a run
    d = decide(_sched(every="1h", catch_up="none"), before - 7200, slot + 1800)
    assert (d.slot, d.enqueue) == (slot, False)
    # paused: the slot passes without a run
    d = decide(hourly, before, slot + 5, paused=True)
    assert (d.slot, d.enqueue, d.why) == (slot, False, "paused")
    # a schedule seen for the first time runs an on-time slot, never an old one
    assert decide(hourly, None, slot + 5).enqueue
    assert not decide(hourly, None, slot + 1800).enqueue
    # disabled
    assert not decide(_sched(every="1h", enabled=False), before, slot + 5).enqueue


def test_short_interval_grace_is_half_its_period():
    s = _sched(every="10s")
    slot = _ts(2026, 3, 1, 10, 0, 0)
    assert decide(s, slot - 10, slot + 4).why == "due"
    assert decide(s, slot - 10, slot + 6).why.startswith("catch-up")


@pytest.mark.parametrize("entry, words", [
    ({"skill": "noop"}, "exactly one of cron"),
    ({"skill": "noop", "cron": "0 3 * * *", "every": "1h"}, "exactly one of cron"),
    ({"skill": "noop", "cron": "0 3 * *"}, "five fields"),
    ({"skill": "noop", "cron": "61 3 * * *"}, "not valid"),
    ({"skill": "noop", "every": "soon"}, "not an interval"),
    ({"skill": "noop", "every": "0s"}, "shorter than one second"),
    ({"skill": "noop", "every": "1h", "timezone": "Mars/Olympus"}, "not a known time zone"),
    ({"skill": "noop", "every": "1h", "catch_up": "all"}, "catch_up"),
    ({"every": "1h"}, "skill is required"),
])
def test_bad_entries_name_the_entry(entry, words):
    from fleet.schedule import ScheduleError

    with pytest.raises(ScheduleError) as err:
        parse_schedule("nightly", entry)
    assert "[schedule.nightly]" in str(err.value) and words in str(err.value)


# -- idempotency on the real store (both backends) -------------------------
def test_two_schedulers_enqueue_each_slot_once(store_factory):
    """Two supervisors (hosts) on one store, and a restart that lost every
    bit of memory, still give one task per (schedule, slot)."""
    a = store_factory()
    b = store_factory.reopen(a)
    schedules = {"tick": _sched(name="tick", every="1m")}
    clock = [_ts(2026, 3, 1, 10, 0, 1)]
    one = Scheduler(a, schedules, actor="supervisor@a", clock=lambda: clock[0])
    two = Scheduler(b, schedules, actor="supervisor@b", clock=lambda: clock[0])
    ids = []
    for _step in range(3):
        [(_, first, task_a)] = one.tick()
        assert first.enqueue
        # the other supervisor read the state before the first one wrote it (a race),
        # so it enqueues the same slot too: the store's idempotency key makes it one task
        b.set_flag(flag_name("tick", "slot"), {"slot": first.slot - 60})
        [(_, second, task_b)] = two.tick()
        assert second.enqueue and second.slot == first.slot and task_b.id == task_a.id
        ids.append(task_a.id)
        clock[0] += 60
    assert len(set(ids)) == 3
    tasks = a.list_tasks(limit=50).items
    assert sorted(t.idempotency_key for t in tasks) == sorted(
        idempotency_key("tick", _ts(2026, 3, 1, 10, m)) for m in range(3))
    assert {t.created_by for t in tasks} == {"schedule:tick"}
    # without a race, the second supervisor finds the slot handled
    [(_, first, _)] = one.tick()
    [(_, second, _)] = two.tick()
    assert first.enqueue and second.slot is None
    assert a.counts()["PENDING"] == 4


def test_schedule_rows_show_next_and_last_run_with_outcome(store):
    from fleet.schedule import run_now, schedule_rows, set_paused

    schedules = {"tick": _sched(name="tick", every="1h")}
    now = _ts(2026, 3, 1, 10, 0, 2)
    Scheduler(store, schedules, actor="sup", clock=lambda: now).tick()
    [row] = schedule_rows(store, schedules, now=now)
    assert row["next_run"] == _ts(2026, 3, 1, 11, 0)
    assert row["last_run"]["status"] == "PENDING" and row["last_run"]["slot"] == _ts(2026, 3, 1, 10, 0)
    claimed = store.claim("w", ["noop"])
    store.fail(claimed.id, claimed.lease_token, "boom", retryable=False)
    [row] = schedule_rows(store, schedules, now=now)
    assert row["last_run"]["status"] == "FAILED" and row["last_run"]["error"] == "boom"
    set_paused(store, "tick", True, by="t")
    task = run_now(store, schedules["tick"], by="t")
    [row] = schedule_rows(store, schedules, now=now)
    assert row["paused"] and row["next_run"] is None
    assert row["last_run"]["task_id"] == task.id and row["last_run"]["manual"]


# -- configuration, CLI and a real supervisor -------------------------------
def _check_config(home) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "fleet" / "supervisor.py"), "--check-config"],
                          cwd=str(REPO), env=env_for(home), capture_output=True, text=True, timeout=60)


def test_check_config_exits_78_naming_the_bad_entry(isolated_home):
    write_config(isolated_home, schedule={"ok": {"skill": "noop", "every": "1h"}})
    assert _check_config(isolated_home).returncode == 0
    for bad, words in ((({"skill": "noop", "cron": "0 3 * * * *"}), "five fields"),
                       ({"skill": "nosuchskill", "every": "1h"}, "not installed"),
                       ({"skill": "noop", "every": "1h", "payload": {"n": "x"}}, "payload")):
        text = (isolated_home / "fleet.toml").read_text()
        import tomlkit

        doc = tomlkit.parse(text)
        doc["schedule"]["broken"] = bad
        (isolated_home / "fleet.toml").write_text(tomlkit.dumps(doc))
        proc = _check_config(isolated_home)
        assert proc.returncode == 78, proc
        assert "[schedule.broken]" in proc.stderr and words in proc.stderr
        del doc["schedule"]["broken"]
        (isolated_home / "fleet.toml").write_text(tomlkit.dumps(doc))


def test_cli_list_run_pause_resume(isolated_home):
    write_config(isolated_home, schedule={"nightly": {"skill": "noop", "cron": "0 3 * * *",
                                                      "timezone": "Europe/Berlin", "payload": {"n": 7}}})
    r = cli(isolated_home, "schedule", "list", "--json")
    assert r.rc == 0, r
    [row] = r.json()["schedules"]
    assert row["when"] == "cron 0 3 * * * (Europe/Berlin)" and row["last_run"] is None and row["next_run"]
    r = cli(isolated_home, "schedule", "run", "nightly", "--json")
    assert r.rc == 0, r
    task = r.json()["task"]
    assert task["skill"] == "noop" and task["payload"] == {"n": 7} and task["created_by"] == "schedule:nightly"
    assert cli(isolated_home, "schedule", "pause", "nightly", "--json").json() == {"schedule": "nightly",
                                                                                   "paused": True}
    row = cli(isolated_home, "schedule", "list", "--json").json()["schedules"][0]
    assert row["paused"] and row["last_run"]["task_id"] == task["id"] and row["last_run"]["manual"]
    assert cli(isolated_home, "schedule", "resume", "nightly").rc == 0
    r = cli(isolated_home, "schedule", "list")
    assert r.rc == 0 and "active" in r.out and "nightly" in r.out
    r = cli(isolated_home, "schedule", "run", "weekly")
    assert r.rc == 2 and "no schedule named 'weekly'" in r.err and "nightly" in r.err


def test_supervisor_fires_each_slot_once_and_obeys_pause(fleet):  # noqa: F811
    fleet.start(workers={"coder_count": 1}, schedule={"tick": {"skill": "noop", "every": "1s",
                                                               "payload": {"n": 1}}})
    store = fleet.store

    def scheduled():
        return [t for t in store.list_tasks(limit=500).items if t.created_by == "schedule:tick"]

    wait_until(lambda: sum(t.status == "DONE" for t in scheduled()) >= 3, timeout=60, what="three scheduled runs")
    keys = [t.idempotency_key for t in scheduled()]
    assert len(keys) == len(set(keys))
    assert all(k.startswith("schedule:tick:") for k in keys)
    r = cli(fleet.home, "schedule", "pause", "tick")
    assert r.rc == 0, r
    # a slot passes while paused: recorded as such, with no task for it
    state = wait_until(lambda: (s := store.get_flag(flag_name("tick", "slot"))) and s["outcome"] == "paused" and s,
                       timeout=30, what="a paused slot")
    assert idempotency_key("tick", state["slot"]) not in {t.idempotency_key for t in scheduled()}
    row = cli(fleet.home, "schedule", "list", "--json").json()["schedules"][0]
    assert row["paused"] and row["last_run"]["status"] in ("DONE", "RUNNING", "PENDING")


@pytest.mark.parametrize("catch_up, runs", [("once", 1), ("none", 0)])
def test_slots_missed_while_down_run_once_on_start(fleet, catch_up, runs):  # noqa: F811
    """The fleet was down over three hourly slots: on start, catch_up = once
    enqueues the newest once; none skips them. A second start (restart)
    enqueues nothing more."""
    import time

    sched = {"hourly": {"skill": "noop", "every": "1h", "catch_up": catch_up}}
    write_config(fleet.home, schedule=sched)
    latest = parse_schedules({"schedule": {"hourly": {**sched["hourly"]}}})["hourly"].latest_slot(time.time())
    fleet.store.set_flag(flag_name("hourly", "slot"), {"slot": latest - 3 * 3600, "outcome": "enqueued"})
    for _ in range(2):
        p = fleet.start(schedule=sched)
        wait_until(lambda: (fleet.store.get_flag(flag_name("hourly", "slot")) or {}).get("slot", 0) >= latest,
                   timeout=30, what="the missed slot handled")
        stop(p)
        fleet.store.set_flag(flag_name("hourly", "slot"), {"slot": latest - 3 * 3600, "outcome": "enqueued"})
    tasks = [t for t in fleet.store.list_tasks(limit=50).items if t.created_by == "schedule:hourly"]
    assert len(tasks) == runs
    if runs:
        assert tasks[0].idempotency_key == idempotency_key("hourly", latest)
    assert datetime.fromtimestamp(latest, timezone.utc).minute == 0


def test_dashboard_lists_schedules_with_last_outcome(isolated_home):
    from tests.fakes.dashboard_env import make_app

    app, cfg, store = make_app(isolated_home, schedule={"tick": {"skill": "noop", "every": "15m"}})
    try:
        from fleet.schedule import run_now

        task = run_now(store, parse_schedules(cfg)["tick"], by="test")
        body = app.test_client().get("/api/schedules").get_json()
        [row] = body["schedules"]
        assert row["name"] == "tick" and row["when"] == "every 15m" and row["next_run"] % 900 == 0
        assert row["last_run"]["task_id"] == task.id and row["last_run"]["status"] == "PENDING"
        page = app.test_client().get("/", headers={"Accept": "text/html"}).get_data(as_text=True)
        assert 'id="schedules-card"' in page
    finally:
        store.close()


def test_nightly_report_schedule_runs_the_report_skill(fleet):  # noqa: F811
    """The shipped nightly-report example, run by hand on a real fleet: the
    report skill writes knowledge/reports/<date>.md."""
    fleet.start(workers={"archivist": 1}, affinity={"archivist": ["report"]},
                schedule={"nightly_report": {"skill": "report", "cron": "0 6 * * *", "payload": {"days": 1}}})
    r = cli(fleet.home, "schedule", "run", "nightly_report", "--json")
    assert r.rc == 0, r
    task_id = r.json()["task"]["id"]
    task = wait_until(lambda: (t := fleet.store.get(task_id)) and t.status in ("DONE", "FAILED") and t, timeout=60,
                      what="the report task")
    assert task.status == "DONE", task.error
    path = fleet.home / "knowledge" / task.result["path"].split("knowledge/", 1)[-1]
    assert path.is_file() and "uptime" in path.read_text().lower()


def test_preflight_checks_schedules_and_notify_secrets(isolated_home):
    from fleet.preflight import check_notify, check_schedules

    orphan = {"skill": "sleepy", "every": "1h", "payload": {"seconds": 1}}  # no configured role claims sleepy
    cfg = write_config(isolated_home, schedule={"tick": {"skill": "noop", "every": "1h"}, "orphan": orphan},
                       affinity={"coder": ["noop"]}, workers={"coder_count": 1},
                       notify={"ops": {"kind": "slack", "url_secret": "SLACK_URL"}})
    checks = check_schedules(cfg)
    assert checks[0]["ok"] and "tick (every 1h)" in checks[0]["detail"]
    [warn] = [c for c in checks if not c["ok"]]
    assert warn["level"] == "warn" and "[schedule.orphan]" in warn["detail"] and "sleepy" in warn["detail"]
    [secret] = check_notify(cfg)
    assert secret["level"] == "warn" and "SLACK_URL is not set" in secret["detail"]


def test_shipped_examples_are_valid_when_uncommented(isolated_home):
    """fleet.toml's commented [schedule.*] and [notify.*] examples pass
    --check-config once uncommented (and are off until then)."""
    from fleet.config import SCHEMA

    shipped = (REPO / "fleet.toml").read_text()
    assert "\n[schedule.nightly_backup]" not in shipped  # off by default
    examples = "\n\n".join("\n".join(line[2:] if line.startswith("# ") else line.lstrip("#")
                                     for line in SCHEMA[name].examples.splitlines())
                           for name in ("schedule", "notify"))
    (isolated_home / "fleet.toml").write_text(examples + "\n")
    proc = _check_config(isolated_home)
    assert proc.returncode == 0, proc.stderr
    from fleet.config import load_config

    names = set(parse_schedules(load_config(isolated_home)))
    assert names == {"nightly_backup", "nightly_report", "morning_briefing", "weekly_compact", "key_rotation_check", "memory_watch"}
