"""Test helpers for real fleet processes: write a small fleet.toml into a temp
fleet home, start/stop a real supervisor or worker, and poll until a condition holds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomlkit

REPO = Path(__file__).resolve().parents[2]
FAKE_SKILLS = str(REPO / "tests" / "fakes" / "skills")
NO_ROLES = {"coder_count": 0, "researcher": 0, "archivist": 0, "analyst": 0, "security": 0, "planner": 0}


def write_config(home: Path, *, workers: dict | None = None, affinity: dict | None = None,
                 supervisor: dict | None = None, queue: dict | None = None, **sections) -> dict:
    """A fast test configuration: tiny intervals, fake skills, no services."""
    doc = {
        "workers": {**NO_ROLES, **(workers or {})},
        "affinity": {"coder": ["noop", "sleepy", "hang", "fails"], **(affinity or {})},
        "queue": {"lease_s": 5.0, "reap_interval_s": 0.5, "backoff_base_s": 0.05, "backoff_max_s": 0.2,
                  **(queue or {})},
        "supervisor": {"heartbeat_interval_s": 0.3, "heartbeat_timeout_s": 10.0, "status_interval_s": 1.0,
                       "backoff_initial_s": 0.2, "backoff_max_s": 2.0, "backoff_reset_s": 5.0,
                       "stop_timeout_s": 5.0, "kill_grace_s": 1.0, "scale_up_depth": 0,
                       "services": [], **(supervisor or {})},
        "skills": {"extra_paths": [FAKE_SKILLS], **sections.pop("skills", {})},
        **sections,
    }
    (home / "fleet.toml").write_text(tomlkit.dumps(doc))
    from fleet.config import load_config

    return load_config(home)


def env_for(home: Path) -> dict:
    env = dict(os.environ)
    env["FLEET_HOME"] = str(home)
    env["PYTHONPATH"] = str(REPO)
    return env


def start_supervisor(home: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(REPO / "fleet" / "supervisor.py"), "--quiet", *extra],
        cwd=str(REPO), env=env_for(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def start_worker(home: Path, role: str, name: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(REPO / "fleet" / "worker.py"), "--role", role, "--name", name],
        cwd=str(REPO), env=env_for(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_until(predicate, timeout: float = 30.0, step: float = 0.05, what: str = "condition"):
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


def stop(proc: subprocess.Popen, timeout: float = 30.0, sig: int = signal.SIGTERM) -> int:
    """Send `sig` (SIGTERM) and wait; on a timeout, fail saying why it hung.

    The failure names the process state and its blocked, ignored and caught
    signals (/proc), then sends SIGABRT so a child started with
    PYTHONFAULTHANDLER=1 prints every thread's stack to its stderr (shown
    when the test piped it).
    """
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            with open(f"/proc/{proc.pid}/status") as fh:
                state = " ".join(line.strip() for line in fh
                                 if line.startswith(("State", "SigBlk", "SigIgn", "SigCgt")))
        except OSError:
            state = "(no /proc status)"
        proc.send_signal(signal.SIGABRT)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        stderr = proc.stderr.read() if proc.stderr else ""
        raise AssertionError(f"process {proc.pid} did not stop within {timeout} s of "
                             f"{signal.Signals(sig).name}: {state}\nits stderr:\n{stderr[-6000:]}") from None


def live_worker(store, name: str, not_pid: int | None = None):
    """The agent row of `name` when it is running (idle/busy) under a pid other than `not_pid`."""
    a = store.get_agent(name)
    if a and a["status"] in ("idle", "busy") and a["pid"] and a["pid"] != not_pid:
        try:
            os.kill(a["pid"], 0)
        except ProcessLookupError:
            return None
        return a
    return None


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # a zombie still answers kill(0); it is dead for our purpose
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True
    return False


@pytest.fixture
def fleet(isolated_home):
    """(home, store, start): start() launches a supervisor; all are stopped at the end."""
    procs = []
    stores = []

    def start(**cfg):
        write_config(isolated_home, **cfg)
        p = start_supervisor(isolated_home)
        procs.append(p)
        return p

    class Ctx:
        home = isolated_home

        @property
        def store(self):
            if not stores:
                from fleet.config import load_config
                from fleet.db import open_store

                stores.append(open_store(load_config(isolated_home)))
            return stores[0]

    ctx = Ctx()
    ctx.start = start
    yield ctx
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
    for s in stores:
        s.close()
