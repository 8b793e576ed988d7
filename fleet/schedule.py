"""Schedules: `[schedule.NAME]` entries parsed into Schedule objects, their slot
math (cron in a stated time zone, or a fixed `every` interval), the decision
what to enqueue for a slot, and the state kept in the store as flags.

A slot is the epoch second a run is due. Each run is enqueued with the
idempotency key `schedule:NAME:SLOT`, so however many supervisors (restarts,
hosts) see a slot, the store holds one task for it. The supervisor's part is
`Scheduler.tick()`; the CLI and the dashboard use `schedule_rows`, `run_now`
and `set_paused`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import time
from datetime import datetime, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

log = logging.getLogger("fleet.schedule")

CATCH_UP = ("once", "none")
ON_TIME_GRACE_S = 60.0  # a slot seen this soon after its time (at most half its period) is on time, not missed
_EVERY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class ScheduleError(ValueError):
    """A `[schedule.NAME]` entry that cannot run; the message names it."""


def flag_name(name: str, part: str) -> str:
    """The store flag holding one part of a schedule's state: `slot` (the
    last slot the supervisors handled), `manual` (the last run asked by
    hand), `paused`."""
    return f"schedule:{name}:{part}"


def idempotency_key(name: str, slot: float) -> str:
    return f"schedule:{name}:{int(slot)}"


def parse_every(text: str) -> float:
    """'15m' -> 900.0 (units s, m, h, d; at least one second)."""
    m = _EVERY.match(text or "")
    if not m:
        raise ValueError(f"every = {text!r} is not an interval; write a number and a unit, e.g. \"90s\", "
                         "\"15m\", \"6h\" or \"1d\"")
    seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds < 1:
        raise ValueError(f"every = {text!r} is shorter than one second")
    return seconds


def host_zone_name() -> str:
    """The host's IANA time-zone name (TZ, else /etc/localtime), or 'UTC'
    when none can be found."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz:
        try:
            ZoneInfo(tz)
            return tz
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        target = os.path.realpath("/etc/localtime")
        if "zoneinfo/" in target:
            name = target.split("zoneinfo/", 1)[1]
            ZoneInfo(name)
            return name
    except (OSError, ZoneInfoNotFoundError, ValueError):
        pass
    return "UTC"


@dataclasses.dataclass(frozen=True)
class Schedule:
    name: str
    skill: str
    payload: dict
    priority: int
    cron: str  # five fields, or "" for an interval schedule
    every_s: float  # 0 for a cron schedule
    zone: str  # the IANA zone cron fields are read in
    catch_up: str
    enabled: bool = True

    @property
    def tz(self) -> tzinfo:
        return ZoneInfo(self.zone)

    def describe(self) -> str:
        """'cron 0 3 * * * (Europe/Berlin)' or 'every 15m'."""
        if self.cron:
            return f"cron {self.cron} ({self.zone})"
        return f"every {_fmt_interval(self.every_s)}"

    def latest_slot(self, now: float) -> float:
        """The last slot at or before `now`."""
        if self.every_s:
            return math.floor(now / self.every_s) * self.every_s  # aligned to the epoch: every host agrees
        from cronsim import CronSim

        start = datetime.fromtimestamp(math.floor(now) + 1, self.tz)  # reverse iteration excludes its start
        return next(CronSim(self.cron, start, reverse=True)).timestamp()

    def next_slot(self, now: float) -> float:
        """The first slot after `now`."""
        if self.every_s:
            return (math.floor(now / self.every_s) + 1) * self.every_s
        from cronsim import CronSim

        return next(CronSim(self.cron, datetime.fromtimestamp(math.floor(now), self.tz))).timestamp()

    def grace_s(self, slot: float) -> float:
        """How late a slot may be seen and still count as on time."""
        if self.every_s:
            period = self.every_s
        else:
            period = slot - self.latest_slot(slot - 1)
        return min(ON_TIME_GRACE_S, period / 2)


