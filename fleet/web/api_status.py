"""Core status endpoints: /api/status (agents and queue), /api/activity (the
event log), /api/skills (catalogue plus execution stats), /api/timeline
(attempts and throughput series) and /api/health (healthy|degraded|down).
"""

from __future__ import annotations

import time

from flask import Blueprint, jsonify

from fleet.hosts import host_summary, is_local, is_supervisor, supervisor_name
from fleet.config import air_gap_refusal, worker_names
from fleet.skills._hitl import HUMAN_FIELDS
from fleet.config_drift import config_hash, stale_agents
from fleet.db import StoreError

from .common import choice_arg, ctx, doc, int_arg, str_arg, time_arg
from .params import TIME_SCHEMA

bp = Blueprint("status", __name__)

# The event the supervisor records when a worker or service process ends.
EXIT_ACTIONS = ("child_exit",)
DOWN_STATUSES = ("stopped", "dead", "parked")
# A task claimable for longer than this (nobody takes it) marks the queue degraded.
QUEUE_STALL_S = 900.0
# Queue aggregates in /api/status are reused while the event log has not moved,
# for at most this long (a delayed task becoming ready writes no event).
QUEUE_CACHE_S = 1.0
# Heavier aggregates (skill stats, timeline, fleet health) the pages poll: reused
# while the event log has not moved, for at most this long.
AGGREGATE_CACHE_S = 5.0


def agent_rows(c) -> list[dict]:
    """Agents with heartbeat age, liveness, restarts in the last hour and last exit."""
    now = time.time()
    timeout = c.cfg["supervisor"]["heartbeat_timeout_s"]
    restarts = c.store.event_tally(EXIT_ACTIONS, now - 3600)
    last_exit = c.store.last_event_per_agent(EXIT_ACTIONS)
    rows = []
    for a in c.store.list_agents():
        age = max(0.0, now - a["last_heartbeat"])
        exit_event = last_exit.get(a["name"])
        rows.append({
            "name": a["name"], "role": a["role"], "status": a["status"], "pid": a["pid"],
            "host": a["host"], "current_task": a["current_task"], "started_at": a["started_at"],
            "last_heartbeat": a["last_heartbeat"], "heartbeat_age_s": round(age, 1),
            "alive": a["status"] not in DOWN_STATUSES and age <= timeout,
            "progress": a["progress"], "detail": a["detail"],
            "restarts_1h": sum(n for (agent, _), n in restarts.items() if agent == a["name"]),
            "last_exit": None if exit_event is None else {
                "at": exit_event["ts"], "action": exit_event["action"], "detail": exit_event["detail"]},
        })
    return rows


def _config_drift(c, agents: list[dict]) -> dict:
    """The current fleet.toml's config hash and the agents on an older one
    (each agent row gains `stale_config`). The dashboard's own config is
    loaded at its start, so the current one is read again (cached for a
    second: fleet.toml rarely changes)."""
    from fleet.config import ConfigError, load_config

    def current():
        try:
            return config_hash(load_config(c.cfg["home"]))
        except ConfigError:
            return None  # invalid now: the fleet runs on its last good config, and an alert says so

    now_hash = c.cached("config_hash", None, QUEUE_CACHE_S, current) or config_hash(c.cfg)
    stale = stale_agents(agents, c.store.last_event_per_agent(["agent_start"]), now_hash)
    for a in agents:
        a["stale_config"] = a["name"] in stale
    return {"config_hash": now_hash, "stale_config": sorted(stale)}


def status_payload(c) -> dict:
    store = c.store
    agents = agent_rows(c)
    expected = [n for n, _ in worker_names(c.cfg)]
    present = {a["name"] for a in agents}
    pid = c.supervisor_pid()
    last_event = store.last_event_id()
    return {
        "fleet": c.cfg["fleet"]["name"],
        "now": time.time(),
        "paused": bool(store.get_flag("paused", False)),
        "read_only": c.read_only,
        "supervisor": {"running": pid is not None, "pid": pid},
        "agents": agents,
        "this_host": c.cfg["fleet"]["host"],
        **_config_drift(c, agents),
        "hosts": host_summary(agents, c.cfg["fleet"]["host"], c.cfg["supervisor"]["heartbeat_timeout_s"]),
        "expected_workers": expected,
        "missing_workers": [n for n in expected if n not in present],  # (this host's)
        **c.cached("queue", last_event, QUEUE_CACHE_S, lambda: queue_summary(store)),
        # A gauge: recounted at most once a second however busy the queue is.
        "ready_depth": c.cached("ready", None, QUEUE_CACHE_S, store.pending_depth),
        "last_event_id": last_event,
    }


