"""Fleet control commands: status, start, stop, restart, pause, resume, drain,
detect-cli and hw. Control goes through the store (flags and messages to the
supervisor or a worker), never through the dashboard.
"""

from __future__ import annotations

import sys
import time

from .common import (
    EXIT_DEGRADED,
    EXIT_FAILED,
    EXIT_NO_SUPERVISOR,
    EXIT_OK,
    EXIT_WAIT_TIMEOUT,
    SENDER,
    CliError,
    Ctx,
    UsageError,
    fmt_age,
    positive_float,
    print_json,
    print_kv,
    print_table,
    short,
)

RUNNING_STATUSES = ("starting", "idle", "busy", "paused")
BAD_ROLE_STATUSES = ("flapping", "parked")


# -- status ---------------------------------------------------------------
def collect_status(ctx: Ctx) -> dict:
    """The `status --json` document (shape documented in docs/cli.md)."""
    from fleet.config import worker_names

    cfg, store = ctx.cfg, ctx.store
    ts = time.time()
    pid = ctx.supervisor_pid()
    hb_limit = float(cfg["supervisor"]["heartbeat_timeout_s"])
    agents = []
    for a in store.list_agents():
        age = max(0.0, ts - a["last_heartbeat"]) if a.get("last_heartbeat") else None
        stale = a["status"] in RUNNING_STATUSES and age is not None and age > hb_limit
        agents.append({
            "name": a["name"], "role": a["role"], "status": a["status"], "pid": a["pid"],
            "host": a["host"], "heartbeat_age_s": None if age is None else round(age, 3),
            "stale": stale, "current_task": a["current_task"], "progress": a["progress"],
            "started_at": a["started_at"], "detail": a["detail"],
        })
    expected: dict[str, int] = {}
    for _name, role in worker_names(cfg):
        expected[role] = expected.get(role, 0) + 1
    roles = []
    for role, want in expected.items():
        mine = [a for a in agents if a["role"] == role]
        statuses: dict[str, int] = {}
        for a in mine:
            statuses[a["status"]] = statuses.get(a["status"], 0) + 1
        running = sum(1 for a in mine if a["status"] in RUNNING_STATUSES and not a["stale"])
        bad = [s for s in BAD_ROLE_STATUSES if statuses.get(s)]
        if bad:
            state = bad[0]
        elif running >= want:
            state = "running"
        elif running == 0:
            state = "stopped" if mine else "missing"
        else:
            state = "degraded"
        roles.append({"role": role, "expected": want, "running": running, "statuses": statuses, "state": state})
    degraded = [r["role"] for r in roles if r["state"] != "running"]
    counts = store.counts()
    writes = store_writes(store, pid, agents, hb_limit, ts)
    if pid is None:
        state, code = "no_supervisor", EXIT_NO_SUPERVISOR
    elif degraded or writes["status"] != "healthy":
        state, code = "degraded", EXIT_DEGRADED
    else:
        state, code = "ok", EXIT_OK
    return {
        "fleet": cfg["fleet"]["name"],
        "home": cfg["home"],
        "generated_at": ts,
        "state": state,
        "exit_code": code,
        "supervisor": {"running": pid is not None, "pid": pid},
        "store": writes,
        "paused": bool(store.get_flag("paused", False)),
        "roles": roles,
        "degraded_roles": degraded,
        "agents": agents,
        "hosts": hosts_of(agents, cfg["fleet"]["host"]),
        "tasks": {**counts, "total": sum(counts.values())},
        "oldest_pending_age_s": _age(store.oldest_pending_created_at(), ts),
        "active_alerts": len(store.list_alerts(active_only=True, limit=1000)),
    }


