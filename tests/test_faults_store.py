"""Store faults met by real processes, and what the operator is told: a real
full filesystem (a small tmpfs) names the disk and its free bytes and never
advises moving the database away, while `status` and /api/health report the
store degraded; a permission names the path and the user; a write lock held
by another process names its pid and does not stop read-only commands; an
emptied or truncated database in a home with history is refused, naming the
backups, and left as it was, while a new home still creates its database."""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from fleet.db import StoreUnavailable, open_store
from tests.conftest import require_system_part
from tests.fakes.dashboard_env import DashboardProcess
from tests.fakes.fleetproc import (
    REPO,
    env_for,
    live_worker,
    pid_gone,
    start_supervisor,
    stop,
    wait_until,
    write_config,
)

LINUX = sys.platform.startswith("linux")
BAD_ADVICE = "move the file away"


def cli(home: Path, *args: str, env: dict | None = None, preexec=None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "fleet" / "lead_client.py"), *args], cwd=str(REPO),
                          env=env or env_for(home), capture_output=True, text=True, timeout=timeout,
                          preexec_fn=preexec, check=False)


def one_line_failure(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    text = r.stderr.strip()
    assert "Traceback" not in text and text.count("\n") == 0, text
    return text


def populated_home(home: Path, n: int = 20, **cfg) -> dict:
    cfg = write_config(home, **cfg)
    store = open_store(cfg)
    store.enqueue_many([{"skill": "noop", "payload": {"i": i}} for i in range(n)])
    store.close()
    return cfg


# -- item 4: read-only commands never take the write lock -------------------------------------
HOLD_WRITE_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO events (ts, actor, action) VALUES (0, 'test', 'holding the write lock')")
print("holding", flush=True)
sys.stdin.readline()  # until the test says so
conn.execute("ROLLBACK")
"""


def test_read_only_commands_work_while_another_process_holds_the_write_lock(isolated_home):
    cfg = populated_home(isolated_home, 7, queue={"busy_timeout_s": 0.3})
    holder = subprocess.Popen([sys.executable, "-c", HOLD_WRITE_LOCK, cfg["paths"]["db"]], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        tasks = cli(isolated_home, "tasks")
        assert tasks.returncode == 0, tasks.stderr
        assert "7 of 7 task(s)" in tasks.stdout
        status = cli(isolated_home, "status", "--json")
        assert status.returncode == 69, status.stderr  # no supervisor: the only thing wrong
        assert json.loads(status.stdout)["tasks"]["PENDING"] == 7
        # A write waits its busy timeout, then names the process holding the lock.
        dispatch = one_line_failure(cli(isolated_home, "dispatch", "noop", "{}"))
        assert f"locked by pid {holder.pid} " in dispatch and "busy timeout" in dispatch, dispatch
    finally:
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(10)
    assert cli(isolated_home, "dispatch", "noop", "{}").returncode == 0


# -- item 2: a real full disk ------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs mounted at tmp_path/disk (root only), unmounted after."""
    where = tmp_path / "disk"
    where.mkdir()
    ok = LINUX and os.geteuid() == 0 and shutil.which("mount") is not None
    if ok:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)],
                           capture_output=True, text=True, check=False)
        ok = r.returncode == 0
    require_system_part(ok, "root with mount(8) (to mount a small tmpfs and fill it)",
                        "run the suite as root on Linux, as .ci/run does")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path) -> Path:
    """Write zeros until the filesystem refuses a single byte more."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for chunk in (1 << 16, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def free_bytes_named(text: str, home: Path) -> int:
    found = re.search(rf"disk full at {re.escape(str(home))}\S* \((\d+) bytes free", text)
    assert found, text
    return int(found[1])


def test_a_full_disk_is_named_with_its_free_bytes_and_the_store_reported_degraded(small_disk):
    home = small_disk / "home"
    home.mkdir()
    cfg = populated_home(home, 20, queue={"busy_timeout_s": 2.0})
    assert cli(home, "backup").returncode == 0
    # The dashboard keeps the database open, as a running fleet does.
    with DashboardProcess(home) as dash:
        assert httpx.get(dash.base + "/api/health", timeout=10).json()["components"]["store"]["status"] == "healthy"
        filler = fill(small_disk)
        health = httpx.get(dash.base + "/api/health", timeout=10)
        assert health.status_code == 503
        store = health.json()["components"]["store"]
        assert store["status"] == "degraded" and store["free_bytes"] < 1 << 20, store
        assert free_bytes_named(store["writes"], home) == store["free_bytes"]

        status = cli(home, "status", "--json")
        assert status.returncode == 69, status.stderr  # no supervisor
        doc = json.loads(status.stdout)
        assert doc["store"]["status"] == "degraded" and "disk full at" in doc["store"]["writes"], doc["store"]
        plain = cli(home, "status")
        assert "store: DEGRADED, writes fail: disk full at" in plain.stdout, plain.stdout
        tasks = cli(home, "tasks")
        assert tasks.returncode == 0 and "20 of 20 task(s)" in tasks.stdout, tasks.stderr  # reads still work

        for command in (["dispatch", "noop", "{}"], ["backup"]):
            text = one_line_failure(cli(home, *command))
            free_bytes_named(text, home)
            assert BAD_ADVICE not in text and "damaged" not in text, text
    # With nothing holding the database open (its -wal and -shm removed by a
    # clean close), SQLite cannot even create its -shm: every command fails,
    # naming the disk.
    filler.unlink()
    open_store(cfg).close()
    assert not Path(cfg["paths"]["db"] + "-shm").exists()
    filler = fill(small_disk)
    for command in (["status"], ["tasks"], ["dispatch", "noop", "{}"], ["backup"]):
        text = one_line_failure(cli(home, *command))
        free_bytes_named(text, home)
        assert BAD_ADVICE not in text and "not a usable" not in text, text
    filler.unlink()
    assert cli(home, "dispatch", "noop", "{}").returncode == 0
    store = open_store(cfg)
    try:
        assert store.counts()["PENDING"] == 21 and store.integrity_check() == "ok"
        assert store.write_health()["status"] == "healthy"
    finally:
        store.close()


# -- item 1: a full disk degrades the fleet, never ends it ------------------------------------
def _lines_of(stream, into: list) -> threading.Thread:
    """Collect a child's output lines on a thread (a pipe read never blocks the test)."""
    def read():
        for line in stream:
            into.append(line.rstrip("\n"))
    t = threading.Thread(target=read, daemon=True)
    t.start()
    return t


