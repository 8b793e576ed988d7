"""Server-side browser sessions: each sign-in gets a fresh random session id,
kept (as a hash, with its expiry) in a 0600 file in the fleet home, so signing
out revokes a copied cookie at once and a dashboard restart keeps sessions.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
import time

from fleet.atomic import atomic_write_text

SESSIONS_FILE = "dashboard_sessions.json"
MAX_SESSIONS = 1000  # past this, the sessions closest to expiry are dropped first


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8", "surrogatepass")).hexdigest()


class SessionRegistry:
    """The live session ids of one dashboard (one fleet home)."""

    def __init__(self, path: str, lifetime_s: float):
        self.path = path
        self.lifetime_s = float(lifetime_s)
        self._lock = threading.Lock()
        self._live: dict[str, float] = {}  # sha256(sid) -> expires_at (epoch seconds)
        self._mtime: float | None = None

    def _load(self) -> None:
        """Re-read the file when another process (or a restart) changed it."""
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            self._live, self._mtime = {}, None
            return
        if mtime == self._mtime:
            return
        try:
            with open(self.path, encoding="utf-8") as fh:
                data = json.load(fh)
            live = {str(k): float(v) for k, v in data.get("sessions", {}).items()}
        except (OSError, ValueError, AttributeError, TypeError):
            live = {}  # unreadable: every browser signs in again, nobody gets in without the token
        self._live, self._mtime = live, mtime

    def _save(self) -> None:
        now = time.time()
        live = {k: v for k, v in self._live.items() if v > now}
        if len(live) > MAX_SESSIONS:
            live = dict(sorted(live.items(), key=lambda kv: kv[1])[-MAX_SESSIONS:])
        self._live = live
        atomic_write_text(self.path, json.dumps({"sessions": live}), mode=0o600)
        self._mtime = os.stat(self.path).st_mtime_ns

    def create(self, replaces: str | None = None) -> str:
        """A new session id (rotated at every sign-in); `replaces` is revoked."""
        sid = secrets.token_urlsafe(32)
        with self._lock:
            self._load()
            if replaces:
                self._live.pop(_digest(replaces), None)
            self._live[_digest(sid)] = time.time() + self.lifetime_s
            self._save()
        return sid

    def is_live(self, sid: object) -> bool:
        if not isinstance(sid, str) or not sid:
            return False
        with self._lock:
            self._load()
            expires = self._live.get(_digest(sid))
        return expires is not None and expires > time.time()

    def revoke(self, sid: object) -> bool:
        """End a session; True when it was live."""
        if not isinstance(sid, str) or not sid:
            return False
        with self._lock:
            self._load()
            found = self._live.pop(_digest(sid), None) is not None
            if found:
                self._save()
        return found
