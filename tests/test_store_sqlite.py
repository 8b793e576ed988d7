"""What only the SQLite backend has: its file on disk (a corrupt file, a folder
it cannot write, migration from older on-disk versions, the file at the path
it was given), its pragmas (WAL, synchronous as the durability mode, page and
WAL budgets), checkpoints, the claim's query plan, file backups and the
write lock. Everything else about the store is in the backend-neutral suite
(test_store_queue, _fleetstate, _open, _procs, _statemachine).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import time

import pytest

from fleet.db import InvalidInput, Store, StoreError, StoreUnavailable
from tests.fakes.fleetproc import REPO, env_for, write_config

GARBAGE = b"this is not a database, just some bytes\n" * 100


@pytest.fixture
def store(tmp_path):
    """A plain SQLite store (this file is not run per backend)."""
    s = Store(tmp_path / "store" / "fleet.db", backoff_base_s=0.01, backoff_max_s=0.05)
    yield s
    s.close()


# -- the file on disk ----------------------------------------------------
def test_a_corrupt_file_is_a_clear_error_and_is_left_as_it_was(tmp_path):
    path = tmp_path / "fleet.db"
    path.write_bytes(GARBAGE)
    with pytest.raises(StoreError, match="not a usable Fleet database.*restore"):
        Store(path)
    assert path.read_bytes() == GARBAGE


@pytest.mark.parametrize("command", [["status"], ["tasks"], ["dispatch", "noop", "{}"], ["alerts"]])
def test_cli_on_a_corrupt_database_says_what_to_do_without_a_traceback(isolated_home, command):
    cfg = write_config(isolated_home)
    with open(cfg["paths"]["db"], "wb") as fh:
        fh.write(GARBAGE)
    r = subprocess.run([sys.executable, str(REPO / "fleet" / "lead_client.py"), *command], check=False, cwd=str(REPO),
                       env=env_for(isolated_home), capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r
    assert "Traceback" not in r.stderr and "not a usable Fleet database" in r.stderr
    assert r.stderr.strip().count("\n") == 0  # one line


def test_a_folder_it_cannot_write_is_named_and_the_database_is_not_blamed(tmp_path, monkeypatch):
    # Found in review: a read-only home was reported as "not a usable Fleet
    # database ... move the file away", advice that throws good data away.
    # In WAL mode SQLite must create -wal and -shm files beside the database,
    # and says only "unable to open database file" when it cannot. (Root
    # writes a 0500 folder regardless, so the folder's state is simulated.)
    import sqlite3

    from fleet.store import sqlite_base

    db = tmp_path / "fleet.db"
    store = Store(db)
    store.close()

    def cannot_open(self):
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(sqlite_base.SQLiteBase, "_open_once", cannot_open)
    real_access = os.access
    monkeypatch.setattr(sqlite_base.os, "access",
                        lambda path, mode: False if os.fspath(path) == str(tmp_path) else real_access(path, mode))
    with pytest.raises(StoreError) as info:
        Store(db)
    text = str(info.value)
    assert str(tmp_path) in text and "not writable" in text and "-wal and -shm" in text, text
    assert "move the file away" not in text and "untouched" in text


def test_dashboard_on_a_corrupt_database_says_what_to_do_without_a_traceback(isolated_home):
    cfg = write_config(isolated_home)
    with open(cfg["paths"]["db"], "wb") as fh:
        fh.write(GARBAGE)
    import socket

    with socket.socket() as probe:  # a free port, so only the database can be the problem
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    r = subprocess.run([sys.executable, str(REPO / "fleet" / "dashboard.py"), "--port", str(port)], check=False, cwd=str(REPO),
                       env=env_for(isolated_home), capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r
    assert "Traceback" not in r.stderr and "not a usable Fleet database" in r.stderr


def test_a_version_3_database_is_migrated_and_keeps_exact_counts(tmp_path):
    """Version 4 dropped the per-row insert trigger (inserts count themselves)
    and the running-lease index; an older database loses both on open and its
    counts stay exact for old and new rows alike."""
    import sqlite3

    from fleet.store import schema
    from fleet.store.sqlite_base import _split_sql

    path = tmp_path / "v3.db"
    old = sqlite3.connect(path, isolation_level=None)
    old.execute("PRAGMA journal_mode = WAL")
    for step, script in enumerate(schema.MIGRATIONS[:3]):
        for statement in _split_sql(script):
            old.execute(statement)
        old.execute(f"PRAGMA user_version = {step + 1}")
    # What version 3 had, restored here as it was created then.
    old.execute("CREATE INDEX ix_tasks_running ON tasks (lease_expires_at) WHERE status = 'RUNNING'")
    old.execute("""CREATE TRIGGER tr_tasks_count_insert AFTER INSERT ON tasks BEGIN
        INSERT INTO task_counts (status, skill, n) VALUES (NEW.status, NEW.skill, 1)
            ON CONFLICT (status, skill) DO UPDATE SET n = n + 1;
    END""")
    old.execute("""INSERT INTO tasks (skill, status, max_attempts, available_at, created_at, updated_at)
                   VALUES ('old', 'PENDING', 3, 0, 0, 0)""")
    old.close()

    store = Store(path)
    names = {r[0] for r in store._conn().execute("SELECT name FROM sqlite_master")}
    assert "ix_tasks_running" not in names and "tr_tasks_count_insert" not in names
    assert store.stats()["schema_version"] == schema.SCHEMA_VERSION
    store.enqueue("old", {})
    store.enqueue_many([{"skill": "new"}, {"skill": "new"}])
    task = store.claim("w", ["old"])
    store.complete(task.id, task.lease_token)
    assert store.counts_by_skill() == {"old": {"PENDING": 1, "DONE": 1}, "new": {"PENDING": 2}}
    assert store.expired_leases() == []
    store.close()


def test_the_database_is_the_file_at_its_path_and_reopens(tmp_path):
    path = tmp_path / "v.db"
    s1 = Store(path)
    t = s1.enqueue("s", {"a": 1})
    version = s1.stats()["schema_version"]
    s1.close()
    s2 = Store(path)
    assert s2.stats()["schema_version"] == version and s2.get(t.id).payload == {"a": 1}
    assert os.path.exists(path)
    s2.close()


# -- the claim's index plan ----------------------------------------------
def _load_finished_history(path: str, count: int, *, skill: str) -> None:
    """`count` DONE rows in one statement, straight into the file (no attempts
    or events): a long history to test the claim against."""
    from fleet.store.values import now

    ts = now()
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute(
            """WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < ?)
               INSERT INTO tasks (skill, payload, priority, status, attempts, max_attempts, available_at,
                   created_at, updated_at, started_at, finished_at, worker, result)
               SELECT ?, '{}', 1 + (x % 10), 'DONE', 1, 3, ?, ?, ?, ?, ?, 'synthetic', 'null' FROM n""",
            (count, skill, ts, ts, ts, ts, ts))
        db.execute("""INSERT INTO task_counts (status, skill, n) VALUES ('DONE', ?, ?)
                      ON CONFLICT (status, skill) DO UPDATE SET n = n + excluded.n""", (skill, count))


def _claim_query_plan(path: str, skills: list[str], any_skill: bool) -> list[str]:
    """SQLite's plan for the store's claim candidate scan."""
    from fleet.store.task_reads import CLAIM_CANDIDATE_SQL, skill_clause

    clause, params = skill_clause(skills, any_skill)
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute("EXPLAIN QUERY PLAN " + CLAIM_CANDIDATE_SQL.format(skills=clause),
                          (time.time(), "worker", *params)).fetchall()
    return [r[3] for r in rows]


def test_claim_is_an_index_seek_on_the_claimable_set_with_a_long_history(tmp_path):
    store = Store(tmp_path / "big.db")
    _load_finished_history(store.path, 200_000, skill="s")
    store.enqueue_many([{"skill": "s", "payload": {"i": i}} for i in range(500)])
    store.maintain()  # gathers planner statistics too: the plan must not change
    for skills, any_skill in ((["s"], False), (["s", "t"], False), ([], True), ([], False)):
        plan = " | ".join(_claim_query_plan(store.path, skills, any_skill))
        assert "USING INDEX ix_tasks_claim" in plan, plan
        assert "TEMP B-TREE" not in plan, plan
    t0 = time.perf_counter()
    for _ in range(100):
        task = store.claim("w", ["s"])
        store.complete(task.id, task.lease_token)
    per_claim = (time.perf_counter() - t0) / 100
    assert per_claim < 0.05, f"claim+complete took {per_claim * 1000:.1f} ms with 200k finished rows"
    store.close()


# -- the status and finish-time indexes (schema v7) -----------------------
def _plans(store, call) -> list[tuple[str, str]]:
    """(statement, its plan) for each statement `call(store)` runs on the
    store's reading connection, planned again on a fresh connection."""
    seen: list[str] = []
    conn = store._conn()
    conn.set_trace_callback(seen.append)
    try:
        call(store)
    finally:
        conn.set_trace_callback(None)
    out = []
    with contextlib.closing(sqlite3.connect(store.path)) as db:
        for sql in seen:
            if sql.lstrip().upper().startswith(("SELECT", "WITH")):
                plan = " | ".join(r[3] for r in db.execute("EXPLAIN QUERY PLAN " + sql))
                out.append((sql, plan))
    return out


