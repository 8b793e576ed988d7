"""The operator's phase report: fleet uptime over 1 and 30 days and days at
>= 95 % uptime (from the supervisor's liveness samples), capacity utilisation,
tasks done / failed / retried per day and worker restarts; as a dict,
a plain table, or markdown.

Definitions. A liveness sample (ts, expected, alive, busy) describes the fleet
from its time until the next sample, for at most `max_gap` seconds (2.5 status
intervals); time no sample covers (supervisor down) counts as down. Uptime =
time-weighted min(alive, expected) / expected. Capacity utilisation = busy
worker-seconds / available (alive) worker-seconds. A retry is a failed attempt
(error, timeout, crash, expired lease) that was followed by another attempt.
"""

from __future__ import annotations

import bisect
import time
from typing import Any

DAY_S = 86400.0
UPTIME_TARGET = 0.95
DAYS_TARGET = 30
CAPACITY_TARGET = 0.60


def _midnight(ts: float) -> float:
    return ts - (ts % DAY_S)


class _Acc:
    __slots__ = ("alive_ws", "busy_ws", "covered", "length", "up")

    def __init__(self, length: float):
        self.length, self.up, self.alive_ws, self.busy_ws, self.covered = length, 0.0, 0.0, 0.0, 0.0

    def uptime(self) -> float | None:
        return None if self.length <= 0 else min(1.0, self.up / self.length)

    def utilisation(self) -> float | None:
        return None if self.alive_ws <= 0 else min(1.0, self.busy_ws / self.alive_ws)


def integrate(samples: list[dict], edges: list[float], max_gap: float) -> list[_Acc]:
    """Accumulate samples into the buckets [edges[i], edges[i+1])."""
    accs = [_Acc(edges[i + 1] - edges[i]) for i in range(len(edges) - 1)]
    if not accs:
        return accs
    lo, hi = edges[0], edges[-1]
    for i, s in enumerate(samples):
        start = s["ts"]
        end = start + max_gap
        if i + 1 < len(samples):
            end = min(end, samples[i + 1]["ts"])
        start, end = max(start, lo), min(end, hi)
        if end <= start:
            continue
        expected = max(0, int(s["expected"]))
        alive = max(0, int(s["alive"]))
        busy = min(max(0, int(s["busy"])), alive)
        up = 0.0 if expected == 0 else min(alive, expected) / expected
        # Walk the buckets this segment crosses.
        b = max(0, bisect.bisect_right(edges, start) - 1)
        t = start
        while t < end and b < len(accs):
            seg_end = min(end, edges[b + 1])
            dur = seg_end - t
            if dur > 0:
                acc = accs[b]
                acc.covered += dur
                acc.up += up * dur
                acc.alive_ws += alive * dur
                acc.busy_ws += busy * dur
            t = seg_end
            b += 1
    return accs


def _pct(value: float | None) -> float | None:
    return None if value is None else round(100.0 * value, 2)


