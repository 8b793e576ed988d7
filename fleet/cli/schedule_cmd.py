"""Schedule commands: `schedule list` (next and last run, with the last run's
outcome), `schedule run NAME` (enqueue one run now), `schedule pause NAME` and
`schedule resume NAME` (state kept in the store, so every supervisor obeys).
"""

from __future__ import annotations

from .common import EXIT_OK, SENDER, Ctx, UsageError, fmt_ts, print_json, print_table


def _schedules(ctx: Ctx) -> dict:
    from fleet.schedule import parse_schedules

    return parse_schedules(ctx.cfg)  # (load_config has checked them: a bad entry exited 78)


def _named(ctx: Ctx):
    schedules = _schedules(ctx)
    name = ctx.args.name
    if name not in schedules:
        raise UsageError(f"no schedule named {name!r} in {ctx.cfg['config_file']} "
                         f"(schedules: {', '.join(schedules) or '(none: add a [schedule.NAME] table)'})")
    return schedules[name]


def _last(row: dict) -> str:
    last = row["last_run"]
    if last is None:
        return "(never)"
    how = "by hand" if last["manual"] else ""
    return f"{fmt_ts(last['at'])} task {last['task_id']} {last['status']} {how}".strip()


def cmd_schedule(ctx: Ctx) -> int:
    from fleet import schedule

    a = ctx.args
    if a.schedule_command == "list":
        rows = schedule.schedule_rows(ctx.store, _schedules(ctx))
        if ctx.json:
            print_json({"schedules": rows, "host_zone": schedule.host_zone_name()})
        elif not rows:
            print("no schedules: add [schedule.NAME] tables to fleet.toml (see docs/cli.md, schedule)")
        else:
            print_table(["name", "skill", "when", "state", "next", "last run", "last error"],
                        [[r["name"], r["skill"], r["when"],
                          "paused" if r["paused"] else ("disabled" if not r["enabled"] else "active"),
                          fmt_ts(r["next_run"]) if r["next_run"] else "-", _last(r),
                          (r["last_run"] or {}).get("error") or ""] for r in rows])
        return EXIT_OK
    sched = _named(ctx)
    if a.schedule_command == "run":
        task = schedule.run_now(ctx.store, sched, by=SENDER)
        if ctx.json:
            print_json({"schedule": sched.name, "task": task.to_dict()})
        else:
            print(f"schedule {sched.name}: task {task.id} ({sched.skill}) enqueued")
        return EXIT_OK
    paused = a.schedule_command == "pause"
    schedule.set_paused(ctx.store, sched.name, paused, by=SENDER)
    if ctx.json:
        print_json({"schedule": sched.name, "paused": paused})
    else:
        print(f"schedule {sched.name} {'paused: its slots pass without a run' if paused else 'resumed'}")
    return EXIT_OK


def register(sub, json_parent) -> None:
    p = sub.add_parser("schedule", parents=[json_parent],
                       help="scheduled runs: list | run NAME | pause NAME | resume NAME")
    ssub = p.add_subparsers(dest="schedule_command", required=True, metavar="{list,run,pause,resume}")
    ssub.add_parser("list", parents=[json_parent], help="every schedule with its next and last run")
    for verb, text in (("run", "enqueue one run now (even when paused)"),
                       ("pause", "stop enqueuing its slots (every supervisor obeys)"),
                       ("resume", "enqueue its slots again (missed ones are not caught up)")):
        q = ssub.add_parser(verb, parents=[json_parent], help=text)
        q.add_argument("name")
    p.set_defaults(func=cmd_schedule)
