"""Fleet control commands: status, start, stop, restart, pause, resume, drain,
detect-cli and hw. Control goes through the store (flags and messages to the
supervisor or a worker), never through the dashboard.
"""

from __future__ import annotations

import sys
import time

from fleet.config_drift import config_hash, stale_agents
from fleet.hosts import (
    LIVE_STATUSES,
    host_of,
    host_summary,
    is_local,
    is_supervisor,
    qualified,
    supervisor_for,
    supervisor_name,
)

from .common import (
    EXIT_DEGRADED,
    EXIT_FAILED,
    EXIT_NO_SUPERVISOR,
    EXIT_OK,
    EXIT_WAIT_TIMEOUT,
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
        stale = a["status"] in LIVE_STATUSES and age is not None and age > hb_limit
        agents.append({
            "name": a["name"], "role": a["role"], "status": a["status"], "pid": a["pid"],
            "host": a["host"], "heartbeat_age_s": None if age is None else round(age, 3),
            "stale": stale, "current_task": a["current_task"], "progress": a["progress"],
            "started_at": a["started_at"], "detail": a["detail"],
        })
    current = config_hash(cfg)
    starts = store.last_event_per_agent(["agent_start"])
    stale = stale_agents(agents, starts, current)
    for a in agents:
        a["config_hash"] = ((starts.get(a["name"]) or {}).get("detail") or {}).get("config_hash")
        a["stale_config"] = a["name"] in stale
    expected: dict[str, int] = {}
    for _name, role in worker_names(cfg):
        expected[role] = expected.get(role, 0) + 1
    roles = []
    for role, want in expected.items():
        mine = [a for a in agents if a["role"] == role and is_local(cfg, a)]
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
    writes = store_writes(store, pid, agents, hb_limit, ts, supervisor_name(cfg))
    services = services_of(cfg, agents) if pid is not None else []
    paused_flag = bool(store.get_flag("paused", False))
    paused = [a["name"] for a in agents if a["status"] == "paused" and not a["stale"]]
    problems = [f"role {r['role']} {r['state']} ({r['running']}/{r['expected']})"
                for r in roles if r["state"] != "running"]
    problems += [f"service {s['name']} {s['state']}: {s['detail']}" for s in services if s["state"] != "running"]
    if paused_flag:
        problems.append("the fleet is paused (`lead_client.py resume`)")
    elif paused:
        problems.append(f"paused: {', '.join(paused)} (`lead_client.py resume`)")
    if writes["status"] != "healthy":
        problems.append(f"the store's writes fail: {writes['writes']}")
    from fleet.model_health import model_health

    models = model_health(cfg, store)  # the rule /api/health applies too: degraded, never down
    if models["status"] != "healthy":
        problems.append(f"models: {models['problem']}; {models['queued_needing_model']} queued task(s) need one")
    if pid is None:
        state, code = "no_supervisor", EXIT_NO_SUPERVISOR
    elif problems:
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
        "paused": paused_flag,
        "paused_workers": paused,
        "problems": problems,
        "roles": roles,
        "services": services,
        "models": models,
        "degraded_roles": degraded,
        "agents": agents,
        "hosts": host_summary(agents, cfg["fleet"]["host"], hb_limit),
        "config_hash": current,
        "stale_config": sorted(stale),
        "tasks": {**counts, "total": sum(counts.values())},
        "oldest_pending_age_s": _age(store.oldest_pending_created_at(), ts),
        "active_alerts": len(store.list_alerts(active_only=True, limit=1000)),
    }


def services_of(cfg: dict, agents: list[dict]) -> list[dict]:
    """Each service the supervisor manages ([supervisor] services, the
    dashboard unless it is off): {"name", "state" running | down, "status"
    (its agent row's), "pid", "detail"}. Running means its row says running
    and, on this host, its process is alive."""
    from fleet.children import managed_services
    from fleet.procs import still_running

    this_host = cfg["fleet"]["host"]
    rows = {a["name"]: a for a in agents}
    out = []
    for base, _module, off in managed_services(cfg):
        if off:
            continue
        name = qualified(cfg, base)
        a = rows.get(name)
        status = a["status"] if a else "missing"
        alive = bool(a) and status == "running" and (a["host"] != this_host or still_running(a["pid"], a["started_at"]))
        detail = (a or {}).get("detail")
        reason = detail.get("reason") if isinstance(detail, dict) and status == "port_taken" else None
        out.append({"name": name, "state": "running" if alive else "down", "status": status,
                    "pid": a["pid"] if a else None,
                    "detail": reason or ("running" if alive else f"not running ({status}); see logs/{name}.log "
                                                                 f"and logs/{name}.out")})
    return out


