"""Live updates: /api/stream (Server-Sent Events). One pump thread tails the
store's event log and the hardware state file and fans changes out to every
open stream; streams resume from Last-Event-ID, send a keep-alive comment
when idle, and are capped, anonymous and signed-in streams apart (past a
cap: a clear 503).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import threading
import time

from flask import Blueprint, Response, request, stream_with_context

from .common import ctx, doc, error_response

log = logging.getLogger("dashboard.sse")
BUFFER = 2000
REPLAY_MAX = 1000
IDLE_EXIT_S = 30.0  # the pump stops this long after the last stream closed

_KIND = {
    "alert": "alert", "alert_ack": "alert",
    "agent_start": "agent", "agent_status": "agent",
    "flag": "fleet", "lock_acquired": "fleet", "lock_released": "fleet",
    "enqueue_many": "task",  # a bulk enqueue: one event for the batch (task_id is empty)
}


def event_kind(ev: dict) -> str:
    if ev.get("action") in _KIND:
        return _KIND[ev["action"]]
    if ev.get("task_id") is not None:
        return "task"
    if ev.get("agent"):
        return "agent"
    return "fleet"


class EventHub:
    """Tails the store and hw_state for every stream of one app."""

    def __init__(self, c):
        self.c = c
        self.poll_s = float(c.cfg["dashboard"]["poll_s"])
        self.cap = int(c.cfg["dashboard"]["max_streams"])  # signed-in streams
        self.anonymous_cap = int(c.cfg["dashboard"]["max_anonymous_streams"])
        self.cond = threading.Condition()
        self.buffer: collections.deque = collections.deque(maxlen=BUFFER)  # (seq, event_id|None, text)
        self.seq = 0
        self.last_id = 0
        self.active = 0  # every open stream (the pump runs while there is one)
        self.anonymous = 0  # of which opened without a token
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._hw_mtime: float | None = None
        self._task_cursor: tuple[int, float, int] = (0, 0.0, 0)  # claims and completions: not events (see store.history)
        self._lock = threading.Lock()

    # -- the pump --------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                with self.cond:
                    self.last_id = self.c.store.last_event_id()
                    self._task_cursor = self.c.store.task_change_cursor()
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="sse-pump", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self.cond:
            self.cond.notify_all()

    def _run(self) -> None:
        last_busy = time.monotonic()
        while not self._stop.is_set():
            if self.active > 0:
                last_busy = time.monotonic()
            elif time.monotonic() - last_busy > IDLE_EXIT_S:
                with self._lock:  # no stream for a while: stop polling (start() revives it)
                    if self.active == 0:
                        self._thread = None
                        return
            try:
                self.poll_once()
            except Exception:  # a transient store error must not end live updates
                log.exception("live-event pump: poll failed; retrying")
                self._stop.wait(self.poll_s)
                continue
            # Sleep until a writer signals the store (enqueue, finish, ...) or poll_s
            # passes: events written without a wake-up (heartbeats, alerts) wait at most poll_s.
            self.c.store.wait_for_work(self.poll_s)

    def poll_once(self) -> int:
        """Read new store events and hw changes into the buffer; returns how many."""
        new, cursor = [], self.last_id
        while True:
            batch = self.c.store.events(after_id=cursor, limit=500)
            for ev in batch:
                new.append((ev["id"], event_kind(ev), ev))
                cursor = ev["id"]
            if len(batch) < 500:
                break
        # Creations, claims and completions are live-only (no id, not replayed on resume):
        # a client that reconnects re-reads the current state anyway.
        changes, *cursor_after = self.c.store.task_changes(*self._task_cursor)
        self._task_cursor = tuple(cursor_after)
        new += [(None, "task", entry) for entry in changes]
        hw = self._hw_change()
        if hw is not None:
            new.append((None, "hw", hw))
        if new:
            texts = [(eid, format_event(eid, kind, data, self.c)) for eid, kind, data in new]
            with self.cond:
                for eid, text in texts:
                    self.seq += 1
                    self.buffer.append((self.seq, eid, text))
                self.last_id = cursor
                self.cond.notify_all()
        return len(new)

    def _hw_change(self) -> dict | None:
        path = self.c.cfg["paths"]["hw_state"]
        try:
            mtime = os.stat(path).st_mtime if path else None
        except OSError:
            mtime = None
        if mtime is None or mtime == self._hw_mtime:
            return None
        self._hw_mtime = mtime
        hw = self.c.read_hw()
        return {"tier": (hw.get("tier") or {}).get("name"), "thermal": (hw.get("thermal") or {}).get("state"),
                "stale": hw.get("stale"), "written_at": hw.get("written_at"),
                "gpus": [{"index": g.get("index"), "temp_c": g.get("temp_c"), "vram_used_mb": g.get("vram_used_mb")}
                         for g in hw.get("gpus") or []]}

    # -- subscribers -----------------------------------------------------
    def try_enter(self, anonymous: bool) -> bool:
        """Take a slot: anonymous streams and signed-in ones have separate caps,
        so streams opened without the token can never lock the operator out."""
        with self.cond:
            if anonymous:
                if self.anonymous >= self.anonymous_cap:
                    return False
                self.anonymous += 1
            elif self.active - self.anonymous >= self.cap:
                return False
            self.active += 1
            return True

    def leave(self, anonymous: bool) -> None:
        with self.cond:
            self.active -= 1
            if anonymous:
                self.anonymous -= 1

    def cursor(self) -> tuple[int, int]:
        """(buffer position, last store event id in the buffer), read together."""
        with self.cond:
            return self.seq, self.last_id

    def wait_after(self, seq: int, timeout: float) -> tuple[int, list[tuple[int | None, str]], bool]:
        """Buffered events after `seq` (waiting up to `timeout` for some), and
        whether some fell out of the buffer before this reader saw them."""
        with self.cond:
            if self.seq <= seq and not self._stop.is_set():
                self.cond.wait(timeout)
            items = [(eid, text) for s, eid, text in self.buffer if s > seq]
            gap = bool(self.buffer) and self.buffer[0][0] > seq + 1
            return self.seq, items, gap


def format_event(event_id: int | None, kind: str, data: dict, c) -> str:
    body = c.redactor.scrub(json.dumps({"kind": kind, **data}, separators=(",", ":"), default=str))
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {body}\n\n"


def _resume_from() -> int | None:
    raw = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if value >= 0 else None


bp = Blueprint("sse", __name__)


@bp.get("/api/stream")
@doc("Server-Sent Events: task, agent, alert, fleet and hardware changes as they happen; resumes from "
     "Last-Event-ID; keep-alive comment when idle", tag="stream", stream=True,
     query={"last_event_id": {"type": "integer", "minimum": 0,
                              "description": "resume point when the Last-Event-ID header cannot be sent"}},
     responses={"503": "too many open streams"})
def stream():
    c = ctx()
    hub: EventHub = c.hub
    anonymous = request.fleet_auth is None
    if not hub.try_enter(anonymous):
        if anonymous:
            resp = error_response(
                503, f"too many live streams without a token are open (the cap is {hub.anonymous_cap}); "
                     "sign in at /signin (signed-in streams have their own slots) or raise "
                     "[dashboard] max_anonymous_streams", cap=hub.anonymous_cap)
        else:
            resp = error_response(
                503, f"too many live streams are open (the cap is {hub.cap}); close other dashboard tabs "
                     "or raise [dashboard] max_streams", cap=hub.cap)
        resp.headers["Retry-After"] = "10"
        return resp
    hub.start()  # after try_enter, so an idle pump cannot exit under a new stream
    resume = _resume_from()
    keepalive = float(c.cfg["dashboard"]["keepalive_s"])
    store = c.store
    # waitress (with channel_request_lookahead) tells us when the client went away,
    # so a closed tab frees its slot within a second, not at the next keep-alive.
    gone = request.environ.get("waitress.client_disconnected") or (lambda: False)

    def replay(after: int, upto: int):
        """Stored events in (after, upto]; past REPLAY_MAX a `gap` event tells the
        client to re-read current state instead. Returns the last id covered."""
        count = 0
        while after < upto:
            batch = [ev for ev in store.events(after_id=after, limit=500) if ev["id"] <= upto]
            if not batch:
                break
            for ev in batch:
                yield format_event(ev["id"], event_kind(ev), ev, c)
                after = ev["id"]
                count += 1
            if count >= REPLAY_MAX and after < upto:
                yield format_event(upto, "gap", {"from": after, "to": upto,
                                                 "reason": "too many events to replay; re-read current state"}, c)
                return upto
        return max(after, upto)

    def generate():
        """The stream itself; its slot is released by call_on_close, even if it never starts."""
        seq, floor = hub.cursor()
        yield f"retry: 2000\nevent: hello\ndata: {json.dumps({'last_event_id': floor})}\n\n"
        sent = resume if resume is not None else floor
        if resume is not None and resume < floor:
            sent = yield from replay(resume, floor)
        last_write = time.monotonic()
        while not hub._stop.is_set() and not gone():
            wait = min(1.0, max(0.05, keepalive - (time.monotonic() - last_write)))
            seq, items, gap = hub.wait_after(seq, wait)
            if gap:  # this reader fell behind the shared buffer: fill in from the store
                first = min((eid for eid, _ in items if eid is not None), default=hub.last_id + 1)
                if first - 1 > sent:
                    sent = yield from replay(sent, first - 1)
                    last_write = time.monotonic()
            chunk = [text for eid, text in items if eid is None or eid > sent]
            for eid, _ in items:
                if eid is not None:
                    sent = max(sent, eid)
            if chunk:
                yield "".join(chunk)
                last_write = time.monotonic()
            elif time.monotonic() - last_write >= keepalive:
                yield ": keep-alive\n\n"
                last_write = time.monotonic()

    resp = Response(stream_with_context(generate()), mimetype="text/event-stream")
    released = threading.Event()

    def release() -> None:
        if not released.is_set():
            released.set()
            hub.leave(anonymous)

    resp.call_on_close(release)
    resp.headers["Cache-Control"] = "no-cache"
    resp.headers["X-Accel-Buffering"] = "no"
    return resp


def install(app, c) -> None:
    c.hub = EventHub(c)
    app.register_blueprint(bp)
