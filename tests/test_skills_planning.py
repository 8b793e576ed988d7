"""plan_workload (goal -> validated plan -> approval -> enqueued with dependencies) and
the human-in-the-loop round trip through a real worker process: the task parks in
WAITING_HUMAN, a person answers through the store, the worker resumes it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from fleet.config import load_config
from fleet.db import open_store
from fleet.skills import plan_workload
from fleet.skills._common import ModelOutputError, today
from fleet.skills._hitl import NeedsHuman
from tests.fakes.fleetproc import start_worker, stop, wait_until, write_config
from tests.fakes.model_servers import FakeOllama

LOG = logging.getLogger("test.skills.planning")


def plan_reply(*tasks) -> str:
    return json.dumps({"rationale": "lint, then scan, then summarise", "tasks": list(tasks)})


T1 = {"id": "t1", "skill": "code_quality", "payload": {"path": "src"}, "depends_on": [], "why": "metrics"}
T2 = {"id": "t2", "skill": "security_review", "payload": {"path": "src"}, "depends_on": ["t1"]}
T3 = {"id": "t3", "skill": "summarize", "payload": {"path": "src/notes.md"}, "depends_on": ["t1", "t2"]}


@pytest.fixture
def ollama():
    with FakeOllama() as server:
        yield server


def model_config(home: Path, url: str) -> dict:
    (home / "fleet.toml").write_text(
        f'[models]\nchain = ["ollama"]\n[providers.ollama]\ntype = "ollama"\nbase_url = "{url}"\n'
        f'model = "qwen3:8b"\ntimeout_s = 10.0\n')
    return load_config(home)


def test_plan_validated_and_enqueued_with_dependencies(isolated_home, ollama):
    cfg = model_config(isolated_home, ollama.url)
    ollama.reply(plan_reply(T3, T1, T2))  # out of order on purpose
    out = plan_workload.run({"goal": "Assess the src folder", "auto_approve": True, "priority": 7}, cfg, LOG)
    prompt = "\n".join(m["content"] for m in ollama.requests_to("/api/chat")[0].body["messages"])
    assert "Assess the src folder" in prompt and "- code_quality:" in prompt and "plan_workload:" not in prompt
    ids = out["task_ids"]
    assert list(ids) == ["t1", "t2", "t3"] and out["approved_by"] == "auto"
    store = open_store(cfg)
    try:
        assert store.dependencies(ids["t2"]) == [ids["t1"]]
        assert sorted(store.dependencies(ids["t3"])) == sorted([ids["t1"], ids["t2"]])
        tasks = [store.get(i) for i in ids.values()]
        assert [t.skill for t in tasks] == ["code_quality", "security_review", "summarize"]
        assert all(t.status == "PENDING" and t.priority == 7 for t in tasks)
        assert store.claim("w", ["security_review", "summarize"]) is None  # they wait for t1
    finally:
        store.close()


@pytest.mark.parametrize("tasks,problem", [
    ([dict(T1, skill="format_disk")], "unknown skill 'format_disk'"),
    ([dict(T1, payload={"path": "src", "max_complexity": "high"})], "field 'max_complexity'"),
    ([dict(T1, depends_on=["t2"]), T2], "cycle"),
    ([dict(T2, depends_on=["t9"])], "not in the plan"),
    ([dict(T1, skill="plan_workload", payload={"goal": "recurse forever"})], "unknown skill 'plan_workload'"),
])
def test_bad_plans_fail_closed_and_enqueue_nothing(isolated_home, ollama, tasks, problem):
    cfg = model_config(isolated_home, ollama.url)
    ollama.reply(plan_reply(*tasks))
    with pytest.raises(ModelOutputError, match=problem):
        plan_workload.run({"goal": "Assess the src folder", "auto_approve": True}, cfg, LOG)
    store = open_store(cfg)
    assert store.counts().get("PENDING", 0) == 0
    store.close()


def test_plan_needs_approval_and_rejection_enqueues_nothing(isolated_home, ollama):
    cfg = model_config(isolated_home, ollama.url)
    ollama.reply(plan_reply(T1, T2))
    payload = {"goal": "Assess the src folder"}
    with pytest.raises(NeedsHuman) as asked:
        plan_workload.run(dict(payload), cfg, LOG)
    assert "t1=code_quality" in asked.value.question and "t2=security_review after t1" in asked.value.question
    out = plan_workload.run(dict(payload, human_answer="reject"), cfg, LOG)
    assert out["approved"] is False and out["enqueued"] == []
    store = open_store(cfg)
    assert store.counts().get("PENDING", 0) == 0
    store.close()


def test_hitl_round_trip_through_a_real_worker(isolated_home, tmp_path):
    """A real worker process runs plan_workload and code_review; each parks in
    WAITING_HUMAN, is answered through the store, and resumes to completion."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "app.py").write_text('"""App."""\n\n\ndef load(path):\n    return eval(open(path).read())\n')
    with FakeOllama() as ollama:
        cfg = write_config(
            isolated_home, workers={"planner": 1}, affinity={"planner": ["plan_workload", "code_review"]},
            models={"chain": ["ollama"]},
            providers={"ollama": {"type": "ollama", "base_url": ollama.url, "model": "qwen3:8b", "timeout_s": 10.0}})
        ollama.reply(plan_reply(dict(T1, payload={"path": str(src)}), dict(T2, payload={"path": str(src)})))
        ollama.reply(json.dumps({"summary": "eval on file contents.", "findings": [
            {"severity": "critical", "category": "security", "line": 5, "title": "eval of file contents",
             "detail": "Arbitrary code execution.", "suggestion": "Use json.load."}]}))
        store = open_store(cfg)
        proc = start_worker(isolated_home, "planner", "planner_1")
        try:
            plan = store.enqueue("plan_workload", {"goal": "Assess src"})
            review = store.enqueue("code_review", {"path": str(src / "app.py")})
            wait_until(lambda: store.get(plan.id).status == "WAITING_HUMAN"
                       and store.get(review.id).status == "WAITING_HUMAN", 30, what="both tasks parked")
            question = store.get(review.id).question
            assert "eval of file contents" in question["question"] and question["options"] == ["file", "discard"]
            assert not (Path(cfg["paths"]["knowledge"]) / "code_reviews").exists()
            store.answer(plan.id, "approve", by="tester")
            store.answer(review.id, "file", by="tester")
            wait_until(lambda: store.get(plan.id).status == "DONE" and store.get(review.id).status == "DONE", 30,
                       what="both tasks resumed and done")
            result = store.get(plan.id).result
            ids = result["task_ids"]
            assert result["approved_by"] == "human" and store.dependencies(ids["t2"]) == [ids["t1"]]
            assert store.get(ids["t1"]).payload == {"path": str(src)}
            filed = store.get(review.id).result
            assert filed["filed"] is True and filed["confirmed_by_human"] == "file"
            report = Path(filed["report"])
            assert report.name == f"{filed['name']}_review_{today()}_planner_1.md" and "eval of file contents" in report.read_text()
            assert len(ollama.requests_to("/api/chat")) == 2  # resuming used the stashed plan and review
        finally:
            stop(proc)
            store.close()