def store_writes(store, pid: int | None, agents: list[dict], hb_limit: float, ts: float,
                 sup_name: str = "supervisor") -> dict:
    """Whether the store takes writes, found without writing (a read-only
    command must not take the write lock): the store's own look at its disk
    and files (full, read-only, permissions), then the running supervisor's
    heartbeat: a supervisor alive whose heartbeat row has not been written
    for longer than the heartbeat timeout is not getting its writes through,
    whatever the cause (a lock held for minutes, an I/O error)."""
    health = store.write_health()
    sup = next((a for a in agents if a["name"] == sup_name), None)
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
        print("hosts:")
        print_table(
            ["host", "state", "agents up", "tier", "last seen"],
            [[h["host"] + (" (this host)" if h["this_host"] else ""),
              h["state"].upper() if h["state"] == "lost" else h["state"], f"{h['running']}/{h['agents']}",
              h["tier"] or "", fmt_age(h["last_seen_age_s"]) + " ago" if h["last_seen_age_s"] is not None else ""]
             for h in doc["hosts"]])
    if doc["agents"]:
        print_table(
            ["agent", "role", "status", "heartbeat", "task", "pid", *(["host"] if several else [])],
            [[a["name"], a["role"], f"lost (was {a['status']})" if a["stale"] else a["status"],
              fmt_age(a["heartbeat_age_s"]) + " ago" if a["heartbeat_age_s"] is not None else "",
              a["current_task"], a["pid"], *([a["host"]] if several else [])] for a in doc["agents"]],
        )
    else:
        print("agents: none registered")
    if doc["stale_config"]:
        print(f"stale config: {', '.join(doc['stale_config'])} run an older fleet.toml than the current one "
              f"({doc['config_hash']}); `lead_client.py restart --stale` restarts them")
    if doc["problems"]:
        print("degraded: " + "; ".join(doc["problems"]))
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
    names |= {a["name"] for a in ctx.store.list_agents() if not is_supervisor(a)}
    return sorted(names)


def _check_role(ctx: Ctx, role: str | None) -> None:
    """A role, or a managed service (dashboard, hw_supervisor): start / stop take either."""
    from fleet.children import managed_services

    services = [name for name, _m, off in managed_services(ctx.cfg) if not off]
    if role is not None and role not in _known_roles(ctx.cfg) and role not in services:
        raise UsageError(f"unknown role {role!r}; roles: {', '.join(_known_roles(ctx.cfg))}"
                         + (f"; services: {', '.join(services)}" if services else ""))


def request_supervisor(ctx: Ctx, body: dict, what: str, timeout: float | None = None) -> dict:
    """Send a control request to the supervisor that manages its target (this
    host's, or the host named in an agent name like `coder_1@gpu-box`) and
    wait (up to `timeout`, else --timeout, default 10 s) for it to take it.
    Returns {"request", "message_id", "supervisor", "supervisor_pid" (None for
    another host's), "acknowledged", "timeout_s"}; raises CliError when that
    supervisor does not run or exits first. Prints nothing."""
    to = supervisor_for(ctx.cfg, body.get("target"))
    store = ctx.store
    pid = None
    if to == supervisor_name(ctx.cfg):
        pid = ctx.require_supervisor(what)
    else:  # another host's: no pid to check here, so its heartbeat row says whether it runs
        agent = store.get_agent(to)
        limit = float(ctx.cfg["supervisor"]["heartbeat_timeout_s"])
        if agent is None or agent["status"] == "stopped" or time.time() - (agent["last_heartbeat"] or 0) > limit:
            raise CliError(f"{what}: {to} is not running (no heartbeat within {limit:g} s); start the fleet on "
                           f"host {host_of(to)}", EXIT_NO_SUPERVISOR)
    mid = store.send_message(ctx.actor, to, body, channel="sup")
    timeout = float(timeout or getattr(ctx.args, "timeout", None) or 10.0)
    deadline = time.monotonic() + timeout
    acked = False
    while time.monotonic() < deadline:
        rows = store.messages(channel="sup", after_id=mid - 1, limit=1000)
        row = next((m for m in rows if m["id"] == mid), None)
        if row is not None and row.get("read_at"):
            acked = True
            break
        if pid is not None and ctx.supervisor_pid() is None:
            raise CliError(f"the supervisor (pid {pid}) exited before taking the request", EXIT_NO_SUPERVISOR)
        time.sleep(0.1)
    return {"request": body, "message_id": mid, "supervisor": to, "supervisor_pid": pid, "acknowledged": acked,
            "timeout_s": timeout}


