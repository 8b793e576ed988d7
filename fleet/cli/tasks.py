"""Task commands: task (natural language or raw JSON), dispatch, result, tasks,
cancel, retry and hitl. Skill and payload are checked against the skill
registry before anything is written.
"""

from __future__ import annotations

import json
import sys
import time

from fleet.hosts import is_supervisor
from fleet.config import air_gap_refusal, unclaimable_reason

from .common import (
    EXIT_FAILED,
    EXIT_NO_SUPERVISOR,
    EXIT_OK,
    EXIT_WAIT_TIMEOUT,
    SENDER,
    CliError,
    Ctx,
    UsageError,
    fmt_age,
    fmt_ts,
    parse_json_object,
    positive_float,
    positive_int,
    print_json,
    print_kv,
    print_table,
    priority,
    read_value,
    short,
    wait_for_task,
)

STATUSES = ("PENDING", "RUNNING", "DONE", "FAILED", "WAITING_HUMAN", "CANCELLED")


def _validate(ctx: Ctx, skill: str, payload: dict) -> None:
    from fleet import skill_registry

    catalogue = skill_registry.discover(ctx.cfg)
    try:
        info = skill_registry.get_info(skill, catalogue=catalogue)
        skill_registry.validate_payload(info, payload)
    except (skill_registry.UnknownSkill, skill_registry.InvalidPayload) as exc:
        raise UsageError(str(exc).strip("'\"")) from None
    refusal = air_gap_refusal(ctx.cfg, skill)
    if refusal:
        raise UsageError(f"{refusal}; nothing was queued")


def _fleet_can_work(ctx: Ctx) -> bool:
    """A supervisor runs, or some worker heartbeats (workers run by hand)."""
    if ctx.supervisor_pid() is not None:
        return True
    limit = float(ctx.cfg["supervisor"]["heartbeat_timeout_s"])
    ts = time.time()
    return any(not is_supervisor(a) and a["status"] in ("idle", "busy", "starting")
               and ts - a["last_heartbeat"] <= limit for a in ctx.store.list_agents())


def _submit(ctx: Ctx, skill: str, payload: dict, prio: int, assigned_to: str | None,
            extra: dict | None = None, options: dict | None = None) -> int:
    """Validate, enqueue and (with --wait) wait. `extra` joins the JSON output;
    `options` are further enqueue options (max_attempts, delay_s, ...)."""
    extra = extra or {}
    args = ctx.args
    if args.wait:
        _validate(ctx, skill, payload)
        if not _fleet_can_work(ctx):
            raise CliError("--wait needs a running fleet, and no supervisor or worker is running; nothing was "
                           "queued. Start it with `python fleet/supervisor.py`, or queue without --wait",
                           EXIT_NO_SUPERVISOR)
    task, warning = enqueue_checked(ctx, skill, payload, prio, assigned_to, options)
    if warning:
        extra = {**extra, "warning": warning}
        if not ctx.json:
            print(f"warning: {warning}", file=sys.stderr)
    if not args.wait:
        if ctx.json:
            print_json({"task": task.to_dict(), **extra})
        else:
            print(f"task {task.id} queued: {skill} (priority {prio}"
                  + (f", assigned to {assigned_to}" if assigned_to else "") + ")")
            if ctx.supervisor_pid() is None:
                print("note: no supervisor is running; the task waits until the fleet starts", file=sys.stderr)
        return EXIT_OK
    try:
        final = wait_for_task(ctx.store, task.id, args.timeout, progress=sys.stderr.isatty() and not ctx.json)
    except KeyboardInterrupt:
        raise CliError(f"stopped waiting; task {task.id} goes on (`lead_client.py result {task.id}`, "
                       f"`lead_client.py cancel {task.id}`)", 130) from None
    if final is None:
        now = ctx.store.require(task.id)
        if ctx.json:
            print_json({"task": now.to_dict(), "timed_out": True, **extra})
        raise CliError(f"task {task.id} is still {now.status} after {args.timeout:g} s; "
                       f"check later with `lead_client.py result {task.id}`", EXIT_WAIT_TIMEOUT)
    if ctx.json:
        print_json({"task": final.to_dict(), "timed_out": False, **extra})
    else:
        _print_task(final, [])
    if final.status != "DONE":
        raise CliError(f"task {final.id} {final.status}: {final.error or 'cancelled'}", EXIT_FAILED)
    return EXIT_OK


