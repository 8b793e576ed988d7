"""The supervisor: one per fleet home. Spawns role workers and managed services,
respawns them with backoff, replaces stalled workers, requeues a dead worker's
task, reaps leases, writes STATUS.md, acts on control messages, drains on stop.

`python fleet/supervisor.py` (foreground; Ctrl-C or SIGTERM stops it cleanly).
"""

if __package__ in (None, ""):  # run as `python fleet/supervisor.py`
    import sys
    from pathlib import Path

    sys.path[0] = str(Path(__file__).resolve().parent.parent)
    __package__ = "fleet"

import errno
import fcntl
import os
import re
import sys
from pathlib import Path

LOCK_NAME = ".fleet.lock"  # in the fleet home; holds the supervisor PID
EX_CONFIG = 78  # a configuration error: restarting will not fix it


def lock_path(cfg: dict) -> Path:
    """The single-instance lock: one supervisor per (home, host). On SQLite
    that is `<home>/.fleet.lock`; where several hosts share a PostgreSQL store
    (and maybe a home on a shared disk) each host has `.fleet.<host>.lock`."""
    if cfg["store"]["backend"] != "postgresql":
        return Path(cfg["home"]) / LOCK_NAME
    host = re.sub(r"[^A-Za-z0-9_.-]", "_", cfg["fleet"]["host"])
    return Path(cfg["home"]) / f".fleet.{host}.lock"


def running_supervisor_pid(cfg: dict) -> int | None:
    """PID of the supervisor holding this fleet home's lock, or None (cheap)."""
    path = lock_path(cfg)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class AlreadyRunning(RuntimeError):
    pass


class InstanceLock:
    """Exclusive flock on `<home>/.fleet.lock`, which holds the owner's PID."""

    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None

    def acquire(self, wait_s: float = 1.0) -> None:
        import time

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        end = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                if time.monotonic() >= end:
                    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                    os.close(fd)
                    raise AlreadyRunning(text or "unknown") from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fsync(fd)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            try:
                os.ftruncate(self.fd, 0)
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = None


def check_config(home: str | None) -> int:
    """--check-config: 0 and the config's hash when fleet.toml is valid; 78,
    the error and the diff against fleet.toml.last-good when it is not."""
    from .config import EX_CONFIG, find_home, load_or_exit
    from .config_drift import LAST_GOOD, config_hash, diff_against_last_good

    try:
        cfg = load_or_exit(home)  # prints the error (and warnings about unknown keys)
    except SystemExit:
        diff = diff_against_last_good(find_home(home))
        if diff:
            print(f"fleet: changes since the last good configuration ({LAST_GOOD}):\n{diff}", file=sys.stderr)
        elif diff is None:
            print(f"fleet: no {LAST_GOOD} to compare with (it is kept once the fleet has run)", file=sys.stderr)
        return EX_CONFIG
    if (refused := _check_schedules(cfg)) is not None:
        return refused
    print(f"fleet: {cfg['config_file']} is valid (config {config_hash(cfg)})")
    return 0


def _check_schedules(cfg: dict) -> int | None:
    """78 (and why) unless each [schedule.NAME] names an installed skill and
    a payload it accepts."""
    from .schedule import ScheduleError, check_skills

    try:
        check_skills(cfg)
    except ScheduleError as exc:
        print(f"fleet: configuration error: {cfg['config_file']}: {exc}", file=sys.stderr)
        return 78
    return None


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="fleet-supervisor", description="Run the fleet in the foreground.")
    parser.add_argument("--home", help="fleet home (default: FLEET_HOME, the current directory or the repository)")
    parser.add_argument("--check-config", action="store_true", help="validate fleet.toml and exit (0 ok, 78 bad)")
    parser.add_argument("--quiet", action="store_true", help="do not echo the log to stderr")
    parser.add_argument("--under-launchd", metavar="LABEL",
                        help="run as the launchd agent LABEL: exit 0 instead of 78 on a configuration error, so "
                             "KeepAlive (SuccessfulExit = false) stops restarting a fleet that cannot start")
    args = parser.parse_args(argv)
    code = _run(args)
    if code == EX_CONFIG and args.under_launchd:
        # launchd has no RestartPreventExitStatus (systemd's guard): a clean exit
        # is the only way to stop KeepAlive restarting it every ThrottleInterval.
        print("fleet-supervisor: configuration error: exit 78 is reported to launchd as 0 so that it stops "
              f"restarting the fleet; fix fleet.toml, then `launchctl kickstart gui/{os.getuid()}/"
              f"{args.under_launchd}`", file=sys.stderr)
        return 0
    return code


def _run(args) -> int:
    from .config import load_or_exit

    if args.check_config:
        return check_config(args.home)
    try:
        cfg = load_or_exit(args.home)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    if (refused := _check_schedules(cfg)) is not None:
        return refused
    from .supervision import Supervisor

    lock = InstanceLock(lock_path(cfg))
    try:
        lock.acquire()
    except AlreadyRunning as exc:
        print(f"fleet-supervisor: another supervisor is already running for {cfg['home']} "
              f"(PID {exc}); stop it first (SIGTERM, or `lead_client stop`)", file=sys.stderr)
        return 75
    except OSError as exc:
        print(f"fleet-supervisor: cannot create the lock file {lock.path}: {exc}", file=sys.stderr)
        return 73
    try:
        return Supervisor(cfg, echo=not args.quiet).run()
    finally:
        lock.release()


if __name__ == "__main__":
    raise SystemExit(main())