def test_a_full_disk_parks_the_fleet_and_it_resumes_by_itself_with_the_same_pid(small_disk):
    home = small_disk / "home"
    home.mkdir()
    cfg = write_config(home, workers={"coder_count": 2}, affinity={"coder": ["noop"]},
                       supervisor={"heartbeat_interval_s": 0.2, "backoff_initial_s": 0.05, "backoff_max_s": 0.2,
                                   "crash_loop_count": 3, "crash_loop_window_s": 600.0},
                       queue={"busy_timeout_s": 1.0})
    sup = start_supervisor(home)
    stderr: list[str] = []
    _lines_of(sup.stderr, stderr)
    store = open_store(cfg)
    try:
        wait_until(lambda: all(live_worker(store, n) for n in ("coder_1", "coder_2")), 30, what="workers up")
        first = [t.id for t in store.enqueue_many([{"skill": "noop", "payload": {"i": i}} for i in range(10)])]
        wait_until(lambda: all(store.get(t).status == "DONE" for t in first), 30, what="the first tasks done")

        filler = fill(small_disk)
        kept = []  # grow the WAL until the store refuses a write: the fleet's next writes fail too
        with pytest.raises(StoreUnavailable, match="disk full"):
            for i in range(100_000):
                kept.append(store.enqueue("noop", {"i": i, "pad": "x" * 800}, delay_s=3600).id)
        alerts = wait_until(lambda: [line for line in stderr if "ALERT" in line], 30,
                            what="the supervisor's alert on stderr (the store cannot take the row)")
        assert "cannot take writes" in alerts[0] and "disk full at" in alerts[0], alerts
        # A worker that dies meanwhile is parked, not respawned into the same error.
        victim = live_worker(store, "coder_1")["pid"]
        os.kill(victim, signal.SIGKILL)
        time.sleep(3.0)
        assert sup.poll() is None, stderr  # never gives up
        children = [" ".join(c.cmdline()) for c in psutil.Process(sup.pid).children()]
        assert not any("--name coder_1" in c for c in children), children

        filler.unlink()  # space again: the fleet resumes by itself, same supervisor
        wait_until(lambda: live_worker(store, "coder_1", not_pid=victim), 30, what="coder_1 back after the outage")
        more = [t.id for t in store.enqueue_many([{"skill": "noop", "payload": {"after": i}} for i in range(10)])]
        wait_until(lambda: all(store.get(t).status == "DONE" for t in more), 30, what="work done after the outage")
        assert sup.poll() is None and store.get_agent("supervisor")["pid"] == sup.pid
        assert all(store.get(t).status == "DONE" for t in first)
        assert all(store.get(t).status == "PENDING" for t in kept)  # committed tasks untouched
        assert [line for line in stderr if "ALERT" in line] == alerts[:1]  # one alert
        stored = [a for a in store.list_alerts() if a["dedup_key"] == "store_writes_failing"]
        assert len(stored) == 1 and stored[0]["occurrences"] == 1 and "disk full at" in stored[0]["message"]
        assert store.recent_events(50, action="store_recovered")
        assert store.integrity_check() == "ok"
    finally:
        store.close()
        if sup.poll() is None:
            assert stop(sup) == 0, stderr