def enqueue_checked(ctx: Ctx, skill: str, payload: dict, prio: int, assigned_to: str | None = None,
                    options: dict | None = None):
    """Check skill and payload against the skill registry (UsageError when
    wrong: nothing is written), then queue the task as the operator.
    Returns (the Task, a warning when no configured worker can claim it, or None)."""
    _validate(ctx, skill, payload)
    task = ctx.store.enqueue(skill, payload, priority=prio, assigned_to=assigned_to, created_by=ctx.actor,
                             **(options or {}))
    return task, unclaimable_reason(ctx.cfg, skill, assigned_to)


def task_from_instruction(ctx: Ctx, text: str, prio: int | None = None) -> dict:
    """What `task` queues for an instruction: raw JSON (a task spec) or
    natural language (the intent parser). Returns {"skill", "payload",
    "priority", "assigned_to", "options", "intent"}; UsageError / CliError
    when it cannot be turned into a task. Prints nothing."""
    text = text.strip()
    intent_info = None
    assigned_to = None
    options: dict = {}
    if text.startswith("{"):  # raw JSON bypasses the intent parser: a task spec (rule in intent.py)
        from fleet import intent
        from fleet.skill_registry import discover

        obj = parse_json_object(text, "task JSON")
        try:
            spec = intent.task_spec_from_json(obj, discover(ctx.cfg))
        except intent.IntentError as exc:
            raise UsageError(str(exc)) from None
        skill, payload = spec.pop("skill"), spec.pop("payload")
        if "priority" in spec:
            given = spec.pop("priority")
            if prio is not None and prio != given:
                raise UsageError(f"two priorities: --priority {prio} and \"priority\": {given} in the JSON; "
                                 "give one")
            prio = given
        assigned_to = spec.pop("assigned_to", None)
        options = spec  # max_attempts, delay_s, idempotency_key, ...: the store checks them
    else:
        if not text:
            raise UsageError("the instruction is empty")
        parsed = parse_instruction(ctx, text)
        skill, payload = parsed["skill"], dict(parsed.get("payload") or {})
        prio = prio if prio is not None else parsed.get("priority")
        intent_info = {k: parsed.get(k) for k in ("method", "confidence", "note")}
    return {"skill": skill, "payload": payload, "priority": prio if prio is not None else 5,
            "assigned_to": assigned_to, "options": options, "intent": intent_info}


def cmd_dispatch(ctx: Ctx) -> int:
    a = ctx.args
    payload = parse_json_object(read_value(a.payload, b64=a.b64, what="payload"), "payload")
    return _submit(ctx, a.skill, payload, a.priority, a.assigned_to)


def cmd_task(ctx: Ctx) -> int:
    spec = task_from_instruction(ctx, ctx.args.instruction, ctx.args.priority)
    if spec["intent"] is not None and not ctx.json:
        if spec["intent"].get("note"):
            print(f"note: {spec['intent']['note']}", file=sys.stderr)
        print(f"parsed as {spec['skill']} {short(spec['payload'], 80)} ({spec['intent'].get('method') or '?'})",
              file=sys.stderr)
    extra = {"intent": spec["intent"]} if spec["intent"] is not None else {}
    return _submit(ctx, spec["skill"], spec["payload"], spec["priority"], spec["assigned_to"], extra,
                   spec["options"])


def parse_instruction(ctx: Ctx, text: str) -> dict:
    """The intent parser's reading of a natural-language instruction
    ({"skill", "payload", "priority", "method", "confidence", "note"});
    CliError when it finds no task in it. Prints nothing."""
    import logging

    # The model layer logs a failed conductor call; the caller shows the note once.
    logging.getLogger().addHandler(logging.NullHandler())
    from fleet import intent

    try:
        return intent.parse_intent(text, ctx.cfg)
    except intent.IntentError as exc:
        raise CliError(f"could not turn the instruction into a task: {exc}") from None


