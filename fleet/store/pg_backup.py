"""Backups of a PostgreSQL store: one schema, written and read by the server's
own tools (pg_dump's custom format, pg_restore). Where they are not on PATH
the error says what to install and what to run by hand. A password in the DSN
reaches them through PGPASSWORD, never on a command line.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess  # nosec B404 - runs pg_dump / pg_restore found on PATH, with argument lists
import time
from pathlib import Path

import psycopg

from . import schema as sqlite_schema
from .errors import InvalidInput, StoreUnavailable
from .pg_conn import describe_dsn, without_password

_TIMEOUT_S = 3600


def _tool(name: str, by_hand: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        raise StoreUnavailable(
            f"{name} is not on PATH, so Fleet cannot do this for a PostgreSQL store; install the PostgreSQL "
            f"client tools of the server's version (e.g. `apt install postgresql-client`), or run: {by_hand}")
    return exe


def _run(args: list[str], dsn: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if dsn is not None:
        bare, password = without_password(dsn)
        args = [*args, f"--dbname={bare}"]
        if password:
            env["PGPASSWORD"] = password
    try:
        return subprocess.run(args, env=env, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)  # nosec B603
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StoreUnavailable(f"{Path(args[0]).name} could not run: {exc}") from None


def _tail(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return " / ".join(lines[-3:]) or "no message"


def dump(dsn: str, schema: str, dest: str) -> None:
    """pg_dump the store's schema (one consistent snapshot) to `dest`."""
    exe = _tool("pg_dump", f"pg_dump --format=custom --schema={schema} --file={dest} 'postgresql://USER@HOST/DB'")
    proc = _run([exe, "--format=custom", f"--schema={schema}", "--no-owner", "--no-privileges", f"--file={dest}"], dsn)
    if proc.returncode != 0:
        raise StoreUnavailable(f"pg_dump of the store at {describe_dsn(dsn)} (schema {schema}) failed: "
                               f"{_tail(proc.stderr)}; {dest} may be partial")


def _copy_rows(exe: str, path: Path, table: str) -> list[list[str]] | None:
    """The rows of one table in a dump (its COPY data), or None if absent."""
    proc = _run([exe, "--data-only", f"--table={table}", "--file=-", str(path)])
    if proc.returncode != 0:
        return None
    rows, inside = [], False
    for line in proc.stdout.splitlines():
        if line.startswith("COPY "):
            inside = True
        elif inside and line == "\\.":
            inside = False
        elif inside:
            rows.append(line.split("\t"))
    return rows


def check(path: str | os.PathLike) -> dict:
    """What a dump holds, read without a server: {"integrity", "schema",
    "schema_version", "tasks", "db_bytes", "problem"} (see check_backup)."""
    p = Path(path).resolve()
    out = {"integrity": None, "schema": None, "schema_version": None, "tasks": None, "db_bytes": None,
           "problem": None}
    if not p.is_file():
        out["integrity"] = out["problem"] = f"missing: {p} does not exist"
        return out
    out["db_bytes"] = p.stat().st_size
    exe = _tool("pg_restore", f"pg_restore --list {p}")
    listing = _run([exe, "--list", str(p)])
    if listing.returncode != 0:
        out["integrity"] = f"unreadable: {_tail(listing.stderr)}"
        out["problem"] = f"is not a readable pg_dump archive ({out['integrity']})"
        return out
    for line in listing.stdout.splitlines():
        words = line.split()
        if len(words) >= 6 and words[3] == "TABLE" and words[5] == "tasks":
            out["schema"] = words[4]
    version_rows = _copy_rows(exe, p, "schema_version")
    counts_rows = _copy_rows(exe, p, "task_count_deltas")
    if out["schema"] is None or not version_rows:
        out["integrity"] = "unreadable: not a dump of a Fleet store (no tasks or schema_version table)"
        out["problem"] = f"is not a Fleet PostgreSQL backup ({out['integrity']})"
        return out
    out["integrity"] = "ok"
    out["schema_version"] = version = int(version_rows[0][0])
    tasks: dict[str, int] = {}
    for status, _skill, n in counts_rows or []:
        tasks[status] = tasks.get(status, 0) + int(n)
    out["tasks"] = {s: n for s, n in tasks.items() if n}
    if version > sqlite_schema.SCHEMA_VERSION:
        out["problem"] = (f"has schema version {version}, newer than this Fleet ({sqlite_schema.SCHEMA_VERSION}); "
                          "restore it with the Fleet that made it, or upgrade first")
    return out


def restore(dsn: str, schema: str, backup_file: str | os.PathLike, keep_replaced_in: str | os.PathLike | None,
            where: str) -> dict:
    """Replace the store's schema with a dump of it. The dump is checked
    first; the live schema is saved (pg_dump into `keep_replaced_in`, when
    given) and renamed aside, the dump restored in one transaction, and only
    then the old schema dropped. Any failure renames it back."""
    src = Path(backup_file).resolve()
    if not src.is_file():
        raise InvalidInput(f"there is no backup file {src}; nothing was changed")
    info = check(src)
    if info["problem"] is not None:
        raise InvalidInput(f"the backup {src} {info['problem']}; nothing was changed")
    if info["schema"] != schema:
        raise InvalidInput(f"the backup {src} holds the store of schema {info['schema']!r}, this store's is "
                           f"{schema!r}; nothing was changed. Restore it by hand with pg_restore, or open the "
                           f"store of schema {info['schema']!r}")
    exe = _tool("pg_restore", f"pg_restore --single-transaction --exit-on-error --dbname=... {src}")
    aside = f"{schema[:40]}_replaced_{int(time.time())}"
    try:
        conn = psycopg.Connection.connect(dsn, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise StoreUnavailable(f"cannot connect to the PostgreSQL store {where} to restore it: "
                               f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc}") from None
    saved = None
    with conn:
        live = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is not None
        if live and keep_replaced_in is not None:
            Path(keep_replaced_in).mkdir(parents=True, exist_ok=True)
            saved = str(Path(keep_replaced_in) / f"{schema}-replaced.dump")
            dump(dsn, schema, saved)
        if live:
            conn.execute(f'ALTER SCHEMA "{schema}" RENAME TO "{aside}"')
        proc = _run([exe, "--single-transaction", "--exit-on-error", "--no-owner", "--no-privileges", str(src)], dsn)
        if proc.returncode != 0:
            with contextlib.suppress(psycopg.Error):
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                if live:
                    conn.execute(f'ALTER SCHEMA "{aside}" RENAME TO "{schema}"')
            raise StoreUnavailable(f"pg_restore of {src} into {where} failed ({_tail(proc.stderr)}); the store "
                                   "was put back as it was")
        if live:
            conn.execute(f'DROP SCHEMA "{aside}" CASCADE')
    return {"restored_from": str(src), "db": where, "integrity": info["integrity"],
            "schema_version": info["schema_version"], "replaced_saved_in": saved}