# -- item 6: corruption is found before work starts ------------------------------------------
def damaged_home(home: Path, **cfg) -> tuple[dict, str]:
    """A fleet home with 3,000 tasks and a good backup, then one page in the
    middle of its database overwritten with noise (no process has it open).
    Returns (config, the backup's id)."""
    cfg = write_config(home, **cfg)
    store = open_store(cfg)
    store.enqueue_many([{"skill": "noop", "payload": {"i": i, "pad": "y" * 200}, "delay_s": 3600}
                        for i in range(3000)])
    store.close()
    backup = cli(home, "backup", "--json")
    assert backup.returncode == 0, backup.stderr
    flip_a_middle_page(Path(cfg["paths"]["db"]))
    return cfg, json.loads(backup.stdout)["id"]


def flip_a_middle_page(db: Path) -> None:
    with db.open("r+b") as fh:
        header = fh.read(100)
        page = int.from_bytes(header[16:18], "big") or 65536
        pages = db.stat().st_size // page
        fh.seek((pages // 2) * page)
        fh.write(os.urandom(page))


def worker_processes(sup: subprocess.Popen) -> list[str]:
    return [" ".join(c.cmdline()) for c in psutil.Process(sup.pid).children() if "fleet.worker" in c.cmdline()]


def test_a_damaged_store_is_found_at_start_parks_the_workers_and_names_the_backup(isolated_home):
    cfg, backup_id = damaged_home(isolated_home, workers={"coder_count": 2}, affinity={"coder": ["noop"]})
    pre = cli(isolated_home, "preflight")
    assert pre.returncode != 0 and "damaged" in pre.stdout and f"lead_client.py restore {backup_id}" in pre.stdout, \
        pre.stdout
    sup = start_supervisor(isolated_home)
    stderr: list[str] = []
    _lines_of(sup.stderr, stderr)
    try:
        alert = wait_until(lambda: [line for line in stderr if "ALERT" in line], 60, what="the damage alert")[0]
        assert "is damaged" in alert and f"lead_client.py restore {backup_id}" in alert, alert
        time.sleep(2.0)
        assert sup.poll() is None, stderr  # the supervisor stays up (the dashboard can show the alert)
        assert worker_processes(sup) == []  # parked: no crash loop
        assert BAD_ADVICE not in alert
    finally:
        assert stop(sup) == 0, stderr


def test_damage_found_by_the_scheduled_check_parks_running_workers(isolated_home):
    cfg = write_config(isolated_home, workers={"coder_count": 2}, affinity={"coder": ["noop"]},
                       store={"integrity_check_interval_s": 0.5})
    store = open_store(cfg)
    store.enqueue_many([{"skill": "noop", "payload": {"i": i, "pad": "y" * 200}, "delay_s": 3600}
                        for i in range(3000)])
    store.checkpoint("TRUNCATE")
    sup = start_supervisor(isolated_home)
    stderr: list[str] = []
    _lines_of(sup.stderr, stderr)
    try:
        wait_until(lambda: all(live_worker(store, n) for n in ("coder_1", "coder_2")), 30, what="workers up")
        workers = [live_worker(store, n)["pid"] for n in ("coder_1", "coder_2")]
        store.checkpoint("TRUNCATE")
        flip_a_middle_page(Path(cfg["paths"]["db"]))
        alert = wait_until(lambda: [line for line in stderr if "ALERT" in line], 30, what="the damage alert")[0]
        assert "is damaged" in alert and "there is no backup" in alert and ".recover" in alert, alert
        wait_until(lambda: all(pid_gone(p) for p in workers), 30, what="the workers parked")
        time.sleep(1.5)
        assert worker_processes(sup) == [] and sup.poll() is None
    finally:
        store.close()
        assert stop(sup) == 0, stderr


# -- item 2: permissions, as a user the permissions apply to -----------------------------------
def _as_nobody():
    import pwd

    nobody = pwd.getpwnam("nobody")

    def become():
        os.setgid(nobody.pw_gid)
        os.setgroups([])
        os.setuid(nobody.pw_uid)
    return become, "nobody"


def _without_dac_override():
    """Root without CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH and CAP_FOWNER (dropped
    from the bounding set, so exec does not give them back) obeys the mode
    bits as any user does."""
    libc = ctypes.CDLL(None, use_errno=True)

    def drop():
        for cap in (1, 2, 3):
            if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")
    return drop, "root"


def unprivileged(probe_dir: Path):
    """(preexec_fn, user name) for a child the mode bits apply to, or skip saying why."""
    if not LINUX or os.geteuid() != 0:
        if not LINUX:
            pytest.skip("permission checks by user are tested on Linux")
        return None, __import__("pwd").getpwuid(os.geteuid()).pw_name
    check = ("import os, sys; d = sys.argv[1]; "
             "sys.exit(0 if os.access(d, os.R_OK) and not os.access(d, os.W_OK) else 1)")
    probe_dir.chmod(0o555)
    reasons = []
    try:
        for make in (_as_nobody, _without_dac_override):
            try:
                preexec, user = make()
                r = subprocess.run([sys.executable, "-c", check, str(probe_dir)], preexec_fn=preexec,
                                   capture_output=True, check=False, timeout=30)
            except (OSError, KeyError, subprocess.SubprocessError) as exc:
                reasons.append(f"{make.__name__}: {exc}")
                continue
            if r.returncode == 0:
                return preexec, user
            reasons.append(f"{make.__name__}: exit {r.returncode} {r.stderr.decode(errors='replace')[-200:]}")
    finally:
        probe_dir.chmod(0o755)
    pytest.skip("no way to run a child the permissions apply to (root bypasses them; nobody cannot run "
                f"{sys.executable}; dropping CAP_DAC_OVERRIDE failed): {'; '.join(reasons)}")


@pytest.fixture
def open_home(tmp_path):
    """A fleet home any user may reach (pytest's own tmp folders are 0700)."""
    base = Path(tempfile.mkdtemp(prefix="fleet-perm-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        for p in [base, *base.rglob("*")]:
            if p.is_dir() and not p.is_symlink():
                p.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)


def test_permission_denied_names_the_path_and_the_user(open_home):
    home = open_home / "home"
    home.mkdir()
    cfg = populated_home(home, 3)
    db = Path(cfg["paths"]["db"])
    probe = open_home / "probe"
    probe.mkdir()
    preexec, user = unprivileged(probe)
    env = {**env_for(home), "HOME": str(open_home)}

    home.chmod(0o555)  # SQLite cannot create the -wal and -shm files beside the database
    try:
        text = one_line_failure(cli(home, "tasks", env=env, preexec=preexec))
        assert "permission denied" in text and f"the folder {home} " in text and f"user {user}" in text, text
        assert BAD_ADVICE not in text and "damaged" not in text, text
    finally:
        home.chmod(0o755)

    db.chmod(0o444)  # the folder is writable now, the database file is not
    try:
        (home / "logs").mkdir(exist_ok=True)
        home.chmod(0o777)
        text = one_line_failure(cli(home, "dispatch", "noop", "{}", env=env, preexec=preexec))
        assert "permission denied" in text and str(db) in text and f"user {user}" in text, text
        assert BAD_ADVICE not in text and "damaged" not in text, text
    finally:
        home.chmod(0o755)
        db.chmod(0o644)
        for leftover in home.iterdir():  # -wal / -shm the child may have made
            if leftover.name.startswith("fleet.db-"):
                leftover.unlink()
    store = open_store(cfg)
    try:
        assert store.counts()["PENDING"] == 3
    finally:
        store.close()


# -- item 5: an emptied database is not silently replaced --------------------------------------
def _home_with_a_backup(home: Path) -> tuple[dict, str]:
    cfg = populated_home(home, 9)
    r = cli(home, "backup", "--json")
    assert r.returncode == 0, r.stderr
    return cfg, json.loads(r.stdout)["id"]


@pytest.mark.parametrize("damage", ["emptied", "truncated"])
def test_an_emptied_or_truncated_database_in_a_home_with_history_is_refused(isolated_home, damage):
    cfg, backup_id = _home_with_a_backup(isolated_home)
    db = Path(cfg["paths"]["db"])
    store = open_store(cfg)
    store.checkpoint("TRUNCATE")  # every page in the file itself, as after a clean stop
    store.close()
    data = db.read_bytes()
    with open(db, "r+b") as fh:
        fh.truncate(0 if damage == "emptied" else len(data) // 2)
    before = db.read_bytes()
    for command in (["status"], ["tasks"], ["dispatch", "noop", "{}"], ["backup"]):
        text = one_line_failure(cli(isolated_home, *command))
        assert f"restore {backup_id}" in text and "backup --list" in text, text
        assert ("is empty (0 bytes)" if damage == "emptied" else "is truncated") in text, text
        assert db.read_bytes() == before  # not one byte written
    backups = cli(isolated_home, "backup", "--list", "--json")
    assert [b["id"] for b in json.loads(backups.stdout)["backups"]] == [backup_id]  # none made of nothing
    restored = cli(isolated_home, "restore", backup_id)
    assert restored.returncode == 0, restored.stderr
    tasks = cli(isolated_home, "tasks")
    assert tasks.returncode == 0 and "9 of 9 task(s)" in tasks.stdout, tasks.stderr


def test_a_new_home_still_creates_its_database(isolated_home):
    cfg = write_config(isolated_home)
    db = Path(cfg["paths"]["db"])
    assert not db.exists()
    r = cli(isolated_home, "dispatch", "noop", "{}")
    assert r.returncode == 0, r.stderr
    assert db.stat().st_size > 0
    # An empty file in a home with no history (made by hand, say) becomes the database too.
    other = isolated_home / "second"
    other.mkdir()
    cfg2 = write_config(other)
    Path(cfg2["paths"]["db"]).write_bytes(b"")
    r = cli(other, "dispatch", "noop", "{}")
    assert r.returncode == 0, r.stderr
    wait_until(lambda: Path(cfg2["paths"]["db"]).stat().st_size > 0, 5, what="the database written")


def test_the_damage_alert_speaks_of_the_backend_in_use(isolated_home):
    from fleet.outage import damage_message

    sqlite = damage_message(write_config(isolated_home), "Page 7: btreeInitPage() returns error code 11")
    assert "sqlite3" in sqlite and ".recover" in sqlite and "Page 7" in sqlite
    pg = damage_message(write_config(isolated_home, store={"backend": "postgresql", "schema": "fleet_a"}),
                        "table tasks: could not read block 12")
    assert "schema fleet_a on PostgreSQL" in pg and "pg_amcheck" in pg and "sqlite3" not in pg, pg
