"""Benchmark: Fleet's task store against huey (SqliteHuey) and persist-queue
(SQLiteAckQueue) doing the same work on the same disk, beside the floor (raw
SQLite, one commit per task). Prints ONE table, one row per figure with its
target and PASS/MISS; every figure comes from this run.

    .venv/bin/python scripts/bench_queue.py           # full sizes (a few minutes)
    .venv/bin/python scripts/bench_queue.py --quick   # small sizes (about a minute)
    .venv/bin/python scripts/bench_queue.py --smoke   # tiny sizes: checks that it runs, figures mean little

Fleet drains on the path its worker really uses: each worker process
registers its agent row, claims once (`claim`), then completes each task and
claims the next in ONE transaction (`complete_and_claim`), until the queue is
empty. Measured: drain of no-op tasks by 2 processes at durability NORMAL and
FULL (huey and persist-queue at their defaults; the sync mode each used is
printed); enqueue rate (single calls; one bulk call of 10,000); idle wake-up
enqueue -> claim (p50/p99); CPU of one idle waiting consumer; claim p99 with
1,000,000 finished rows and 10,000 pending beside a fresh store; WAL pages
each drained task writes.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from fleet.store.sqlite_base import begin_immediate

ENQUEUE_SYSTEMS = ("fleet-normal", "fleet-full", "huey", "persist-queue")
# "floor-*" is no queue product: the least any queue that commits once per
# task can do on this machine (raw sqlite3, a claim index and nothing else:
# no attempts, no filters, no counts), fenced like ours.
DRAIN_SYSTEMS = ("fleet-normal", "fleet-full", "huey", "persist-queue", "floor-normal", "floor-full")
LATENCY_SYSTEMS = ("fleet-normal", "huey")  # persist-queue's blocking get answers in ~10 s: left out
IDLE_SYSTEMS = ("fleet-normal", "huey", "persist-queue")
SYNC_NAMES = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
SKILLS = ["noop"]
LEASE_S = 60.0  # the [queue] lease_s default, which the worker passes


# -- the worker's path through the store ---------------------------------
class WorkerPath:
    """What fleet/worker.py does around each task, minus running the skill:
    register the agent row, `claim` once, then `complete_and_claim` per task.
    Keyword arguments only, so a signature that gains fields still fits; the
    heartbeat fields are passed when the store takes them, as the worker does."""

    def __init__(self, store, name: str):
        self.store, self.name, self.held, self.progress = store, name, None, 0
        store.register_agent(name, "bench", pid=os.getpid(), status="starting")
        store.heartbeat(name, status="idle")
        params = inspect.signature(store.complete_and_claim).parameters
        self.extra = {k for k in ("progress", "heartbeat", "status") if k in params}

    def take_one(self):
        """Complete one task (the one held, else one claimed now); returns it or None."""
        if self.held is None:
            self.held = self.store.claim(self.name, SKILLS, lease_s=LEASE_S)
            if self.held is None:
                return None
        task = self.held
        self.progress += 1
        extra = {}
        if "progress" in self.extra:
            extra["progress"] = self.progress
        _, self.held = self.store.complete_and_claim(task.id, task.lease_token, None, worker=self.name,
                                                     skills=SKILLS, lease_s=LEASE_S, **extra)
        return task


# -- adapters: the same operations on each system ------------------------
class Adapter:
    """open(path) in every process; enqueue / bulk / take_one / wait."""

    def __init__(self, system: str, path: str, *, worker: bool = False, name: str = "w"):
        self.system, self.path = system, path
        if system.startswith("fleet"):
            from fleet.db import Store
            self.q = Store(os.path.join(path, "fleet.db"), synchronous=system.split("-")[1])
            self.worker = WorkerPath(self.q, name) if worker else None
        elif system == "huey":
            from huey import SqliteHuey
            self.q = SqliteHuey(filename=os.path.join(path, "huey.db"))

            def noop(t0=None):
                return None
            noop.__module__ = "fleet_bench"  # same registry name in every process
            self.noop = self.q.task()(noop)
            self.delay = 0.1  # huey Consumer defaults: initial_delay 0.1, backoff 1.15, max 10 s
        elif system.startswith("floor"):
            self.q = FloorQueue(os.path.join(path, "floor.db"), synchronous=system.split("-")[1].upper())
        elif system == "persist-queue":
            import persistqueue
            # auto_resume=False in workers: resuming would hand other processes'
            # unacked items out again.
            self.q = persistqueue.SQLiteAckQueue(path, auto_resume=not worker)
        else:
            raise SystemExit(f"unknown system {system}")

    def sync_mode(self) -> str:
        if self.system.startswith("floor"):
            return SYNC_NAMES[self.q.db.execute("PRAGMA synchronous").fetchone()[0]]
        if self.system.startswith("fleet"):
            return self.q.stats()["synchronous_in_effect"].upper()
        if self.system == "huey":
            return SYNC_NAMES[self.q.storage.sql("pragma synchronous", results=True)[0][0]]
        return SYNC_NAMES[self.q._getter.execute("pragma synchronous").fetchone()[0]]

    def enqueue(self, t0: float | None = None) -> None:
        if self.system.startswith("fleet"):
            self.q.enqueue("noop", {"t0": t0})
        elif self.system == "huey":
            self.noop(t0)
        else:
            self.q.put({"t0": t0})

    def bulk(self, n: int) -> bool:
        if self.system.startswith("floor"):
            self.q.fill(n)
            return True
        if self.system.startswith("fleet"):
            self.q.enqueue_many([{"skill": "noop", "payload": {"i": i}} for i in range(n)])
            return True
        return False  # neither peer has a bulk enqueue

    def fill(self, n: int) -> None:
        if not self.bulk(n):
            for _ in range(n):
                self.enqueue()

    def take_one(self):
        """Claim one task and finish it; returns (id, t0) or None when empty."""
        if self.system.startswith("floor"):
            return self.q.take_one(self.worker_name)
        if self.system.startswith("fleet"):
            task = self.worker.take_one()
            return None if task is None else (task.id, task.payload.get("t0"))
        if self.system == "huey":
            task = self.q.dequeue()
            if task is None:
                return None
            t0 = task.args[0] if task.args else task.kwargs.get("t0")
            self.q.execute(task)
            return task.id, t0
        import persistqueue
        try:
            item = self.q.get(block=False, raw=True)
        except persistqueue.Empty:
            return None
        self.q.ack(id=item["pqid"])
        return item["pqid"], item["data"].get("t0")

    worker_name = "w"

    def wait(self, timeout: float):
        """The system's own way to wait for the next task; returns take_one()."""
        deadline = time.monotonic() + timeout
        if self.system.startswith("fleet"):  # the worker's idle loop: claim, else wait_for_work
            while time.monotonic() < deadline:
                got = self.take_one()
                if got is not None:
                    return got
                self.q.wait_for_work(max(0.0, deadline - time.monotonic()))
            return None
        if self.system == "huey":  # the huey Consumer's polling loop
            while time.monotonic() < deadline:
                got = self.take_one()
                if got is not None:
                    self.delay = 0.1
                    return got
                time.sleep(min(self.delay, max(0.0, deadline - time.monotonic())))
                self.delay = min(self.delay * 1.15, 10.0)
            return None
        import persistqueue
        try:  # persist-queue's blocking get
            item = self.q.get(block=True, timeout=max(0.001, deadline - time.monotonic()), raw=True)
        except persistqueue.Empty:
            return None
        self.q.ack(id=item["pqid"])
        return item["pqid"], item["data"].get("t0")


