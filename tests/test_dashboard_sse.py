"""The dashboard as a real process (waitress on loopback): live events over
SSE, keep-alive comments, Last-Event-ID resume, the stream cap's clear 503,
plain calls answered while streams are open, secrets blanked in events, and
a busy port named with the process that holds it."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import httpx
import pytest

from fleet.db import open_store
from tests.fakes.dashboard_env import (
    REPO,
    DashboardProcess,
    SSEReader,
    wait_until,
    write_config,
)
from tests.fakes.fleetproc import env_for


@pytest.fixture
def server(isolated_home):
    cfg = write_config(isolated_home, dashboard={"keepalive_s": 1.0, "max_streams": 3,
                                                        "max_anonymous_streams": 3, "poll_s": 0.05})
    store = open_store(cfg)
    with DashboardProcess(isolated_home) as dash:
        yield dash, store
    store.close()


def _stream(dash, headers=None, timeout=20.0):
    return httpx.stream("GET", dash.base + "/api/stream", headers=headers or {},
                        timeout=httpx.Timeout(timeout, connect=5))


def test_task_change_reaches_an_open_stream(server):
    dash, store = server
    with _stream(dash) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        sse = SSEReader(resp)
        assert sse.until(lambda evs: evs)[0]["retry"] == "2000"
        box = {}

        def enqueue_soon():
            box["task"] = store.enqueue("noop", {"n": 1})

        threading.Timer(0.3, enqueue_soon).start()
        events = sse.until(lambda evs: any(e.get("event") == "task" for e in evs))
    ev = next(e for e in events if e.get("event") == "task")
    data = json.loads(ev["data"])
    wait_until(lambda: "task" in box, timeout=10, what="enqueue() to return")  # the event can win the race
    # a creation writes no event: the entry is derived from the task row, live only (no id to resume from)
    assert data["task_id"] == box["task"].id and data["action"] == "enqueue" and "id" not in ev


def test_agent_and_alert_changes_have_their_kinds(server):
    dash, store = server
    with _stream(dash) as resp:
        sse = SSEReader(resp)
        sse.until(lambda evs: any(e.get("event") == "hello" for e in evs))
        store.register_agent("coder_1", "coder", status="starting")
        store.raise_alert("critical", "gpu", "too hot")
        events = sse.until(lambda evs: {"agent", "alert"} <= {e.get("event") for e in evs})
    assert {"agent", "alert"} <= {e.get("event") for e in events}


def test_idle_stream_gets_keep_alive_comments(server):
    dash, _ = server
    with _stream(dash) as resp:
        events = SSEReader(resp).until(lambda evs: any(e.get("comment") == "keep-alive" for e in evs), timeout=10)
    assert any(e.get("comment") == "keep-alive" for e in events)


def test_last_event_id_resumes_where_the_client_left_off(server):
    dash, store = server
    # events (here: cancellations) are what a stream resumes from
    first, second, third = (store.cancel(store.enqueue("noop", {"n": n}).id) for n in (1, 2, 3))
    after = store.events(task_id=first.id)[0]["id"]
    with _stream(dash, headers={"Last-Event-ID": str(after)}) as resp:
        events = SSEReader(resp).until(lambda evs: any(json.loads(e["data"]).get("task_id") == third.id
                                                     for e in evs if e.get("event") == "task"))
    got = [json.loads(e["data"])["task_id"] for e in events if e.get("event") == "task" and "id" in e]
    assert got == [second.id, third.id]


def test_stream_cap_refuses_clearly_and_plain_calls_stay_fast(server):
    dash, _ = server
    streams = [_stream(dash) for _ in range(3)]
    opened = [s.__enter__() for s in streams]
    try:
        for r in opened:
            assert r.status_code == 200
        refused = httpx.get(dash.base + "/api/stream", timeout=10)
        assert refused.status_code == 503 and "too many live streams" in refused.json()["error"]
        assert refused.headers["Retry-After"]
        for _ in range(5):
            assert httpx.get(dash.base + "/api/status", timeout=10).status_code == 200
    finally:
        for s in streams:
            s.__exit__(None, None, None)


def test_anonymous_streams_cannot_lock_the_operator_out(server):
    """Another local process filling every anonymous slot leaves the signed-in
    operator's slots free; signed-in streams have a cap of their own."""
    dash, _ = server
    anonymous = [_stream(dash) for _ in range(3)]
    signed_in = [_stream(dash, headers=dash.headers()) for _ in range(3)]
    try:
        assert all(s.__enter__().status_code == 200 for s in anonymous)
        refused = httpx.get(dash.base + "/api/stream", timeout=10)
        assert refused.status_code == 503 and "without a token" in refused.json()["error"]
        assert "sign in" in refused.json()["error"]
        assert all(s.__enter__().status_code == 200 for s in signed_in)
        over = httpx.get(dash.base + "/api/stream", headers=dash.headers(), timeout=10)
        assert over.status_code == 503 and "max_streams" in over.json()["error"]
    finally:
        for s in anonymous + signed_in:
            s.__exit__(None, None, None)


