"""STATUS.md: the human-readable fleet snapshot the supervisor rewrites every
status interval (agents and their states, task counts, alerts, last errors).

Written atomically (temp file + rename) so a reader never sees half a file.
"""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime

from .atomic import atomic_write_text
from .config_drift import stale_agents
from .hosts import LIVE_STATUSES, host_summary


def _age(ts: float | None, now: float) -> str:
    if not ts:
        return "-"
    secs = max(0.0, now - ts)
    if secs < 90:
        return f"{secs:.0f} s"
    if secs < 5400:
        return f"{secs / 60:.0f} min"
    return f"{secs / 3600:.1f} h"


def _cell(value) -> str:
    return str(value if value is not None else "-").replace("|", "\\|").replace("\n", " ")


def render_status(store, *, supervisor_pid: int, roles: dict[str, str], started_at: float,
                  fleet_name: str = "fleet", this_host: str | None = None,
                  heartbeat_timeout_s: float = 120.0, config: str | None = None) -> str:
    """Markdown for STATUS.md. `roles` maps role/service name to its supervisor
    state. Where several hosts share the store, a Hosts section lists each
    (a lost one first says so) and the agents table gains a host column."""
    now = time.time()
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    agents = [{**a, "heartbeat_age_s": max(0.0, now - a["last_heartbeat"]) if a["last_heartbeat"] else None}
              for a in store.list_agents()]
    hosts = host_summary(agents, this_host or socket.gethostname(), heartbeat_timeout_s)
    stale = stale_agents(agents, store.last_event_per_agent(["agent_start"]), config) if config else {}
    several = len(hosts) > 1
    lines = [
        f"# {fleet_name} status",
        "",
        f"Updated {stamp} by the supervisor (PID {supervisor_pid}, up {_age(started_at, now)})"
        + (f" on {this_host}." if several and this_host else "."),
        "",
    ]
    if config:
        lines += [f"Config {config}" + (f"; **stale config**: {', '.join(sorted(stale))} run an older fleet.toml "
                                       "(`lead_client.py restart --stale`)." if stale else "."), ""]
    if several or any(h["state"] == "lost" for h in hosts):
        lines += ["## Hosts", "", "| host | state | agents up | tier | last seen |", "| --- | --- | --- | --- | --- |"]
        lines += [f"| {_cell(h['host'])}{' (this host)' if h['this_host'] else ''} | "
                  f"{'**LOST**' if h['state'] == 'lost' else h['state']} | {h['running']}/{h['agents']} | "
                  f"{_cell(h['tier'])} | {_age(now - h['last_seen_age_s'], now) if h['last_seen_age_s'] is not None else '-'}"
                  f" ago |" for h in hosts]
        lines.append("")
    lines += ["## Agents", "",
              "| name | role | status | pid | heartbeat | current task | progress |" + (" host |" if several else ""),
              "| --- | --- | --- | --- | --- | --- | --- |" + (" --- |" if several else "")]
    for a in agents:
        lost = a["status"] in LIVE_STATUSES and a["heartbeat_age_s"] is not None \
            and a["heartbeat_age_s"] > heartbeat_timeout_s
        status = f"lost (was {a['status']})" if lost else a["status"]
        if a["name"] in stale:
            status += ", stale config"
        lines.append(
            f"| {_cell(a['name'])} | {_cell(a['role'])} | {_cell(status)} | {_cell(a['pid'])} | "
            f"{_age(a['last_heartbeat'], now)} ago | {_cell(a['current_task'])} | {_cell(a['progress'])} |"
            + (f" {_cell(a['host'])} |" if several else "")
        )
    troubled = {r: s for r, s in sorted(roles.items())
                if s in ("flapping", "parked", "backoff", "stopped", "port_taken")}
    if troubled:
        lines += ["", "## Roles needing attention", ""]
        hints = {
            "flapping": "crashes repeatedly; see its log under logs/",
            "parked": "exited with a configuration error (78); fix it, then start the role again",
            "backoff": "waiting to be restarted after a crash",
            "stopped": "stopped by an operator; start it again to resume",
            "port_taken": "its port is held by another process (see the alert); free it or set [dashboard] port, "
                          "then start it again",
        }
        lines += [f"* **{r}**: {s} ({hints[s]})" for r, s in troubled.items()]
    counts = store.counts()
    lines += ["", "## Tasks", "", "| status | count |", "| --- | --- |"]
    lines += [f"| {s} | {n} |" for s, n in counts.items()]
    oldest = store.oldest_pending_age()
    if oldest is not None:
        lines += ["", f"Oldest pending task: {_age(time.time() - oldest, now)} old."]
    alerts = store.list_alerts(active_only=True, limit=10)
    if alerts:
        lines += ["", "## Active alerts", ""]
        lines += [f"* [{a['severity']}] {_cell(a['component'])}: {_cell(a['message'])} "
                  f"(x{a['occurrences']}, id {a['id']})" for a in alerts]
    failed = store.list_tasks(status="FAILED", limit=5).items
    if failed:
        lines += ["", "## Last errors", ""]
        for t in failed:
            err = (t.error or "").strip().splitlines()
            lines.append(f"* task {t.id} ({t.skill}, {t.error_reason or 'error'}): {_cell(err[0] if err else '-')[:200]}")
    return "\n".join(lines) + "\n"


def write_status(path: str, text: str) -> None:
    """Atomically replace `path` with `text`."""
    atomic_write_text(path, text)