@pytest.fixture
def history_store(tmp_path):
    """20,000 DONE rows (no index entry), then tasks in every other status
    and planner statistics gathered, as `maintain()` does in a live fleet."""
    store = Store(tmp_path / "hist.db", backoff_base_s=0.01, backoff_max_s=0.05)
    _load_finished_history(store.path, 20_000, skill="s")
    store.enqueue_many([{"skill": "s", "payload": {"i": i}} for i in range(300)])
    for outcome in ("done", "failed", "waiting", "running"):
        t = store.claim("w", ["s"])
        if outcome == "done":
            store.complete(t.id, t.lease_token)
        elif outcome == "failed":
            store.fail(t.id, t.lease_token, "boom", retryable=False)
        elif outcome == "waiting":
            store.ask_human(t.id, t.lease_token, "which?")
    store.cancel(store.matching_ids(status="PENDING")[-1])
    store.maintain()
    yield store
    store.close()


@pytest.mark.parametrize("status", ["PENDING", "RUNNING", "WAITING_HUMAN", "FAILED", "CANCELLED"])
def test_a_status_filter_seeks_the_not_done_index(history_store, status):
    for call in (lambda s: s.list_tasks(status=status), lambda s: s.list_tasks(status=status, skill="s"),
                 lambda s: s.list_tasks(status=status, agent="w"), lambda s: s.matching_ids(status=status)):
        plans = _plans(history_store, call)
        tasks = [(sql, plan) for sql, plan in plans if "task_counts" not in sql]
        assert tasks, plans
        for sql, plan in tasks:
            assert "ix_tasks_not_done" in plan and "SCAN tasks" not in plan, (sql, plan)