def test_events_never_carry_the_token(server):
    dash, store = server
    with _stream(dash) as resp:
        sse = SSEReader(resp)
        sse.until(lambda evs: any(e.get("event") == "hello" for e in evs))
        store.record_event("someone", "note", detail={"leak": dash.token})
        events = sse.until(lambda evs: any(e.get("event") == "fleet" for e in evs))
    text = json.dumps(events)
    assert dash.token not in text and "[redacted]" in text


def test_busy_port_names_the_process_holding_it(server):
    dash, _ = server
    out = subprocess.run([sys.executable, str(REPO / "fleet" / "dashboard.py"), "--port", str(dash.port)],
                         cwd=str(REPO), env=env_for(dash.home), capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode != 0
    assert f"port {dash.port}" in out.stderr and "already in use" in out.stderr
    assert f"PID {dash.proc.pid}" in out.stderr


def _ids(chunks: list[str], kind: str = "task") -> list[int]:
    out = []
    for chunk in chunks:
        for block in chunk.split("\n\n"):
            fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
            if fields.get("event") == kind and "id" in fields:  # live-only entries carry no id
                out.append(int(fields["id"]))
    return out


def test_a_reader_that_falls_behind_the_buffer_is_filled_in_from_the_store(isolated_home):
    import collections

    from tests.fakes.dashboard_env import make_app

    app, _cfg, store = make_app(isolated_home, dashboard={"poll_s": 0.05})
    hub = app.extensions["fleet"].hub
    resp = app.test_client().get("/api/stream", buffered=False)
    chunks = (c.decode() if isinstance(c, bytes) else c for c in resp.response)
    assert "hello" in next(chunks)
    hub.buffer = collections.deque(maxlen=5)  # a tiny shared buffer: this reader will fall behind it
    tasks = [store.cancel(store.enqueue("noop", {"n": i}).id) for i in range(20)]  # one event each
    last = store.last_event_id()
    wait_until(lambda: hub.last_id == last, timeout=10, what="the pump to read every event")
    got = []
    while len(got) < 20:
        got += _ids([next(chunks)])
    assert got == [e["id"] for e in store.events(limit=100) if e["task_id"] in {t.id for t in tasks}]
    resp.close()
    hub.stop()
    store.close()


def test_resume_too_far_back_ends_with_a_gap_event(server):
    dash, store = server
    for i in range(1100):  # one event each (a cancellation; creations write none)
        store.cancel(store.enqueue("noop", {"n": i}).id)
    with _stream(dash, headers={"Last-Event-ID": "0"}) as resp:
        events = SSEReader(resp).until(lambda evs: any(e.get("event") == "gap" for e in evs), timeout=30)
    tasks = [e for e in events if e.get("event") == "task"]
    gap = json.loads(next(e for e in events if e.get("event") == "gap")["data"])
    assert len(tasks) == 1000 and gap["to"] == store.last_event_id() and "re-read" in gap["reason"]


def test_streams_that_never_start_release_their_slot(isolated_home):
    from tests.fakes.dashboard_env import make_app

    app, _cfg, store = make_app(isolated_home, dashboard={"max_streams": 1, "max_anonymous_streams": 1})
    client = app.test_client()
    for _ in range(3):  # HEAD: the body is never iterated; closing it (as the server does) frees the slot
        head = client.head("/api/stream")
        assert head.status_code == 200
        head.close()
    resp = client.get("/api/stream", buffered=False)
    assert resp.status_code == 200
    assert client.get("/api/stream").status_code == 503  # the one slot is taken
    resp.close()
    again = client.get("/api/stream", buffered=False)
    assert again.status_code == 200
    again.close()
    app.extensions["fleet"].hub.stop()
    store.close()


def test_a_closed_tab_frees_its_slot_long_before_the_next_keep_alive(isolated_home):
    cfg = write_config(isolated_home, dashboard={"keepalive_s": 60.0, "max_streams": 1,
                                                    "max_anonymous_streams": 1})
    with DashboardProcess(isolated_home) as dash:
        with _stream(dash) as resp:
            SSEReader(resp).until(lambda evs: any(e.get("event") == "hello" for e in evs))
            assert httpx.get(dash.base + "/api/stream", timeout=10).status_code == 503

        def slot_free():
            with _stream(dash, timeout=10) as again:
                return again.status_code == 200

        wait_until(slot_free, timeout=15, step=0.3, what="the closed stream's slot to be released")
    assert cfg["dashboard"]["keepalive_s"] == 60.0
