"""The workflow part of the store contract, on both backends: creating a
workflow enqueues its first phase's task, advancing is a compare-and-set on
the step (a re-run phase cannot advance twice or enqueue a second next task),
cancel requests, and lessons with full-text search."""

from __future__ import annotations

import pytest

from fleet.store import InvalidInput, InvalidTransition, NotFound


def _start(store, **kw):
    return store.create_workflow("/repo", "Fix the off-by-one", base="main", settings={"handoffs": 3},
                                 first_task={"skill": "workflow", "payload": {}}, **kw)


def test_create_enqueues_the_first_phase_task_in_one_go(store):
    wf = _start(store, budget_usd=2.0)
    assert (wf["status"], wf["phase"], wf["step"], wf["budget_usd"]) == ("RUNNING", "plan", 0, 2.0)
    task = store.require(wf["task_id"])
    assert task.skill == "workflow" and task.payload == {"workflow_id": wf["id"], "step": 0}
    assert store.get_workflow(wf["id"])["settings"] == {"handoffs": 3}
    assert [w["id"] for w in store.list_workflows()] == [wf["id"]]
    assert store.list_workflows(status="DONE") == []
    with pytest.raises(InvalidInput):
        store.create_workflow("/repo", " ", base="main")
    with pytest.raises(InvalidInput):
        store.create_workflow("/repo", "x", base="main", budget_usd=-1)
    with pytest.raises(NotFound):
        store.get_workflow(999)


def test_advance_is_a_compare_and_set_on_the_step(store):
    wf = _start(store)
    after = store.advance_workflow(wf["id"], 0, finished="plan", outcome="planned", phase="approve",
                                   state={"plan": {"goal": "g"}}, task_id=wf["task_id"],
                                   usage={"input_tokens": 10, "output_tokens": 5, "cost_usd": 0.25, "model_calls": 1},
                                   next_task={"skill": "workflow", "payload": {}})
    assert (after["step"], after["phase"], after["state"], after["spent_usd"]) == (1, "approve",
                                                                                 {"plan": {"goal": "g"}}, 0.25)
    assert after["task_id"] != wf["task_id"]
    assert store.require(after["task_id"]).payload == {"workflow_id": wf["id"], "step": 1}
    # the same phase finishing again (a re-run after a crash) changes nothing
    tasks_before = len(store.list_tasks().items)
    with pytest.raises(InvalidTransition):
        store.advance_workflow(wf["id"], 0, finished="plan", outcome="planned", phase="approve",
                               usage={"cost_usd": 9.0}, next_task={"skill": "workflow", "payload": {}})
    assert len(store.list_tasks().items) == tasks_before
    assert store.get_workflow(wf["id"])["spent_usd"] == 0.25
    steps = store.workflow_steps(wf["id"])
    assert [(s["step"], s["phase"], s["outcome"], s["cost_usd"]) for s in steps] == [(0, "plan", "planned", 0.25)]
    done = store.advance_workflow(wf["id"], 1, finished="approve", outcome="rejected", phase="approve",
                                  status="REJECTED", error="rejected by alice: too broad",
                                  next_task={"skill": "workflow", "payload": {}})
    assert (done["status"], done["error"]) == ("REJECTED", "rejected by alice: too broad")
    assert done["finished_at"] is not None
    assert done["task_id"] == after["task_id"]  # no task after the end
    with pytest.raises(InvalidTransition):
        store.request_workflow_cancel(wf["id"])
    with pytest.raises(NotFound):
        store.advance_workflow(404, 0, finished="plan", outcome="x", phase="plan")


def test_cancel_request_is_recorded(store):
    wf = _start(store)
    row = store.request_workflow_cancel(wf["id"], by="alice")
    assert row["cancel_requested"] == 1 and row["status"] == "RUNNING"
    assert any(e["action"] == "workflow_cancel_requested" and e["actor"] == "alice" for e in store.events())


def test_lessons_are_searchable_per_repo(store):
    a = store.add_lesson("/repo", "Pagination must include the last page: range(0, n) not range(0, n - 1)")
    store.add_lesson("/repo", "Never log secrets from the environment")
    store.add_lesson("/other", "pagination lesson of another repository")
    found = store.lessons(repo="/repo", query="fix the pagination bug")
    assert [row["id"] for row in found] == [a]
    assert [row["id"] for row in store.lessons(repo="/repo", query="last pages")] == [a]  # stemmed on both backends
    assert store.lessons(repo="/repo", query="!!") == []
    assert len(store.lessons(repo="/repo")) == 2 and len(store.lessons()) == 3
    store.delete_lesson(a)
    assert store.lessons(repo="/repo", query="pagination") == []
    with pytest.raises(NotFound):
        store.delete_lesson(a)
    with pytest.raises(InvalidInput):
        store.lessons(query="pagination")
