"""SQLite's errors never leave the store: a read on a damaged or unreadable
database file raises StoreUnavailable (running the statement or fetching its
rows), a write transaction rolls back as before, and the connection stays
usable. SQLite-specific: these tests damage the file on disk."""

from __future__ import annotations

import os
import random
import sqlite3

import pytest

from fleet.db import Store, StoreUnavailable


def _populated(path, n=400) -> None:
    store = Store(path)
    store.enqueue_many([{"skill": "noop", "payload": {"i": i, "text": "x" * 200}} for i in range(n)])
    store.close()
    raw = sqlite3.connect(path)  # the test's own look at the file, not the store's
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw.close()


def _task_pages(path) -> tuple[int, list[int]]:
    """(page size, the tasks table's leaf pages in rowid order)."""
    raw = sqlite3.connect(path)
    try:
        size = raw.execute("PRAGMA page_size").fetchone()[0]
        leaves = [p for (p,) in raw.execute(
            "SELECT pageno FROM dbstat WHERE name = 'tasks' AND pagetype = 'leaf' ORDER BY path")]
    finally:
        raw.close()
    assert len(leaves) > 3, leaves
    return size, leaves


def _garble(path, page_size: int, pages: list[int]) -> None:
    rnd = random.Random(13)
    with open(path, "r+b") as fh:
        for page in pages:
            fh.seek((page - 1) * page_size)
            fh.write(rnd.randbytes(page_size))


def _assert_store_error(info) -> None:
    exc = info.value
    assert not isinstance(exc, sqlite3.Error)
    assert "could not complete the read" in str(exc) and "restore" in str(exc), str(exc)
    assert isinstance(exc.__cause__, sqlite3.DatabaseError)  # the cause stays for the log


def test_a_read_on_a_database_damaged_after_opening_raises_store_unavailable(tmp_path):
    path = tmp_path / "fleet.db"
    _populated(path)
    size, leaves = _task_pages(path)
    store = Store(path)  # opened (and migrated) while the file was sound
    try:
        _garble(path, size, leaves)
        with pytest.raises(StoreUnavailable) as info:
            store.list_tasks(limit=1000)
        _assert_store_error(info)
        with pytest.raises(StoreUnavailable):
            store.get(300)
        assert store._conn().execute("SELECT 1").fetchone()[0] == 1  # the connection is still usable
    finally:
        store.close()


def test_an_error_met_while_fetching_rows_is_translated_too(tmp_path):
    # The statement's first step reads the first leaf; the damaged last leaf
    # is met only while the cursor fetches (iteration, fetchall, fetchmany).
    path = tmp_path / "fleet.db"
    _populated(path)
    size, leaves = _task_pages(path)
    store = Store(path)
    try:
        _garble(path, size, leaves[-1:])
        conn = store._conn()
        for fetch in (list, lambda cur: cur.fetchall(), lambda cur: cur.fetchmany(100_000),
                      lambda cur: [cur.fetchone() for _ in range(100_000)]):
            cur = conn.execute("SELECT id, payload FROM tasks ORDER BY id")
            with pytest.raises(StoreUnavailable) as info:
                fetch(cur)
            _assert_store_error(info)
    finally:
        store.close()


def test_a_write_transaction_sees_and_rolls_back_as_before(tmp_path):
    store = Store(tmp_path / "fleet.db")
    seen = []
    try:
        with pytest.raises(StoreUnavailable, match="could not complete the write"), store._write() as conn:
            conn.execute("CREATE TABLE scratch (x)")
            conn.execute("INSERT INTO scratch VALUES (1)")
            try:  # inside the transaction the driver's own error, as the store's code expects
                store._conn().execute("SELECT nope FROM scratch")
            except sqlite3.OperationalError as exc:
                seen.append(exc)
                raise
        assert seen
        assert store._conn().execute("SELECT name FROM sqlite_master WHERE name = 'scratch'").fetchone() is None
        assert store.enqueue("noop", {}).status == "PENDING"
    finally:
        store.close()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads a mode-000 file anyway")
def test_an_unreadable_file_is_store_unavailable_for_a_fresh_store(tmp_path):
    path = tmp_path / "fleet.db"
    _populated(path, 5)
    os.chmod(path, 0)
    try:
        with pytest.raises(StoreUnavailable) as info:
            Store(path).list_tasks()
        assert not isinstance(info.value, sqlite3.Error)
    finally:
        os.chmod(path, 0o600)


def test_a_backup_that_cannot_be_written_is_store_unavailable(tmp_path):
    store = Store(tmp_path / "fleet.db")
    try:
        with pytest.raises(StoreUnavailable, match="could not complete the backup"):
            store.backup_to(tmp_path / "no such folder" / "copy.db")
    finally:
        store.close()
