"""What only the PostgreSQL backend has (the neutral contract suite runs on it
too, through the `store` fixtures): its SQL translation and rows, its schema
against SQLite's, its errors for a bad DSN or a server that is gone, a lost
connection or listener, pg_dump backups, and picking it from the config.
Skipped, with the reason, where no server is reachable; under CI=true they
must run.
"""

from __future__ import annotations

import shutil
import time

import pytest
from conftest import require_system_part
from store_backends import TEST_PG_DSN, PostgreSQLBackend

from fleet.store import InvalidInput, StoreUnavailable, open_store, schema


@pytest.fixture
def pg(tmp_path):
    backend = PostgreSQLBackend(tmp_path / "pg")
    missing = backend.missing()
    if missing is not None:
        require_system_part(False, *missing)
    opened = []

    def make(**options):
        store = backend.open(backend.new_spec(**options))
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()
    backend.cleanup()


def _admin():
    import psycopg

    return psycopg.connect(TEST_PG_DSN, autocommit=True)


# -- translation and rows ------------------------------------------------------
def test_translation_rewrites_sqlite_spelling_once():
    pytest.importorskip("psycopg")
    from fleet.store.pg_sql import translate

    assert translate("SELECT IFNULL(a, '50%?') FROM t INDEXED BY ix WHERE b = ? AND c LIKE ?") == \
        "SELECT COALESCE(a, '50%%?') FROM t WHERE b = %s AND c ILIKE %s"
    assert translate("SELECT CAST((x - ?) / ? AS INTEGER) AS b FROM t NOT INDEXED") == \
        "SELECT CAST(TRUNC((x - %s) / %s) AS BIGINT) AS b FROM t"
    assert translate("SELECT json_extract(detail, '$.intent') FROM e") == "SELECT (detail::jsonb ->> 'intent') FROM e"
    assert translate("SELECT json_extract(r.detail, '$.report') FROM events r") == \
        "SELECT (r.detail::jsonb ->> 'report') FROM events r"
    assert translate("SELECT CAST(x AS TEXT)") == "SELECT CAST(x AS TEXT)"


def test_rows_read_like_sqlite_rows(pg):
    store = pg()
    row = store._conn().execute("SELECT 1 AS a, 'x' AS b, SUM(n) AS total FROM (VALUES (2::bigint), (3)) v(n)").fetchone()
    assert row[0] == 1 and row["b"] == "x" and row.keys() == ["a", "b", "total"]
    assert dict(row) == {"a": 1, "b": "x", "total": 5} and type(row["total"]) is int  # numeric, not Decimal
    a, b, total = row
    assert (a, b, total) == (1, "x", 5)


# -- schema ---------------------------------------------------------------------
def test_postgres_schema_has_every_sqlite_table_and_column(pg, tmp_path):
    from fleet.store import Store

    lite = Store(tmp_path / "ref.db")
    tables = {r[0] for r in lite._conn().execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
    # The FTS5 search index (a virtual table and its shadow tables) is SQLite's
    # index; PostgreSQL's twin is a GIN index on the lessons' tsvector.
    tables = {t for t in tables if not t.startswith("workflow_lessons_fts")}
    want = {t: {r[1] for r in lite._conn().execute(f"PRAGMA table_info({t})")} for t in tables}
    lite.close()
    store = pg()
    rows = store._conn().execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = ?",
        (store.schema,)).fetchall()
    have: dict[str, set] = {}
    for table, column in rows:
        have.setdefault(table, set()).add(column)
    for table, columns in want.items():
        assert have.get(table) == columns, table
    assert store.stats()["schema_version"] == schema.SCHEMA_VERSION


def test_every_sqlite_migration_has_a_postgres_twin():
    pytest.importorskip("psycopg")
    from fleet.store import pg_schema

    assert pg_schema.steps(0)[-1][0] == schema.SCHEMA_VERSION


def test_task_counts_survive_compaction(pg):
    store = pg()
    tasks = store.enqueue_many([{"skill": "a"}, {"skill": "a"}, {"skill": "b"}])
    t = store.claim("w", ["a"])
    store.complete(t.id, t.lease_token)
    store.cancel(tasks[2].id)
    before = store.counts(), store.counts_by_skill()
    store.maintain()
    assert (store.counts(), store.counts_by_skill()) == before
    assert store._conn().execute("SELECT COUNT(*) FROM task_count_deltas").fetchone()[0] == 3
    assert store.integrity_check() == "ok" and store.integrity_check(quick=True) == "ok"
    store._conn().execute("INSERT INTO task_count_deltas (status, skill, n) VALUES ('DONE', 'a', 5)")
    assert "task_counts says 6 DONE a tasks, there are 1" in store.integrity_check()


