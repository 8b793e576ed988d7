"""PostgreSQL connection handling for the store: the twin of sqlite_base.py for
a fleet whose hosts share one server.

Per (process, thread) one reused psycopg connection, opened lazily, in
autocommit mode: a write is an explicit BEGIN ... COMMIT (READ COMMITTED:
the mixins' read-check-writes are single statements, row locks or guard
rows), a multi-statement read one REPEATABLE READ snapshot. Each store lives
in its own schema (search_path), created and migrated once under an advisory
lock however many hosts start together; its version is a row of
`schema_version`. Wake-ups are LISTEN/NOTIFY (pg_wake.py); backups are
pg_dump/pg_restore (pg_backup.py). psycopg's errors never leave the store.
"""

from __future__ import annotations

import contextlib
import os
import socket
import re
import threading
from collections.abc import Callable, Iterator

import psycopg

from . import pg_backup, pg_schema, schema
from .errors import InvalidInput, StoreError, StoreUnavailable
from .pg_conn import (
    ADAPTERS,
    PgConnection,
    connect_error,
    describe_dsn,
    parse_dsn,
    row_factory,
    store_error,
)
from .pg_wake import PgWakeChannel

DURABILITY = {"normal": "off", "full": "on"}  # [queue] synchronous -> synchronous_commit
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_COMPACT_EVERY = 5000  # write transactions of one store object between count compactions


class PostgresDialect:
    """Where the mixins' SQL differs in shape on PostgreSQL. Listed first in
    the composed store's bases, so these win over the mixins' defaults."""

    # Concurrent claimers each take a different candidate instead of queueing
    # on the best one (and finding it gone).
    _claim_lock = " FOR UPDATE SKIP LOCKED"
    _look_before_claim = False  # an empty SKIP LOCKED claim blocks no one: no read-only look first
    # New tasks count themselves by appending a row (see pg_schema).
    _count_new_sql = "INSERT INTO task_count_deltas (status, skill, n) VALUES (?, ?, ?)"
    # Lessons are searched with PostgreSQL full-text search (SQLite: FTS5).
    _lesson_search_sql = (
        "SELECT l.* FROM workflow_lessons l, to_tsquery('english', ?) q "
        "WHERE to_tsvector('english', l.text) @@ q AND l.repo = ? "
        "ORDER BY ts_rank(to_tsvector('english', l.text), q) DESC, l.id DESC LIMIT ?")

    @staticmethod
    def _lesson_query(words: list[str]) -> str:
        return " | ".join(words)