def hosts_of(agents: list[dict], this_host: str) -> list[dict]:
    """Each host the agents run on (several share a PostgreSQL store):
    {"host", "this_host", "agents", "running", "last_seen_age_s", "state"}; a
    host whose agents all stopped heartbeating while running is "lost" (a
    dead or cut-off machine: its tasks come back by lease expiry)."""
    by_host: dict[str, list[dict]] = {}
    for a in agents:
        by_host.setdefault(a["host"] or this_host, []).append(a)
    out = []
    for host, mine in sorted(by_host.items()):
        running = [a for a in mine if a["status"] in RUNNING_STATUSES and not a["stale"]]
        stale = [a for a in mine if a["stale"]]
        ages = [a["heartbeat_age_s"] for a in mine if a["heartbeat_age_s"] is not None]
        state = "up" if running else "lost" if stale else "stopped"
        out.append({"host": host, "this_host": host == this_host, "agents": len(mine), "running": len(running),
                    "last_seen_age_s": min(ages) if ages else None, "state": state})
    return out


def store_writes(store, pid: int | None, agents: list[dict], hb_limit: float, ts: float) -> dict:
    """Whether the store takes writes, found without writing (a read-only
    command must not take the write lock): the store's own look at its disk
    and files (full, read-only, permissions), then the running supervisor's
    heartbeat: a supervisor alive whose heartbeat row has not been written
    for longer than the heartbeat timeout is not getting its writes through,
    whatever the cause (a lock held for minutes, an I/O error)."""
    health = store.write_health()
    sup = next((a for a in agents if a["name"] == "supervisor"), None)
    if health["status"] == "healthy" and pid is not None and sup is not None and sup["pid"] == pid:
        age = sup["heartbeat_age_s"]
        if age is not None and age > hb_limit:
            health = {**health, "status": "degraded",
                      "writes": f"the supervisor (pid {pid}) is running but has written no heartbeat for "
                                f"{age:.0f} s (limit {hb_limit:g} s): its writes are not getting through; "
                                "see logs/supervisor.log"}
    return health


def _age(created_at: float | None, ts: float) -> float | None:
    return None if created_at is None else round(max(0.0, ts - created_at), 3)


def cmd_status(ctx: Ctx) -> int:
    doc = collect_status(ctx)
    if ctx.json:
        print_json(doc)
        return doc["exit_code"]
    sup = doc["supervisor"]
    print(f"fleet {doc['fleet']} ({doc['home']}): {doc['state'].upper().replace('_', ' ')}"
          + ("  [PAUSED]" if doc["paused"] else ""))
    print(f"supervisor: {'running, pid ' + str(sup['pid']) if sup['running'] else 'NOT RUNNING'}")
    if doc["store"]["status"] != "healthy":
        print(f"store: DEGRADED, writes fail: {doc['store']['writes']}")
    several = len(doc["hosts"]) > 1
    if several or any(h["state"] == "lost" for h in doc["hosts"]):
        print("hosts: " + ", ".join(
            f"{h['host']}{' (this host)' if h['this_host'] else ''} "
            f"{h['state'].upper() if h['state'] == 'lost' else h['state']} {h['running']}/{h['agents']} agents"
            + (f", seen {fmt_age(h['last_seen_age_s'])} ago" if h["last_seen_age_s"] is not None else "")
            for h in doc["hosts"]))
    if doc["agents"]:
        print_table(
            ["agent", "role", "status", "heartbeat", "task", "pid", *(["host"] if several else [])],
            [[a["name"], a["role"], f"lost (was {a['status']})" if a["stale"] else a["status"],
              fmt_age(a["heartbeat_age_s"]) + " ago" if a["heartbeat_age_s"] is not None else "",
              a["current_task"], a["pid"], *([a["host"]] if several else [])] for a in doc["agents"]],
        )
    else:
        print("agents: none registered")
    if doc["degraded_roles"]:
        print("roles not running: " + ", ".join(
            f"{r['role']} ({r['state']}, {r['running']}/{r['expected']})" for r in doc["roles"] if r["state"] != "running"))
    t = doc["tasks"]
    print("tasks: " + "  ".join(f"{k.lower()} {v}" for k, v in t.items()))
    if doc["oldest_pending_age_s"] is not None:
        print(f"oldest pending: {fmt_age(doc['oldest_pending_age_s'])}")
    if doc["active_alerts"]:
        print(f"active alerts: {doc['active_alerts']} (lead_client.py alerts)")
    return doc["exit_code"]


