"""Agent names on a fleet that may span several hosts.

On SQLite a fleet is one host, and agent names are what they always were
(`coder_1`, `supervisor`, `dashboard`). On PostgreSQL several hosts share one
store, each with its own supervisor and home, so every name this host gives
its agents carries the host: `coder_1@gpu-box`, `supervisor@gpu-box`. Names
stay unique across the fleet, a control message reaches the supervisor of the
agent's own host, and a supervisor can tell its agents from another host's.

Logs are per home, so a log file is named by the bare name (`coder_1.log`).
"""

from __future__ import annotations

SUPERVISOR = "supervisor"


def multi_host(cfg: dict) -> bool:
    """Whether this fleet's store may be shared by several hosts."""
    return cfg["store"]["backend"] == "postgresql"


def qualified(cfg: dict, base: str) -> str:
    """This host's agent name for `base` (unchanged on SQLite)."""
    if not multi_host(cfg) or "@" in base:
        return base
    return f"{base}@{cfg['fleet']['host']}"


def base_name(name: str) -> str:
    """`coder_1@gpu-box` -> `coder_1` (a name without a host is its own base)."""
    return name.split("@", 1)[0]


def host_of(name: str) -> str | None:
    """The host part of an agent name, or None when it has none."""
    return name.split("@", 1)[1] if "@" in name else None


def supervisor_name(cfg: dict) -> str:
    """The agent name of this host's supervisor."""
    return qualified(cfg, SUPERVISOR)


def supervisor_for(cfg: dict, agent: str | None) -> str:
    """The supervisor that manages `agent` (its own host's), or this host's
    when no agent is named: where a control message about it must go."""
    host = host_of(agent) if agent else None
    return f"{SUPERVISOR}@{host}" if host else supervisor_name(cfg)


def is_supervisor(agent: dict) -> bool:
    """Whether an agents row is a supervisor's (any host's)."""
    return agent.get("role") == SUPERVISOR or base_name(agent.get("name") or "") == SUPERVISOR


def is_local(cfg: dict, agent: dict) -> bool:
    """Whether an agents row belongs to this host (a row without a host does)."""
    return agent.get("host") in (None, cfg["fleet"]["host"])


# Agent statuses of a process that should be heartbeating.
LIVE_STATUSES = ("starting", "idle", "busy", "paused", "running", "stopping")


def host_summary(agents: list[dict], this_host: str, heartbeat_timeout_s: float) -> list[dict]:
    """Each host the agents run on, for `status`, the dashboard and STATUS.md:
    {host, this_host, agents, running, lost, tier, last_seen_age_s, state}.

    `agents` are agents rows with `heartbeat_age_s` added. A host whose live
    agents have all stopped heartbeating is "lost" (a dead or cut-off machine:
    its running tasks come back by lease expiry, and run elsewhere); one with
    none left running is "stopped"; else "up". `tier` is the model tier its
    hardware supervisor last reported."""
    by_host: dict[str, list[dict]] = {}
    for a in agents:
        by_host.setdefault(a.get("host") or this_host, []).append(a)
    out = []
    for host, mine in sorted(by_host.items()):
        live = [a for a in mine if a["status"] in LIVE_STATUSES]
        running = [a for a in live if a["heartbeat_age_s"] is not None and a["heartbeat_age_s"] <= heartbeat_timeout_s]
        ages = [a["heartbeat_age_s"] for a in mine if a["heartbeat_age_s"] is not None]
        hw = next((a for a in mine if base_name(a["name"]) == "hw_supervisor"), None)
        detail = (hw or {}).get("detail")
        state = "up" if running else "lost" if live else "stopped"
        out.append({"host": host, "this_host": host == this_host, "agents": len(mine), "running": len(running),
                    "lost": len(live) - len(running),
                    "tier": detail.get("tier") if isinstance(detail, dict) else None,
                    "last_seen_age_s": round(min(ages), 3) if ages else None, "state": state})
    return out
