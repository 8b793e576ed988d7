"""Task endpoints: list with server-side filters and pagination, detail with
every attempt, dispatch (validated against the skill's schema), retry,
cancel, requeue, respond to a WAITING_HUMAN task, bulk actions over "all
matching this filter" (the caller confirms the count), and intent parsing.
"""

from __future__ import annotations

import json

from flask import Blueprint, jsonify, request

from fleet.config import unclaimable_reason
from fleet.db import TASK_STATUSES, InvalidInput, InvalidTransition, NotFound
from fleet.skill_registry import (
    InvalidPayload,
    UnknownSkill,
    get_info,
    validate_payload,
)

from .common import ApiError, actor, ctx, doc, int_arg, json_body, parse_time

bp = Blueprint("tasks", __name__)

BULK_ACTIONS = ("retry", "cancel", "requeue")
BULK_MAX = 10000
DECISIONS = ("approve", "reject", "more_info", "feedback")
FILTER_KEYS = ("status", "skill", "agent", "text", "since", "until")
_FILTER_QUERY = {
    "status": {"type": "string", "description": "one status or several, comma-separated: "
                                                  + ", ".join(TASK_STATUSES)},
    "skill": {"type": "string"}, "agent": {"type": "string", "description": "worker that ran it or assignee"},
    "text": {"type": "string", "description": "substring of skill, payload, result or error"},
    "since": {"type": "string", "description": "created at or after (epoch seconds or ISO date)"},
    "until": {"type": "string", "description": "created before (epoch seconds or ISO date)"},
}
_FILTER_SCHEMA = {"type": "object", "properties": {k: {"type": ["string", "number", "array", "null"]}
                                                   for k in FILTER_KEYS}}


def parse_filter(source: dict) -> dict:
    """A task filter from query arguments or a JSON object -> list_tasks kwargs."""
    unknown = set(source) - set(FILTER_KEYS)
    if unknown:
        raise ApiError(400, f"unknown filter field(s) {', '.join(sorted(map(str, unknown)))}; "
                            f"use {', '.join(FILTER_KEYS)}")
    out: dict = {}
    status = source.get("status")
    if status not in (None, "", []):
        items = status if isinstance(status, list) else str(status).split(",")
        items = [str(s).strip().upper() for s in items if str(s).strip()]
        bad = [s for s in items if s not in TASK_STATUSES]
        if bad:
            raise ApiError(400, f"unknown status {', '.join(bad)}; use one of {', '.join(TASK_STATUSES)}")
        out["status"] = items
    for key in ("skill", "agent", "text"):
        value = source.get(key)
        if value in (None, ""):
            continue
        if not isinstance(value, str):
            raise ApiError(400, f"filter {key!r} must be a string")
        if len(value) > 200:
            raise ApiError(400, f"filter {key!r} is longer than 200 characters")
        out[key] = value
    for key in ("since", "until"):
        value = parse_time(source.get(key), f"filter {key!r}")
        if value is not None:
            out[key] = value
    return out


def task_summary(t) -> dict:
    payload = json.dumps(t.payload, ensure_ascii=False)
    return {
        "id": t.id, "skill": t.skill, "status": t.status, "priority": t.priority,
        "attempts": t.attempts, "max_attempts": t.max_attempts, "worker": t.worker,
        "assigned_to": t.assigned_to, "created_at": t.created_at, "updated_at": t.updated_at,
        "finished_at": t.finished_at, "dead_letter": t.dead_letter,
        "cancel_requested": t.cancel_requested,
        "error": (t.error or "")[:300] or None, "payload_preview": payload[:160],
        "question": t.question,
    }


@bp.get("/api/tasks")
@doc("Tasks, newest first, filtered and paginated in the database", tag="tasks", query={
    **_FILTER_QUERY,
    "limit": {"type": "integer", "minimum": 1, "maximum": 200},
    "offset": {"type": "integer", "minimum": 0},
})
def list_tasks():
    c = ctx()
    filters = parse_filter({k: v for k, v in request.args.items() if k not in ("limit", "offset")})
    page = c.store.list_tasks(**filters, limit=int_arg("limit", 50, lo=1, hi=200),
                              offset=int_arg("offset", 0, lo=0, hi=10**9))
    return jsonify({"items": [task_summary(t) for t in page.items], "total": page.total,
                    "limit": page.limit, "offset": page.offset, "filter": filters})


