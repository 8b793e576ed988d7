"""`lead_client audit` and `lead_client gdpr-erase` as real processes on a
real SQLite fleet home. Audit: every operator action taken through the CLI
shows with who, when and what, filtered and paged. GDPR erase: the dry run
says exactly what would go and changes nothing; --confirm erases exactly
that, keeps the usage rows' cost and tokens under a hash, and leaves one
audit record with counts and no content. The same commands once more on a
PostgreSQL store."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from fleet.config import load_config
from fleet.db import open_store
from tests.conftest import require_system_part
from tests.fakes.cli_runner import cli
from tests.fakes.fleetproc import write_config
from tests.store_backends import PostgreSQLBackend


def _store(home: Path):
    return open_store(load_config(home))


# -- audit -----------------------------------------------------------------
def test_audit_lists_every_cli_operator_action(isolated_home):
    home = isolated_home
    write_config(home, workers={"coder_count": 1})
    store = _store(home)
    store.register_agent("coder_1", "coder", status="idle")
    asked = store.enqueue("noop", {"n": 1})
    claimed = store.claim("coder_1", ["noop"])
    store.ask_human(claimed.id, claimed.lease_token, "deploy?")
    alert = store.raise_alert("warning", "supervisor", "disk is filling")
    store.close()
    start = time.time()

    t = cli(home, "dispatch", "noop", '{"n": 2}', "--json").json()["task"]["id"]
    steps = [("cancel", str(t)), ("retry", str(t)), ("pause",), ("resume",), ("pause", "coder_1"),
             ("resume", "coder_1"), ("alerts", "--ack", str(alert)), ("hitl", "respond", str(asked.id), "yes"),
             ("secret", "set", "OPENAI_API_KEY", "sk-test-value-0123456789")]
    for args in steps:
        r = cli(home, *args)
        assert r.rc == 0, (args, r)

    r = cli(home, "audit", "--json")
    assert r.rc == 0, r
    items = r.json()["items"]
    got = [(e["action"], e["task_id"], e["agent"], e["detail"]) for e in reversed(items)]
    assert got == [
        ("cancelled", t, None, None),
        ("retry", t, None, {"from": "CANCELLED"}),
        ("flag", None, None, {"name": "paused", "value": True}),
        ("flag", None, None, {"name": "paused", "value": False}),
        ("worker_pause", None, "coder_1", got[4][3]),
        ("worker_resume", None, "coder_1", got[5][3]),
        ("alert_ack", None, None, {"id": alert}),
        ("answer", asked.id, None, None),
        ("secret_set", None, None, {"key": "OPENAI_API_KEY"}),
    ]
    assert all(e["actor"] == "operator" and e["via"] == "cli" for e in items)
    assert all(start - 1 <= e["ts"] <= time.time() + 1 for e in items)
    assert "sk-test-value-0123456789" not in r.out

    # filters
    assert [e["action"] for e in cli(home, "audit", "--action", "flag", "--json").json()["items"]] == ["flag", "flag"]
    assert cli(home, "audit", "--actor", "dashboard", "--json").json()["items"] == []
    assert len(cli(home, "audit", "--actor", "operator", "--json").json()["items"]) == len(items)
    future = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 3600))
    assert cli(home, "audit", "--since", future, "--json").json()["items"] == []
    assert len(cli(home, "audit", "--until", future, "--json").json()["items"]) == len(items)
    # pages
    seen, before = [], None
    while True:
        args = ["audit", "--limit", "4", "--json"] + (["--before", str(before)] if before else [])
        page = cli(home, *args).json()
        seen += [e["id"] for e in page["items"]]
        before = page["next_before_id"]
        if before is None:
            break
    assert seen == [e["id"] for e in items]
    plain = cli(home, "audit", "--limit", "2")
    assert plain.rc == 0 and "secret_set" in plain.out and "more: --before" in plain.out
    # bad input: usage errors, nothing printed as data
    bad = cli(home, "audit", "--action", "claim")
    assert bad.rc == 2 and "not an operator action" in bad.err
    assert cli(home, "audit", "--since", "yesterday").rc == 2


# -- GDPR erase ------------------------------------------------------------
def _plant(home: Path) -> dict:
    write_config(home)
    store = _store(home)
    store.register_agent("coder_1", "coder", status="stopped")
    store.send_message("coder_1", "coder_2", "coder_1's PRIVATE message about Alice")
    store.send_message("coder_1", "operator", "second PRIVATE message")
    store.send_message("coder_2", "coder_1", "a message TO coder_1 by someone else")
    store.post_note("general", "PRIVATE note by coder_1", author="coder_1")
    store.post_note("general", "note by coder_2", author="coder_2")
    usage = [store.record_model_call({"provider": "claude", "model": "m", "skill": "summarize", "agent": "coder_1",
                                      "input_tokens": 1200, "output_tokens": 300, "cost_usd": 0.42,
                                      "success": True}),
             store.record_model_call({"provider": "claude", "model": "m", "skill": "summarize", "agent": "coder_2",
                                      "input_tokens": 10, "output_tokens": 5, "cost_usd": 0.01, "success": True})]
    store.set_agent_status("coder_1", "parked", actor="supervisor", detail={"why": "PRIVATE reason"})
    store.close()
    knowledge = Path(load_config(home)["paths"]["knowledge"])
    # named as the skills name what they write: <what>_<YYYYMMDD>_<agent>[.ext]
    mine = [knowledge / "code_reviews" / "db_py_review_20260101_coder_1.md",
            knowledge / "summaries" / "notes_summary_20260102_coder_1.md",
            knowledge / "flashcards" / "topic_cards_20260103_coder_1"]
    others = [knowledge / "code_reviews" / "db_py_review_20260101_coder_2.md",
              knowledge / "code_reviews" / "db_py_review_20260101_coder_11.md",
              knowledge / "notes" / "about_coder_1.md",      # names it, but no skill wrote it as coder_1
              knowledge / "code_index.jsonl"]
    for p in mine + others:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"written by {p.name}\n")
    return {"usage": usage, "mine": mine, "others": others, "knowledge": knowledge}


def test_dry_run_says_exactly_what_would_go_and_changes_nothing(isolated_home):
    planted = _plant(isolated_home)
    db_before = Path(load_config(isolated_home)["paths"]["db"]).read_bytes()
    r = cli(isolated_home, "gdpr-erase", "coder_1", "--json")
    assert r.rc == 0, r
    plan = r.json()
    assert plan["confirmed"] is False
    # events by coder_1: its agent_start; naming it by another actor: the supervisor's agent_status
    assert plan["would_erase"] == {"messages": 2, "notes": 1, "events": 1, "knowledge_files": 3}
    assert plan["would_pseudonymise"] == {"usage_rows": 1, "events_naming": 1}
    assert sorted(plan["files"]) == sorted(str(p.relative_to(planted["knowledge"])) for p in planted["mine"])
    assert all(p.exists() for p in planted["mine"] + planted["others"])
    assert Path(load_config(isolated_home)["paths"]["db"]).read_bytes() == db_before
    text = cli(isolated_home, "gdpr-erase", "coder_1")
    assert text.rc == 0 and "nothing changed" in text.out and "knowledge/code_reviews/db_py_review" in text.out


def test_confirm_erases_exactly_that_and_keeps_accounting(isolated_home):
    planted = _plant(isolated_home)
    r = cli(isolated_home, "gdpr-erase", "coder_1", "--confirm", "--json")
    assert r.rc == 0, r
    out = r.json()
    assert out["confirmed"] is True
    counts = {"messages": 2, "notes": 1, "events": 1, "events_naming": 1, "usage_rows": 1, "knowledge_files": 3}
    assert out["counts"] == counts
    pseudonym = out["pseudonym"]
    assert pseudonym.startswith("erased-") and "coder_1" not in pseudonym
    assert not any(p.exists() for p in planted["mine"])
    assert all(p.exists() for p in planted["others"])  # coder_11 and coder_2 are not coder_1

    store = _store(isolated_home)
    try:
        bodies = [m["body"] for m in store.messages(limit=100)]
        assert bodies == ["a message TO coder_1 by someone else"]  # not authored by coder_1: kept
        assert [n["body"] for n in store.notes("general")] == ["note by coder_2"]
        rows = {u["id"]: u for u in store.usage_rows()}
        mine, other = rows[planted["usage"][0]], rows[planted["usage"][1]]
        assert (mine["agent"], mine["cost_usd"], mine["input_tokens"], mine["output_tokens"]) == \
            (pseudonym, 0.42, 1200, 300)
        assert other["agent"] == "coder_2"
        events = store.events(limit=1000)
        record = [e for e in events if e["action"] == "gdpr_erase"]
        assert len(record) == 1 and record[0]["id"] == out["audit_event_id"]
        assert record[0]["actor"] == "operator" and record[0]["agent"] == pseudonym
        assert record[0]["detail"] == {"pseudonym": pseudonym, "counts": counts}
        assert not any(e["actor"] == "coder_1" or e["agent"] == "coder_1" for e in events)
        naming = [e for e in events if e["action"] == "agent_status"]
        assert naming[0]["agent"] == pseudonym
    finally:
        store.close()
    # the audit record carries counts only: no name, no content
    audit = cli(isolated_home, "audit", "--action", "gdpr_erase", "--json").json()["items"]
    assert len(audit) == 1
    assert "coder_1" not in json.dumps(audit) and "PRIVATE" not in json.dumps(audit)
    # a second run finds nothing left
    again = cli(isolated_home, "gdpr-erase", "coder_1", "--json").json()
    assert again["would_erase"] == {"messages": 0, "notes": 0, "events": 0, "knowledge_files": 0}
    assert again["would_pseudonymise"] == {"usage_rows": 0, "events_naming": 0}


def test_erase_finds_what_a_real_skill_wrote_as_the_agent(isolated_home, monkeypatch):
    """The file-name rule matches the skills' own naming: summarize (extractive,
    no model) run as coder_1 and as coder_2; only coder_1's summary goes."""
    import logging

    from fleet.skills import summarize

    cfg = write_config(isolated_home)
    (isolated_home / "notes.md").write_text("The fleet runs skills. Workers claim tasks from the queue. "
                                            "Each task has a lease that the worker renews while it runs.\n")
    written = {}
    for agent in ("coder_1", "coder_2"):
        monkeypatch.setenv("FLEET_AGENT", agent)
        written[agent] = Path(summarize.run({"path": "notes.md", "method": "extractive"}, cfg,
                                            logging.getLogger("test"))["saved_to"])
    plan = cli(isolated_home, "gdpr-erase", "coder_1", "--json").json()
    root = Path(cfg["paths"]["knowledge"])
    assert plan["files"] == [str(written["coder_1"].relative_to(root))]
    assert cli(isolated_home, "gdpr-erase", "coder_1", "--confirm").rc == 0
    assert not written["coder_1"].exists() and written["coder_2"].exists()


