"""Log and alert commands: `logs AGENT [--tail N] [-f]` reads the agent's own
log file under the logs directory; `alerts [--ack ID]` lists or acknowledges.
"""

from __future__ import annotations

import os
import sys
import time

from fleet.logs import tail_lines

from .common import (
    EXIT_OK,
    SENDER,
    CliError,
    Ctx,
    UsageError,
    fmt_ts,
    positive_int,
    print_json,
    print_table,
)


def available_logs(log_dir: str) -> list[str]:
    """The names of the processes with a log file in `log_dir` (supervisor, coder_1, ...)."""
    if not os.path.isdir(log_dir):
        return []
    return sorted(f[:-4] for f in os.listdir(log_dir) if f.endswith(".log"))


def _known_agents(ctx: Ctx) -> set[str]:
    """Every name a log can belong to: the configured workers, the managed
    services, the supervisor, and every agent the store has registered."""
    from fleet.children import managed_services
    from fleet.config import worker_names

    names = {n for n, _ in worker_names(ctx.cfg)} | {"supervisor"}
    names |= {n for n, _m, off in managed_services(ctx.cfg) if not off}
    names |= {a["name"] for a in ctx.store.list_agents()}
    return names


def cmd_logs(ctx: Ctx) -> int:
    from fleet.logs import log_path

    a = ctx.args
    if os.sep in a.agent or (os.altsep and os.altsep in a.agent) or a.agent.startswith("."):
        raise UsageError(f"{a.agent!r} is not an agent name")
    path = log_path(ctx.cfg, a.agent)
    if not os.path.isfile(path):
        have = available_logs(ctx.cfg["paths"]["logs"])
        known = _known_agents(ctx)
        if a.agent not in known:  # as pause / restart / start: an unknown name is a usage error
            raise UsageError(f"unknown agent {a.agent!r}; agents: {', '.join(sorted(known))}; "
                             f"logs: {', '.join(have) or '(none yet)'}")
        raise CliError(f"no log for {a.agent!r} at {path} yet (it has not run); "
                       f"logs there: {', '.join(have) or '(none yet)'}")
    if not a.follow:
        lines = tail_lines(path, a.tail)
        if ctx.json:
            print_json({"agent": a.agent, "path": path, "lines": lines})
        else:
            for line in lines:
                _emit(ctx, a.agent, line)
        return EXIT_OK
    # Open before reading the tail, so nothing appended in between is lost.
    fh = open(path, "rb")  # noqa: SIM115 - reopened on rotation inside _follow
    fh.seek(0, os.SEEK_END)
    for line in tail_lines(path, a.tail, end=fh.tell()):
        _emit(ctx, a.agent, line)
    try:
        _follow(ctx, fh, path, a.agent)
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def _emit(ctx: Ctx, agent: str, line: str) -> None:
    if ctx.json:
        import json

        print(json.dumps({"agent": agent, "line": line}, ensure_ascii=False), flush=True)
    else:
        print(line, flush=True)


def _follow(ctx: Ctx, fh, path: str, agent: str) -> None:
    """Print lines appended after fh's position; reopens the file after rotation."""
    ino = os.fstat(fh.fileno()).st_ino
    pending = b""
    try:
        while True:
            chunk = fh.read()
            if chunk:
                pending += chunk
                *done, pending = pending.split(b"\n")
                for raw in done:
                    _emit(ctx, agent, raw.decode("utf-8", errors="replace"))
                continue
            try:
                st = os.stat(path)
                if st.st_ino != ino or st.st_size < fh.tell():
                    fh.close()
                    fh = open(path, "rb")  # noqa: SIM115 - closed in finally
                    ino = os.fstat(fh.fileno()).st_ino
                    continue
            except FileNotFoundError:
                pass
            sys.stdout.flush()
            time.sleep(0.25)
    finally:
        fh.close()


def cmd_alerts(ctx: Ctx) -> int:
    a = ctx.args
    store = ctx.store
    if a.ack is not None:
        alert = store.ack_alert(a.ack, by=SENDER)
        if ctx.json:
            print_json({"alert": alert})
        else:
            print(f"alert {alert['id']} acknowledged")
        return EXIT_OK
    rows = store.list_alerts(active_only=not a.all, limit=a.limit)
    if ctx.json:
        print_json({"alerts": rows, "active_only": not a.all})
        return EXIT_OK
    if not rows:
        print("no active alerts" if not a.all else "no alerts")
        return EXIT_OK
    print_table(["id", "severity", "component", "message", "times", "last", "acked"],
                [[r["id"], r["severity"], r["component"], r["message"], r["occurrences"], fmt_ts(r["updated_at"]),
                  f"by {r['acked_by']}" if r.get("acked_at") else ""] for r in rows])
    return EXIT_OK


def register(sub, json_parent) -> None:
    p = sub.add_parser("logs", parents=[json_parent], help="the end of an agent's log (supervisor, coder_1, ...)")
    p.add_argument("agent")
    p.add_argument("--tail", type=positive_int, default=30, metavar="N", help="lines to show (default 30)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until Ctrl-C")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("alerts", parents=[json_parent], help="active alerts; --ack ID acknowledges one")
    p.add_argument("--ack", type=positive_int, metavar="ID")
    p.add_argument("--all", action="store_true", help="include acknowledged alerts")
    p.add_argument("--limit", type=positive_int, default=100)
    p.set_defaults(func=cmd_alerts)
