"""The operator tools' store methods, on every backend: the audit trail
(operator actions only, filters, pages), debug reports and their resolution
lifecycle, and the GDPR erase of one agent (what it deletes, what it keeps
pseudonymised, the record it leaves)."""

from __future__ import annotations

import threading

import pytest

from fleet.db import InvalidInput, InvalidTransition, NotFound


def _usage(store, agent: str, cost: float, tokens: int) -> int:
    return store.record_model_call({"provider": "claude", "model": "m", "skill": "summarize", "agent": agent,
                                    "input_tokens": tokens, "output_tokens": tokens // 2, "cost_usd": cost,
                                    "success": True})


# -- audit trail -----------------------------------------------------------
def test_audit_shows_operator_actions_only_newest_first(store):
    t1 = store.enqueue("noop")
    t2 = store.enqueue("noop")
    store.register_agent("coder_1", "coder")            # agent_start: the fleet's own, not an operator's
    store.cancel(t1.id, by="operator")
    store.set_flag("paused", True, by="dashboard:cookie")
    aid = store.raise_alert("warning", "supervisor", "disk low")  # 'alert': not an operator action
    store.ack_alert(aid, by="operator")
    store.record_event("operator", "secret_set", detail={"key": "OPENAI_API_KEY"})
    claimed = store.claim("coder_1", ["noop"])
    assert claimed.id == t2.id
    store.cancel(t2.id, by="launcher")
    store.acknowledge_cancel(t2.id, claimed.lease_token)  # the worker finishing the cancel: left out
    page = store.audit_trail()
    got = [(e["action"], e["actor"], e["via"]) for e in page["items"]]
    assert got == [("cancel_requested", "launcher", "launcher"), ("secret_set", "operator", "cli"),
                   ("alert_ack", "operator", "cli"), ("flag", "dashboard:cookie", "dashboard"),
                   ("cancelled", "operator", "cli")]
    assert page["next_before_id"] is None
    assert page["items"][-1]["task_id"] == t1.id
    assert page["items"][1]["detail"] == {"key": "OPENAI_API_KEY"}


def test_audit_filters_by_actor_prefix_action_and_time(store):
    store.set_flag("paused", True, by="dashboard:cookie")
    store.set_flag("paused", False, by="dashboard:bearer")
    store.set_flag("paused", True, by="operator")
    store.set_flag("paused", True, by="dashboardx")
    assert [e["actor"] for e in store.audit_trail(actor="dashboard")["items"]] == ["dashboard:bearer",
                                                                                 "dashboard:cookie"]
    assert [e["actor"] for e in store.audit_trail(actor="dashboard:bearer")["items"]] == ["dashboard:bearer"]
    assert store.audit_trail(action="retry")["items"] == []
    everything = store.audit_trail(action="flag")["items"]
    assert len(everything) == 4
    middle = everything[2]["ts"]
    newer = store.audit_trail(since=middle)["items"]
    assert {e["id"] for e in newer} == {e["id"] for e in everything if e["ts"] >= middle}
    older = store.audit_trail(until=middle)["items"]
    assert {e["id"] for e in older} == {e["id"] for e in everything if e["ts"] < middle}
    with pytest.raises(InvalidInput, match="not an operator action"):
        store.audit_trail(action="claim")
    with pytest.raises(InvalidInput):
        store.audit_trail(limit=0)
    with pytest.raises(InvalidInput):
        store.audit_trail(before_id="12")
    with pytest.raises(InvalidInput):
        store.debug_reports(limit=True)


def test_audit_pages_with_the_cursor(store):
    for i in range(7):
        store.record_event("operator", "config_edit", detail={"key": f"k{i}"})
    seen, cursor = [], None
    while True:
        page = store.audit_trail(limit=3, before_id=cursor)
        seen += [e["detail"]["key"] for e in page["items"]]
        cursor = page["next_before_id"]
        if cursor is None:
            break
    assert seen == [f"k{i}" for i in reversed(range(7))]


# -- debug reports ---------------------------------------------------------
def test_debug_report_lifecycle_open_to_resolved(store):
    a = store.record_debug_report("reports/debug/a.json", description="workers hang", by="operator")
    b = store.record_debug_report("reports/debug/b.json", by="dashboard:cookie")
    assert a["status"] == "open" and a["path"] == "reports/debug/a.json" and a["description"] == "workers hang"
    assert [r["id"] for r in store.debug_reports()] == [b["id"], a["id"]]
    done = store.resolve_debug_report(a["id"], "raised the lease", by="operator", fix_commit="abc123",
                                      regression_test="tests/test_x.py::test_y")
    assert done["status"] == "resolved" and done["note"] == "raised the lease" and done["resolved_by"] == "operator"
    assert done["fix_commit"] == "abc123" and done["regression_test"] == "tests/test_x.py::test_y"
    assert [r["id"] for r in store.debug_reports(status="open")] == [b["id"]]
    assert [r["id"] for r in store.debug_reports(status="resolved")] == [a["id"]]
    with pytest.raises(InvalidTransition, match="already resolved"):
        store.resolve_debug_report(a["id"], "again")
    with pytest.raises(NotFound):
        store.resolve_debug_report(b["id"] + 1000, "nope")
    with pytest.raises(InvalidInput):
        store.resolve_debug_report(b["id"], "  ")
    with pytest.raises(InvalidInput):
        store.debug_reports(status="closed")
    actions = [e["action"] for e in store.audit_trail()["items"]]
    assert actions == ["resolution", "debug_report", "debug_report"]


