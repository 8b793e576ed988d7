"""The operations manual's operator tools: `report-issue` (a redacted debug
report, fleet.debug_report), `resolutions` (each report's open -> resolved
lifecycle), `audit` (every operator action, from the store's events) and
`gdpr-erase AGENT [--confirm]` (fleet.gdpr).
"""

from __future__ import annotations

import sys
import time

from .common import (
    EXIT_OK,
    SENDER,
    CliError,
    Ctx,
    fmt_ts,
    parse_iso,
    positive_int,
    print_json,
    print_kv,
    print_table,
    short,
)

# Agent states in which an agent may still be writing (erasing under it would race).
_LIVE = ("starting", "idle", "busy", "paused")


def cmd_report_issue(ctx: Ctx) -> int:
    from fleet.debug_report import generate_debug_report

    from fleet.store.errors import StoreError

    a = ctx.args
    cfg = ctx.cfg
    try:
        store, store_error = ctx.store, None
    except (CliError, StoreError) as exc:  # a broken store is when a report is needed most: write it anyway
        store, store_error = None, str(exc)
        print(f"lead_client.py report-issue: warning: the store could not be opened ({exc}); the report is "
              "written without what needs it, and is not recorded for `resolutions`", file=sys.stderr)
    out = generate_debug_report(cfg, store, description=a.description, steps=a.steps,
                                include_logs=not a.no_logs, by=SENDER, store_error=store_error)
    if ctx.json:
        print_json({k: out[k] for k in ("id", "json_path", "md_path", "status")})
    else:
        print(f"debug report {out['id'] or '(not recorded)'} written to {out['json_path']}")
        print(f"readable copy: {out['md_path']}")
        if out["id"] is not None:
            print(f"secrets are redacted; track it with `lead_client.py resolutions resolve {out['id']} --note ...`")
    return EXIT_OK


def cmd_resolutions(ctx: Ctx) -> int:
    a = ctx.args
    store = ctx.store
    if a.resolutions_command == "resolve":
        report = store.resolve_debug_report(a.id, a.note, by=SENDER, fix_commit=a.fix_commit,
                                            regression_test=a.regression_test)
        if ctx.json:
            print_json({"report": report})
        else:
            print(f"debug report {report['id']} resolved: {report['note']}")
        return EXIT_OK
    reports = store.debug_reports(status=a.status, limit=a.limit)
    if ctx.json:
        print_json({"reports": reports})
    elif not reports:
        print("no debug reports" + (f" {a.status}" if a.status else "") + "; `lead_client.py report-issue` makes one")
    else:
        print_table(["id", "created", "by", "status", "path", "description / note"],
                    [[r["id"], fmt_ts(r["created_at"]), r["created_by"], r["status"], r["path"],
                      short(r["note"] if r["status"] == "resolved" else (r["description"] or ""), 50)]
                     for r in reports])
    return EXIT_OK


def cmd_audit(ctx: Ctx) -> int:
    a = ctx.args
    since = parse_iso(a.since, "--since") if a.since else None
    until = parse_iso(a.until, "--until") if a.until else None
    page = ctx.store.audit_trail(actor=a.actor, action=a.action, since=since, until=until,
                                 before_id=a.before, limit=a.limit)
    if ctx.json:
        print_json(page)
        return EXIT_OK
    if not page["items"]:
        print("no operator actions match")
        return EXIT_OK
    print_table(["id", "when", "who", "via", "action", "task", "agent", "what"],
                [[e["id"], fmt_ts(e["ts"]), e["actor"], e["via"], e["action"], e["task_id"], e["agent"],
                  short(e["detail"], 60) if e["detail"] is not None else ""] for e in page["items"]])
    if page["next_before_id"] is not None:
        print(f"more: --before {page['next_before_id']}")
    return EXIT_OK


def _refuse_if_live(ctx: Ctx, agent: str) -> None:
    row = ctx.store.get_agent(agent)
    if row is None or row["status"] not in _LIVE:
        return
    limit = float(ctx.cfg["supervisor"]["heartbeat_timeout_s"])
    if time.time() - (row["last_heartbeat"] or 0) <= limit:
        raise CliError(f"{agent} is running ({row['status']}); it could write more while it is erased. "
                       f"Stop it first (`lead_client.py stop {row['role']}`), then erase")


