#!/usr/bin/env python3
"""Benchmark the real fleet (a supervisor and its worker processes in temp
fleet homes) beside huey's own consumer doing the same work. Prints ONE table;
every figure comes from this run.

    .venv/bin/python scripts/bench_fleet.py           # full sizes (a few minutes)
    .venv/bin/python scripts/bench_fleet.py --quick   # smaller sizes, 10 s idle window
    .venv/bin/python scripts/bench_fleet.py --smoke   # tiny sizes: checks that it runs, figures mean little

Throughput: N no-op tasks through 2 real workers under the supervisor, and
through `huey_consumer -k process -w 2` on a SqliteHuey file (the tasks are
enqueued first, then the consumer starts). Both no-op skills stamp
time.time() when they start and end and return it with their pid, so the
figures come from inside the tasks, the same way for both: tasks/s = N over
first start -> last end; overhead per task = the gap from a task's end to
the next task's start in the same worker process (claim, commit, logging,
bookkeeping: everything but the skill), p50 and mean. For Fleet the gap is
split by the task rows: claim (started_at) -> skill start, and skill end ->
finished_at (stamped when the completing transaction begins, before its
commit; the commit itself falls in the next task's first part when the
worker claims its next task in the same transaction, else in neither).

Also: SIGKILL -> replacement heartbeating, killed worker's task -> claimable,
no-op throughput with 4 workers, idle CPU of the whole fleet, idle worker RSS.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psutil
import tomlkit

from fleet.config import load_config
from fleet.db import open_store

FAKE_SKILLS = str(REPO / "tests" / "fakes" / "skills")
ROLES0 = {"coder_count": 0, "researcher": 0, "archivist": 0, "analyst": 0, "security": 0, "planner": 0}
BENCH_SKILL = "bench_noop"
# The no-op skill both systems run: its own start and end, and who ran it.
BENCH_SKILL_SRC = '''\
"""Benchmark skill: does nothing; returns when it started and ended, and its pid."""

import os
import time

DESCRIPTION = "Return at once with its own start/end times (benchmark skill)."
PAYLOAD_SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}}
TIMEOUT_S = 30


def run(payload, config, log):
    t_start = time.time()
    t_end = time.time()
    return {"n": payload.get("n"), "pid": os.getpid(), "t_start": t_start, "t_end": t_end}
'''
HUEY_APP_SRC = '''\
"""huey app for the fleet benchmark: the same no-op task as Fleet's bench_noop skill."""

import os
import time

from huey import SqliteHuey

huey = SqliteHuey(filename=os.environ["FLEET_BENCH_HUEY_DB"])


@huey.task()
def noop(n):
    t_start = time.time()
    t_end = time.time()
    return {"n": n, "pid": os.getpid(), "t_start": t_start, "t_end": t_end}