class PostgresBase:
    """Connection management shared by every part of the PostgreSQL store."""

    backend = "postgresql"

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "fleet",
        synchronous: str = "normal",
        busy_timeout_s: float = 30.0,
        max_payload_bytes: int = 1 << 20,
        default_max_attempts: int = 3,
        backoff_base_s: float = 2.0,
        backoff_max_s: float = 300.0,
        lease_s: float = 60.0,
        max_crashes: int = 3,
        poison_window_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        migrate: bool = True,
        home_history: Callable[[], dict | None] | None = None,
        host: str | None = None,
    ):
        """Connect (lazily) to the server named by `dsn` and use the schema
        `schema` there, creating it and bringing it up to date now unless
        `migrate=False`. `synchronous` maps [queue] synchronous onto
        PostgreSQL's synchronous_commit ("normal": off, so a server crash may
        lose the last commits but never a process crash; "full": on).
        `busy_timeout_s` bounds waits for a row lock (lock_timeout).
        `home_history` is accepted for the same signature as the SQLite
        store; a PostgreSQL schema is never judged emptied by it."""
        if synchronous not in DURABILITY:
            raise InvalidInput(f"durability mode {synchronous!r} is not one of {sorted(DURABILITY)} "
                               "([queue] synchronous)")
        if not isinstance(schema, str) or not _SCHEMA_NAME.match(schema):
            raise InvalidInput(f"a PostgreSQL schema name is lower-case letters, digits and underscores "
                               f"(at most 63), got {schema!r}")
        parse_dsn(dsn)
        self.dsn = dsn
        self.schema = schema
        self.path = f"{describe_dsn(dsn)} (schema {schema})"  # for messages: never the password
        self.synchronous = synchronous
        self.busy_timeout_s = busy_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.max_payload_bytes = max_payload_bytes
        self.default_max_attempts = default_max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.lease_s = lease_s
        self.max_crashes = max_crashes
        self.poison_window_s = poison_window_s
        # The host this process runs on ([fleet] host): stamped on the alerts,
        # hardware samples and (on one host) attempts it writes.
        self.host = host or socket.gethostname()
        self._home_history = home_history
        self._local = threading.local()
        self._all_conns: list[PgConnection] = []
        self._conns_lock = threading.Lock()
        self._writes = 0
        self._wake = PgWakeChannel(dsn, schema, self._send_notify)
        if migrate:
            self._migrate()

    # -- connections -----------------------------------------------------
    def _open(self) -> PgConnection:
        # A transaction left open by a process that stopped between two of its
        # statements (frozen, or its host cut off) is ended by the server, so
        # its row locks do not hold up every other host.
        idle_ms = int(max(60.0, 2 * self.busy_timeout_s) * 1000)
        options = (f"-c search_path={self.schema} -c lock_timeout={int(self.busy_timeout_s * 1000)} "
                   f"-c synchronous_commit={DURABILITY[self.synchronous]} "
                   f"-c idle_in_transaction_session_timeout={idle_ms}")
        try:
            raw = psycopg.Connection.connect(
                self.dsn, autocommit=True, context=ADAPTERS, row_factory=row_factory,
                connect_timeout=max(1, int(self.connect_timeout_s)), options=options,
                application_name="fleet", keepalives=1, keepalives_idle=30, keepalives_interval=10,
                keepalives_count=3)
        except psycopg.Error as exc:
            raise connect_error(exc, self.dsn) from None
        return PgConnection(raw, f"at {self.path}", os.getpid())

    def _conn(self) -> PgConnection:
        """This thread's connection (inside a write transaction, the one
        writing), reopened after a fork or a lost connection."""
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is not None and conn.pid == os.getpid() and conn.usable:
            if not getattr(local, "writing", False) and conn.in_transaction:
                conn.run("ROLLBACK")  # left open by an interrupted call
            return conn
        if conn is not None and conn.pid == os.getpid():
            conn.close()  # (one a forked child inherited is left alone: psycopg never closes it there)
        conn = self._open()
        local.conn, local.writing = conn, False
        with self._conns_lock:
            self._all_conns.append(conn)
        return conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[PgConnection]:
        """One write transaction; commits on success, rolls back on any error."""
        conn = self._conn()
        if self._local.writing:  # a write inside a write joins it
            yield conn
            return
        conn.run("BEGIN")
        self._local.writing = True
        try:
            yield conn
            conn.run("COMMIT")
        except BaseException as exc:
            self._rollback(conn)
            if isinstance(exc, psycopg.Error):
                raise store_error(exc, conn.where) from exc
            raise
        finally:
            self._local.writing = False
        self._writes += 1
        if self._writes % _COMPACT_EVERY == 0:
            with contextlib.suppress(StoreError):
                self._compact_counts()

    @contextlib.contextmanager
    def _read(self) -> Iterator[PgConnection]:
        """A consistent read snapshot across several statements."""
        conn = self._conn()
        if conn.in_transaction:  # inside a write transaction: it reads its own writes
            yield conn
            return
        conn.run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            yield conn
        except BaseException:
            self._rollback(conn)
            raise
        conn.run("COMMIT")

    @staticmethod
    def _rollback(conn: PgConnection) -> None:
        if conn.usable and conn.in_transaction:
            with contextlib.suppress(StoreError, psycopg.Error):
                conn.run("ROLLBACK")

    # -- schema ----------------------------------------------------------
    def _version(self, conn: PgConnection) -> int:
        if conn.run("SELECT to_regclass('schema_version')").fetchone()[0] is None:
            return 0
        row = conn.run("SELECT version FROM schema_version").fetchone()
        return 0 if row is None else row[0]

    def _migrate(self) -> None:
        """Create the schema or bring it up to date. One already at this
        Fleet's version is only read; otherwise the work is done under a
        transaction-scoped advisory lock (several hosts starting at once
        migrate once), checking the version again inside it."""
        conn = self._conn()
        version = self._version(conn)
        if version == schema.SCHEMA_VERSION:
            return
        self._refuse_newer(version)
        with self._write() as conn:
            conn.run("SELECT pg_advisory_xact_lock(hashtext('fleet-store-migrate'), hashtext(%s))", (self.schema,))
            conn.run(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            conn.run(f'SET LOCAL search_path TO "{self.schema}"')
            conn.run(pg_schema.VERSION_TABLE)
            version = self._version(conn)
            self._refuse_newer(version)
            for reached, sql in pg_schema.steps(version):
                conn.run(sql)
                version = reached
            conn.run("DELETE FROM schema_version")
            conn.run("INSERT INTO schema_version (version) VALUES (%s)", (version,))

    def _refuse_newer(self, version: int) -> None:
        if version > schema.SCHEMA_VERSION:
            raise StoreError(
                f"the PostgreSQL store {self.path} has schema version {version}, newer than this Fleet "
                f"({schema.SCHEMA_VERSION}); upgrade Fleet on this host")

    def _compact_counts(self) -> int:
        """Fold the task-count rows into one per (status, skill); returns how many rows there were."""
        with self._write() as conn:
            before = conn.run("SELECT COUNT(*) FROM task_count_deltas").fetchone()[0]
            conn.run(pg_schema.COMPACT_COUNTS)
        return before

    # -- health and facts --------------------------------------------------
    def write_health(self) -> dict:
        """Whether writes can succeed, judged without writing: the server
        answers, is not a read-only standby, and lets this user write the
        store's tables. The server's disk is not visible from here."""
        problem = None
        try:
            standby, read_only, may_write = self._conn().run(
                "SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only') = 'on', "
                "has_table_privilege('tasks', 'INSERT, UPDATE')").fetchone()
            if standby:
                problem = f"the PostgreSQL server {describe_dsn(self.dsn)} is a read-only standby; point [store] dsn at the primary"
            elif read_only:
                problem = "the PostgreSQL server refuses writes (default_transaction_read_only is on)"
            elif not may_write:
                problem = f"this user may not write the store's tables in schema {self.schema}; grant it INSERT and UPDATE"
        except StoreError as exc:
            problem = str(exc)
        return {"status": "degraded" if problem else "healthy", "writes": problem, "path": self.path,
                "free_bytes": None, "total_bytes": None}

    def stats(self) -> dict:
        conn = self._conn()
        server, sync, block, db_bytes, schema_bytes = conn.run(
            "SELECT current_setting('server_version'), current_setting('synchronous_commit'), "
            "current_setting('block_size')::bigint, pg_database_size(current_database()), "
            "(SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c "
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r')",
            (self.schema,)).fetchone()
        return {
            "backend": self.backend,
            "path": self.path,
            "schema": self.schema,
            "schema_version": self._version(conn),
            "journal_mode": "wal",
            "durability": self.synchronous,
            "synchronous_in_effect": sync,
            "durability_meaning": (
                "survives process crashes and power loss" if sync in ("on", "remote_write", "remote_apply")
                else "survives any process crash; the last commits may be lost if the server crashes"),
            "page_size": block,
            "db_bytes": schema_bytes,
            "database_bytes": db_bytes,
            "wal_bytes": None,
            "server_version": server,
        }

    def integrity_check(self, *, quick: bool = False) -> str:
        """PostgreSQL checks its own pages as it reads them, so the check
        reads: quick, one row of every table; full, every row of every table
        and the task counts against the tasks. "ok", or what is wrong."""
        problems = []
        conn = self._conn()
        for table in pg_schema.TABLES:
            sql = f"SELECT 1 FROM {table} LIMIT 1" if quick else f"SELECT COUNT(*) FROM {table}"  # nosec B608
            try:
                conn.run(sql).fetchall()
            except StoreUnavailable as exc:
                if not conn.usable:
                    raise
                problems.append(f"{table}: {exc}")
        if not quick and not problems:
            wrong = conn.run(
                "SELECT COALESCE(c.status, t.status), COALESCE(c.skill, t.skill), COALESCE(c.n, 0), "
                "COALESCE(t.n, 0) FROM (SELECT status, skill, n FROM task_counts WHERE n <> 0) c FULL JOIN "
                "(SELECT status, skill, COUNT(*) AS n FROM tasks GROUP BY status, skill) t "
                "ON c.status = t.status AND c.skill = t.skill WHERE COALESCE(c.n, 0) <> COALESCE(t.n, 0)").fetchall()
            problems += [f"task_counts says {c} {status} {skill} tasks, there are {n}" for status, skill, c, n in wrong]
        return "; ".join(problems) or "ok"

    # -- maintenance -----------------------------------------------------
    def checkpoint(self, mode: str = "PASSIVE", *, wait_s: float | None = None) -> dict:
        """The server manages its own write-ahead log: nothing to do here."""
        mode = str(mode).upper()
        if mode not in ("PASSIVE", "FULL", "RESTART", "TRUNCATE"):
            raise InvalidInput(f"checkpoint mode {mode!r} is not PASSIVE, FULL, RESTART or TRUNCATE")
        return {"mode": mode, "busy": False, "wal_pages": 0, "checkpointed_pages": 0}

    def maintain(self, *, wal_limit_bytes: int = 16 << 20) -> dict:
        """Periodic upkeep: fold the task-count rows and refresh the planner's
        statistics of the queue's tables (the server's autovacuum does the
        rest). Safe from several hosts at once."""
        result = self.checkpoint("PASSIVE")
        result["count_rows_before"] = self._compact_counts()
        with contextlib.suppress(StoreError):
            self._conn().run("ANALYZE tasks, task_attempts, task_count_deltas")
        result["wal_bytes_before"] = result["wal_bytes"] = 0
        return result

    # -- backups ---------------------------------------------------------
    def backup_to(self, dest: str | os.PathLike) -> None:
        pg_backup.dump(self.dsn, self.schema, os.fspath(dest))

    def check_backup(self, path: str | os.PathLike) -> dict:
        return pg_backup.check(path)

    def restore_from(self, backup_file: str | os.PathLike, *, keep_replaced_in: str | os.PathLike | None = None) -> dict:
        self._close_connections()
        try:
            result = pg_backup.restore(self.dsn, self.schema, backup_file, keep_replaced_in, self.path)
        finally:
            self._close_connections()
        self._migrate()
        return result

    # -- wake-ups --------------------------------------------------------
    def _send_notify(self, sql: str, params: tuple) -> None:
        self._conn().run(sql, params)

    def notify(self) -> None:
        """Tell waiting workers, on every host, that something may have changed."""
        self._wake.notify()

    # -- closing ---------------------------------------------------------
    def _close_connections(self) -> None:
        with self._conns_lock:
            conns, self._all_conns = self._all_conns, []
        for conn in conns:
            if conn.pid == os.getpid():
                conn.close()
        self._local = threading.local()

    def close(self) -> None:
        self._close_connections()
        self._wake.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


__all__ = ["DURABILITY", "PostgresBase", "PostgresDialect"]
