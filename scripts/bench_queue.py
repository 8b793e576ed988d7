"""Benchmark: Fleet's task store against huey (SqliteHuey) and persist-queue
(SQLiteAckQueue) doing the same work on the same disk, with SQLite's raw
single-row commit rate as the limit. Prints ONE table; every figure comes
from this run. Ours runs at both durability modes; the peers at their
defaults (the sync mode each row used is printed).

    .venv/bin/python scripts/bench_queue.py           # full sizes (a few minutes)
    .venv/bin/python scripts/bench_queue.py --quick   # small sizes, smoke run

Measured: enqueue rate (single calls, and one bulk call of 10,000); drain
throughput of no-op tasks with 1, 2 and 4 worker processes (ours: a full
claim with lease + fenced complete per task); idle latency enqueue -> claim
(p50/p99); CPU of one idle waiting consumer; claim p99 with 1,000,000
finished rows and 10,000 pending versus a fresh store.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from fleet.store.sqlite_base import begin_immediate  # noqa: E402 (after the path set-up)

SYSTEMS = ("fleet-normal", "fleet-full", "huey", "persist-queue")
# Drain variants of ours: "2tx" = claim() then complete() (two commits per
# task); "1tx" = complete_and_claim() (the completion and the next claim share
# one commit). Both claim with a lease and complete with a fenced token.
# "floor" is no queue product: the least any queue that commits once per task
# can do on this machine (raw sqlite3, a claim index and nothing else: no
# audit, no attempts, no filters, no counts), fenced like ours, at NORMAL.
DRAIN_VARIANTS = ("fleet-normal", "fleet-normal-1tx", "fleet-full", "fleet-full-1tx", "huey", "persist-queue",
                  "floor")
SYNC_NAMES = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


# -- adapters: the same operations on each system ------------------------
class Adapter:
    """open(path) in every process; enqueue / bulk / take_one / wait."""

    def __init__(self, system: str, path: str, *, worker: bool = False):
        self.one_tx = system.endswith("-1tx")
        system = system.removesuffix("-1tx")
        self.system, self.path = system, path
        self.held = None  # 1tx: the task claimed together with the last completion
        if system.startswith("fleet"):
            from fleet.db import Store
            self.q = Store(os.path.join(path, "fleet.db"), synchronous=system.split("-")[1])
        elif system == "huey":
            from huey import SqliteHuey
            self.q = SqliteHuey(filename=os.path.join(path, "huey.db"))

            def noop(t0=None):
                return None
            noop.__module__ = "fleet_bench"  # same registry name in every process
            self.noop = self.q.task()(noop)
            self.delay = 0.1  # huey Consumer defaults: initial_delay 0.1, backoff 1.15, max 10 s
        elif system == "floor":
            self.q = FloorQueue(os.path.join(path, "floor.db"))
        elif system == "persist-queue":
            import persistqueue
            # auto_resume=False in workers: resuming would hand other processes'
            # unacked items out again.
            self.q = persistqueue.SQLiteAckQueue(path, auto_resume=not worker)
        else:
            raise SystemExit(f"unknown system {system}")

    def sync_mode(self) -> str:
        if self.system == "floor":
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
        if self.system == "floor":
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

    def take_one(self, name: str):
        """Claim one task and finish it; returns (id, t0) or None when empty."""
        if self.system == "floor":
            return self.q.take_one(name)
        if self.system.startswith("fleet") and self.one_tx:
            task = self.held or self.q.claim(name, ["noop"], lease_s=60)
            if task is None:
                return None
            _, self.held = self.q.complete_and_claim(task.id, task.lease_token, None, worker=name,
                                                     skills=["noop"], lease_s=60)
            return task.id, task.payload.get("t0")
        if self.system.startswith("fleet"):
            task = self.q.claim(name, ["noop"], lease_s=60)
            if task is None:
                return None
            self.q.complete(task.id, task.lease_token, None)
            return task.id, task.payload.get("t0")
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

    def wait(self, timeout: float, name: str):
        """The system's own way to wait for the next task; returns take_one()."""
        deadline = time.monotonic() + timeout
        if self.system.startswith("fleet"):
            while time.monotonic() < deadline:
                got = self.take_one(name)
                if got is not None:
                    return got
                self.q.wait_for_work(max(0.0, deadline - time.monotonic()))
            return None
        if self.system == "huey":  # the huey Consumer's polling loop
            while time.monotonic() < deadline:
                got = self.take_one(name)
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

    def __init__(self, path: str):
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")
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