def cmd_gdpr_erase(ctx: Ctx) -> int:
    from fleet import gdpr

    a = ctx.args
    if not a.confirm:
        plan = gdpr.plan_erase(ctx.cfg, ctx.store, a.agent)
        if ctx.json:
            print_json({**plan, "confirmed": False})
            return EXIT_OK
        e, p = plan["would_erase"], plan["would_pseudonymise"]
        print(f"would erase for {a.agent} (nothing changed; add --confirm to do it):")
        print_kv([("messages it sent", e["messages"]), ("notes it wrote", e["notes"]),
                  ("events it is the actor of", e["events"]), ("knowledge files it wrote", e["knowledge_files"])])
        print("would keep, with the agent replaced by a hash:")
        print_kv([("usage rows (cost and tokens stay)", p["usage_rows"]),
                  ("others' events naming it", p["events_naming"])])
        for f in plan["files"]:
            print(f"  knowledge/{f}")
        return EXIT_OK
    _refuse_if_live(ctx, a.agent)
    out = gdpr.erase_agent(ctx.cfg, ctx.store, a.agent, by=SENDER)
    if ctx.json:
        print_json({**out, "confirmed": True})
        return EXIT_OK
    print(f"erased {a.agent}; it is {out['pseudonym']} in the usage rows and the audit record "
          f"(event {out['audit_event_id']}):")
    print_kv(list(out["counts"].items()))
    return EXIT_OK


def register(sub, json_parent) -> None:
    p = sub.add_parser("report-issue", parents=[json_parent],
                       help="write a redacted debug report to reports/debug/ (versions, config, status, alerts, "
                            "hw, logs, failed tasks, preflight)")
    p.add_argument("--description", help="what went wrong")
    p.add_argument("--steps", help="how to reproduce it")
    p.add_argument("--no-logs", action="store_true", help="leave the log tails out")
    p.set_defaults(func=cmd_report_issue)

    p = sub.add_parser("resolutions", parents=[json_parent],
                       help="debug reports and their resolution: list, resolve ID --note TEXT")
    rs = p.add_subparsers(dest="resolutions_command", metavar="list|resolve")
    p.set_defaults(func=cmd_resolutions, resolutions_command="list", status=None, limit=50)
    q = rs.add_parser("list", parents=[json_parent], help="debug reports, newest first")
    q.add_argument("--status", choices=("open", "resolved"))
    q.add_argument("--limit", type=positive_int, default=50)
    q.set_defaults(func=cmd_resolutions, _parser=q)
    q = rs.add_parser("resolve", parents=[json_parent], help="mark a report resolved, with what was done")
    q.add_argument("id", type=positive_int)
    q.add_argument("--note", required=True, help="what was found and done")
    q.add_argument("--fix-commit", help="the commit that fixed it")
    q.add_argument("--regression-test", help="the test that guards against it")
    q.set_defaults(func=cmd_resolutions, _parser=q)

    p = sub.add_parser("audit", parents=[json_parent],
                       help="operator actions (cancel, retry, pause, approvals, secrets by name, erase, ...): "
                            "who, when, what")
    p.add_argument("--actor", help="who: operator (the CLI), dashboard (any sign-in), launcher, or an exact actor")
    p.add_argument("--action", help="one action, e.g. cancel_requested, retry, flag, secret_set, gdpr_erase")
    p.add_argument("--since", metavar="ISO", help="from this UTC date/time")
    p.add_argument("--until", metavar="ISO", help="before this UTC date/time")
    p.add_argument("--limit", type=positive_int, default=50, help="page size (at most 1000)")
    p.add_argument("--before", type=positive_int, metavar="ID", help="the next page: actions older than this id")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("gdpr-erase", parents=[json_parent],
                       help="show (or with --confirm erase) an agent's messages, notes, events and knowledge files")
    p.add_argument("agent")
    p.add_argument("--confirm", action="store_true", help="erase; without it nothing changes")
    p.set_defaults(func=cmd_gdpr_erase)

