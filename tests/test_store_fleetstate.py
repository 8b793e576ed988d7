"""Fleet state beside the queue: agents, messages, notes, alerts (dedup),
flags, named locks, the audit log of events and liveness samples. Runs on
every backend (the `store` and `store_factory` fixtures)."""

from __future__ import annotations

import time

import pytest

from fleet.db import InvalidInput, NotFound


def test_agents_register_heartbeat_status_and_current_task(store):
    a = store.register_agent("coder_1", "coder", pid=4242)
    assert a["status"] == "starting" and a["pid"] == 4242 and a["progress"] == 0
    t = store.enqueue("s", {})
    before = store.get_agent("coder_1")["last_heartbeat"]
    claimed = store.claim("coder_1", ["s"])
    agent = store.get_agent("coder_1")  # the claim's own transaction writes the agent row
    assert agent["current_task"] == t.id and agent["status"] == "busy" and agent["last_heartbeat"] >= before
    store.heartbeat("coder_1", progress=3, status="busy", detail={"step": "compile"})
    agent = store.get_agent("coder_1")
    assert agent["progress"] == 3 and agent["status"] == "busy" and agent["detail"] == {"step": "compile"}
    store.complete(t.id, claimed.lease_token)
    agent = store.get_agent("coder_1")  # and so does the completion's
    assert agent["current_task"] is None and agent["status"] == "idle" and agent["detail"] is None
    store.heartbeat("coder_1", status="paused")
    store.heartbeat("coder_1", status="idle")
    store.set_agent_status("coder_1", "parked", actor="supervisor")
    assert store.get_agent("coder_1")["status"] == "parked"
    # busy/idle flips around every task are routine, not events; other changes are traced
    changes = [e["detail"] for e in store.events(agent="coder_1", action="agent_status")]
    assert changes == [{"from": "idle", "to": "paused"}, {"from": "idle", "to": "parked"}]
    assert [x["name"] for x in store.list_agents()] == ["coder_1"]
    store.remove_agent("coder_1")
    assert store.get_agent("coder_1") is None


def test_messages_inbox_mark_read_broadcast_and_history(store):
    store.register_agent("w1", "r")
    store.register_agent("w2", "r")
    mid = store.send_message("lead", "w1", {"type": "pause"})
    store.send_message("lead", "supervisor", {"type": "restart", "target": "w1"}, channel="sup")
    inbox = store.inbox("w1")
    assert [m["id"] for m in inbox] == [mid] and inbox[0]["body"] == '{"type":"pause"}'
    assert store.inbox("w1", mark_read=True)[0]["id"] == mid
    assert store.inbox("w1") == [] and len(store.inbox("w1", unread_only=False)) == 1
    ids = store.broadcast("lead", "all hands")
    assert len(ids) == 2 and store.inbox("w2")[0]["body"] == "all hands"
    assert [m["channel"] for m in store.messages(channel="sup")] == ["sup"]
    assert len(store.messages(after_id=mid)) == 3
    with pytest.raises(InvalidInput, match="unknown channel"):
        store.send_message("a", "b", "x", channel="smoke-signals")


def test_notes_are_a_channel_scratchpad(store):
    store.post_note("research", "first", author="r1")
    store.post_note("research", {"k": 2}, author="r2")
    store.post_note("other", "elsewhere")
    notes = store.notes("research")
    assert [n["body"] for n in notes] == ["first", '{"k":2}'] and notes[0]["author"] == "r1"
    assert store.notes("research", since=time.time() + 60) == []
    with pytest.raises(InvalidInput):
        store.post_note("", "x")


def test_alerts_deduplicate_until_acknowledged(store):
    a1 = store.raise_alert("warning", "hw", "GPU hot", dedup_key="gpu-temp")
    a2 = store.raise_alert("critical", "hw", "GPU very hot", dedup_key="gpu-temp")
    assert a1 == a2
    active = store.list_alerts()
    assert len(active) == 1 and active[0]["occurrences"] == 2 and active[0]["severity"] == "critical"
    acked = store.ack_alert(a1, by="ops")
    assert acked["acked_by"] == "ops" and store.list_alerts() == []
    a3 = store.raise_alert("warning", "hw", "GPU hot again", dedup_key="gpu-temp")
    assert a3 != a1 and len(store.list_alerts(active_only=False)) == 2
    with pytest.raises(InvalidInput):
        store.raise_alert("apocalyptic", "hw", "x")
    with pytest.raises(NotFound):
        store.ack_alert(999)