'''


class Fleet:
    """A supervisor in a temp fleet home (its roles, its affinity), with the
    test skills and the benchmark's own no-op skill on its skill path."""

    def __init__(self, workers: dict, supervisor: dict | None = None, affinity: dict | None = None):
        self.home = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
        skills = self.home / "bench_skills"
        skills.mkdir()
        (skills / f"{BENCH_SKILL}.py").write_text(BENCH_SKILL_SRC)
        doc = {"workers": {**ROLES0, **workers},
               "affinity": {"coder": ["noop", "sleepy", BENCH_SKILL], **(affinity or {})},
               "supervisor": {"services": [], **(supervisor or {})},
               "skills": {"extra_paths": [FAKE_SKILLS, str(skills)]}}
        (self.home / "fleet.toml").write_text(tomlkit.dumps(doc))
        self.cfg = load_config(self.home)
        self.store = open_store(self.cfg)
        env = dict(os.environ, FLEET_HOME=str(self.home), PYTHONPATH=str(REPO))
        self.proc = subprocess.Popen([sys.executable, str(REPO / "fleet" / "supervisor.py"), "--quiet"],
                                     cwd=str(REPO), env=env, stdout=subprocess.DEVNULL)

    def workers(self, prefix: str = "coder_") -> list[dict]:
        out = []
        for a in self.store.list_agents():
            if a["name"].startswith(prefix) and a["status"] in ("idle", "busy") and a["pid"] \
                    and psutil.pid_exists(a["pid"]):
                out.append(a)
        return out

    def wait_workers(self, n: int, timeout: float = 60) -> list[dict]:
        return wait(lambda: len(w := self.workers()) >= n and w, timeout, f"{n} workers up")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.store.close()
        shutil.rmtree(self.home, ignore_errors=True)


def wait(pred, timeout: float, what: str, step: float = 0.005):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise SystemExit(f"bench: timed out waiting for {what}")


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


# -- the same no-op work through Fleet and through huey's consumer -------
def from_inside(results: list[dict]) -> dict:
    """tasks/s over first start -> last end, and the per-process gaps
    (a task's end -> the next task's start in the same worker process)."""
    span = max(r["t_end"] for r in results) - min(r["t_start"] for r in results)
    by_pid: dict[int, list[dict]] = {}
    for r in results:
        by_pid.setdefault(r["pid"], []).append(r)
    gaps = []
    for runs in by_pid.values():
        runs.sort(key=lambda r: r["t_start"])
        gaps += [b["t_start"] - a["t_end"] for a, b in itertools.pairwise(runs)]
    return {"rate": len(results) / span if span > 0 else float("nan"), "gaps": gaps,
            "processes": len(by_pid)}


def pooled(runs: list[dict]) -> dict:
    """Several rounds as one: median of each rate, every sample pooled."""
    out = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, list):
            out[key] = [x for r in runs for x in r[key]]
        elif key in ("rate", "wall_rate"):
            out[key] = statistics.median(r[key] for r in runs)
        elif key == "attempts":
            out[key] = sum(r[key] for r in runs)
    return out


def bench_fleet_noop(workers: int, tasks: int) -> dict:
    """N bench_noop tasks through `workers` real workers under the supervisor."""
    fleet = Fleet({"coder_count": workers})
    try:
        fleet.wait_workers(workers)
        t0 = time.monotonic()
        fleet.store.enqueue_many([{"skill": BENCH_SKILL, "payload": {"n": i}} for i in range(tasks)])
        wait(lambda: fleet.store.counts()["DONE"] >= tasks, 600, "all tasks done", step=0.02)
        wall = time.monotonic() - t0
        rows = []
        for offset in range(0, tasks, 1000):
            rows += fleet.store.list_tasks(skill=BENCH_SKILL, limit=1000, offset=offset).items
    finally:
        fleet.close()
    bad = [t for t in rows if t.status != "DONE" or not isinstance(t.result, dict)]
    if len(rows) != tasks or bad:
        raise SystemExit(f"bench: {len(rows)} task rows, {len(bad)} not DONE with a result")
    out = from_inside([t.result for t in rows])
    out["wall_rate"] = tasks / wall
    out["claim_to_start"] = [t.result["t_start"] - t.started_at for t in rows]
    out["end_to_finished"] = [t.finished_at - t.result["t_end"] for t in rows]
    out["attempts"] = sum(t.attempts for t in rows)
    out["sync"] = fleet.cfg["queue"]["synchronous"].upper()
    return out


def bench_huey_consumer(workers: int, tasks: int) -> dict:
    """N no-op tasks enqueued on a SqliteHuey file, then drained by
    `huey_consumer -k process -w <workers>` started for it; stopped after."""
    tmp = Path(tempfile.mkdtemp(prefix="fleet-bench-huey-"))
    module = f"bench_huey_app_{random.randrange(1 << 30):x}"
    (tmp / f"{module}.py").write_text(HUEY_APP_SRC)
    db = tmp / "huey.db"
    env = dict(os.environ, FLEET_BENCH_HUEY_DB=str(db), PYTHONPATH=str(tmp))
    os.environ["FLEET_BENCH_HUEY_DB"] = str(db)
    sys.path.insert(0, str(tmp))
    proc = None
    try:
        app = importlib.import_module(module)
        handles = [app.noop(i) for i in range(tasks)]
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "huey.bin.huey_consumer", f"{module}.huey", "-k", "process",
             "-w", str(workers), "-l", str(tmp / "huey.log")],
            cwd=str(tmp), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        wait(lambda: app.huey.storage.result_store_size() >= tasks or proc.poll() is not None, 600,
             "huey_consumer to finish every task", step=0.02)
        wall = time.monotonic() - t0
        if proc.poll() is not None:
            raise SystemExit(f"bench: huey_consumer exited with {proc.returncode}; see {tmp / 'huey.log'}")
        results = [h.get(preserve=True) for h in handles]
        sync = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(
            app.huey.storage.sql("pragma synchronous", results=True)[0][0], "?")
    finally:
        if proc is not None:
            stop_group(proc)
        sys.path.remove(str(tmp))
        sys.modules.pop(module, None)
        shutil.rmtree(tmp, ignore_errors=True)
    if any(not isinstance(r, dict) for r in results):
        raise SystemExit("bench: some huey results are missing")
    out = from_inside(results)
    out["wall_rate"] = tasks / wall
    out["sync"] = sync
    return out


def stop_group(proc: subprocess.Popen) -> None:
    """Stop the consumer this script started (its own session): SIGINT is
    huey's graceful stop; anything of its group still there after is killed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # its worker processes, if any outlived it
    except (ProcessLookupError, PermissionError):
        pass


# -- the fleet's own figures ---------------------------------------------
def bench_replacement(n: int) -> float:
    """SIGKILL an idle worker; time until a new process of that name heartbeats."""
    fleet = Fleet({"coder_count": 1}, {"backoff_reset_s": 1.0, "heartbeat_interval_s": 5.0})
    samples = []
    try:
        for _ in range(n):
            old = fleet.wait_workers(1)[0]
            time.sleep(1.2)  # a healthy run first, so this is not a crash loop
            t0 = time.time()
            os.kill(old["pid"], signal.SIGKILL)
            new = wait(lambda old=old, t0=t0: next((a for a in fleet.workers() if a["pid"] != old["pid"]
                                                    and a["last_heartbeat"] >= t0), None), 30, "replacement")
            samples.append(new["last_heartbeat"] - t0)
    finally:
        fleet.close()
    return statistics.median(samples)


def bench_requeue(n: int) -> float:
    """SIGKILL a worker mid-task; time until the store has put the task back."""
    fleet = Fleet({"coder_count": 1}, {"backoff_reset_s": 1.0})
    samples = []
    try:
        for _ in range(n):
            fleet.wait_workers(1)
            time.sleep(1.2)
            task = fleet.store.enqueue("sleepy", {"seconds": 60}, max_attempts=100)
            wait(lambda tid=task.id: fleet.store.get(tid).status == "RUNNING", 30, "task running")
            holder = fleet.store.get(task.id).worker
            pid = fleet.store.get_agent(holder)["pid"]
            t0 = time.time()
            os.kill(pid, signal.SIGKILL)
            ev = wait(lambda tid=task.id: fleet.store.recent_events(5, task_id=tid, action="requeue"), 30, "requeue")
            samples.append(ev[0]["ts"] - t0)
            fleet.store.cancel(task.id)
    finally:
        fleet.close()
    return statistics.median(samples)


def fleet_cpu_seconds(root: psutil.Process) -> float:
    total = 0.0
    for p in [root] + root.children(recursive=True):
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def bench_idle(seconds: float) -> tuple[float, float, float, int]:
    """Default roles and intervals (no services): % of one core over `seconds`, idle worker RSS."""
    fleet = Fleet({k: 1 for k in ROLES0 if k != "coder_count"} | {"coder_count": 1},
                  affinity={"coder": ["noop"]})
    try:
        n = 6
        wait(lambda: len([a for a in fleet.store.list_agents() if a["status"] == "idle"]) >= n, 60, "idle fleet")
        time.sleep(2.0)
        root = psutil.Process(fleet.proc.pid)
        procs = [root] + root.children(recursive=True)
        c0, t0 = fleet_cpu_seconds(root), time.monotonic()
        time.sleep(seconds)
        pct_core = 100 * (fleet_cpu_seconds(root) - c0) / (time.monotonic() - t0)
        worker = fleet.store.get_agent("coder_1")
        rss = psutil.Process(worker["pid"]).memory_info().rss / 1e6
        task = fleet.store.enqueue("noop", {"n": 1})
        wait(lambda: fleet.store.get(task.id).status == "DONE", 30, "a task on the idle fleet")
        time.sleep(0.5)
        rss_after = psutil.Process(worker["pid"]).memory_info().rss / 1e6
        return pct_core, rss, rss_after, len(procs)
    finally:
        fleet.close()


# -- the table -----------------------------------------------------------
def ms(v: float) -> str:
    return f"{v * 1000:.3f} ms"


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("PASS" if ok else "MISS")


def print_table(head: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]

    def line(cells):
        return "  ".join(str(c).ljust(w) if i in (0, len(cells) - 2) else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))
    print(line(head))
    print(line(["-" * w for w in widths]))
    for row in rows:
        print(line(row))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples and a 10 s idle window")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: only the no-op comparison and a short "
                    "idle window; checks that it runs, figures mean little")
    ap.add_argument("--tasks", type=int, help="no-op tasks per system (default 2,000; quick 1,000)")
    ap.add_argument("--rounds", type=int, help="rounds of the fleet/huey comparison, alternating which goes "
                    "first; rates are the median, gaps pooled (default 3; quick/smoke 1)")
    args = ap.parse_args(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    reps = {"smoke": 0, "quick": 5, "full": 20}[mode]
    tasks = args.tasks or {"smoke": 200, "quick": 1000, "full": 2000}[mode]
    idle_s = {"smoke": 1.0, "quick": 10.0, "full": 30.0}[mode]
    workers = 2
    load0, started = os.getloadavg(), time.time()

    rounds = args.rounds or (3 if mode == "full" else 1)
    fl_runs, hu_runs = [], []
    for r in range(rounds):
        for system in (("fleet", "huey") if r % 2 == 0 else ("huey", "fleet")):
            if system == "fleet":
                fl_runs.append(bench_fleet_noop(workers, tasks))
            else:
                hu_runs.append(bench_huey_consumer(workers, tasks))
            got = (fl_runs if system == "fleet" else hu_runs)[-1]
            print(f"  round {r + 1}: {system} {workers} workers: {got['rate']:,.0f} tasks/s", file=sys.stderr)
    fl, hu = pooled(fl_runs), pooled(hu_runs)
    fl4 = bench_fleet_noop(4, tasks) if mode != "smoke" else None
    rep = bench_replacement(reps) if reps else None
    req = bench_requeue(max(3, reps // 2)) if reps else None
    idle_pct, rss, rss_after, nprocs = bench_idle(idle_s)

    x = fl["rate"] / hu["rate"]
    g50, gmean = pct(fl["gaps"], 50), statistics.fmean(fl["gaps"])
    h50, hmean = pct(hu["gaps"], 50), statistics.fmean(hu["gaps"])
    c50, e50 = pct(fl["claim_to_start"], 50), pct(fl["end_to_finished"], 50)
    head = ["figure", "fleet", "huey_consumer", "fleet vs", "target", "result"]
    rows = [
        [f"no-op tasks/s, {workers} worker processes ({tasks:,} tasks, first start -> last end)",
         f"{fl['rate']:,.0f}", f"{hu['rate']:,.0f}", f"{x:.2f}x huey", ">= 1x huey", verdict(x >= 1)],
        ["  the same, wall clock (fleet: enqueue -> all DONE; huey: consumer start -> all results)",
         f"{fl['wall_rate']:,.0f}", f"{hu['wall_rate']:,.0f}", f"{fl['wall_rate'] / hu['wall_rate']:.2f}x huey",
         "-", "-"],
        ["overhead per task, p50 (skill end -> next skill start, same process)", ms(g50), ms(h50),
         f"{g50 / h50:.2f}x huey" if h50 > 0 else "-", "<= 0.5 ms", verdict(g50 <= 0.0005)],
        ["overhead per task, mean", ms(gmean), ms(hmean), f"{gmean / hmean:.2f}x huey" if hmean > 0 else "-",
         "<= 0.5 ms", verdict(gmean <= 0.0005)],
        ["  of which claim (started_at) -> skill start, p50", ms(c50), "", "", "-", "-"],
        ["  of which skill end -> finished_at (before its commit), p50", ms(e50), "", "", "-", "-"],
    ]
    if fl4 is not None:
        rows.append([f"no-op tasks/s, 4 workers ({tasks:,} tasks, first start -> last end)", f"{fl4['rate']:,.0f}",
                     "", "", "-", "-"])
    if rep is not None:
        rows.append([f"SIGKILL -> replacement heartbeating (median of {reps})", f"{rep * 1000:.0f} ms", "", "",
                     "<= 1 s", verdict(rep <= 1.0)])
        rows.append([f"killed worker's task -> claimable (median of {max(3, reps // 2)})", f"{req * 1000:.0f} ms",
                     "", "", "<= 2 s", verdict(req <= 2.0)])
    rows += [
        [f"idle fleet CPU ({nprocs} processes, {idle_s:g} s)", f"{idle_pct:.2f} % core", "", "", "<= 1 %",
         verdict(idle_pct <= 1.0)],
        ["idle worker RSS", f"{rss:.1f} MB", "", "", "<= 40 MB", verdict(rss <= 40)],
        ["idle worker RSS after its first task", f"{rss_after:.1f} MB", "", "", "<= 40 MB", verdict(rss_after <= 40)],
    ]
    print(f"\nFleet whole-fleet benchmark ({mode}, {rounds} round(s)): the real supervisor and workers (sync "
          f"{fl['sync']}) beside huey_consumer -k process -w {workers} (SqliteHuey, its default sync: {hu['sync']}), "
          "same no-op task, same run")
    print(f"machine: {os.cpu_count()} cores, load avg {load0[0]:.2f} -> {os.getloadavg()[0]:.2f}, "
          f"Python {sys.version.split()[0]}, run took {time.time() - started:.0f} s; processes seen running "
          f"tasks: fleet {fl['processes']}, huey {hu['processes']}; fleet attempts {fl['attempts']} for {tasks * rounds} tasks")
    print_table(head, rows)
    print(f"command: {Path(sys.executable).name} scripts/bench_fleet.py" + (f" --{mode}" if mode != "full" else "")
          + (f" --tasks {args.tasks}" if args.tasks else "") + (f" --rounds {args.rounds}" if args.rounds else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