def test_several_statuses_are_one_seek_each_merged_by_id(history_store):
    plans = _plans(history_store, lambda s: s.list_tasks(status=["PENDING", "RUNNING", "WAITING_HUMAN"],
                                                          agent="w"))
    page = [plan for sql, plan in plans if "LIMIT" in sql]
    assert len(page) == 1 and page[0].count("ix_tasks_not_done") == 3, plans
    assert "TEMP B-TREE" not in page[0], page  # merged in id order, not sorted
    # DONE tasks come newest first from the attempts' task index (the tasks
    # that ran), never from a scan of the table or a sort of every DONE task
    for status in ("DONE", ["DONE", "FAILED"], ["PENDING", "DONE"]):
        plans = _plans(history_store, lambda s, status=status: s.list_tasks(status=status))
        page = [plan for sql, plan in plans if "LIMIT" in sql]
        assert len(page) == 1 and "SCAN a USING COVERING INDEX ix_attempts_task" in page[0], plans
        assert "SCAN tasks" not in page[0] and "TEMP B-TREE" not in page[0] and "BLOOM" not in page[0], plans


def test_done_tasks_are_listed_from_the_attempt_that_completed_them(history_store):
    """The synthetic history has no attempt rows (a store never writes a DONE
    task without one): the DONE filter lists the tasks that really ran, and
    each once, whatever the history under them."""
    store = history_store
    t = store.claim("w", ["s"])
    store.complete(t.id, t.lease_token)
    store.retry(t.id)  # DONE twice: two 'done' attempts, listed once
    again = store.claim("w", ["s"])
    assert again.id == t.id
    store.complete(again.id, again.lease_token)
    ids = [x.id for x in store.list_tasks(status="DONE", limit=1000).items]
    assert ids[0] == t.id and len(ids) == len(set(ids)) == 2
    assert [x.id for x in store.list_tasks(status=["DONE", "RUNNING"], limit=1).items] == [t.id]


