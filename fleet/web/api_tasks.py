"""Task endpoints: list with server-side filters and pagination, detail with
every attempt, dispatch (validated against the skill's schema), retry,
cancel, requeue, respond to a WAITING_HUMAN task, bulk actions over "all
matching this filter" (the caller confirms the count), and intent parsing.
"""

from __future__ import annotations

import json
import time

from flask import Blueprint, jsonify, request

from fleet.config import unclaimable_reason
from fleet.db import TASK_STATUSES, InvalidInput, InvalidTransition, NotFound
from fleet.skill_registry import (
    InvalidPayload,
    UnknownSkill,
    get_info,
    validate_payload,
)

from .common import ApiError, actor, ctx, declared_body, doc, int_arg, json_body, parse_time
from .params import NO_NUL, NON_BLANK, TIME_SCHEMA

bp = Blueprint("tasks", __name__)

BULK_ACTIONS = ("retry", "cancel", "requeue")
BULK_MAX = 10000
DECISIONS = ("approve", "reject", "more_info", "feedback")
FILTER_KEYS = ("status", "skill", "agent", "text", "since", "until")
# Statuses as parse_filter reads them: any case, spaces around, empty items skipped.
_ONE_STATUS = " *(" + "|".join("".join(f"[{ch}{ch.lower()}]" if ch.isalpha() else ch for ch in status)
                                for status in TASK_STATUSES) + ")? *"
_STATUS_LIST = f"^{_ONE_STATUS}(,{_ONE_STATUS})*$"
_SOME_STATUS = _ONE_STATUS.replace(")? *", ") *")  # a status that is there
_STATUS_LIST_NONEMPTY = f"^({_ONE_STATUS},)*{_SOME_STATUS}(,{_ONE_STATUS})*$"  # a filter that filters
_FILTER_QUERY = {
    "status": {"type": "string", "pattern": _STATUS_LIST,
               "description": "one status or several, comma-separated: " + ", ".join(TASK_STATUSES)},
    "skill": {"type": "string", "maxLength": 200, "pattern": NO_NUL},
    "agent": {"type": "string", "maxLength": 200, "pattern": NO_NUL, "description": "worker that ran it or assignee"},
    "text": {"type": "string", "maxLength": 200, "pattern": NO_NUL,
             "description": "substring of skill, payload, result or error"},
    "since": {**TIME_SCHEMA, "description": "created at or after"},
    "until": {**TIME_SCHEMA, "description": "created before"},
}
_FILTER_SCHEMA = {
    "type": "object", "additionalProperties": False, "properties": {
        "status": {"anyOf": [{"type": "string", "pattern": _STATUS_LIST_NONEMPTY},
                             {"type": "array", "minItems": 1, "items": {"enum": list(TASK_STATUSES)}}]},
        "skill": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": NO_NUL},
        "agent": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": NO_NUL},
        "text": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": NO_NUL},
        "since": TIME_SCHEMA, "until": TIME_SCHEMA,
    },
    "minProperties": 1,  # a bulk action never applies to every task
}


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
        if items:  # only commas and spaces: no status filter, like an empty value
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