def test_two_resolvers_at_once_exactly_one_wins(store_factory):
    first = store_factory()
    second = store_factory.reopen(first)
    rid = first.record_debug_report("reports/debug/x.json")["id"]
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def resolve(s, who):
        barrier.wait()
        try:
            s.resolve_debug_report(rid, f"fixed by {who}", by=who)
            outcomes.append("ok")
        except InvalidTransition:
            outcomes.append("refused")

    threads = [threading.Thread(target=resolve, args=(s, w)) for s, w in ((first, "a"), (second, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok", "refused"]
    assert len(first.audit_trail(action="resolution")["items"]) == 1


# -- GDPR erase ------------------------------------------------------------
def _plant(store):
    store.register_agent("coder_1", "coder")
    store.register_agent("coder_2", "coder")
    store.send_message("coder_1", "coder_2", "my home address is 1 Elm St")
    store.send_message("coder_1", "operator", {"text": "hello"})
    store.send_message("coder_2", "coder_1", "reply to coder_1")          # not authored by coder_1: kept
    store.post_note("general", "coder_1 private note", author="coder_1")
    store.post_note("general", "someone else's note", author="coder_2")
    u1 = _usage(store, "coder_1", 0.25, 1000)
    u2 = _usage(store, "coder_1", 0.5, 3000)
    u3 = _usage(store, "coder_2", 1.0, 10)
    store.record_event("coder_1", "custom", agent="coder_1", detail={"secret": "content"})
    store.set_agent_status("coder_1", "paused", actor="operator")          # an operator's action naming it
    return u1, u2, u3


def test_footprint_counts_what_erase_then_erases(store):
    u1, u2, u3 = _plant(store)
    before = store.agent_footprint("coder_1")
    # events by coder_1: agent_start and custom; naming it with another actor: the operator's agent_status
    assert before == {"messages": 2, "notes": 1, "events": 2, "events_naming": 1, "usage_rows": 2}
    out = store.erase_agent_data("coder_1", pseudonym="erased-abc", by="operator", extra_counts={"files": 3})
    assert out["counts"] == {**before, "files": 3}
    assert out["pseudonym"] == "erased-abc"
    assert store.agent_footprint("coder_1") == {"messages": 0, "notes": 0, "events": 0, "events_naming": 0,
                                                "usage_rows": 0}
    # others' data stays exactly as it was
    bodies = [m["body"] for m in store.messages(limit=100)]
    assert bodies == ["reply to coder_1"]
    assert [n["body"] for n in store.notes("general")] == ["someone else's note"]
    # usage rows keep cost and tokens, with the pseudonym for the agent
    rows = {r["id"]: r for r in store.usage_rows()}
    assert (rows[u1]["agent"], rows[u1]["cost_usd"], rows[u1]["input_tokens"]) == ("erased-abc", 0.25, 1000)
    assert (rows[u2]["agent"], rows[u2]["cost_usd"], rows[u2]["input_tokens"]) == ("erased-abc", 0.5, 3000)
    assert rows[u3]["agent"] == "coder_2"
    totals = {r["key"]: r for r in store.usage_summary(0, None, group_by="agent")}
    assert totals["erased-abc"]["cost_usd"] == pytest.approx(0.75)
    # the record: counts and pseudonym, no name and no content
    record = store.audit_trail(action="gdpr_erase")["items"]
    assert len(record) == 1 and record[0]["id"] == out["audit_event_id"]
    assert record[0]["detail"] == {"pseudonym": "erased-abc", "counts": {**before, "files": 3}}
    assert record[0]["agent"] == "erased-abc"
    all_events = store.events(limit=1000)
    assert not any("coder_1" in str(e) for e in all_events)
    # the record's id is above every event there was
    assert out["audit_event_id"] == max(e["id"] for e in all_events)


def test_erase_refuses_bad_input_and_changes_nothing(store):
    _plant(store)
    before = store.agent_footprint("coder_1")
    with pytest.raises(InvalidInput):
        store.erase_agent_data("coder_1", pseudonym="coder_1")
    with pytest.raises(InvalidInput):
        store.erase_agent_data("coder_1", pseudonym="p", extra_counts={"files": "3"})
    with pytest.raises(InvalidInput):
        store.agent_footprint("")
    assert store.agent_footprint("coder_1") == before
    assert store.audit_trail(action="gdpr_erase")["items"] == []
