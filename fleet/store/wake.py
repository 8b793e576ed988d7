"""Wake-up channel between processes sharing one SQLite store.

Each waiting process binds a Unix datagram socket in a directory derived from
the database path; a writer that makes work claimable sends one byte to every
socket there. An idle waiter sleeps in `select` (no polling) and wakes within
microseconds. Sockets of dead processes refuse the datagram and are removed.
Where Unix sockets are unavailable the waiter degrades to a timed sleep.
"""

from __future__ import annotations

import hashlib
import os
import select
import socket
import tempfile
import threading
import time

_HAS_UNIX = hasattr(socket, "AF_UNIX") and os.name == "posix"
_RACY_WINDOW_NS = 50_000_000  # 50 ms: far above any filesystem timestamp granularity


def wake_dir_for(db_path: str) -> str:
    """A short directory (socket paths are limited to ~100 bytes) per database."""
    real = os.path.realpath(db_path)
    digest = hashlib.sha1(real.encode()).hexdigest()[:16]
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return os.path.join(tempfile.gettempdir(), f"fleet-wake-{uid}", digest)


class WakeChannel:
    """Notifier and waiter for one database; one instance per store object."""

    def __init__(self, db_path: str):
        self.directory = wake_dir_for(db_path)
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._sock_path: str | None = None
        self._sock_pid: int | None = None
        self._send_sock: socket.socket | None = None
        self._send_pid: int | None = None
        self._peers: list[str] = []
        self._peers_mtime: int | None = None

    # -- waiting ---------------------------------------------------------
    def _ensure_listener(self) -> bool:
        """Bind this process's socket; True when it was just created."""
        if self._sock is not None and self._sock_pid == os.getpid():
            return False
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        path = os.path.join(self.directory, f"w{os.getpid()}-{os.urandom(4).hex()}")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind(path)
        self._sock, self._sock_path, self._sock_pid = sock, path, os.getpid()
        return True

    def wait(self, timeout: float) -> bool:
        """Sleep until a wake-up arrives or `timeout` passes; True if woken.

        The first call only binds the socket and returns True, so the caller
        re-checks for work: anything committed after that point is seen.
        """
        if not _HAS_UNIX:
            time.sleep(max(0.0, min(timeout, 0.5)))
            return False
        with self._lock:
            try:
                if self._ensure_listener():
                    return True
            except OSError:
                time.sleep(max(0.0, min(timeout, 0.5)))
                return False
            sock = self._sock
        assert sock is not None
        try:
            ready, _, _ = select.select([sock], [], [], max(0.0, timeout))
        except (OSError, ValueError):  # the store was closed under a waiting thread (shutdown): nothing to wait on
            return False
        if not ready:
            return False
        while True:  # drain: one wake-up covers every commit before it
            try:
                sock.recv(64)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError:
                return True

    # -- notifying -------------------------------------------------------
    def _peer_paths(self) -> list[str]:
        """Socket paths of the waiters, re-listed when the directory changed.

        A directory's mtime has coarse (jiffy) resolution, so a waiter that
        binds in the same tick as our last listing leaves the mtime unchanged.
        Like git's "racy" index check, a listing is trusted only once the
        mtime is older than a safety window; until then we list every time.
        """
        try:
            mtime = os.stat(self.directory).st_mtime_ns
        except FileNotFoundError:
            return []
        racy = time.time_ns() - mtime < _RACY_WINDOW_NS
        if racy or mtime != self._peers_mtime:
            try:
                names = os.listdir(self.directory)
            except FileNotFoundError:
                names = []
            self._peers = [os.path.join(self.directory, n) for n in names]
            self._peers_mtime = mtime
        return self._peers

    def notify(self) -> None:
        """Wake every waiter on this database. Never raises, never blocks."""
        if not _HAS_UNIX:
            return
        with self._lock:
            peers = self._peer_paths()
            if not peers:
                return
            if self._send_sock is None or self._send_pid != os.getpid():
                self._send_sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._send_sock.setblocking(False)
                self._send_pid = os.getpid()
            dead = []
            for path in peers:
                try:
                    self._send_sock.sendto(b"!", path)
                except (ConnectionRefusedError, FileNotFoundError):
                    dead.append(path)
                except OSError:
                    pass  # buffer full: that waiter already has a wake-up pending
            for path in dead:
                try:
                    os.unlink(path)
                except OSError:
                    pass
            if dead:
                self._peers_mtime = None

    def close(self) -> None:
        with self._lock:
            if self._sock is not None and self._sock_pid == os.getpid():
                self._sock.close()
                if self._sock_path:
                    try:
                        os.unlink(self._sock_path)
                    except OSError:
                        pass
            self._sock = None
            if self._send_sock is not None and self._send_pid == os.getpid():
                self._send_sock.close()
            self._send_sock = None
