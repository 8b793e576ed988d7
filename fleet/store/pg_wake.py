"""Wake-ups between processes (and hosts) sharing one PostgreSQL store: LISTEN
and NOTIFY on a channel named after the store's schema.

A waiting process holds one libpq connection that LISTENs, and sleeps in
`select` on its socket (no polling, no CPU) until a notification arrives or
the timeout passes. A writer that made work claimable calls `notify` after its
commit, on its own connection. A lost listening connection is reopened on the
next wait, which then returns True so the caller re-checks for work it may
have missed meanwhile. Same interface as wake.WakeChannel.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import threading
import time
from collections.abc import Callable

import psycopg
from psycopg import pq


def channel_for(schema: str) -> str:
    """The NOTIFY channel of a store: a plain lower-case identifier (<= 63 bytes)."""
    return ("fleet_wake_" + re.sub(r"[^a-z0-9_]", "_", schema.lower()))[:63]


class PgWakeChannel:
    """Notifier and waiter for one store; one instance per store object.

    `send` runs `SELECT pg_notify(channel, '')` on the caller's connection
    (given by the store, so a notify costs one round trip and no connect)."""

    def __init__(self, dsn: str, schema: str, send: Callable[[str, tuple], object]):
        self.dsn = dsn
        self.channel = channel_for(schema)
        self._send = send
        self._lock = threading.Lock()
        self._listener: pq.PGconn | None = None
        self._listener_pid: int | None = None
        self._retry_at = 0.0

    # -- waiting ---------------------------------------------------------
    def _ensure_listener(self) -> bool:
        """Open the listening connection; True when it was just (re)opened."""
        if self._listener is not None and self._listener_pid == os.getpid():
            if self._listener.status == pq.ConnStatus.OK:
                return False
            self._drop_listener()
        elif self._listener is not None:  # inherited over a fork: the parent's socket, never ours to use
            self._listener = None
        conn = pq.PGconn.connect(psycopg.conninfo.make_conninfo(self.dsn, connect_timeout=10).encode())
        if conn.status != pq.ConnStatus.OK:
            conn.finish()
            raise OSError("cannot connect")
        result = conn.exec_(f'LISTEN "{self.channel}"'.encode())
        if result.status != pq.ExecStatus.COMMAND_OK:
            conn.finish()
            raise OSError("LISTEN failed")
        conn.nonblocking = 1
        self._listener, self._listener_pid = conn, os.getpid()
        return True

    def _drop_listener(self) -> None:
        conn, self._listener = self._listener, None
        if conn is not None and self._listener_pid == os.getpid():
            with contextlib.suppress(Exception):  # closing a broken connection may fail; it is gone either way
                conn.finish()

    def wait(self, timeout: float) -> bool:
        """Sleep until a wake-up arrives or `timeout` passes; True if woken.

        The first call (and the first after a lost connection) only starts
        listening and returns True, so the caller re-checks: anything
        committed after that point wakes a later wait. While the server
        cannot be reached the wait sleeps (at most a second) and says False.
        """
        timeout = max(0.0, timeout)
        with self._lock:
            try:
                if time.monotonic() < self._retry_at:
                    raise OSError("reconnect backoff")
                if self._ensure_listener():
                    return True
            except (OSError, psycopg.Error):
                self._retry_at = time.monotonic() + 1.0
                time.sleep(min(timeout, 1.0))
                return False
            conn = self._listener
            assert conn is not None
            if self._drain(conn):  # notifications that arrived while nobody waited
                return True
        try:
            ready, _, _ = select.select([conn.socket], [], [], timeout)
        except (OSError, ValueError, psycopg.Error):
            ready = [True]
        if not ready:
            return False
        with self._lock:
            if not self._drain(conn) and conn.status != pq.ConnStatus.OK:
                self._drop_listener()  # lost: the next wait reconnects and says True
            return True

    @staticmethod
    def _drain(conn: pq.PGconn) -> bool:
        """Read what the socket holds; True if any notification was in it."""
        got = False
        try:
            conn.consume_input()
            while conn.notifies() is not None:
                got = True
        except psycopg.Error:
            return True  # the connection failed: the caller re-checks and the next wait reconnects
        return got

    # -- notifying -------------------------------------------------------
    def notify(self) -> None:
        """Wake every waiter on this store, on every host. Never raises."""
        with contextlib.suppress(Exception):  # a lost wake-up is caught by the waiters' timeouts
            self._send("SELECT pg_notify(%s, '')", (self.channel,))

    def close(self) -> None:
        with self._lock:
            self._drop_listener()
