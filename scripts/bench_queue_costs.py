"""Where a drained task's time goes: Fleet's `complete_and_claim` beside a
raw-SQL replica of it, and the replica without each part of the queue's
contract in turn, down to the floor of `bench_queue.py` (raw SQLite, a
claim index and nothing else). One process, durability NORMAL, every row
from this run; rounds alternate the rows, and the median of each is printed.

    .venv/bin/python scripts/bench_queue_costs.py           # 20,000 tasks, 3 rounds
    .venv/bin/python scripts/bench_queue_costs.py --quick   # smoke run
    .venv/bin/python scripts/bench_queue_costs.py --quick --history 100000  # over a finished history

The replica runs exactly the statements the store runs for a registered
worker (the store's own SQL constants, on the store's own schema): complete
the task, append its attempt row, claim the next, and set the worker's
agent row (busy, heartbeat) in the same transaction. No audit event: the
store writes none on this path. So "Fleet's Python" is the API's cost above
its SQL: validation, the records handed back, the wake-up. Each "without"
row drops that part from the schema (DROP INDEX / DROP TRIGGER on a scratch
copy) or leaves its statements out; then each index of the tasks and
task_attempts tables is dropped alone (read from the schema), so each
index's own cost shows. `--history N` puts N finished tasks under the queue
first: an index that holds finished rows costs more when they are many and
of several statuses than on a store with nothing but the queue.
WAL pages per task are counted with automatic checkpoints off: each is a
page the commit writes (and, at full durability, syncs).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import secrets
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from fleet.db import Store
from fleet.store import schema
from fleet.store import tasks as queue_sql
from fleet.store.task_reads import skill_clause

_spec = importlib.util.spec_from_file_location("bench_queue", REPO / "scripts" / "bench_queue.py")
bench_queue = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_queue)

def _schema_indexes() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the tasks table's filter indexes, every index measured on its own):
    read from the store's schema, so the rows follow it. The claim's own
    indexes (ix_tasks_claim, the delayed-work index) and the idempotency key
    are the queue's contract and stay; task_attempts' indexes go with the
    attempt rows."""
    db = sqlite3.connect(":memory:")
    for migration in schema.MIGRATIONS:
        db.executescript(migration)
    rows = db.execute("SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' "
                      "AND tbl_name IN ('tasks', 'task_attempts') AND sql IS NOT NULL ORDER BY tbl_name DESC, name"
                      ).fetchall()
    db.close()
    kept = {"ix_tasks_claim", "ix_tasks_delayed_v2", "ux_tasks_idempotency"}
    filters = tuple(name for name, table in rows if table == "tasks" and name not in kept)
    return filters, filters + tuple(name for name, table in rows if table == "task_attempts")


_FILTER_INDEXES, _EACH_INDEX = _schema_indexes()
_ALL = {"agent": False, "attempts": False, "drop": ("DROP TRIGGER tr_tasks_count_update",)
        + tuple(f"DROP INDEX {ix}" for ix in _FILTER_INDEXES)}
WORKER = "w"
API, REPLICA, FLOOR = ("Store.complete_and_claim (the API)", "replica: the same SQL, no Fleet Python",
                      "floor (bench_queue.py): its own one-table schema")
ALL_FOUR = "  without all four (claim index only)"
FILTERS = "  without the tasks table's filter indexes"
ONE_INDEX = "    without "  # + the index name: one row per index
# label -> how the replica runs (None: the Store API itself; "floor": bench_queue's floor)
ROWS: dict[str, dict | str | None] = {
    API: None,
    REPLICA: {},
    "  without the agent-row update (busy, heartbeat)": {"agent": False},
    "  without the attempt rows": {"attempts": False},
    "  without the per-status count trigger": {"drop": ("DROP TRIGGER tr_tasks_count_update",)},
    FILTERS: {"drop": tuple(f"DROP INDEX {ix}" for ix in _FILTER_INDEXES)},
    **{ONE_INDEX + ix: {"drop": (f"DROP INDEX {ix}",)} for ix in _EACH_INDEX},
    ALL_FOUR: _ALL,
    FLOOR: "floor",
}


HISTORY = {"n": 0}  # finished rows under the queue (--history)