def _who(result: dict) -> str:
    pid = result["supervisor_pid"]
    return f"the supervisor (pid {pid})" if pid is not None else result["supervisor"]


def _ask_supervisor(ctx: Ctx, body: dict, what: str) -> int:
    result = request_supervisor(ctx, body, what)
    timeout = result.pop("timeout_s")
    if ctx.json:
        print_json(result)
    elif result["acknowledged"]:
        print(f"{what}: {_who(result)} took the request")
    if not result["acknowledged"]:
        raise CliError(f"{what}: {_who(result)} did not take the request within {timeout:.0f} s; "
                       "see logs/supervisor.log on its host", EXIT_FAILED)
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
    if ctx.args.stale:
        if target:
            raise UsageError("give a role or worker, or --stale, not both")
        return _restart_stale(ctx)
    if not target:
        raise UsageError("name a role or worker to restart, or --stale for the workers on an older fleet.toml")
    if target not in _known_roles(ctx.cfg) and target not in _known_workers(ctx):
        raise UsageError(f"{target!r} is neither a role nor a worker; roles: {', '.join(_known_roles(ctx.cfg))}; "
                         f"workers: {', '.join(_known_workers(ctx)) or '(none)'}")
    return _ask_supervisor(ctx, {"type": "restart", "target": target}, f"restart {target}")


def _restart_stale(ctx: Ctx) -> int:
    """Restart each worker whose config hash is not the current fleet.toml's."""
    doc = collect_status(ctx)
    names = doc["stale_config"]
    results = [request_supervisor(ctx, {"type": "restart", "target": n}, f"restart {n}") for n in names]
    missed = [n for n, r in zip(names, results, strict=True) if not r["acknowledged"]]
    if ctx.json:
        print_json({"restarted": [n for n in names if n not in missed], "not_taken": missed,
                    "config_hash": doc["config_hash"]})
    elif not names:
        print(f"no worker runs a stale config (all on {doc['config_hash']})")
    else:
        for n, r in zip(names, results, strict=True):
            if r["acknowledged"]:
                print(f"restart {n}: {_who(r)} took the request")
    if missed:
        raise CliError(f"restart --stale: the request for {', '.join(missed)} was not taken in time; "
                       "see logs/supervisor.log", EXIT_FAILED)
    return EXIT_OK


def set_paused(ctx: Ctx, kind: str, worker: str | None = None) -> tuple[dict, str]:
    """`pause` or `resume` the whole fleet (the store's flag) or one worker (a
    message to it). Returns (the --json document, the sentence for a person)."""
    store = ctx.store
    if worker is None:
        from fleet.pausing import set_fleet_paused

        # resume also undoes a pause sent by message (`send`, `broadcast`)
        told = set_fleet_paused(ctx.cfg, store, kind == "pause", by=ctx.actor)
        result = {"scope": "fleet", "paused": kind == "pause"}
        if kind == "resume":
            result["resumed_workers"] = told
        text = "fleet paused: workers stop claiming new tasks (running ones finish)" if kind == "pause" \
            else "fleet resumed: workers claim tasks again"
    else:
        if worker not in _known_workers(ctx):
            raise UsageError(f"unknown worker {worker!r}; workers: {', '.join(_known_workers(ctx)) or '(none)'}")
        mid = store.send_message(ctx.actor, worker, {"type": kind}, channel="agent")
        # the worker records its new state itself; the audit trail records who asked
        store.record_event(ctx.actor, f"worker_{kind}", agent=worker, detail={"message_id": mid})
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
    store.set_flag("paused", True, by=ctx.actor)
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
    p.add_argument("target", metavar="ROLE|WORKER", nargs="?")
    p.add_argument("--stale", action="store_true",
                   help="restart the workers running an older fleet.toml (status shows them as stale config)")
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
