"""Backups of a fleet home: the store's own online-consistent copy plus
`knowledge/`, the config and the key registry (no secret values), in
`<backups>/<UTC timestamp>/`, checked by the
store and pruned to the last N; listing and restore. This module orchestrates
(folders, locks, knowledge, pruning, the supervisor check); the database files
are the store's alone (`backup_to`, `check_backup`, `restore_from`).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from fleet import filemodes
from fleet.key_registry import registry_path

MANIFEST = "manifest.json"
DB_NAME = "fleet.db"
_ID_FORMAT = "%Y%m%dT%H%M%SZ"


class BackupError(Exception):
    """A backup or restore could not be done; the message says what to do."""


def _root(cfg: dict) -> Path:
    return Path(cfg["paths"]["backups"])


def _keep(cfg: dict, keep: int | None) -> int:
    if keep is None:
        keep = cfg["backup"]["keep"]
    if not isinstance(keep, int) or isinstance(keep, bool) or keep < 1:
        raise BackupError(f"keep must be a whole number >= 1, got {keep!r} ([backup] keep)")
    return keep


def _lock(cfg: dict):
    from filelock import FileLock

    root = _root(cfg)
    filemodes.make_dir(root, filemodes.shared_read(cfg))  # copies of the database: private like it
    return FileLock(str(root / ".backup.lock"), timeout=300)


def _new_id(root: Path, ts: float) -> str:
    """`<UTC timestamp>`, or `<timestamp>-N` after the highest N already used in
    that second, so a new id always sorts after older ones (even pruned ones)."""
    base = time.strftime(_ID_FORMAT, time.gmtime(ts))
    used = 0
    if root.is_dir():
        for p in root.iterdir():
            name = p.name.removeprefix(".partial-")
            if name == base:
                used = max(used, 1)
            elif name.startswith(base + "-") and name[len(base) + 1:].isdigit():
                used = max(used, int(name[len(base) + 1:]))
    if root.is_dir() and (root / ".last-id").is_file():
        last = (root / ".last-id").read_text().strip()
        if last == base:
            used = max(used, 1)
        elif last.startswith(base + "-") and last[len(base) + 1:].isdigit():
            used = max(used, int(last[len(base) + 1:]))
    return base if used == 0 else f"{base}-{used + 1}"


def _copy_tree_count(src: Path, dst: Path) -> tuple[int, list[str]]:
    """Copy knowledge/ (skills may be writing to it: a file that vanishes
    mid-copy is skipped and named, not fatal; one that is still there but
    could not be copied, on a full disk say, fails the backup). Returns
    (files, skipped)."""
    if not src.is_dir():
        return 0, []
    skipped: list[str] = []
    try:
        shutil.copytree(src, dst, symlinks=True)
    except shutil.Error as exc:
        failed = [e for e in exc.args[0] if os.path.lexists(e[0])]
        if failed:
            src_file, _, why = failed[0]
            reason = re.match(r"\[Errno (\d+)\] ([^:]+)", str(why))
            code, text = (int(reason[1]), reason[2]) if reason else (None, str(why))
            raise _write_failed(f"copying {src_file}: {text}", dst.parent.parent, OSError(code, text)) from None
        skipped = [str(e[0]) for e in exc.args[0]]
    return sum(len(files) for _, _, files in os.walk(dst)), skipped


def _write_failed(what: str, where: Path, exc: OSError | str) -> BackupError:
    """A backup that could not be written, as one line with its cause: a
    full disk names the folder and its free bytes."""
    code = exc.errno if isinstance(exc, OSError) else None
    text = str(exc)
    full = code in (errno.ENOSPC, errno.EDQUOT) or "No space left" in text or "quota" in text.lower()
    if full:
        folder = where
        while not folder.is_dir() and folder != folder.parent:  # a partial folder is gone by now
            folder = folder.parent
        try:
            free = f"{shutil.disk_usage(folder).free} bytes free"
        except OSError:
            free = "free space unknown"
        return BackupError(f"the backup was not written: disk full at {folder} ({free}) ({what}); nothing was "
                           "kept. Free space there, or point [paths] backups at another disk, and retry")
    return BackupError(f"the backup was not written ({what}); nothing was kept. Check that folder's "
                       "permissions and free space, and retry")


def create_backup(cfg: dict, *, keep: int | None = None) -> dict:
    """Snapshot the database (online; workers may keep running), knowledge/
    and fleet.toml into a new timestamped folder, verify it, prune old ones.

    Returns {"id", "path", "created_at", "integrity", "schema_version", "tasks",
    "db_bytes", "knowledge_files", "config", "pruned"}. Raises BackupError when
    the copy fails verification or cannot be written (the partial folder
    is removed)."""
    keep = _keep(cfg, keep)
    root = _root(cfg)
    try:
        return _create_backup(cfg, keep, root)
    except OSError as exc:  # a full disk, a permission: one line that says which, not a traceback
        name = getattr(exc, "filename2", None) or getattr(exc, "filename", None) or root
        raise _write_failed(f"writing {name}: {exc.strerror or exc}", Path(name), exc) from None


def _create_backup(cfg: dict, keep: int, root: Path) -> dict:
    from fleet.db import open_store

    with _lock(cfg):
        ts = time.time()
        backup_id = _new_id(root, ts)
        partial = root / f".partial-{backup_id}"
        partial.mkdir(parents=True, mode=filemodes.dir_mode(filemodes.shared_read(cfg)))
        try:
            store = open_store(cfg)
            try:
                store.backup_to(partial / DB_NAME)
                if not filemodes.shared_read(cfg):
                    filemodes.tighten(partial / DB_NAME, filemodes.PRIVATE_FILE)
                check = store.check_backup(partial / DB_NAME)
            finally:
                store.close()
            if check["integrity"] != "ok":
                raise BackupError(
                    f"the backup copy failed integrity_check ({check['integrity']}); nothing was kept. "
                    "Check the source with `lead_client.py preflight` and the disk for errors"
                )
            knowledge_files, skipped = _copy_tree_count(Path(cfg["paths"]["knowledge"]), partial / "knowledge")
            config_file = Path(cfg["config_file"])
            has_config = config_file.is_file()
            if has_config:
                shutil.copy2(config_file, partial / "fleet.toml")
            registry = registry_path(cfg)  # key metadata, never a value: it belongs with the config
            has_registry = registry.is_file()
            if has_registry:
                shutil.copy2(registry, partial / registry.name)
            info: dict[str, Any] = {
                "id": backup_id,
                "created_at": ts,
                "host": socket.gethostname(),
                "source_db": cfg["paths"]["db"],
                "integrity": check["integrity"],
                "schema_version": check["schema_version"],
                "tasks": check["tasks"],
                "db_bytes": check["db_bytes"],
                "knowledge_files": knowledge_files,
                "knowledge_skipped": skipped,
                "config": has_config,
                "keys_registry": has_registry,
            }
            (partial / MANIFEST).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
            final = root / backup_id
            os.replace(partial, final)
            try:  # only keeps ids rising past pruned backups; the backup is complete without it
                (root / ".last-id").write_text(backup_id + "\n")
            except OSError:
                pass
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        pruned = _prune(root, keep, spare=backup_id)
    info["path"] = str(final)
    info["pruned"] = pruned
    return info


def _complete_ids(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return sorted((p.name for p in root.iterdir()
                   if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).is_file()),
                  key=_id_order)


def _id_order(backup_id: str) -> tuple:
    base, _, n = backup_id.partition("-")
    return (base, int(n) if n.isdigit() else 0, backup_id)


def _prune(root: Path, keep: int, *, spare: str) -> list[str]:
    """Remove all but the newest `keep` backups, never `spare` (the one just
    written: an older one dated in the future by a clock that was ahead
    must not push it out)."""
    ids = _complete_ids(root)
    doomed = [i for i in (ids[:-keep] if len(ids) > keep else []) if i != spare]
    for backup_id in doomed:
        shutil.rmtree(root / backup_id, ignore_errors=True)
    return doomed


def list_backups(cfg: dict) -> list[dict]:
    """Completed backups, newest first, each with its manifest and path."""
    root = _root(cfg)
    out = []
    for backup_id in reversed(_complete_ids(root)):
        try:
            info = json.loads((root / backup_id / MANIFEST).read_text())
        except (OSError, ValueError):
            info = {"id": backup_id, "integrity": "manifest unreadable"}
        info["id"] = backup_id
        info["path"] = str(root / backup_id)
        out.append(info)
    return out


def _move(src: Path, dst: Path) -> None:
    """A rename (same filesystem), else a copy-and-delete (the backups folder
    may live on another disk)."""
    try:
        os.replace(src, dst)
    except OSError:
        shutil.move(str(src), str(dst))


def _supervisor_pid(cfg: dict) -> int | None:
    from fleet.supervisor import running_supervisor_pid

    return running_supervisor_pid(cfg)


def restore_backup(cfg: dict, backup_id: str) -> dict:
    """Replace the database and knowledge/ with those of backup `backup_id`.

    Refuses while the supervisor runs, and a damaged backup or one from a
    newer Fleet before touching anything. knowledge/ is first copied beside
    its place and swapped in by renames; then the store replaces its own
    database (`restore_from`, all or nothing); when that fails the knowledge
    swap is undone, so a failure (a full disk) leaves the home as it was.
    The replaced files are kept in `<backups>/.replaced-<UTC timestamp>/` so a
    restore can itself be undone. The config is restored only when the fleet
    home has none."""
    from fleet.db import open_store

    known = _complete_ids(_root(cfg))
    if backup_id not in known:
        hint = f"; available: {', '.join(reversed(known[-5:]))}" if known else "; there are no backups yet"
        raise BackupError(f"no backup named {backup_id!r} in {_root(cfg)}{hint} (see `lead_client.py backup --list`)")
    pid = _supervisor_pid(cfg)
    if pid is not None:
        raise BackupError(
            f"the supervisor is running (pid {pid}); restoring under running workers would lose their writes. "
            f"Stop it first (`lead_client.py stop` drains and stops it; `systemctl --user stop "
            f"{cfg['service']['name']}` when it runs as a service), then run restore again"
        )
    src = _root(cfg) / backup_id
    store = open_store(cfg, migrate=False)  # the live database may be the damaged thing being replaced
    try:
        check = store.check_backup(src / DB_NAME)
        if check["integrity"] != "ok":
            raise BackupError(f"backup {backup_id} is damaged ({check['integrity']}); choose another one")
        if check["problem"] is not None:
            raise BackupError(f"backup {backup_id} {check['problem']}. Nothing was changed")
        with _lock(cfg):
            saved, config_restored = _swap_in(cfg, store, backup_id, src)
        integrity = store.integrity_check()
        counts = store.counts()
    finally:
        store.close()
    return {
        "id": backup_id,
        "restored_from": str(src),
        "db": cfg["paths"]["db"],
        "integrity": integrity,
        "tasks": counts,
        "knowledge_restored": True,  # always now: a backup without knowledge/ restores an empty one
        "config_restored": config_restored,
        "config_in_backup": str(src / "fleet.toml") if (src / "fleet.toml").is_file() else None,
        "replaced_saved_in": str(saved),
    }


def _swap_in(cfg: dict, store, backup_id: str, src: Path) -> tuple[Path, bool]:
    """The restore itself, under the backup lock: knowledge/ by copy then
    renames, the database by the store's `restore_from`, the config when the
    home has none. Returns (the folder keeping the replaced files, whether
    the config was restored)."""
    from fleet.db import StoreError

    knowledge = Path(cfg["paths"]["knowledge"])
    staged = knowledge.with_name(f".{knowledge.name}.restoring")
    try:  # 1. copy knowledge/ beside its final place; the live home is untouched
        knowledge.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(staged, ignore_errors=True)
        if (src / "knowledge").is_dir():
            shutil.copytree(src / "knowledge", staged, symlinks=True)
        else:  # the backup was taken before knowledge/ existed: restore that state
            staged.mkdir()
    except (OSError, shutil.Error) as exc:
        shutil.rmtree(staged, ignore_errors=True)
        reason = exc.args[0][0][2] if isinstance(exc, shutil.Error) and exc.args[0] else exc
        raise BackupError(f"could not copy backup {backup_id} into the fleet home ({reason}); nothing was "
                          "changed. Free space (or fix permissions) there and run restore again") from None
    stamp = time.strftime(_ID_FORMAT, time.gmtime())
    saved, n = _root(cfg) / f".replaced-{stamp}", 1
    while saved.exists():
        n += 1
        saved = _root(cfg) / f".replaced-{stamp}-{n}"
    saved.mkdir(parents=True)
    # 2. swap knowledge/ by renames only (no copying, so no space needed)
    replaced = saved / "knowledge"
    moved = False
    try:
        if knowledge.exists():
            _move(knowledge, replaced)
            moved = True
        os.replace(staged, knowledge)
    except OSError as exc:
        if moved:
            _move(replaced, knowledge)
        shutil.rmtree(staged, ignore_errors=True)
        raise BackupError(f"could not swap backup {backup_id} into place ({exc}); the fleet home was put "
                          "back as it was") from None
    # 3. the store replaces its own database (all or nothing); undo step 2 when it cannot
    try:
        store.restore_from(src / DB_NAME, keep_replaced_in=saved)
    except StoreError as exc:
        shutil.rmtree(knowledge, ignore_errors=True)
        if moved:
            _move(replaced, knowledge)
        raise BackupError(f"could not restore backup {backup_id}: {exc}. The fleet home was put back as it "
                          "was; run restore again once that is fixed") from None
    config_file = Path(cfg["config_file"])
    config_restored = False
    if (src / "fleet.toml").is_file() and not config_file.exists():
        shutil.copy2(src / "fleet.toml", config_file)
        config_restored = True
    registry = registry_path(cfg)
    if (src / registry.name).is_file() and not registry.exists():  # as fleet.toml: never over the live one
        shutil.copy2(src / registry.name, registry)
    return saved, config_restored