def build_report(cfg: dict, store, *, now: float | None = None, days: int = 30) -> dict:
    """The report as a JSON-ready dict (shape in docs/cli.md)."""
    now = time.time() if now is None else now
    interval = float(cfg["supervisor"]["status_interval_s"])
    max_gap = 2.5 * interval
    month_start = now - days * DAY_S
    today = _midnight(now)
    day_edges = [today - k * DAY_S for k in range(days, -1, -1)] + [now]
    samples = store.liveness_samples(min(month_start, day_edges[0]) - max_gap, now)
    rolling = integrate(samples, [month_start, now - DAY_S, now], max_gap)
    month_acc = _merge(rolling)
    day_acc = rolling[1]

    per_day_acc = integrate(samples, day_edges, max_gap)
    outcomes = {round(o["day_start"]): o for o in store.task_outcomes_by_day(day_edges[0], now)}
    restarts = _restarts_by_day(store, day_edges[0], now)

    day_rows = []
    for i, acc in enumerate(per_day_acc):
        start = day_edges[i]
        o = outcomes.get(round(start), {})
        day_rows.append({
            "date": time.strftime("%Y-%m-%d", time.gmtime(start)),
            "day_start": start,
            "complete": i < len(per_day_acc) - 1,
            "uptime_pct": _pct(acc.uptime()),
            "utilisation_pct": _pct(acc.utilisation()),
            "covered_s": round(acc.covered, 1),
            "done": o.get("done", 0), "failed": o.get("failed", 0),
            "retried": o.get("retried", 0), "cancelled": o.get("cancelled", 0),
            "worker_restarts": restarts.get(round(start), 0),
        })
    complete_days = [d for d in day_rows if d["complete"]][-days:]
    at_target = [d for d in complete_days if (d["uptime_pct"] or 0) >= UPTIME_TARGET * 100]
    streak = 0
    for d in reversed(complete_days):
        if (d["uptime_pct"] or 0) < UPTIME_TARGET * 100:
            break
        streak += 1
    last_day = [d for d in day_rows if d["day_start"] >= now - DAY_S]
    month_util = month_acc.utilisation()
    resources = [
        {"resource": "Fleet operational", "value": "Yes" if (day_acc.uptime() or 0) > 0 else "No",
         "target": "Yes", "met": (day_acc.uptime() or 0) > 0},
        {"resource": f"Uptime ({days}d average)", "value": _pct(month_acc.uptime()),
         "target": f">= {UPTIME_TARGET * 100:.0f}%", "met": (month_acc.uptime() or 0) >= UPTIME_TARGET},
        {"resource": "Days at 95%+ uptime", "value": len(at_target), "target": str(min(DAYS_TARGET, days)),
         "met": len(at_target) >= min(DAYS_TARGET, days)},
        {"resource": "Capacity utilization", "value": _pct(month_util),
         "target": f"> {CAPACITY_TARGET * 100:.0f}%", "met": (month_util or 0) > CAPACITY_TARGET},
    ]
    totals = {k: sum(d[k] for d in day_rows) for k in ("done", "failed", "retried", "cancelled", "worker_restarts")}
    return {
        "fleet": cfg["fleet"]["name"],
        "generated_at": now,
        "window_days": days,
        "first_sample_at": samples[0]["ts"] if samples else None,
        "samples": sum(1 for x in samples if x["ts"] >= month_start),
        "uptime_pct": {"day": _pct(day_acc.uptime()), "month": _pct(month_acc.uptime())},
        "capacity_utilisation_pct": {"day": _pct(day_acc.utilisation()), "month": _pct(month_util)},
        "busy_worker_s": {"day": round(day_acc.busy_ws, 1), "month": round(month_acc.busy_ws, 1)},
        "available_worker_s": {"day": round(day_acc.alive_ws, 1), "month": round(month_acc.alive_ws, 1)},
        "days_at_target": len(at_target),
        "streak_days": streak,
        "worker_restarts": {"day": sum(d["worker_restarts"] for d in last_day), "month": totals["worker_restarts"]},
        "tasks": {k: totals[k] for k in ("done", "failed", "retried", "cancelled")},
        "days": day_rows,
        "resources": resources,
        "phase2_ready": all(r["met"] for r in resources),
    }


def _merge(accs: list[_Acc]) -> _Acc:
    out = _Acc(sum(a.length for a in accs))
    for a in accs:
        out.up += a.up
        out.alive_ws += a.alive_ws
        out.busy_ws += a.busy_ws
        out.covered += a.covered
    return out


def _restarts_by_day(store, since: float, until: float) -> dict[int, int]:
    """Unplanned child exits (crash, timeout, stall) per day, keyed by the
    day's start; each one is followed by a respawn with backoff."""
    return {round(since + d * DAY_S): n for d, n in store.unplanned_exits_by_day(since, until).items()}


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1f}%" if pct else str(value)


