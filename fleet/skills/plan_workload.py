"""plan_workload skill: a model turns a goal into a small plan of tasks over the
installed skills, with dependencies. The plan is validated (known skills, payloads
that pass each skill's schema, dependencies that point backwards, no cycles), shown
to a person for approval (unless auto_approve), then enqueued through the store's
depends_on support; returns the new task ids.
"""

from __future__ import annotations

import uuid

from fleet.skills._common import (
    APPROVE_WORDS,
    ModelOutputError,
    SkillError,
    agent_name,
    answer_text,
    drop_stash,
    load_stash,
    save_stash,
    skill_options,
)
from fleet.skills._hitl import NeedsHuman
from fleet.skills._llm import ask_model

DESCRIPTION = ("Plan a goal as a small set of fleet tasks with dependencies, ask a person to approve it "
               "(unless auto_approve), then enqueue it; returns the task ids.")
REQUIRES_MODEL = True
REQUIRES_NETWORK = False
LOCAL_ONLY = False
IDEMPOTENT = True  # enqueueing uses idempotency keys, so a retried run adds no duplicates
# Not REQUIRES_APPROVAL (the worker would ask before the plan exists): the skill
# asks a person to approve the plan itself, with its tasks, before enqueueing.
REQUIRES_APPROVAL = False
TIMEOUT_S = 600
PAYLOAD_SCHEMA = {
    "type": "object",
    "properties": {
        "goal": {"type": "string", "minLength": 5, "maxLength": 4000},
        "max_tasks": {"type": "integer", "minimum": 1, "maximum": 500},
        "auto_approve": {"type": "boolean", "description": "enqueue without asking a person"},
        "priority": {"type": "integer", "minimum": 1, "maximum": 10},
        "context": {"type": "string", "maxLength": 4000, "description": "facts the planner should know (paths, ...)"},
        "agent": {"type": "string", "maxLength": 64},
        "human_answer": {"description": "set by the store when a person answers"},
        "human_question": {"type": ["string", "null"]},
    },
    "required": ["goal"],
    "additionalProperties": False,
}
REPLY_SCHEMA = {
    "type": "object",
    "required": ["tasks"],
    "properties": {
        "rationale": {"type": "string"},
        "tasks": {"type": "array", "minItems": 1, "items": {
            "type": "object",
            "required": ["id", "skill", "payload"],
            "properties": {
                "id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"},
                "skill": {"type": "string"},
                "payload": {"type": "object"},
                "depends_on": {"type": "array", "items": {"type": "string"}},
                "why": {"type": "string"},
            },
        }},
    },
}


def _catalogue(config: dict) -> dict:
    from fleet.skill_registry import discover

    allowed = set(skill_options(config, "plan_workload")["allowed_skills"])
    return {n: i for n, i in discover(config).items() if n != "plan_workload" and (not allowed or n in allowed)}


def validate_plan(tasks: list[dict], catalogue: dict, max_tasks: int) -> list[dict]:
    """The plan in dependency order, or ModelOutputError listing every problem."""
    from fleet.skill_registry import InvalidPayload, validate_payload

    problems, ids = [], set()
    if len(tasks) > max_tasks:
        problems.append(f"{len(tasks)} tasks, over the limit of {max_tasks}")
    for t in tasks:
        if t["id"] in ids:
            problems.append(f"task id {t['id']!r} is used twice")
        ids.add(t["id"])
        if t["skill"] not in catalogue:
            problems.append(f"task {t['id']}: unknown skill {t['skill']!r}")
        else:
            try:
                validate_payload(catalogue[t["skill"]], t["payload"])
            except InvalidPayload as exc:
                problems.append(f"task {t['id']}: {exc}")
        for d in t.get("depends_on") or []:
            if d == t["id"]:
                problems.append(f"task {t['id']} depends on itself")
            elif d not in {x["id"] for x in tasks}:
                problems.append(f"task {t['id']} depends on {d!r}, which is not in the plan")
    if problems:
        raise ModelOutputError("plan_workload: the model's plan is not usable: " + "; ".join(problems)
                               + ". Nothing was enqueued (retry, or state the goal more concretely)")
    ordered, done, pending = [], set(), list(tasks)
    while pending:  # topological order (Kahn); a pass without progress means a cycle
        ready = [t for t in pending if set(t.get("depends_on") or []) <= done]
        if not ready:
            raise ModelOutputError("plan_workload: the plan's dependencies form a cycle among "
                                   + ", ".join(t["id"] for t in pending) + "; nothing was enqueued")
        for t in ready:
            ordered.append(t)
            done.add(t["id"])
            pending.remove(t)
    return ordered


