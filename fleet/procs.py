"""Child processes of the supervisor: spawn in a new session that dies with its
parent, snapshot a process tree, and signal only PIDs we started (never by name).

Linux: each child gets PR_SET_PDEATHSIG=SIGHUP; the worker turns SIGHUP into a
SIGKILL of its descendants and its own process group, so its grandchildren die
with it. The supervisor and each worker are child subreapers, so a descendant
that leaves its session (a double-forked daemon) is still found and killed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess  # nosec B404
import sys
from pathlib import Path

from fleet.filemodes import open_private

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PARENT_DEATH_SIGNAL = signal.SIGHUP
PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)

_libc = None


def _prctl_pdeathsig(parent_pid: int) -> None:
    """Runs in the child between fork and exec (keep it async-signal-safe-ish)."""
    if _libc is not None:
        _libc.prctl(PR_SET_PDEATHSIG, int(PARENT_DEATH_SIGNAL), 0, 0, 0)
    if os.getppid() != parent_pid:  # parent died before prctl took effect
        os._exit(1)


def _load_libc() -> None:
    global _libc
    if _libc is None and sys.platform.startswith("linux"):
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        except OSError:
            _libc = None


def become_subreaper() -> bool:
    """Linux: make this process the reaper of its orphaned descendants, so a
    process that double-forks out of its session (a `setsid` daemon) is
    re-parented here instead of to init, and stays one of our descendants
    that we can find and kill. False where the platform has no such thing."""
    _load_libc()
    if _libc is None:
        return False
    return _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def kill_orphans(known: set[int]) -> list[int]:
    """Kill and reap this process's children that are not in `known` (the
    processes it started itself): descendants of a dead child that were
    re-parented here (see `become_subreaper`), with their own descendants.
    Returns their pids."""
    import psutil

    try:
        strays = [p for p in psutil.Process().children() if p.pid not in known]
    except psutil.Error:
        return []
    for p in strays:
        try:
            kill_snapshot([*p.children(recursive=True), p])
        except psutil.Error:
            pass
    for p in strays:
        try:
            os.waitpid(p.pid, 0)  # each was sent SIGKILL: the wait is short
        except ChildProcessError:
            pass
    return [p.pid for p in strays]


def spawn(args: list[str], *, env: dict, cwd: str, output_path: str | None = None,
          shared_output: bool = False) -> subprocess.Popen:
    """Start `args` in its own session (its own process group) that gets
    PARENT_DEATH_SIGNAL when this process dies. stdout/stderr go to `output_path`
    (a 0600 file; 0644 with `shared_output`, as [paths] shared_read says)."""
    _load_libc()
    parent = os.getpid()
    out = subprocess.DEVNULL
    fh = None
    if output_path:
        _trim(output_path)
        fh = open(output_path, "ab", buffering=0,  # noqa: SIM115 - closed below, once the child has it
                  opener=lambda path, flags: open_private(path, flags, shared_output))
        out = fh
    try:
        return subprocess.Popen(  # nosec B603
            args, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True,
            # The supervisor is single-threaded, so preexec_fn is safe here.
            preexec_fn=(lambda: _prctl_pdeathsig(parent)) if sys.platform.startswith("linux") else None,  # noqa: PLW1509
        )
    finally:
        if fh is not None:
            fh.close()


def _trim(path: str, limit: int = 1 << 20) -> None:
    """Keep a child's raw output file from growing without bound."""
    try:
        if os.path.getsize(path) > limit:
            with open(path, "rb") as fh:
                fh.seek(-limit // 2, os.SEEK_END)
                tail = fh.read()
            with open(path, "wb") as fh:
                fh.write(b"[... older output trimmed ...]\n" + tail)
    except OSError:
        pass


def child_env(cfg: dict, extra: dict | None = None) -> dict:
    """Environment for a child: same fleet home, the package importable."""
    env = dict(os.environ)
    env["FLEET_HOME"] = cfg["home"]
    paths = [PACKAGE_ROOT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def describe_exit(returncode: int | None) -> dict:
    """{'exit_code': n} or {'signal': 'SIGKILL'} for an event record."""
    if returncode is None:
        return {}
    if returncode < 0:
        try:
            return {"signal": signal.Signals(-returncode).name}
        except ValueError:
            return {"signal": str(-returncode)}
    return {"exit_code": returncode}


def snapshot_tree(pid: int) -> list:
    """psutil.Process objects of every descendant of `pid` (taken before signalling,
    so grandchildren that detach are still known). Empty when `pid` is gone."""
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def signal_group(pgid: int, sig: int) -> None:
    """Signal the process group we created for a child (the child's own PID)."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def signal_pid(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_snapshot(procs: list, sig: int = signal.SIGKILL) -> None:
    """Signal snapshotted descendants; psutil checks each is still the same process
    (create time), so a reused PID is never signalled."""
    import psutil

    for p in procs:
        try:
            if p.is_running():
                p.send_signal(sig)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass


def still_running(pid: int | None, registered_at: float | None) -> bool:
    """Whether the process that registered as `pid` at `registered_at` still
    runs: not gone, not a zombie (dead, but never reaped by its parent, as
    under an init that does not reap orphans), and not a later process that
    reused the pid (created after the registration, say after a reboot)."""
    if not pid:
        return False
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return registered_at is None or process.create_time() <= registered_at + 1.0
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # someone else's process holds the pid: assume alive, the lease decides