def _fmt_interval(seconds: float) -> str:
    for unit in ("d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{int(seconds // _UNITS[unit])}{unit}"
    return f"{seconds:g}s"


def parse_schedule(name: str, entry: dict) -> Schedule:
    """One `[schedule.NAME]` table (with config defaults filled in) -> a
    Schedule; ScheduleError naming the entry when it cannot run."""
    where = f"[schedule.{name}]"
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
        raise ScheduleError(f"{where}: a schedule's name is 1-64 letters, digits, '_', '-' or '.'")
    if not entry.get("skill"):
        raise ScheduleError(f"{where}: skill is required (the skill each run enqueues, e.g. skill = \"backup\")")
    if not re.fullmatch(r"[A-Za-z0-9_]+", entry["skill"]):
        raise ScheduleError(f"{where}: skill = {entry['skill']!r} is not a skill name")
    cron, every = (entry.get("cron") or "").strip(), (entry.get("every") or "").strip()
    if bool(cron) == bool(every):
        raise ScheduleError(f"{where}: set exactly one of cron = \"MIN HOUR DAY MONTH WEEKDAY\" or "
                            "every = \"15m\"")
    zone = entry.get("timezone") or host_zone_name()
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"{where}: timezone = {zone!r} is not a known time zone; use an IANA name such as "
                            "\"Europe/Berlin\" or \"UTC\" (empty: the host's zone)") from None
    every_s = 0.0
    if cron:
        from cronsim import CronSim, CronSimError

        if len(cron.split()) != 5:
            raise ScheduleError(f"{where}: cron = {cron!r} must have five fields: minute hour day-of-month "
                                "month day-of-week (e.g. \"0 3 * * *\" is 03:00 every day)")
        try:
            CronSim(cron, datetime.now(ZoneInfo(zone)))
        except CronSimError as exc:
            raise ScheduleError(f"{where}: cron = {cron!r} is not valid: {exc}") from None
    else:
        try:
            every_s = parse_every(every)
        except ValueError as exc:
            raise ScheduleError(f"{where}: {exc}") from None
    if entry.get("catch_up", "once") not in CATCH_UP:
        raise ScheduleError(f"{where}: catch_up = {entry.get('catch_up')!r}; expected \"once\" or \"none\"")
    payload = entry.get("payload") or {}
    if not isinstance(payload, dict):
        raise ScheduleError(f"{where}: payload must be a table, e.g. payload = {{ mode = \"compact\" }}")
    return Schedule(name=name, skill=entry["skill"], payload=dict(payload), priority=int(entry.get("priority", 5)),
                    cron=cron, every_s=every_s, zone=zone, catch_up=entry.get("catch_up", "once"),
                    enabled=bool(entry.get("enabled", True)))


def parse_schedules(cfg: dict) -> dict[str, Schedule]:
    """Every `[schedule.NAME]` of the configuration, by name (ScheduleError
    on the first bad one)."""
    return {name: parse_schedule(name, entry) for name, entry in sorted(cfg.get("schedule", {}).items())}


def check_skills(cfg: dict) -> None:
    """Each schedule names an installed skill and a payload that skill
    accepts (ScheduleError naming the entry otherwise). Reads the skill
    catalogue, so it runs for --check-config and at supervisor start, not on
    every config load."""
    from . import skill_registry

    catalogue = skill_registry.discover(cfg)
    for sched in parse_schedules(cfg).values():
        info = catalogue.get(sched.skill)
        if info is None:
            raise ScheduleError(f"[schedule.{sched.name}]: skill {sched.skill!r} is not installed "
                                f"(installed: {', '.join(sorted(catalogue)) or '(none)'})")
        try:
            skill_registry.validate_payload(info, sched.payload)
        except skill_registry.InvalidPayload as exc:
            raise ScheduleError(f"[schedule.{sched.name}]: payload: {exc}") from None


# -- the decision (pure: the clock is an argument) -------------------------
@dataclasses.dataclass(frozen=True)
class Decision:
    slot: float | None  # the slot now handled (None: nothing to do)
    enqueue: bool
    why: str


def decide(sched: Schedule, last_slot: float | None, now: float, *, paused: bool = False) -> Decision:
    """What to do about `sched` at `now`, given the last slot handled.

    The newest slot at or before `now` is handled once: enqueued when on
    time; when late (the fleet was down or busy past it), enqueued once with
    catch_up = "once" and skipped with "none". Older missed slots are never
    run (one catch-up run, not one per missed slot). A schedule seen for the
    first time runs only a slot that is on time; a paused one records its
    slots without running them (resuming does not catch up).
    """
    latest = sched.latest_slot(now)
    if last_slot is not None and latest <= last_slot:
        return Decision(None, False, "not due")
    on_time = now - latest <= sched.grace_s(latest)
    if paused or not sched.enabled:
        return Decision(latest, False, "paused" if paused else "disabled")
    if on_time:
        return Decision(latest, True, "due")
    if last_slot is None:
        return Decision(latest, False, "first seen (no earlier run to catch up)")
    if sched.catch_up == "once":
        return Decision(latest, True, "catch-up: missed while the fleet was down")
    return Decision(latest, False, "missed while the fleet was down (catch_up = \"none\")")


