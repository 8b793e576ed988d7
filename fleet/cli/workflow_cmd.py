"""Workflow commands: `workflow start GOAL --repo PATH` (prints the id),
`workflow status ID`, `workflow list`, `workflow cancel ID`, the human gate
(`workflow approve ID`, `workflow reject ID --reason`, `workflow edit ID
PLAN.json`), and what was learned (`workflow lessons|rules [--repo]`, with
`--delete N`)."""

from __future__ import annotations

import json
import os

from fleet.workflow.view import workflow_view

from .common import (
    EXIT_OK,
    SENDER,
    CliError,
    Ctx,
    UsageError,
    fmt_ts,
    positive_float,
    positive_int,
    print_json,
    print_kv,
    print_table,
)


def _workflow(ctx: Ctx) -> dict:
    from fleet.store import NotFound

    try:
        return ctx.store.get_workflow(ctx.args.id)
    except NotFound as exc:
        raise CliError(f"{exc}; `lead_client workflow list` shows the workflows") from None


def _waiting_task(ctx: Ctx, wf: dict):
    task = ctx.store.get(wf["task_id"]) if wf.get("task_id") else None
    if wf["status"] != "RUNNING" or wf["phase"] != "approve" or task is None or task.status != "WAITING_HUMAN":
        raise CliError(f"workflow {wf['id']} is not waiting for approval (it is {wf['status']} at {wf['phase']}; "
                       f"see `lead_client workflow status {wf['id']}`)")
    return task


def cmd_workflow(ctx: Ctx) -> int:
    a = ctx.args
    verb = a.workflow_command
    if verb == "start":
        return _start(ctx)
    if verb == "list":
        rows = ctx.store.list_workflows(status=a.status, limit=a.limit)
        if ctx.json:
            print_json({"workflows": [workflow_view(ctx.store, w) for w in rows]})
        elif not rows:
            print("no workflows yet: `lead_client workflow start GOAL --repo PATH` starts one")
        else:
            print_table(["id", "status", "phase", "spent USD", "goal", "repo", "started"],
                        [[w["id"], w["status"], w["phase"], f"{w['spent_usd']:.4f}", w["goal"][:50], w["repo"],
                          fmt_ts(w["created_at"])] for w in rows])
        return EXIT_OK
    if verb in ("lessons", "rules"):
        return _learned(ctx, verb)
    wf = _workflow(ctx)
    if verb == "status":
        view = workflow_view(ctx.store, wf)
        if ctx.json:
            print_json({"workflow": view})
            return EXIT_OK
        print_kv([("workflow", view["id"]), ("goal", view["goal"]), ("repo", f"{view['repo']} (base {view['base']})"),
                  ("status", view["status"] + (" (waiting for approval)" if view["waiting_for_approval"] else "")),
                  ("phase", view["phase"]), ("spent", f"{view['spent_usd']:.4f} USD"
                                             + (f" of {view['budget_usd']:.2f}" if view["budget_usd"] else "")),
                  ("branch", view["branch"] or "-"), ("report", view["report"] or "-"),
                  ("error", view["error"] or view["stalled"] or "-")])
        print_table(["step", "phase", "outcome", "calls", "tokens in", "tokens out", "USD", "at"],
                    [[h["step"], h["phase"], h["outcome"], h["model_calls"], h["input_tokens"], h["output_tokens"],
                      f"{h['cost_usd']:.4f}", fmt_ts(h["finished_at"])] for h in view["history"]])
        return EXIT_OK
    if verb == "cancel":
        row = ctx.store.request_workflow_cancel(wf["id"], by=SENDER)
        task = ctx.store.get(row["task_id"]) if row.get("task_id") else None
        if task is not None and task.status == "WAITING_HUMAN":
            # a parked approval would never reach the boundary: let it run once to stop there
            ctx.store.answer(task.id, {"choice": "cancel"}, by=SENDER)
        if ctx.json:
            print_json({"workflow": workflow_view(ctx.store, ctx.store.get_workflow(wf["id"]))})
        else:
            print(f"workflow {wf['id']}: cancel requested; it stops at the next phase boundary")
        return EXIT_OK
    task = _waiting_task(ctx, wf)
    if verb == "approve":
        answer = {"choice": "approve"}
    elif verb == "reject":
        answer = {"choice": "reject", "reason": a.reason}
    else:
        try:
            with open(a.plan, encoding="utf-8") as fh:
                plan = json.load(fh)
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read the plan {a.plan}: {exc}") from None
        if not isinstance(plan, dict) or not plan.get("criteria"):
            raise UsageError("the edited plan must be a JSON object with acceptance criteria (\"criteria\": [...])")
        answer = {"choice": "edit", "plan": plan}
    ctx.store.answer(task.id, answer, by=a.by or SENDER)
    if ctx.json:
        print_json({"workflow": wf["id"], "answered": answer["choice"], "task": task.id})
    else:
        print(f"workflow {wf['id']}: {answer['choice']} recorded")
    return EXIT_OK


