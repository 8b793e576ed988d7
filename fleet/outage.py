"""The supervisor's view of a store in trouble. `StoreOutage`: a store that
cannot take writes (a full disk, a lost permission, the write lock held past
the busy timeout): when an outage began and why, how long to back off before
the next try, the one alert it raises, and when writes work again.
`damage_message`: what to tell the operator when the integrity check finds
the store damaged (the supervisor then parks workers and claims nothing).

The rule: the supervisor never gives up on store errors. While writes fail it
parks workers (an exited worker is not respawned into the same error; running
ones wait for the store themselves), backs off its own retries, and raises
one alert: in the log, in the store when the store can take the row, and on
stderr when it cannot (the row is then stored once writes work again). It
resumes by itself, same PID, once a write succeeds and the filesystem has room
again (`write_health()` is healthy), and says how long the outage lasted.
"""

from __future__ import annotations

import logging
import sys
import time

from .db import StoreError

log = logging.getLogger("fleet.supervisor")

ALERT_KEY = "store_writes_failing"
PROBE_MIN_S = 0.5   # first retry of a failing store
PROBE_MAX_S = 5.0   # retries back off to at most this interval


class StoreOutage:
    """None of this touches the store until `raise_alert`/`try_resume`; each
    call is safe while the store fails."""

    def __init__(self, component: str, *, echo: bool):
        self.component = component
        self.echo = echo            # the log already goes to stderr
        self.since: float | None = None   # wall time the outage began; None: writes work
        self.why = ""
        self.errors = 0
        self.next_probe = 0.0       # monotonic time of the next resume try
        self.alert_stored = False

    @property
    def active(self) -> bool:
        return self.since is not None

    def failed(self, store, why: str) -> None:
        """A write failed (or a worker died while the store was degraded):
        begin an outage, or back the next try off further."""
        self.errors += 1
        delay = min(PROBE_MAX_S, PROBE_MIN_S * 2 ** min(self.errors - 1, 6))
        self.next_probe = time.monotonic() + delay
        if self.since is not None:
            log.debug("store still failing (%d errors): %s", self.errors, why)
            return
        self.since, self.why, self.alert_stored = time.time(), why, False
        message = self._message()
        log.error("%s", message)
        try:
            store.raise_alert("critical", self.component, message, dedup_key=ALERT_KEY)
            self.alert_stored = True
        except StoreError:
            if not self.echo:  # (with echo on, the log line above is already on stderr)
                print(f"fleet-supervisor: ALERT: {message}", file=sys.stderr, flush=True)

    def backoff_s(self) -> float:
        """How long the loop may sleep before the next try."""
        return max(0.0, self.next_probe - time.monotonic()) if self.active else 0.0

    def try_resume(self, store, component_heartbeat) -> bool:
        """When a retry is due: True (and the outage is over) once the
        filesystem has room and a real write, `component_heartbeat()`, commits."""
        if not self.active or time.monotonic() < self.next_probe:
            return False
        health = store.write_health()
        if health["status"] != "healthy":
            self.failed(store, health["writes"] or "writes fail")
            return False
        try:
            component_heartbeat()
            if not self.alert_stored:  # the database could not take it then: record it now
                store.raise_alert("critical", self.component, self._message(), dedup_key=ALERT_KEY)
            lasted = time.time() - self.since
            store.record_event(self.component, "store_recovered",
                               detail={"outage_s": round(lasted, 1), "why": self.why})
        except StoreError as exc:
            self.failed(store, str(exc))
            return False
        log.warning("the store takes writes again after %.0f s (%s); resuming parked workers", lasted, self.why)
        self.since, self.why, self.errors = None, "", 0
        return True

    def _message(self) -> str:
        began = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        return (f"the store cannot take writes since {began}: {self.why}. Workers are parked (not "
                "respawned) and the supervisor keeps retrying; it resumes by itself once writes succeed. "
                "Committed tasks are safe: free space or fix the cause named here.")


def damage_message(cfg: dict, found: str) -> str:
    """The critical alert for a store the integrity check found damaged: what
    was found, that nothing is claimed, and how to restore: the newest backup
    whose own check passed, or, with none, how to save what can be read."""
    from .backup import list_backups

    postgresql = cfg["store"]["backend"] == "postgresql"
    db = f"in schema {cfg['store']['schema']} on PostgreSQL" if postgresql else cfg["paths"]["db"]
    text = " ".join(found.split())
    head = (f"the store {db} is damaged (integrity check: {text[:300]}). Workers are parked and no task is "
            "claimed until it is fixed: stop the fleet, then ")
    good = [b for b in list_backups(cfg) if b.get("integrity") == "ok"]
    if good:
        newest = good[0]
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(newest["created_at"])) \
            if isinstance(newest.get("created_at"), (int, float)) else newest.get("created_at", "?")
        return head + (f"restore the newest good backup: `lead_client.py restore {newest['id']}` (taken {when}; "
                       "`lead_client.py backup --list` shows the others), and start the fleet again.")
    if postgresql:
        return head + ("repair it with the server's own tools (pg_amcheck, REINDEX) or restore the server's own "
                       "backup (there is no Fleet backup), and start the fleet again.")
    return head + ("save what can still be read (there is no backup) with the sqlite3 command-line tool: "
                   f"`sqlite3 {db} .recover > recovered.sql`, move the damaged file away, load what was saved "
                   f"with `sqlite3 {db} < recovered.sql`, and start the fleet again.")
