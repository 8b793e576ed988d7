"""Operations commands: install-service / uninstall-service, backup [--list],
restore ID, preflight [--warn-only] and report [--json] [--output FILE].
"""

from __future__ import annotations

import sys

from .common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    CliError,
    Ctx,
    UsageError,
    fmt_ts,
    positive_int,
    print_json,
    print_table,
)


def cmd_install_service(ctx: Ctx) -> int:
    from fleet import service_install as si

    a = ctx.args
    try:
        if a.dry_run:
            p = si.plan(ctx.cfg, a.platform)
            if ctx.json:
                print_json({"platform": p.platform, "name": p.name, "path": str(p.path), "content": p.text(),
                            "commands": p.commands})
            else:
                print(f"# {p.platform}: would write {p.path}", file=sys.stderr)
                sys.stdout.write(p.text())
                for cmd in p.commands:
                    print(f"# then run: {' '.join(cmd)}", file=sys.stderr)
            return EXIT_OK
        if a.platform and a.platform != si.current_platform():
            raise UsageError(f"--platform {a.platform} works only with --dry-run on this {si.current_platform()} machine")
        result = si.install(ctx.cfg, supervisor_running=ctx.supervisor_pid())
    except si.ServiceError as exc:
        raise CliError(str(exc)) from None
    if ctx.json:
        print_json(result)
    else:
        print(f"{result['platform']} service {result['name']}: {result['path']} "
              f"{'written' if result['changed'] else 'unchanged'}{', started' if result['started'] else ''}")
        for note in result["notes"]:
            print(f"note: {note}")
    return EXIT_OK


def cmd_uninstall_service(ctx: Ctx) -> int:
    from fleet import service_install as si

    try:
        result = si.uninstall(ctx.cfg)
    except si.ServiceError as exc:
        raise CliError(str(exc)) from None
    if ctx.json:
        print_json(result)
    elif result["removed"] and result["not_stopped"]:
        print(f"{result['platform']} service {result['name']}: removed ({result['path']})")
    else:
        print(f"{result['platform']} service {result['name']}: "
              + (f"stopped and removed ({result['path']})" if result["removed"] else "not installed; nothing changed"))
    if result["not_stopped"]:
        raise CliError(f"{result['path']} is removed, but {result['not_stopped']}")
    return EXIT_OK


def cmd_backup(ctx: Ctx) -> int:
    from fleet import backup

    a = ctx.args
    if a.list:
        items = backup.list_backups(ctx.cfg)
        if ctx.json:
            print_json({"backups": items})
        elif not items:
            print(f"no backups in {ctx.cfg['paths']['backups']}")
        else:
            print_table(["id", "created", "integrity", "tasks", "db KiB", "knowledge files"],
                        [[b["id"], fmt_ts(b.get("created_at")), b.get("integrity"),
                          sum((b.get("tasks") or {}).values()), (b.get("db_bytes") or 0) // 1024,
                          b.get("knowledge_files")] for b in items])
        return EXIT_OK
    try:
        info = backup.create_backup(ctx.cfg, keep=a.keep)
    except backup.BackupError as exc:
        raise CliError(str(exc)) from None
    if ctx.json:
        print_json(info)
    else:
        print(f"backup {info['id']} written to {info['path']} (integrity {info['integrity']}, "
              f"{sum((info['tasks'] or {}).values())} tasks, {info['knowledge_files']} knowledge files)")
        if info["pruned"]:
            print(f"pruned {len(info['pruned'])} old backup(s): {', '.join(info['pruned'])}")
    return EXIT_OK


def cmd_restore(ctx: Ctx) -> int:
    from fleet import backup

    try:
        info = backup.restore_backup(ctx.cfg, ctx.args.id)
    except backup.BackupError as exc:
        raise CliError(str(exc), EXIT_FAILED) from None
    if ctx.json:
        print_json(info)
    else:
        print(f"restored backup {info['id']} into {info['db']} (integrity {info['integrity']}, "
              f"{sum(info['tasks'].values())} tasks)")
        print(f"the replaced files are kept in {info['replaced_saved_in']}")
        if info["config_in_backup"] and not info["config_restored"]:
            print(f"fleet.toml was left as it is; the backup's copy is {info['config_in_backup']}")
    return EXIT_OK


