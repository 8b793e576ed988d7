"""Moving a single-host fleet to PostgreSQL: every table of a stopped SQLite
store copied into an empty PostgreSQL schema in one transaction, ids kept
(identity sequences set past them), per-status task counts carried over, and
every table's row count checked before the commit.

`lead_client.py store migrate --to DSN` calls `migrate_sqlite_to_postgres`;
nothing is written to PostgreSQL unless every count matches, and the SQLite
file is only read.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from .errors import InvalidInput, StoreError, StoreUnavailable

# Parents before children (foreign keys); a table not named here follows in name order.
_FIRST = ("tasks", "task_deps", "task_attempts")
# SQLite-only bookkeeping: counts are carried over separately, ids by setval.
_SKIP = {"sqlite_sequence", "task_counts"}


def migrate_sqlite_to_postgres(sqlite_path: str | os.PathLike, dsn: str, *, schema: str = "fleet") -> dict:
    """Copy the SQLite store at `sqlite_path` (its fleet stopped) into `schema`
    on `dsn`, which must hold no tasks yet. Returns {"tables": {name: rows},
    "tasks": {status: n}, "schema", "server"}. Errors: InvalidInput (the
    target is not empty, the source is not a Fleet store), StoreUnavailable."""
    from . import postgres_store
    from .pg_conn import describe_dsn

    path = Path(sqlite_path)
    if not path.is_file():
        raise InvalidInput(f"there is no SQLite store at {path}")
    src = None
    try:
        src = sqlite3.connect(path.as_uri() + "?mode=ro", uri=True)
        tables = [r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        # FTS5's search index (workflow_lessons_fts and its shadow tables) is
        # rebuilt by PostgreSQL's own index on workflow_lessons, not copied.
        tables = [t for t in tables if not t.startswith("workflow_lessons_fts")]
        if "tasks" not in tables:
            raise InvalidInput(f"{path} is not a Fleet store (it has no tasks table)")
        # The schema on PostgreSQL, created (or brought up to date) by opening it.
        target = postgres_store(dsn, schema=schema)
        try:
            target_version = target.stats()["schema_version"]
        finally:
            target.close()
        src_version = src.execute("PRAGMA user_version").fetchone()[0]
        if src_version != target_version:
            raise InvalidInput(f"{path} is at schema version {src_version} and this Fleet at {target_version}: "
                               "open the SQLite fleet once with this version (it migrates itself), then migrate")
        copied, counts = _copy(src, dsn, schema, tables)
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"cannot read the SQLite store {path}: {exc}") from None
    finally:
        if src is not None:
            src.close()
    return {"tables": copied, "tasks": counts, "schema": schema, "server": describe_dsn(dsn)}


def _copy(src: sqlite3.Connection, dsn: str, schema: str, tables: list[str]) -> tuple[dict, dict]:
    import psycopg

    from .pg_conn import describe_dsn

    order = [t for t in _FIRST if t in tables] + [t for t in tables if t not in _FIRST and t not in _SKIP]
    try:
        conn = psycopg.connect(dsn, autocommit=False, options=f"-c search_path={schema}")
    except psycopg.Error as exc:
        raise StoreUnavailable(f"cannot connect to {describe_dsn(dsn)}: {str(exc).strip()[:300]}") from None
    copied: dict[str, int] = {}
    try:
        with conn.transaction():
            cur = conn.cursor()
            held = cur.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
            if held:
                raise InvalidInput(f"the target schema {schema!r} on {describe_dsn(dsn)} already holds {held} tasks; "
                                   "migrate into an empty schema (or a new database)")
            for table in order:
                target_cols = [r[0] for r in cur.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
                    "ORDER BY ordinal_position", (schema, table))]
                if not target_cols:
                    raise InvalidInput(f"table {table} of the SQLite store has no twin on PostgreSQL; is this "
                                       "the same Fleet version?")
                cur.execute(f'DELETE FROM "{table}"')  # (rows the schema's creation may have put there)
                src_cols = [r[1] for r in src.execute(f'PRAGMA table_info("{table}")')]
                cols = [c for c in src_cols if c in target_cols]
                names = ", ".join(f'"{c}"' for c in cols)
                n = 0
                with cur.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
                    for row in src.execute(f'SELECT {names} FROM "{table}"'):
                        copy.write_row(row)
                        n += 1
                copied[table] = n
                if "id" in cols and n:
                    cur.execute(f"SELECT setval(pg_get_serial_sequence(%s, 'id'), (SELECT MAX(id) FROM \"{table}\"))",
                                (f'"{schema}"."{table}"',))
            cur.execute("DELETE FROM task_count_deltas")
            counts: dict[str, int] = {}
            with cur.copy("COPY task_count_deltas (status, skill, n) FROM STDIN") as copy:
                for status, skill, n in src.execute("SELECT status, skill, n FROM task_counts WHERE n != 0"):
                    copy.write_row((status, skill, n))
                    counts[status] = counts.get(status, 0) + n
            for table, n in copied.items():  # the check before the commit
                there = cur.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]
                if there != n:
                    raise StoreError(f"table {table}: {n} rows read but {there} on PostgreSQL; nothing was kept")
            by_status = dict(cur.execute("SELECT status, COUNT(*) FROM tasks GROUP BY status").fetchall())
            if {k: v for k, v in counts.items() if v} != by_status:
                raise StoreError(f"task counts differ after the copy ({by_status} against {counts}); nothing was kept")
    except psycopg.Error as exc:
        raise StoreUnavailable(f"the copy to {describe_dsn(dsn)} failed and was rolled back: "
                               f"{str(exc).strip()[:300]}") from None
    finally:
        conn.close()
    return copied, by_status
