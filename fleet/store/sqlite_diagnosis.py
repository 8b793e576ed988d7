"""Why the SQLite store could not do something, worked out on the error path
only: a full disk (where, and its free bytes), a permission (which path, which
user), a lock (which process holds it), or damage (only when SQLite's own
quick_check says so). Also the cheap, write-free look at whether writes can
succeed that health reports use. Nothing here runs while the store works.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

# Under this many free bytes on the filesystem holding the database, writes
# fail or are about to: a commit appends every page it touched to the WAL,
# and once the room a checkpoint left in the WAL (and in its -shm index) is
# used up, they grow into free space that is not there.
DISK_FULL_BELOW = 1 << 20

# SQLite's WAL write lock is a POSIX lock on byte 120 of the -shm file
# (WALINDEX_LOCK_OFFSET + WAL_WRITE_LOCK); /proc/locks names its holder.
_WAL_WRITE_LOCK_BYTE = 120

_DAMAGE_NAMES = ("SQLITE_CORRUPT", "SQLITE_NOTADB")
_PERMISSION_NAMES = ("SQLITE_READONLY", "SQLITE_PERM", "SQLITE_CANTOPEN", "SQLITE_AUTH")


def explain(path: str, exc: sqlite3.Error, doing: str = "write", *,
            target: str | None = None, restore: str | None = None) -> tuple[str, str]:
    """(kind, message) for SQLite's error `exc` met while the store at `path`
    was doing `doing` ("open", "read", "write", "backup"). `kind` is "busy",
    "full", "permission", "damaged" (proven by quick_check), "io" or "other".
    `target` is a file being written elsewhere (a backup copy), whose disk
    and folder are looked at first. `restore` replaces the generic restore
    advice for a damaged database (it can name the newest backup)."""
    text = str(exc)
    name = getattr(exc, "sqlite_errorname", "") or ""
    head = (f"{path} is not a usable Fleet database" if doing == "open"
            else f"the store at {path} could not complete the {doing}")
    restore = restore or ("restore a backup (`lead_client.py backup --list`, then `lead_client.py restore ID`)")

    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text or "busy" in text:
        return "busy", (f"the store at {path} could not complete the {doing}: the database was locked "
                        f"{lock_holder_phrase(path)} for longer than the busy timeout ({text}); retry, or if "
                        "that process is stuck, stop it (the database itself is untouched)")

    folders = [os.path.dirname(target)] if target else []
    folders.append(os.path.dirname(path) or ".")
    if name.startswith(("SQLITE_FULL", "SQLITE_IOERR")) or "full" in text or "I/O" in text:
        for folder in folders:
            full = disk_full(folder)
            if full:
                kept = f": nothing of this {doing} was kept" if doing in ("write", "backup") else ""
                return "full", (f"the store at {path} could not complete the {doing}: {full} ({text}); free space "
                                f"there and retry. The database itself is untouched{kept}")
        if name.startswith("SQLITE_FULL") or "full" in text:
            free = ", ".join(f"{space[0] if (space := free_space(f)) else '?'} bytes free at {f}" for f in folders)
            return "full", (f"the store at {path} could not complete the {doing}: SQLite found the disk full "
                            f"({text}), and there are {free} now: a quota, a full temporary folder, or space "
                            "used up and freed again; retry (the database itself is untouched)")

    if target and not os.path.isdir(os.path.dirname(target)):
        return "other", (f"the store at {path} could not complete the {doing}: the folder "
                         f"{os.path.dirname(target)} does not exist ({text})")
    if name.startswith(_PERMISSION_NAMES) or "readonly" in text or "unable to open" in text:
        problem = None
        if target:
            problem = permission_problem(target, folder_only=True)
        problem = problem or permission_problem(path)
        if problem:
            return "permission", (f"the store at {path} could not complete the {doing}: {problem} "
                                  "(the database itself is untouched)")
        if doing == "open":
            return "permission", (f"cannot open {path} ({text}): check that this user ({user_name()}) may read "
                                  "and write it and its folder (the database itself is untouched)")

    damage_hint = name.startswith(_DAMAGE_NAMES) or "malformed" in text or "not a database" in text
    if damage_hint or name.startswith("SQLITE_IOERR") or "I/O" in text:
        found = quick_check(path)
        if found is not None and found != "ok":
            return "damaged", (f"{head}: the database is damaged ({text}; quick_check: {_short(found)}). "
                               f"{_cap(restore)}; only if there is no backup, move the file away to start "
                               "with an empty store")
        checked = ("quick_check finds the database intact" if found == "ok"
                   else "quick_check could not run to say whether the database is damaged")
        if damage_hint:
            return "io", (f"the store at {path} could not complete the {doing}: SQLite reported {text!r}, but "
                          f"{checked}; retry, and run `lead_client.py preflight` if it happens again "
                          "(the database itself was left as it is)")
        return "io", (f"the store at {path} could not complete the {doing}: an I/O error ({name or text}), and "
                      f"{checked}: the disk or filesystem failed the operation; check the kernel log (dmesg) "
                      "and the disk, then retry (the database itself was left as it is)")
    return "other", (f"the store at {path} could not complete the {doing} ({text}): check the disk; "
                     "`lead_client.py preflight` checks the store and `lead_client.py restore ID` brings back "
                     "a backup")


# -- the disk ---------------------------------------------------------------
def free_space(folder: str) -> tuple[int, int] | None:
    """(free bytes this user may write, total bytes) of the filesystem
    holding `folder`, or None when it cannot be read. Root may also use the
    blocks a filesystem reserves for it, so root's free space counts them."""
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):
        return None
    avail = st.f_bfree if hasattr(os, "geteuid") and os.geteuid() == 0 else st.f_bavail
    return avail * st.f_frsize, st.f_blocks * st.f_frsize


