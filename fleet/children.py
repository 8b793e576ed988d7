"""The supervisor's record of one child process (a worker or a managed service)
and the respawn policy: immediate first restart, then exponential backoff with
jitter, crash-loop ("flapping") detection per role, parking on exit status 78,
and immediate replacement of a healthy child killed from outside.
"""

from __future__ import annotations

import collections
import dataclasses
import random
import signal
import time

EX_TIMEOUT = 75
EX_CONFIG = 78
EX_RECYCLE = 79  # a worker exited between tasks because it was asked to recycle (high RSS)
# Signals a process's own code brings on itself: its death by one is a crash of
# the child, never an outside kill.
SELF_INFLICTED_SIGNALS = frozenset(int(getattr(signal, n)) for n in (
    "SIGSEGV", "SIGABRT", "SIGBUS", "SIGFPE", "SIGILL", "SIGSYS", "SIGTRAP", "SIGXCPU", "SIGXFSZ")
    if hasattr(signal, n))


@dataclasses.dataclass
class Child:
    name: str
    role: str                      # role for workers, the service name for services
    kind: str                      # "worker" | "service"
    args: list[str]
    extra: bool = False            # started by dynamic scaling
    proc: object = None            # subprocess.Popen while running
    pid: int | None = None
    started_mono: float = 0.0
    started_wall: float = 0.0
    state: str = "new"             # new | running | backoff | parked | stopped
    next_start: float | None = 0.0  # monotonic time to (re)start, None: not scheduled
    consecutive: int = 0           # crashes without a healthy run in between
    intent: str | None = None      # why we are stopping it: stop | restart | drain | stall | scale_down
    term_at: float | None = None
    kill_at: float | None = None
    snapshot: list = dataclasses.field(default_factory=list)
    timed_out: bool = False
    idle_since: float | None = None
    unsettled: int | None = None   # exit status of a worker whose tasks the store could not settle yet

    @property
    def running(self) -> bool:
        return self.proc is not None

    def uptime(self) -> float:
        return time.monotonic() - self.started_mono if self.started_mono else 0.0


class RespawnPolicy:
    """Backoff and crash-loop bookkeeping, shared by workers and services."""

    def __init__(self, sup_cfg: dict):
        self.initial = float(sup_cfg["backoff_initial_s"])
        self.maximum = float(sup_cfg["backoff_max_s"])
        self.reset_after = float(sup_cfg["backoff_reset_s"])
        self.loop_count = int(sup_cfg["crash_loop_count"])
        self.loop_window = float(sup_cfg["crash_loop_window_s"])
        self.crashes: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self.flapping: set[str] = set()

    def next_delay(self, child: Child) -> float:
        """Delay before restarting a crashed child; updates its crash count."""
        if child.uptime() >= self.reset_after:
            child.consecutive = 0
        n = child.consecutive
        child.consecutive += 1
        if n == 0:
            return 0.0  # first crash after a healthy run: replace at once
        delay = min(self.maximum, self.initial * (2 ** (n - 1)))
        return delay * random.uniform(0.85, 1.15)  # nosec B311

    def record_crash(self, role: str) -> bool:
        """Count a crash of `role`; True when this crash makes the role flapping."""
        now = time.monotonic()
        window = self.crashes[role]
        window.append(now)
        while window and now - window[0] > self.loop_window:
            window.popleft()
        if len(window) >= self.loop_count and role not in self.flapping:
            self.flapping.add(role)
            return True
        return False

    def healthy(self, child: Child) -> bool:
        """A running child past the reset uptime clears its role's flapping mark."""
        if child.running and child.uptime() >= self.reset_after:
            child.consecutive = 0
            if child.role in self.flapping:
                self.flapping.discard(child.role)
                self.crashes[child.role].clear()
                return True
        return False

    def clear(self, role: str) -> None:
        self.flapping.discard(role)
        self.crashes[role].clear()


def killed_while_healthy(child: Child, rc: int, agent: dict | None) -> bool:
    """True when `child` died of a signal sent from outside (not one its own
    code raises: a segfault, an abort) after it had come up under this pid:
    its agent row registered, then heartbeated past "starting". Such a child
    is replaced at once, without backoff or a crash-loop count; one that dies
    before its first heartbeat is a start crash (backoff, flapping guard)."""
    if rc >= 0 or -rc in SELF_INFLICTED_SIGNALS:
        return False
    if child.kind == "service" and agent and (agent["last_heartbeat"] or 0) <= (agent["started_at"] or 0):
        # A service's row is written by the supervisor at spawn: only a heartbeat
        # of the service's own (hw_supervisor writes them) shows it came up.
        return False
    return bool(agent and agent["pid"] == child.pid and agent["status"] != "starting"
                and (agent["last_heartbeat"] or 0) >= child.started_wall)


def managed_services(cfg: dict) -> list[tuple[str, str, str | None]]:
    """(name, module, why it is off or None) of each `[supervisor] services`
    entry: the dashboard is off in air-gap mode or with `[dashboard] enabled
    = false`, a module that is not installed is skipped. The supervisor
    starts those with no reason; `status` expects them running."""
    import importlib.util

    dashboard_on = not cfg["fleet"]["air_gap_mode"] and cfg["dashboard"]["enabled"]
    out = []
    for svc in cfg["supervisor"]["services"]:
        module = svc if "." in svc else f"fleet.{svc}"
        name = svc.rsplit(".", 1)[-1]
        if svc == "dashboard" and not dashboard_on:
            out.append((name, module, "is off (air-gap mode or [dashboard] enabled = false)"))
            continue
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        out.append((name, module, None if found else f"skipped: module {module} is not installed"))
    return out


def overran_timeout(agent: dict | None, task_id: int, now: float) -> bool:
    """Whether `task_id`, held by a worker that ended at a hard timeout (exit
    75, or replaced as stalled past its deadline), is the one that overran.
    A single-task worker ran only that task: yes. A worker running several
    at once ([workers.concurrency]) lists each with its deadline in its agent
    row's detail ("tasks"): only a task past its deadline overran; the others
    were innocent bystanders and must not lose an attempt."""
    detail = (agent or {}).get("detail")
    tasks = detail.get("tasks") if isinstance(detail, dict) else None
    if not isinstance(tasks, list):
        return True
    for entry in tasks:
        if isinstance(entry, dict) and entry.get("task") == task_id:
            deadline = entry.get("deadline")
            return isinstance(deadline, (int, float)) and now >= deadline
    return False
