#!/usr/bin/env python3
"""Benchmark the dashboard as a real process (waitress) over a store with
100,000 tasks: p50/p99 of /api/status, the first task page and a filtered
page; every filter the tasks page offers (each status alone and with a
skill, several statuses, a skill, an agent, text, a date range) and the
timeline; every GET the pages make (page rows); the same with 20 SSE
streams open; and the time from a task state change to its SSE event. `--quick` uses 10,000 tasks and fewer requests.
The issue's scale is `--tasks 1000000` (the fill takes minutes).

    .venv/bin/python scripts/bench_dashboard.py [--quick] [--tasks N] [--requests N] [--no-filters]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx

TARGETS_MS = {"status": 20.0, "tasks": 50.0, "filtered": 50.0, "loaded": 200.0, "event": 1000.0,
              "filter": 20.0, "scan": 20.0, "page": 20.0, "none": float("nan")}
SKILLS = [f"skill_{i}" for i in range(10)]
STATUSES = ["PENDING", "RUNNING", "WAITING_HUMAN", "DONE", "FAILED", "CANCELLED"]


def filter_urls(since: float) -> dict[str, tuple[str, str]]:
    """label -> (URL, target key): the first page of every filter the tasks
    page (and the knowledge view) asks for, each with the issue's target
    (p99 <= 20 ms at 1,000,000 tasks). Status, skill and agent filters are
    index work; text and date filters count every matching row for the
    page's total, a scan of the table (fewer requests). The timeline has no
    target: it is there to see what finished-task counting costs."""
    out: dict[str, tuple[str, str]] = {}
    for status in STATUSES:
        out[f"status={status}"] = (f"/api/tasks?status={status}&limit=50", "filter")
        out[f"status={status}&skill"] = (f"/api/tasks?status={status}&skill=skill_3&limit=50", "filter")
    out["status=PENDING,RUNNING,WAITING_HUMAN"] = ("/api/tasks?status=PENDING,RUNNING,WAITING_HUMAN&limit=50", "filter")
    out["status=PENDING,RUNNING,WAITING_HUMAN&skill"] = (
        "/api/tasks?status=PENDING,RUNNING,WAITING_HUMAN&skill=skill_3&limit=50", "filter")
    out["status=DONE,FAILED,CANCELLED"] = ("/api/tasks?status=DONE,FAILED,CANCELLED&limit=50", "filter")
    out["status=DONE,FAILED"] = ("/api/tasks?status=DONE,FAILED&limit=50", "filter")
    out["skill"] = ("/api/tasks?skill=skill_3&limit=50", "filter")
    out["agent"] = ("/api/tasks?agent=coder_1&limit=50", "filter")
    out["agent&status=RUNNING"] = ("/api/tasks?agent=coder_1&status=RUNNING&limit=50", "filter")
    out["agent&status=DONE"] = ("/api/tasks?agent=coder_1&status=DONE&limit=50", "filter")
    out["page 3 of status=DONE"] = ("/api/tasks?status=DONE&limit=50&offset=100", "filter")
    out["text"] = ("/api/tasks?text=item%2012345&limit=50", "scan")
    out["since (a date range)"] = (f"/api/tasks?since={since:.0f}&limit=50", "scan")
    out["/api/timeline (last hour)"] = ("/api/timeline", "none")
    return out


def page_urls(task_id: int) -> dict[str, str]:
    """label -> URL: every GET the dashboard's pages make (static/*.js), with
    the arguments they send; target p99 <= 20 ms at 100,000 tasks. Live
    refetches of the heavy ones (timeline, activity) are throttled client-side."""
    since = int((time.time() - 7200) // 300 * 300)  # the overview aligns its window to a bucket
    return {
        "session (every page)": "/api/session",
        "overview: status": "/api/status",
        "overview: timeline (2 h sparklines)": f"/api/timeline?bucket_s=300&since={since}&limit=1",
        "overview: alerts": "/api/alerts",
        "overview: activity": "/api/activity?limit=25&exclude=agent_status,agent_start,heartbeat",
        "overview: schedules": "/api/schedules",
        "tasks: first page": "/api/tasks?limit=50&offset=0",
        "tasks: bulk button count (skill filter)": "/api/tasks?skill=skill_3&status=PENDING,RUNNING,WAITING_HUMAN"
                                                   "&limit=1",
        "tasks / submit: skills (catalogue)": "/api/skills?stats=false",
        "task detail": f"/api/tasks/{task_id}",
        "approvals: waiting page": "/api/tasks?status=WAITING_HUMAN&limit=100&offset=0",
        "hardware: thermal": "/api/thermal",
        "hardware: training": "/api/training",
        "hardware: history": "/api/hw/history?minutes=15",
        "usage: by skill": "/api/usage?period=day&group_by=skill",
        "usage: delta": "/api/usage/delta?group_by=skill",
        "usage: budgets": "/api/usage/budgets",
        "usage: per-day series": "/api/usage/series?days=14",
        "knowledge: list": "/api/knowledge",
        "logs: list": "/api/logs",
        "logs: tail": "/api/logs/dashboard?lines=200",
        "messages: page": "/api/comms?limit=50",
        "messages: notes": "/api/notes",
        "reports: resolutions": "/api/resolutions",
        "audit: page": "/api/audit?limit=50",
        "fleet health": "/api/fleet/health",
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fill_store(store, n: int) -> None:
    """n tasks over 10 skills, written through the real queue API: 10 %
    PENDING, 5 % CANCELLED, up to 30 % (at most 10,000) claimed and finished
    by a worker (1 in 15 FAILED, the rest DONE) and the rest FAILED as
    dependents of a cancelled task (the cheap way to write finished history);
    six agents, worker exits and an alert."""
    workers = ["coder_1", "researcher", "archivist", "analyst", "security", "planner"]
    for w in workers:
        store.register_agent(w, w.split("_")[0], pid=os.getpid(), status="idle")
        store.record_event("supervisor", "child_exit", agent=w, detail={"exit_code": -9, "uptime_s": 3.0})
    store.raise_alert("warning", "bench", "an alert to show")
    parent = store.enqueue("skill_0", {"role": "cancelled parent"})
    store.cancel(parent.id)
    n_run = min(int(n * 0.30), 10_000)
    n_dep = n - int(n * 0.15) - n_run
    batch = 2000

    def spec(i: int) -> dict:
        out = {"skill": SKILLS[i % len(SKILLS)], "payload": {"i": i, "text": f"item {i}"}, "priority": 1 + i % 10}
        if i < n_dep:
            out["depends_on"] = [parent.id]
        return out

    for start in range(0, n - 1, batch):
        store.enqueue_many([spec(i) for i in range(start, min(n - 1, start + batch))])
    for k in range(n_run):
        t = store.claim(workers[k % len(workers)], SKILLS, lease_s=60)
        if k % 15 == 0:
            store.fail(t.id, t.lease_token, "bench failure", retryable=False)
        else:
            store.complete(t.id, t.lease_token, {"ok": k})
    for tid in store.matching_ids(status="PENDING")[: int(n * 0.05)]:
        store.cancel(tid)


def timed(client: httpx.Client, url: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        resp = client.get(url)
        out.append((time.perf_counter() - t0) * 1000)
        if resp.status_code != 200:
            raise SystemExit(f"{url} answered {resp.status_code}: {resp.text[:200]}")
    return out


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


class StreamReader(threading.Thread):
    """One open /api/stream; records when each task event arrives."""

    def __init__(self, base: str, arrivals: dict | None = None):
        super().__init__(daemon=True)
        self.base, self.arrivals = base, arrivals
        self.ready = threading.Event()
        self.stop = False
        self.error: str | None = None

    def run(self) -> None:
        try:
            with httpx.stream("GET", self.base + "/api/stream", timeout=httpx.Timeout(60, connect=10)) as resp:
                if resp.status_code != 200:
                    self.error = f"stream refused: {resp.status_code}"
                    self.ready.set()
                    return
                self.ready.set()
                for line in resp.iter_lines():
                    if self.stop:
                        return
                    if self.arrivals is not None and line.startswith("data: "):
                        data = json.loads(line[6:])
                        if data.get("action") == "cancelled" and data.get("task_id"):
                            self.arrivals.setdefault(data["task_id"], time.time())
        except httpx.HTTPError as exc:
            if not self.stop:
                self.error = str(exc)
            self.ready.set()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10,000 tasks, fewer requests")
    ap.add_argument("--tasks", type=int, help="tasks in the store (default 100,000; 10,000 with --quick)")
    ap.add_argument("--requests", type=int, help="requests per endpoint (default 300; 60 with --quick)")
    ap.add_argument("--streams", type=int, default=20)
    ap.add_argument("--no-filters", action="store_true", help="skip the per-filter rows")
    ap.add_argument("--no-pages", action="store_true", help="skip the rows of every call the pages make")
    args = ap.parse_args(argv)
    n_tasks = args.tasks or (10_000 if args.quick else 100_000)
    n_req = args.requests or (60 if args.quick else 300)
    home = Path(tempfile.mkdtemp(prefix="bench_dashboard_"))
    (home / "fleet.toml").write_text(f"[dashboard]\nmax_streams = {args.streams + 8}\n"  # the readers are anonymous
                                     f"max_anonymous_streams = {args.streams + 8}\n")
    os.environ["FLEET_HOME"] = str(home)
    from fleet.config import load_config
    from fleet.db import open_store

    cfg = load_config(home)
    store = open_store(cfg)
    t0 = time.perf_counter()
    filled_from = time.time()
    fill_store(store, n_tasks)
    print(f"store: {n_tasks:,} tasks written in {time.perf_counter() - t0:.1f} s ({home}): "
          + ", ".join(f"{k} {v:,}" for k, v in store.counts().items()), flush=True)
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO), FLEET_HOME=str(home))
    proc = subprocess.Popen([sys.executable, str(REPO / "fleet" / "dashboard.py"), "--port", str(port)],
                            cwd=str(REPO), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    rows = []
    try:
        deadline = time.time() + 30
        while True:
            try:
                httpx.get(base + "/api/session", timeout=2)
                break
            except httpx.HTTPError:
                if time.time() > deadline or proc.poll() is not None:
                    raise SystemExit(f"dashboard did not start: {proc.stderr.read() if proc.poll() is not None else ''}")
                time.sleep(0.1)
        urls = {"status": "/api/status", "tasks": "/api/tasks?limit=50",
                "filtered": "/api/tasks?status=PENDING&skill=skill_3&limit=50"}
        with httpx.Client(base_url=base, timeout=30) as client:
            for url in urls.values():
                timed(client, url, 5)  # warm-up
            for name, url in urls.items():
                ms = timed(client, url, n_req)
                rows.append((f"{url} (idle)", pct(ms, 50), pct(ms, 99), TARGETS_MS[name]))
            if not args.no_filters:
                for label, (url, target) in filter_urls(filled_from + (time.time() - filled_from) / 2).items():
                    slow = target != "filter"
                    timed(client, url, 1 if slow else 3)  # warm-up
                    ms = timed(client, url, max(5, n_req // 30) if slow else max(20, n_req // 3))
                    rows.append((f"  filter {label}", pct(ms, 50), pct(ms, 99), TARGETS_MS[target]))
            if not args.no_pages:
                task_id = store.matching_ids(status="DONE")[-1]
                for label, url in page_urls(task_id).items():
                    if client.get(url).status_code == 404 and url.startswith("/api/logs/"):
                        continue  # no such log in this home
                    timed(client, url, 3)  # warm-up
                    ms = timed(client, url, max(30, n_req // 3))
                    rows.append((f"  page {label}", pct(ms, 50), pct(ms, 99), TARGETS_MS["page"]))
                # What a cache miss costs (no target): the heavy aggregates right after a task change.
                # Pages refetch them at most once per few seconds (throttled live updates).
                for label in ("overview: timeline (2 h sparklines)", "tasks / submit: skills (catalogue)",
                              "fleet health"):
                    ms = []
                    for i in range(max(10, n_req // 30)):
                        store.enqueue("skill_0", {"bench_miss": i})
                        ms += timed(client, page_urls(task_id)[label], 1)
                    rows.append((f"  page {label}, right after a task change", pct(ms, 50), pct(ms, 99),
                                 TARGETS_MS["none"]))
            ms = []
            for i in range(n_req // 3):  # a task change before each call: no cached aggregate applies
                store.enqueue("skill_0", {"bench": i})
                ms += timed(client, urls["status"], 1)
            rows.append(("/api/status (idle, each right after a task change)", pct(ms, 50), pct(ms, 99),
                         TARGETS_MS["status"]))
            arrivals: dict[int, float] = {}
            readers = [StreamReader(base, arrivals if i == 0 else None) for i in range(args.streams)]
            for r in readers:
                r.start()
            for r in readers:
                r.ready.wait(30)
            errors = [r.error for r in readers if r.error]
            if errors:
                raise SystemExit(f"streams failed: {errors[:3]}")
            for name, url in urls.items():
                ms = timed(client, url, n_req)
                rows.append((f"{url} ({args.streams} streams)", pct(ms, 50), pct(ms, 99), TARGETS_MS["loaded"]))
            pending = store.matching_ids(status="PENDING", skill="skill_1")
            changed: dict[int, float] = {}
            for tid in random.sample(pending, min(20 if args.quick else 50, len(pending))):
                changed[tid] = time.time()
                store.cancel(tid, by="bench")
                time.sleep(0.05)
            end = time.time() + 10
            while time.time() < end and not set(changed) <= set(arrivals):
                time.sleep(0.05)
            lat = [(arrivals[t] - changed[t]) * 1000 for t in changed if t in arrivals]
            missing = len(changed) - len(lat)
            for r in readers:
                r.stop = True
            if lat:
                note = f", {missing} MISSING" if missing else ""
                rows.append((f"task change -> SSE event ({len(lat)} changes{note})", pct(lat, 50), max(lat),
                             TARGETS_MS["event"]))
            else:
                rows.append(("task change -> SSE event: NO EVENTS ARRIVED", float("nan"), float("nan"), 1000.0))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        store.close()
        shutil.rmtree(home, ignore_errors=True)
    print()
    print(f"{'measurement':<64} {'p50 ms':>8} {'p99 ms':>8} {'target':>8}  ok")
    for name, p50, p99, target in rows:
        ok = "-" if math.isnan(target) else "yes" if p99 <= target else "NO"  # NaN: no target
        shown = "-" if math.isnan(target) else f"{target:.0f}"
        print(f"{name:<64} {p50:8.1f} {p99:8.1f} {shown:>8}  {ok}")
    print("(filter rows: the first page of /api/tasks with that filter, and its total; text and date "
          "filters count every matching row, a scan of the table; the timeline row has no target)")
    print("(event row: p50 and max; each target applies to p99/max)")
    print(f"command: .venv/bin/python scripts/bench_dashboard.py {' '.join(argv or sys.argv[1:])}".rstrip())
    return 0 if all(p99 <= target for _, _, p99, target in rows if not math.isnan(target)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