def test_erase_refuses_a_running_agent(isolated_home):
    _plant(isolated_home)
    store = _store(isolated_home)
    store.register_agent("coder_1", "coder", status="idle")  # heartbeat now: it is running
    store.close()
    r = cli(isolated_home, "gdpr-erase", "coder_1", "--confirm")
    assert r.rc == 1 and "is running" in r.err
    assert cli(isolated_home, "gdpr-erase", "coder_1", "--json").json()["would_erase"]["messages"] == 2


# -- the same commands on a PostgreSQL store -------------------------------
def test_operator_tools_on_a_postgresql_store(isolated_home, tmp_path):
    backend = PostgreSQLBackend(tmp_path / "pg")
    missing = backend.missing()
    if missing is not None:
        require_system_part(False, *missing)
    spec = backend.new_spec()
    try:
        cfg = write_config(isolated_home, store={"backend": "postgresql", "dsn": spec["dsn"],
                                                 "schema": spec["schema"]}, dashboard={"enabled": False})
        store = open_store(cfg)
        try:
            store.send_message("coder_9", "coder_2", "PRIVATE on pg")
            store.post_note("general", "PRIVATE note", author="coder_9")
            store.record_model_call({"provider": "claude", "agent": "coder_9", "input_tokens": 7, "cost_usd": 0.5,
                                     "success": True})
        finally:
            store.close()
        erased = cli(isolated_home, "gdpr-erase", "coder_9", "--confirm", "--json")
        assert erased.rc == 0, erased
        assert erased.json()["counts"] == {"messages": 1, "notes": 1, "events": 0, "events_naming": 0,
                                           "usage_rows": 1, "knowledge_files": 0}
        report = cli(isolated_home, "report-issue", "--no-logs", "--json")
        assert report.rc == 0, report
        rid = report.json()["id"]
        assert json.loads(Path(report.json()["json_path"]).read_text())["versions"]["store"].startswith("PostgreSQL")
        assert cli(isolated_home, "resolutions", "resolve", str(rid), "--note", "done").rc == 0
        assert cli(isolated_home, "resolutions", "resolve", str(rid), "--note", "again").rc == 1
        actions = [e["action"] for e in cli(isolated_home, "audit", "--json").json()["items"]]
        assert actions == ["resolution", "debug_report", "gdpr_erase"]
        store = open_store(cfg)
        try:
            assert [u["agent"] for u in store.usage_rows()] == [erased.json()["pseudonym"]]
            assert store.usage_rows()[0]["cost_usd"] == pytest.approx(0.5)
        finally:
            store.close()
    finally:
        backend.cleanup()