# -- child processes -----------------------------------------------------
def child(spec: dict) -> None:
    ad = Adapter(spec["system"], spec["path"], worker=True)
    role = spec["role"]
    if role in ("latency", "idle"):
        ad.wait(0, "probe")  # fleet: binds the wake channel before "ready"
    print("ready", flush=True)
    sys.stdin.readline()
    if role == "drain":
        ids, t_start = [], time.perf_counter()
        while (got := ad.take_one(spec["name"])) is not None:
            ids.append(got[0])
        print(json.dumps({"ids": ids, "elapsed": time.perf_counter() - t_start}), flush=True)
    elif role == "latency":
        for _ in range(spec["samples"]):
            got = ad.wait(120, "lat")
            print(json.dumps({"latency": None if got is None else time.time() - got[1]}), flush=True)
    elif role == "idle":
        cpu0, deadline = time.process_time(), time.monotonic() + spec["seconds"]
        while time.monotonic() < deadline:
            ad.wait(deadline - time.monotonic(), "idle")
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


def bench_drain(system: str, root: Path, n: int, procs: int) -> tuple[float, int]:
    path = fresh_dir(root, system)
    Adapter(system, path).fill(n)
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
    return n / elapsed, len(ids) - len(set(ids))


def bench_latency(system: str, root: Path, samples: int) -> list[float]:
    path = fresh_dir(root, system)
    ad = Adapter(system, path)
    consumer = spawn({"system": system, "path": path, "role": "latency", "samples": samples})
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
    for system in SYSTEMS:
        path = fresh_dir(root, system)
        Adapter(system, path)  # create the schema
        children[system] = spawn({"system": system, "path": path, "role": "idle", "seconds": seconds})
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
    off so the WAL holds everything: ours (complete_and_claim, one commit per
    task) and huey (dequeue + execute). What a commit must write, and at full
    durability sync."""
    from fleet.db import Store
    from huey import SqliteHuey

    def reset(path: str) -> None:
        sqlite3.connect(path).execute("PRAGMA wal_checkpoint(TRUNCATE)").connection.close()

    out = {}
    path = os.path.join(fresh_dir(root, "wal"), "fleet.db")
    store = Store(path, wal_autocheckpoint_pages=0)
    store.enqueue_many([{"skill": "noop", "payload": {"i": i}} for i in range(n + 1)])
    task = store.claim("w", ["noop"])
    reset(path)
    for _ in range(n):
        _, task = store.complete_and_claim(task.id, task.lease_token, None, worker="w", skills=["noop"])
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
    return out


def claim_latencies(history: int, pending: int, claims: int, root: Path) -> tuple[float, float, float]:
    from fleet.db import Store

    store = Store(os.path.join(fresh_dir(root, f"hist{history}"), "fleet.db"))
    t = time.perf_counter()
    if history:
        store.load_synthetic_history(history, skill="noop")
    for start in range(0, pending, 5000):
        store.enqueue_many([{"skill": "noop", "payload": {"i": i}, "priority": 1 + i % 10}
                            for i in range(start, min(pending, start + 5000))])
    store.maintain()
    build = time.perf_counter() - t
    lat = []
    for _ in range(claims):
        t = time.perf_counter()
        task = store.claim("bench", ["noop"], lease_s=60)
        lat.append(time.perf_counter() - t)
        store.complete(task.id, task.lease_token)
    store.close()
    return pct(lat, 50), pct(lat, 99), build


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


# -- the run -------------------------------------------------------------
def fmt(v, unit="") -> str:
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
    return f"{v:,.0f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--dir", help="where to put the databases (default: a temp dir on this disk)")
    args = ap.parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return 0

    q = args.quick
    n_single = 1000 if q else 10_000
    n_bulk = 10_000
    n_drain = 500 if q else 5_000
    lat_samples = {"fleet-normal": 50 if q else 200, "fleet-full": 50 if q else 200,
                   "huey": 20 if q else 200, "persist-queue": 2 if q else 4}
    idle_s = 2.0 if q else 10.0
    history, pending, claims = (100_000, 10_000, 500) if q else (1_000_000, 10_000, 2_000)

    root = Path(args.dir or tempfile.mkdtemp(prefix="fleet-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    load0 = os.getloadavg()
    started = time.time()
    rows: dict[str, dict] = {s: {} for s in DRAIN_VARIANTS}
    try:
        for s in SYSTEMS:
            mode, single, bulk = bench_enqueue(s, root, n_single, n_bulk)
            rows[s].update(mode=mode, single=single, bulk=bulk)
            print(f"  enqueue {s}: {single:,.0f}/s single, {fmt(bulk)}/s bulk", file=sys.stderr)
        for s in DRAIN_VARIANTS:
            for p in (1, 2, 4):
                rate, dup = bench_drain(s, root, n_drain, p)
                rows[s][f"drain{p}"] = rate
                rows[s]["dups"] = rows[s].get("dups", 0) + dup
                print(f"  drain {s} x{p}: {rate:,.0f}/s", file=sys.stderr)
        rows["floor"]["mode"] = Adapter("floor", fresh_dir(root, "floor")).sync_mode()
        for s in SYSTEMS:
            lat = bench_latency(s, root, lat_samples[s])
            rows[s].update(p50=pct(lat, 50), p99=pct(lat, 99), n_lat=len(lat))
            print(f"  latency {s}: p50 {pct(lat, 50) * 1000:.2f} ms over {len(lat)}", file=sys.stderr)
        for s, cpu in bench_idle(root, idle_s).items():
            rows[s]["idle_cpu"] = cpu
        raw = {"NORMAL": raw_commit_rate(root, "NORMAL", 1.0 if q else 3.0),
               "FULL": raw_commit_rate(root, "FULL", 1.0 if q else 3.0)}
        print("  claim latency with history ...", file=sys.stderr)
        fresh = claim_latencies(0, pending, claims, root)
        big = claim_latencies(history, pending, claims, root)
        wal = wal_written_per_task(root, 2000)
    finally:
        shutil.rmtree(root, ignore_errors=True) if not args.dir else None
    load1 = os.getloadavg()

    # -- the one table ---------------------------------------------------
    head = ["system", "sync", "enq 1/call /s", "enq bulk /s", "drain 1p /s", "drain 2p /s",
            "drain 4p /s", "idle p50 ms", "idle p99 ms", "(n)", "idle CPU %core"]
    table = []
    names = {"fleet-normal": "fleet (ours) claim+complete", "fleet-full": "fleet (ours) claim+complete",
             "fleet-normal-1tx": "fleet (ours) complete_and_claim", "fleet-full-1tx": "fleet (ours) complete_and_claim",
             "huey": "huey SqliteHuey", "persist-queue": "persist-queue SQLiteAckQueue",
             "floor": "floor: raw SQLite 1 commit/task (limit)"}
    for s in ("fleet-normal", "fleet-normal-1tx", "fleet-full", "fleet-full-1tx", "huey", "persist-queue", "floor"):
        r = rows[s]
        mode = r.get("mode") or rows[s.removesuffix("-1tx")]["mode"]
        table.append([names[s], mode, fmt(r.get("single", "")), fmt(r.get("bulk", "")), fmt(r["drain1"]),
                      fmt(r["drain2"]), fmt(r["drain4"]), fmt(r.get("p50", ""), "ms"),
                      fmt(r.get("p99", ""), "ms"), str(r.get("n_lat", "")), fmt(r.get("idle_cpu", ""), "%")])
    for mode, rate in raw.items():
        table.append(["raw SQLite 1-row commit (limit)", mode, fmt(rate), "", "", "", "", "", "", "", ""])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *table)]
    line = lambda cells: "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    print(f"\nFleet queue benchmark ({'quick' if q else 'full'}): drain n={n_drain} no-op tasks, "
          f"enqueue {n_single} single + {n_bulk} bulk, idle CPU over {idle_s:.0f} s")
    print(f"machine: {os.cpu_count()} cores, load avg {load0[0]:.2f} -> {load1[0]:.2f} (shared machine), "
          f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}, run took {time.time() - started:.0f} s")
    print(line(head))
    print(line(["-" * w for w in widths]))
    for row in table:
        print(line(row))
    fn, ff, hu, pq = (rows[s] for s in SYSTEMS)
    fn1, ff1 = rows["fleet-normal-1tx"], rows["fleet-full-1tx"]
    ratio = lambda a, b: a / b if b else float("inf")
    print(f"\nclaim latency, 10,000 pending: fresh store p50 {fresh[0]*1000:.3f} ms p99 {fresh[1]*1000:.3f} ms; "
          f"with {history:,} finished rows p50 {big[0]*1000:.3f} ms p99 {big[1]*1000:.3f} ms "
          f"(ratio p99 {ratio(big[1], fresh[1]):.2f}x; built in {big[2]:.1f} s)")
    print(f"WAL written per drained task: fleet complete_and_claim {wal['fleet'][0]:.1f} pages "
          f"({wal['fleet'][1]:.1f} KiB); huey {wal['huey'][0]:.1f} pages ({wal['huey'][1]:.1f} KiB)")
    print("ratios (same run):")
    for label, a, b in (("claim+complete", fn, ff), ("complete_and_claim", fn1, ff1)):
        print(f"  drain 2p, fleet {label}: NORMAL / huey {hu['mode']} = {ratio(a['drain2'], hu['drain2']):.2f}x; "
              f"FULL / huey {hu['mode']} (like with like) = {ratio(b['drain2'], hu['drain2']):.2f}x; "
              f"NORMAL / persist-queue = {ratio(a['drain2'], pq['drain2']):.2f}x; "
              f"FULL / persist-queue = {ratio(b['drain2'], pq['drain2']):.2f}x")
    print(f"  enqueue single: fleet NORMAL = {ratio(fn['single'], raw['NORMAL']):.2f} of raw NORMAL commit rate; "
          f"fleet FULL = {ratio(ff['single'], raw['FULL']):.2f} of raw FULL; "
          f"fleet NORMAL / huey = {ratio(fn['single'], hu['single']):.1f}x")
    fl = rows["floor"]
    print(f"  floor (1 commit per task, nothing but the claim index) / huey: 1p {ratio(fl['drain1'], hu['drain1']):.2f}x, "
          f"2p {ratio(fl['drain2'], hu['drain2']):.2f}x, 4p {ratio(fl['drain4'], hu['drain4']):.2f}x; "
          f"fleet complete_and_claim NORMAL / floor: 2p {ratio(fn1['drain2'], fl['drain2']):.2f}")
    if pq.get("dups"):
        print(f"  persist-queue handed out {pq['dups']} task(s) twice across processes (its claim is not atomic)")
    best_n, best_f = max(fn["drain2"], fn1["drain2"]), max(ff["drain2"], ff1["drain2"])
    checks = [
        ("drain 2p >= 5x huey at NORMAL", ratio(best_n, hu["drain2"]) >= 5),
        ("drain 2p >= 1x huey at FULL", ratio(best_f, hu["drain2"]) >= 1),
        ("claim p99 with history <= 2x fresh", big[1] <= 2 * fresh[1]),
        ("enqueue single >= 25,000/s", fn["single"] >= 25_000),
        ("enqueue bulk >= 100,000/s", (fn["bulk"] or 0) >= 100_000),
        ("idle latency p50 <= 3 ms", fn["p50"] <= 0.003),
        ("idle latency p99 <= 10 ms", fn["p99"] <= 0.010),
        ("idle consumer <= 0.5% of a core", fn["idle_cpu"] <= 0.5),
    ]
    print("targets (fleet at NORMAL, best drain variant): " + "; ".join(f"{name}: {'PASS' if ok else 'MISS'}" for name, ok in checks))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
