"""SQLite connection handling for the store: pragmas, transactions, migrations.

Per (process, thread) two reused connections, opened lazily: one for reads
(busy timeout) and one for write transactions (`BEGIN IMMEDIATE`, with our own
jittered wait for the write lock); inside a write transaction reads use the
writing connection. WAL journal, a configured durability mode and foreign keys
on every connection; the schema is created and migrated by `PRAGMA user_version`;
`maintain()` keeps the WAL bounded. SQLite's own errors never leave the store:
reads and writes alike raise StoreUnavailable.
"""

from __future__ import annotations

import contextlib
import os
import socket
import random
import shutil
import sqlite3
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from fleet import filemodes

from . import schema
from . import sqlite_diagnosis as diagnosis
from .errors import InvalidInput, StoreDamaged, StoreError, StoreUnavailable
from .wake import WakeChannel

DURABILITY_MODES = {"normal": "NORMAL", "full": "FULL"}

_WAL_HEADER_BYTES = 32  # a -wal file no longer than its header holds no pages
# A database file that looks emptied but was modified less than this long ago
# may be one another process is creating this instant: it gets this long to
# become a Fleet database before it is refused.
_CREATION_GRACE_S = 1.0

# Automatic checkpoints every 2,000 pages (2 MiB of WAL at 1 KiB pages): small
# enough to keep the WAL bounded, large enough that a checkpoint (which runs
# inside some unlucky commit) hits well under 1 % of queue operations.
#
# New databases use 1 KiB pages: every commit writes each page it touched to
# the WAL (and checksums it), and a queue commit touches about ten index pages,
# so small pages make the hot write path several times cheaper. Existing
# databases keep the page size they were created with.
NEW_DB_PAGE_SIZE = 1024