def render_text(rep: dict) -> str:
    lines = [f"Phase report for {rep['fleet']} ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(rep['generated_at']))})",
             ""]
    lines.append(f"{'Resource':<26}{'Value':>10}  {'Target':<8}  Status")
    for r in rep["resources"]:
        pct = isinstance(r["value"], float)
        lines.append(f"{r['resource']:<26}{_fmt(r['value'], pct):>10}  {r['target']:<8}  {'MET' if r['met'] else 'NOT MET'}")
    up, cap, rs, w = rep["uptime_pct"], rep["capacity_utilisation_pct"], rep["worker_restarts"], rep["window_days"]
    lines += [
        "",
        (f"Uptime: last 24 h {_fmt(up['day'], True)}, last {w} d {_fmt(up['month'], True)}; "
         f"current streak {rep['streak_days']} day(s) at >= 95%"),
        f"Capacity utilisation: last 24 h {_fmt(cap['day'], True)}, last {w} d {_fmt(cap['month'], True)}",
        f"Worker restarts: last 24 h {rs['day']}, last {w} d {rs['month']}",
        f"Phase 2 trigger: {'READY' if rep['phase2_ready'] else 'NOT READY'}",
        "",
    ]
    lines.append(f"{'Day':<12}{'Uptime':>8}{'Util':>8}{'Done':>7}{'Failed':>8}{'Retried':>9}{'Restarts':>10}")
    for d in rep["days"]:
        if not d["covered_s"] and not (d["done"] or d["failed"] or d["retried"] or d["worker_restarts"]):
            continue
        lines.append(f"{d['date'] + ('' if d['complete'] else '*'):<12}{_fmt(d['uptime_pct'], True):>8}"
                     f"{_fmt(d['utilisation_pct'], True):>8}{d['done']:>7}{d['failed']:>8}{d['retried']:>9}"
                     f"{d['worker_restarts']:>10}")
    lines.append("(* today so far; days with no samples and no tasks are left out)")
    return "\n".join(lines) + "\n"


def render_markdown(rep: dict) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(rep["generated_at"]))
    out = [f"# Phase report: {rep['fleet']}", "", f"Generated {when} from {rep['samples']} liveness samples.", "",
           "## Current Resource Snapshot", "", "| Resource | Value | Target | Status |", "| --- | --- | --- | --- |"]
    for r in rep["resources"]:
        pct = isinstance(r["value"], float)
        out.append(f"| {r['resource']} | {_fmt(r['value'], pct)} | {r['target']} | {'MET' if r['met'] else 'NOT MET'} |")
    up, cap, rs, w, t = (rep["uptime_pct"], rep["capacity_utilisation_pct"], rep["worker_restarts"],
                         rep["window_days"], rep["tasks"])
    out += [
        "", f"Phase 2 trigger: **{'READY' if rep['phase2_ready'] else 'NOT READY'}**", "",
        "## Uptime and capacity", "",
        (f"* Uptime: last 24 h {_fmt(up['day'], True)}, last {w} days {_fmt(up['month'], True)}; "
         f"streak of {rep['streak_days']} day(s) at >= 95 %."),
        (f"* Capacity utilisation (busy / available worker-seconds): last 24 h {_fmt(cap['day'], True)}, "
         f"last {w} days {_fmt(cap['month'], True)}."),
        f"* Worker restarts: last 24 h {rs['day']}, last {w} days {rs['month']}.",
        (f"* Tasks in {w} days: {t['done']} done, {t['failed']} failed, {t['retried']} retried, "
         f"{t['cancelled']} cancelled."),
        "",
        "## Per day (UTC)", "", "| Day | Uptime | Utilisation | Done | Failed | Retried | Restarts |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for d in rep["days"]:
        if not d["covered_s"] and not (d["done"] or d["failed"] or d["retried"] or d["worker_restarts"]):
            continue
        out.append(f"| {d['date']}{'' if d['complete'] else ' (so far)'} | {_fmt(d['uptime_pct'], True)} | "
                   f"{_fmt(d['utilisation_pct'], True)} | {d['done']} | {d['failed']} | {d['retried']} | "
                   f"{d['worker_restarts']} |")
    return "\n".join(out) + "\n"
