"""Backups: online copy verified with integrity_check, knowledge/ and config
included, pruning to the last N, backup-then-restore gives an identical task
table, bad ids change nothing, and scripts/backup.sh for cron."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from fleet import backup
from tests.fakes.cli_runner import REPO, cli

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def cfg(fleet_home):
    from fleet.config import load_config

    return load_config(fleet_home)


def _store(cfg):
    from fleet.db import open_store

    return open_store(cfg)


def _digest(store) -> dict:
    """Row count and a content digest of every task, read through the store's contract."""
    h = hashlib.sha256()
    ids = store.matching_ids()
    for task_id in ids:
        h.update(repr(sorted(store.get(task_id).to_dict().items())).encode())
    return {"rows": len(ids), "sha256": h.hexdigest()}


def _populate(cfg, n=50):
    s = _store(cfg)
    tasks = s.enqueue_many([{"skill": "noop", "payload": {"i": i, "text": "q'\"$\n"}} for i in range(n)])
    for _ in range(n // 3):
        t = s.claim("coder_1", ["noop"])
        s.complete(t.id, t.lease_token, {"ok": t.id})
    t = s.claim("coder_1", ["noop"])
    s.fail(t.id, t.lease_token, "boom", retryable=False)
    digest = _digest(s)
    s.close()
    k = Path(cfg["paths"]["knowledge"])
    (k / "reviews").mkdir(parents=True)
    (k / "reviews" / "a.md").write_text("review A")
    (k / "index.jsonl").write_text('{"x": 1}\n')
    return tasks, digest


def test_backup_contents_and_manifest(cfg):
    _populate(cfg)
    info = backup.create_backup(cfg)
    path = Path(info["path"])
    assert info["integrity"] == "ok" and info["id"] == path.name
    assert (path / "fleet.db").is_file() and (path / "fleet.toml").is_file()
    assert (path / "knowledge" / "reviews" / "a.md").read_text() == "review A"
    assert info["knowledge_files"] == 2 and info["tasks"]["PENDING"] == 50 - 50 // 3 - 1
    listed = backup.list_backups(cfg)
    assert [b["id"] for b in listed] == [info["id"]] and listed[0]["integrity"] == "ok"
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".partial")]


def test_backup_then_restore_gives_identical_task_table(cfg):
    _, digest = _populate(cfg)
    info = backup.create_backup(cfg)
    s = _store(cfg)
    s.enqueue("noop", {"after": "backup"})
    t = s.claim("coder_1", ["noop"])
    s.complete(t.id, t.lease_token, {})
    assert _digest(s) != digest
    s.close()
    (Path(cfg["paths"]["knowledge"]) / "reviews" / "a.md").write_text("changed")
    result = backup.restore_backup(cfg, info["id"])
    assert result["integrity"] == "ok"
    s = _store(cfg)
    assert _digest(s) == digest
    s.close()
    assert (Path(cfg["paths"]["knowledge"]) / "reviews" / "a.md").read_text() == "review A"
    saved = Path(result["replaced_saved_in"])
    assert (saved / "fleet.db").is_file() and (saved / "knowledge" / "reviews" / "a.md").read_text() == "changed"


def test_backup_while_writers_run_is_consistent(cfg):
    _populate(cfg, 10)
    stop = threading.Event()

    def writer():
        s = _store(cfg)
        i = 0
        while not stop.is_set():
            s.enqueue("noop", {"w": i})
            i += 1
        s.close()

    th = threading.Thread(target=writer)
    th.start()
    try:
        infos = [backup.create_backup(cfg) for _ in range(3)]
    finally:
        stop.set()
        th.join()
    assert all(i["integrity"] == "ok" for i in infos)
    s = _store(cfg)
    assert s.check_backup(Path(infos[-1]["path"]) / "fleet.db")["integrity"] == "ok"
    s.close()