# -- supervisor requests --------------------------------------------------
def _known_roles(cfg: dict) -> list[str]:
    roles = {r for r in cfg["affinity"]} | {r for r, v in cfg["workers"].items()
                                            if isinstance(v, int) and not isinstance(v, bool) and r != "coder_count"}
    roles.add("coder")  # coders are named coder_1..N by [workers] coder_count
    return sorted(roles)


def _known_workers(ctx: Ctx) -> list[str]:
    from fleet.config import worker_names

    names = {n for n, _ in worker_names(ctx.cfg)}
    names |= {a["name"] for a in ctx.store.list_agents() if a["name"] != "supervisor"}
    return sorted(names)


def _check_role(ctx: Ctx, role: str | None) -> None:
    if role is not None and role not in _known_roles(ctx.cfg):
        raise UsageError(f"unknown role {role!r}; roles: {', '.join(_known_roles(ctx.cfg))}")


def request_supervisor(ctx: Ctx, body: dict, what: str, timeout: float | None = None) -> dict:
    """Send a control request to the running supervisor and wait (up to
    `timeout`, else --timeout, default 10 s) for it to take it. Returns
    {"request", "message_id", "supervisor_pid", "acknowledged", "timeout_s"}; raises
    CliError when no supervisor runs or it exits first. Prints nothing."""
    pid = ctx.require_supervisor(what)
    store = ctx.store
    mid = store.send_message(SENDER, "supervisor", body, channel="sup")
    timeout = float(timeout or getattr(ctx.args, "timeout", None) or 10.0)
    deadline = time.monotonic() + timeout
    acked = False
    while time.monotonic() < deadline:
        rows = store.messages(channel="sup", after_id=mid - 1, limit=1000)
        row = next((m for m in rows if m["id"] == mid), None)
        if row is not None and row.get("read_at"):
            acked = True
            break
        if ctx.supervisor_pid() is None:
            raise CliError(f"the supervisor (pid {pid}) exited before taking the request", EXIT_NO_SUPERVISOR)
        time.sleep(0.1)
    return {"request": body, "message_id": mid, "supervisor_pid": pid, "acknowledged": acked,
            "timeout_s": timeout}


def _ask_supervisor(ctx: Ctx, body: dict, what: str) -> int:
    result = request_supervisor(ctx, body, what)
    pid, acked, timeout = result["supervisor_pid"], result["acknowledged"], result.pop("timeout_s")
    if ctx.json:
        print_json(result)
    elif acked:
        print(f"{what}: the supervisor (pid {pid}) took the request")
    if not acked:
        raise CliError(f"{what}: the supervisor (pid {pid}) did not take the request within {timeout:.0f} s; "
                       "see logs/supervisor.log", EXIT_FAILED)
    return EXIT_OK


def cmd_start(ctx: Ctx) -> int:
    _check_role(ctx, ctx.args.role)
    return _ask_supervisor(ctx, {"type": "start", "role": ctx.args.role},
                           f"start {ctx.args.role or 'all roles'}")


def cmd_stop(ctx: Ctx) -> int:
    _check_role(ctx, ctx.args.role)
    return _ask_supervisor(ctx, {"type": "stop", "role": ctx.args.role},
                           f"stop {ctx.args.role or 'all roles'}")


def cmd_restart(ctx: Ctx) -> int:
    target = ctx.args.target
    if target not in _known_roles(ctx.cfg) and target not in _known_workers(ctx):
        raise UsageError(f"{target!r} is neither a role nor a worker; roles: {', '.join(_known_roles(ctx.cfg))}; "
                         f"workers: {', '.join(_known_workers(ctx)) or '(none)'}")
    return _ask_supervisor(ctx, {"type": "restart", "target": target}, f"restart {target}")