def test_the_reaper_and_dead_worker_recovery_find_running_rows_by_index(history_store):
    """The statements tasks.py runs (expired_leases, reap_expired_leases,
    recover_worker_tasks, attempt history): each finds RUNNING rows through
    ix_tasks_not_done, never by scanning the history."""
    with contextlib.closing(sqlite3.connect(history_store.path)) as db:
        for sql, params in (
            ("SELECT id, worker, started_at FROM tasks WHERE status = 'RUNNING' AND lease_expires_at < ?", (1e18,)),
            ("UPDATE tasks SET updated_at = updated_at WHERE status = 'RUNNING' AND lease_expires_at < ? "
             "RETURNING *", (1e18,)),
            ("UPDATE tasks SET updated_at = updated_at WHERE status = 'RUNNING' AND worker = ? RETURNING *", ("w",)),
            ("SELECT created_at FROM tasks WHERE status = 'PENDING' ORDER BY id LIMIT 1", ()),
        ):
            plan = " | ".join(r[3] for r in db.execute("EXPLAIN QUERY PLAN " + sql, params))
            assert "ix_tasks_not_done" in plan and "SCAN" not in plan, (sql, plan)
    assert history_store.expired_leases() == []


def test_finished_counts_read_attempts_by_id_and_the_ended_index(history_store):
    now = time.time()
    plans = _plans(history_store, lambda s: s.finished_series(now - 3600, 300.0, 13))
    plan = " | ".join(p for sql, p in plans if "FROM task_attempts a" in sql)
    assert "SEARCH a USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)" in plan, plans
    assert "SEARCH t USING INTEGER PRIMARY KEY (rowid=?)" in plan and "BLOOM" not in plan, plans
    assert "COVERING INDEX ix_tasks_ended (finished_at>? AND finished_at<?)" in plan and "SCAN" not in plan, plans
    series = history_store.finished_series(now - 3600, 300.0, 13)
    # the synthetic history has no attempt rows: only the one real DONE task counts
    assert (sum(series["DONE"]), sum(series["FAILED"]), sum(series["CANCELLED"])) == (1, 1, 1)


def test_a_version_6_database_gets_the_new_status_indexes(tmp_path):
    from fleet.store import schema
    from fleet.store.sqlite_base import _split_sql

    path = tmp_path / "v6.db"
    old = sqlite3.connect(path, isolation_level=None)
    old.execute("PRAGMA journal_mode = WAL")
    for step, script in enumerate(schema.MIGRATIONS[:6]):
        for statement in _split_sql(script):
            old.execute(statement)
        old.execute(f"PRAGMA user_version = {step + 1}")
    old.close()
    seeded = Store(path, migrate=False)
    del seeded  # nothing read: the file is still at version 6
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 6
        db.execute("""INSERT INTO tasks (skill, status, max_attempts, available_at, created_at, updated_at,
                      finished_at) VALUES ('old', 'FAILED', 3, 0, 0, 0, 5), ('old', 'DONE', 3, 0, 0, 0, 5)""")
        db.execute("INSERT INTO task_counts (status, skill, n) VALUES ('FAILED', 'old', 1), ('DONE', 'old', 1)")
        db.commit()
    store = Store(path)
    names = {r[0] for r in store._conn().execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"ix_tasks_not_done", "ix_tasks_ended"} <= names
    assert not {"ix_tasks_status", "ix_tasks_finished"} & names
    assert [t.status for t in store.list_tasks(status="FAILED").items] == ["FAILED"]
    assert store.list_tasks(status=["DONE", "FAILED"]).total == 2
    assert store.integrity_check() == "ok"
    store.close()
    Store(path).close()  # opening again changes nothing (IF [NOT] EXISTS)