def task_summary(t, agents: set[str] | None = None) -> dict:
    """A task's row for lists. `scheduled`: PENDING with `available_at` in the
    future (due then); `assignee_known`: whether `assigned_to` names an agent
    the fleet has (given `agents`, the known names; None when not assigned)."""
    payload = json.dumps(t.payload, ensure_ascii=False)
    return {
        "available_at": t.available_at,
        "scheduled": t.status == "PENDING" and t.available_at is not None and t.available_at > time.time(),
        "assignee_known": None if not t.assigned_to or agents is None else t.assigned_to in agents,
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
    "offset": {"type": "integer", "minimum": 0, "maximum": 10**9},
})
def list_tasks():
    c = ctx()
    filters = parse_filter({k: v for k, v in request.args.items() if k not in ("limit", "offset")})
    page = c.store.list_tasks(**filters, limit=int_arg("limit", 50, lo=1, hi=200),
                              offset=int_arg("offset", 0, lo=0, hi=10**9))
    agents = {a["name"] for a in c.store.list_agents()}
    return jsonify({"items": [task_summary(t, agents) for t in page.items], "total": page.total,
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


_DISPATCH_FIELDS = {
    "priority": {"type": "integer", "minimum": 1, "maximum": 10},
    "assigned_to": {"type": "string", "maxLength": 200, "pattern": NON_BLANK, "description": "a worker's name"},
    "max_attempts": {"type": "integer", "minimum": 1, "maximum": 1000},
    "delay_s": {"type": "number", "minimum": 0, "maximum": 1e10},
    "available_at": {"type": "number", "minimum": 0, "maximum": 1e11, "description": "UTC epoch seconds"},
    "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 500},
    "depends_on": {"type": "array", "items": {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
                   "description": "ids of tasks that must finish first (an unknown id: 404)"},
}


def dispatch_schema(c) -> dict:
    """The dispatch body for this fleet's skills: `skill` names one, and its
    `payload` follows that skill's PAYLOAD_SCHEMA (null or left out: {}).
    Built again only when the skills catalogue is re-read."""
    catalogue = c.catalogue()
    return c.cached("dispatch_schema", id(catalogue), 3600.0, lambda: _dispatch_schema(catalogue))


def _dispatch_schema(catalogue: dict) -> dict:
    branches = []
    for name, info in sorted(catalogue.items()):
        payload = dict(info.payload_schema) if info.payload_schema else {"type": "object"}
        try:
            validate_payload(info, {})
            empty_ok = True
        except InvalidPayload:
            empty_ok = False
        branch = {"properties": {"skill": {"const": name},
                                 "payload": {"anyOf": [{"type": "null"}, payload]} if empty_ok else payload}}
        if not empty_ok:
            branch["required"] = ["payload"]
        branches.append(branch)
    return {"type": "object", "required": ["skill"],
            "properties": {"skill": {"type": "string", "enum": sorted(catalogue)},
                           "payload": {"type": ["object", "null"]}, **_DISPATCH_FIELDS},
            "additionalProperties": False, "anyOf": branches,
            "not": {"required": ["available_at", "delay_s"]}}  # one or the other


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
     body=dispatch_schema, status=201, responses={"400": "unknown skill or invalid payload",
                                                  "404": "depends_on names a task that does not exist"})
def dispatch():
    c = ctx()
    spec = _checked_spec(json_body())
    declared_body()
    for parent in spec.get("depends_on") or ():
        if c.store.get(parent) is None:  # a reference to nothing: 404, as for any missing resource
            raise ApiError(404, f"depends_on names task {parent}, which does not exist")
    task = c.store.enqueue_many([spec])[0]
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
     tag="tasks", status=201, responses={"404": "no such task"})
def requeue(task_id: int):
    new = _requeue(ctx().store, task_id)
    resp = jsonify({"task": new.to_dict(), "requeued_from": task_id})
    resp.status_code = 201
    return resp


# Either any JSON `answer`, or a `decision` (with `text` saying what, for more_info and feedback).
_RESPOND_SCHEMA = {
    "type": "object",
    "properties": {"decision": {"type": "string", "enum": list(DECISIONS)}, "text": {"type": "string"},
                   "answer": {}},
    "anyOf": [
        {"required": ["answer"]},
        {"required": ["decision"],
         "if": {"properties": {"decision": {"enum": ["more_info", "feedback"]}}},
         "then": {"required": ["text"], "properties": {"text": {"type": "string", "pattern": NON_BLANK}}}},
    ],
}


@bp.post("/api/tasks/<int:task_id>/respond")
@doc("Answer a WAITING_HUMAN task: a decision (approve, reject, more_info, feedback; stored as "
     "{choice, text}) or any JSON answer such as one of the question's options. more_info also queues a "
     "research_loop task on the text, linked to the task (research_task in the reply and the answer)",
     tag="tasks", body=_RESPOND_SCHEMA,
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
        if decision == "more_info":  # the manual: "More info" creates a research_loop task on the text
            from fleet.skills._hitl import answer_more_info

            declared_body()
            c = ctx()
            task, research, why = answer_more_info(c.store, c.cfg, task_id, text, by=actor())
            return jsonify({"task": task.to_dict(), "research_task": research.to_dict() if research else None,
                            **({"research_not_queued": why} if why else {})})
        # "choice" is the field skills read from a dict answer (skills._common.answer_text).
        answer = {"choice": decision, "text": text}
    declared_body()
    return jsonify({"task": ctx().store.answer(task_id, answer, by=actor()).to_dict()})


@bp.post("/api/tasks/bulk")
@doc("Retry, cancel or requeue every task matching a filter; send the count you confirmed as "
     "expected_count (a mismatch is refused with the current count)", tag="tasks",
     body={"type": "object", "required": ["action", "filter"], "properties": {
         "action": {"type": "string", "enum": list(BULK_ACTIONS)}, "filter": _FILTER_SCHEMA,
         "expected_count": {"type": "integer", "minimum": 0}, "dry_run": {"type": "boolean"}},
         # without dry_run, the count the caller confirmed
         "if": {"not": {"required": ["dry_run"], "properties": {"dry_run": {"const": True}}}},
         "then": {"required": ["expected_count"]}},
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
        declared_body()
        return jsonify({"action": action, "filter": filters, "count": len(ids)})
    expected = data.get("expected_count")
    if isinstance(expected, float) and expected.is_integer():  # 3.0 is the integer JSON Schema says it is
        expected = int(expected)
    if isinstance(expected, bool) or not isinstance(expected, int):
        raise ApiError(400, f"confirm the count: send expected_count (now {len(ids)} tasks match)",
                       count=len(ids))
    if expected != len(ids):
        raise ApiError(409, f"{len(ids)} tasks match now, not the {expected} you confirmed; check and confirm again",
                       count=len(ids))
    declared_body()
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
                            "properties": {"instruction": {"type": "string", "pattern": NON_BLANK}}},
         responses={"422": "the instruction matched no skill confidently; candidates are listed"})
    def intent():
        c = ctx()
        text = json_body().get("instruction")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(400, "instruction must be a non-empty string")
        declared_body()
        try:
            result = parse(text, c.cfg, catalogue=c.catalogue())
        except IntentError as exc:
            candidates = [{"skill": n, "confidence": round(conf, 3), "description": d}
                          for n, conf, d in getattr(exc, "candidates", [])]
            raise ApiError(422, str(exc), candidates=candidates) from None
        return jsonify(result)

    app.register_blueprint(ibp)