class FloorQueue:
    """The floor for a queue that commits once per task: raw sqlite3, one
    table, the claim's partial index and nothing else. Each commit completes
    the task claimed by the previous one (fenced by its token) and claims the
    next, like `complete_and_claim`, and waits for the write lock as ours does."""

    def __init__(self, path: str, synchronous: str = "NORMAL"):
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute(f"PRAGMA synchronous = {synchronous}")
        self.db.execute("PRAGMA busy_timeout = 0")
        self.db.execute("""CREATE TABLE IF NOT EXISTS q (id INTEGER PRIMARY KEY, priority INTEGER NOT NULL,
            status TEXT NOT NULL, token TEXT, lease_expires_at REAL, worker TEXT, payload TEXT NOT NULL)""")
        self.db.execute("CREATE INDEX IF NOT EXISTS q_claim ON q (priority DESC, id) WHERE status = 'PENDING'")
        self.held = None

    def _begin(self) -> None:
        begin_immediate(self.db, 30.0)  # the store's own wait for the write lock

    def fill(self, n: int) -> None:
        self._begin()
        self.db.executemany("INSERT INTO q (priority, status, payload) VALUES (5, 'PENDING', ?)",
                            [(json.dumps({"i": i}),) for i in range(n)])
        self.db.execute("COMMIT")

    _CLAIM = """UPDATE q SET status = 'RUNNING', token = ?, worker = ?, lease_expires_at = ? WHERE id =
        (SELECT id FROM q WHERE status = 'PENDING' ORDER BY priority DESC, id LIMIT 1) RETURNING id, payload"""

    def _claim(self, name: str):
        token = os.urandom(12).hex()
        row = self.db.execute(self._CLAIM, (token, name, time.time() + 60)).fetchone()
        return None if row is None else (row[0], token, json.loads(row[1]).get("t0"))

    def take_one(self, name: str):
        """Complete one task (the one held, else one claimed now); returns (id, t0) or None."""
        if self.held is None:
            self._begin()
            self.held = self._claim(name)
            self.db.execute("COMMIT")
            if self.held is None:
                return None
        task_id, token, t0 = self.held
        self._begin()
        if self.db.execute("UPDATE q SET status = 'DONE', token = NULL WHERE id = ? AND token = ?",
                           (task_id, token)).rowcount != 1:
            self.db.execute("ROLLBACK")
            raise RuntimeError(f"floor: the lease on {task_id} was lost")
        self.held = self._claim(name)
        self.db.execute("COMMIT")
        return task_id, t0