def test_keep_prunes_oldest(cfg):
    _populate(cfg, 3)
    ids = [backup.create_backup(cfg, keep=3)["id"] for _ in range(5)]
    assert len(set(ids)) == 5
    assert [b["id"] for b in backup.list_backups(cfg)] == ids[::-1][:3]
    with pytest.raises(backup.BackupError):
        backup.create_backup(cfg, keep=0)


def test_restore_unknown_or_damaged_changes_nothing(cfg):
    _, digest = _populate(cfg, 5)
    with pytest.raises(backup.BackupError, match="no backup named"):
        backup.restore_backup(cfg, "../../etc")
    info = backup.create_backup(cfg)
    with open(Path(info["path"]) / "fleet.db", "r+b") as fh:
        fh.seek(0)
        fh.write(b"garbage" * 20)
    with pytest.raises(backup.BackupError, match="damaged"):
        backup.restore_backup(cfg, info["id"])
    s = _store(cfg)
    assert _digest(s) == digest
    s.close()


def _home_state(cfg):
    s = _store(cfg)
    digest = _digest(s)
    s.close()
    k = Path(cfg["paths"]["knowledge"])
    files = sorted((str(p.relative_to(k)), p.read_bytes()) for p in k.rglob("*") if p.is_file())
    return digest, files


def test_a_restore_that_fails_midway_leaves_the_home_as_it_was(cfg, monkeypatch):
    # Found in review: a full disk while copying knowledge/ left the backup's
    # database with truncated knowledge files, or (while copying the
    # database) no database at all, so the next command made an empty one.
    _populate(cfg, 5)
    info = backup.create_backup(cfg)
    s = _store(cfg)
    s.enqueue("noop", {"after": "backup"})
    s.close()
    before = _home_state(cfg)
    real_copytree = backup.shutil.copytree
    depth = []

    def disk_full(*args, **kw):  # copies (recursing through shutil's own name), then the disk is full
        depth.append(1)
        try:
            real_copytree(*args, **kw)
        finally:
            depth.pop()
        if not depth:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(backup.shutil, "copytree", disk_full)
    with pytest.raises(backup.BackupError, match="nothing was changed"):
        backup.restore_backup(cfg, info["id"])
    monkeypatch.undo()
    assert _home_state(cfg) == before
    home = Path(cfg["paths"]["db"]).parent
    assert not [p for p in home.iterdir() if p.name.endswith(".restoring")]


def test_a_backup_from_a_newer_fleet_is_refused_before_anything_changes(cfg):
    import sqlite3

    _populate(cfg, 5)
    info = backup.create_backup(cfg)
    db = sqlite3.connect(Path(info["path"]) / "fleet.db")
    db.execute("PRAGMA user_version = 999")
    db.close()
    before = _home_state(cfg)
    with pytest.raises(backup.BackupError, match="newer than this Fleet"):
        backup.restore_backup(cfg, info["id"])
    assert _home_state(cfg) == before


def _leave_wal_frames(cfg, n=3) -> None:
    """A process that enqueues and dies without closing: its commits are
    only in fleet.db-wal (with -shm), as after any crash."""
    code = ("import os, sys; sys.path.insert(0, sys.argv[1]); from fleet.db import Store; s = Store(sys.argv[2]); "
            f"[s.enqueue('noop', {{'wal': i}}) for i in range({n})]; os._exit(0)")
    subprocess.run([sys.executable, "-c", code, str(REPO), cfg["paths"]["db"]], check=True, timeout=60)
    assert os.path.getsize(cfg["paths"]["db"] + "-wal") > 0


def _wal_tasks(store) -> int:
    return sum(1 for i in store.matching_ids() if "wal" in store.get(i).payload)


def test_restore_replaces_a_damaged_database(cfg):
    _, digest = _populate(cfg, 5)
    info = backup.create_backup(cfg)
    with open(cfg["paths"]["db"], "r+b") as fh:
        fh.write(b"garbage" * 200)
    result = backup.restore_backup(cfg, info["id"])
    assert result["integrity"] == "ok"
    s = _store(cfg)
    assert _digest(s) == digest
    s.close()


