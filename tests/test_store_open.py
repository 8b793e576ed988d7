"""Opening the store: a file that is not a database is a clear error (no
traceback, nothing written), and many processes may create one at once."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys

import pytest

from fleet.db import Store, StoreError
from tests.fakes.fleetproc import REPO, env_for, write_config

GARBAGE = b"this is not a database, just some bytes\n" * 100


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
    r = subprocess.run([sys.executable, str(REPO / "fleet" / "lead_client.py"), *command], cwd=str(REPO),
                       env=env_for(isolated_home), capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r
    assert "Traceback" not in r.stderr and "not a usable Fleet database" in r.stderr
    assert r.stderr.strip().count("\n") == 0  # one line


def _open_and_enqueue(path: str, n: int) -> None:
    store = Store(path)
    store.enqueue("noop", {"n": n})
    store.close()


def test_a_folder_it_cannot_write_is_named_and_the_database_is_not_blamed(tmp_path, monkeypatch):
    # Found in review: a read-only home was reported as "not a usable Fleet
    # database ... move the file away", advice that throws good data away.
    # In WAL mode SQLite must create -wal and -shm files beside the database,
    # and says only "unable to open database file" when it cannot. (Root
    # writes a 0500 folder regardless, so the folder's state is simulated.)
    import os
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


def test_many_processes_may_create_a_new_database_at_once(tmp_path):
    path = str(tmp_path / "fresh.db")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_open_and_enqueue, args=(path, i)) for i in range(10)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * 10
    assert Store(path).counts()["PENDING"] == 10


def test_dashboard_on_a_corrupt_database_says_what_to_do_without_a_traceback(isolated_home):
    cfg = write_config(isolated_home)
    with open(cfg["paths"]["db"], "wb") as fh:
        fh.write(GARBAGE)
    import socket

    with socket.socket() as probe:  # a free port, so only the database can be the problem
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    r = subprocess.run([sys.executable, str(REPO / "fleet" / "dashboard.py"), "--port", str(port)], cwd=str(REPO),
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