@bp.get("/api/tasks/<int:task_id>")
@doc("One task: payload, result, error, question/answer, every attempt, dependencies and its events",
     tag="tasks", responses={"404": "no such task"})
def get_task(task_id: int):
    c = ctx()
    task = c.store.require(task_id)
    return jsonify({
        "task": task.to_dict(),
        "attempts": c.store.attempts(task_id),
        "depends_on": c.store.dependencies(task_id),
        "dependents": c.store.dependents(task_id),
        "events": c.store.task_history(task_id)[-200:],
    })


_DISPATCH_SCHEMA = {"type": "object", "required": ["skill"], "properties": {
    "skill": {"type": "string"}, "payload": {"type": "object"},
    "priority": {"type": "integer", "minimum": 1, "maximum": 10},
    "assigned_to": {"type": "string"}, "max_attempts": {"type": "integer", "minimum": 1},
    "delay_s": {"type": "number", "minimum": 0}, "idempotency_key": {"type": "string"},
    "depends_on": {"type": "array", "items": {"type": "integer"}},
}}


def _checked_spec(data: dict) -> dict:
    c = ctx()
    skill = data.get("skill")
    if not isinstance(skill, str) or not skill:
        raise ApiError(400, "give the skill to run, e.g. {\"skill\": \"code_index\", \"payload\": {...}}")
    try:
        info = get_info(skill, catalogue=c.catalogue())
    except UnknownSkill as exc:
        raise ApiError(400, str(exc)) from None
    payload = data.get("payload", {})
    if payload is None:
        payload = {}
    try:
        validate_payload(info, payload)
    except InvalidPayload as exc:
        raise ApiError(400, str(exc)) from None
    spec = {k: v for k, v in data.items() if k != "created_by"}
    spec["payload"] = payload
    spec["created_by"] = actor()
    return spec


@bp.post("/api/tasks")
@doc("Dispatch a task (the payload is checked against the skill's PAYLOAD_SCHEMA)", tag="tasks",
     body=_DISPATCH_SCHEMA, responses={"400": "unknown skill or invalid payload"})
def dispatch():
    c = ctx()
    task = c.store.enqueue_many([_checked_spec(json_body())])[0]
    body = {"task": task.to_dict()}
    warning = unclaimable_reason(c.cfg, task.skill, task.assigned_to)
    if warning:
        body["warning"] = warning  # accepted all the same: that worker may be started next
    resp = jsonify(body)
    resp.status_code = 201
    return resp


def _requeue(store, task_id: int):
    old = store.require(task_id)
    return store.enqueue(old.skill, old.payload, priority=old.priority, assigned_to=old.assigned_to,
                         max_attempts=old.max_attempts, created_by=f"{actor()} (requeue of {task_id})")


@bp.post("/api/tasks/<int:task_id>/retry")
@doc("Run a finished (DONE, FAILED, CANCELLED) task again with fresh attempts", tag="tasks",
     responses={"404": "no such task", "409": "the task is not finished"})
def retry(task_id: int):
    return jsonify({"task": ctx().store.retry(task_id, by=actor()).to_dict()})


@bp.post("/api/tasks/<int:task_id>/cancel")
@doc("Cancel a task (a running one is stopped at its next lease renewal)", tag="tasks",
     responses={"404": "no such task", "409": "the task already finished"})
def cancel(task_id: int):
    return jsonify({"task": ctx().store.cancel(task_id, by=actor()).to_dict()})


@bp.post("/api/tasks/<int:task_id>/requeue")
@doc("Enqueue a fresh copy of a task (same skill, payload, priority); the original stays as history",
     tag="tasks", responses={"404": "no such task"})
def requeue(task_id: int):
    new = _requeue(ctx().store, task_id)
    resp = jsonify({"task": new.to_dict(), "requeued_from": task_id})
    resp.status_code = 201
    return resp


@bp.post("/api/tasks/<int:task_id>/respond")
@doc("Answer a WAITING_HUMAN task: a decision (approve, reject, more_info, feedback; stored as "
     "{choice, text}) or any JSON answer such as one of the question's options",
     tag="tasks", body={"type": "object", "properties": {
         "decision": {"type": "string", "enum": list(DECISIONS)}, "text": {"type": "string"},
         "answer": {}}},
     responses={"404": "no such task", "409": "the task is not waiting for a person"})