def disk_full(folder: str) -> str | None:
    """"disk full at FOLDER (N bytes free of SIZE)" when the filesystem has
    less than DISK_FULL_BELOW free, else None."""
    space = free_space(folder)
    if space is None or space[0] >= DISK_FULL_BELOW:
        return None
    free, total = space
    return f"disk full at {folder} ({free} bytes free of {_size(total)})"


def read_only_fs(folder: str) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def write_problem(path: str) -> tuple[str | None, int | None, int | None]:
    """(why writes to the database at `path` fail, or None; free bytes;
    total bytes) from what the filesystem says, without writing anything:
    a read-only mount, a full disk, or files this user may not write."""
    folder = os.path.dirname(path) or "."
    space = free_space(folder)
    free, total = space if space is not None else (None, None)
    if read_only_fs(folder):
        return f"the filesystem holding {folder} is mounted read-only", free, total
    full = disk_full(folder)
    if full:
        return full, free, total
    return permission_problem(path), free, total


# -- permissions ------------------------------------------------------------
def user_name() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError, AttributeError):
        return os.environ.get("USER") or os.environ.get("USERNAME") or "this user"


def _owner_mode(p: str) -> str:
    try:
        st = os.stat(p)
    except OSError:
        return ""
    try:
        import pwd

        owner = pwd.getpwuid(st.st_uid).pw_name
    except (ImportError, KeyError):
        owner = str(st.st_uid)
    return f" (owner {owner}, mode {st.st_mode & 0o7777:04o})"


def permission_problem(path: str, *, folder_only: bool = False) -> str | None:
    """Which of the database, its -wal and -shm files and its folder this
    user may not write, as a phrase; None when the permissions allow it
    (root's always do, except on a read-only mount)."""
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        return f"the folder {folder} does not exist; fix [paths] db in fleet.toml"
    if read_only_fs(folder):
        return f"the filesystem holding {folder} is mounted read-only"
    if not os.access(folder, os.W_OK | os.X_OK):
        return (f"permission denied: the folder {folder}{_owner_mode(folder)} is not writable by user "
                f"{user_name()}, and SQLite needs to create the -wal and -shm files beside the database "
                "there; fix the folder's permissions")
    if folder_only:
        return None
    for p in (path, path + "-wal", path + "-shm"):
        if os.path.exists(p) and not os.access(p, os.R_OK | os.W_OK):
            return (f"permission denied: {p}{_owner_mode(p)} is not readable and writable by user "
                    f"{user_name()}; run Fleet as its owner, or fix its owner or mode")
    return None


# -- locks ------------------------------------------------------------------
def lock_holders(path: str) -> tuple[list[int], bool]:
    """(pids, exact): the process holding SQLite's WAL write lock on the
    database at `path` (exact=True, from /proc/locks), else the processes
    that have it open (exact=False, from /proc/*/fd). Linux only; empty
    elsewhere or when nothing could be read."""
    try:
        st = os.stat(path + "-shm")
        with open("/proc/locks", encoding="ascii", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        lines = []
        st = None
    if st is not None:
        dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        holders = []
        for line in lines:
            parts = line.split()
            if len(parts) < 8 or parts[1] == "->" or parts[1] != "POSIX" or parts[3] != "WRITE":
                continue
            if parts[5] != dev:
                continue
            start, end = parts[6], parts[7]
            try:
                if int(start) <= _WAL_WRITE_LOCK_BYTE and (end == "EOF" or int(end) >= _WAL_WRITE_LOCK_BYTE):
                    holders.append(int(parts[4]))
            except ValueError:
                continue
        if holders:
            return sorted(set(holders)), True
    return _processes_with_open(path), False


def _processes_with_open(path: str) -> list[int]:
    names = {os.path.realpath(path), os.path.realpath(path) + "-wal"}
    found = []
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return []
    for pid in pids:
        if pid == os.getpid():
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue  # gone, or another user's
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in names:
                    found.append(pid)
                    break
            except OSError:
                continue
    return found


def describe_pid(pid: int) -> str:
    if pid == os.getpid():
        return f"pid {pid} (this process, through another connection)"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
    except OSError:
        return f"pid {pid}"
    shown = " ".join([os.path.basename(argv[0])] + argv[1:4]) if argv else ""
    return f"pid {pid} ({_short(shown, 80)})" if shown else f"pid {pid}"


def lock_holder_phrase(path: str) -> str:
    pids, exact = lock_holders(path)
    if exact:
        return "by " + ", ".join(describe_pid(p) for p in pids) + ", which holds its write lock,"
    if pids:
        return ("by another process (one of those with it open: "
                + ", ".join(describe_pid(p) for p in pids[:5]) + ")")
    return "by another process"


# -- damage -----------------------------------------------------------------
def quick_check(path: str, timeout_s: float = 5.0) -> str | None:
    """SQLite's `PRAGMA quick_check` on its own read-only connection: "ok",
    what it found wrong (a file that is not a database at all counts), or
    None when it could not run (busy, cannot open, an I/O error): then
    nothing is proven either way."""
    try:
        conn = sqlite3.connect(Path(path).as_uri() + "?mode=ro", uri=True, timeout=timeout_s)
        try:
            rows = conn.execute("PRAGMA quick_check").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        name = getattr(exc, "sqlite_errorname", "") or ""
        if name.startswith(_DAMAGE_NAMES) or "malformed" in str(exc) or "not a database" in str(exc):
            return str(exc)
        return None
    return "; ".join(str(r[0]) for r in rows)


# -- wording ----------------------------------------------------------------
def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _short(text: str, width: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]