def _filled_store(root: Path, n: int, autocheckpoint: bool) -> str:
    path = os.path.join(tempfile.mkdtemp(dir=root), "fleet.db")
    store = Store(path, **({} if autocheckpoint else {"wal_autocheckpoint_pages": 0}))
    store.register_agent(WORKER, "bench", pid=os.getpid(), status="idle")  # as a worker does at start
    if HISTORY["n"]:  # older than the queue: 19 DONE to 1 FAILED, as a fleet that has run a while
        bench_queue.load_finished_history(path, HISTORY["n"] - HISTORY["n"] // 20)
        bench_queue.load_finished_history(path, HISTORY["n"] // 20, status="FAILED")
    store.enqueue_many([{"skill": "noop", "payload": {"i": i}} for i in range(n)])
    store.checkpoint("TRUNCATE")
    store.close()
    return path


def run_store(root: Path, n: int, autocheckpoint: bool) -> tuple[float, int]:
    path = _filled_store(root, n, autocheckpoint)
    store = Store(path, **({} if autocheckpoint else {"wal_autocheckpoint_pages": 0}))
    task = store.claim(WORKER, ["noop"], lease_s=60)
    t0 = time.perf_counter()
    while task is not None:
        _, task = store.complete_and_claim(task.id, task.lease_token, None, worker=WORKER,
                                           skills=["noop"], lease_s=60)
    elapsed = time.perf_counter() - t0
    frames = bench_queue.wal_frames(path)  # before the last connection closes (and checkpoints)
    store.close()
    return n / elapsed, frames


def run_replica(root: Path, n: int, autocheckpoint: bool, *, agent: bool = True,
                attempts: bool = True, drop: tuple[str, ...] = ()) -> tuple[float, int]:
    path = _filled_store(root, n, autocheckpoint)
    db = sqlite3.connect(path, isolation_level=None)
    db.row_factory = sqlite3.Row
    for statement in drop:
        db.execute(statement)
    for pragma in ("synchronous = NORMAL", "foreign_keys = ON", "cache_size = -16384", "busy_timeout = 0",
                   f"wal_autocheckpoint = {2000 if autocheckpoint else 0}"):
        db.execute(f"PRAGMA {pragma}")
    clause, params = skill_clause(["noop"], False)
    claim = queue_sql._CLAIM.format(skills=clause, lock="")
    worker, ts = WORKER, time.time()
    token = secrets.token_hex(12)
    db.execute("BEGIN IMMEDIATE")
    row = db.execute(claim, (worker, token, ts + 60, ts, ts, ts, worker, *params)).fetchone()
    if agent:
        db.execute(queue_sql._AGENT_BUSY, (row["id"], ts, worker))
    db.execute("COMMIT")
    t0 = time.perf_counter()
    while row is not None:
        ts = time.time()
        bench_queue.begin_immediate(db, 30.0)
        done = db.execute(queue_sql._COMPLETE, ("null", ts, ts, row["id"], token)).fetchone()
        if attempts:
            db.execute(queue_sql._INSERT_ATTEMPT, (done["id"], done["attempts"], worker, token,
                                                   done["started_at"], ts, "done", None, 0,  # 0: no crash suspect
                                                   "bench-host"))
        token = secrets.token_hex(12)
        row = db.execute(claim, (worker, token, ts + 60, ts, ts, ts, worker, *params)).fetchone()
        if agent:
            if row is not None:
                db.execute(queue_sql._AGENT_BUSY, (row["id"], ts, worker))
            else:
                db.execute(queue_sql._AGENT_IDLE, (ts, worker, done["id"]))
        db.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    frames = bench_queue.wal_frames(path)
    db.close()
    return n / elapsed, frames


def run_floor(root: Path, n: int, autocheckpoint: bool) -> tuple[float, int]:
    path = os.path.join(tempfile.mkdtemp(dir=root), "floor.db")
    floor = bench_queue.FloorQueue(path)
    floor.db.execute(f"PRAGMA wal_autocheckpoint = {1000 if autocheckpoint else 0}")
    floor.fill(n)
    floor.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    t0 = time.perf_counter()
    while floor.take_one("w") is not None:
        pass
    elapsed = time.perf_counter() - t0
    frames = bench_queue.wal_frames(path)
    floor.db.close()
    return n / elapsed, frames


def measure(how, root: Path, n: int, autocheckpoint: bool) -> tuple[float, int]:
    """(tasks/s, WAL frames written while draining) for one row."""
    if how is None:
        return run_store(root, n, autocheckpoint)
    if how == "floor":
        return run_floor(root, n, autocheckpoint)
    return run_replica(root, n, autocheckpoint, **how)


def run(n: int, rounds: int) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Every row's drain rates (one per round) and WAL pages per task."""
    root = Path(tempfile.mkdtemp(prefix="fleet-costs-"))
    rates: dict[str, list[float]] = {label: [] for label in ROWS}
    pages: dict[str, float] = {}
    try:
        for _ in range(rounds):
            for label, how in ROWS.items():
                rate, _ = measure(how, root, n, True)
                rates[label].append(rate)
                print(f"  {label.strip()}: {rate:,.0f}/s", file=sys.stderr)
        for label, how in ROWS.items():  # WAL pages: automatic checkpoints off, one pass
            _, frames = measure(how, root, min(n, 3000), False)
            pages[label] = frames / min(n, 3000)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return rates, pages


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3,000 tasks, 1 round")
    ap.add_argument("--tasks", type=int, help="tasks drained per row and round (default 20,000)")
    ap.add_argument("--rounds", type=int, help="rounds, alternating the rows (default 3)")
    ap.add_argument("--history", type=int, default=0,
                    help="finished tasks (95 %% DONE, 5 %% FAILED) in the store before the queue (default 0)")
    args = ap.parse_args(argv)
    HISTORY["n"] = args.history
    n = args.tasks or (3000 if args.quick else 20_000)
    rounds = args.rounds or (1 if args.quick else 3)
    load0, started = os.getloadavg(), time.time()
    rates, pages = run(n, rounds)
    print(f"\nWhere a drained task's time goes: complete_and_claim, 1 process, NORMAL, "
          f"{n:,} tasks" + (f" over {args.history:,} finished" if args.history else "")
          + f", median of {rounds} round(s)")
    print(f"machine: {os.cpu_count()} cores, load avg {load0[0]:.2f} -> {os.getloadavg()[0]:.2f}, "
          f"SQLite {sqlite3.sqlite_version}, run took {time.time() - started:.0f} s")
    api = statistics.median(rates[API])
    floor = statistics.median(rates[FLOOR])
    print(f"{'':52s} {'tasks/s':>9s} {'us/task':>8s} {'x API':>6s} {'of floor':>8s} {'WAL pages':>9s}"
          f" {'saves':>6s}")
    for label in ROWS:
        rate = statistics.median(rates[label])
        saved = pages[REPLICA] - pages[label] if label.startswith("  ") else None
        print(f"{label:52s} {rate:9,.0f} {1e6 / rate:8.1f} {rate / api:6.2f} {rate / floor:8.2f} "
              f"{pages[label]:9.2f}" + ("" if saved is None else f" {saved:6.2f}"))
    print("(saves: WAL pages per task below the replica's; an index row drops that index alone)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