def queue_summary(store) -> dict:
    return {
        "counts": store.counts(),
        "oldest_pending_age_s": store.oldest_pending_age(),
        "active_alerts": len(store.list_alerts(active_only=True, limit=1000)),
    }


@bp.get("/api/status")
@doc("Fleet agents (state, heartbeat age, current task, restarts, last exit) and task counts", tag="status")
def status():
    return jsonify(status_payload(ctx()))


@bp.get("/api/activity")
@doc("Recent task and fleet activity, newest first: audit events merged with task creations, claims "
     "and completions (those carry id null); with after_id, the audit events after it, oldest first", tag="status", query={
    "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
    "after_id": {"type": "integer", "minimum": 0, "description": "only events after this id (oldest first)"},
    "task_id": {"type": "integer"}, "agent": {"type": "string", "maxLength": 200},
    "action": {"type": "string", "maxLength": 200},
    "exclude": {"type": "string", "maxLength": 1000,
                "description": "comma-separated actions to leave out (e.g. agent_status)"},
})
def activity():
    c = ctx()
    limit = int_arg("limit", 100, lo=1, hi=1000)
    after = int_arg("after_id", None, lo=0)
    exclude = {a.strip() for a in (str_arg("exclude", max_len=1000) or "").split(",") if a.strip()}
    filters = {"task_id": int_arg("task_id"), "agent": str_arg("agent"), "action": str_arg("action")}
    # With exclusions, read further back so that `limit` entries usually remain.
    want = min(1000, limit * 8) if exclude else limit
    if after is not None:  # the resumable audit log: operator actions and anomalies
        events = c.store.events(after_id=after, limit=want, **filters)
    else:  # merged with task creations, claims and completions (which write no event)
        version = c.task_version()  # moves with each of those and each event: a cached feed is current
        key = f"activity:{want}:{sorted(filters.items())}"
        events = c.cached(key, version, AGGREGATE_CACHE_S, lambda: c.store.activity(want, **filters))
    if exclude:
        events = [e for e in events if e["action"] not in exclude][:limit]
    return jsonify({"events": events, "last_event_id": c.store.last_event_id()})


@bp.get("/api/skills")
@doc("Installed skills (description, payload schema, flags) with execution stats", tag="status", query={
    "since": {**TIME_SCHEMA, "description": "only tasks created since"},
    "stats": {"type": "boolean", "description": "false: the catalogue only, without execution stats "
                                                "(what the tasks and submit pages need; no task is counted)"},
})
def skills():
    c = ctx()
    since = time_arg("since")
    with_stats = choice_arg("stats", ("true", "false", "1", "0"), "true") in ("true", "1")
    # Recounted only when a task changed (c.task_version) or the value is old.
    stats = {} if not with_stats else dict(c.cached(f"skill_stats:{since}", c.task_version(), AGGREGATE_CACHE_S,
                                                    lambda: c.store.skill_stats(since)))
    out = []
    for name, info in sorted(c.catalogue().items()):
        entry = info.to_dict()
        entry["installed"] = True
        entry["mode_refusal"] = mode_refusal(c.cfg, info)
        props = (info.payload_schema or {}).get("properties") or {}
        entry["internal_fields"] = [f for f in HUMAN_FIELDS if f in props]  # the store sets them, not a person
        entry["stats"] = stats.pop(name, None)
        out.append(entry)
    for name, st in sorted(stats.items()) if with_stats else []:  # tasks of skills no longer installed
        out.append({"name": name, "installed": False, "stats": st})
    return jsonify({"skills": out})


@bp.get("/api/timeline")
@doc("Task attempts in a window (for a timeline) and finished-task series per bucket (sparklines)",
     tag="status", query={
         "since": {**TIME_SCHEMA, "description": "window start (default one hour ago)"},
         "until": {**TIME_SCHEMA, "description": "window end (default now)"},
         "bucket_s": {"type": "integer", "minimum": 10, "maximum": 86400},
         "limit": {"type": "integer", "minimum": 1, "maximum": 2000},
     })