# -- durability (PRAGMA synchronous), WAL, checkpoints -------------------
def test_unknown_durability_mode_is_refused(tmp_path):
    with pytest.raises(InvalidInput, match="durability mode"):
        Store(tmp_path / "d.db", synchronous="off")


@pytest.mark.parametrize("mode", ["normal", "full"])
def test_durability_mode_is_stated_and_in_effect(tmp_path, mode):
    store = Store(tmp_path / f"{mode}.db", synchronous=mode)
    stats = store.stats()
    assert stats["durability"] == mode and stats["synchronous_in_effect"] == mode
    assert stats["journal_mode"] == "wal"
    assert ("power loss" in stats["durability_meaning"])
    store.close()


def test_wal_stays_bounded_under_constant_load_with_maintenance(tmp_path):
    store = Store(tmp_path / "wal.db")
    reader = Store(tmp_path / "wal.db")
    limit = 1 << 20
    peak, modes = 0, set()
    for round_ in range(8):
        store.enqueue_many([{"skill": "s", "payload": {"pad": "x" * 500}} for _ in range(250)])
        while (t := store.claim("w", ["s"])) is not None:
            store.complete(t.id, t.lease_token)
            reader.counts()  # a reader keeps overlapping the writer
        info = store.maintain(wal_limit_bytes=limit)
        peak = max(peak, info["wal_bytes_before"])
        assert info["wal_bytes"] <= limit, info
        modes.add(info["mode"])
    # between runs the automatic checkpoint keeps it near its page budget;
    # maintain() resets it to nothing
    stats = store.stats()
    auto = stats["wal_autocheckpoint_pages"] * stats["page_size"]
    assert 0 < peak <= 1.5 * auto + limit, f"WAL grew to {peak} bytes"
    assert "TRUNCATE" in modes
    assert store.checkpoint("TRUNCATE")["busy"] is False
    assert store.stats()["wal_bytes"] == 0
    assert store.integrity_check() == "ok"
    reader.close()
    store.close()


def test_unknown_checkpoint_mode_is_refused_and_writes_nothing(store):
    # (was a case of the neutral suite's bad-input table; checkpoints are SQLite's)
    store.enqueue("s", {"seed": True})
    before = (store.counts(), store.last_event_id(), store.list_tasks(limit=1000).to_dict())
    with pytest.raises(InvalidInput, match="checkpoint mode"):
        store.checkpoint("SOMETIMES")
    assert (store.counts(), store.last_event_id(), store.list_tasks(limit=1000).to_dict()) == before


# -- file backup, the write lock -----------------------------------------
def test_backup_is_a_consistent_copy(tmp_path, store):
    store.enqueue("s", {"keep": 1})
    dest = tmp_path / "copy.db"
    store.backup_to(dest)
    copy = Store(dest)
    assert copy.list_tasks().items[0].payload == {"keep": 1}
    assert copy.integrity_check() == "ok"
    copy.close()


def test_write_errors_surface_as_store_errors_not_sqlite(tmp_path):
    path = tmp_path / "ro" / "fleet.db"
    store = Store(path, busy_timeout_s=0.2)
    other = Store(path, busy_timeout_s=0.2)
    conn = other._conn()
    conn.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        with pytest.raises(StoreUnavailable, match="busy timeout"):
            store.enqueue("s", {})
    finally:
        conn.execute("ROLLBACK")
    assert store.enqueue("s", {}).status == "PENDING"  # the connection is still usable
    other.close()
    store.close()