def _print_task(t, attempts: list[dict]) -> None:
    rows = [("task", t.id), ("skill", t.skill), ("status", t.status + (" (dead letter)" if t.dead_letter else "")),
            ("priority", t.priority), ("attempts", f"{t.attempts}/{t.max_attempts}"),
            ("assigned to", t.assigned_to), ("worker", t.worker), ("created", fmt_ts(t.created_at)),
            ("finished", fmt_ts(t.finished_at)), ("payload", short(t.payload, 200))]
    if t.question:
        rows.append(("question", short(t.question, 200)))
    if t.error:
        rows.append(("error", f"{t.error} ({t.error_reason})" if t.error_reason else t.error))
    print_kv([(k, v) for k, v in rows if v not in (None, "")])
    if t.result is not None:
        print("result:")
        print(t.result if isinstance(t.result, str) else json.dumps(t.result, indent=2, ensure_ascii=False))
    if attempts:
        print_table(["attempt", "worker", "started", "took", "outcome", "error"],
                    [[a["attempt_no"], a["worker"], fmt_ts(a["started_at"]),
                      fmt_age(a["ended_at"] - a["started_at"]) if a.get("ended_at") else "running",
                      a["outcome"], short(a.get("error") or "", 50)] for a in attempts])


def cmd_result(ctx: Ctx) -> int:
    store = ctx.store
    t = store.require(ctx.args.id)
    attempts = store.attempts(t.id)
    history = store.task_history(t.id)
    if ctx.json:
        print_json({"task": t.to_dict(), "attempts": attempts, "depends_on": store.dependencies(t.id),
                    "history": history})
    else:
        _print_task(t, attempts)
        print("history:")
        print_table(["time", "action", "by", "detail"],
                    [[fmt_ts(e["ts"]), e["action"], e["actor"],
                      short(json.dumps(e["detail"], ensure_ascii=False) if e["detail"] else "", 60)]
                     for e in history])
    return EXIT_OK


def cmd_tasks(ctx: Ctx) -> int:
    a = ctx.args
    page = ctx.store.list_tasks(status=a.status, skill=a.skill, agent=a.agent, limit=a.limit)
    if ctx.json:
        print_json(page.to_dict())
        return EXIT_OK
    print_table(["id", "skill", "status", "prio", "tries", "worker", "created", "error"],
                [[t.id, t.skill, t.status, t.priority, f"{t.attempts}/{t.max_attempts}", t.worker or t.assigned_to,
                  fmt_ts(t.created_at), short(t.error or "", 40)] for t in page.items])
    print(f"{len(page.items)} of {page.total} task(s)")
    return EXIT_OK


def _single(ctx: Ctx, verb: str) -> int:
    store = ctx.store
    t = store.cancel(ctx.args.id, by=SENDER) if verb == "cancel" else store.retry(ctx.args.id, by=SENDER)
    if ctx.json:
        print_json({"task": t.to_dict()})
    elif verb == "cancel" and t.status == "RUNNING":
        print(f"task {t.id}: cancellation requested; {t.worker} stops it at its next lease renewal")
    else:
        print(f"task {t.id}: {t.status}")
    return EXIT_OK


def cmd_cancel(ctx: Ctx) -> int:
    return _single(ctx, "cancel")


def cmd_retry(ctx: Ctx) -> int:
    return _single(ctx, "retry")


def cmd_hitl(ctx: Ctx) -> int:
    store = ctx.store
    if ctx.args.hitl_command == "list":
        page = store.list_tasks(status="WAITING_HUMAN", limit=ctx.args.limit)
        items = [{"id": t.id, "skill": t.skill, "question": (t.question or {}).get("question"),
                  "options": (t.question or {}).get("options") or [], "waiting_since": t.updated_at,
                  "worker": t.worker} for t in page.items]
        if ctx.json:
            print_json({"items": items, "total": page.total})
        elif not items:
            print("no task is waiting for a person")
        else:
            print_table(["id", "skill", "question", "options", "waiting"],
                        [[i["id"], i["skill"], short(i["question"] or "", 70), " / ".join(map(str, i["options"])),
                          fmt_age(time.time() - i["waiting_since"])] for i in items])
        return EXIT_OK
    if (ctx.args.answer is None) == (ctx.args.more_info is None):
        raise UsageError("give either an ANSWER or --more-info TEXT (what you need to know first)")
    if ctx.args.more_info is not None:
        return _hitl_more_info(ctx)
    t = store.require(ctx.args.id)
    options = (t.question or {}).get("options") or [] if isinstance(t.question, dict) else []
    if t.status == "WAITING_HUMAN" and options and ctx.args.answer not in [str(o) for o in options]:
        raise UsageError(f"task {t.id} asks to choose one of: {', '.join(map(str, options))}")
    t = store.answer(t.id, ctx.args.answer, by=SENDER)
    if ctx.json:
        print_json({"task": t.to_dict()})
    else:
        print(f"task {t.id}: answered; it is {t.status} again")
    return EXIT_OK