def cmd_store_migrate(ctx: Ctx) -> int:
    """Copy this stopped SQLite fleet into an empty PostgreSQL schema and say
    what to put in fleet.toml."""
    from fleet.store import InvalidInput, StoreError
    from fleet.store.pg_migrate import migrate_sqlite_to_postgres

    cfg = ctx.cfg
    if cfg["store"]["backend"] != "sqlite":
        raise CliError("this fleet already uses PostgreSQL ([store] backend); `store migrate` moves a SQLite "
                       "fleet", EXIT_USAGE)
    pid = ctx.supervisor_pid()
    if pid is not None:
        raise CliError(f"the supervisor (PID {pid}) is running: stop the fleet first (`lead_client.py stop`), "
                       "so nothing changes while it is copied", EXIT_FAILED)
    try:
        info = migrate_sqlite_to_postgres(cfg["paths"]["db"], ctx.args.to, schema=ctx.args.schema)
    except InvalidInput as exc:
        raise CliError(str(exc), EXIT_FAILED) from None
    except StoreError as exc:
        raise CliError(str(exc), EXIT_UNAVAILABLE) from None
    from fleet.store.pg_conn import without_password

    bare, password = without_password(ctx.args.to)
    info["fleet_toml"] = {"backend": "postgresql", "dsn": bare}
    if ctx.args.schema != "fleet":
        info["fleet_toml"]["schema"] = ctx.args.schema
    if ctx.json:
        print_json(info)
        return EXIT_OK
    total = sum(info["tables"].values())
    print(f"copied {total} rows from {len(info['tables'])} tables of {cfg['paths']['db']} into schema "
          f"{info['schema']} on {info['server']}; every table's count matches")
    print("tasks: " + ", ".join(f"{k} {v}" for k, v in sorted(info["tasks"].items())))
    print("\nput this in fleet.toml, then start the fleet:\n\n[store]\nbackend = \"postgresql\"")
    print(f'dsn = "{bare}"')
    if ctx.args.schema != "fleet":
        print(f'schema = "{ctx.args.schema}"')
    if password is not None:
        print("\n(the password is not written there: put it in ~/.pgpass, or store the whole DSN with "
              "`lead_client.py secret set FLEET_STORE_DSN '...'`)")
    print(f"\nthe SQLite file {cfg['paths']['db']} was only read; keep it until you trust the new store")
    return EXIT_OK


def cmd_preflight(ctx: Ctx) -> int:
    from fleet.preflight import run_preflight

    result = run_preflight(getattr(ctx.args, "home", None), warn_only=ctx.args.warn_only)
    if ctx.json:
        print_json(result)
    else:
        marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL", "not_running": "----"}
        for c in result["checks"]:
            print(f"[{marks[c['level']]}] {c['name']}: {c['detail']}")
        print(f"preflight: {'passed' if result['ok'] else 'FAILED'} "
              f"({result['failed']} failed, {result['warnings']} warning(s))")
    return EXIT_OK if result["ok"] else EXIT_FAILED


def cmd_report(ctx: Ctx) -> int:
    from fleet import report

    a = ctx.args
    rep = report.build_report(ctx.cfg, ctx.store, days=a.days)
    if a.output:
        text = report.render_markdown(rep)
        try:
            with open(a.output, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            raise CliError(f"cannot write {a.output}: {exc.strerror}") from None
        if not ctx.json:
            print(f"report written to {a.output}")
    if ctx.json:
        print_json(rep)
    elif not a.output:
        sys.stdout.write(report.render_text(rep))
    return EXIT_OK


def report_days(text: str) -> int:
    """The report builds one row per day: ten years is the most it takes."""
    import argparse

    days = positive_int(text)
    if days > 3650:
        raise argparse.ArgumentTypeError(f"the report covers at most 3650 days (ten years), got {text!r}")
    return days


def register(sub, json_parent) -> None:
    p = sub.add_parser("install-service", parents=[json_parent],
                       help="install the supervisor as a systemd user unit / launchd agent / scheduled task")
    p.add_argument("--dry-run", action="store_true", help="print the definition instead of installing it")
    p.add_argument("--platform", choices=("linux", "macos", "windows"),
                   help="with --dry-run: show another platform's definition")
    p.set_defaults(func=cmd_install_service)
    p = sub.add_parser("uninstall-service", parents=[json_parent], help="stop and remove the installed service")
    p.set_defaults(func=cmd_uninstall_service)
    p = sub.add_parser("backup", parents=[json_parent],
                       help="online backup of the database, knowledge/ and fleet.toml (or --list them)")
    p.add_argument("--list", action="store_true", help="list backups, newest first")
    p.add_argument("--keep", type=positive_int, help="keep this many backups (default: [backup] keep)")
    p.set_defaults(func=cmd_backup)
    p = sub.add_parser("restore", parents=[json_parent], help="restore a backup (the supervisor must be stopped)")
    p.add_argument("id", help="backup id from `backup --list`")
    p.set_defaults(func=cmd_restore)
    p = sub.add_parser("store", help="the store itself: `store migrate --to DSN` moves a SQLite fleet to PostgreSQL")
    store_sub = p.add_subparsers(dest="store_command", required=True)
    m = store_sub.add_parser("migrate", parents=[json_parent],
                             help="copy this stopped SQLite fleet into an empty PostgreSQL schema, check the counts")
    m.add_argument("--to", required=True, metavar="DSN", help="the PostgreSQL server, e.g. postgresql://fleet@db/fleet")
    m.add_argument("--schema", default="fleet", help="the PostgreSQL schema to fill (default fleet)")
    m.set_defaults(func=cmd_store_migrate)
    p = sub.add_parser("preflight", parents=[json_parent], help="check config, store, disk, logs, dashboard, providers")
    p.add_argument("--warn-only", action="store_true", help="model provider failures are warnings, not failures")
    p.set_defaults(func=cmd_preflight)
    p = sub.add_parser("report", parents=[json_parent],
                       help="phase report: uptime, days at >= 95%%, capacity utilisation, tasks per day, restarts")
    p.add_argument("--output", metavar="FILE", help="write the report as markdown to FILE")
    p.add_argument("--days", type=report_days, default=30, help="window in days (default 30, at most 3650)")
    p.set_defaults(func=cmd_report)

