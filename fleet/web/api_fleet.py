"""Fleet endpoints: health summary, uptime and restart history, idle workers,
per-process status, and control (start, stop, pause, resume, restart one
worker). Control goes through the store's control protocol: the dashboard
never signals a process itself.
"""

from __future__ import annotations

import socket
import time

from flask import Blueprint, jsonify

from fleet.hosts import host_of, is_supervisor, supervisor_for, supervisor_name
from fleet.config import worker_names

from .api_status import EXIT_ACTIONS, agent_rows, health_payload
from .common import ApiError, actor, ctx, declared_body, doc, int_arg, json_body, time_arg
from .params import TIME_SCHEMA

bp = Blueprint("fleet", __name__)
HEALTH_CACHE_S = 2.0


@bp.get("/api/fleet/health")
@doc("Fleet health summary: overall state, agents alive, supervisor uptime and recent errors", tag="fleet",
     query={"window_s": {"type": "integer", "minimum": 60, "maximum": 604800}})
def fleet_health():
    c = ctx()
    window = int_arg("window_s", 3600, lo=60, hi=604800)
    # Reused while no task or event changed and for at most HEALTH_CACHE_S (ages move slowly).
    out = c.cached(f"fleet_health:{window}", c.task_version(), HEALTH_CACHE_S, lambda: _fleet_health(c, window))
    return jsonify({**out, "dashboard_uptime_s": time.time() - c.started_at})


def _fleet_health(c, window: int) -> dict:
    since = time.time() - window
    health = health_payload(c)
    failures = c.store.events(action="fail", since=since, limit=1000)
    # The newest FAILED tasks (an index read; a `since` filter would count every match),
    # those that finished in the window.
    failed = [t for t in c.store.list_tasks(status="FAILED", limit=10).items
              if t.finished_at is not None and t.finished_at >= since]
    agents = agent_rows(c)
    sup = c.store.get_agent(supervisor_name(c.cfg))
    return {
        "status": health["status"],
        "components": {k: v["status"] for k, v in health["components"].items()},
        "agents": {"total": len(agents), "alive": sum(a["alive"] for a in agents),
                   "by_status": _count_by(agents, "status")},
        "supervisor_uptime_s": (time.time() - sup["started_at"]) if sup else None,
        "dashboard_uptime_s": time.time() - c.started_at,
        "window_s": window,
        "failed_attempts": len(failures),
        "recent_failures": [{"id": t.id, "skill": t.skill, "error": (t.error or "")[:300],
                             "finished_at": t.finished_at} for t in failed],
        "active_alerts": c.store.list_alerts(active_only=True, limit=20),
    }


def _count_by(rows: list[dict], key: str) -> dict:
    out: dict = {}
    for r in rows:
        out[r[key]] = out.get(r[key], 0) + 1
    return out


@bp.get("/api/fleet/uptime")
@doc("Worker uptime from liveness samples (alive vs expected) and the restart history", tag="fleet", query={
    "since": {**TIME_SCHEMA, "description": "window start (default 24 h ago)"},
    "until": {**TIME_SCHEMA, "description": "window end (default now)"},
})
def fleet_uptime():
    c = ctx()
    until = time_arg("until")
    until = time.time() if until is None else until
    since = time_arg("since")
    # an empty (or reversed) window holds nothing: an empty answer, not an error
    since = min(until - 86400 if since is None else since, until)
    samples = c.store.liveness_samples(since, until)
    expected = sum(s["expected"] for s in samples)
    alive = sum(min(s["alive"], s["expected"]) for s in samples)
    restarts = []
    for action in EXIT_ACTIONS:
        restarts += c.store.events(action=action, since=since, limit=500)
    restarts.sort(key=lambda e: e["id"], reverse=True)
    return jsonify({
        "since": since, "until": until, "samples": len(samples),
        "uptime_pct": round(100.0 * alive / expected, 2) if expected else None,
        "series": [{"ts": s["ts"], "expected": s["expected"], "alive": s["alive"], "busy": s["busy"]}
                   for s in samples[-500:]],
        "restarts": [e for e in restarts if e["ts"] < until][:200],
    })


@bp.get("/api/fleet/idle")
@doc("Idle workers and how long each has had no task", tag="fleet",
     query={"min_idle_s": {"type": "integer", "minimum": 0, "maximum": 10**8}})
def fleet_idle():
    c = ctx()
    now = time.time()
    threshold = int_arg("min_idle_s", 0, lo=0, hi=10**8)
    activity = c.store.worker_activity()
    idle = []
    for a in agent_rows(c):
        if a["status"] != "idle" or not a["alive"]:
            continue
        last = (activity.get(a["name"]) or {}).get("last_activity_at")
        since = max(x for x in (last, a["started_at"]) if x is not None)
        idle_for = now - since
        if idle_for >= threshold:
            idle.append({"name": a["name"], "role": a["role"], "idle_for_s": round(idle_for, 1),
                         "last_task_activity_at": last})
    idle.sort(key=lambda x: -x["idle_for_s"])
    return jsonify({"idle": idle, "ready_depth": c.store.pending_depth()})


def _process_info(pid: int | None, host: str | None) -> dict | None:
    if not pid or host != socket.gethostname():
        return None
    import psutil

    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            mem = proc.memory_info()
            return {"running": proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE,
                    "name": proc.name(), "rss_mb": round(mem.rss / 2**20, 1),
                    "cpu_times_s": round(sum(proc.cpu_times()[:2]), 2),
                    "threads": proc.num_threads(), "create_time": proc.create_time()}
    except (psutil.Error, OSError):  # gone or not ours: report it as not running
        return {"running": False}