def _hitl_more_info(ctx: Ctx) -> int:
    """A "more info" answer, as the dashboard's: a research_loop task on the text, linked to the task."""
    from fleet.skills._hitl import answer_more_info

    try:
        t, research, why = answer_more_info(ctx.store, ctx.cfg, ctx.args.id, ctx.args.more_info, by=SENDER)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if ctx.json:
        print_json({"task": t.to_dict(), "research_task": research.to_dict() if research else None,
                    **({"research_not_queued": why} if why else {})})
    else:
        print(f"task {t.id}: answered (more info); it is {t.status} again")
        print(f"research task {research.id} queued: research_loop on your question" if research
              else f"no research task queued: {why}")
    return EXIT_OK


def register(sub, json_parent) -> None:
    def add_wait(p):
        p.add_argument("--wait", action="store_true", help="block until the task finishes (exit 1 if it fails)")
        p.add_argument("--timeout", type=positive_float, metavar="S",
                       help="with --wait: give up after S seconds (exit 99); default: wait until it ends")

    p = sub.add_parser("task", parents=[json_parent],
                       help='submit "instruction" (intent parser) or raw JSON {"skill": ..., "payload": {...}, '
                            '"priority": N, "assigned_to": ...} (or payload fields beside "skill")')
    p.add_argument("instruction")
    p.add_argument("--priority", type=priority, help="1-10, higher first (default 5, or what the instruction says)")
    add_wait(p)
    p.set_defaults(func=cmd_task)

    p = sub.add_parser("dispatch", parents=[json_parent], help="queue SKILL with a JSON PAYLOAD")
    p.add_argument("skill")
    p.add_argument("payload", help="JSON object; '-' reads it from stdin")
    p.add_argument("--priority", type=priority, default=9, help="1-10, higher first (default 9)")
    p.add_argument("--assigned-to", metavar="AGENT", help="only this worker may run it")
    p.add_argument("--b64", action="store_true", help="PAYLOAD is base64-encoded JSON")
    add_wait(p)
    p.set_defaults(func=cmd_dispatch)

    p = sub.add_parser("result", parents=[json_parent], help="status, result and attempts of a task")
    p.add_argument("id", type=positive_int)
    p.set_defaults(func=cmd_result)

    p = sub.add_parser("tasks", parents=[json_parent], help="list tasks, newest first")
    p.add_argument("--status", type=str.upper, choices=STATUSES)
    p.add_argument("--skill")
    p.add_argument("--agent", help="tasks run by or assigned to this worker")
    p.add_argument("--limit", type=positive_int, default=20, help="how many (1-1000, default 20)")
    p.set_defaults(func=cmd_tasks)

    for name, fn, text in (("cancel", cmd_cancel, "cancel a task (a running one stops at its next renewal)"),
                           ("retry", cmd_retry, "run a finished task again with fresh attempts")):
        p = sub.add_parser(name, parents=[json_parent], help=text)
        p.add_argument("id", type=positive_int)
        p.set_defaults(func=fn)

    p = sub.add_parser("hitl", help="tasks waiting for a person: list, respond")
    hs = p.add_subparsers(dest="hitl_command", metavar="list|respond", required=True)
    q = hs.add_parser("list", parents=[json_parent], help="tasks waiting for an answer")
    q.add_argument("--limit", type=positive_int, default=50)
    q.set_defaults(func=cmd_hitl, _parser=q)
    q = hs.add_parser("respond", parents=[json_parent], help="answer a waiting task; it runs again")
    q.add_argument("id", type=positive_int)
    q.add_argument("answer", nargs="?", help="the answer (one of the question's options when it has some)")
    q.add_argument("--more-info", metavar="TEXT",
                   help="instead of an answer: what you need to know first; queues a research_loop task on it")
    q.set_defaults(func=cmd_hitl, _parser=q)