def make_plan(payload: dict, config: dict, max_tasks: int) -> dict:
    catalogue = _catalogue(config)
    if not catalogue:
        raise SkillError("plan_workload: no skills are available to plan with ([skills.plan_workload] allowed_skills)")
    skills = "\n".join(f"- {n}: {i.description or '(no description)'}\n  payload schema: "
                       f"{_short_schema(i.payload_schema)}" for n, i in sorted(catalogue.items()))
    context = f"\nContext: {payload['context']}\n" if payload.get("context") else ""
    prompt = (f"Plan this goal as at most {max_tasks} tasks for a fleet of workers.\nGoal: {payload['goal']}\n{context}\n"
              f"Available skills (use only these, with payloads that match their schemas):\n{skills}\n\n"
              "Give each task a short id; depends_on lists ids of tasks that must finish first. Prefer few tasks.\n"
              'Reply with one JSON object only: {"rationale": "...", "tasks": [{"id": "t1", "skill": "...", '
              '"payload": {...}, "depends_on": [], "why": "..."}]}')
    reply = ask_model(prompt, config, skill="plan_workload", json_schema=REPLY_SCHEMA, max_tokens=3000, temperature=0.1)
    if not isinstance(reply.json, dict):
        raise ModelOutputError("plan_workload: the model's reply has no JSON plan; nothing was enqueued")
    ordered = validate_plan(reply.json["tasks"], catalogue, max_tasks)
    return {"plan_id": uuid.uuid4().hex[:12], "goal": payload["goal"], "rationale": reply.json.get("rationale", ""),
            "tasks": [{"id": t["id"], "skill": t["skill"], "payload": t["payload"],
                       "depends_on": list(t.get("depends_on") or []), "why": t.get("why", "")} for t in ordered],
            "model": reply.model, "provider": reply.provider}


def _short_schema(schema: dict | None) -> str:
    if not schema:
        return "{} (any object)"
    props = schema.get("properties", {})
    req = set(schema.get("required", []))
    return "{" + ", ".join(f"{k}{'*' if k in req else ''}: {v.get('type') or ('one of ' + str(v['enum']) if 'enum' in v else 'any')}"
                           for k, v in props.items() if k not in ("human_answer", "human_question", "agent")) + "} (* required)"


def enqueue_plan(config: dict, plan: dict, priority: int, created_by: str) -> dict[str, int]:
    """Enqueue in dependency order; idempotency keys make a retried run return the same tasks."""
    from fleet.db import shared_store

    store = shared_store(config)
    ids: dict[str, int] = {}
    for t in plan["tasks"]:
        task = store.enqueue(t["skill"], t["payload"], priority=priority,
                             depends_on=[ids[d] for d in t["depends_on"]],
                             idempotency_key=f"plan:{plan['plan_id']}:{t['id']}", created_by=created_by)
        ids[t["id"]] = task.id
    return ids


def describe(plan: dict) -> str:
    steps = "; ".join(f"{t['id']}={t['skill']}" + (f" after {','.join(t['depends_on'])}" if t["depends_on"] else "")
                      for t in plan["tasks"])
    return f"{len(plan['tasks'])} tasks: {steps}"


def run(payload: dict, config: dict, log) -> dict:
    max_tasks = int(payload.get("max_tasks") or skill_options(config, "plan_workload")["max_tasks"])
    priority = int(payload.get("priority") or 5)
    agent = agent_name(payload, config)
    answer = answer_text(payload)
    plan = load_stash(config, "plan_workload", payload)
    if plan is not None and not plan.get("approved"):
        if answer is None:
            plan = None  # an unanswered old draft: plan afresh
        elif answer not in APPROVE_WORDS:
            drop_stash(config, "plan_workload", payload)
            log.info("plan_workload: plan %s rejected by a person (%r)", plan["plan_id"], answer)
            return {"approved": False, "answer": payload["human_answer"], "plan": plan, "task_ids": {}, "enqueued": []}
        else:
            plan["approved"], plan["approved_by"] = True, "human"
    if plan is None:
        if answer is not None:
            log.warning("plan_workload: answer given but the pending plan is gone; planning again")
        plan = make_plan(payload, config, max_tasks)
        plan["approved"] = bool(payload.get("auto_approve"))
        plan["approved_by"] = "auto" if plan["approved"] else None
        save_stash(config, "plan_workload", payload, plan)
        if not plan["approved"]:
            raise NeedsHuman(f"Approve this plan for the goal {payload['goal'][:200]!r}? {describe(plan)}. "
                             "Answer 'approve' to enqueue it or 'reject' to drop it.", ["approve", "reject"])
    # approved: remembered before enqueueing, so a retried attempt enqueues the same plan (same keys)
    save_stash(config, "plan_workload", payload, plan)
    ids = enqueue_plan(config, plan, priority, created_by=f"plan_workload:{agent}")
    drop_stash(config, "plan_workload", payload)
    log.info("plan_workload: enqueued plan %s as tasks %s", plan["plan_id"], ids)
    return {"approved": True, "approved_by": plan["approved_by"], "plan": plan, "task_ids": ids,
            "enqueued": list(ids.values())}