def test_restore_moves_the_live_database_aside_with_its_wal(cfg):
    _populate(cfg, 5)
    info = backup.create_backup(cfg)
    _leave_wal_frames(cfg)
    result = backup.restore_backup(cfg, info["id"])
    s = _store(cfg)
    assert _wal_tasks(s) == 0
    s.close()
    saved = Path(result["replaced_saved_in"])
    assert (saved / "fleet.db-wal").is_file()
    s = _store(str(saved / "fleet.db"))  # the replaced set opens as it was: the WAL's commits included
    assert _wal_tasks(s) == 3
    s.close()


def test_a_restore_whose_database_swap_fails_puts_the_home_back(cfg, monkeypatch):
    import sqlite3

    from fleet.store import sqlite_base

    _populate(cfg, 5)
    info = backup.create_backup(cfg)
    (Path(cfg["paths"]["knowledge"]) / "reviews" / "a.md").write_text("after the backup")
    _leave_wal_frames(cfg)

    def failing_migrate(self):  # the backup is in place when its schema upgrade fails
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(sqlite_base.SQLiteBase, "_migrate", failing_migrate)
    with pytest.raises(backup.BackupError, match="put back as it was"):
        backup.restore_backup(cfg, info["id"])
    monkeypatch.undo()
    s = _store(cfg)
    assert _wal_tasks(s) == 3 and s.integrity_check() == "ok"
    s.close()
    assert (Path(cfg["paths"]["knowledge"]) / "reviews" / "a.md").read_text() == "after the backup"
    home = Path(cfg["paths"]["db"]).parent
    assert not [p for p in home.iterdir() if p.name.endswith((".restoring", ".replaced"))]


def test_the_backup_just_written_is_never_pruned(cfg):
    # Found in review: one taken while the clock was an hour ahead sorted
    # after every later one, and keep=1 deleted the backup just written.
    _populate(cfg, 3)
    first = backup.create_backup(cfg, keep=5)
    root = Path(first["path"]).parent
    future = root / "29991231T235959Z"
    os.replace(first["path"], future)
    second = backup.create_backup(cfg, keep=1)
    assert Path(second["path"]).is_dir() and second["id"] not in second["pruned"]


def test_restoring_a_backup_made_before_knowledge_existed_empties_knowledge(cfg):
    s = _store(cfg)
    s.enqueue("noop", {})
    s.close()
    k = Path(cfg["paths"]["knowledge"])
    assert not k.exists()
    info = backup.create_backup(cfg)
    (k / "later").mkdir(parents=True)
    (k / "later" / "note.md").write_text("written after the backup")
    result = backup.restore_backup(cfg, info["id"])
    assert result["knowledge_restored"] and not list(k.rglob("*.md"))
    assert (Path(result["replaced_saved_in"]) / "knowledge" / "later" / "note.md").is_file()


def test_cli_backup_list_restore(fleet_home, cfg):
    _, digest = _populate(cfg, 5)
    r = cli(fleet_home, "backup", "--json")
    assert r.rc == 0, r
    bid = r.json()["id"]
    assert cli(fleet_home, "backup", "--list", "--json").json()["backups"][0]["id"] == bid
    assert bid in cli(fleet_home, "backup", "--list").out
    r = cli(fleet_home, "restore", "nope")
    assert r.rc == 1 and "no backup named" in r.err
    r = cli(fleet_home, "restore", bid)
    assert r.rc == 0, r
    s = _store(cfg)
    assert _digest(s) == digest
    s.close()


def test_backup_sh_wrapper(fleet_home, cfg):
    _populate(cfg, 2)
    env = {**os.environ, "FLEET_HOME": str(fleet_home)}
    r = subprocess.run(["bash", str(REPO / "scripts" / "backup.sh"), "--keep", "2"], env=env, cwd="/",
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    assert "written to" in r.stdout
    assert len(backup.list_backups(cfg)) == 1