# -- a long finished history (plain SQL on the store's file) -------------
def load_finished_history(db_path: str, count: int, *, skill: str = "noop", status: str = "DONE") -> int:
    """Insert `count` finished tasks straight into a Fleet SQLite file, in one
    statement, to see how the queue behaves with a long history. Benchmark
    data only: no attempt or event rows. The per-status counts are kept right
    (new rows count themselves in the store, so this does too)."""
    ts = time.time()
    db = sqlite3.connect(db_path, isolation_level=None)
    try:
        begin_immediate(db, 30.0)
        db.execute(
            """WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?)
               INSERT INTO tasks (skill, payload, priority, status, attempts, max_attempts,
                   available_at, created_at, updated_at, started_at, finished_at, worker, result)
               SELECT ?, '{}', 1 + (x % 10), ?, 1, 3, ?, ?, ?, ?, ?, 'synthetic', 'null' FROM n""",
            (count, skill, status, ts, ts, ts, ts, ts))
        db.execute("""INSERT INTO task_counts (status, skill, n) VALUES (?, ?, ?)
                      ON CONFLICT (status, skill) DO UPDATE SET n = n + excluded.n""", (status, skill, count))
        db.execute("COMMIT")
    finally:
        db.close()
    return count


# -- child processes -----------------------------------------------------
def child(spec: dict) -> None:
    ad = Adapter(spec["system"], spec["path"], worker=True, name=spec.get("name", "w"))
    ad.worker_name = spec.get("name", "w")
    role = spec["role"]
    if role in ("latency", "idle"):
        ad.wait(0)  # fleet: binds the wake channel before "ready"
    print("ready", flush=True)
    sys.stdin.readline()
    if role == "drain":
        ids, t_start = [], time.perf_counter()
        while (got := ad.take_one()) is not None:
            ids.append(got[0])
        print(json.dumps({"ids": ids, "elapsed": time.perf_counter() - t_start}), flush=True)
    elif role == "latency":
        for _ in range(spec["samples"]):
            got = ad.wait(120)
            print(json.dumps({"latency": None if got is None else time.time() - got[1]}), flush=True)
    elif role == "idle":
        cpu0, deadline = time.process_time(), time.monotonic() + spec["seconds"]
        while time.monotonic() < deadline:
            ad.wait(deadline - time.monotonic())
        print(json.dumps({"cpu_s": time.process_time() - cpu0}), flush=True)