def respond(task_id: int):
    data = json_body()
    if "answer" in data:
        answer = data["answer"]
    else:
        decision = data.get("decision")
        if decision not in DECISIONS:
            raise ApiError(400, f"decision must be one of {', '.join(DECISIONS)} (or send 'answer')")
        text = data.get("text", "")
        if not isinstance(text, str):
            raise ApiError(400, "text must be a string")
        if decision in ("more_info", "feedback") and not text.strip():
            raise ApiError(400, f"a {decision.replace('_', ' ')} response needs text saying what you want")
        # "choice" is the field skills read from a dict answer (skills._common.answer_text).
        answer = {"choice": decision, "text": text}
    return jsonify({"task": ctx().store.answer(task_id, answer, by=actor()).to_dict()})


@bp.post("/api/tasks/bulk")
@doc("Retry, cancel or requeue every task matching a filter; send the count you confirmed as "
     "expected_count (a mismatch is refused with the current count)", tag="tasks",
     body={"type": "object", "required": ["action", "filter"], "properties": {
         "action": {"type": "string", "enum": list(BULK_ACTIONS)}, "filter": _FILTER_SCHEMA,
         "expected_count": {"type": "integer", "minimum": 0}, "dry_run": {"type": "boolean"}}},
     responses={"409": "the number of matching tasks changed; confirm again"})
def bulk():
    c = ctx()
    data = json_body()
    action = data.get("action")
    if action not in BULK_ACTIONS:
        raise ApiError(400, f"action must be one of {', '.join(BULK_ACTIONS)}")
    raw_filter = data.get("filter")
    if not isinstance(raw_filter, dict):
        raise ApiError(400, "filter must be an object like {\"status\": \"FAILED\", \"skill\": \"x\"}")
    filters = parse_filter(raw_filter)
    if not filters:
        raise ApiError(400, "a bulk action needs at least one filter field; it never applies to every task")
    ids = c.store.matching_ids(**filters)
    if data.get("dry_run"):
        return jsonify({"action": action, "filter": filters, "count": len(ids)})
    expected = data.get("expected_count")
    if isinstance(expected, bool) or not isinstance(expected, int):
        raise ApiError(400, f"confirm the count: send expected_count (now {len(ids)} tasks match)",
                       count=len(ids))
    if expected != len(ids):
        raise ApiError(409, f"{len(ids)} tasks match now, not the {expected} you confirmed; check and confirm again",
                       count=len(ids))
    if len(ids) > BULK_MAX:
        raise ApiError(400, f"{len(ids)} tasks match; narrow the filter to at most {BULK_MAX}", count=len(ids))
    done, skipped = [], []
    for task_id in ids:
        try:
            if action == "retry":
                c.store.retry(task_id, by=actor())
            elif action == "cancel":
                c.store.cancel(task_id, by=actor())
            else:
                _requeue(c.store, task_id)
            done.append(task_id)
        except (InvalidTransition, NotFound, InvalidInput) as exc:
            skipped.append({"id": task_id, "reason": str(exc)})
    return jsonify({"action": action, "filter": filters, "matched": len(ids), "applied": len(done),
                    "skipped": skipped[:200], "skipped_count": len(skipped)})


def install(app, c) -> None:
    app.register_blueprint(bp)
    _install_intent(app)


def _install_intent(app) -> None:
    from fleet.intent import IntentError, parse_intent as parse

    ibp = Blueprint("intent", __name__)

    @ibp.post("/api/intent")
    @doc("Turn an instruction into {skill, payload, priority} with the intent parser (does not dispatch)",
         tag="tasks", body={"type": "object", "required": ["instruction"],
                            "properties": {"instruction": {"type": "string"}}},
         responses={"422": "the instruction matched no skill confidently; candidates are listed"})
    def intent():
        c = ctx()
        text = json_body().get("instruction")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(400, "instruction must be a non-empty string")
        try:
            result = parse(text, c.cfg, catalogue=c.catalogue())
        except IntentError as exc:
            candidates = [{"skill": n, "confidence": round(conf, 3), "description": d}
                          for n, conf, d in getattr(exc, "candidates", [])]
            raise ApiError(422, str(exc), candidates=candidates) from None
        return jsonify(result)

    app.register_blueprint(ibp)
