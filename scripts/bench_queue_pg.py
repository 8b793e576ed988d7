"""Queue benchmark on PostgreSQL: Fleet's PostgreSQL store beside procrastinate
(a PostgreSQL task queue for Python) on the same server, same no-op task.

Figures: enqueue one per call and in bulk; drain with 1, 2 and 4 processes
(Fleet: the worker's own path, complete_and_claim; procrastinate: its worker,
one job at a time per process, exiting when the queue is empty); idle wake-up
latency (enqueue -> claim by an idle worker waiting on LISTEN/NOTIFY); idle
CPU of a waiting worker; Fleet on two "hosts" against one (worker processes
with host-qualified names running a 5 ms task, where the store is not the
bottleneck); and the server's own commit rate (one-row INSERT commits from one
connection) as the limit.

Run: `.venv/bin/python scripts/bench_queue.py --backend postgresql` (or this
file). Needs a server: FLEET_BENCH_PG_DSN (default
postgresql://postgres@127.0.0.1:5432/test); each run uses its own schema for
Fleet and its own database for procrastinate, dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# procrastinate logs a warning when its App lives in __main__, as it does in this
# script (its tasks are looked up by name here, so that does not matter)
logging.getLogger("procrastinate.blueprints").setLevel(logging.ERROR)
DSN = os.environ.get("FLEET_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def admin():
    import psycopg

    return psycopg.connect(DSN, autocommit=True)


def with_db(dsn: str, db: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    parts = conninfo_to_dict(dsn)
    parts["dbname"] = db
    return make_conninfo(**parts)


# -- children ------------------------------------------------------------------
def child(spec: dict) -> None:
    """One benchmark process: waits for "go" on stdin, works, prints JSON."""
    kind = spec["kind"]
    if kind.startswith("fleet"):
        from fleet.store import postgres_store

        store = postgres_store(DSN, schema=spec["schema"], host=spec.get("host"))
        sys.stdin.readline()
        if kind == "fleet_drain":
            # a worker's own loop; on a "host" (the hosts figure) its name
            # carries the host, and each task takes `task_s` (a 5 ms task)
            done, name = 0, f"w{os.getpid()}" + (f"@{spec['host']}" if spec.get("host") else "")
            task = store.claim(name, ["noop"], lease_s=60)
            while task is not None:
                if spec.get("task_s"):
                    time.sleep(spec["task_s"])
                _, task = store.complete_and_claim(task.id, task.lease_token, None, worker=name, skills=["noop"],
                                                   lease_s=60)
                done += 1
            print(json.dumps({"done": done}), flush=True)
        elif kind == "fleet_idle":
            got = []
            deadline = time.monotonic() + spec["seconds"]
            while len(got) < spec["samples"] and time.monotonic() < deadline:
                task = store.claim("idle", ["noop"], lease_s=60)
                if task is None:
                    store.wait_for_work(1.0)
                    continue
                got.append([task.payload["t"], time.time()])
                store.complete(task.id, task.lease_token, None)
            print(json.dumps({"pairs": got}), flush=True)
        store.close()
        return
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=spec["dsn"]))
    stamps = []

    @app.task(name="noop")
    def noop(t: float = 0.0, **_):
        if spec["kind"] == "proc_idle":
            stamps.append([t, time.time()])

    with app.open():
        sys.stdin.readline()
        if kind == "proc_drain":
            app.run_worker(wait=False, concurrency=1, install_signal_handlers=False, listen_notify=False,
                           delete_jobs="never")
            print(json.dumps({"done": -1}), flush=True)
        elif kind == "proc_idle":
            import threading

            def stop_when_done():
                deadline = time.monotonic() + spec["seconds"]
                while len(stamps) < spec["samples"] and time.monotonic() < deadline:
                    time.sleep(0.05)
                os.kill(os.getpid(), 2)

            threading.Thread(target=stop_when_done, daemon=True).start()
            try:
                app.run_worker(wait=True, concurrency=1, listen_notify=True, fetch_job_polling_interval=5.0)
            except KeyboardInterrupt:
                pass
            print(json.dumps({"pairs": stamps}), flush=True)


def spawn(spec: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--child", json.dumps(spec)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=str(REPO))


def results(procs) -> list[dict]:
    out = []
    for p in procs:
        text, _ = p.communicate(timeout=600)
        out.append(json.loads(text.strip().splitlines()[-1]))
    return out


# -- the two systems -------------------------------------------------------------
class Fleet:
    name = "fleet (ours) complete_and_claim"

    def __init__(self):
        self.schema = f"fleet_bench_{uuid.uuid4().hex[:8]}"
        from fleet.store import postgres_store

        self.store = postgres_store(DSN, schema=self.schema)

    def reset(self):
        with admin() as conn:
            conn.execute(f'TRUNCATE "{self.schema}".tasks, "{self.schema}".task_count_deltas CASCADE')

    def enqueue_single(self, n: int) -> float:
        t0 = time.perf_counter()
        for i in range(n):
            self.store.enqueue("noop", {"i": i})
        return n / (time.perf_counter() - t0)

    def enqueue_bulk(self, n: int) -> float:
        t0 = time.perf_counter()
        for start in range(0, n, 1000):
            batch = range(start, min(n, start + 1000))
            self.store.enqueue_many([{"skill": "noop", "payload": {"i": i}} for i in batch])
        return n / (time.perf_counter() - t0)

    def spec(self, kind: str, **extra) -> dict:
        return {"kind": f"fleet_{kind}", "schema": self.schema, **extra}

    def finished(self) -> int:
        return self.store.counts()["DONE"]

    def enqueue_stamp(self):
        self.store.enqueue("noop", {"t": time.time()})

    def close(self):
        self.store.close()
        with admin() as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')


class Procrastinate:
    name = "procrastinate (PsycopgConnector)"

    def __init__(self):
        import procrastinate

        self.db = f"proc_bench_{uuid.uuid4().hex[:8]}"
        with admin() as conn:
            conn.execute(f'CREATE DATABASE "{self.db}"')
        self.dsn = with_db(DSN, self.db)
        self.app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=self.dsn))

        @self.app.task(name="noop")
        def noop(t: float = 0.0, **_):
            pass

        self.task = noop
        self.app.open()
        self.app.schema_manager.apply_schema()

    def reset(self):
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("TRUNCATE procrastinate_jobs CASCADE")

    def enqueue_single(self, n: int) -> float:
        t0 = time.perf_counter()
        for i in range(n):
            self.task.defer(i=i)
        return n / (time.perf_counter() - t0)

    def enqueue_bulk(self, n: int) -> float:
        t0 = time.perf_counter()
        for start in range(0, n, 1000):
            self.task.batch_defer(*({"i": i} for i in range(start, min(n, start + 1000))))
        return n / (time.perf_counter() - t0)

    def spec(self, kind: str, **extra) -> dict:
        return {"kind": f"proc_{kind}", "dsn": self.dsn, **extra}

    def finished(self) -> int:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            return conn.execute("SELECT COUNT(*) FROM procrastinate_jobs WHERE status = 'succeeded'").fetchone()[0]

    def enqueue_stamp(self):
        self.task.defer(t=time.time())

    def close(self):
        self.app.close()
        with admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')


# -- measurements ----------------------------------------------------------------
def drain(system, n: int, nprocs: int) -> float:
    system.reset()
    system.enqueue_bulk(n)
    procs = [spawn(system.spec("drain")) for _ in range(nprocs)]
    time.sleep(1.5)  # imports and connections before the clock starts
    t0 = time.perf_counter()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    results(procs)
    rate = n / (time.perf_counter() - t0)
    finished = system.finished()
    if finished != n:
        raise SystemExit(f"{system.name}: {finished} of {n} tasks finished after the drain; the figure is void")
    return rate


def hosts_drain(n: int, per_host: int, task_s: float) -> tuple[float, float]:
    """(one host's drain rate, two hosts' drain rate): `per_host` worker
    processes per host, each task `task_s` long, so the store is not the
    bottleneck and a second host should nearly double the rate."""
    system = Fleet()
    try:
        out = []
        for hosts in (["host-a"], ["host-a", "host-b"]):
            system.reset()
            system.enqueue_bulk(n)
            procs = [spawn(system.spec("drain", host=h, task_s=task_s)) for h in hosts for _ in range(per_host)]
            time.sleep(1.5)
            t0 = time.perf_counter()
            for p in procs:
                p.stdin.write("go\n")
                p.stdin.flush()
            results(procs)
            out.append(n / (time.perf_counter() - t0))
            if system.finished() != n:
                raise SystemExit(f"hosts figure: {system.finished()} of {n} tasks finished; the figure is void")
        return out[0], out[1]
    finally:
        system.close()


def idle_latency(system, samples: int) -> tuple[list[float], float]:
    """(enqueue -> claim latencies in ms, the waiter's CPU % of a core over an idle second)."""
    import psutil

    system.reset()
    proc = spawn(system.spec("idle", samples=samples, seconds=samples * 0.5 + 30))
    time.sleep(1.5)
    proc.stdin.write("go\n")
    proc.stdin.flush()
    time.sleep(1.0)
    ps = psutil.Process(proc.pid)
    c0 = sum(ps.cpu_times()[:2])
    time.sleep(3.0)
    cpu = (sum(ps.cpu_times()[:2]) - c0) / 3.0 * 100
    for _ in range(samples):
        system.enqueue_stamp()
        time.sleep(0.1)
    pairs = results([proc])[0]["pairs"]
    return [(b - a) * 1000 for a, b in pairs], cpu


def commit_rate(seconds: float = 2.0) -> float:
    with admin() as conn:
        conn.execute("CREATE TEMP TABLE bench_commit (v INT)")
        n, end = 0, time.monotonic() + seconds
        t0 = time.perf_counter()
        while time.monotonic() < end:
            with conn.transaction():
                conn.execute("INSERT INTO bench_commit VALUES (1)")
            n += 1
        return n / (time.perf_counter() - t0)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=5000, help="tasks per drain (default 5,000)")
    ap.add_argument("--enqueue", type=int, default=2000, help="tasks per enqueue figure (default 2,000)")
    ap.add_argument("--samples", type=int, default=100, help="idle-latency samples (default 100)")
    ap.add_argument("--host-tasks", type=int, default=2000, help="tasks per hosts figure (default 2,000)")
    ap.add_argument("--host-workers", type=int, default=2, help="worker processes per host (default 2)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script runs")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return 0
    if args.smoke:
        args.tasks, args.enqueue, args.samples, args.host_tasks = 200, 100, 10, 100
    try:
        import procrastinate  # noqa: F401
    except ImportError:
        print("procrastinate is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    started, load0 = time.time(), os.getloadavg()
    rows, rates = [], {}
    for cls in (Fleet, Procrastinate):
        system = cls()
        try:
            single = system.enqueue_single(args.enqueue)
            system.reset()
            bulk = system.enqueue_bulk(args.enqueue * 5)
            drains = [drain(system, args.tasks, n) for n in (1, 2, 4)]
            lat, cpu = idle_latency(system, args.samples)
        finally:
            system.close()
        rates[cls.name] = drains
        rows.append([cls.name, f"{single:,.0f}", f"{bulk:,.0f}", *(f"{d:,.0f}" for d in drains),
                     f"{pct(lat, 50):.2f}", f"{pct(lat, 99):.2f}", str(len(lat)), f"{cpu:.3f}"])
    one_host, two_hosts = hosts_drain(args.host_tasks, args.host_workers, 0.005)
    limit = commit_rate()
    head = ["system", "enq 1/call /s", "enq bulk /s", "drain 1p /s", "drain 2p /s", "drain 4p /s",
            "idle p50 ms", "idle p99 ms", "(n)", "idle CPU %core"]
    print(f"\nQueue benchmark on PostgreSQL ({DSN.rsplit('@', 1)[-1]}): Fleet beside procrastinate, same server, "
          f"same no-op task; {args.tasks:,} tasks per drain")
    print(f"machine: {os.cpu_count()} cores, load avg {load0[0]:.2f} -> {os.getloadavg()[0]:.2f}, "
          f"Python {sys.version.split()[0]}, run took {time.time() - started:.0f} s")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, ["-" * w for w in widths], *rows]:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    print(f"server commit rate, one connection, one-row INSERT per commit (limit): {limit:,.0f}/s")
    f, p = rates[Fleet.name], rates[Procrastinate.name]
    ratio = f[2] / p[2] if p[2] else float("nan")
    print(f"drain 4p fleet / procrastinate = {ratio:.2f}x (target >= 1x): {'PASS' if ratio >= 1 else 'MISS'}")
    scale = two_hosts / one_host
    print(f"hosts: a 5 ms task, {args.host_workers} worker processes per host, {args.host_tasks:,} tasks: one host "
          f"{one_host:,.0f}/s, two hosts {two_hosts:,.0f}/s = {scale:.2f}x (target >= 1.6x): "
          f"{'PASS' if scale >= 1.6 else 'MISS'}")
    lat_p50 = float(rows[0][6])
    print(f"fleet idle latency p50 {lat_p50:.2f} ms (target <= 3 ms): {'PASS' if lat_p50 <= 3 else 'MISS'}")
    print("command: python scripts/bench_queue.py --backend postgresql" + (" --smoke" if args.smoke else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