def spawn(spec: dict) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(spec)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
    line = proc.stdout.readline().strip()
    if line != "ready":
        proc.kill()
        raise RuntimeError(f"{spec['system']} {spec['role']} child did not start: {line!r}")
    return proc


def go(procs) -> None:
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()


# -- measurements --------------------------------------------------------
def fresh_dir(root: Path, label: str) -> str:
    d = root / f"{label}-{random.randrange(1 << 30):x}"
    d.mkdir(parents=True)
    return str(d)


def bench_enqueue(system: str, root: Path, n_single: int, n_bulk: int) -> tuple[str, float, float | None]:
    ad = Adapter(system, fresh_dir(root, system))
    mode = ad.sync_mode()
    t = time.perf_counter()
    for _ in range(n_single):
        ad.enqueue()
    single = n_single / (time.perf_counter() - t)
    t = time.perf_counter()
    bulk = n_bulk / (time.perf_counter() - t) if ad.bulk(n_bulk) else None
    return mode, single, bulk


def bench_drain(system: str, root: Path, n: int, procs: int) -> tuple[float, int, str]:
    """(tasks/s, tasks handed out twice, sync mode) of `procs` processes draining n tasks."""
    path = fresh_dir(root, system)
    ad = Adapter(system, path)
    ad.fill(n)
    mode = ad.sync_mode()
    children = [spawn({"system": system, "path": path, "role": "drain", "name": f"w{i}"}) for i in range(procs)]
    t = time.perf_counter()
    go(children)
    ids = []
    for c in children:
        ids += json.loads(c.stdout.readline())["ids"]
        c.wait(60)
    elapsed = time.perf_counter() - t
    if len(set(ids)) < n:
        raise RuntimeError(f"{system}: only {len(set(ids))} of {n} tasks were drained")
    return n / elapsed, len(ids) - len(set(ids)), mode


def bench_latency(system: str, root: Path, samples: int) -> list[float]:
    path = fresh_dir(root, system)
    ad = Adapter(system, path)
    consumer = spawn({"system": system, "path": path, "role": "latency", "samples": samples, "name": "lat"})
    go([consumer])
    out = []
    rnd = random.Random(7)
    for _ in range(samples):
        time.sleep(0.005 + rnd.random() * 0.02)  # the consumer is idle again
        ad.enqueue(time.time())
        out.append(json.loads(consumer.stdout.readline())["latency"])
    consumer.wait(60)
    return [x for x in out if x is not None]


def bench_idle(root: Path, seconds: float) -> dict[str, float]:
    children = {}
    for system in IDLE_SYSTEMS:
        path = fresh_dir(root, system)
        Adapter(system, path)  # create the schema
        children[system] = spawn({"system": system, "path": path, "role": "idle", "seconds": seconds,
                                  "name": "idle"})
    go(children.values())
    out = {s: json.loads(c.stdout.readline())["cpu_s"] / seconds * 100 for s, c in children.items()}
    for c in children.values():
        c.wait(60)
    return out


