"""research_loop run by a real worker against loopback servers: a SearxNG
search and web pages (tests/fakes/net_servers.py) and an Ollama model
scripted by prompt. Answered in round 2, max_rounds reached, a budget stop,
citations of pages never fetched dropped, offline refusal, and the HITL
"more info" answer (dashboard and launcher) queueing a linked research task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleet.db import open_store
from fleet.skills import research_loop
from fleet.skills._common import SkillError
from tests.fakes.fleetproc import start_worker, stop, wait_until, write_config
from tests.fakes.model_servers import FakeOllama
from tests.fakes.net_servers import NetServer, searxng_json

QUESTION = "How long is a task lease in the fleet queue?"
PAGES = {
    "/pages/intro.html": ("Queue intro", "INTRO-PAGE. The fleet queue hands out tasks under leases. "
                                         "Workers renew their lease with heartbeats."),
    "/pages/leases.html": ("Lease settings", "LEASES-PAGE. The default lease is 30 seconds; "
                                             "[queue] lease_s changes it."),
}
MISSING = "/pages/gone.html"  # listed by the search, 404 when fetched


def _servers(srv: NetServer, by_query: dict[str, list[str]]) -> None:
    """SearxNG answering each query with its pages (unknown queries: the intro page), and the pages."""
    def search(seen):
        q = seen.query["q"][0]
        paths = by_query.get(q, ["/pages/intro.html"])
        results = [{"url": srv.url + p, "title": PAGES.get(p, ("Gone", ""))[0], "snippet": "..."} for p in paths]
        return 200, json.dumps(searxng_json(q, results)).encode()

    srv.route("GET", "/search", {}, check=search)
    for path, (title, text) in PAGES.items():
        srv.route("GET", path, f"<html><head><title>{title}</title></head><body><p>{text}</p></body></html>",
                  "text/html; charset=utf-8")


def _config(home: Path, srv: NetServer, ollama: FakeOllama, **extra) -> dict:
    return write_config(home, workers={"coder_count": 0, "researcher": 1}, affinity={"researcher": ["research_loop"]},
                        search={"provider": "searxng", "searxng_url": srv.url},
                        models={"chain": ["ollama"], "max_wait_s": 0.0},
                        providers={"ollama": {"type": "ollama", "base_url": ollama.url}}, **extra)


def _run_by_worker(home: Path, store, payload: dict, timeout: float = 90):
    worker = start_worker(home, "researcher", "researcher")
    try:
        task = store.enqueue("research_loop", payload)
        return wait_until(lambda: (t := store.get(task.id)).status in ("DONE", "FAILED") and t, timeout, step=0.1,
                          what="the research task")
    finally:
        stop(worker)


def _notes(*claims) -> str:
    return json.dumps({"claims": [{"claim": c, "sources": s} for c, s in claims]})


def test_answered_in_round_two_and_unfetched_citations_dropped(isolated_home):
    with NetServer() as srv, FakeOllama() as ollama:
        _servers(srv, {QUESTION: ["/pages/intro.html", MISSING], "default lease duration": ["/pages/leases.html"]})
        intro, leases = srv.url + "/pages/intro.html", srv.url + "/pages/leases.html"
        ollama.reply_when("INTRO-PAGE", _notes(
            ("The queue hands out tasks under leases.", [intro]),
            ("Workers renew leases with heartbeats.", [intro + "#renew", "https://elsewhere.example/not-read"]),
            ("Leases never expire.", ["https://made-up.example/page"]),  # only an unfetched source: dropped
            ("The gone page says leases are 5 s.", [srv.url + MISSING])))  # listed, never fetched (404)
        ollama.reply_when("LEASES-PAGE", _notes(("The default lease is 30 seconds.", [leases, 2]),
                                                ("the queue hands out tasks  under leases.", [2])))  # known: merged
        ollama.reply_when("; default lease duration", json.dumps(
            {"answered": True, "answer": "A lease lasts 30 seconds by default.",
             "answer_sources": [leases, "https://made-up.example/page"]}))
        ollama.reply_when("Is the question answered", json.dumps(
            {"answered": False, "next_query": "default lease duration"}))
        store = open_store(_config(isolated_home, srv, ollama))
        done = _run_by_worker(isolated_home, store, {"question": QUESTION, "max_rounds": 4})
        searches = [r.query["q"][0] for r in srv.requests if r.path == "/search"]
        fetched = [r.path for r in srv.requests if r.path.startswith("/pages/")]
    assert done.status == "DONE", done.error
    r = done.result
    assert r["answered"] is True and r["stopped"] == "answered" and r["rounds"] == 2
    assert searches == [QUESTION, "default lease duration"] and r["queries"] == searches
    assert sorted(fetched) == sorted(["/pages/intro.html", MISSING, "/pages/leases.html"])
    assert [s["url"] for s in r["sources"]] == [intro, leases] and r["failed_fetches"] == [srv.url + MISSING]
    assert r["claims"] == [{"claim": "The queue hands out tasks under leases.", "sources": [1, 2]},
                           {"claim": "Workers renew leases with heartbeats.", "sources": [1]},
                           {"claim": "The default lease is 30 seconds.", "sources": [2]}]
    assert r["answer"] == {"claim": "A lease lasts 30 seconds by default.", "sources": [2]}
    assert sorted(d["citation"] for d in r["dropped_citations"]) == sorted([
        "https://elsewhere.example/not-read", "https://made-up.example/page", srv.url + MISSING,
        "https://made-up.example/page"])
    report = Path(r["report"])
    assert report.parent == Path(store_home_knowledge(isolated_home)) / "research"
    text = report.read_text()
    assert "## Answer\n\nA lease lasts 30 seconds by default. [2]" in text
    assert "- The queue hands out tasks under leases. [1][2]" in text
    assert f"1. [Queue intro]({intro})" in text and f"2. [Lease settings]({leases})" in text
    for unfetched in ("made-up.example", "elsewhere.example", MISSING, "Leases never expire", "5 s"):
        assert unfetched not in text
    assert "4 citations of pages never fetched were dropped, and 2 claims left with no fetched source." in text


def store_home_knowledge(home: Path) -> Path:
    return (home / "knowledge").resolve()


def test_max_rounds_reached_without_an_answer(isolated_home):
    with NetServer() as srv, FakeOllama() as ollama:
        _servers(srv, {})
        ollama.reply_when("INTRO-PAGE", _notes(("The queue hands out tasks under leases.",
                                                [srv.url + "/pages/intro.html"])))
        ollama.reply_when("; still more", json.dumps({"answered": False, "next_query": "and more"}))
        ollama.reply_when("Is the question answered", json.dumps({"answered": False, "next_query": "still more"}))
        store = open_store(_config(isolated_home, srv, ollama, skills={"research_loop": {"max_rounds": 2}}))
        done = _run_by_worker(isolated_home, store, {"question": QUESTION})
        searches = [r.query["q"][0] for r in srv.requests if r.path == "/search"]
    assert done.status == "DONE", done.error
    r = done.result
    assert r["stopped"] == "max_rounds" and r["answered"] is False and r["rounds"] == 2
    assert searches == [QUESTION, "still more"]
    assert r["answer"] is None and len(r["claims"]) == 1
    text = Path(r["report"]).read_text()
    assert "stopped: max_rounds" in text and "## Answer" not in text


def test_a_budget_refusal_ends_the_loop_with_what_it_has(isolated_home):
    with NetServer() as srv, FakeOllama() as ollama:
        _servers(srv, {})
        ollama.reply_when("INTRO-PAGE", _notes(("The queue hands out tasks under leases.",
                                                [srv.url + "/pages/intro.html"])))
        ollama.reply_when("Is the question answered", json.dumps({"answered": True, "answer": "never asked"}))
        cfg = _config(isolated_home, srv, ollama,
                      budgets={"skills": {"research_loop": {"max_calls": 1, "enforcement": "block"}}})
        r = research_loop.run({"question": QUESTION}, cfg, _Log())
        chats = ollama.requests_to("/api/chat")
    assert r["stopped"] == "budget" and "budget exceeded for skill research_loop" in r["stop_detail"]
    assert r["rounds"] == 1 and len(chats) == 1  # the verdict call was refused before it reached the model
    assert r["claims"] == [{"claim": "The queue hands out tasks under leases.", "sources": [1]}]
    text = Path(r["report"]).read_text()
    assert "stopped: budget" in text and "- The queue hands out tasks under leases. [1]" in text


def test_offline_mode_refuses_without_touching_network_or_model(isolated_home):
    with NetServer() as srv, FakeOllama() as ollama:
        _servers(srv, {})
        cfg = _config(isolated_home, srv, ollama, fleet={"offline_mode": True})
        with pytest.raises(SkillError, match="offline mode: research_loop refused"):
            research_loop.run({"question": QUESTION}, cfg, _Log())
        store = open_store(cfg)
        done = _run_by_worker(isolated_home, store, {"question": QUESTION})
        seen = list(srv.requests)
    assert done.status == "FAILED" and done.error_reason == "offline"
    assert "needs the network" in done.error
    assert seen == [] and ollama.requests_to("/api/chat") == []


class _Log:
    def __getattr__(self, name):
        return lambda *a, **k: None


def test_more_info_answers_queue_a_linked_research_task_that_a_worker_runs(isolated_home):
    from launcher.client import FleetClient
    from tests.fakes.dashboard_env import bearer, make_app

    with NetServer() as srv, FakeOllama() as ollama:
        _servers(srv, {})
        ollama.reply_when("INTRO-PAGE", _notes(("The queue hands out tasks under leases.",
                                                [srv.url + "/pages/intro.html"])))
        ollama.reply_when("Is the question answered", json.dumps(
            {"answered": True, "answer": "Tasks run under leases.", "answer_sources": [1]}))
        app, cfg, store = make_app(isolated_home, workers={"coder_count": 0, "researcher": 1},
                                   affinity={"researcher": ["research_loop"]},
                                   search={"provider": "searxng", "searxng_url": srv.url},
                                   models={"chain": ["ollama"], "max_wait_s": 0.0},
                                   providers={"ollama": {"type": "ollama", "base_url": ollama.url}})
        waiting = []
        for topic in ("deploy", "retry"):
            store.enqueue("ask", {"topic": topic}, priority=7)
            t = store.claim("coder_1", ["ask"])
            store.ask_human(t.id, t.lease_token, f"Go ahead with the {topic}?", ["yes", "no"])
            waiting.append(t.id)
        # the dashboard's answer
        resp = app.test_client().post(f"/api/tasks/{waiting[0]}/respond", headers=bearer(app),
                                      json={"decision": "more_info", "text": QUESTION})
        assert resp.status_code == 200, resp.get_data(as_text=True)
        body = resp.get_json()
        first = body["research_task"]
        assert first["skill"] == "research_loop" and first["priority"] == 7 and first["status"] == "PENDING"
        assert first["payload"] == {"question": QUESTION, "for_task": waiting[0],
                                    "context": f"Task {waiting[0]} (ask) asked a person: Go ahead with the deploy?"}
        answered = store.get(waiting[0])
        assert answered.status == "PENDING"
        assert answered.payload["human_answer"] == {"choice": "more_info", "text": QUESTION,
                                                    "research_task": first["id"]}
        # the launcher's Fleet Comm answer
        client = FleetClient(str(isolated_home))
        assert client.respond(waiting[1], "more_info", "Is a retry safe?").status == "PENDING"
        second = store.get(waiting[1]).payload["human_answer"]["research_task"]
        assert store.get(second).payload["for_task"] == waiting[1]
        # an answer to a task no longer waiting is refused, and queues nothing
        from fleet.db import InvalidTransition

        with pytest.raises(InvalidTransition):
            client.respond(waiting[1], "more_info", "again?")
        assert store.list_tasks(skill="research_loop").total == 2
        worker = start_worker(isolated_home, "researcher", "researcher")
        try:
            wait_until(lambda: all(store.get(i).status in ("DONE", "FAILED") for i in (first["id"], second)), 90,
                       step=0.1, what="both research tasks")
        finally:
            stop(worker)
            client.ctx.store.close()
    done = store.get(first["id"])
    assert done.status == "DONE", done.error
    assert done.result["for_task"] == waiting[0] and done.result["answered"] is True
    assert f"Asked for by a 'more info' answer to task {waiting[0]}." in Path(done.result["report"]).read_text()
    assert store.get(second).status == "DONE"


def test_more_info_in_offline_mode_answers_without_queueing_research(isolated_home):
    from fleet.skills._hitl import answer_more_info

    cfg = write_config(isolated_home, fleet={"offline_mode": True})
    store = open_store(cfg)
    store.enqueue("ask", {})
    t = store.claim("coder_1", ["ask"])
    store.ask_human(t.id, t.lease_token, "proceed?", ["yes", "no"])
    answered, research, why = answer_more_info(store, cfg, t.id, "what changed?", by="tester")
    assert research is None and "offline mode" in why
    assert answered.payload["human_answer"]["choice"] == "more_info"
    assert "not queued" in answered.payload["human_answer"]["research"]
    assert store.list_tasks(skill="research_loop").total == 0
    with pytest.raises(ValueError, match="needs text"):
        answer_more_info(store, cfg, t.id, "  ", by="tester")


def test_cli_hitl_respond_more_info_queues_research(isolated_home):
    from tests.fakes.cli_runner import cli

    store = open_store(write_config(isolated_home))
    store.enqueue("ask", {})
    t = store.claim("coder_1", ["ask"])
    store.ask_human(t.id, t.lease_token, "proceed?", ["yes", "no"])
    r = cli(isolated_home, "hitl", "respond", str(t.id))
    assert r.rc == 2 and "--more-info" in r.err
    r = cli(isolated_home, "hitl", "respond", str(t.id), "--more-info", "what does the change touch?", "--json")
    assert r.rc == 0, r
    research = r.json()["research_task"]
    assert research["skill"] == "research_loop"
    assert research["payload"]["question"] == "what does the change touch?" and research["payload"]["for_task"] == t.id
    assert store.get(t.id).payload["human_answer"]["research_task"] == research["id"]