def test_flags_round_trip_json_values(store):
    assert store.get_flag("paused", False) is False
    store.set_flag("paused", True, by="cli")
    assert store.get_flag("paused") is True
    store.set_flag("limits", {"gpu": 1})
    assert store.get_flag("limits") == {"gpu": 1}
    with pytest.raises(InvalidInput):
        store.set_flag("bad", object())


def test_named_locks_exclude_others_until_released_or_expired(store):
    assert store.acquire_lock("training", "trainer", ttl_s=60)
    assert not store.acquire_lock("training", "other", ttl_s=60)
    assert store.acquire_lock("training", "trainer", ttl_s=60)  # the holder extends it
    assert store.lock_holder("training")["holder"] == "trainer"
    assert not store.release_lock("training", "other")
    assert store.release_lock("training", "trainer")
    assert store.lock_holder("training") is None
    assert store.acquire_lock("short", "a", ttl_s=0.05)
    deadline = time.monotonic() + 10
    while not store.acquire_lock("short", "b", ttl_s=60):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert store.lock_holder("short")["holder"] == "b"


def test_events_are_an_append_only_audit_of_task_changes(store):
    t = store.enqueue("s", {}, created_by="cli")
    c = store.claim("w", ["s"])
    store.complete(t.id, c.lease_token)
    assert store.events(task_id=t.id) == []  # the queue's hot path writes no event ...
    store.cancel(store.retry(t.id, by="op").id, by="op")
    assert [(e["actor"], e["action"]) for e in store.events(task_id=t.id)] == [("op", "retry"), ("op", "cancelled")]
    # ... its history is derived from the task row and its attempts, merged with the events
    hist = store.task_history(t.id)
    assert [(e["actor"], e["action"]) for e in hist] == [
        ("cli", "enqueue"), ("w", "claim"), ("w", "complete"), ("op", "retry"), ("op", "cancelled")]
    assert all(e["ts"] > 0 for e in hist) and hist[1]["detail"] == {"attempt": 1}
    assert store.task_history(t.id + 1000) == []
    store.record_event("op", "note", detail={"why": "test"})
    last = store.last_event_id()
    assert store.recent_events(1)[0]["id"] == last and store.recent_events(1)[0]["detail"] == {"why": "test"}
    assert store.events(after_id=last) == []


def test_liveness_samples(store):
    t0 = time.time()
    store.record_liveness(3, 3, 1, ts=t0)
    store.record_liveness(3, 2, 0, ts=t0 + 1)
    samples = store.liveness_samples(t0)
    assert [(s["expected"], s["alive"], s["busy"]) for s in samples] == [(3, 3, 1), (3, 2, 0)]
    assert store.liveness_samples(t0 + 0.5, t0 + 0.9) == []


def test_two_store_objects_share_one_database(store_factory):
    a = store_factory()
    b = store_factory.reopen(a)
    a.set_flag("x", 1)
    assert b.get_flag("x") == 1


def test_attempts_alerts_and_hardware_samples_carry_their_host(store_factory):
    """On every backend: an attempt records where it ran (the host in its
    worker's name, else the store's host), an alert and a hardware sample the
    host that wrote them; hw_samples(host=) reads one host's."""
    here = store_factory(host="host-a")
    t = here.enqueue("noop", {})
    claimed = here.claim("coder_1@host-b", ["noop"])
    assert here.attempts(t.id)[-1]["host"] == "host-b"  # running: from the worker's name
    here.complete(t.id, claimed.lease_token, {"ok": 1})
    local = here.enqueue("noop", {})
    got = here.claim("coder_1", ["noop"])
    here.fail(local.id, got.lease_token, "boom", retryable=False)
    assert [a["host"] for a in here.attempts(t.id)] == ["host-b"]
    assert [a["host"] for a in here.attempts(local.id)] == ["host-a"]  # no host in the name: the store's
    alert = here.raise_alert("warning", "hw", "hot")
    assert next(a for a in here.list_alerts() if a["id"] == alert)["host"] == "host-a"
    here.record_hw_sample({"cpu_pct": 10.0})
    assert [s["host"] for s in here.hw_samples()] == ["host-a"]
    assert here.hw_samples(host="host-b") == [] and len(here.hw_samples(host="host-a")) == 1