# -- errors ------------------------------------------------------------------------
def test_a_bad_dsn_is_invalid_input_without_the_password():
    pytest.importorskip("psycopg")
    from fleet.store import postgres_store

    with pytest.raises(InvalidInput, match="DSN is not valid") as err:
        postgres_store("host=127.0.0.1 password=s3cret nonsense")
    assert "s3cret" not in str(err.value)
    with pytest.raises(InvalidInput, match="no PostgreSQL DSN"):
        postgres_store("")


def test_an_unreachable_server_is_a_clear_store_unavailable():
    pytest.importorskip("psycopg")
    from fleet.store import postgres_store

    t0 = time.monotonic()
    with pytest.raises(StoreUnavailable, match=r"cannot connect to the PostgreSQL store at fleet@127\.0\.0\.1:1/x") as err:
        postgres_store("postgresql://fleet:s3cret@127.0.0.1:1/x", connect_timeout_s=2)
    assert "s3cret" not in str(err.value) and "start the server" in str(err.value).lower()
    assert time.monotonic() - t0 < 10


def test_a_lost_connection_is_store_unavailable_then_reconnects(pg):
    store = pg()
    store.enqueue("s", {})
    pid = store._conn().raw.info.backend_pid
    with _admin() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    time.sleep(0.1)
    try:
        store.counts()
    except StoreUnavailable as exc:
        assert "connection" in str(exc)
    assert store.counts()["PENDING"] == 1  # a fresh connection


def test_a_lost_listener_reconnects_and_says_recheck(pg):
    store, other = pg(), None
    assert store.wait_for_work(0.01) is True  # the first wait only starts listening
    with _admin() as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%%' "
                      "AND pid <> pg_backend_pid()")
    deadline = time.monotonic() + 5
    while not store.wait_for_work(0.5):  # the loss wakes the waiter (or the next wait reconnects)
        assert time.monotonic() < deadline
    assert store.wait_for_work(0.01) in (True, False)
    other = store.__class__(store.dsn, schema=store.schema)
    try:
        t0 = time.monotonic()
        other.enqueue("s", {})
        assert store.wait_for_work(5.0) is True and time.monotonic() - t0 < 2.0
    finally:
        other.close()


def test_values_postgres_cannot_hold_are_invalid_input(pg):
    store = pg()
    with pytest.raises(InvalidInput, match="NUL"):
        store.register_agent("a\x00b", "r")
    assert store.list_agents() == []


# -- backups -----------------------------------------------------------------------
def test_backup_check_and_restore_round_trip(pg, tmp_path):
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        require_system_part(False, "pg_dump and pg_restore", "apt install postgresql-client")
    store = pg()
    kept = store.enqueue("keep", {"n": 1})
    dump = tmp_path / "store.dump"
    store.backup_to(dump)
    check = store.check_backup(dump)
    assert check["problem"] is None and check["integrity"] == "ok"
    assert check["schema_version"] == schema.SCHEMA_VERSION and check["tasks"] == {"PENDING": 1}
    store.enqueue("lost", {})
    result = store.restore_from(dump, keep_replaced_in=tmp_path / "replaced")
    assert result["schema_version"] == schema.SCHEMA_VERSION and result["replaced_saved_in"]
    assert [t.id for t in store.list_tasks().items] == [kept.id]
    assert store.counts()["PENDING"] == 1
    assert store.check_backup(result["replaced_saved_in"])["tasks"] == {"PENDING": 2}
    assert store.enqueue("after", {}).id > kept.id
    bad = tmp_path / "bad.dump"
    bad.write_bytes(b"not a dump")
    assert store.check_backup(bad)["problem"].startswith("is not a readable pg_dump archive")
    with pytest.raises(InvalidInput, match="nothing was changed"):
        store.restore_from(bad)


# -- configuration --------------------------------------------------------------------
def test_open_store_picks_postgresql_from_the_config(pg, monkeypatch):
    store = pg()
    monkeypatch.setenv("FLEET_STORE_DSN", TEST_PG_DSN)
    queue = {"synchronous": "full", "busy_timeout_s": 5.0, "max_payload_bytes": 1000, "max_attempts": 2,
             "backoff_base_s": 1.0, "backoff_max_s": 2.0, "lease_s": 30.0, "max_crashes": 3,
             "poison_window_s": 30.0}
    cfg = {"queue": queue, "store": {"backend": "postgresql", "dsn": "", "schema": store.schema},
           "paths": {"db": "/nonexistent/fleet.db", "secrets": "/nonexistent/secrets"}}
    opened = open_store(cfg)
    try:
        assert opened.backend == "postgresql" and opened.default_max_attempts == 2
        assert opened.stats()["synchronous_in_effect"] == "on"
        assert opened.write_health()["status"] == "healthy"
    finally:
        opened.close()


