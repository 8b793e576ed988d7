"""The dashboard's per-app state: config, store, token, redactor, browser
sessions, live-event hub, the skills catalogue, cached aggregates, and
readers of the supervisor lock and hw_state.json.
"""

from __future__ import annotations

import os
import threading
import time

from fleet.skill_registry import discover

from fleet.redact import Redactor

from .auth import is_loopback_host
from .sessions import SESSIONS_FILE, SessionRegistry


# At most this many cached aggregates (their names carry query arguments).
CACHE_ENTRIES = 256


class FleetContext:
    """Everything a request handler needs; one per Flask app."""

    def __init__(self, cfg: dict, store, token: str, token_source: str, *, host: str | None = None,
                 read_only: bool | None = None):
        dash = cfg["dashboard"]
        self.cfg = cfg
        self.store = store
        self.token = token
        self.token_source = token_source
        self.host = host or dash["host"]
        self.loopback = is_loopback_host(self.host)
        self.read_only = dash["read_only"] if read_only is None else read_only
        self.redactor = Redactor(cfg, token)
        self.sessions = SessionRegistry(os.path.join(cfg["home"], SESSIONS_FILE), dash["session_hours"] * 3600)
        self.started_at = time.time()
        self.hub = None  # set by sse.install
        self._cache: dict[str, tuple[object, float, object]] = {}
        self._catalogue: dict | None = None
        self._catalogue_at = 0.0
        self._lock = threading.Lock()

    # -- skills catalogue (metadata read from source, cached briefly) ------
    def catalogue(self) -> dict:
        with self._lock:
            if self._catalogue is None or time.monotonic() - self._catalogue_at > 10.0:
                self._catalogue = discover(self.cfg)
                self._catalogue_at = time.monotonic()
            return self._catalogue

    # -- aggregates keyed by the event log's position ----------------------
    def cached(self, name: str, version: object, max_age_s: float, compute):
        """`compute()` again only when `version` (e.g. the last event id) moved
        or the value is older than `max_age_s`; every task change writes an
        event, so within that bound the cached value is the current one."""
        hit = self._cache.get(name)
        now = time.monotonic()
        if hit is not None and hit[0] == version and now - hit[1] <= max_age_s:
            return hit[2]
        value = compute()
        if len(self._cache) >= CACHE_ENTRIES and name not in self._cache:
            self._cache.clear()  # keys carry query arguments: bound the table, never grow it without end
        self._cache[name] = (version, now, value)
        return value

    def task_version(self) -> tuple:
        """Where the event log and the task tables stand: it moves on every
        event and on every task creation, claim and finished attempt (those
        write no event), so an aggregate of tasks cached under it is current."""
        return (self.store.last_event_id(), *self.store.task_change_cursor())

    # -- optional parts --------------------------------------------------
    def supervisor_pid(self) -> int | None:
        from fleet.supervisor import running_supervisor_pid

        try:
            return running_supervisor_pid(self.cfg)
        except (OSError, ValueError):  # a stale or unreadable lock file means "not running"
            return None

    def read_hw(self) -> dict:
        from fleet.hw_state import read_hw_state

        return read_hw_state(self.cfg)