def timeline():
    c = ctx()
    now = time.time()
    until = time_arg("until")
    until = now if until is None else until
    since = time_arg("since")
    since = until - 3600 if since is None else since
    bucket = int_arg("bucket_s", 300, lo=10, hi=86400)
    if since >= until:  # an empty (or reversed) window holds nothing: an empty answer, not an error
        return jsonify({"since": since, "until": until, "bucket_s": bucket, "attempts": [], "series": {}})
    buckets = int(min(500, max(1, -(-(until - since) // bucket))))
    limit = int_arg("limit", 500, lo=1, hi=2000)
    # Reused while no task changed (c.task_version) and for at most
    # AGGREGATE_CACHE_S; an open-ended window is keyed by its start only.
    key = f"timeline:{since}:{until if time_arg('until') is not None else ''}:{bucket}:{limit}"
    return jsonify(c.cached(key, c.task_version(), AGGREGATE_CACHE_S, lambda: {
        "since": since, "until": until, "bucket_s": bucket,
        "attempts": c.store.attempt_timeline(since, until, limit),
        "series": c.store.finished_series(since, bucket, buckets),
    }))


def mode_refusal(cfg: dict, info) -> str | None:
    """Why the fleet's mode refuses to run this skill (air-gap mode: only
    [air_gap] allowed_skills; offline mode: no network skills), or None."""
    refusal = air_gap_refusal(cfg, info.name)
    if refusal:
        return refusal
    if cfg["fleet"]["offline_mode"] and info.requires_network:
        return "the fleet is in offline mode ([fleet] offline_mode), which refuses skills that need the network"
    return None


def health_payload(c) -> dict:
    components: dict[str, dict] = {}
    try:
        counts = c.store.counts()
        # Whether writes can succeed, found without writing (see write_health):
        # reads may work on a full disk while every commit fails.
        writes = c.store.write_health()
        components["store"] = {"status": writes["status"], "backend": c.store.backend, "writes": writes["writes"],
                               "free_bytes": writes["free_bytes"]}
    except (StoreError, OSError) as exc:  # report a broken store, do not crash
        components["store"] = {"status": "down", "error": str(exc)}
        return {"status": "down", "components": components, "checked_at": time.time()}
    expected = len(worker_names(c.cfg))
    agents = agent_rows(c)
    alive = sum(1 for a in agents if a["alive"] and not is_supervisor(a) and is_local(c.cfg, a))
    if expected and alive == 0:
        wstate = "down"
    elif alive < expected:
        wstate = "degraded"
    else:
        wstate = "healthy"
    components["workers"] = {"status": wstate, "alive": alive, "expected": expected}
    pid = c.supervisor_pid()
    components["supervisor"] = {"status": "healthy" if pid else "down", "pid": pid}
    sup = next((a for a in agents if a["name"] == supervisor_name(c.cfg) and a["pid"] == pid), None)
    limit = c.cfg["supervisor"]["heartbeat_timeout_s"]
    if pid and sup is not None and sup["heartbeat_age_s"] > limit and components["store"]["status"] == "healthy":
        # A live supervisor that cannot write its heartbeat: its writes are
        # not getting through (a lock held for minutes, an I/O error).
        components["store"] = {**components["store"], "status": "degraded",
                               "writes": f"the supervisor (pid {pid}) is running but has written no heartbeat "
                                         f"for {sup['heartbeat_age_s']:.0f} s (limit {limit:g} s)"}
    hw = c.read_hw()
    components["hardware"] = {
        "status": "degraded" if hw.get("stale") else "healthy",
        "stale": bool(hw.get("stale")), "age_s": hw.get("age_s"),
        "reason": hw.get("stale_reason"), "tier": (hw.get("tier") or {}).get("name"),
        "thermal": (hw.get("thermal") or {}).get("state"),
    }
    from fleet.model_health import model_health

    # Never "down": degraded only while queued tasks need a model (fleet/model_health.py).
    components["models"] = model_health(c.cfg, c.store, hw=hw, catalogue=c.catalogue())
    waiting = c.store.oldest_ready_wait()
    components["queue"] = {
        "status": "degraded" if waiting is not None and waiting > QUEUE_STALL_S else "healthy",
        "ready_depth": c.store.pending_depth(), "oldest_ready_wait_s": waiting,
        "oldest_pending_age_s": c.store.oldest_pending_age(), "counts": counts,
    }
    states = [comp["status"] for comp in components.values()]
    overall = "down" if "down" in states else ("degraded" if "degraded" in states else "healthy")
    return {"status": overall, "components": components, "checked_at": time.time()}


@bp.get("/api/health")
@doc("Health: healthy | degraded | down with components (store, workers, hardware, models, queue); "
     "HTTP 503 unless healthy", tag="status", responses={"503": "degraded or down"})
def health():
    payload = health_payload(ctx())
    resp = jsonify(payload)
    resp.status_code = 200 if payload["status"] == "healthy" else 503
    return resp


def install(app, c) -> None:
    app.register_blueprint(bp)