def test_the_suite_skips_with_the_reason_without_psycopg(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.setattr(PostgreSQLBackend, "_missing", False)
    what, how = PostgreSQLBackend(tmp_path).missing()
    assert "psycopg" in what and "pip install" in how


@pytest.mark.parametrize("dsn,code", [("postgresql://fleet@127.0.0.1:1/x", 69), ("host=127.0.0.1 nonsense", 78)],
                         ids=["server down: 69", "bad DSN: 78"])
def test_the_cli_and_the_supervisor_exit_69_or_78_without_a_traceback(isolated_home, dsn, code):
    pytest.importorskip("psycopg")
    import os
    import subprocess
    import sys

    from tests.fakes.fleetproc import REPO, env_for, write_config

    write_config(isolated_home, store={"backend": "postgresql"})
    env = {**env_for(isolated_home), "FLEET_STORE_DSN": dsn}
    for argv in ([str(REPO / "fleet" / "lead_client.py"), "tasks"], [str(REPO / "fleet" / "supervisor.py"), "--quiet"]):
        r = subprocess.run([sys.executable, *argv], cwd=str(REPO), env=env, capture_output=True, text=True,
                           timeout=60, check=False)
        assert r.returncode == code, (argv, r.returncode, r.stderr)
        assert "Traceback" not in r.stderr and "cannot open the PostgreSQL store" in r.stderr, r.stderr
    assert not os.path.exists(isolated_home / "fleet.db")


def test_store_migrate_moves_a_sqlite_fleet_with_its_history(pg, isolated_home):
    """`lead_client store migrate --to DSN` copies every table of a stopped
    SQLite fleet into an empty schema, ids and counts kept, prints what to put
    in fleet.toml (never a password), and refuses a schema that holds tasks."""
    import subprocess
    import sys
    import uuid

    from fleet.store import postgres_store
    from tests.fakes.fleetproc import REPO, env_for, write_config

    pg()  # (the fixture checks the server is there, or skips/fails with the reason)
    cfg = write_config(isolated_home)
    src = open_store(cfg)
    tasks = src.enqueue_many([{"skill": "noop", "payload": {"i": i, "text": "naïve 100%"}} for i in range(50)])
    for _ in range(20):
        t = src.claim("w1", ["noop"])
        src.complete(t.id, t.lease_token, {"ok": t.payload["i"]})
    t = src.claim("w1", ["noop"])
    src.fail(t.id, t.lease_token, "boom", retryable=False)
    src.retry(t.id)  # the failure leaves FAILED: only the outcome totals remember it
    t = src.claim("w1", ["noop"])
    src.fail(t.id, t.lease_token, "boom", retryable=False)
    src.raise_alert("warning", "test", "an alert to keep")
    src.send_message("a", "b", {"hello": 1})
    before = {"counts": src.counts(), "attempts": src.attempts(tasks[0].id), "task": src.get(tasks[0].id),
              "outcomes": src.task_outcome_totals()}
    assert before["outcomes"] == {"noop": {"completed": 20, "failed": 2}}
    src.close()

    schema = f"fleet_test_migrate_{uuid.uuid4().hex[:8]}"
    dsn_with_password = TEST_PG_DSN.replace("postgres@", "postgres:not-used@", 1)  # trust auth ignores it
    run = [sys.executable, str(REPO / "fleet" / "lead_client.py"), "store", "migrate", "--to", dsn_with_password,
           "--schema", schema]
    try:
        r = subprocess.run(run, cwd=str(REPO), env=env_for(isolated_home), capture_output=True, text=True,
                           timeout=120, check=False)
        assert r.returncode == 0, r.stderr
        assert 'backend = "postgresql"' in r.stdout and f'schema = "{schema}"' in r.stdout, r.stdout
        assert "not-used" not in r.stdout + r.stderr and "FLEET_STORE_DSN" in r.stdout, r.stdout
        moved = postgres_store(TEST_PG_DSN, schema=schema)
        try:
            assert moved.counts() == before["counts"]
            assert moved.task_outcome_totals() == before["outcomes"]  # the counters come along
            assert moved.get(tasks[0].id) == before["task"] and moved.attempts(tasks[0].id) == before["attempts"]
            assert [a["message"] for a in moved.list_alerts()] == ["an alert to keep"]
            assert moved.enqueue("noop", {"new": 1}).id > max(t.id for t in tasks)  # ids go on past the copy
            assert moved.integrity_check() == "ok"
        finally:
            moved.close()
        again = subprocess.run([*run, "--json"], cwd=str(REPO), env=env_for(isolated_home), capture_output=True,
                               text=True, timeout=120, check=False)
        assert again.returncode == 1 and "already holds 51 tasks" in again.stderr, again.stderr
        assert "Traceback" not in again.stderr
    finally:
        with _admin() as admin:
            admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
