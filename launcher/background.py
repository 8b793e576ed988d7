"""Background work for the launcher: store, file and HTTP calls run on worker
threads and their results come back to the Tk thread through a queue that the
UI polls with after(); the UI thread never waits on the fleet.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any


class Background:
    """A few daemon threads running jobs; `pump()` (called on the Tk thread)
    delivers each result to its callback. A job submitted under a key that is
    still in flight waits, and only the newest one waiting runs after it: a
    slow store never piles up refreshes, and a changed request (a new filter)
    is never lost."""

    def __init__(self, threads: int = 3):
        self._jobs: queue.Queue = queue.Queue()
        self._done: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._in_flight: dict[str, float] = {}
        self._waiting: dict[str, tuple] = {}
        self._closed = False
        self._workers = [threading.Thread(target=self._work, name=f"launcher-bg-{i}", daemon=True)
                         for i in range(threads)]
        for t in self._workers:
            t.start()

    def submit(self, key: str, fn: Callable[[], Any], on_done: Callable[[Any], None] | None = None,
               on_error: Callable[[BaseException], None] | None = None, *, wait: bool = True) -> bool:
        """Run fn() on a worker thread; False when `key` is already running.
        Then, with `wait`, this job runs once that one ends (unless a newer one
        replaces it); without, it is dropped (an action must not run twice)."""
        with self._lock:
            if self._closed:
                return False
            if key in self._in_flight:
                if wait:
                    self._waiting[key] = (fn, on_done, on_error)
                return False
            self._in_flight[key] = time.monotonic()
        self._jobs.put((key, fn, on_done, on_error))
        return True

    def busy(self, key: str) -> bool:
        with self._lock:
            return key in self._in_flight

    def oldest_wait(self) -> tuple[str, float] | None:
        """The job running longest and for how many seconds (None when idle)."""
        with self._lock:
            if not self._in_flight:
                return None
            key, started = min(self._in_flight.items(), key=lambda kv: kv[1])
        return key, time.monotonic() - started

    def pump(self, limit: int = 50) -> int:
        """Deliver finished jobs' results on the calling (Tk) thread."""
        n = 0
        while n < limit:
            try:
                key, ok, value, on_done, on_error = self._done.get_nowait()
            except queue.Empty:
                break
            n += 1
            with self._lock:
                self._in_flight.pop(key, None)
                waiting = self._waiting.pop(key, None)
            if ok and on_done is not None:
                on_done(value)
            elif not ok and on_error is not None:
                on_error(value)
            if waiting is not None:
                self.submit(key, *waiting)
        return n

    def close(self) -> None:
        with self._lock:
            self._closed = True
        for _ in self._workers:
            self._jobs.put(None)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            key, fn, on_done, on_error = job
            try:
                value, ok = fn(), True
            except BaseException as exc:  # noqa: BLE001 - handed to the UI, which says what happened
                value, ok = exc, False
            self._done.put((key, ok, value, on_done, on_error))