class SQLiteBase:
    """Connection management shared by every part of the SQLite store."""

    backend = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        synchronous: str = "normal",
        busy_timeout_s: float = 30.0,
        max_payload_bytes: int = 1 << 20,
        default_max_attempts: int = 3,
        backoff_base_s: float = 2.0,
        backoff_max_s: float = 300.0,
        lease_s: float = 60.0,
        max_crashes: int = 3,
        poison_window_s: float = 30.0,
        wal_autocheckpoint_pages: int = 2000,
        migrate: bool = True,
        home_history: Callable[[], dict | None] | None = None,
        host: str | None = None,
        shared_read: bool = False,
    ):
        """Open (lazily) the database at `path`, creating it and bringing its
        schema up to date now. `migrate=False` reads nothing yet: for
        `restore_from` over a database that may be damaged, which brings the
        schema up to date itself once the backup is in place.

        `home_history` (given by `open_store(cfg)`, not for a bare path) says
        what the fleet home already holds: {"backups": [ids, newest first],
        "logs": folder or None, "knowledge": folder or None}, or None for a
        new home. It is called only when the database file exists but holds
        no Fleet schema (0 bytes, or a SQLite file at schema version 0): in a
        home with history that file was emptied, not new, and is refused
        (StoreDamaged, naming the backups) instead of being re-created empty.
        A missing file is always created: moving a database away is how an
        operator starts over on purpose.

        The database, its WAL and shared-memory files are kept 0600 (a new
        parent folder 0700) unless `shared_read` ([paths] shared_read)."""
        if synchronous not in DURABILITY_MODES:
            raise InvalidInput(
                f"durability mode {synchronous!r} is not one of {sorted(DURABILITY_MODES)} "
                "([queue] synchronous)"
            )
        self.path = os.path.abspath(os.fspath(path))
        self.synchronous = synchronous
        self.busy_timeout_s = busy_timeout_s
        self._busy_ms = int(busy_timeout_s * 1000)
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
        self.wal_autocheckpoint_pages = wal_autocheckpoint_pages
        self._local = threading.local()
        self._all_conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._wake = WakeChannel(self.path)
        self._home_history = home_history
        self._schema_in_wal_only = False
        self.shared_read = shared_read
        parent = os.path.dirname(self.path)
        if parent:
            os.makedirs(parent, mode=filemodes.dir_mode(shared_read), exist_ok=True)
        if migrate:
            self._check_file()
            try:
                self._migrate()
            except sqlite3.Error as exc:
                raise _unavailable(self.path, exc) from None
            finally:
                self._schema_in_wal_only = False

    # -- connections -----------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        """A configured connection. Several processes opening a brand-new
        database at once may find it busy while one switches it to WAL: that
        is retried. A file that is not a SQLite database is a clear error."""
        deadline = time.monotonic() + self.busy_timeout_s
        delay = 0.005
        while True:
            try:
                return self._open_once()
            except sqlite3.DatabaseError as exc:
                if _is_busy(exc) and time.monotonic() < deadline:
                    time.sleep(delay)
                    delay = min(delay * 2, 0.2)
                    continue
                if _is_busy(exc):
                    raise _unavailable(self.path, exc) from None
                # Only now, on the error path: what the disk, the permissions
                # and SQLite's quick_check say the cause is.
                kind, message = diagnosis.explain(self.path, exc, "open", restore=self._restore_advice())
                raise (StoreDamaged if kind == "damaged" else StoreUnavailable)(message) from None

    def _open_once(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            factory=_Connection,
            timeout=self.busy_timeout_s,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            check_same_thread=True,
        )
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA page_size = {NEW_DB_PAGE_SIZE}")  # no-op on an existing file
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(
                f"could not put {self.path} in WAL mode (got {mode!r}); "
                "keep the database on a local disk, not a network share"
            )
        conn.execute(f"PRAGMA synchronous = {DURABILITY_MODES[self.synchronous]}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA wal_autocheckpoint = {int(self.wal_autocheckpoint_pages)}")
        # After each WAL reset the file is cut back to about twice the
        # auto-checkpoint budget, so a burst does not leave a large file behind.
        conn.execute(f"PRAGMA journal_size_limit = {max(1 << 20, int(self.wal_autocheckpoint_pages) * 2048)}")
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("PRAGMA cache_size = -16384")  # 16 MiB per connection
        if not self.shared_read:
            # SQLite creates the file by the umask and its -wal/-shm with the file's mode:
            # tighten the file at once (it holds no rows yet when new) and any sidecar already there.
            for suffix in ("", "-wal", "-shm"):
                filemodes.tighten(self.path + suffix, filemodes.PRIVATE_FILE)
        return conn

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection for reads (inside a write transaction:
        the writing connection, so the transaction reads its own writes)."""
        local = self._local
        if getattr(local, "writing", False):
            return local.wconn
        conn = getattr(local, "conn", None)
        if conn is None or getattr(local, "pid", None) != os.getpid():
            conn = self._open()
            conn.unavailable_path = self.path  # its reads raise StoreUnavailable, never sqlite3 errors
            local.conn, local.pid = conn, os.getpid()
            with self._conns_lock:
                self._all_conns.append(conn)
        return conn

    def _write_conn(self) -> sqlite3.Connection:
        """This thread's connection for write transactions. Its busy timeout
        is zero: `begin_immediate` waits for the write lock itself."""
        local = self._local
        conn = getattr(local, "wconn", None)
        if conn is None or getattr(local, "wpid", None) != os.getpid():
            conn = self._open()
            conn.execute("PRAGMA busy_timeout = 0")
            local.wconn, local.wpid, local.writing = conn, os.getpid(), False
            with self._conns_lock:
                self._all_conns.append(conn)
        return conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; commits on success, rolls back on any error.

        SQLite's own errors (busy past the timeout, disk full, I/O) surface as
        StoreUnavailable, never as sqlite3 exceptions.
        """
        conn = self._write_conn()
        self._begin_immediate(conn)
        self._local.writing = True
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            if isinstance(exc, sqlite3.Error):
                raise _unavailable(self.path, exc) from exc
            raise
        finally:
            self._local.writing = False

    def _begin_immediate(self, conn: sqlite3.Connection) -> None:
        try:
            begin_immediate(conn, self.busy_timeout_s)
        except sqlite3.OperationalError as exc:
            raise _unavailable(self.path, exc) from exc

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A consistent read snapshot across several statements."""
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:  # an error may have ended it already
                with contextlib.suppress(StoreError, sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _migrate(self) -> None:
        """Bring the schema up to date. A database already at this Fleet's
        version is only read (`PRAGMA user_version`, outside any transaction):
        opening takes no write lock, so read-only commands work while another
        process holds a long write transaction. Only a database that is
        behind takes the write lock, and checks its version again inside it
        (another process may have migrated it meanwhile)."""
        conn = self._conn()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == schema.SCHEMA_VERSION:
            return
        self._refuse_newer(version)
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            self._refuse_newer(version)
            if version == 0 and self._schema_in_wal_only:
                self._refuse_emptied("holds no Fleet tables (schema version 0)")
            for step in range(version, schema.SCHEMA_VERSION):
                for statement in _split_sql(schema.MIGRATIONS[step]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {step + 1}")
        except BaseException:
            if conn.in_transaction:  # an error may have ended it already
                with contextlib.suppress(StoreError, sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _refuse_newer(self, version: int) -> None:
        if version > schema.SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this Fleet "
                f"({schema.SCHEMA_VERSION}); upgrade Fleet or restore an older backup"
            )

    # -- a database file that lost its contents ------------------------------
    def _check_file(self) -> None:
        """Before SQLite touches the file (putting even an empty file in WAL
        mode writes its first page): a file shorter than its own header says
        is truncated, and refused; one that exists but holds no Fleet schema
        (0 bytes, or a SQLite header at schema version 0) is refused in a
        home with history (see `home_history`). One stat and one 100-byte
        read per store opened; nothing per statement."""
        try:
            st = os.stat(self.path)
        except OSError:
            return  # missing: a new database (or SQLite says why it cannot open it)
        try:
            wal_bytes = os.path.getsize(self.path + "-wal")
        except OSError:
            wal_bytes = 0
        if wal_bytes > _WAL_HEADER_BYTES:
            # The WAL may hold pages the file does not have yet (the schema of
            # a new database, or pages past the end of a partly checkpointed
            # file): SQLite reads them; only version 0 is judged, once open.
            self._schema_in_wal_only = self._home_history is not None
            return
        deadline = time.monotonic() + _CREATION_GRACE_S
        while True:
            problem = self._file_problem(st.st_size)
            if problem is None:
                return
            kind, what = problem
            if kind == "truncated":
                raise StoreDamaged(f"{self.path} {what}: part of the file was lost. {_cap(self._restore_advice())}. "
                                   "The file was left as it is")
            if self._history() is None:
                return  # a new home: the empty file becomes its database
            # A database another process is creating this instant looks the
            # same for a few milliseconds: a file modified just now gets a
            # moment to become one before it is refused.
            if time.time() - st.st_mtime > _CREATION_GRACE_S or time.monotonic() > deadline:
                self._refuse_emptied(what)
            time.sleep(0.05)
            try:
                st = os.stat(self.path)
            except OSError:
                return

    def _file_problem(self, size: int) -> tuple[str, str] | None:
        """("empty" | "truncated" | "no_schema", what) for the file as it is,
        or None (a Fleet database, or not SQLite at all: SQLite says so)."""
        if size == 0:
            return "empty", "is empty (0 bytes)"
        try:
            with open(self.path, "rb") as fh:
                header = fh.read(100)
        except OSError:
            return None
        if len(header) < 100 or not header.startswith(b"SQLite format 3\0"):
            return None
        page_size = struct.unpack(">H", header[16:18])[0]
        page_size = 65536 if page_size == 1 else page_size
        change, pages, valid_for, user_version = (struct.unpack(">I", header[i:i + 4])[0] for i in (24, 28, 92, 60))
        hot_journal = os.path.exists(self.path + "-journal")  # a rollback journal may still put pages back
        if pages and change == valid_for and size < pages * page_size and not hot_journal:
            return "truncated", (f"is truncated: it has {size} bytes where its own header records {pages} pages of "
                                 f"{page_size} bytes ({pages * page_size} bytes)")
        if user_version == 0:
            return "no_schema", "holds no Fleet tables (a SQLite file at schema version 0)"
        return None

    def _history(self) -> dict | None:
        if self._home_history is None:
            return None
        try:
            return self._home_history()
        except Exception:  # noqa: BLE001 - an unreadable home reads as no history, never as a crash
            return None

    def _refuse_emptied(self, what: str) -> None:
        history = self._history()
        if history is None:
            return
        held = []
        if history.get("backups"):
            n = len(history["backups"])
            held.append(f"{n} backup{'s' if n != 1 else ''}, the newest {history['backups'][0]}")
        held += [f"{k} in {history[k]}" for k in ("logs", "knowledge") if history.get(k)]
        raise StoreDamaged(
            f"{self.path} {what}, but this fleet home has history ({'; '.join(held)}): the database was emptied "
            f"or truncated, not new, so Fleet will not start over with an empty one. "
            f"{_cap(self._restore_advice(history))}. The file was left as it is; only to start with an empty "
            "store on purpose, remove it")

    def _restore_advice(self, history: dict | None = None) -> str:
        """How to get the data back, naming the newest backup when this store
        was opened for a fleet home (called on error paths only)."""
        history = history if history is not None else self._history()
        backups = (history or {}).get("backups") or []
        if backups:
            listed = f"lists all {len(backups)}" if len(backups) > 1 else "lists it"
            return (f"restore the newest backup with `lead_client.py restore {backups[0]}` "
                    f"(`lead_client.py backup --list` {listed})")
        if history is not None:
            return ("there are no backups to restore (`lead_client.py backup --list`); if the file was replaced "
                    "or emptied by mistake, put the original back")
        return "restore a backup (`lead_client.py backup --list`, then `lead_client.py restore ID`)"

    # -- write health ----------------------------------------------------
    def write_health(self) -> dict:
        """Whether writes can succeed, from what the filesystem says, writing
        nothing: {"status": "healthy" | "degraded", "writes": why they fail
        (None when healthy), "path", "free_bytes", "total_bytes"}.

        Why not a probe transaction: `BEGIN IMMEDIATE; ROLLBACK` takes the
        lock but writes nothing to disk, so it succeeds on a full disk; even
        a committed probe row lands in WAL space a checkpoint left free and
        succeeds while the next real commit, which must grow the WAL, fails;
        and a probe would make a read-only health check take the write lock.
        What decides whether a commit can be written is whether the WAL and
        the database can grow and be written: free space on their
        filesystem (under 1 MiB is degraded), a read-only mount, and this
        user's permission on the files and their folder."""
        problem, free, total = diagnosis.write_problem(self.path)
        return {"status": "degraded" if problem else "healthy", "writes": problem, "path": self.path,
                "free_bytes": free, "total_bytes": total}

    # -- wake-ups --------------------------------------------------------
    def notify(self) -> None:
        """Tell waiting workers that something may have changed."""
        self._wake.notify()

    # -- maintenance -----------------------------------------------------
    def checkpoint(self, mode: str = "PASSIVE", *, wait_s: float | None = None) -> dict:
        """Checkpoint the WAL so it stays bounded; TRUNCATE also shrinks the file.

        PASSIVE never waits. FULL/RESTART/TRUNCATE wait for readers and block
        new writers meanwhile, so they wait at most `wait_s` (default 2 s)
        and report busy=True instead of stalling the fleet.
        """
        mode = str(mode).upper()
        if mode not in ("PASSIVE", "FULL", "RESTART", "TRUNCATE"):
            raise InvalidInput(f"checkpoint mode {mode!r} is not PASSIVE, FULL, RESTART or TRUNCATE")
        conn = self._conn()
        if mode != "PASSIVE":
            conn.execute(f"PRAGMA busy_timeout = {int((2.0 if wait_s is None else wait_s) * 1000)}")
        try:
            busy, log, done = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        except sqlite3.Error as exc:  # inside a write transaction: the writing connection's own error
            raise _unavailable(self.path, exc) from exc
        finally:
            if mode != "PASSIVE":
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
        return {"mode": mode, "busy": bool(busy), "wal_pages": log, "checkpointed_pages": done}

    def maintain(self, *, wal_limit_bytes: int = 16 << 20) -> dict:
        """Periodic upkeep for the supervisor: keeps the WAL bounded.

        SQLite's automatic checkpoints copy pages back but cannot restart the
        WAL while readers overlap constantly, so under steady load the file
        could keep growing. This runs a PASSIVE checkpoint and, when the WAL
        file is over `wal_limit_bytes`, a TRUNCATE checkpoint (bounded wait)
        that resets it to zero bytes. Also refreshes planner statistics.
        """
        result = self.checkpoint("PASSIVE")
        wal = self.path + "-wal"
        size = os.path.getsize(wal) if os.path.exists(wal) else 0
        if size > wal_limit_bytes:
            result = self.checkpoint("TRUNCATE", wait_s=1.0)
        try:
            self._conn().execute("PRAGMA optimize")
        except (StoreUnavailable, sqlite3.Error):
            pass  # statistics are an optimisation; a busy database skips them
        result["wal_bytes_before"] = size
        result["wal_bytes"] = os.path.getsize(wal) if os.path.exists(wal) else 0
        return result

    def integrity_check(self, *, quick: bool = False) -> str:
        """SQLite's `PRAGMA integrity_check` ("ok" or what is wrong), or with
        `quick` its cheaper `quick_check` (page structure, not index
        contents), which is what the supervisor runs at start and on a
        schedule. A database too damaged for the check to finish reports
        that as what is wrong; StoreUnavailable when it could not run."""
        if quick:
            found = diagnosis.quick_check(self.path, timeout_s=self.busy_timeout_s)
            if found is None:
                raise StoreUnavailable(f"the integrity check of {self.path} could not run (busy, or the file "
                                       "cannot be opened); try again")
            return found
        try:
            rows = self._conn().execute("PRAGMA integrity_check").fetchall()
        except StoreDamaged:
            return diagnosis.quick_check(self.path, timeout_s=self.busy_timeout_s) or "database disk image is malformed"
        return "; ".join(r[0] for r in rows)

    # -- backups ---------------------------------------------------------
    def check_backup(self, path: str | os.PathLike) -> dict:
        """Check a backup copy (a database file no Store has open) without
        creating or changing anything: {"integrity", "schema_version",
        "tasks" (counts by status), "db_bytes", "problem"}. `problem` is None
        when this store can restore it, else why not (missing, damaged, or a
        schema newer than this Fleet's)."""
        p = Path(path).resolve()
        if not p.is_file():
            integrity = f"missing: {p} does not exist"
            return {"integrity": integrity, "schema_version": None, "tasks": None, "db_bytes": None,
                    "problem": integrity}
        size = p.stat().st_size
        try:
            # immutable=1: nobody writes this copy; read it without -wal/-shm files.
            conn = sqlite3.connect(p.as_uri() + "?mode=ro&immutable=1", uri=True)
            try:
                rows = conn.execute("PRAGMA integrity_check").fetchall()
                integrity = "; ".join(str(r[0]) for r in rows)
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                counts = {s: n for s, n in conn.execute("SELECT status, COUNT(*) FROM tasks GROUP BY status")}
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            integrity = f"unreadable: {exc}"
            return {"integrity": integrity, "schema_version": None, "tasks": None, "db_bytes": size,
                    "problem": f"is damaged ({integrity})"}
        problem = None
        if integrity != "ok":
            problem = f"is damaged ({integrity})"
        elif version > schema.SCHEMA_VERSION:
            problem = (f"has schema version {version}, newer than this Fleet ({schema.SCHEMA_VERSION}); "
                       "restore it with the Fleet that made it, or upgrade first")
        return {"integrity": integrity, "schema_version": version, "tasks": counts, "db_bytes": size,
                "problem": problem}

    def restore_from(self, backup_file: str | os.PathLike, *, keep_replaced_in: str | os.PathLike | None = None) -> dict:
        """Replace this store's database with the backup copy `backup_file`
        (a file `backup_to` wrote), then bring its schema up to date.

        The backup is first copied beside the database and checked there
        (damaged, or from a newer Fleet: refused); only then is the live
        database, with its -wal and -shm files, moved aside (into
        `keep_replaced_in` when given, so the restore can be undone; else
        deleted) and the copy renamed into place. Any failure puts the live
        files back: the database is as it was. This store's connections are
        closed and reopen on next use; other processes must not have the
        database open (the caller stops them).

        Returns {"restored_from", "db", "integrity", "schema_version",
        "replaced_saved_in"}. Raises InvalidInput (missing, damaged or newer
        backup) or StoreUnavailable (a copy or rename failed), having changed
        nothing."""
        src = Path(backup_file).resolve()
        live = Path(self.path)
        if not src.is_file():
            raise InvalidInput(f"there is no backup file {src}; nothing was changed")
        staged = live.with_name(f".{live.name}.restoring")
        try:
            shutil.copyfile(src, staged)
        except OSError as exc:
            staged.unlink(missing_ok=True)
            raise StoreUnavailable(f"could not copy {src} beside {live} ({exc}); nothing was changed. "
                                   "Free space (or fix permissions) there and retry") from None
        check = self.check_backup(staged)
        if check["problem"] is not None:
            staged.unlink(missing_ok=True)
            raise InvalidInput(f"the backup {src} {check['problem']}; nothing was changed")

        keep = Path(keep_replaced_in) if keep_replaced_in is not None else None
        aside = keep if keep is not None else live.with_name(f".{live.name}.replaced")
        sidecars = [Path(str(live) + suffix) for suffix in ("-wal", "-shm")]
        moved: list[tuple[Path, Path]] = []
        placed = False
        self._close_connections()
        try:
            aside.mkdir(parents=True, exist_ok=True)
            for here in (live, *sidecars):  # the live database moves with its WAL and shared memory, as one set
                if here.exists():
                    there = aside / here.name
                    _move(here, there)
                    moved.append((here, there))
            os.replace(staged, live)
            placed = True
            self._migrate()  # a backup from an older Fleet gets this Fleet's schema
        except (OSError, sqlite3.Error, StoreError) as exc:
            self._close_connections()
            try:
                if placed:  # the backup's copy and any -wal/-shm it grew; the live set is aside
                    for here in (live, *sidecars):
                        here.unlink(missing_ok=True)
                for here, there in reversed(moved):
                    _move(there, here)
            except OSError as undo:
                raise StoreUnavailable(
                    f"could not put the backup {src} in place of {live} ({exc}), nor move the database back "
                    f"({undo}): its files are in {aside}; move them back beside {live} by hand") from None
            staged.unlink(missing_ok=True)
            if keep is None:
                shutil.rmtree(aside, ignore_errors=True)
            raise StoreUnavailable(f"could not put the backup {src} in place of {live} ({exc}); the database "
                                   "was put back as it was") from None
        if keep is None:
            shutil.rmtree(aside, ignore_errors=True)
        return {"restored_from": str(src), "db": str(live), "integrity": check["integrity"],
                "schema_version": check["schema_version"], "replaced_saved_in": None if keep is None else str(keep)}

    def backup_to(self, dest: str | os.PathLike) -> None:
        """An online-consistent copy of the database (SQLite backup API)."""
        try:
            target = sqlite3.connect(os.fspath(dest))
            try:
                self._conn().backup(target)
            finally:
                target.close()
        except sqlite3.Error as exc:
            raise _unavailable(self.path, exc, "backup", target=os.path.abspath(os.fspath(dest))) from exc

    def stats(self) -> dict:
        conn = self._conn()
        sync_value = conn.execute("PRAGMA synchronous").fetchone()[0]
        sync_name = {0: "off", 1: "normal", 2: "full", 3: "extra"}.get(sync_value, str(sync_value))
        wal = self.path + "-wal"
        return {
            "backend": self.backend,
            "path": self.path,
            "schema_version": conn.execute("PRAGMA user_version").fetchone()[0],
            "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
            "durability": self.synchronous,
            "synchronous_in_effect": sync_name,
            "durability_meaning": (
                "survives process crashes and power loss"
                if sync_name in ("full", "extra")
                else "survives any process crash; the last commits may be lost on power loss"
            ),
            "page_size": conn.execute("PRAGMA page_size").fetchone()[0],
            "wal_autocheckpoint_pages": self.wal_autocheckpoint_pages,
            "db_bytes": os.path.getsize(self.path) if os.path.exists(self.path) else 0,
            "wal_bytes": os.path.getsize(wal) if os.path.exists(wal) else 0,
            "sqlite_version": sqlite3.sqlite_version,
        }

    def _close_connections(self) -> None:
        with self._conns_lock:
            conns, self._all_conns = self._all_conns, []
        for conn in conns:
            try:
                conn.close()
            except sqlite3.ProgrammingError:
                pass  # opened by another thread; it dies with that thread
        self._local = threading.local()

    def close(self) -> None:
        self._close_connections()
        self._wake.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _move(src: Path, dst: Path) -> None:
    """A rename (same filesystem), else a copy-and-delete (the folder the
    replaced files go to may live on another disk)."""
    try:
        os.replace(src, dst)
    except OSError:
        shutil.move(str(src), str(dst))


def begin_immediate(conn: sqlite3.Connection, timeout_s: float) -> None:
    """Take the write lock on a connection whose busy timeout is zero, waiting
    at most `timeout_s`; SQLite's error is raised when it is not "busy" or the
    wait ran out.

    On contention we retry after jittered sleeps that start at about half a
    millisecond and grow to 2 ms. Not shorter: each time the lock passes to
    another process, that process finds the WAL changed, drops its page cache
    and reads every page it touches again, so a lock bounced between
    processes every few tens of microseconds does less work than one held
    for a handful of transactions in a row (in scripts/bench_queue.py, 2 to
    4 draining processes get through about 1.5 times as many tasks, at full
    durability nearly twice as many, as with sleeps from 50 us). Not
    SQLite's own handler either, whose sleeps grow to 100 ms.
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.0005
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(delay * random.uniform(0.5, 1.5))
        delay = min(delay * 1.5, 0.002)


def _is_busy(exc: sqlite3.Error) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


class _Connection(sqlite3.Connection):
    """A connection whose statements refuse a value the database cannot hold
    (a lone surrogate, an integer past 64 bits, a type SQLite has no storage
    for) with InvalidInput, whichever API call it came in through, instead of
    UnicodeEncodeError, OverflowError or sqlite3's binding error. Nothing is
    written: the statement never ran.

    A reading connection (the one `_conn()` hands out, `unavailable_path` set)
    also turns SQLite's own errors, from running a statement or from fetching
    its rows (a cursor steps the statement as it fetches), into
    StoreUnavailable. The writing connection leaves them as they are: `_write`
    rolls back and translates them when the transaction ends, so code inside
    a write transaction sees exactly the errors it saw before."""

    unavailable_path: str | None = None  # set on reading connections: the store's path, for messages

    def execute(self, sql, parameters=(), /):
        try:
            if self.unavailable_path is None:
                return super().execute(sql, parameters)
            return _cursor(self, _ReadCursor).execute(sql, parameters)
        except (UnicodeEncodeError, OverflowError, sqlite3.InterfaceError, sqlite3.ProgrammingError) as exc:
            raise _refused_value(exc) from None
        except sqlite3.DatabaseError as exc:
            if self.unavailable_path is None:
                raise
            raise _unavailable(self.unavailable_path, exc, "read") from exc

    def executemany(self, sql, seq_of_parameters, /):
        try:
            if self.unavailable_path is None:
                return super().executemany(sql, seq_of_parameters)
            return _cursor(self, _ReadCursor).executemany(sql, seq_of_parameters)
        except (UnicodeEncodeError, OverflowError, sqlite3.InterfaceError, sqlite3.ProgrammingError) as exc:
            raise _refused_value(exc) from None
        except sqlite3.DatabaseError as exc:
            if self.unavailable_path is None:
                raise
            raise _unavailable(self.unavailable_path, exc, "read") from exc


_ITER_BATCH = 64
# The base class's methods, called directly: cheaper than super() on the read
# path every claim takes.
_cursor, _fetchone, _fetchmany, _fetchall, _next = (
    sqlite3.Connection.cursor, sqlite3.Cursor.fetchone, sqlite3.Cursor.fetchmany, sqlite3.Cursor.fetchall,
    sqlite3.Cursor.__next__)


class _ReadCursor(sqlite3.Cursor):
    """The cursor of a reading connection: fetching (which steps the
    statement, so it meets a damaged page or an I/O error as running it does)
    raises StoreUnavailable instead of sqlite3's DatabaseError. Misuse
    (ProgrammingError) is a bug here and is raised as it is."""

    __slots__ = ()

    def _translated(self, exc: sqlite3.DatabaseError) -> Exception:
        if isinstance(exc, sqlite3.ProgrammingError):
            return exc
        return _unavailable(self.connection.unavailable_path or "?", exc, "read")

    def fetchone(self):
        try:
            return _fetchone(self)
        except sqlite3.DatabaseError as exc:
            raise self._translated(exc) from exc

    def fetchmany(self, size=None):
        try:
            return _fetchmany(self, self.arraysize if size is None else size)
        except sqlite3.DatabaseError as exc:
            raise self._translated(exc) from exc

    def fetchall(self):
        try:
            return _fetchall(self)
        except sqlite3.DatabaseError as exc:
            raise self._translated(exc) from exc

    def __next__(self):
        try:
            return _next(self)
        except sqlite3.DatabaseError as exc:
            raise self._translated(exc) from exc

    def __iter__(self):
        # A `for` loop takes rows a batch at a time: one guarded call per
        # batch instead of one per row keeps a long scan as cheap as
        # sqlite3's own iteration.
        while True:
            try:
                rows = _fetchmany(self, _ITER_BATCH)
            except sqlite3.DatabaseError as exc:
                raise self._translated(exc) from exc
            if not rows:
                return
            yield from rows


def _refused_value(exc: Exception) -> Exception:
    if isinstance(exc, UnicodeEncodeError):
        return InvalidInput("a text value is not valid Unicode (a lone surrogate); decode bytes properly "
                            "before passing them")
    if isinstance(exc, OverflowError):
        return InvalidInput(f"a number is too large for the store ({exc}); ids and counts go up to 2**63 - 1")
    if "binding parameter" in str(exc):
        return InvalidInput(f"a value of a type the store cannot hold was passed ({exc})")
    return exc  # any other misuse is a bug here, raised as it is


def _unavailable(path: str, exc: sqlite3.Error, doing: str = "write", *,
                 target: str | None = None) -> StoreUnavailable:
    """SQLite's error as the store's, with its real cause (worked out here,
    on the error path only): locked by which process, disk full where (free
    bytes), permission denied on which path for which user, or damaged, said
    only when quick_check finds damage (then StoreDamaged)."""
    kind, message = diagnosis.explain(path, exc, doing, target=target)
    return (StoreDamaged if kind == "damaged" else StoreUnavailable)(message)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements; a trigger body (BEGIN ... END;)
    stays one statement (SQLite's own `complete_statement` decides)."""
    lines = [ln for ln in script.splitlines() if not ln.strip().startswith("--")]
    out, current = [], ""
    for piece in "\n".join(lines).split(";"):
        current += piece + ";"
        if sqlite3.complete_statement(current):
            if current.strip(" \n;"):
                out.append(current.strip())
            current = ""
    if current.strip(" \n;"):
        out.append(current.strip())
    return out