def _start(ctx: Ctx) -> int:
    from fleet.workflow.engine import WorkflowError, start

    a = ctx.args
    models = {k: getattr(a, k) for k in ("planner", "executor", "reviewer") if getattr(a, k)}
    try:
        wf = start(ctx.cfg, ctx.store, a.goal, a.repo, base=a.base, budget_usd=a.budget,
                   test_command=a.test_command, models=models, created_by=SENDER)
    except WorkflowError as exc:
        raise CliError(str(exc)) from None
    if ctx.json:
        print_json({"workflow": workflow_view(ctx.store, wf)})
    else:
        print(wf["id"])
    return EXIT_OK


def _learned(ctx: Ctx, verb: str) -> int:
    from fleet.workflow import rules

    a = ctx.args
    repo = os.path.realpath(a.repo) if a.repo else None
    if verb == "lessons":
        if a.delete:
            ctx.store.delete_lesson(a.delete, by=SENDER)
            print_json({"deleted": a.delete}) if ctx.json else print(f"lesson {a.delete} deleted")
            return EXIT_OK
        rows = ctx.store.lessons(repo=repo, limit=200)
        if ctx.json:
            print_json({"lessons": rows})
        else:
            print_table(["id", "repo", "workflow", "lesson"], [[r["id"], r["repo"], r["workflow_id"], r["text"]]
                                                              for r in rows])
        return EXIT_OK
    if repo is None:
        raise UsageError("workflow rules needs --repo (rules are kept per repository)")
    if a.delete:
        if not rules.delete(ctx.cfg, repo, a.delete):
            raise CliError(f"no rule {a.delete} for {repo}")
        print_json({"deleted": a.delete}) if ctx.json else print(f"rule {a.delete} deleted")
        return EXIT_OK
    rows = rules.load(ctx.cfg, repo)
    if ctx.json:
        print_json({"rules": rows, "file": str(rules.rules_file(ctx.cfg, repo))})
    else:
        print_table(["id", "name", "pattern", "message"], [[r.get("id"), r["name"], r["pattern"], r["message"]]
                                                          for r in rows])
    return EXIT_OK


def register(sub, json_parent) -> None:
    p = sub.add_parser("workflow", parents=[json_parent],
                       help="code-factory workflows: start | status | list | cancel | approve | reject | edit | "
                            "lessons | rules")
    ws = p.add_subparsers(dest="workflow_command", required=True,
                          metavar="{start,status,list,cancel,approve,reject,edit,lessons,rules}")
    q = ws.add_parser("start", parents=[json_parent], help="plan, approve, implement and review GOAL in --repo")
    q.add_argument("goal")
    q.add_argument("--repo", required=True, help="the git repository (it gets a branch fleet/wf-ID, never a push)")
    q.add_argument("--base", default="HEAD", help="the branch or commit to start from (default HEAD)")
    q.add_argument("--budget", type=positive_float, metavar="USD", help="the workflow's budget, all phases")
    q.add_argument("--test-command", dest="test_command", help="the repository's test command (a gate)")
    for role in ("planner", "executor", "reviewer"):
        q.add_argument(f"--{role}", metavar="PROVIDER[/MODEL]", help=f"the {role} (default: [workflow] {role})")
    q = ws.add_parser("list", parents=[json_parent], help="workflows, newest first")
    q.add_argument("--status", choices=("RUNNING", "DONE", "FAILED", "CANCELLED", "REJECTED"))
    q.add_argument("--limit", type=positive_int, default=50)
    for verb, text in (("status", "phase, history, cost so far"),
                       ("cancel", "stop at the next phase boundary (the worktree goes; a branch with commits stays)"),
                       ("approve", "approve the plan"), ("reject", "reject the plan (ends the workflow)"),
                       ("edit", "approve a revised plan (a JSON file)")):
        q = ws.add_parser(verb, parents=[json_parent], help=text)
        q.add_argument("id", type=positive_int)
        if verb in ("approve", "reject", "edit"):
            q.add_argument("--by", help="who decides (recorded; default operator)")
        if verb == "reject":
            q.add_argument("--reason", required=True)
        if verb == "edit":
            q.add_argument("plan", help="the revised plan: a JSON file with goal, steps, files, criteria")
    for verb, text in (("lessons", "lessons learned from failures"), ("rules", "learned deterministic rules")):
        q = ws.add_parser(verb, parents=[json_parent], help=text)
        q.add_argument("--repo")
        q.add_argument("--delete", type=positive_int, metavar="ID", help="delete one")
    p.set_defaults(func=cmd_workflow)