# -- store state ----------------------------------------------------------
def enqueue_run(store, sched: Schedule, slot: float | None):
    """Enqueue one run: keyed by (schedule, slot) when `slot` is given, so a
    slot is enqueued once whoever asks; a manual run (slot None) is not keyed."""
    options: dict[str, Any] = {"priority": sched.priority, "created_by": f"schedule:{sched.name}"}
    if slot is not None:
        options["idempotency_key"] = idempotency_key(sched.name, slot)
    return store.enqueue(sched.skill, dict(sched.payload), **options)


def run_now(store, sched: Schedule, *, by: str):
    """A run asked by hand (`schedule run NAME`): enqueued now whether or not
    the schedule is paused, and recorded as its latest manual run."""
    task = enqueue_run(store, sched, None)
    store.set_flag(flag_name(sched.name, "manual"), {"task_id": task.id, "at": time.time(), "by": by}, by=by)
    return task


def set_paused(store, name: str, paused: bool, *, by: str) -> None:
    store.set_flag(flag_name(name, "paused"), bool(paused), by=by)


def schedule_rows(store, schedules: dict[str, Schedule], now: float | None = None) -> list[dict]:
    """One row per schedule for the CLI and the dashboard: {name, skill,
    when, zone, catch_up, priority, paused, next_run, last_run: {task_id, at,
    slot, manual, status, error} | None}."""
    now = time.time() if now is None else now
    rows = []
    for sched in schedules.values():
        paused = bool(store.get_flag(flag_name(sched.name, "paused"), False))
        slot_state = store.get_flag(flag_name(sched.name, "slot")) or {}
        manual = store.get_flag(flag_name(sched.name, "manual")) or {}
        runs = [r for r in (slot_state if slot_state.get("task_id") else None,
                            {**manual, "manual": True} if manual.get("task_id") else None) if r]
        last = max(runs, key=lambda r: r.get("at") or 0, default=None)
        last_run = None
        if last is not None:
            task = store.get(int(last["task_id"]))
            last_run = {"task_id": last["task_id"], "at": last.get("at"), "slot": last.get("slot"),
                        "manual": bool(last.get("manual")),
                        "status": task.status if task else "GONE", "error": task.error if task else None}
        rows.append({
            "name": sched.name, "skill": sched.skill, "when": sched.describe(),
            "zone": sched.zone if sched.cron else "UTC", "catch_up": sched.catch_up, "priority": sched.priority,
            "enabled": sched.enabled, "paused": paused,
            "next_run": None if (paused or not sched.enabled) else sched.next_slot(now),
            "last_slot": slot_state.get("slot"), "last_outcome": slot_state.get("outcome"),
            "last_run": last_run,
        })
    return rows


class Scheduler:
    """The supervisor's side: `tick()` handles every schedule whose next slot
    has come (and, on the first tick, every schedule, for catch-up). Keeps
    only the next due time in memory; what was handled lives in the store."""

    def __init__(self, store, schedules: dict[str, Schedule], *, actor: str, clock=time.time):
        self.store = store
        self.schedules = schedules
        self.actor = actor
        self.clock = clock
        self.next_due: dict[str, float] = dict.fromkeys(schedules, 0.0)

    def tick(self) -> list[tuple[str, Decision, Any]]:
        """Handle what is due; returns (name, decision, task or None) for each
        schedule handled. A store error propagates (the supervisor's outage
        handling) and the schedule is tried again on the next tick."""
        now = self.clock()
        done = []
        for name, sched in self.schedules.items():
            if now < self.next_due[name]:
                continue
            done.append(self._handle(sched, now))
            self.next_due[name] = sched.next_slot(now)
        return done

    def _handle(self, sched: Schedule, now: float):
        state = self.store.get_flag(flag_name(sched.name, "slot")) or {}
        last_slot = state.get("slot")
        paused = bool(self.store.get_flag(flag_name(sched.name, "paused"), False))
        decision = decide(sched, last_slot, now, paused=paused)
        task = None
        if decision.slot is None:
            return sched.name, decision, None
        if decision.enqueue:
            task = enqueue_run(self.store, sched, decision.slot)
            log.info("schedule %s: slot %s %s: task %d", sched.name, _iso(decision.slot), decision.why, task.id)
        else:
            log.info("schedule %s: slot %s not run: %s", sched.name, _iso(decision.slot), decision.why)
        # task_id/at: the last run enqueued for a slot (kept when this slot is not run)
        value = {"slot": decision.slot, "handled_at": now, "outcome": "enqueued" if task else decision.why,
                 "task_id": task.id if task else state.get("task_id"),
                 "at": now if task else state.get("at")}
        self.store.set_flag(flag_name(sched.name, "slot"), value, by=self.actor)
        return sched.name, decision, task


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")