def raw_commit_rate(root: Path, sync: str, seconds: float) -> float:
    db = sqlite3.connect(os.path.join(fresh_dir(root, "raw"), "raw.db"), isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute(f"PRAGMA synchronous = {sync}")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    n, end = 0, time.perf_counter() + seconds
    t = time.perf_counter()
    while time.perf_counter() < end:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t (v) VALUES ('x')")
        db.execute("COMMIT")
        n += 1
    rate = n / (time.perf_counter() - t)
    db.close()
    return rate


def wal_frames(path: str) -> int:
    """Frames in the database's WAL now (read by a PASSIVE checkpoint, which
    also copies them back; call it before the last connection closes)."""
    db = sqlite3.connect(path)
    try:
        return db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
    finally:
        db.close()


def wal_written_per_task(root: Path, n: int) -> dict[str, tuple[float, float]]:
    """(WAL frames, KiB) each drained task writes, with automatic checkpoints
    off so the WAL holds everything: ours (the worker's path), huey (dequeue +
    execute) and the floor. What a commit must write, and at full durability sync."""
    from huey import SqliteHuey

    from fleet.db import Store

    def reset(path: str) -> None:
        sqlite3.connect(path).execute("PRAGMA wal_checkpoint(TRUNCATE)").connection.close()

    out = {}
    path = os.path.join(fresh_dir(root, "wal"), "fleet.db")
    store = Store(path, wal_autocheckpoint_pages=0)
    store.enqueue_many([{"skill": "noop", "payload": {"i": i}} for i in range(n + 1)])
    worker = WorkerPath(store, "w")
    worker.take_one()  # the first claim (and one task) before counting
    reset(path)
    for _ in range(n):
        worker.take_one()
    per = wal_frames(path) / n
    out["fleet"] = (per, per * store.stats()["page_size"] / 1024)
    store.close()
    path = os.path.join(fresh_dir(root, "wal"), "huey.db")
    huey = SqliteHuey(filename=path)
    noop = huey.task()(lambda t0=None: None)
    for _ in range(n):
        noop()
    huey.storage.sql("PRAGMA wal_autocheckpoint = 0")
    reset(path)
    for _ in range(n):
        huey.execute(huey.dequeue())
    per = wal_frames(path) / n
    out["huey"] = (per, per * huey.storage.sql("PRAGMA page_size", results=True)[0][0] / 1024)
    path = os.path.join(fresh_dir(root, "wal"), "floor.db")
    floor = FloorQueue(path)
    floor.db.execute("PRAGMA wal_autocheckpoint = 0")
    floor.fill(n + 1)
    floor.take_one("w")
    reset(path)
    for _ in range(n):
        floor.take_one("w")
    per = wal_frames(path) / n
    out["floor"] = (per, per * floor.db.execute("PRAGMA page_size").fetchone()[0] / 1024)
    floor.db.close()
    return out


def claim_latencies(history: int, pending: int, claims: int, root: Path) -> tuple[float, float, float]:
    """Claim p50, p99 and build time with `history` finished rows and `pending` PENDING."""
    from fleet.db import Store

    path = os.path.join(fresh_dir(root, f"hist{history}"), "fleet.db")
    store = Store(path)
    t = time.perf_counter()
    if history:
        load_finished_history(path, history)
    for start in range(0, pending, 5000):
        store.enqueue_many([{"skill": "noop", "payload": {"i": i}, "priority": 1 + i % 10}
                            for i in range(start, min(pending, start + 5000))])
    store.maintain()
    build = time.perf_counter() - t
    lat = []
    for _ in range(claims):
        t = time.perf_counter()
        task = store.claim("bench", SKILLS, lease_s=LEASE_S)
        lat.append(time.perf_counter() - t)
        store.complete(task.id, task.lease_token)
    store.close()
    return pct(lat, 50), pct(lat, 99), build


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


# -- the table -----------------------------------------------------------
def num(v, unit: str = "") -> str:
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    if math.isnan(v):
        return "-"
    if unit == "ms":
        return f"{v * 1000:.2f}"
    if unit == "%":
        return f"{v:.3f}"
    if unit == "x":
        return f"{v:.2f}x"
    if unit == "1":
        return f"{v:.1f}"
    return f"{v:,.0f}"


def ratio(a, b) -> float:
    return a / b if a is not None and b else float("nan")


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


def sizes(mode: str) -> dict:
    if mode == "smoke":
        return {"n_single": 50, "n_bulk": 1000, "n_drain": 100, "lat": 5, "idle_s": 0.3,
                "history": 10_000, "pending": 500, "claims": 50, "wal": 50, "raw_s": 0.1, "rounds": 1}
    if mode == "quick":
        return {"n_single": 1000, "n_bulk": 10_000, "n_drain": 1000, "lat": 50, "idle_s": 2.0,
                "history": 100_000, "pending": 10_000, "claims": 500, "wal": 1000, "raw_s": 1.0, "rounds": 1}
    return {"n_single": 10_000, "n_bulk": 10_000, "n_drain": 5000, "lat": 200, "idle_s": 10.0,
            "history": 1_000_000, "pending": 10_000, "claims": 2000, "wal": 2000, "raw_s": 3.0, "rounds": 3}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (about a minute)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script runs; figures mean little")
    ap.add_argument("--rounds", type=int, help="drain rounds, alternating the systems; the median is printed "
                    "(default 3, quick/smoke 1)")
    ap.add_argument("--tasks", type=int, help="tasks per drain (default 5,000; quick 1,000)")
    ap.add_argument("--history", type=int, help="finished rows for the claim-latency figure (default 1,000,000)")
    ap.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite",
                    help="postgresql: Fleet's PostgreSQL store beside procrastinate (scripts/bench_queue_pg.py)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--dir", help="where to put the databases (default: a temp dir on this disk)")
    args = ap.parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return 0
    if args.backend == "postgresql":
        import runpy

        pg = runpy.run_path(str(Path(__file__).with_name("bench_queue_pg.py")))
        return pg["main"]([*(["--smoke"] if args.smoke else []), *(["--tasks", str(args.tasks)] if args.tasks else [])])

    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    z = sizes(mode)
    rounds = args.rounds or z["rounds"]
    n_drain = args.tasks or z["n_drain"]
    history = args.history or z["history"]
    procs = 2

    root = Path(args.dir or tempfile.mkdtemp(prefix="fleet-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    load0 = os.getloadavg()
    started = time.time()
    enq: dict[str, dict] = {}
    drain: dict[str, list[float]] = {s: [] for s in DRAIN_SYSTEMS}
    modes: dict[str, str] = {}
    dups: dict[str, int] = {s: 0 for s in DRAIN_SYSTEMS}
    lat: dict[str, list[float]] = {}
    try:
        for s in ENQUEUE_SYSTEMS:
            m, single, bulk = bench_enqueue(s, root, z["n_single"], z["n_bulk"])
            enq[s], modes[s] = {"single": single, "bulk": bulk}, m
            print(f"  enqueue {s}: {single:,.0f}/s single, {num(bulk)}/s bulk", file=sys.stderr)
        for r in range(rounds):
            order = DRAIN_SYSTEMS if r % 2 == 0 else DRAIN_SYSTEMS[::-1]
            for s in order:
                rate, dup, m = bench_drain(s, root, n_drain, procs)
                drain[s].append(rate)
                dups[s] += dup
                modes[s] = m
                print(f"  drain {s} x{procs} (round {r + 1}): {rate:,.0f}/s", file=sys.stderr)
        for s in LATENCY_SYSTEMS:
            lat[s] = bench_latency(s, root, z["lat"])
            print(f"  wake-up {s}: p50 {pct(lat[s], 50) * 1000:.2f} ms over {len(lat[s])}", file=sys.stderr)
        idle = bench_idle(root, z["idle_s"])
        raw = raw_commit_rate(root, "NORMAL", z["raw_s"])
        print("  claim latency with history ...", file=sys.stderr)
        fresh = claim_latencies(0, z["pending"], z["claims"], root)
        big = claim_latencies(history, z["pending"], z["claims"], root)
        wal = wal_written_per_task(root, z["wal"])
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)
    load1 = os.getloadavg()

    d = {s: statistics.median(v) for s, v in drain.items()}
    fn, ff, hu, pq = d["fleet-normal"], d["fleet-full"], d["huey"], d["persist-queue"]
    fl_n, fl_f = d["floor-normal"], d["floor-full"]
    e_fn, e_hu = enq["fleet-normal"], enq["huey"]
    p50, p99 = pct(lat["fleet-normal"], 50), pct(lat["fleet-normal"], 99)
    hp50, hp99 = pct(lat["huey"], 50), pct(lat["huey"], 99)
    x_n, x_f, of_floor = ratio(fn, hu), ratio(ff, hu), ratio(fn, fl_n)
    hist_x = ratio(big[1], fresh[1])

    head = ["figure", "fleet", "huey", "persist-q", "floor", "fleet vs", "target", "result"]
    rows = [
        [f"drain {procs}p, worker path, NORMAL (tasks/s)", num(fn), num(hu), num(pq), num(fl_n),
         f"{num(x_n, 'x')} huey", ">= 2x huey", verdict(x_n >= 2)],
        ["  the same drain as % of the floor", f"{of_floor * 100:.0f} %", "", "", "100 %",
         f"{of_floor * 100:.0f} % floor", "goal >= 35 %", verdict(of_floor >= 0.35)],
        [f"drain {procs}p, worker path, FULL (tasks/s)", num(ff), num(hu), num(pq), num(fl_f),
         f"{num(x_f, 'x')} huey, {ratio(ff, fl_f) * 100:.0f} % floor", ">= 1x huey", verdict(x_f >= 1)],
        [f"bulk enqueue, {z['n_bulk']:,} in one call (tasks/s)", num(e_fn["bulk"]), "n/a", "n/a", "",
         "", ">= 100,000/s", verdict((e_fn["bulk"] or 0) >= 100_000)],
        ["single enqueue, NORMAL (tasks/s)", num(e_fn["single"]), num(e_hu["single"]),
         num(enq["persist-queue"]["single"]), f"{num(raw)} raw commit",
         f"{num(ratio(e_fn['single'], e_hu['single']), 'x')} huey", ">= 3x huey",
         verdict(ratio(e_fn["single"], e_hu["single"]) >= 3)],
        ["  single enqueue, FULL (tasks/s)", num(enq["fleet-full"]["single"]), num(e_hu["single"]), "", "",
         f"{num(ratio(enq['fleet-full']['single'], e_hu['single']), 'x')} huey", "-", "-"],
        ["idle wake-up enqueue -> claim p50 (ms)", num(p50, "ms"), num(hp50, "ms"), "", "", "",
         "<= 3 ms", verdict(p50 <= 0.003)],
        ["idle wake-up enqueue -> claim p99 (ms)", num(p99, "ms"), num(hp99, "ms"), "", "",
         f"n={len(lat['fleet-normal'])}", "<= 10 ms", verdict(p99 <= 0.010)],
        [f"idle consumer CPU over {z['idle_s']:g} s (% of a core)", num(idle["fleet-normal"], "%"),
         num(idle["huey"], "%"), num(idle["persist-queue"], "%"), "", "", "<= 0.5 %",
         verdict(idle["fleet-normal"] <= 0.5)],
        [f"claim p99, {history:,} finished + {z['pending']:,} pending (ms)", num(big[1], "ms"), "", "", "",
         f"{num(hist_x, 'x')} fresh ({fresh[1] * 1000:.2f} ms)", "<= 2x fresh", verdict(hist_x <= 2)],
        ["WAL pages written per drained task", num(wal["fleet"][0], "1"), num(wal["huey"][0], "1"), "",
         num(wal["floor"][0], "1"), f"{wal['fleet'][1]:.1f} KiB vs huey {wal['huey'][1]:.1f}", "-", "-"],
    ]
    print(f"\nFleet queue benchmark ({mode}): drain {n_drain:,} no-op tasks x {rounds} round(s) (median), "
          f"enqueue {z['n_single']:,} single + {z['n_bulk']:,} bulk, wake-up {z['lat']} samples")
    print(f"machine: {os.cpu_count()} cores, load avg {load0[0]:.2f} -> {load1[0]:.2f}, Python "
          f"{sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}, run took {time.time() - started:.0f} s")
    print(f"sync modes: fleet {modes['fleet-normal']} / {modes['fleet-full']}, huey {modes['huey']} (its default), "
          f"persist-queue {modes['persist-queue']} (its default), floor {modes['floor-normal']} / {modes['floor-full']}")
    print_table(head, rows)
    if dups["persist-queue"]:
        print(f"persist-queue handed out {dups['persist-queue']} task(s) twice across processes "
              "(its claim is not atomic)")
    if any(dups[s] for s in DRAIN_SYSTEMS if s != "persist-queue"):
        print("DUPLICATES: " + ", ".join(f"{s} {n}" for s, n in dups.items() if n and s != "persist-queue"))
    print("floor = raw sqlite3, one table and its claim index, one fenced commit per task "
          "(complete + next claim): the most a queue that commits once per task can do on this disk")
    print(f"command: {Path(sys.executable).name} scripts/bench_queue.py"
          + (f" --{mode}" if mode != "full" else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