@bp.get("/api/fleet/workers")
@doc("Each worker process: role, state, heartbeat, current task, and its OS process (RSS, CPU)", tag="fleet")
def fleet_workers():
    c = ctx()
    rows = []
    for a in agent_rows(c):
        rows.append({**a, "process": _process_info(a["pid"], a["host"])})
    return jsonify({"workers": rows, "expected": [{"name": n, "role": r} for n, r in worker_names(c.cfg)]})


# -- control (only where a supervisor exists to obey it) -------------------
def _roles(cfg) -> set[str]:
    return {r for _, r in worker_names(cfg)}


def _require_supervisor(c) -> None:
    if c.supervisor_pid() is None:
        raise ApiError(409, "the supervisor is not running, so nothing would act on this; "
                            "start the fleet with `python fleet/supervisor.py`")


def _role_from_body(c) -> str | None:
    role = json_body(required=False).get("role")
    if role in (None, ""):
        declared_body()
        return None
    if not isinstance(role, str) or role not in _roles(c.cfg):
        raise ApiError(400, f"unknown role {role!r}; configured roles: {', '.join(sorted(_roles(c.cfg)))}")
    declared_body()
    return role


def _targets(c) -> set[str]:
    names = {n for n, _ in worker_names(c.cfg)} | _roles(c.cfg)
    names |= {a["name"] for a in c.store.list_agents() if not is_supervisor(a)}
    names |= set(c.cfg["supervisor"]["services"])
    return names


def _install_control(app, c) -> None:
    cbp = Blueprint("fleet_control", __name__)
    # a role of this fleet's configuration (null or "" for all of them)
    role_body = {"type": "object", "properties": {"role": {"enum": [None, "", *sorted(_roles(c.cfg))]}}}

    @cbp.post("/api/fleet/start")
    @doc("Start (or restart) fleet workers, all or one role; the supervisor acts within about a second",
         tag="fleet", body=role_body, body_required=False, status=202,
         responses={"409": "the supervisor is not running"})
    def fleet_start():
        c = ctx()
        role = _role_from_body(c)
        _require_supervisor(c)
        mid = c.store.send_message(actor(), supervisor_name(c.cfg), {"type": "start", "role": role}, channel="sup")
        return jsonify({"sent": "start", "role": role, "message_id": mid}), 202

    @cbp.post("/api/fleet/stop")
    @doc("Stop fleet workers, every role or one (running tasks get the stop timeout to finish); the "
         "supervisor and its services, this dashboard included, keep running so start brings them back",
         tag="fleet", body=role_body, body_required=False, status=202,
         responses={"409": "the supervisor is not running"})
    def fleet_stop():
        c = ctx()
        role = _role_from_body(c)
        _require_supervisor(c)
        # One message per role: a role-less stop would drain the supervisor itself
        # (and this dashboard with it), leaving nothing to press "start" on.
        roles = [role] if role else sorted(_roles(c.cfg))
        ids = [c.store.send_message(actor(), supervisor_name(c.cfg), {"type": "stop", "role": r}, channel="sup")
               for r in roles]
        return jsonify({"sent": "stop", "roles": roles, "message_ids": ids}), 202

    @cbp.post("/api/fleet/pause")
    @doc("Pause the whole fleet: workers stop claiming new tasks (running ones finish)", tag="fleet")
    def fleet_pause():
        ctx().store.set_flag("paused", True, by=actor())
        return jsonify({"paused": True})

    @cbp.post("/api/fleet/resume")
    @doc("Resume a paused fleet", tag="fleet")
    def fleet_resume():
        from fleet.pausing import set_fleet_paused

        c = ctx()  # resume also undoes a pause sent by message (send, broadcast)
        told = set_fleet_paused(c.cfg, c.store, False, by=actor())
        return jsonify({"paused": False, "resumed_workers": told})

    @cbp.post("/api/fleet/worker/<name>/restart")
    @doc("Restart one worker (by name) or every worker of a role", tag="fleet", status=202,
         responses={"404": "no such worker or role", "409": "the supervisor is not running"})
    def worker_restart(name: str):
        c = ctx()
        if name not in _targets(c):
            raise ApiError(404, f"no worker or role named {name!r}; see /api/fleet/workers")
        if host_of(name) in (None, c.cfg["fleet"]["host"]):
            _require_supervisor(c)  # (another host's supervisor picks the message up itself)
        mid = c.store.send_message(actor(), supervisor_for(c.cfg, name), {"type": "restart", "target": name},
                                   channel="sup")
        return jsonify({"sent": "restart", "target": name, "message_id": mid}), 202

    def _worker_message(name: str, kind: str):
        c = ctx()
        agent = c.store.get_agent(name)
        if agent is None or is_supervisor(agent):
            raise ApiError(404, f"no running worker named {name!r}; see /api/fleet/workers")
        mid = c.store.send_message(actor(), name, {"type": kind}, channel="agent")
        if kind in ("pause", "resume"):  # who asked, for the audit trail (the worker records its new state)
            c.store.record_event(actor(), f"worker_{kind}", agent=name, detail={"message_id": mid})
        return jsonify({"sent": kind, "target": name, "message_id": mid}), 202

    @cbp.post("/api/fleet/worker/<name>/pause")
    @doc("Pause one worker (it stops claiming after its current task)", tag="fleet", status=202,
         responses={"404": "no such worker"})
    def worker_pause(name: str):
        return _worker_message(name, "pause")

    @cbp.post("/api/fleet/worker/<name>/resume")
    @doc("Resume one paused worker", tag="fleet", status=202, responses={"404": "no such worker"})
    def worker_resume(name: str):
        return _worker_message(name, "resume")

    app.register_blueprint(cbp)


def install(app, c) -> None:
    app.register_blueprint(bp)
    _install_control(app, c)
