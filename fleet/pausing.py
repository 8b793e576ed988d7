"""Fleet-wide pause and resume, one behaviour for the CLI and the dashboard:
the `paused` flag, and on resume a resume message to every registered worker,
since a worker paused by a message (`send`, `broadcast`) ignores the flag.
"""

from __future__ import annotations


def set_fleet_paused(cfg: dict, store, paused: bool, *, by: str) -> list[str]:
    """Set or clear the fleet's paused flag; on resume also tell every
    registered worker (an agent of a worker role, on any host; not the
    supervisor or a managed service) to resume.
    Returns the workers told (empty on pause)."""
    store.set_flag("paused", paused, by=by)
    if paused:
        return []
    from fleet.config import worker_names

    roles = set(cfg["affinity"]) | {role for _name, role in worker_names(cfg)}  # the supervisor's and services' are not
    names = [a["name"] for a in store.list_agents() if a["role"] in roles]
    for name in names:
        store.send_message(by, name, {"type": "resume"}, channel="agent")
    return names