def set_paused(ctx: Ctx, kind: str, worker: str | None = None) -> tuple[dict, str]:
    """`pause` or `resume` the whole fleet (the store's flag) or one worker (a
    message to it). Returns (the --json document, the sentence for a person)."""
    store = ctx.store
    if worker is None:
        store.set_flag("paused", kind == "pause", by=SENDER)
        result = {"scope": "fleet", "paused": kind == "pause"}
        text = "fleet paused: workers stop claiming new tasks (running ones finish)" if kind == "pause" \
            else "fleet resumed: workers claim tasks again"
    else:
        if worker not in _known_workers(ctx):
            raise UsageError(f"unknown worker {worker!r}; workers: {', '.join(_known_workers(ctx)) or '(none)'}")
        mid = store.send_message(SENDER, worker, {"type": kind}, channel="agent")
        result = {"scope": "worker", "worker": worker, "message_id": mid, "request": kind}
        text = f"{kind} sent to {worker}"
    return result, text


def _pause_resume(ctx: Ctx, kind: str) -> int:
    result, text = set_paused(ctx, kind, ctx.args.worker)
    if ctx.json:
        print_json(result)
    else:
        print(text)
    return EXIT_OK


def cmd_pause(ctx: Ctx) -> int:
    return _pause_resume(ctx, "pause")


def cmd_resume(ctx: Ctx) -> int:
    return _pause_resume(ctx, "resume")


def drain_fleet(ctx: Ctx, timeout: float, on_tick=None) -> dict:
    """Pause the fleet, then wait up to `timeout` s until no task is RUNNING;
    `on_tick(running, elapsed)` is called while it waits. Returns
    {"drained", "running", "elapsed_s", "paused"}. Prints nothing."""
    store = ctx.store
    store.set_flag("paused", True, by=SENDER)
    start = time.monotonic()
    running = store.counts()["RUNNING"]
    while running and time.monotonic() - start < timeout:
        if on_tick is not None:
            on_tick(running, time.monotonic() - start)
        time.sleep(0.25)
        running = store.counts()["RUNNING"]
    elapsed = round(time.monotonic() - start, 3)
    return {"drained": running == 0, "running": running, "elapsed_s": elapsed, "paused": True}


def cmd_drain(ctx: Ctx) -> int:
    """Pause the fleet, then wait until no task is RUNNING."""
    timeout = ctx.args.timeout
    tty = sys.stderr.isatty() and not ctx.json

    def tick(running: int, elapsed: float) -> None:
        sys.stderr.write(f"\rdraining: {running} running  {elapsed:5.1f}s ")
        sys.stderr.flush()

    result = drain_fleet(ctx, timeout, tick if tty else None)
    if tty:
        sys.stderr.write("\n")
    running, elapsed = result["running"], result["elapsed_s"]
    if ctx.json:
        print_json(result)
    if running:
        raise CliError(f"drain: {running} task(s) still running after {timeout:g} s; the fleet stays paused "
                       "(`resume` to undo)", EXIT_WAIT_TIMEOUT)
    if not ctx.json:
        print(f"drained in {elapsed:.1f} s: nothing is running and the fleet is paused (`resume` to continue)")
    return EXIT_OK


# -- detect-cli / hw ------------------------------------------------------
def detect_platform() -> dict:
    import os
    import platform
    import shutil
    import subprocess  # nosec B404

    tools = {t: shutil.which(t) for t in
             ("git", "ollama", "nvidia-smi", "systemctl", "systemd-analyze", "loginctl", "launchctl",
              "schtasks", "wsl", "uv", "bash", "pwsh")}
    gpus: list[str] = []
    if tools["nvidia-smi"]:
        try:
            out = subprocess.run([tools["nvidia-smi"], "-L"], capture_output=True, text=True,  # nosec B603
                                 timeout=10, check=False)
            gpus = [ln.strip() for ln in out.stdout.splitlines() if ln.strip().startswith("GPU")]
        except (OSError, subprocess.SubprocessError):
            pass
    system = platform.system()
    apple_gpu = system == "Darwin" and platform.machine() == "arm64"
    wsl = "microsoft" in platform.release().lower()
    manager = {"Linux": "systemd" if tools["systemctl"] else None, "Darwin": "launchd",
               "Windows": "task-scheduler"}.get(system)
    return {
        "platform": system, "release": platform.release(), "machine": platform.machine(), "wsl": wsl,
        "python": sys.version.split()[0], "python_executable": sys.executable,
        "shell": os.environ.get("SHELL") or os.environ.get("COMSPEC"),
        "tools": tools,
        "gpu": {"nvidia": gpus, "apple_silicon": apple_gpu, "present": bool(gpus) or apple_gpu},
        "service_manager": manager,
    }


def cmd_detect_cli(ctx: Ctx) -> int:
    info = detect_platform()
    if ctx.json:
        print_json(info)
        return EXIT_OK
    print_kv([
        ("platform", f"{info['platform']} {info['release']} ({info['machine']})" + (" under WSL" if info["wsl"] else "")),
        ("python", f"{info['python']} ({info['python_executable']})"),
        ("shell", info["shell"] or "unknown"),
        ("service manager", info["service_manager"] or "none found"),
        ("gpu", ", ".join(info["gpu"]["nvidia"]) or ("Apple silicon" if info["gpu"]["apple_silicon"] else "none")),
    ] + [(tool, path or "-") for tool, path in info["tools"].items()])
    return EXIT_OK


def cmd_hw(ctx: Ctx) -> int:
    from fleet.hw_state import read_hw_state

    watch = ctx.args.watch
    try:
        while True:
            state = read_hw_state(ctx.cfg)
            if ctx.json:
                import json

                print(json.dumps(state, default=str) if watch else json.dumps(state, indent=2, default=str), flush=True)
            else:
                _print_hw(state)
            if not watch:
                return EXIT_OK
            time.sleep(watch)
            if not ctx.json:
                print()
    except KeyboardInterrupt:
        return EXIT_OK


def _print_hw(state: dict) -> None:
    tier = state.get("tier") or {}
    rows = [("tier", f"{tier.get('name')} (model {tier.get('model')})"),
            ("reason", tier.get("reason")),
            ("stale", "yes: no fresh hw_state.json, CPU tier assumed" if state.get("stale") else "no")]
    for key, value in state.items():
        if key not in ("tier", "stale"):
            rows.append((key, short(value, 100)))
    print_kv(rows)


def register(sub, json_parent) -> None:
    p = sub.add_parser("status", parents=[json_parent],
                       help="agents, roles and task counts (exit 3 degraded, 69 no supervisor)")
    p.set_defaults(func=cmd_status)
    for name, fn, text in (("start", cmd_start, "start a role (or every role) through the supervisor"),
                           ("stop", cmd_stop, "stop a role (or every role's workers) through the supervisor")):
        p = sub.add_parser(name, parents=[json_parent], help=text)
        p.add_argument("role", nargs="?", help="role name; all roles when left out")
        p.add_argument("--timeout", type=positive_float, default=10.0, help="seconds to wait for the supervisor to take it")
        p.set_defaults(func=fn)
    p = sub.add_parser("restart", parents=[json_parent], help="restart a role's workers or one worker")
    p.add_argument("target", metavar="ROLE|WORKER")
    p.add_argument("--timeout", type=positive_float, default=10.0, help="seconds to wait for the supervisor to take it")
    p.set_defaults(func=cmd_restart)
    for name, fn, text in (("pause", cmd_pause, "stop claiming new tasks (fleet-wide, or one worker)"),
                           ("resume", cmd_resume, "claim tasks again (fleet-wide, or one worker)")):
        p = sub.add_parser(name, parents=[json_parent], help=text)
        p.add_argument("worker", nargs="?", help="one worker; the whole fleet when left out")
        p.set_defaults(func=fn)
    p = sub.add_parser("drain", parents=[json_parent], help="pause and wait until no task runs (exit 99 on timeout)")
    p.add_argument("--timeout", type=positive_float, default=300.0, help="seconds to wait (default 300)")
    p.set_defaults(func=cmd_drain)
    p = sub.add_parser("detect-cli", parents=[json_parent], help="platform, Python, shell, tools and GPU presence")
    p.set_defaults(func=cmd_detect_cli)
    p = sub.add_parser("hw", parents=[json_parent], help="hardware state (model tier, GPU)")
    p.add_argument("--watch", type=positive_float, metavar="S", help="repeat every S seconds until Ctrl-C")
    p.set_defaults(func=cmd_hw)
